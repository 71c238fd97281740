//! A Lambda function of the template as the target (e.g. the `healthlake-publisher`): its real
//! binary runs behind a local Lambda Runtime API with the function's environment, and is invoked
//! `REQUEST_RESPONSE` with the batch of events, as Pipes invokes it. Its answer's
//! `batchItemFailures` (`itemIdentifier` = an event's `correlationId`, i.e. the source record's
//! id) mark exactly those events failed, to be retried or dead-lettered (or, with an SQS source,
//! left in the queue); a failed invocation fails the whole batch.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DeliveryError, Retry};
use crate::{
    runtime::{InvokeFailure, LambdaApiError, LocalLambda},
    template::FunctionDefinition,
};

/// Settings of a Lambda target.
#[derive(Debug, Clone)]
pub struct LambdaTargetConfig {
    /// The template's function (its logical id, environment and timeout).
    pub function: FunctionDefinition,
    /// The function's Lambda binary (e.g. `target/debug/healthlake-publisher`).
    pub binary: PathBuf,
    /// Set over the function's environment (the run's AWS region, endpoint and credentials).
    pub extra_environment: Vec<(String, String)>,
}

/// Errors of building a Lambda target.
#[derive(Debug, thiserror::Error)]
pub enum LambdaTargetError {
    /// The binary cannot be started behind the local Runtime API.
    #[error("target function {function}: {source}")]
    Start {
        /// The function's logical id.
        function: String,
        /// Why.
        source: LambdaApiError,
    },
}

impl LambdaTargetConfig {
    /// Starts the binary behind a local Runtime API.
    pub async fn build(self) -> Result<LambdaTarget, LambdaTargetError> {
        let mut environment: BTreeMap<String, String> = self.function.environment.clone();
        environment.extend(self.extra_environment);
        let lambda = LocalLambda::start(&self.binary, &self.function.logical_id, environment, self.function.timeout)
            .await
            .map_err(|source| LambdaTargetError::Start { function: self.function.logical_id.clone(), source })?;
        Ok(LambdaTarget { function: self.function.logical_id, lambda: Box::new(lambda) })
    }
}

/// A Lambda binary invoked synchronously with each batch of events.
#[derive(Debug)]
pub struct LambdaTarget {
    function: String,
    lambda: Box<LocalLambda>,
}

/// The answer of a function that reports partial batch failures.
#[derive(Deserialize)]
struct PartialFailures {
    #[serde(rename = "batchItemFailures", default)]
    batch_item_failures: Option<Vec<ItemFailure>>,
}

#[derive(Deserialize)]
struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    item_identifier: Option<String>,
}

/// What names the record an event came from (its `correlationId`; without an enrichment, the
/// record's own `messageId` or `eventID`).
#[derive(Deserialize)]
struct EventId<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "messageId", borrow)]
    message_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
}

impl LambdaTarget {
    /// Invokes the function with `events`; the events it reports failed come back by index.
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        let mut payload = String::with_capacity(2 + events.iter().map(|e| e.get().len() + 1).sum::<usize>());
        payload.push('[');
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                payload.push(',');
            }
            payload.push_str(event.get());
        }
        payload.push(']');
        let answer = match self.lambda.invoke(Bytes::from(payload)).await {
            Ok(answer) => answer,
            Err(InvokeFailure::Function(error)) => {
                let mut failure = DeliveryError::retryable(format!(
                    "target function {} failed with {}",
                    self.function, error.error_type
                ));
                // The function's own message may quote a value: only for the dead letter.
                failure.detail = Some(error.to_string());
                return Err(failure);
            }
            Err(InvokeFailure::Runtime(message)) => {
                return Err(DeliveryError::retryable(format!("target function {}: {message}", self.function)));
            }
        };
        failed_items(&self.function, &answer, events)
    }

    /// Stops the binary.
    pub async fn shutdown(&mut self) {
        self.lambda.shutdown().await;
    }
}

/// The events an answer names in `batchItemFailures`. An answer without them (any other JSON,
/// or none) is a success, as for Pipes; an identifier that names no event fails the whole batch,
/// so nothing is lost.
fn failed_items(function: &str, answer: &[u8], events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
    let failures = match serde_json::from_slice::<PartialFailures>(answer) {
        Ok(PartialFailures { batch_item_failures: Some(failures) }) if !failures.is_empty() => failures,
        _ => return Ok(()),
    };
    let mut indices: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Ok(id) = serde_json::from_str::<EventId<'_>>(event.get())
            && let Some(id) = id.correlation_id.or(id.message_id).or(id.event_id)
        {
            indices.entry(id.into_owned()).or_default().push(index);
        }
    }
    let mut failed = Vec::new();
    for failure in &failures {
        match failure.item_identifier.as_deref().and_then(|id| indices.get(id)) {
            Some(found) => failed.extend(found),
            None => {
                return Err(DeliveryError::retryable(format!(
                    "target function {function} reported a failure whose itemIdentifier names no event of the \
                     batch: the whole batch failed"
                )));
            }
        }
    }
    failed.sort_unstable();
    failed.dedup();
    let message = format!("target function {function} reported {} of {} event(s) failed", failed.len(), events.len());
    Err(DeliveryError::of(Retry::Retryable, failed, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ids: &[&str]) -> Vec<Box<RawValue>> {
        ids.iter().map(|id| RawValue::from_string(format!(r#"{{"correlationId":"{id}","x":1}}"#)).unwrap()).collect()
    }

    #[test]
    fn batch_item_failures_mark_exactly_the_events_they_name() {
        let batch = events(&["m1", "m2", "m3", "m2"]);
        assert!(failed_items("F", br#"{"batchItemFailures":[]}"#, &batch).is_ok());
        assert!(failed_items("F", br#"null"#, &batch).is_ok());
        assert!(failed_items("F", b"", &batch).is_ok());
        let error = failed_items("F", br#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#, &batch).unwrap_err();
        assert_eq!((error.failed, error.retry), (vec![1, 3], Retry::Retryable));
        let error = failed_items("F", br#"{"batchItemFailures":[{"itemIdentifier":"nope"}]}"#, &batch).unwrap_err();
        assert!(error.failed.is_empty(), "all failed");
        let records = [RawValue::from_string(r#"{"messageId":"q1"}"#.to_owned()).unwrap()];
        let error = failed_items("F", br#"{"batchItemFailures":[{"itemIdentifier":"q1"}]}"#, &records).unwrap_err();
        assert_eq!(error.failed, [0]);
    }
}
