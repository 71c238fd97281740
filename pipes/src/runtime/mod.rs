//! The local pipe runtime: source → filter → enrichment → target, with the delivery
//! guarantees of EventBridge Pipes (at-least-once, retries with backoff, AUTOMATIC_BISECT,
//! dead letters) and a checkpoint per shard so a restart resumes without loss. With an SQS
//! source the queue is the state: a batch's messages are deleted once it is done, and failed
//! ones are left in the queue for redelivery (and its redrive policy) instead of dead-lettered.
//!
//! Records and events are never logged: only eventIDs, message ids, counts, error kinds.

mod checkpoint;
mod config;
mod dead_letter;
mod enrichment;
mod lambda_api;
mod summary;

use std::{collections::HashSet, future::Future, ops::Not, pin::Pin, time::Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, warn};

pub use checkpoint::{CheckpointError, Checkpoints};
pub use config::{DEFAULT_DEAD_LETTER_FILE, LOCAL_LOG_STREAM, RunConfig, embedded_demo_input};
pub use dead_letter::{DeadLetter, DeadLetterError, DeadLetterFile, Stage};
pub use enrichment::{EnrichFailure, EnrichedBatch, Enrichment, EnrichmentError};
pub use fhir_pipes_core::Backoff;
pub use lambda_api::{FunctionError, InvokeFailure, LambdaApiError, LocalLambda};
pub use summary::Summary;

use crate::{
    filter::FilterSet,
    source::{
        SourceBatch,
        dynamodb_streams::{DynamoDbStreamsSource, StreamsError},
        file::{FileSource, FileSourceError},
        sqs::{SqsQueueSource, SqsSourceError},
    },
    target::{
        DeliveryError, Retry,
        cloudwatch_logs::{CloudWatchLogsError, CloudWatchLogsTarget},
        eventbridge::{EventBridgeError, EventBridgeTarget},
        healthlake::{HealthLakeError, HealthLakeTarget},
        lambda::{LambdaTarget, LambdaTargetError},
        ndjson::NdjsonTarget,
        sqs_dead_letter::{SqsDeadLetterError, SqsDeadLetterQueue},
    },
    template::TemplateError,
};

