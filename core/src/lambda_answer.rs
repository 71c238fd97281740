//! What the Lambdas of a pipe's target answer, and the invocation's deadline: shared by the
//! HealthLake target, the change publisher and the local runtime that reads their answers.

use std::{
    collections::HashSet,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// The time allowed when an invocation has no deadline (a `Context::default()` in tests).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// The partial-failure answer Pipes reads from a Lambda target:
/// `{"batchItemFailures":[{"itemIdentifier":"<correlationId>"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The records to retry; empty when all went through.
    #[serde(default)]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One record to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The event's correlationId: the id of the source record Pipes matches (a stream record's
    /// eventID, an SQS messageId).
    pub item_identifier: String,
}

impl BatchResponse {
    /// The answer naming the correlationIds of `failures` (index in the batch, correlationId,
    /// why), once each, in batch order; the first failure without a correlationId instead,
    /// since it cannot be reported and the whole invocation must fail.
    pub fn of_failures<'a, K>(
        failures: impl IntoIterator<Item = (usize, Option<&'a str>, K)>,
    ) -> Result<Self, (usize, K)> {
        let mut batch_item_failures = Vec::new();
        let mut listed: HashSet<&str> = HashSet::new();
        for (index, correlation_id, kind) in failures {
            let Some(id) = correlation_id else { return Err((index, kind)) };
            if listed.insert(id) {
                batch_item_failures.push(BatchItemFailure { item_identifier: id.to_owned() });
            }
        }
        Ok(Self { batch_item_failures })
    }
}

/// The invocation's deadline as an [`Instant`]: `deadline_ms` is milliseconds since the epoch
/// (`lambda_runtime::Context::deadline`), 0 when unknown ([`DEFAULT_BUDGET`] from now).
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    if deadline_ms == 0 {
        return Instant::now() + DEFAULT_BUDGET;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named_once_in_batch_order_and_an_unnamed_one_fails_the_answer() {
        let answer =
            BatchResponse::of_failures([(0, Some("m2"), "a"), (3, Some("m1"), "b"), (4, Some("m2"), "c")]).unwrap();
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"m2"},{"itemIdentifier":"m1"}]}"#
        );
        assert_eq!(BatchResponse::of_failures([(0, Some("m1"), "a"), (2, None, "b")]), Err((2, "b")));
        let read: BatchResponse = serde_json::from_str(r#"{"batchItemFailures":[{"itemIdentifier":"x"}]}"#).unwrap();
        assert_eq!(read.batch_item_failures[0].item_identifier, "x");
    }

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
}
