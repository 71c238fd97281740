//! An SQS queue as the dead-letter destination (the Pipe's `DeadLetterConfig`): a batch that
//! could not be delivered is sent *with its records*, as JSON messages of at most 256 KB; a batch
//! too large for one message is split over several, each saying which part it is. A message has
//! the fields of a dead-letter file line (its `records` and `recordCount` the part's), plus
//! `part`, `parts` and `firstRecordIndex`: one reader serves both.

use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};

use crate::{
    aws::{SdkRetries, classify, sdk_config},
    runtime::DeadLetter,
};

/// Most bytes of one SQS message body (the classic limit; SQS accepts it everywhere).
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// Settings of the SQS dead-letter queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsDeadLetterConfig {
    /// The queue's URL (as GetQueueUrl or CreateQueue return it).
    pub queue_url: String,
    /// Endpoint to call instead of AWS (e.g. a moto server); static test credentials are used
    /// when none are configured.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// AWS region; the SDK's region chain when absent (`us-east-1` with an `endpoint_url`).
    #[serde(default)]
    pub region: Option<String>,
}

/// Errors of the SQS dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum SqsDeadLetterError {
    /// The settings are unusable.
    #[error("invalid sqs dead-letter settings: {0}")]
    Config(String),
    /// One record alone is larger than a message may be.
    #[error("dead letter of shard {shard_id}: record {index} is {bytes} bytes, over the SQS message limit")]
    RecordTooLarge {
        /// The batch's shard.
        shard_id: String,
        /// The record's index in the batch.
        index: usize,
        /// Its size in bytes.
        bytes: usize,
    },
    /// SendMessage failed; the parts before `part` were sent.
    #[error("dead letter of shard {shard_id}: part {part} of {parts}: {summary}")]
    Send {
        /// The batch's shard.
        shard_id: String,
        /// The part that failed (1-based).
        part: usize,
        /// How many parts the batch has.
        parts: usize,
        /// The error code and HTTP status or the transport failure.
        summary: String,
    },
}

/// The body of one dead-letter message: the letter, with this part's records.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetterMessage<'a> {
    #[serde(flatten)]
    letter: DeadLetter<'a>,
    /// Which part of the batch this message is (1-based).
    part: usize,
    /// How many messages the batch was split into.
    parts: usize,
    /// Index in the batch of this part's first record.
    first_record_index: usize,
}

impl SqsDeadLetterConfig {
    /// Builds the dead-letter queue client.
    pub async fn build(self) -> Result<SqsDeadLetterQueue, SqsDeadLetterError> {
        if self.queue_url.is_empty() {
            return Err(SqsDeadLetterError::Config("queue_url must not be empty".to_owned()));
        }
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Standard).await;
        Ok(SqsDeadLetterQueue { client: Client::new(&sdk), queue_url: self.queue_url })
    }
}

/// The SQS dead-letter queue; see the module documentation.
#[derive(Debug)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    /// Sends the batch as one message, or several when it is over [`MAX_MESSAGE_BYTES`].
    /// Returns how many messages were sent.
    pub async fn send(&mut self, letter: &DeadLetter<'_>) -> Result<usize, SqsDeadLetterError> {
        let bodies = message_bodies(letter, MAX_MESSAGE_BYTES)?;
        let parts = bodies.len();
        for (number, body) in bodies.into_iter().enumerate() {
            self.client.send_message().queue_url(&self.queue_url).message_body(body).send().await.map_err(|e| {
                let failure = classify("SendMessage", &e);
                SqsDeadLetterError::Send {
                    shard_id: letter.shard_id.to_owned(),
                    part: number + 1,
                    parts,
                    summary: failure.summary,
                }
            })?;
        }
        tracing::info!(
            shard_id = letter.shard_id,
            records = letter.records.len(),
            messages = parts,
            "batch sent to the dead-letter queue"
        );
        Ok(parts)
    }
}

