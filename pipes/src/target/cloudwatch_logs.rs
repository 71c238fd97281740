//! CloudWatch Logs as a target: each event is one log event of a log stream, created on demand.
//! PutLogEvents is called within its limits (10,000 events and 1,048,576 bytes per call, an event
//! counting its UTF-8 bytes plus 26; at most 256 KB per event) with one timestamp per delivery,
//! so timestamps never decrease. One attempt per call: the runtime retries.

use aws_sdk_cloudwatchlogs::{Client, error::ProvideErrorMetadata, types::InputLogEvent};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DeliveryError, Retry};
use crate::aws::{SdkRetries, classify, sdk_config};

/// Most events in one PutLogEvents call.
pub const MAX_EVENTS_PER_CALL: usize = 10_000;
/// Most bytes in one PutLogEvents call (sum of event sizes).
pub const MAX_BYTES_PER_CALL: usize = 1_048_576;
/// Most bytes of one event (its size included).
pub const MAX_EVENT_BYTES: usize = 262_144;
/// What CloudWatch Logs adds to each event's UTF-8 length when it counts sizes.
pub const EVENT_OVERHEAD_BYTES: usize = 26;

/// Settings of the CloudWatch Logs target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchLogsConfig {
    /// The log group; it must exist (the template creates it) unless `create_log_group` is set.
    pub log_group_name: String,
    /// The log stream, created when missing (default `fhir-pipes-local`).
    #[serde(default = "default_log_stream_name")]
    pub log_stream_name: String,
    /// Endpoint to call instead of AWS (e.g. a moto server); static test credentials are used
    /// when none are configured.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// AWS region; the SDK's region chain when absent (`us-east-1` with an `endpoint_url`).
    #[serde(default)]
    pub region: Option<String>,
    /// Create the log group when it is missing (also after it disappears, e.g. a restarted local
    /// endpoint) instead of failing the delivery permanently.
    #[serde(default)]
    pub create_log_group: bool,
}

fn default_log_stream_name() -> String {
    "fhir-pipes-local".to_owned()
}

/// Errors of building the CloudWatch Logs target.
#[derive(Debug, thiserror::Error)]
pub enum CloudWatchLogsError {
    /// The settings are unusable.
    #[error("invalid cloudwatch logs target settings: {0}")]
    Config(String),
}

impl CloudWatchLogsConfig {
    /// Builds the target (the log stream is created at the first delivery).
    pub async fn build(self) -> Result<CloudWatchLogsTarget, CloudWatchLogsError> {
        if self.log_group_name.is_empty() || self.log_stream_name.is_empty() {
            return Err(CloudWatchLogsError::Config("log_group_name and log_stream_name must not be empty".to_owned()));
        }
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Disabled).await;
        Ok(CloudWatchLogsTarget {
            client: Client::new(&sdk),
            log_group_name: self.log_group_name,
            log_stream_name: self.log_stream_name,
            create_log_group: self.create_log_group,
            stream_ready: false,
        })
    }
}

/// The CloudWatch Logs target; see the module documentation.
#[derive(Debug)]
pub struct CloudWatchLogsTarget {
    client: Client,
    log_group_name: String,
    log_stream_name: String,
    create_log_group: bool,
    stream_ready: bool,
}

impl CloudWatchLogsTarget {
    /// Writes the events, in order, in as few PutLogEvents calls as the limits allow. Stops at
    /// the first failed call: its events and every later one are in `failed`. Events over
    /// 256 KB are `Permanent` failures by index (the others are still delivered).
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        let (chunks, oversized) = plan_chunks(events.iter().map(|e| e.get().len()));
        if !chunks.is_empty() && !self.stream_ready {
            // Every event failed (an empty `failed`), those too large for good.
            self.ensure_stream().await.map_err(|e| e.with_permanent(&oversized))?;
        }
        let timestamp = now_millis();
        let mut rejected: Vec<usize> = Vec::new();
        for (number, chunk) in chunks.iter().enumerate() {
            let log_events = chunk
                .iter()
                .map(|&i| InputLogEvent::builder().timestamp(timestamp).message(events[i].get()).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DeliveryError::permanent(format!("PutLogEvents: request could not be built: {e}")))?;
            let result = self
                .client
                .put_log_events()
                .log_group_name(&self.log_group_name)
                .log_stream_name(&self.log_stream_name)
                .set_log_events(Some(log_events))
                .send()
                .await;
            match result {
                Ok(output) => {
                    if let Some(info) = output.rejected_log_events_info() {
                        rejected.extend(rejected_indices(info, chunk));
                    }
                }
                Err(error) => {
                    let failure = classify("PutLogEvents", &error);
                    let retry = if error.code() == Some("ResourceNotFoundException") {
                        // The stream (or group) was deleted: create it again on the next attempt.
                        self.stream_ready = false;
                        Retry::Retryable
                    } else {
                        Retry::from_call(&failure)
                    };
                    let permanent: Vec<usize> = oversized.iter().chain(&rejected).copied().collect();
                    return Err(
                        DeliveryError::call_failed(failure, retry, &chunks, number, &[]).with_permanent(&permanent)
                    );
                }
            }
        }
        let mut failed = oversized;
        failed.extend(rejected);
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_unstable();
        let message = format!(
            "{} events over {MAX_EVENT_BYTES} bytes or rejected by CloudWatch Logs (timestamp out of range)",
            failed.len()
        );
        Err(DeliveryError::of(Retry::Permanent, failed, message))
    }

    /// CreateLogStream; an existing stream is fine, a missing log group is a permanent error
    /// (or is created first with `create_log_group`).
    async fn ensure_stream(&mut self) -> Result<(), DeliveryError> {
        let mut result = self.create_log_stream().await;
        if self.create_log_group && result.as_ref().is_err_and(|e| e.code() == Some("ResourceNotFoundException")) {
            self.ensure_log_group().await?;
            result = self.create_log_stream().await;
        }
        match result {
            Ok(_) => {}
            Err(error) if error.code() == Some("ResourceAlreadyExistsException") => {}
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                return Err(DeliveryError::permanent(format!(
                    "log group {} does not exist: create it (the template's log group) first, or run with --create-target",
                    self.log_group_name
                )));
            }
            Err(error) => {
                return Err(DeliveryError::from_call(classify("CreateLogStream", &error)));
            }
        }
        tracing::debug!(log_group = %self.log_group_name, log_stream = %self.log_stream_name, "log stream ready");
        self.stream_ready = true;
        Ok(())
    }

    async fn create_log_stream(
        &self,
    ) -> Result<
        aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamOutput,
        aws_sdk_cloudwatchlogs::error::SdkError<
            aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError,
        >,
    > {
        self.client
            .create_log_stream()
            .log_group_name(&self.log_group_name)
            .log_stream_name(&self.log_stream_name)
            .send()
            .await
    }

    /// CreateLogGroup; one that exists already (made meanwhile) is fine.
    async fn ensure_log_group(&self) -> Result<(), DeliveryError> {
        match self.client.create_log_group().log_group_name(&self.log_group_name).send().await {
            Ok(_) => {
                tracing::info!(log_group = %self.log_group_name, "log group created");
                Ok(())
            }
            Err(error) if error.code() == Some("ResourceAlreadyExistsException") => Ok(()),
            Err(error) => Err(DeliveryError::from_call(classify("CreateLogGroup", &error))),
        }
    }
}

