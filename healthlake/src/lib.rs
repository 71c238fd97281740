//! The HealthLake target of fhir-pipes: writes the enrichment's events into a FHIR R4 store
//! (AWS HealthLake, or any FHIR server under the same URL layout) with SigV4-signed requests.
//!
//! `PUT` events become `PUT {base}{type}/{id}`, `DELETE` events `DELETE {base}{type}/{id}`;
//! changes to one resource are applied in batch order, different resources in parallel (bounded);
//! throttling, 5xx and connection errors are retried with backoff within a deadline. Every event
//! gets an outcome, so the Lambda ([`lambda`]) can report failures by correlationId and the local
//! runtime can dead-letter them. Logs carry eventIDs, resource types, statuses and issue codes,
//! never resource content or ids.

pub mod client;
pub mod config;
pub mod event;
pub mod hydrator;
pub mod lambda;
pub mod outcome;
mod signer;
pub mod writer;

pub use config::{ConfigError, HealthLakeConfig};
pub use event::{Action, ResourceKey};
pub use writer::{Applied, EventOutcome, Failure, FailureKind, HealthLakeWriter, WriteReport};
