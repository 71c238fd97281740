//! A real DynamoDB Streams endpoint as a source (AWS, or a moto server through `endpoint_url`):
//! DescribeStream (paginated), shard lineage (a child shard is read only once its parent is
//! exhausted), GetShardIterator per starting position or checkpoint, GetRecords with the next
//! iterator, recovery from expired iterators, and batches by BatchSize and
//! MaximumBatchingWindowInSeconds. Records are handed over in the JSON shape Pipes gives the
//! enrichment (DynamoDB JSON attribute values, `eventSourceARN` set).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use aws_sdk_dynamodbstreams::{
    Client,
    error::ProvideErrorMetadata,
    types::{AttributeValue, Record, Shard, ShardIteratorType},
};
use serde::{Deserialize, Serialize, Serializer, ser::Error as _};
use serde_json::value::RawValue;

use super::SourceBatch;
use crate::aws::{SdkRetries, classify, sdk_config};

/// Where a shard without a checkpoint is first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest record still in the stream (24 hours back at most).
    TrimHorizon,
    /// Only changes made after the source starts.
    Latest,
}

/// Settings of the DynamoDB Streams source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbStreamsConfig {
    /// The stream's ARN. Give it or `table_name`.
    #[serde(default)]
    pub stream_arn: Option<String>,
    /// A table whose current stream (its `LatestStreamArn`, read with DescribeTable) is read.
    #[serde(default)]
    pub table_name: Option<String>,
    /// Where shards without a checkpoint start (the Pipe's `StartingPosition`). Shards found
    /// later (children of split or closed shards) always start at their beginning.
    pub starting_position: StartingPosition,
    /// Most records per batch (the Pipe's `BatchSize`, 1 to 10,000; default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long to gather records before handing over a batch smaller than `batch_size` (the
    /// Pipe's `MaximumBatchingWindowInSeconds`, 0 to 300; default 0: hand over what a read got).
    #[serde(default)]
    pub maximum_batching_window_in_seconds: u64,
    /// Wait between reads of shards that had nothing new, in milliseconds (default 250, i.e. four
    /// reads per second per shard like Lambda; DynamoDB Streams allows five).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Endpoint to call instead of AWS (e.g. a moto server); static test credentials are used
    /// when none are configured.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// AWS region; the SDK's region chain when absent (`us-east-1` with an `endpoint_url`).
    #[serde(default)]
    pub region: Option<String>,
    /// End the stream (`next_batch` returns `None`) once every open shard has nothing new and
    /// every closed shard is read to its end: for tests and replays.
    #[serde(default)]
    pub stop_when_idle: bool,
    /// Per shard id, the sequence number of the last record already delivered: those shards
    /// resume right after it (`AFTER_SEQUENCE_NUMBER`).
    #[serde(default)]
    pub checkpoints: HashMap<String, String>,
}

fn default_batch_size() -> usize {
    100
}

fn default_poll_interval_ms() -> u64 {
    250
}

/// Most records one GetRecords call may return.
const GET_RECORDS_LIMIT: usize = 1000;
/// How often the shard list is read again while shards are open (new shards appear as
/// DynamoDB splits them, about every four hours).
const SHARD_REFRESH: Duration = Duration::from_secs(30);
/// Rounds of reads without any record before the source counts as idle: a read of a real
/// stream may come back empty while records are further on.
const IDLE_ROUNDS_BEFORE_STOP: u32 = 2;

