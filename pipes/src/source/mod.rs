//! Sources: where the local runtime reads records from (a file, a DynamoDB stream, an SQS
//! queue). Each source hands over batches of records in the exact array shape EventBridge Pipes
//! gives the enrichment.

pub mod file;

use serde_json::value::RawValue;

pub mod dynamodb_streams;
pub mod md5;
pub mod sqs;

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
