//! Errors of the enrichment: per record (become error events) and per invocation.

use std::{borrow::Cow, fmt};

use serde::Serialize;

use fhir_pipes_core::envelope::ErrorDetails;
use fhir_pipes_mappings::MappingError;

/// Why one record could not become an event. Serialized as `details.error` of an error event.
/// The message never quotes a value from the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// The field at fault: a domain attribute (`birthDate`, `address.zip`) or a record field
    /// (`eventName`, `dynamodb.NewImage`); `(record)` for the record as a whole.
    pub field: Cow<'static, str>,
    /// Machine-readable kind, snake_case (`missing_field`, `wrong_type`, `invalid_date`, …).
    pub kind: &'static str,
    /// Human explanation.
    pub message: String,
}

impl RecordError {
    /// A record-level error.
    pub fn new(field: impl Into<Cow<'static, str>>, kind: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), kind, message: message.into() }
    }
}

impl RecordError {
    /// The error as an envelope's `details.error`, borrowing from it.
    pub fn details(&self) -> ErrorDetails<'_> {
        ErrorDetails {
            field: Cow::Borrowed(&self.field),
            kind: Cow::Borrowed(self.kind),
            message: Cow::Borrowed(&self.message),
        }
    }
}

impl From<MappingError> for RecordError {
    fn from(error: MappingError) -> Self {
        Self { field: error.field.into(), kind: error.kind.as_str(), message: error.message }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {} ({})", self.field, self.message, self.kind)
    }
}

/// Why a whole invocation fails (Pipes then retries the batch, or bisects it).
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The payload is not a JSON array of records.
    #[error(
        "the enrichment input must be a JSON array of DynamoDB stream records (as EventBridge Pipes sends it): {0}"
    )]
    NotABatch(String),
    /// A record failed and the error policy is `fail-batch`.
    #[error(
        "record {index} (eventID {event_id}) cannot be mapped: {error}; the error policy is fail-batch, so the whole batch fails"
    )]
    RecordFailed {
        /// Position of the record in the batch.
        index: usize,
        /// Its eventID, or `-` when it has none.
        event_id: String,
        /// What is wrong.
        error: RecordError,
    },
    /// The response would exceed what Pipes accepts from an enrichment.
    #[error(
        "the enriched batch of {records} records exceeds the {limit}-byte response limit of EventBridge Pipes \
         enrichment (reached {size} bytes after {written} records); lower the Pipe's BatchSize \
         (DynamoDBStreamParameters.BatchSize) so each batch's events fit"
    )]
    ResponseTooLarge {
        /// Records in the batch.
        records: usize,
        /// Records written when the limit was crossed.
        written: usize,
        /// Bytes written so far.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl EnrichError {
    /// Short name for logs, metrics and the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            EnrichError::NotABatch(_) => "NotABatch",
            EnrichError::RecordFailed { .. } => "RecordFailed",
            EnrichError::ResponseTooLarge { .. } => "ResponseTooLarge",
        }
    }
}