/// Errors of the DynamoDB Streams source. After an error the source keeps its position:
/// calling `next_batch` again resumes where it was.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// The settings are unusable.
    #[error("invalid dynamodb streams source settings: {0}")]
    Config(String),
    /// The table has no stream to read.
    #[error("table {table} has no stream enabled (StreamSpecification)")]
    NoStream {
        /// The table name.
        table: String,
    },
    /// An AWS call failed (after the SDK's own retries).
    #[error("{summary} (stream {stream})")]
    Call {
        /// The stream or table the call was about.
        stream: String,
        /// The operation, error code and HTTP status.
        summary: String,
        /// Throttling, 5xx or a connection error: trying again later may succeed.
        retryable: bool,
    },
    /// A record could not be converted to the Pipes JSON shape.
    #[error("record {event_id} of shard {shard_id}: field {field}: {reason}")]
    Record {
        /// The shard.
        shard_id: String,
        /// The record's `eventID`.
        event_id: String,
        /// The field at fault, e.g. `dynamodb.NewImage`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl DynamoDbStreamsConfig {
    /// Checks the settings and builds the source: resolves the stream ARN (DescribeTable for a
    /// table name) and reads the shard list.
    pub async fn build(self) -> Result<DynamoDbStreamsSource, StreamsError> {
        super::check_batching(self.batch_size, self.maximum_batching_window_in_seconds)
            .map_err(StreamsError::Config)?;
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Standard).await;
        let stream_arn = match (self.stream_arn, self.table_name) {
            (Some(arn), None) => arn,
            (None, Some(table)) => latest_stream_arn(&aws_sdk_dynamodb::Client::new(&sdk), table).await?,
            _ => return Err(StreamsError::Config("give exactly one of stream_arn and table_name".to_owned())),
        };
        let region = region_of(&stream_arn)
            .map(str::to_owned)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_default();
        let mut source = DynamoDbStreamsSource {
            client: Client::new(&sdk),
            stream_arn,
            region,
            starting_position: self.starting_position,
            batch_size: self.batch_size,
            batching_window: Duration::from_secs(self.maximum_batching_window_in_seconds),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            stop_when_idle: self.stop_when_idle,
            checkpoints: self.checkpoints,
            shards: Vec::new(),
            listed_once: false,
            refresh_due: Instant::now(),
            idle_rounds: 0,
        };
        source.refresh_shards().await?;
        // LATEST means "after the start": take those positions now, not at the first read.
        for index in 0..source.shards.len() {
            if source.shards[index].start == StartAt::Latest && source.is_readable(index) {
                source.first_iterator(index).await?;
            }
        }
        Ok(source)
    }
}

async fn latest_stream_arn(client: &aws_sdk_dynamodb::Client, table: String) -> Result<String, StreamsError> {
    let described = client.describe_table().table_name(&table).send().await.map_err(|e| {
        let failure = classify("DescribeTable", &e);
        StreamsError::Call { stream: table.clone(), summary: failure.summary, retryable: failure.retryable }
    })?;
    match described.table().and_then(|t| t.latest_stream_arn()) {
        Some(arn) => Ok(arn.to_owned()),
        None => Err(StreamsError::NoStream { table }),
    }
}

/// `arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL` → `REGION`.
fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// How a shard's first iterator is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StartAt {
    TrimHorizon,
    Latest,
    After(String),
}

/// The outcome of one GetRecords call.
#[derive(Debug, Clone, Copy)]
struct ShardRead {
    /// Records read.
    records: usize,
    /// The shard has just been read to its end.
    ended: bool,
    /// The read returned as many records as asked (or must be redone): more may be waiting.
    full: bool,
}

/// What the source knows of one shard.
#[derive(Debug)]
struct ShardState {
    id: String,
    parent_id: Option<String>,
    /// The shard has an ending sequence number: it receives no new records.
    closed: bool,
    start: StartAt,
    /// The iterator for the next read; `None` before the first read.
    iterator: Option<String>,
    /// Every record of the shard has been read (its iterator ran out) or it is skipped.
    exhausted: bool,
    /// Sequence number of the last record read, where an expired iterator resumes.
    last_read: Option<String>,
    /// Records read and not yet handed over, with the sequence number of the last one.
    buffer: Vec<Box<RawValue>>,
    buffer_last_sequence: Option<String>,
    /// When the first buffered record was read (the batching window starts then).
    buffered_since: Option<Instant>,
}

/// The DynamoDB Streams source; see the module documentation.
#[derive(Debug)]
pub struct DynamoDbStreamsSource {
    client: Client,
    stream_arn: String,
    region: String,
    starting_position: StartingPosition,
    batch_size: usize,
    batching_window: Duration,
    poll_interval: Duration,
    stop_when_idle: bool,
    checkpoints: HashMap<String, String>,
    /// Sorted so that parents, which DynamoDB creates first, come before their children.
    shards: Vec<ShardState>,
    listed_once: bool,
    refresh_due: Instant,
    idle_rounds: u32,
}

