//! A HealthLake datastore (or any FHIR R4 server under its URL layout) as a target: the same
//! writer as the `healthlake-target` Lambda, given the function's timeout as each delivery's
//! deadline. Events the store refused and ERROR events are permanent failures (dead-lettered
//! with their records); the rest of the failures are retried by the runtime, like Pipes retries
//! the Lambda's `batchItemFailures`. Refused credentials (401/403) stop the run: no event could
//! pass, and dead-lettering them all would only hide that.

use std::time::{Duration, Instant};

use fhir_pipes_healthlake::{HealthLakeConfig, HealthLakeWriter, WriteReport, writer::log_failures};
use serde_json::value::RawValue;

use super::{DeliveryError, Retry};

/// Errors of building the HealthLake target.
pub type HealthLakeError = fhir_pipes_healthlake::ConfigError;

/// Writes events into a FHIR store.
#[derive(Debug)]
pub struct HealthLakeTarget {
    writer: HealthLakeWriter,
    timeout: Duration,
}

impl HealthLakeTarget {
    /// Builds the target with the standard AWS credential chain; each delivery may take `timeout`.
    pub async fn build(config: HealthLakeConfig, timeout: Duration) -> Result<Self, HealthLakeError> {
        Ok(Self { writer: config.build().await?, timeout })
    }

    /// Writes `events`; failures come back by index, those retrying cannot fix marked permanent.
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        let report = self.writer.write(events, Instant::now() + self.timeout).await;
        log_failures(&report);
        delivery_result(&report)
    }
}

/// The report as the runtime's delivery result.
fn delivery_result(report: &WriteReport) -> Result<(), DeliveryError> {
    let (mut failed, mut permanent, mut details) = (Vec::new(), Vec::new(), Vec::new());
    let mut kinds: Vec<&str> = Vec::new();
    for (index, outcome, failure) in report.failures() {
        failed.push(index);
        if !failure.is_retryable() {
            permanent.push(index);
        }
        if !kinds.contains(&failure.kind_name()) {
            kinds.push(failure.kind_name());
        }
        details.push(format!(
            "{}: {}",
            outcome.correlation_id.as_deref().unwrap_or("(no correlationId)"),
            failure.report()
        ));
    }
    if failed.is_empty() {
        return Ok(());
    }
    let denied = report.failures().any(|(_, _, failure)| failure.is_denied());
    let retry = if denied {
        Retry::Stop
    } else if permanent.len() == failed.len() {
        Retry::Permanent
    } else {
        Retry::Retryable
    };
    Err(DeliveryError {
        retry,
        message: format!(
            "{} of {} event(s) not written to the FHIR store ({})",
            failed.len(),
            report.outcomes.len(),
            kinds.join(", ")
        ),
        failed,
        permanent,
        detail: Some(details.join("; ")),
    })
}
