//! An SQS queue as a source (AWS, or a moto server through `endpoint_url`), read as an
//! EventBridge Pipe reads one: ReceiveMessage (at most 10 messages a call) until the batch holds
//! `BatchSize` messages or `MaximumBatchingWindowInSeconds` has passed, messages handed over in
//! the shape Pipes gives the enrichment ([`PipesSqsMessage`]), and deleted only once their batch
//! is done ([`SqsQueueSource::complete_batch`]). A message that failed is left in the queue: it
//! comes back after the visibility timeout, and the queue's redrive policy moves it to the
//! dead-letter queue after `maxReceiveCount` receives. There is no checkpoint: the queue is the
//! state.
//!
//! Message bodies are patient data: only message ids and counts are ever logged.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use aws_sdk_sqs::{
    Client,
    types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName},
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{debug, warn};

use super::SourceBatch;
use crate::aws::{SdkRetries, classify, sdk_config};

/// Most messages one ReceiveMessage call returns.
pub const RECEIVE_LIMIT: usize = 10;
/// The longest long poll SQS allows.
const LONG_POLL_SECS: u64 = 20;

/// Settings of the SQS source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsQueueConfig {
    /// The queue's URL. Give it or `queue_name`.
    #[serde(default)]
    pub queue_url: Option<String>,
    /// The queue's name, resolved with GetQueueUrl.
    #[serde(default)]
    pub queue_name: Option<String>,
    /// Most messages per batch (the Pipe's `BatchSize`, 1 to 10,000; default 10).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to gather messages before handing over a batch smaller than `batch_size` (the
    /// Pipe's `MaximumBatchingWindowInSeconds`, 0 to 300; 0: hand over what one receive got).
    #[serde(default)]
    pub maximum_batching_window_in_seconds: u64,
    /// Endpoint to call instead of AWS (e.g. a moto server); static test credentials are used
    /// when none are configured.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// AWS region; the SDK's region chain when absent (`us-east-1` with an `endpoint_url`).
    #[serde(default)]
    pub region: Option<String>,
    /// End (`next_batch` returns `None`) when a receive, waiting as long as the batching window
    /// (at least 1 s), finds nothing: for scripted runs and tests. Otherwise keep long-polling.
    #[serde(default)]
    pub stop_when_idle: bool,
}

fn default_batch_size() -> usize {
    10
}

/// Errors of the SQS source. After an error the source keeps its state: messages received and
/// not deleted come back after the visibility timeout.
#[derive(Debug, thiserror::Error)]
pub enum SqsSourceError {
    /// The settings are unusable.
    #[error("invalid sqs source settings: {0}")]
    Config(String),
    /// The queue does not exist.
    #[error("queue {queue} does not exist: create it, or give --queue-url")]
    NoQueue {
        /// The queue's name.
        queue: String,
    },
    /// An AWS call failed (after the SDK's own retries).
    #[error("{summary} (queue {queue})")]
    Call {
        /// The queue.
        queue: String,
        /// The operation, error code and HTTP status.
        summary: String,
        /// Throttling, 5xx or a connection error: trying again later may succeed.
        retryable: bool,
    },
}

/// One SQS message as EventBridge Pipes hands it to the enrichment (the Lambda SQS event
/// record shape).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipesSqsMessage<'a> {
    /// The message id: what partial batch failures name.
    pub message_id: &'a str,
    /// The handle a delete needs.
    pub receipt_handle: &'a str,
    /// The body, as sent.
    pub body: &'a str,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
    /// `ApproximateFirstReceiveTimestamp`, …), all strings.
    pub attributes: BTreeMap<&'a str, &'a str>,
    /// Message attributes, `{stringValue | binaryValue (base64), stringListValues,
    /// binaryListValues, dataType}` each.
    pub message_attributes: BTreeMap<&'a str, PipesMessageAttribute<'a>>,
    /// Hex MD5 of the body.
    pub md5_of_body: &'a str,
    /// Hex MD5 of the message attributes, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5_of_message_attributes: Option<&'a str>,
    /// Always `aws:sqs`.
    pub event_source: &'static str,
    /// The queue's ARN.
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: &'a str,
    /// The queue's region.
    pub aws_region: &'a str,
}