impl DynamoDbStreamsSource {
    /// The stream read.
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    /// The next batch: records of one shard, at most `batch_size`, in stream order. Waits for
    /// records; `None` only with `stop_when_idle` once the stream is idle.
    pub async fn next_batch(&mut self) -> Result<Option<SourceBatch>, StreamsError> {
        loop {
            if Instant::now() >= self.refresh_due {
                self.refresh_shards().await?;
            }
            if let Some(batch) = self.take_ready_batch(false) {
                return Ok(Some(batch));
            }
            let mut read_any = false;
            let mut read_again_now = false;
            for index in 0..self.shards.len() {
                if !self.is_readable(index) || self.shards[index].buffer.len() >= self.batch_size {
                    continue;
                }
                let read = self.read_shard(index).await?;
                // A read to redo (expired iterator) does not count as idle.
                read_any |= read.records > 0 || read.full;
                read_again_now |= read.full;
                if read.ended {
                    // Its children may now be read; they may also be new.
                    self.refresh_due = Instant::now();
                    read_any = true;
                    read_again_now = true;
                }
                if let Some(batch) = self.take_ready_batch(false) {
                    return Ok(Some(batch));
                }
            }
            if read_any {
                self.idle_rounds = 0;
                if !read_again_now {
                    // A trickle of records: keep to the poll rate (5 GetRecords/s/shard at most).
                    tokio::time::sleep(self.wait_before_next_round()).await;
                }
                continue;
            }
            self.idle_rounds += 1;
            if self.stop_when_idle && self.idle_rounds >= IDLE_ROUNDS_BEFORE_STOP && self.all_read() {
                self.refresh_shards().await?;
                if self.all_read() {
                    return Ok(self.take_ready_batch(true));
                }
            }
            if self.stop_when_idle && self.idle_rounds < IDLE_ROUNDS_BEFORE_STOP {
                continue;
            }
            tokio::time::sleep(self.wait_before_next_round()).await;
        }
    }

    /// How long to sleep when a round read nothing: the poll interval, or less when a batching
    /// window ends sooner.
    fn wait_before_next_round(&self) -> Duration {
        let now = Instant::now();
        self.shards
            .iter()
            .filter_map(|s| s.buffered_since)
            .map(|since| (since + self.batching_window).saturating_duration_since(now))
            .fold(self.poll_interval, Duration::min)
    }

    /// Every closed shard is exhausted and every open one readable (no shard waits for its
    /// parent).
    fn all_read(&self) -> bool {
        (0..self.shards.len()).all(|i| self.shards[i].exhausted || (!self.shards[i].closed && self.is_readable(i)))
    }

    /// A shard is read once its parent (if still listed) is exhausted and its records handed over.
    fn is_readable(&self, index: usize) -> bool {
        let shard = &self.shards[index];
        if shard.exhausted {
            return false;
        }
        match &shard.parent_id {
            None => true,
            Some(parent) => {
                self.shards.iter().find(|s| &s.id == parent).is_none_or(|p| p.exhausted && p.buffer.is_empty())
            }
        }
    }

    /// The first shard whose buffer is full, whose batching window has passed or which is
    /// exhausted; with `flush`, any shard with buffered records.
    fn take_ready_batch(&mut self, flush: bool) -> Option<SourceBatch> {
        let now = Instant::now();
        let window = self.batching_window;
        let batch_size = self.batch_size;
        let shard = self.shards.iter_mut().find(|s| {
            !s.buffer.is_empty()
                && (flush
                    || s.buffer.len() >= batch_size
                    || s.exhausted
                    || s.buffered_since.is_some_and(|since| now.duration_since(since) >= window))
        })?;
        shard.buffered_since = None;
        Some(SourceBatch {
            shard_id: shard.id.clone(),
            records: std::mem::take(&mut shard.buffer),
            last_sequence_number: shard.buffer_last_sequence.take(),
        })
    }

