//! fhir-pipes: the Pipe definitions and the local pipe runtime (source → filter → enrichment →
//! target), and the commands of the `fhir-pipes` CLI.

pub mod enrich_cmd;
pub mod filter;
pub mod new_cmd;
pub mod scaffold;
pub mod source;
pub mod target;