/// The message bodies of a dead letter, each at most `limit` bytes, records kept in order.
pub fn message_bodies(letter: &DeadLetter<'_>, limit: usize) -> Result<Vec<String>, SqsDeadLetterError> {
    let message = |part, parts, first_record_index, records: &[_]| {
        let letter = DeadLetter { records, record_count: records.len(), ..*letter };
        serde_json::to_string(&DeadLetterMessage { letter, part, parts, first_record_index })
            .expect("a dead letter serializes")
    };
    // The envelope without records, with room for the widest part numbers and record count.
    let widest = letter.records.len() + 1;
    let envelope_bytes = message(widest, widest, widest, &[]).len() + widest.to_string().len() - 1;
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut bytes = envelope_bytes;
    for (index, record) in letter.records.iter().enumerate() {
        let record_bytes = record.get().len() + 1; // and its comma
        if envelope_bytes + record_bytes > limit {
            return Err(SqsDeadLetterError::RecordTooLarge {
                shard_id: letter.shard_id.to_owned(),
                index,
                bytes: record.get().len(),
            });
        }
        if bytes + record_bytes > limit {
            ranges.push((start, index));
            start = index;
            bytes = envelope_bytes;
        }
        bytes += record_bytes;
    }
    ranges.push((start, letter.records.len()));
    let parts = ranges.len();
    Ok(ranges
        .into_iter()
        .enumerate()
        .map(|(number, (from, to))| message(number + 1, parts, from, &letter.records[from..to]))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::runtime::Stage;

    fn records(count: usize, payload: usize) -> Vec<&'static RawValue> {
        (0..count)
            .map(|i| {
                let record = RawValue::from_string(format!(r#"{{"eventID":"e{i}","pad":"{}"}}"#, "x".repeat(payload)));
                &*Box::leak(record.unwrap())
            })
            .collect()
    }

    fn letter<'a>(records: &'a [&'a RawValue]) -> DeadLetter<'a> {
        DeadLetter {
            pipe: "PatientPipe",
            stage: Stage::Delivery,
            reason: "target: ThrottlingException (HTTP 400)",
            attempts: 3,
            shard_id: "shardId-1",
            first_sequence_number: Some("100"),
            last_sequence_number: Some("199"),
            record_count: records.len(),
            records,
        }
    }

    #[test]
    fn a_message_reads_like_a_dead_letter_file_line_with_its_part() {
        let records = records(3, 10);
        let letter = letter(&records);
        let bodies = message_bodies(&letter, MAX_MESSAGE_BYTES).unwrap();
        let mut message: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        let part = ["part", "parts", "firstRecordIndex"].map(|key| message.as_object_mut().unwrap().remove(key));
        assert_eq!(part, [Some(1.into()), Some(1.into()), Some(0.into())]);
        assert_eq!(message, serde_json::to_value(letter).unwrap());
    }

    #[test]
    fn a_small_batch_is_one_message_with_every_record() {
        let records = records(3, 10);
        let bodies = message_bodies(&letter(&records), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(bodies.len(), 1);
        let message: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(message["parts"], 1);
        assert_eq!(message["shardId"], "shardId-1");
        assert_eq!(message["firstSequenceNumber"], "100");
        assert_eq!(message["records"].as_array().unwrap().len(), 3);
        assert_eq!(message["records"][2]["eventID"], "e2");
    }

    #[test]
    fn a_large_batch_is_split_within_the_limit_keeping_order() {
        let records = records(50, 1000);
        let bodies = message_bodies(&letter(&records), 8_000).unwrap();
        assert!(bodies.len() > 1);
        let mut ids = Vec::new();
        for (number, body) in bodies.iter().enumerate() {
            assert!(body.len() <= 8_000, "part {number} is {} bytes", body.len());
            let message: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(message["part"], number + 1);
            assert_eq!(message["parts"], bodies.len());
            assert_eq!(message["firstRecordIndex"], ids.len());
            assert_eq!(message["recordCount"], message["records"].as_array().unwrap().len());
            assert_eq!(
                (&message["firstSequenceNumber"], &message["lastSequenceNumber"]),
                (&"100".into(), &"199".into())
            );
            ids.extend(
                message["records"].as_array().unwrap().iter().map(|r| r["eventID"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(ids, (0..50).map(|i| format!("e{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_over_the_limit_is_an_error_naming_it() {
        let mut batch = records(2, 10);
        batch.extend(records(1, 9_000));
        let error = message_bodies(&letter(&batch), 8_000).unwrap_err();
        assert!(matches!(error, SqsDeadLetterError::RecordTooLarge { index: 2, .. }), "{error}");
    }
}