    /// One GetRecords call on a shard.
    async fn read_shard(&mut self, index: usize) -> Result<ShardRead, StreamsError> {
        let iterator = match self.shards[index].iterator.clone() {
            Some(iterator) => iterator,
            None => match self.first_iterator(index).await? {
                Some(iterator) => iterator,
                None => {
                    self.shards[index].exhausted = true;
                    return Ok(ShardRead { records: 0, ended: true, full: false });
                }
            },
        };
        let limit = GET_RECORDS_LIMIT.min(self.batch_size - self.shards[index].buffer.len());
        let output = match self.client.get_records().shard_iterator(iterator).limit(limit as i32).send().await {
            Ok(output) => output,
            Err(error) if error.code() == Some("ExpiredIteratorException") => {
                tracing::debug!(shard_id = %self.shards[index].id, "shard iterator expired; getting a new one");
                self.shards[index].iterator = None;
                return Ok(ShardRead { records: 0, ended: false, full: true });
            }
            Err(error) if error.code() == Some("TrimmedDataAccessException") => {
                tracing::warn!(shard_id = %self.shards[index].id, "records past the trim horizon; resuming at TRIM_HORIZON");
                let shard = &mut self.shards[index];
                shard.iterator = None;
                shard.last_read = None;
                shard.start = StartAt::TrimHorizon;
                return Ok(ShardRead { records: 0, ended: false, full: true });
            }
            Err(error) => return Err(self.call_error("GetRecords", &error)),
        };
        let records = output.records();
        // Convert the whole page first: on an error nothing is buffered and the iterator stays,
        // so no record is handed over twice.
        let mut converted = Vec::with_capacity(records.len());
        for record in records {
            let json = pipes_record_json(record, &self.stream_arn, &self.region).map_err(|(field, reason)| {
                StreamsError::Record {
                    shard_id: self.shards[index].id.clone(),
                    event_id: record.event_id().unwrap_or("(none)").to_owned(),
                    field,
                    reason,
                }
            })?;
            converted.push((json, record.dynamodb().and_then(|d| d.sequence_number()).map(str::to_owned)));
        }
        let shard = &mut self.shards[index];
        for (json, sequence) in converted {
            shard.buffer.push(json);
            shard.buffered_since.get_or_insert_with(Instant::now);
            if sequence.is_some() {
                shard.last_read.clone_from(&sequence);
                shard.buffer_last_sequence = sequence;
            }
        }
        let shard = &mut self.shards[index];
        let ended = output.next_shard_iterator().is_none();
        shard.iterator = output.next_shard_iterator().map(str::to_owned);
        shard.exhausted = ended;
        if ended {
            tracing::debug!(shard_id = %shard.id, "shard read to its end");
        }
        tracing::debug!(shard_id = %shard.id, records = records.len(), "GetRecords");
        Ok(ShardRead { records: records.len(), ended, full: records.len() == limit })
    }

    /// GetShardIterator at the shard's start, or right after the last record read (after an
    /// expired iterator). `None` when the shard no longer exists.
    async fn first_iterator(&mut self, index: usize) -> Result<Option<String>, StreamsError> {
        let shard = &self.shards[index];
        let (kind, sequence) = match (&shard.last_read, &shard.start) {
            (Some(last), _) | (None, StartAt::After(last)) => {
                (ShardIteratorType::AfterSequenceNumber, Some(last.clone()))
            }
            (None, StartAt::TrimHorizon) => (ShardIteratorType::TrimHorizon, None),
            (None, StartAt::Latest) => (ShardIteratorType::Latest, None),
        };
        let result = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(&shard.id)
            .shard_iterator_type(kind.clone())
            .set_sequence_number(sequence)
            .send()
            .await;
        match result {
            Ok(output) => {
                let iterator = output.shard_iterator().map(str::to_owned);
                self.shards[index].iterator.clone_from(&iterator);
                Ok(iterator)
            }
            Err(error) if error.code() == Some("TrimmedDataAccessException") => {
                tracing::warn!(shard_id = %self.shards[index].id, "checkpoint past the trim horizon; reading from TRIM_HORIZON");
                let shard = &mut self.shards[index];
                shard.last_read = None;
                shard.start = StartAt::TrimHorizon;
                Box::pin(self.first_iterator(index)).await
            }
            Err(error) if error.code() == Some("ResourceNotFoundException") => {
                tracing::warn!(shard_id = %self.shards[index].id, "shard no longer exists; skipping it");
                Ok(None)
            }
            Err(error) => Err(self.call_error("GetShardIterator", &error)),
        }
    }

