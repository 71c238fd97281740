//! Sources: where the local runtime reads records from (a file, a DynamoDB stream, an SQS
//! queue). Each source hands over batches of records in the exact array shape EventBridge Pipes
//! gives the enrichment.

pub mod file;

use serde_json::value::RawValue;

pub mod dynamodb_streams;
pub mod md5;
pub mod sqs;

/// Largest `BatchSize` Pipes accepts for a DynamoDB stream or an SQS queue.
const MAX_BATCH_SIZE: usize = 10_000;
/// Largest `MaximumBatchingWindowInSeconds` Pipes accepts.
const MAX_BATCHING_WINDOW_SECS: u64 = 300;

/// Checks a source's batching settings against the limits Pipes enforces; the message names the
/// setting.
fn check_batching(batch_size: usize, maximum_batching_window_in_seconds: u64) -> Result<(), String> {
    if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
        return Err(format!("batch_size must be 1 to {MAX_BATCH_SIZE}"));
    }
    if maximum_batching_window_in_seconds > MAX_BATCHING_WINDOW_SECS {
        return Err(format!("maximum_batching_window_in_seconds must be 0 to {MAX_BATCHING_WINDOW_SECS}"));
    }
    Ok(())
}

/// One batch read from a source.
#[derive(Debug)]
pub struct SourceBatch {
    /// The shard the records come from (`file` for a file source); the checkpoint key.
    pub shard_id: String,
    /// The stream records, each a JSON object as Pipes sends it (with `eventSourceARN`).
    pub records: Vec<Box<RawValue>>,
    /// `dynamodb.SequenceNumber` of the last record, checkpointed once the batch is delivered
    /// (none for SQS messages: the queue is the state).
    pub last_sequence_number: Option<String>,
}
