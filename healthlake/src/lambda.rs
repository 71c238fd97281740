//! The Lambda side: the Pipe invokes it with the enriched batch (a JSON array of envelopes); it
//! answers with the events that failed, by correlationId, so the Pipe retries only those.

use std::time::{Duration, Instant};

use fhir_pipes_core::lambda_answer::deadline_from_epoch_ms;
pub use fhir_pipes_core::lambda_answer::{BatchItemFailure, BatchResponse};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing::{Instrument, error, info, info_span};

use crate::{
    HealthLakeConfig,
    writer::{Applied, HealthLakeWriter, WriteReport, log_failures},
};

/// Why a whole invocation fails (the Pipe then retries the whole batch).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The payload is not a JSON array.
    #[error("the HealthLake target's input must be a JSON array of enriched events: {0}")]
    NotABatch(String),
    /// An event failed and has no correlationId to report it by.
    #[error("event {index} failed ({kind}) and has no correlationId to report it by, so the whole batch fails")]
    Unidentified {
        /// Its position in the batch.
        index: usize,
        /// The failure kind.
        kind: &'static str,
    },
}

impl TargetError {
    /// Short name for logs and the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetError::NotABatch(_) => "NotABatch",
            TargetError::Unidentified { .. } => "UnidentifiedFailure",
        }
    }
}

impl From<TargetError> for Diagnostic {
    fn from(error: TargetError) -> Self {
        Diagnostic { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

/// The handler: writes the batch, logs failures (PHI-free) and a summary, answers with the
/// failed events' correlationIds.
pub async fn handle(
    writer: &HealthLakeWriter,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<BatchResponse, TargetError> {
    let span = info_span!("invocation", request_id = %event.context.request_id);
    async {
        let events: Vec<Box<RawValue>> = serde_json::from_str(event.payload.get()).map_err(|e| {
            let error = TargetError::NotABatch(format!("line {} column {}", e.line(), e.column()));
            error!(kind = error.kind(), "invocation failed");
            error
        })?;
        let started = Instant::now();
        let report = writer.write(&events, deadline_from_epoch_ms(event.context.deadline)).await;
        log_failures(&report);
        log_summary(&report, started.elapsed());
        response(&report).inspect_err(|error| error!(kind = error.kind(), %error, "invocation failed"))
    }
    .instrument(span)
    .await
}

/// The failed events' correlationIds, once each, in batch order.
pub fn response(report: &WriteReport) -> Result<BatchResponse, TargetError> {
    let failures = report
        .failures()
        .map(|(index, outcome, failure)| (index, outcome.correlation_id.as_deref(), failure.kind_name()));
    BatchResponse::of_failures(failures).map_err(|(index, kind)| TargetError::Unidentified { index, kind })
}

fn log_summary(report: &WriteReport, elapsed: Duration) {
    info!(
        events = report.outcomes.len(),
        created = report.count(Applied::Created),
        updated = report.count(Applied::Updated),
        deleted = report.count(Applied::Deleted),
        already_gone = report.count(Applied::AlreadyGone),
        failed = report.failures().count(),
        retries = report.retries(),
        elapsed_ms = elapsed.as_millis() as u64,
        "batch written"
    );
}

/// The whole `main` of the `healthlake-target` Lambda: logging, settings from the environment,
/// the standard credential chain, then the handler until the runtime stops it.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_core::logging::init_lambda_logging();
    let writer = HealthLakeConfig::from_env(|name| std::env::var(name).ok())?.build().await?;
    let writer = &writer;
    lambda_runtime::run(service_fn(move |event| handle(writer, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_payload_that_is_not_an_array_fails_the_invocation_with_a_typed_diagnostic() {
        use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
        let credentials = SharedCredentialsProvider::new(Credentials::new("AKID", "secret", None, None, "test"));
        let config = HealthLakeConfig { endpoint: "http://127.0.0.1:9/datastore/d/r4/".into(), ..Default::default() };
        let writer = config.build_with(credentials, "us-east-1".into()).unwrap();
        let payload = RawValue::from_string(r#"{"Records":[]}"#.to_owned()).unwrap();
        let event = LambdaEvent::new(payload, lambda_runtime::Context::default());
        let diagnostic = Diagnostic::from(handle(&writer, event).await.unwrap_err());
        assert_eq!(diagnostic.error_type, "NotABatch");
        assert!(diagnostic.error_message.contains("JSON array"), "{}", diagnostic.error_message);
    }
}