    /// DescribeStream, every page: adds shards not seen yet (keeping the state of known ones).
    async fn refresh_shards(&mut self) -> Result<(), StreamsError> {
        let mut listed: Vec<Shard> = Vec::new();
        let mut start_after: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start_after.take())
                .send()
                .await
                .map_err(|e| self.call_error("DescribeStream", &e))?;
            let Some(description) = page.stream_description() else { break };
            listed.extend(description.shards().iter().cloned());
            match description.last_evaluated_shard_id() {
                Some(last) => start_after = Some(last.to_owned()),
                None => break,
            }
        }
        let known_before = self.shards.len();
        for shard in listed {
            let Some(id) = shard.shard_id() else { continue };
            if self.shards.iter().any(|s| s.id == id) {
                continue;
            }
            let closed = shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some();
            let parent_id = shard.parent_shard_id().map(str::to_owned);
            let start = self.start_of(id, parent_id.as_deref(), closed);
            let exhausted = start.is_none();
            self.shards.push(ShardState {
                id: id.to_owned(),
                parent_id,
                closed,
                start: start.unwrap_or(StartAt::TrimHorizon),
                iterator: None,
                exhausted,
                last_read: None,
                buffer: Vec::new(),
                buffer_last_sequence: None,
                buffered_since: None,
            });
        }
        if self.shards.len() != known_before {
            let shards = std::mem::take(&mut self.shards);
            self.shards = order_parents_first(shards, |s| &s.id, |s| s.parent_id.as_deref());
            tracing::debug!(shards = self.shards.len(), "shard list read");
        }
        self.listed_once = true;
        self.refresh_due = Instant::now() + SHARD_REFRESH;
        Ok(())
    }

    /// Where a newly listed shard starts; `None` to skip it (a closed shard under LATEST).
    fn start_of(&self, id: &str, parent_id: Option<&str>, closed: bool) -> Option<StartAt> {
        if let Some(sequence) = self.checkpoints.get(id) {
            return Some(StartAt::After(sequence.clone()));
        }
        let child_of_resumed = parent_id.is_some_and(|p| self.checkpoints.contains_key(p));
        if self.listed_once || child_of_resumed {
            // Found after the start: it holds changes made after the parent's, all of them unread.
            return Some(StartAt::TrimHorizon);
        }
        match self.starting_position {
            StartingPosition::TrimHorizon => Some(StartAt::TrimHorizon),
            StartingPosition::Latest if closed => None,
            StartingPosition::Latest => Some(StartAt::Latest),
        }
    }

    fn call_error<E: ProvideErrorMetadata>(
        &self,
        operation: &str,
        error: &aws_sdk_dynamodbstreams::error::SdkError<E, aws_sdk_dynamodbstreams::config::http::HttpResponse>,
    ) -> StreamsError {
        let failure = classify(operation, error);
        StreamsError::Call { stream: self.stream_arn.clone(), summary: failure.summary, retryable: failure.retryable }
    }
}

/// Orders shards so that each comes after its parent (generation by generation), otherwise
/// keeping the listing order.
fn order_parents_first<T>(items: Vec<T>, id: impl Fn(&T) -> &str, parent: impl Fn(&T) -> Option<&str>) -> Vec<T> {
    let mut ordered = Vec::with_capacity(items.len());
    let mut pending = items;
    while !pending.is_empty() {
        let pending_ids: HashSet<String> = pending.iter().map(|item| id(item).to_owned()).collect();
        let (ready, waiting): (Vec<T>, Vec<T>) =
            pending.into_iter().partition(|item| parent(item).is_none_or(|p| !pending_ids.contains(p)));
        if ready.is_empty() {
            // DynamoDB lineage has no cycles; keep any as listed rather than loop.
            ordered.extend(waiting);
            break;
        }
        ordered.extend(ready);
        pending = waiting;
    }
    ordered
}

