//! fhir-pipes: the Pipe definitions and the local pipe runtime (source → filter → enrichment →
//! target), and the commands of the `fhir-pipes` CLI.

pub mod aws;
pub mod enrich_cmd;
pub mod filter;
pub mod new_cmd;
pub mod run_cmd;
pub mod runtime;
pub mod scaffold;
pub mod source;
pub mod target;
pub mod template;