/// Splits events (given by their UTF-8 lengths) into PutLogEvents calls of at most
/// [`MAX_EVENTS_PER_CALL`] events and [`MAX_BYTES_PER_CALL`] bytes, keeping their order. Returns
/// the calls (indices of events) and the indices of events too large to send at all.
pub fn plan_chunks(lengths: impl Iterator<Item = usize>) -> (Vec<Vec<usize>>, Vec<usize>) {
    let sizes = lengths.map(|length| length + EVENT_OVERHEAD_BYTES);
    super::plan_calls(sizes, MAX_EVENTS_PER_CALL, MAX_BYTES_PER_CALL, MAX_EVENT_BYTES)
}

/// The indices (into the delivered slice) of the events of `chunk` that CloudWatch Logs
/// rejected as too old, too new or expired.
fn rejected_indices(info: &aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo, chunk: &[usize]) -> Vec<usize> {
    let mut rejected = Vec::new();
    let below = info.too_old_log_event_end_index().max(info.expired_log_event_end_index());
    if let Some(end) = below {
        rejected.extend(chunk.iter().take(end.max(0) as usize).copied());
    }
    if let Some(start) = info.too_new_log_event_start_index() {
        rejected.extend(chunk.iter().skip(start.max(0) as usize).copied());
    }
    rejected.sort_unstable();
    rejected.dedup();
    rejected
}

fn now_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_at_ten_thousand_events() {
        let (chunks, oversized) = plan_chunks(std::iter::repeat_n(2, 10_001));
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![10_000, 1]);
        assert_eq!(chunks[1], vec![10_000]);
        assert!(oversized.is_empty());
    }

    #[test]
    fn chunks_at_one_mebibyte_counting_the_overhead() {
        // 4 events of exactly a quarter of the limit fill one call; the fifth starts another.
        let quarter = MAX_BYTES_PER_CALL / 4 - EVENT_OVERHEAD_BYTES;
        let (chunks, _) = plan_chunks(std::iter::repeat_n(quarter, 5));
        assert_eq!(chunks, vec![vec![0, 1, 2, 3], vec![4]]);
        // 5 × 200,026 bytes leave 48,446 bytes: an event of 48,420 fits, one byte more does not.
        let (chunks, _) = plan_chunks([200_000, 200_000, 200_000, 200_000, 200_000, 48_420].into_iter());
        assert_eq!(chunks.len(), 1);
        let (chunks, _) = plan_chunks([200_000, 200_000, 200_000, 200_000, 200_000, 48_421].into_iter());
        assert_eq!(chunks, vec![vec![0, 1, 2, 3, 4], vec![5]]);
    }

    #[test]
    fn an_event_over_256_kb_is_set_aside_by_index() {
        let largest = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;
        let (chunks, oversized) = plan_chunks([1, largest + 1, largest, 1].into_iter());
        assert_eq!(oversized, vec![1]);
        assert_eq!(chunks.concat(), vec![0, 2, 3]);
    }

    #[test]
    fn rejected_ranges_map_to_slice_indices() {
        let info = aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo::builder()
            .too_old_log_event_end_index(2)
            .too_new_log_event_start_index(4)
            .build();
        assert_eq!(rejected_indices(&info, &[10, 11, 12, 13, 14, 15]), vec![10, 11, 14, 15]);
    }
}
