//! Settings of the enrichment, shared by every resource's Lambda and the CLI.

use std::{fmt, str::FromStr};

use serde::Deserialize;

/// EventBridge Pipes accepts at most 6 MB from an enrichment.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// What to do with a record that cannot be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// Put an error event (with the original record) in its place; the batch succeeds.
    #[default]
    EmitErrorEvent,
    /// Fail the whole invocation, for Pipes retries with `AUTOMATIC_BISECT`.
    FailBatch,
}

impl FromStr for ErrorPolicy {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "emit-error-event" => Ok(ErrorPolicy::EmitErrorEvent),
            "fail-batch" => Ok(ErrorPolicy::FailBatch),
            other => Err(format!("unknown error policy `{other}` (expected emit-error-event or fail-batch)")),
        }
    }
}

impl fmt::Display for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorPolicy::EmitErrorEvent => "emit-error-event",
            ErrorPolicy::FailBatch => "fail-batch",
        })
    }
}

/// How batches are enriched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// The envelope's `source` (e.g. `PatientTable`).
    pub source: String,
    /// Drop a MODIFY whose old and new images map to the same FHIR resource.
    pub skip_unchanged: bool,
    /// What to do with a record that cannot be mapped.
    pub error_policy: ErrorPolicy,
    /// Largest response in bytes; over it the invocation fails.
    pub max_response_bytes: usize,
}

impl EnrichConfig {
    /// Defaults for a resource: source `<ResourceType>Table`.
    pub fn for_resource(resource_type: &str) -> Self {
        Self {
            source: format!("{resource_type}Table"),
            skip_unchanged: true,
            error_policy: ErrorPolicy::EmitErrorEvent,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self::for_resource("Patient")
    }
}
