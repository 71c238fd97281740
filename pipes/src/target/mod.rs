//! Targets: where the local runtime delivers the enriched events.

pub mod ndjson;

use std::fmt;

use crate::aws::CallFailure;

pub mod cloudwatch_logs;
pub mod eventbridge;
pub mod healthlake;
pub mod lambda;
pub mod sqs_dead_letter;

/// Whether a failed delivery may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, 5xx, a connection error: retry with backoff.
    Retryable,
    /// The request itself is wrong (4xx, an event too large): retrying cannot help.
    Permanent,
    /// The target cannot take any event until someone acts (the output pipe was closed, the
    /// credentials were refused): the run stops, leaving the batch unfinished and its
    /// checkpoint where it was. Its events are not dead-lettered; a rerun resumes at the batch
    /// (and writes again what of it was delivered or dead-lettered before, e.g. expired records).
    Stop,
}

/// A delivery that did not (fully) succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Whether to retry.
    pub retry: Retry,
    /// Indices (into the delivered slice) of the events that failed; empty means all of them.
    /// The runtime re-delivers only these (e.g. EventBridge `FailedEntryCount`).
    pub failed: Vec<usize>,
    /// Indices among `failed` that retrying cannot fix even when `retry` is `Retryable` for the
    /// others (e.g. a resource the FHIR store refused): they are dead-lettered at once.
    pub permanent: Vec<usize>,
    /// What went wrong, for logs: error codes and counts, never event content.
    pub message: String,
    /// More for the dead letter only, never logged: e.g. the store's diagnostics, which may
    /// quote values of the records the letter carries anyway.
    pub detail: Option<String>,
}

impl DeliveryError {
    /// These events (indices; empty = all) failed.
    pub fn of(retry: Retry, failed: Vec<usize>, message: impl fmt::Display) -> Self {
        Self { retry, failed, permanent: Vec::new(), message: message.to_string(), detail: None }
    }

    /// Every event failed for a reason worth retrying.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::of(Retry::Retryable, Vec::new(), message)
    }

    /// Every event failed for a reason retrying cannot fix.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::of(Retry::Permanent, Vec::new(), message)
    }

    /// Every event failed in a call to the AWS API.
    pub(crate) fn from_call(failure: CallFailure) -> Self {
        Self::of(Retry::from_call(&failure), Vec::new(), failure.summary)
    }

    /// Call `number` (0-based) of a delivery split over `calls` failed: its events and every
    /// later call's are undelivered, with `also` (events that failed before, or could not be sent).
    pub(crate) fn call_failed(
        failure: CallFailure,
        retry: Retry,
        calls: &[Vec<usize>],
        number: usize,
        also: &[usize],
    ) -> Self {
        let mut failed: Vec<usize> = calls[number..].iter().flatten().chain(also).copied().collect();
        failed.sort_unstable();
        failed.dedup();
        let message = format!(
            "{} after {number} of {} calls; {} events not delivered",
            failure.summary,
            calls.len(),
            failed.len()
        );
        Self::of(retry, failed, message)
    }

    /// Also failed: `indices`, which no retry can deliver (e.g. events over a size limit), so
    /// they are dead-lettered at once even when the others are worth retrying.
    pub(crate) fn with_permanent(mut self, indices: &[usize]) -> Self {
        if !self.failed.is_empty() {
            self.failed.extend(indices);
            self.failed.sort_unstable();
            self.failed.dedup();
        }
        self.permanent.extend(indices);
        self
    }
}

impl Retry {
    /// Whether an AWS API call's failure may pass on a retry, or stops the run.
    pub(crate) fn from_call(failure: &CallFailure) -> Self {
        match failure {
            CallFailure { denied: true, .. } => Retry::Stop,
            CallFailure { retryable: true, .. } => Retry::Retryable,
            CallFailure { .. } => Retry::Permanent,
        }
    }
}

/// Splits items (given by their sizes) into calls of at most `max_items` items and `max_bytes`
/// bytes, keeping their order. Returns the calls (indices of items) and the indices of items
/// larger than `max_item_bytes`, which no call can carry.
pub(crate) fn plan_calls(
    sizes: impl Iterator<Item = usize>,
    max_items: usize,
    max_bytes: usize,
    max_item_bytes: usize,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut oversized = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_bytes = 0;
    for (index, size) in sizes.enumerate() {
        if size > max_item_bytes {
            oversized.push(index);
            continue;
        }
        if current.len() == max_items || current_bytes + size > max_bytes {
            calls.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(index);
        current_bytes += size;
    }
    if !current.is_empty() {
        calls.push(current);
    }
    (calls, oversized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_permanent_adds_the_indices_to_the_failed_ones_and_marks_only_them_permanent() {
        let error = DeliveryError::of(Retry::Retryable, vec![3, 1], "throttled").with_permanent(&[2, 3]);
        assert_eq!((error.failed, error.permanent, error.retry), (vec![1, 2, 3], vec![2, 3], Retry::Retryable));
    }

    #[test]
    fn with_permanent_keeps_an_all_failed_error_all_failed() {
        let error = DeliveryError::retryable("connection refused").with_permanent(&[4]);
        assert_eq!((error.failed, error.permanent), (vec![], vec![4]));
    }
}
