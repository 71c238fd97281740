//! The Lambda side: the Pipe invokes it with the enriched batch (a JSON array of envelopes); it
//! answers with the events that failed, by correlationId, so the Pipe retries only those.

use std::{
    collections::HashSet,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::value::RawValue;
use tracing::{Instrument, error, info, info_span};

use crate::{
    HealthLakeConfig,
    writer::{Applied, HealthLakeWriter, WriteReport, log_failures},
};

/// The time allowed when the invocation has no deadline (a `Context::default()` in tests).
const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// The partial-failure answer Pipes reads from a Lambda target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The events to retry; empty when all were written.
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One event to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The event's correlationId: the source record's eventID, which Pipes matches.
    pub item_identifier: String,
}

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

/// The invocation's deadline as an [`Instant`]: `deadline_ms` is milliseconds since the epoch
/// (`Context::deadline`), 0 when unknown.
pub(crate) fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    if deadline_ms == 0 {
        return Instant::now() + DEFAULT_BUDGET;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
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
    let mut failures: Vec<BatchItemFailure> = Vec::new();
    let mut listed: HashSet<&str> = HashSet::new();
    for (index, outcome, failure) in report.failures() {
        let Some(id) = &outcome.correlation_id else {
            return Err(TargetError::Unidentified { index, kind: failure.kind_name() });
        };
        if listed.insert(id) {
            failures.push(BatchItemFailure { item_identifier: id.clone() });
        }
    }
    Ok(BatchResponse { batch_item_failures: failures })
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

    #[test]
    fn the_deadline_comes_from_the_context_or_a_default_budget() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = deadline_from_epoch_ms(now_ms + 5_000).saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(3), "{left:?}");
        let passed = deadline_from_epoch_ms(now_ms - 1_000).saturating_duration_since(Instant::now());
        assert_eq!(passed, Duration::ZERO, "a deadline in the past leaves no time");
        let unknown = deadline_from_epoch_ms(0).saturating_duration_since(Instant::now());
        assert!(unknown > DEFAULT_BUDGET - Duration::from_secs(2) && unknown <= DEFAULT_BUDGET, "{unknown:?}");
    }

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