/// Why a run stops early (bad configuration, an I/O failure of the runtime's own files, a
/// target gone for good). Bad records and failed deliveries do not stop a run: they are
/// dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The template or the pipe in it.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The file source.
    #[error(transparent)]
    FileSource(#[from] FileSourceError),
    /// The DynamoDB Streams source (a failure that outlasted the retries).
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// The SQS source (a failure that outlasted the retries).
    #[error(transparent)]
    Sqs(#[from] SqsSourceError),
    /// The Lambda target cannot be started.
    #[error(transparent)]
    LambdaTarget(#[from] LambdaTargetError),
    /// The CloudWatch Logs target cannot be set up.
    #[error(transparent)]
    CloudWatchLogs(#[from] CloudWatchLogsError),
    /// The EventBridge target cannot be set up.
    #[error(transparent)]
    EventBridge(#[from] EventBridgeError),
    /// The HealthLake target cannot be set up.
    #[error("HealthLake target: {0}")]
    HealthLake(#[from] HealthLakeError),
    /// The SQS dead-letter queue cannot be set up.
    #[error(transparent)]
    SqsDeadLetter(#[from] SqsDeadLetterError),
    /// The enrichment cannot be set up.
    #[error(transparent)]
    Enrichment(#[from] EnrichmentError),
    /// The checkpoint state file.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The dead-letter file; the run stops rather than lose a batch.
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    /// The output file cannot be opened.
    #[error("cannot open the output {file}: {source}")]
    Output {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A setting that does not fit.
    #[error("{0}")]
    Config(String),
    /// The target cannot take any event until someone acts (the output pipe was closed, the
    /// credentials were refused): the batch being delivered is not checkpointed, so a rerun
    /// with the same state resumes at it.
    #[error("stopped, the target cannot take events ({0}); the unfinished batch is not checkpointed")]
    TargetStopped(String),
}

/// Where records come from.
#[derive(Debug)]
pub enum Source {
    /// A file, stdin or the embedded demo batch.
    File(FileSource),
    /// A DynamoDB stream (AWS or a local endpoint such as moto).
    DynamoDbStreams(DynamoDbStreamsSource),
    /// An SQS queue (AWS or a local endpoint such as moto).
    Sqs(SqsQueueSource),
}

impl Source {
    /// The next batch; `None` when there is nothing more.
    pub async fn next_batch(&mut self) -> Result<Option<SourceBatch>, RuntimeError> {
        match self {
            Source::File(source) => Ok(source.next_batch().await?),
            Source::DynamoDbStreams(source) => Ok(source.next_batch().await?),
            Source::Sqs(source) => Ok(source.next_batch().await?),
        }
    }

    /// Whether a failed record is left to the source to hand out again (an SQS queue) rather
    /// than dead-lettered by the runtime.
    pub fn redelivers(&self) -> bool {
        matches!(self, Source::Sqs(_))
    }

    /// Leaves the record `id` (an SQS message id) of the batch in flight to be handed out again.
    fn release(&mut self, id: &str) {
        if let Source::Sqs(source) = self {
            source.release(id);
        }
    }

    /// The batch handed out last is done: an SQS source deletes its messages but the released ones.
    async fn complete_batch(&mut self) -> Result<(), RuntimeError> {
        if let Source::Sqs(source) = self {
            source.complete_batch().await?;
        }
        Ok(())
    }

    /// How many records will be read, when known (for the progress bar).
    pub fn total(&self) -> Option<usize> {
        match self {
            Source::File(source) => source.is_live().not().then(|| source.total()),
            Source::DynamoDbStreams(_) | Source::Sqs(_) => None,
        }
    }
}

impl RuntimeError {
    /// A source failure worth trying again (throttling, 5xx, a connection error): the source
    /// keeps its position, so the next read resumes where it was.
    fn is_retryable_source_failure(&self) -> bool {
        matches!(
            self,
            RuntimeError::Streams(StreamsError::Call { retryable: true, .. })
                | RuntimeError::Sqs(SqsSourceError::Call { retryable: true, .. })
        )
    }
}

/// A target implemented outside this crate (tests, embedding applications).
pub trait CustomTarget: Send {
    /// Delivers `events`; see [`DeliveryError`] for partial failures.
    fn deliver<'a>(
        &'a mut self,
        events: &'a [Box<RawValue>],
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;
}

/// Where events go.
pub enum Target {
    /// NDJSON on stdout or in a file.
    Ndjson(NdjsonTarget),
    /// A CloudWatch log group (PutLogEvents).
    CloudWatchLogs(CloudWatchLogsTarget),
    /// An EventBridge bus (PutEvents).
    EventBridge(EventBridgeTarget),
    /// A FHIR store (HealthLake): signed PUT/DELETE (boxed: its HTTP client is large).
    HealthLake(Box<HealthLakeTarget>),
    /// A Lambda binary behind a local Runtime API, invoked REQUEST_RESPONSE.
    Lambda(LambdaTarget),
    /// Any other implementation.
    Custom(Box<dyn CustomTarget>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Ndjson(target) => target.fmt(f),
            Target::CloudWatchLogs(target) => target.fmt(f),
            Target::EventBridge(target) => target.fmt(f),
            Target::HealthLake(target) => target.fmt(f),
            Target::Lambda(target) => target.fmt(f),
            Target::Custom(_) => f.write_str("Target::Custom"),
        }
    }
}

impl Target {
    /// Delivers `events`.
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        match self {
            Target::Ndjson(target) => target.deliver(events).await,
            Target::CloudWatchLogs(target) => target.deliver(events).await,
            Target::EventBridge(target) => target.deliver(events).await,
            Target::HealthLake(target) => target.deliver(events).await,
            Target::Lambda(target) => target.deliver(events).await,
            Target::Custom(target) => target.deliver(events).await,
        }
    }

    /// Stops a Lambda binary, if one runs.
    pub async fn shutdown(&mut self) {
        if let Target::Lambda(target) = self {
            target.shutdown().await;
        }
    }
}

/// Where dead letters go.
#[derive(Debug)]
pub enum DeadLetterSink {
    /// An NDJSON file.
    File(DeadLetterFile),
    /// An SQS queue (the pipe's `DeadLetterConfig`); a letter the queue cannot take (a record
    /// over the message limit, or SendMessage failing after the SDK's retries) goes to the file.
    Sqs {
        /// The queue.
        queue: SqsDeadLetterQueue,
        /// Where a letter the queue cannot take is written instead.
        fallback: DeadLetterFile,
        /// Whether the fallback file got a letter (for the summary).
        used_fallback: bool,
    },
}

impl DeadLetterSink {
    /// Writes one dead letter durably.
    pub async fn write(&mut self, letter: &DeadLetter<'_>) -> Result<(), RuntimeError> {
        match self {
            DeadLetterSink::File(file) => Ok(file.write(letter)?),
            DeadLetterSink::Sqs { queue, fallback, used_fallback } => match queue.send(letter).await {
                Ok(_) => Ok(()),
                Err(error) => {
                    warn!(
                        records = letter.record_count,
                        %error,
                        file = %fallback.path().display(),
                        "dead-letter queue refused the batch, writing it to the dead-letter file"
                    );
                    *used_fallback = true;
                    Ok(fallback.write(letter)?)
                }
            },
        }
    }

    /// Where, for the summary.
    pub fn describe(&self) -> String {
        match self {
            DeadLetterSink::File(file) => file.path().display().to_string(),
            DeadLetterSink::Sqs { fallback, used_fallback: true, .. } => {
                format!("the dead-letter queue and {}", fallback.path().display())
            }
            DeadLetterSink::Sqs { .. } => "the dead-letter queue".to_owned(),
        }
    }
}

/// How the runtime retries and when it stops.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Retries of a failed delivery or a crashed enrichment (the pipe's MaximumRetryAttempts, capped).
    pub max_retry_attempts: u32,
    /// Split a batch whose enrichment fails and retry each half (OnPartialBatchItemFailure).
    pub bisect: bool,
    /// Sleeps between retries.
    pub backoff: Backoff,
    /// Stop after this many source batches (to simulate an interrupted run).
    pub max_batches: Option<usize>,
    /// Records older than this (by `dynamodb.ApproximateCreationDateTime`) are dead-lettered
    /// unprocessed (the pipe's MaximumRecordAgeInSeconds; `None` = no limit).
    pub maximum_record_age: Option<std::time::Duration>,
}

/// One record in flight, with what the runtime needs of it.
struct Record {
    raw: Box<RawValue>,
    event_id: Option<String>,
    sequence_number: Option<String>,
}

/// What names the record an event came from: an envelope's `correlationId`, or, without an
/// enrichment, the record's own `eventID` or `messageId` (the event is the record).
#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "messageId", borrow)]
    message_id: Option<std::borrow::Cow<'a, str>>,
}

/// A runnable pipe.
pub struct Runtime {
    /// The pipe's logical id.
    pub pipe: String,
    /// Where records come from.
    pub source: Source,
    /// The pipe's filter criteria.
    pub filters: FilterSet,
    /// The enrichment.
    pub enrichment: Enrichment,
    /// Where events go.
    pub target: Target,
    /// Checkpoints per shard.
    pub checkpoints: Checkpoints,
    /// Where failed batches go.
    pub dead_letters: DeadLetterSink,
    /// Retries, bisection, limits.
    pub policy: Policy,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("pipe", &self.pipe).field("source", &self.source).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Runs until the source has nothing more (or `max_batches`), then returns the summary.
    pub async fn run(self) -> Result<Summary, RuntimeError> {
        let (summary, result) = self.run_to_end().await;
        result.map(|()| summary)
    }

    /// Like [`Runtime::run`], with the summary of what was done also when the run stopped early.
    pub async fn run_to_end(mut self) -> (Summary, Result<(), RuntimeError>) {
        let started = Instant::now();
        let mut summary = Summary { dead_letter_file: None, ..Summary::default() };
        let progress = self.progress.then(|| progress_bar(self.source.total()));
        let result = self.run_batches(&mut summary, progress.as_ref()).await;
        self.enrichment.shutdown().await;
        self.target.shutdown().await;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        summary.set_elapsed(started.elapsed());
        if summary.dead_lettered > 0 {
            summary.dead_letter_file = Some(self.dead_letters.describe());
        }
        (summary, result)
    }

    async fn run_batches(
        &mut self,
        summary: &mut Summary,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<(), RuntimeError> {
        let mut source_failures = 0u32;
        while self.policy.max_batches.is_none_or(|max| summary.batches < max) {
            let batch = match self.source.next_batch().await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(error)
                    if error.is_retryable_source_failure() && source_failures < self.policy.max_retry_attempts =>
                {
                    source_failures += 1;
                    warn!(attempt = source_failures, %error, "reading the source failed, retrying");
                    tokio::time::sleep(self.policy.backoff.delay(source_failures)).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            source_failures = 0;
            summary.batches += 1;
            summary.read += batch.records.len();
            let (records, expired) = self.filter(batch.records, summary);
            debug!(shard = %batch.shard_id, records = records.len(), "batch read");
            if !expired.is_empty() {
                let age = self.policy.maximum_record_age.unwrap_or_default().as_secs();
                let reason = format!("older than MaximumRecordAgeInSeconds ({age} s)");
                let expired: Vec<&Record> = expired.iter().collect();
                let letter = Letter { stage: Stage::Expired, reason: &reason, detail: None, attempts: 0 };
                self.dead_letter(letter, &batch.shard_id, &expired, summary).await?;
            }
            if !records.is_empty() {
                self.process(&batch.shard_id, records, summary).await?;
            }
            // Delivered or dead-lettered: either way the batch is done and must not be read again
            // (an SQS source deletes its messages, but the failed ones).
            self.source.complete_batch().await?;
            if let Some(sequence_number) = &batch.last_sequence_number {
                self.checkpoints.commit(&batch.shard_id, sequence_number)?;
            }
            if let Some(bar) = progress {
                bar.set_position(summary.read as u64);
            }
        }
        Ok(())
    }

    /// Keeps the records one of the pipe's patterns matches (a record that is not a JSON
    /// object cannot match and is filtered out, as in Pipes), setting apart those too old.
    fn filter(&self, raws: Vec<Box<RawValue>>, summary: &mut Summary) -> (Vec<Record>, Vec<Record>) {
        let oldest = self.policy.maximum_record_age.map(|age| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.saturating_sub(age).as_secs_f64()
        });
        let mut kept = Vec::with_capacity(raws.len());
        let mut expired = Vec::new();
        for raw in raws {
            // One parse per record serves the filter and the record's marks.
            let value = serde_json::from_str::<serde_json::Value>(raw.get()).ok();
            let passes = self.filters.is_empty() || value.as_ref().is_some_and(|value| self.filters.matches(value));
            if !passes {
                summary.filtered_out += 1;
                continue;
            }
            // A stream record's eventID, or an SQS message's messageId.
            let event_id = value
                .as_ref()
                .and_then(|v| v.get("eventID").or_else(|| v.get("messageId")))
                .and_then(|id| id.as_str())
                .map(str::to_owned);
            let stream = value.as_ref().and_then(|v| v.get("dynamodb"));
            let created = stream.and_then(|d| d.get("ApproximateCreationDateTime")).and_then(serde_json::Value::as_f64);
            let sequence_number = stream.and_then(|d| d.get("SequenceNumber")).and_then(|n| match n {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let record = Record { raw, event_id, sequence_number };
            match (oldest, created) {
                (Some(oldest), Some(created)) if created < oldest => expired.push(record),
                _ => kept.push(record),
            }
        }
        (kept, expired)
    }

    /// Enriches and delivers one batch; a batch whose enrichment fails is bisected (or retried
    /// when the failure may be transient) until it succeeds or a part is dead-lettered.
    async fn process(
        &mut self,
        shard_id: &str,
        records: Vec<Record>,
        summary: &mut Summary,
    ) -> Result<(), RuntimeError> {
        // A stack of (records, attempts made); the first half is on top so order is kept.
        let mut work = vec![(records, 0u32)];
        while let Some((chunk, attempts)) = work.pop() {
            let raws: Vec<&RawValue> = chunk.iter().map(|record| &*record.raw).collect();
            match self.enrichment.enrich(&raws).await {
                Ok(enriched) => {
                    summary.enriched += enriched.events.len();
                    summary.skipped += enriched.skipped;
                    summary.failed += enriched.failed;
                    self.deliver(shard_id, &chunk, enriched.events, summary).await?;
                }
                Err(failure) if failure.retryable && attempts < self.policy.max_retry_attempts => {
                    warn!(records = chunk.len(), attempt = attempts + 1, reason = %failure.message, "enrichment failed, retrying");
                    summary.retried += 1;
                    tokio::time::sleep(self.policy.backoff.delay(attempts + 1)).await;
                    work.push((chunk, attempts + 1));
                }
                Err(failure) if self.policy.bisect && chunk.len() > 1 => {
                    warn!(records = chunk.len(), reason = %failure.message, "enrichment failed, bisecting the batch");
                    summary.retried += 1;
                    let mut first = chunk;
                    let second = first.split_off(first.len() / 2);
                    work.push((second, attempts + 1));
                    work.push((first, attempts + 1));
                }
                Err(failure) => {
                    summary.failed += chunk.len();
                    let records: Vec<&Record> = chunk.iter().collect();
                    let letter = Letter {
                        stage: Stage::Enrichment,
                        reason: &failure.message,
                        detail: failure.detail.as_deref(),
                        attempts: attempts + 1,
                    };
                    self.dead_letter(letter, shard_id, &records, summary).await?;
                }
            }
        }
        Ok(())
    }

    /// Delivers `events` (of `records`), re-delivering only what failed, with backoff, up to
    /// the retry limit; what is still undelivered then, or failed for good, is dead-lettered
    /// with its records.
    async fn deliver(
        &mut self,
        shard_id: &str,
        records: &[Record],
        events: Vec<Box<RawValue>>,
        summary: &mut Summary,
    ) -> Result<(), RuntimeError> {
        let mut pending = events;
        let mut attempts = 0u32;
        while !pending.is_empty() {
            attempts += 1;
            let error = match self.target.deliver(&pending).await {
                Ok(()) => {
                    summary.delivered += pending.len();
                    return Ok(());
                }
                Err(error) if error.retry == Retry::Stop => return Err(RuntimeError::TargetStopped(error.message)),
                Err(error) => error,
            };
            let failed = failed_indices(&error, pending.len());
            summary.delivered += pending.len() - failed.len();
            let mut slots: Vec<Option<Box<RawValue>>> = pending.into_iter().map(Some).collect();
            let permanent: HashSet<usize> = error.permanent.iter().copied().collect();
            let (mut given_up, mut retry) = (Vec::new(), Vec::new());
            for index in failed {
                let Some(event) = slots[index].take() else { continue };
                if error.retry == Retry::Permanent || permanent.contains(&index) {
                    given_up.push(event);
                } else {
                    retry.push(event);
                }
            }
            warn!(
                failed = given_up.len() + retry.len(),
                permanent = given_up.len(),
                attempt = attempts,
                reason = %error.message,
                "delivery failed"
            );
            if attempts > self.policy.max_retry_attempts {
                given_up.append(&mut retry);
            }
            if !given_up.is_empty() {
                let undelivered = undelivered_records(records, &given_up);
                let reason = format!("{} event(s) not delivered: {}", given_up.len(), error.message);
                let letter =
                    Letter { stage: Stage::Delivery, reason: &reason, detail: error.detail.as_deref(), attempts };
                self.dead_letter(letter, shard_id, &undelivered, summary).await?;
            }
            pending = retry;
            if !pending.is_empty() {
                summary.retried += 1;
                tokio::time::sleep(self.policy.backoff.delay(attempts)).await;
            }
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        letter: Letter<'_>,
        shard_id: &str,
        records: &[&Record],
        summary: &mut Summary,
    ) -> Result<(), RuntimeError> {
        let raws: Vec<&RawValue> = records.iter().map(|r| &*r.raw).collect();
        let full_reason = match letter.detail {
            Some(detail) => format!("{}; {detail}", letter.reason),
            None => letter.reason.to_owned(),
        };
        let dead_letter = DeadLetter {
            pipe: &self.pipe,
            stage: letter.stage,
            reason: &full_reason,
            attempts: letter.attempts,
            shard_id,
            first_sequence_number: records.iter().find_map(|r| r.sequence_number.as_deref()),
            last_sequence_number: records.iter().rev().find_map(|r| r.sequence_number.as_deref()),
            record_count: records.len(),
            records: &raws,
        };
        let event_ids: Vec<&str> = records.iter().filter_map(|r| r.event_id.as_deref()).collect();
        if self.source.redelivers() {
            // The queue hands them out again after the visibility timeout; its redrive policy
            // moves them to its dead-letter queue after maxReceiveCount receives.
            warn!(stage = letter.stage.as_str(), records = records.len(), message_ids = ?event_ids, reason = letter.reason, "failed, left in the queue");
            for id in &event_ids {
                self.source.release(id);
            }
            summary.returned_to_queue += records.len();
            return Ok(());
        }
        warn!(stage = letter.stage.as_str(), records = records.len(), event_ids = ?event_ids, reason = letter.reason, "batch dead-lettered");
        self.dead_letters.write(&dead_letter).await?;
        summary.dead_lettered += records.len();
        Ok(())
    }
}

/// Why records are dead-lettered: `reason` is logged, `detail` only written into the letter.
struct Letter<'a> {
    stage: Stage,
    reason: &'a str,
    detail: Option<&'a str>,
    attempts: u32,
}

/// The indices a failed delivery asks to re-deliver (all when it names none).
fn failed_indices(error: &DeliveryError, len: usize) -> Vec<usize> {
    let mut failed: Vec<usize> = error.failed.iter().copied().filter(|&i| i < len).collect();
    failed.sort_unstable();
    failed.dedup();
    if failed.is_empty() { (0..len).collect() } else { failed }
}

/// The records whose events are `undelivered` (matched by eventID = correlationId); all of
/// them when an event cannot be matched, so a record is never lost.
fn undelivered_records<'r>(records: &'r [Record], undelivered: &[Box<RawValue>]) -> Vec<&'r Record> {
    let known: HashSet<&str> = records.iter().filter_map(|r| r.event_id.as_deref()).collect();
    let mut ids: HashSet<String> = HashSet::with_capacity(undelivered.len());
    for event in undelivered {
        let id = serde_json::from_str::<EventProbe<'_>>(event.get())
            .ok()
            .and_then(|p| p.correlation_id.or(p.event_id).or(p.message_id));
        match id {
            Some(id) if known.contains(&*id) => ids.insert(id.into_owned()),
            _ => return records.iter().collect(),
        };
    }
    records.iter().filter(|r| r.event_id.as_ref().is_some_and(|id| ids.contains(id))).collect()
}

fn progress_bar(total: Option<usize>) -> indicatif::ProgressBar {
    let bar = match total {
        Some(total) => indicatif::ProgressBar::new(total as u64),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} records ({per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests;