/// One stream record in the Pipes JSON shape. Fails with the field and reason when an attribute
/// value has a type this SDK does not know.
fn pipes_record_json(record: &Record, stream_arn: &str, region: &str) -> Result<Box<RawValue>, (String, String)> {
    let data = record.dynamodb();
    let pipes = PipesRecord {
        event_id: record.event_id(),
        event_name: record.event_name().map(|n| n.as_str()),
        event_version: record.event_version(),
        event_source: record.event_source().unwrap_or("aws:dynamodb"),
        aws_region: record.aws_region().unwrap_or(region),
        event_source_arn: stream_arn,
        user_identity: record
            .user_identity()
            .map(|u| PipesIdentity { kind: u.r#type(), principal_id: u.principal_id() }),
        dynamodb: data.map(|d| PipesStreamRecord {
            approximate_creation_date_time: d
                .approximate_creation_date_time()
                .map(|t| EpochSeconds(t.secs(), t.subsec_nanos())),
            keys: d.keys().map(Image),
            new_image: d.new_image().map(Image),
            old_image: d.old_image().map(Image),
            sequence_number: d.sequence_number(),
            size_bytes: d.size_bytes(),
            stream_view_type: d.stream_view_type().map(|v| v.as_str()),
        }),
    };
    // Serialized straight into a RawValue: `RawValue::from_string` would parse it all again.
    serde_json::value::to_raw_value(&pipes).map_err(|e| {
        let reason = e.to_string();
        let field =
            reason.split_once(": ").map_or_else(|| "dynamodb".to_owned(), |(name, _)| format!("dynamodb.{name}"));
        (field, reason)
    })
}

#[derive(Serialize)]
struct PipesRecord<'a> {
    #[serde(rename = "eventID", skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(rename = "eventName", skip_serializing_if = "Option::is_none")]
    event_name: Option<&'a str>,
    #[serde(rename = "eventVersion", skip_serializing_if = "Option::is_none")]
    event_version: Option<&'a str>,
    #[serde(rename = "eventSource")]
    event_source: &'a str,
    #[serde(rename = "awsRegion")]
    aws_region: &'a str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
    #[serde(rename = "userIdentity", skip_serializing_if = "Option::is_none")]
    user_identity: Option<PipesIdentity<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamodb: Option<PipesStreamRecord<'a>>,
}

#[derive(Serialize)]
struct PipesIdentity<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(rename = "principalId", skip_serializing_if = "Option::is_none")]
    principal_id: Option<&'a str>,
}

#[derive(Serialize)]
struct PipesStreamRecord<'a> {
    #[serde(rename = "ApproximateCreationDateTime", skip_serializing_if = "Option::is_none")]
    approximate_creation_date_time: Option<EpochSeconds>,
    #[serde(rename = "Keys", skip_serializing_if = "Option::is_none")]
    keys: Option<Image<'a>>,
    #[serde(rename = "NewImage", skip_serializing_if = "Option::is_none")]
    new_image: Option<Image<'a>>,
    #[serde(rename = "OldImage", skip_serializing_if = "Option::is_none")]
    old_image: Option<Image<'a>>,
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    sequence_number: Option<&'a str>,
    #[serde(rename = "SizeBytes", skip_serializing_if = "Option::is_none")]
    size_bytes: Option<i64>,
    #[serde(rename = "StreamViewType", skip_serializing_if = "Option::is_none")]
    stream_view_type: Option<&'a str>,
}

/// Epoch seconds as Pipes writes them: a whole number unless the time has a fraction.
struct EpochSeconds(i64, u32);

impl Serialize for EpochSeconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.1 == 0 {
            serializer.serialize_i64(self.0)
        } else {
            serializer.serialize_f64(self.0 as f64 + f64::from(self.1) / 1e9)
        }
    }
}

/// An item (`Keys`, `NewImage`, `OldImage`) in DynamoDB JSON.
struct Image<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for Image<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, Attribute(name, value))))
    }
}

/// One attribute value in DynamoDB JSON (`{"S": "…"}`, `{"N": "1"}`, `{"M": {…}}`…).
struct Attribute<'a>(&'a str, &'a AttributeValue);

impl Serialize for Attribute<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self.1 {
            AttributeValue::S(s) => map.serialize_entry("S", s)?,
            AttributeValue::N(n) => map.serialize_entry("N", n)?,
            AttributeValue::Bool(b) => map.serialize_entry("BOOL", b)?,
            AttributeValue::Null(n) => map.serialize_entry("NULL", n)?,
            AttributeValue::B(b) => map.serialize_entry("B", &aws_smithy_types::base64::encode(b.as_ref()))?,
            AttributeValue::Ss(values) => map.serialize_entry("SS", values)?,
            AttributeValue::Ns(values) => map.serialize_entry("NS", values)?,
            AttributeValue::Bs(values) => {
                let encoded: Vec<String> =
                    values.iter().map(|b| aws_smithy_types::base64::encode(b.as_ref())).collect();
                map.serialize_entry("BS", &encoded)?
            }
            AttributeValue::L(values) => {
                map.serialize_entry("L", &values.iter().map(|v| Attribute(self.0, v)).collect::<Vec<_>>())?
            }
            AttributeValue::M(values) => map.serialize_entry("M", &Image(values))?,
            _ => return Err(S::Error::custom(format!("{}: attribute value of a type unknown to this SDK", self.0))),
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
