//! The versioned event envelope, compatible with the Go `PatientEvent`:
//! `{"version","source","eventType","correlationId","details":{"command",…}}` plus additive
//! `metadata`.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{enrich::DeleteEntity, error::RecordError};

/// Envelope format version.
pub const VERSION: &str = "1.0";

/// One event handed to the Pipe's target.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope<'a, R> {
    pub version: &'static str,
    pub source: &'a str,
    pub event_type: &'a str,
    /// The stream record's eventID (null only for a record that has none).
    pub correlation_id: Option<&'a str>,
    pub details: Command<'a, R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
}

/// `details`: what the target should do.
#[derive(Serialize)]
#[serde(tag = "command", rename_all = "UPPERCASE")]
pub(crate) enum Command<'a, R> {
    /// Create or update `entity`.
    Put { entity: R },
    /// Delete `entity` (the full old resource, or just its type and id).
    Delete { entity: DeleteEntity<R> },
    /// The record could not be mapped: what is wrong, and the record itself, unchanged.
    Error { error: RecordError, record: &'a RawValue },
}

/// A resource's identity, the entity of a DELETE when only the keys are known.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourceRef {
    pub resource_type: &'static str,
    pub id: String,
}

/// Where the change came from.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata<'a> {
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_creation_date_time: Option<&'a serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_table: Option<&'a str>,
    /// Set when DynamoDB's time-to-live deleted the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_delete: Option<bool>,
}
