//! A file of stream records (a JSON array as Pipes sends it, or NDJSON: one record per line),
//! stdin, or the embedded demo batch: the source that needs no AWS services.

use std::{cmp::Ordering, collections::VecDeque, io::Read, path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::SourceBatch;

/// The checkpoint key (shard id) of a file source.
pub const FILE_SHARD_ID: &str = "file";

/// Why a file of records cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    /// The file (or stdin) cannot be read.
    #[error("cannot read {input}: {source}")]
    Read {
        /// The file, or `stdin`.
        input: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON array input that does not parse. Only the position is given: messages of the
    /// JSON parser can quote record content.
    #[error("{input}: not a JSON array of records ({what} at line {line} column {column})")]
    Array {
        /// The file, or `stdin`.
        input: String,
        /// The kind of error.
        what: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An NDJSON line that is not one JSON object.
    #[error("{input} line {line}: {what}")]
    Line {
        /// The file, or `stdin`.
        input: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A record of a JSON array that is not an object.
    #[error("{input}: record {index} (0-based) is not a JSON object")]
    NotAnObject {
        /// The file, or `stdin`.
        input: String,
        /// Its position.
        index: usize,
    },
}

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum FileInput {
    /// Text compiled into the binary (the demo batch).
    Embedded(&'static str),
    /// A file.
    Path(PathBuf),
    /// Standard input.
    Stdin,
}

impl FileInput {
    fn name(&self) -> String {
        match self {
            FileInput::Embedded(_) => "the embedded demo batch".to_owned(),
            FileInput::Path(path) => path.display().to_string(),
            FileInput::Stdin => "stdin".to_owned(),
        }
    }
}

/// Settings of a file source.
#[derive(Debug, Clone)]
pub struct FileSourceOptions {
    /// Records per batch (the pipe's `BatchSize`).
    pub batch_size: usize,
    /// `eventSourceARN` given to records that have none (the pipe's `Source`); `None` keeps records as they are.
    pub source_arn: Option<String>,
    /// Resume after this `dynamodb.SequenceNumber` (the checkpoint): records at or before it are
    /// skipped. Records without a sequence number are always read (at-least-once).
    pub resume_after: Option<String>,
    /// Each record is an EventBridge event to hand over as the SQS message an EventBridge rule
    /// with this queue as target would have delivered (for a pipe with an SQS source).
    pub as_sqs_messages: Option<SqsMessageWrapping>,
}

/// The queue a file of EventBridge events stands in for: its messages' `eventSourceARN` and
/// `awsRegion`.
#[derive(Debug, Clone)]
pub struct SqsMessageWrapping {
    /// The queue's ARN.
    pub queue_arn: String,
    /// Its region.
    pub region: String,
}

impl SqsMessageWrapping {
    /// `event` (compact JSON) as the message an EventBridge rule → SQS target delivers, in the
    /// shape Pipes hands the enrichment: the event as `body`, a new `messageId`, received once.
    fn wrap(&self, event: &RawValue) -> Box<RawValue> {
        use std::collections::BTreeMap;

        use crate::source::sqs::{PipesMessageAttribute, PipesSqsMessage};
        let message_id = random_uuid();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let now = now.to_string();
        let receipt_handle = format!("local-file-{message_id}");
        let md5_of_body = crate::source::md5::md5_hex(event.get().as_bytes());
        let message = PipesSqsMessage {
            message_id: &message_id,
            receipt_handle: &receipt_handle,
            body: event.get(),
            attributes: BTreeMap::from([
                ("ApproximateReceiveCount", "1"),
                ("SentTimestamp", now.as_str()),
                ("SenderId", EVENTBRIDGE_SENDER_ID),
                ("ApproximateFirstReceiveTimestamp", now.as_str()),
            ]),
            message_attributes: BTreeMap::<&str, PipesMessageAttribute<'_>>::new(),
            md5_of_body: &md5_of_body,
            md5_of_message_attributes: None,
            event_source: "aws:sqs",
            event_source_arn: &self.queue_arn,
            aws_region: &self.region,
        };
        serde_json::value::to_raw_value(&message).expect("a message serializes")
    }
}

/// `SenderId` of the messages made up for a file of events (EventBridge sends as a service;
/// the real id is not documented, so this one says where it came from).
const EVENTBRIDGE_SENDER_ID: &str = "events.amazonaws.com";

/// A random (version 4) UUID, as SQS message ids are.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// One record and its sequence number.
#[derive(Debug)]
struct Record {
    raw: Box<RawValue>,
    sequence_number: Option<String>,
}

/// The records of a file, handed out in batches of `batch_size`.
#[derive(Debug)]
pub struct FileSource {
    records: VecDeque<Record>,
    batch_size: usize,
    total: usize,
    skipped_by_checkpoint: usize,
    options: FileSourceOptions,
    /// Live NDJSON on stdin, read as it comes (batches wait up to `window` to fill).
    stream: Option<LineStream>,
}

#[derive(Debug)]
struct LineStream {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
    line: usize,
    window: Duration,
}

#[derive(Deserialize)]
struct Probe<'a> {
    /// As written, `null` included (`Option<&RawValue>` alone would read `null` as absent).
    #[serde(rename = "eventSourceARN", borrow, default, deserialize_with = "present")]
    event_source_arn: Option<&'a RawValue>,
    dynamodb: Option<ProbeStream>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct ProbeStream {
    #[serde(rename = "SequenceNumber")]
    sequence_number: Option<serde_json::Value>,
}

impl FileSource {
    /// Reads and checks every record of `input`.
    pub fn open(input: &FileInput, options: &FileSourceOptions) -> Result<Self, FileSourceError> {
        let name = input.name();
        let read_error = |source| FileSourceError::Read { input: name.clone(), source };
        let text = match input {
            FileInput::Embedded(text) => (*text).to_owned(),
            FileInput::Path(path) => std::fs::read_to_string(path).map_err(read_error)?,
            FileInput::Stdin => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(read_error)?;
                text
            }
        };
        Self::from_text(&text, &name, options)
    }

    fn from_text(text: &str, name: &str, options: &FileSourceOptions) -> Result<Self, FileSourceError> {
        let mut source = Self {
            records: VecDeque::new(),
            batch_size: options.batch_size.max(1),
            total: 0,
            skipped_by_checkpoint: 0,
            options: options.clone(),
            stream: None,
        };
        for (position, raw) in parse_records(text, name)? {
            if let Some(record) = source.accept(raw, position, name)? {
                source.records.push_back(record);
            }
        }
        source.total = source.records.len();
        Ok(source)
    }

    /// Stdin read as it comes: NDJSON is batched live (a batch is handed over when it holds
    /// `batch_size` records or `window` has passed since its first record, as Pipes does); a
    /// JSON array is read whole.
    pub async fn stdin(options: &FileSourceOptions, window: Duration) -> Result<Self, FileSourceError> {
        use tokio::io::AsyncBufReadExt;
        let name = FileInput::Stdin.name();
        let read_error = |source| FileSourceError::Read { input: name.clone(), source };
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut line = 0;
        let mut source = Self::from_text("", &name, options)?;
        while let Some(text) = lines.next_line().await.map_err(read_error)? {
            line += 1;
            if text.trim().is_empty() {
                continue;
            }
            if text.trim_start().starts_with('[') {
                // A JSON array: the rest of the input belongs to it.
                let mut whole = "\n".repeat(line - 1) + &text + "\n";
                while let Some(more) = lines.next_line().await.map_err(read_error)? {
                    whole.push_str(&more);
                    whole.push('\n');
                }
                return Self::from_text(&whole, &name, options);
            }
            if let Some(record) = source.accept(parse_line(&text, line, &name)?, Position::Line(line), &name)? {
                source.records.push_back(record);
            }
            break;
        }
        source.stream = Some(LineStream { lines, line, window });
        Ok(source)
    }

    /// Checks one record: `None` when the checkpoint says it was delivered already.
    fn accept(
        &mut self,
        raw: Box<RawValue>,
        position: Position,
        name: &str,
    ) -> Result<Option<Record>, FileSourceError> {
        // Only an object: serde would also read the probe's struct from an array (`[null, null]`),
        // which the source ARN is then spliced into as if it were an object.
        let probe = if raw.get().starts_with('{') { serde_json::from_str::<Probe<'_>>(raw.get()).ok() } else { None };
        let probe = probe.ok_or_else(|| match position {
            Position::Line(line) => {
                FileSourceError::Line { input: name.to_owned(), line, what: "not a JSON object".to_owned() }
            }
            Position::Index(index) => FileSourceError::NotAnObject { input: name.to_owned(), index },
        })?;
        let source_arn = match probe.event_source_arn {
            None => SourceArn::Missing,
            Some(arn) if arn.get() == "null" => SourceArn::Null,
            Some(_) => SourceArn::Given,
        };
        let sequence_number = probe.dynamodb.and_then(|d| d.sequence_number).and_then(|n| match n {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        if let (Some(checkpoint), Some(sequence)) = (&self.options.resume_after, &sequence_number)
            && compare_sequence_numbers(sequence, checkpoint) != Ordering::Greater
        {
            self.skipped_by_checkpoint += 1;
            return Ok(None);
        }
        // Pipes hands records over compact; an NDJSON output needs them on one line too.
        let raw = match crate::target::ndjson::single_line(raw.get()) {
            Some(line) => RawValue::from_string(line).expect("whitespace removal keeps JSON valid"),
            None => raw,
        };
        if let Some(wrapping) = &self.options.as_sqs_messages {
            return Ok(Some(Record { raw: wrapping.wrap(&raw), sequence_number: None }));
        }
        let raw = match (&self.options.source_arn, source_arn) {
            (Some(arn), SourceArn::Missing) => with_source_arn(&raw, arn),
            (Some(arn), SourceArn::Null) => replace_source_arn(&raw, arn),
            _ => raw,
        };
        Ok(Some(Record { raw, sequence_number }))
    }

    /// Reads live lines until the batch is full, the window has passed or the input ends.
    async fn fill_from_stream(&mut self) -> Result<(), FileSourceError> {
        let Some(mut stream) = self.stream.take() else { return Ok(()) };
        let name = FileInput::Stdin.name();
        let mut deadline = (!self.records.is_empty()).then(|| tokio::time::Instant::now() + stream.window);
        let mut ended = false;
        while self.records.len() < self.batch_size {
            let next = match deadline {
                // `next_line` is cancellation safe: a line cut off by the window is read next time.
                Some(deadline) => match tokio::time::timeout_at(deadline, stream.lines.next_line()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => stream.lines.next_line().await,
            };
            let Some(text) = next.map_err(|source| FileSourceError::Read { input: name.clone(), source })? else {
                ended = true;
                break;
            };
            stream.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            let raw = parse_line(&text, stream.line, &name)?;
            if let Some(record) = self.accept(raw, Position::Line(stream.line), &name)? {
                self.records.push_back(record);
                self.total += 1;
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + stream.window);
            }
        }
        if !ended {
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Records to read (after the checkpoint), for a progress bar; for live stdin, those seen so far.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether records are still read live from stdin (the total is not known).
    pub fn is_live(&self) -> bool {
        self.stream.is_some()
    }

    /// Records skipped because the checkpoint says they were delivered already.
    pub fn skipped_by_checkpoint(&self) -> usize {
        self.skipped_by_checkpoint
    }

    /// Every remaining record, unbatched.
    pub fn into_records(self) -> impl Iterator<Item = Box<RawValue>> {
        self.records.into_iter().map(|record| record.raw)
    }

    /// The next batch of at most `batch_size` records; `None` at the end of the file.
    pub async fn next_batch(&mut self) -> Result<Option<SourceBatch>, FileSourceError> {
        self.fill_from_stream().await?;
        if self.records.is_empty() {
            return Ok(None);
        }
        let take = self.batch_size.min(self.records.len());
        let mut last_sequence_number = None;
        let records = self
            .records
            .drain(..take)
            .map(|record| {
                if record.sequence_number.is_some() {
                    last_sequence_number = record.sequence_number;
                }
                record.raw
            })
            .collect();
        Ok(Some(SourceBatch { shard_id: FILE_SHARD_ID.to_owned(), records, last_sequence_number }))
    }
}

enum Position {
    Line(usize),
    Index(usize),
}

/// A JSON array, or NDJSON (blank lines allowed).
fn parse_records(text: &str, name: &str) -> Result<Vec<(Position, Box<RawValue>)>, FileSourceError> {
    if text.trim_start().starts_with('[') {
        let records: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(|error| FileSourceError::Array {
            input: name.to_owned(),
            what: json_error_kind(&error),
            line: error.line(),
            column: error.column(),
        })?;
        return Ok(records.into_iter().enumerate().map(|(i, raw)| (Position::Index(i), raw)).collect());
    }
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        records.push((Position::Line(index + 1), parse_line(line, index + 1, name)?));
    }
    Ok(records)
}

fn parse_line(text: &str, line: usize, name: &str) -> Result<Box<RawValue>, FileSourceError> {
    serde_json::from_str(text).map_err(|error| FileSourceError::Line {
        input: name.to_owned(),
        line,
        what: format!("{} at column {}", json_error_kind(&error), error.column()),
    })
}

fn json_error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "unexpected JSON",
        serde_json::error::Category::Io => "unreadable input",
    }
}

/// The record with `eventSourceARN` added first, the rest of its text untouched (key order,
/// number spelling): no parse and re-serialize per record.
fn with_source_arn(raw: &RawValue, arn: &str) -> Box<RawValue> {
    let rest = raw.get().strip_prefix('{').expect("checked to be an object");
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    let arn = serde_json::to_string(arn).expect("a string serializes");
    RawValue::from_string(format!("{{\"eventSourceARN\":{arn}{separator}{rest}")).expect("still one JSON object")
}

/// A record's own `eventSourceARN`.
#[derive(Debug, Clone, Copy)]
enum SourceArn {
    Missing,
    Null,
    Given,
}

/// The record with its `eventSourceARN: null` replaced (rare: re-serialized, keys sorted).
fn replace_source_arn(raw: &RawValue, arn: &str) -> Box<RawValue> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw.get()).expect("checked to be an object");
    object.insert("eventSourceARN".to_owned(), arn.into());
    serde_json::value::to_raw_value(&object).expect("a map always serializes")
}

/// Orders DynamoDB sequence numbers (decimal strings of up to 40 digits) numerically.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(batch_size: usize, resume_after: Option<&str>) -> FileSourceOptions {
        FileSourceOptions {
            batch_size,
            source_arn: Some("arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/S".to_owned()),
            resume_after: resume_after.map(str::to_owned),
            as_sqs_messages: None,
        }
    }

    #[tokio::test]
    async fn eventbridge_events_become_the_sqs_messages_a_rule_would_deliver() {
        let event = r#"{"version":"0","id":"e-1","detail-type":"Import Job Completed","source":"aws.healthlake","detail":{"datastoreId":"d"}}"#;
        let text = format!("{event}\n{{ \"id\": \"e-2\" }}\n");
        let queue_arn = "arn:aws:sqs:eu-west-1:000000000000:ChangeCaptureQueue";
        let options = FileSourceOptions {
            batch_size: 10,
            source_arn: Some(queue_arn.to_owned()),
            resume_after: None,
            as_sqs_messages: Some(SqsMessageWrapping { queue_arn: queue_arn.to_owned(), region: "eu-west-1".into() }),
        };
        let mut source = FileSource::open(&FileInput::Embedded(text.leak()), &options).unwrap();
        let batches = drain(&mut source).await;
        let messages: Vec<serde_json::Value> =
            batches[0].records.iter().map(|r| serde_json::from_str(r.get()).unwrap()).collect();
        assert_eq!(messages.len(), 2);
        let first = &messages[0];
        assert_eq!(first["body"], event, "the event, byte for byte, as the body");
        assert_eq!(messages[1]["body"], r#"{ "id": "e-2" }"#, "a line as written");
        assert_eq!(first["md5OfBody"], crate::source::md5::md5_hex(event.as_bytes()));
        assert_eq!(
            (first["eventSource"].as_str(), first["eventSourceARN"].as_str()),
            (Some("aws:sqs"), Some(queue_arn))
        );
        assert_eq!(
            (first["awsRegion"].as_str(), first["attributes"]["ApproximateReceiveCount"].as_str()),
            (Some("eu-west-1"), Some("1"))
        );
        assert!(first["attributes"]["SentTimestamp"].as_str().unwrap().parse::<u64>().is_ok());
        assert_eq!(first["messageAttributes"], serde_json::json!({}));
        let id = first["messageId"].as_str().unwrap();
        assert!(id.len() == 36 && id.as_bytes()[14] == b'4' && id != messages[1]["messageId"], "{id}");
        assert!(first["receiptHandle"].as_str().is_some());
        assert_eq!(batches[0].last_sequence_number, None);
    }

    fn record(id: &str, sequence: u64) -> String {
        format!(r#"{{"eventID":"{id}","eventName":"REMOVE","dynamodb":{{"SequenceNumber":"{sequence}"}}}}"#)
    }

    async fn drain(source: &mut FileSource) -> Vec<SourceBatch> {
        let mut batches = Vec::new();
        while let Some(batch) = source.next_batch().await.unwrap() {
            batches.push(batch);
        }
        batches
    }

    #[test]
    fn the_source_arn_is_added_without_touching_the_rest_of_the_record() {
        let record = RawValue::from_string(r#"{"z":1.50,"a":{"N":"12345678901234567890123"}, "m":"\u00e9"}"#.into());
        let arn = r#"arn:aws:dynamodb:us-east-1:0:table/T/stream/"q""#;
        assert_eq!(
            with_source_arn(&record.unwrap(), arn).get(),
            r#"{"eventSourceARN":"arn:aws:dynamodb:us-east-1:0:table/T/stream/\"q\"","z":1.50,"a":{"N":"12345678901234567890123"}, "m":"\u00e9"}"#
        );
        let empty = RawValue::from_string("{ }".into()).unwrap();
        assert_eq!(with_source_arn(&empty, "arn").get(), r#"{"eventSourceARN":"arn" }"#);
    }

    #[tokio::test]
    async fn a_null_source_arn_is_replaced_not_given_twice() {
        let text = r#"{"eventID":"a","eventSourceARN":null,"dynamodb":{"SequenceNumber":"1"}}"#;
        let mut source = FileSource::open(&FileInput::Embedded(text), &options(1, None)).unwrap();
        let batches = drain(&mut source).await;
        let record = batches[0].records[0].get();
        assert_eq!(record.matches("eventSourceARN").count(), 1, "{record}");
        let record: serde_json::Value = serde_json::from_str(record).unwrap();
        assert_eq!(record["eventSourceARN"], "arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/S");
    }

    #[tokio::test]
    async fn ndjson_in_batches_with_the_source_arn_added() {
        let text = format!("{}\n\n{}\n{}\n", record("a", 1), record("b", 2), record("c", 10));
        let mut source = FileSource::open(&FileInput::Embedded(text.leak()), &options(2, None)).unwrap();
        assert_eq!(source.total(), 3);
        let batches = drain(&mut source).await;
        assert_eq!(batches.iter().map(|b| b.records.len()).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(batches[0].last_sequence_number.as_deref(), Some("2"));
        assert_eq!(batches[1].last_sequence_number.as_deref(), Some("10"));
        assert_eq!(batches[0].shard_id, FILE_SHARD_ID);
        let first: serde_json::Value = serde_json::from_str(batches[0].records[0].get()).unwrap();
        assert_eq!(first["eventSourceARN"], "arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/S");
    }

    #[tokio::test]
    async fn a_json_array_keeps_its_own_source_arn_and_resumes_after_the_checkpoint() {
        let text = r#"[{"eventID":"a","eventSourceARN":"mine","dynamodb":{"SequenceNumber":"9"}},
                       {"eventID":"b","dynamodb":{"SequenceNumber":"10"}},
                       {"eventID":"c"}]"#;
        let mut source = FileSource::open(&FileInput::Embedded(text), &options(10, Some("9"))).unwrap();
        assert_eq!((source.total(), source.skipped_by_checkpoint()), (2, 1));
        let batches = drain(&mut source).await;
        let ids: Vec<serde_json::Value> =
            batches[0].records.iter().map(|r| serde_json::from_str(r.get()).unwrap()).collect();
        assert_eq!((ids[0]["eventID"].as_str(), ids[1]["eventID"].as_str()), (Some("b"), Some("c")));
        let mut source = FileSource::open(&FileInput::Embedded(text), &options(10, None)).unwrap();
        let first: serde_json::Value = serde_json::from_str(drain(&mut source).await[0].records[0].get()).unwrap();
        assert_eq!(first["eventSourceARN"], "mine");
    }

    #[test]
    fn malformed_input_names_the_line_and_quotes_nothing() {
        let text = format!("{}\n{{\"firstName\": \"Quennell\"\n", record("a", 1));
        let error = FileSource::open(&FileInput::Embedded(text.leak()), &options(1, None)).unwrap_err();
        assert!(matches!(error, FileSourceError::Line { line: 2, .. }), "{error}");
        assert!(!error.to_string().contains("Quennell"));
        let error = FileSource::open(&FileInput::Embedded("[\"Quennell\"]"), &options(1, None)).unwrap_err();
        assert!(matches!(error, FileSourceError::NotAnObject { index: 0, .. }), "{error}");
        assert!(!error.to_string().contains("Quennell"));
        let text = "[{\"firstName\": \"Quennell\"},,]";
        let error = FileSource::open(&FileInput::Embedded(text), &options(1, None)).unwrap_err();
        assert!(error.to_string().contains("line 1") && !error.to_string().contains("Quennell"), "{error}");
        let error = FileSource::open(&FileInput::Path("/nonexistent/records.json".into()), &options(1, None));
        assert!(error.unwrap_err().to_string().contains("/nonexistent/records.json"));
    }

    #[test]
    fn regression_an_array_record_is_not_an_object() {
        // Reproduced with the state_files fuzz target: an array record read as the probe struct, then
        // treated as an object when its `null` first element was taken for `eventSourceARN`.
        let error = FileSource::open(&FileInput::Embedded("[[null,null]]"), &options(1, None)).unwrap_err();
        assert!(matches!(error, FileSourceError::NotAnObject { index: 0, .. }), "{error}");
        let error = FileSource::open(&FileInput::Embedded("{}\n[\"arn\",{}]\n"), &options(1, None)).unwrap_err();
        assert!(matches!(error, FileSourceError::Line { line: 2, .. }), "{error}");
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(compare_sequence_numbers("0010", "10"), Ordering::Equal);
        assert_eq!(compare_sequence_numbers("900000000000000000000002", "900000000000000000000001"), Ordering::Greater);
    }
}