/// One message attribute in the Pipes (Lambda) shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipesMessageAttribute<'a> {
    /// A String or Number attribute's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value: Option<&'a str>,
    /// A Binary attribute's value, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
    /// Always empty (reserved by SQS).
    pub string_list_values: Vec<&'a str>,
    /// Always empty (reserved by SQS).
    pub binary_list_values: Vec<String>,
    /// `String`, `Number`, `Binary`, or a custom type.
    pub data_type: &'a str,
}

impl SqsQueueConfig {
    /// Checks the settings and builds the source: resolves the queue URL (GetQueueUrl for a
    /// name) and reads its ARN (GetQueueAttributes).
    pub async fn build(self) -> Result<SqsQueueSource, SqsSourceError> {
        super::check_batching(self.batch_size, self.maximum_batching_window_in_seconds)
            .map_err(SqsSourceError::Config)?;
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Standard).await;
        let client = Client::new(&sdk);
        let queue_url = match (self.queue_url, self.queue_name) {
            (Some(url), None) => url,
            (None, Some(name)) => match client.get_queue_url().queue_name(&name).send().await {
                Ok(found) => found.queue_url().unwrap_or_default().to_owned(),
                Err(error) => {
                    let failure = classify("GetQueueUrl", &error);
                    if failure.summary.contains("NonExistentQueue") || failure.summary.contains("QueueDoesNotExist") {
                        return Err(SqsSourceError::NoQueue { queue: name });
                    }
                    return Err(SqsSourceError::Call {
                        queue: name,
                        summary: failure.summary,
                        retryable: failure.retryable,
                    });
                }
            },
            _ => return Err(SqsSourceError::Config("give exactly one of queue_url and queue_name".to_owned())),
        };
        let attributes = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| call_failed("GetQueueAttributes", &queue_url, &error))?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| SqsSourceError::Config(format!("queue {queue_url} has no QueueArn")))?;
        let region = queue_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_default();
        let queue_name = queue_arn.rsplit(':').next().unwrap_or_default().to_owned();
        Ok(SqsQueueSource {
            client,
            queue_url,
            queue_name,
            queue_arn,
            region,
            batch_size: self.batch_size,
            batching_window: Duration::from_secs(self.maximum_batching_window_in_seconds),
            stop_when_idle: self.stop_when_idle,
            in_flight: Vec::new(),
            released: HashSet::new(),
            deleted: 0,
            returned: 0,
        })
    }
}

fn call_failed<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &str,
    queue: &str,
    error: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> SqsSourceError {
    let failure = classify(operation, error);
    SqsSourceError::Call { queue: queue.to_owned(), summary: failure.summary, retryable: failure.retryable }
}

/// A received message the runtime has not finished with.
#[derive(Debug)]
struct InFlight {
    message_id: String,
    receipt_handle: String,
}

/// Reads an SQS queue in batches.
#[derive(Debug)]
pub struct SqsQueueSource {
    client: Client,
    queue_url: String,
    queue_name: String,
    queue_arn: String,
    region: String,
    batch_size: usize,
    batching_window: Duration,
    stop_when_idle: bool,
    /// The messages of the batch handed out last, until [`SqsQueueSource::complete_batch`].
    in_flight: Vec<InFlight>,
    /// Message ids of the batch in flight that failed: not deleted.
    released: HashSet<String>,
    deleted: usize,
    returned: usize,
}

impl SqsQueueSource {
    /// The queue's ARN (`eventSourceARN` of its messages).
    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// Messages deleted so far.
    pub fn deleted(&self) -> usize {
        self.deleted
    }

    /// Messages left in the queue so far (their batch or they failed).
    pub fn returned(&self) -> usize {
        self.returned
    }

    /// Leaves the message `message_id` of the batch in flight in the queue: it failed, and comes
    /// back after the visibility timeout (or goes to the dead-letter queue by the redrive policy).
    pub fn release(&mut self, message_id: &str) {
        self.released.insert(message_id.to_owned());
    }

