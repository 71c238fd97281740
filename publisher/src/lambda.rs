//! The Lambda side: the Pipe invokes it (REQUEST_RESPONSE) with the hydrator's batch, a JSON
//! array of envelopes; it answers with the SQS messages whose events were not all published, so
//! the Pipe retries only those.

use std::time::{Duration, Instant};

use fhir_pipes_core::lambda_answer::deadline_from_epoch_ms;
pub use fhir_pipes_core::lambda_answer::{BatchItemFailure, BatchResponse};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing::{Instrument, error, info, info_span};

use crate::{Publisher, PublisherConfig, bus::EventBus, dedup::DedupTable, publisher::PublishReport};

/// Why a whole invocation fails (the Pipe then retries the whole batch).
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    /// The payload is not a JSON array.
    #[error("the publisher's input must be a JSON array of change events: {0}")]
    NotABatch(String),
    /// An event was not published and has no correlationId to report it by.
    #[error(
        "event {index} was not published ({kind}) and has no correlationId to report it by, so the whole batch fails"
    )]
    Unidentified {
        /// Its position in the batch.
        index: usize,
        /// The failure kind.
        kind: String,
    },
}

impl PublisherError {
    /// Short name for logs and the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            PublisherError::NotABatch(_) => "NotABatch",
            PublisherError::Unidentified { .. } => "UnidentifiedFailure",
        }
    }
}

impl From<PublisherError> for Diagnostic {
    fn from(error: PublisherError) -> Self {
        Diagnostic { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

/// The handler: publishes the batch, logs each failed event and a summary (PHI-free: counts,
/// correlationIds, eventTypes, error kinds; never an idempotency key or a resource id), answers
/// with the messages to retry.
pub async fn handle<B: EventBus, T: DedupTable>(
    publisher: &Publisher<B, T>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<BatchResponse, PublisherError> {
    let span = info_span!("invocation", request_id = %event.context.request_id);
    async {
        let events: Vec<Box<RawValue>> = serde_json::from_str(event.payload.get()).map_err(|e| {
            let error = PublisherError::NotABatch(format!("line {} column {}", e.line(), e.column()));
            error!(kind = error.kind(), "invocation failed");
            error
        })?;
        let started = Instant::now();
        let report = publisher.publish(&events, deadline_from_epoch_ms(event.context.deadline)).await;
        log_failures(&report);
        log_summary(&report, started.elapsed());
        response(&report).inspect_err(|error| error!(kind = error.kind(), %error, "invocation failed"))
    }
    .instrument(span)
    .await
}

/// The correlationIds of the events not published, once each, in batch order.
pub fn response(report: &PublishReport) -> Result<BatchResponse, PublisherError> {
    let failures = report.failures().map(|(index, outcome, kind)| (index, outcome.correlation_id.as_deref(), kind));
    BatchResponse::of_failures(failures)
        .map_err(|(index, kind)| PublisherError::Unidentified { index, kind: kind.to_owned() })
}

/// One line per event not published.
pub fn log_failures(report: &PublishReport) {
    for (index, outcome, kind) in report.failures() {
        error!(
            index,
            correlation_id = outcome.correlation_id.as_deref().unwrap_or(""),
            event_type = outcome.event_type.as_deref().unwrap_or(""),
            kind,
            "event not published"
        );
    }
}

fn log_summary(report: &PublishReport, elapsed: Duration) {
    info!(
        events = report.outcomes.len(),
        published = report.published(),
        duplicates = report.duplicates(),
        reference_only = report.reference_only(),
        failed = report.failures().count(),
        unrecorded = report.unrecorded,
        calls = report.calls,
        retries = report.retries,
        elapsed_ms = elapsed.as_millis() as u64,
        "batch published"
    );
}

/// The whole `main` of the `healthlake-publisher` Lambda: logging, settings from the
/// environment, the SDK's default chain, then the handler until the runtime stops it.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_core::logging::init_lambda_logging();
    let publisher = PublisherConfig::from_env(|name| std::env::var(name).ok())?.build().await?;
    let publisher = &publisher;
    // Boxed: the handler's future nested in the runtime's is too deep a type for the compiler.
    lambda_runtime::run(service_fn(move |event| Box::pin(handle(publisher, event)))).await
}
