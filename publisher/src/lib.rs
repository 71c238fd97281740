//! HealthLake change data capture for fhir-pipes, the publisher: the target of the change
//! capture Pipe (SQS source → `healthlake-hydrator` enrichment → this Lambda, invoked
//! REQUEST_RESPONSE with the hydrator's JSON array of envelopes). It puts each change event on a
//! custom EventBridge bus, each idempotency key once, and loses no change:
//!
//! 1. **De-duplicate** by `metadata.idempotencyKey` ([`fhir_pipes_cdc::event::ChangeMetadata`]):
//!    a key earlier in the batch, or recorded in the DynamoDB table (BatchGetItem, ≤ 100 keys a
//!    call, consistent reads, unprocessed keys retried with backoff), is not published again
//!    ([`Outcome::Duplicate`]). A key the table could not be asked about is not published
//!    unchecked: the event fails (`dedup_check_failed:<code>`) and its message is retried.
//! 2. **Publish** with PutEvents: `Source` the setting, `DetailType` the envelope's `eventType`,
//!    `Detail` the envelope JSON byte for byte as received, `EventBusName` the setting. At most
//!    10 entries and less than 256 KB per call (AWS's entry size rule: the UTF-8 bytes of
//!    `Source`, `DetailType` and `Detail`, see [`bus::BusEntry::size`]). Entries the bus refuses
//!    (`FailedEntryCount`, per-entry `ErrorCode`) and calls that fail with throttling, a 5xx or
//!    a connection error are sent again with exponential backoff and full jitter, within the
//!    invocation's deadline (less a margin) and at most `max_attempts` times.
//! 3. **Record** a key only after the bus accepted its event: a conditional PutItem
//!    (`attribute_not_exists(idempotencyKey)`; "already there" is fine) with the TTL attribute
//!    `expiresAt` = now + `FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS`. A crash (or a failed PutItem)
//!    between PutEvents and PutItem costs a duplicate later, never a loss.
//!
//! **Order.** Entries go in batch order (the hydrator orders versions) in sequential calls, and
//! a call holds at most one version of a resource: a later version waits until the earlier one
//! is accepted, and fails (`earlier_version_failed`) when the earlier one does.
//!
//! **Too large.** An event whose entry would be 256 KB or more is published **reference-only**:
//! `details.entity` replaced by `{resourceType, id}` and `metadata.hydrated: false`, everything
//! else as received; consumers read the resource from the datastore (its `versionId` is in the
//! metadata). ERROR and NOTIFY events have no such form; one that large fails (`too_large`).
//!
//! **Answer.** `{"batchItemFailures": [{"itemIdentifier": <correlationId>}]}`: each SQS message
//! with at least one event not published, once, in batch order, so Pipes retries only those.
//! An event not published that has no correlationId fails the invocation as a whole. ERROR
//! (`HealthLakeSignalFailed`) and NOTIFY events are published like the others.
//!
//! **Logs** (JSON, `fhir_pipes_core::logging`): one summary line per invocation (events,
//! published, duplicates, reference_only, failed, unrecorded, calls, retries, elapsed_ms) and one
//! line per event not published (index, correlationId, eventType, kind). Never an idempotency
//! key or a resource id (they are identifiers), nor any patient data, at any level.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `FHIR_PIPES_PUBLISHER_EVENT_BUS` | required | the custom bus's name or ARN |
//! | `FHIR_PIPES_PUBLISHER_DEDUP_TABLE` | required | the table (key `idempotencyKey` S; TTL on `expiresAt`) |
//! | `FHIR_PIPES_PUBLISHER_SOURCE` | `fhir-pipes.healthlake` | the events' `Source` |
//! | `FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS` | 7 | days a published key is remembered |
//! | `AWS_ENDPOINT_URL`, `AWS_REGION`, … | | the AWS SDK's own (local runs: an emulator's URL) |
//!
//! The function needs `events:PutEvents` on the bus and `dynamodb:BatchGetItem` and
//! `dynamodb:PutItem` on the table.

mod aws;
pub mod bus;
pub mod config;
pub mod dedup;
pub mod lambda;
mod publisher;

pub use aws::CallError;
pub use config::{ConfigError, PublisherConfig};
/// The change events' metadata this crate reads (re-exported for callers and tests).
pub use fhir_pipes_cdc::event;
pub use lambda::{BatchItemFailure, BatchResponse, PublisherError, handle};
pub use publisher::{
    EventOutcome, KIND_DEADLINE, KIND_DEDUP_CHECK_FAILED, KIND_EARLIER_VERSION_FAILED, KIND_INVALID_EVENT,
    KIND_TOO_LARGE, Outcome, PublishReport, Publisher,
};

#[cfg(test)]
mod tests;
