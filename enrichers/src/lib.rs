//! The enrichment core of fhir-pipes: a batch of DynamoDB stream records in (as EventBridge
//! Pipes sends it), a JSON array of versioned FHIR envelopes out, with the error policy, the
//! 6 MB size guard, PHI-free logging and EMF metrics. Generic over
//! [`fhir_pipes_mappings::Mapping`]; each resource's Lambda binary is a few lines over it.

pub mod config;
pub mod dynamodb_lookup;
pub mod enrich;
pub mod error;
pub mod lambda;
pub mod lookup;
mod metadata;
pub mod metrics;
pub mod record;
pub mod resources;
pub mod sample;

pub use config::{EnrichConfig, ErrorPolicy, MAX_RESPONSE_BYTES};
pub use enrich::{Enriched, Enricher};
pub use error::{EnrichError, RecordError};
pub use fhir_pipes_core::Backoff;
pub use lookup::{Fetched, Fetcher, LookupClient, LookupConfig, LookupError};
pub use metrics::Counts;
pub use resources::{BatchEnricher, RESOURCES, Resource};