    /// The next batch: up to `batch_size` messages, gathered for at most the batching window
    /// once the first arrived. `None` when `stop_when_idle` and the queue has nothing.
    pub async fn next_batch(&mut self) -> Result<Option<SourceBatch>, SqsSourceError> {
        let mut messages: Vec<Message> = Vec::new();
        let mut window_ends: Option<Instant> = None;
        loop {
            let wait = match window_ends {
                Some(ends) => ends.saturating_duration_since(Instant::now()).as_secs().min(LONG_POLL_SECS),
                None if self.stop_when_idle => self.batching_window.as_secs().clamp(1, LONG_POLL_SECS),
                None => LONG_POLL_SECS,
            };
            let wanted = RECEIVE_LIMIT.min(self.batch_size - messages.len());
            let received = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(wanted as i32)
                .wait_time_seconds(wait as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|error| call_failed("ReceiveMessage", &self.queue_url, &error))?;
            let got = received.messages.unwrap_or_default();
            debug!(queue = %self.queue_name, messages = got.len(), "received");
            if got.is_empty() && messages.is_empty() {
                if self.stop_when_idle {
                    return Ok(None);
                }
                continue;
            }
            let empty = got.is_empty();
            messages.extend(got);
            let ends = *window_ends.get_or_insert_with(|| Instant::now() + self.batching_window);
            if messages.len() >= self.batch_size || empty || Instant::now() >= ends {
                break;
            }
        }
        let mut records = Vec::with_capacity(messages.len());
        for message in &messages {
            let (Some(message_id), Some(receipt_handle)) = (message.message_id(), message.receipt_handle()) else {
                warn!(queue = %self.queue_name, "a received message without an id or receipt handle is skipped");
                continue;
            };
            records.push(self.pipes_record(message, message_id, receipt_handle));
            self.in_flight
                .push(InFlight { message_id: message_id.to_owned(), receipt_handle: receipt_handle.to_owned() });
        }
        Ok(Some(SourceBatch { shard_id: self.queue_name.clone(), records, last_sequence_number: None }))
    }

    fn pipes_record(&self, message: &Message, message_id: &str, receipt_handle: &str) -> Box<RawValue> {
        let attributes = message
            .attributes()
            .map(|a| a.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect())
            .unwrap_or_default();
        let message_attributes = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(name, value)| {
                        let attribute = PipesMessageAttribute {
                            string_value: value.string_value(),
                            binary_value: value.binary_value().map(|b| aws_smithy_types::base64::encode(b.as_ref())),
                            string_list_values: value.string_list_values().iter().map(String::as_str).collect(),
                            binary_list_values: value
                                .binary_list_values()
                                .iter()
                                .map(|b| aws_smithy_types::base64::encode(b.as_ref()))
                                .collect(),
                            data_type: value.data_type(),
                        };
                        (name.as_str(), attribute)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = PipesSqsMessage {
            message_id,
            receipt_handle,
            body: message.body().unwrap_or_default(),
            attributes,
            message_attributes,
            md5_of_body: message.md5_of_body().unwrap_or_default(),
            md5_of_message_attributes: message.md5_of_message_attributes(),
            event_source: "aws:sqs",
            event_source_arn: &self.queue_arn,
            aws_region: &self.region,
        };
        serde_json::value::to_raw_value(&record).expect("a message serializes")
    }

    /// Finishes the batch handed out last: deletes its messages but the [released](Self::release)
    /// ones, which come back after the visibility timeout. Returns how many were deleted. A
    /// delete that fails leaves its message to come back too (delivered twice: at-least-once).
    pub async fn complete_batch(&mut self) -> Result<usize, SqsSourceError> {
        let released = std::mem::take(&mut self.released);
        let (returned, done): (Vec<InFlight>, Vec<InFlight>) =
            std::mem::take(&mut self.in_flight).into_iter().partition(|m| released.contains(&m.message_id));
        self.returned += returned.len();
        if !returned.is_empty() {
            let ids: Vec<&str> = returned.iter().map(|m| m.message_id.as_str()).collect();
            warn!(queue = %self.queue_name, message_ids = ?ids, "failed messages left in the queue for redelivery");
        }
        let mut deleted = 0;
        for chunk in done.chunks(RECEIVE_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(&message.receipt_handle)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| call_failed("DeleteMessageBatch", &self.queue_url, &error))?;
            for failure in answer.failed() {
                let message_id = failure.id().parse::<usize>().ok().and_then(|i| chunk.get(i)).map(|m| &*m.message_id);
                warn!(
                    queue = %self.queue_name,
                    message_id = message_id.unwrap_or("(unknown)"),
                    code = failure.code(),
                    "a delivered message could not be deleted; it will be received again"
                );
            }
            deleted += answer.successful().len();
        }
        self.deleted += deleted;
        Ok(deleted)
    }
}
