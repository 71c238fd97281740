use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use super::*;
use crate::{
    source::file::{FileInput, FileSourceOptions},
    template::Template,
};

/// `count` REMOVE records `e0..`, sequence numbers `1..`; those in `bad` lack their Keys.
fn records(count: usize, bad: &[usize]) -> String {
    (0..count)
        .map(|i| {
            let keys = if bad.contains(&i) { String::new() } else { format!(r#""Keys":{{"id":{{"S":"p{i}"}}}},"#) };
            format!(r#"{{"eventID":"e{i}","eventName":"REMOVE","dynamodb":{{{keys}"SequenceNumber":"{}"}}}}"#, i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a scripted target was given, and what it answers next.
#[derive(Clone, Default)]
struct Script {
    delivered: Arc<Mutex<Vec<Value>>>,
    attempts: Arc<Mutex<usize>>,
    answers: Arc<Mutex<VecDeque<Result<(), DeliveryError>>>>,
}

impl Script {
    fn answering(answers: Vec<Result<(), DeliveryError>>) -> Self {
        Self { answers: Arc::new(Mutex::new(answers.into())), ..Self::default() }
    }

    fn correlation_ids(&self) -> Vec<String> {
        let delivered = self.delivered.lock().unwrap();
        delivered.iter().map(|e| e["correlationId"].as_str().unwrap().to_owned()).collect()
    }
}

impl CustomTarget for Script {
    fn deliver<'a>(
        &'a mut self,
        events: &'a [Box<RawValue>],
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            *self.attempts.lock().unwrap() += 1;
            let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
            // Keep what was accepted: everything on success, all but `failed` on a partial failure.
            let accepted: Vec<usize> = match &answer {
                Ok(()) => (0..events.len()).collect(),
                Err(error) if !error.failed.is_empty() => {
                    (0..events.len()).filter(|i| !error.failed.contains(i)).collect()
                }
                Err(_) => Vec::new(),
            };
            let mut delivered = self.delivered.lock().unwrap();
            delivered.extend(accepted.iter().map(|&i| serde_json::from_str::<Value>(events[i].get()).unwrap()));
            answer
        })
    }
}

struct Setup {
    parameters: Vec<String>,
    input: String,
    dead_letter: std::path::PathBuf,
    state: Option<std::path::PathBuf>,
    max_batches: Option<usize>,
}

fn runtime(setup: &Setup, target: Target) -> Runtime {
    let template = Template::load(&template_path()).unwrap();
    let pipe = template.pipe(None, &setup.parameters).unwrap();
    let checkpoints = match &setup.state {
        Some(path) => Checkpoints::load(path).unwrap(),
        None => Checkpoints::in_memory(),
    };
    let options = FileSourceOptions {
        batch_size: pipe.stream.batch_size,
        source_arn: Some(pipe.source_arn.clone()),
        resume_after: checkpoints.get("file").map(str::to_owned),
        as_sqs_messages: None,
    };
    let input = FileInput::Embedded(setup.input.clone().leak());
    Runtime {
        pipe: pipe.logical_id.clone(),
        source: Source::File(FileSource::open(&input, &options).unwrap()),
        filters: pipe.filters.clone(),
        enrichment: Enrichment::in_process(pipe.enrichment.as_ref().unwrap(), None).unwrap(),
        target,
        checkpoints,
        dead_letters: DeadLetterSink::File(DeadLetterFile::new(&setup.dead_letter)),
        policy: Policy {
            max_retry_attempts: pipe.stream.local_retry_attempts(),
            bisect: pipe.stream.bisect_on_failure,
            backoff: Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(4) },
            max_batches: setup.max_batches,
            maximum_record_age: pipe.stream.maximum_record_age(),
        },
        progress: false,
    }
}

fn setup(dir: &Path, parameters: &[&str], input: String) -> Setup {
    Setup {
        parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
        input,
        dead_letter: dir.join("dead-letter.ndjson"),
        state: None,
        max_batches: None,
    }
}

fn dead_letters(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(|line| serde_json::from_str(line).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

#[tokio::test]
async fn a_target_failing_k_times_then_succeeding_gets_everything_once_after_k_retries() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::answering(vec![
        Err(DeliveryError::retryable("ThrottlingException")),
        Err(DeliveryError::retryable("HTTP 503")),
        Err(DeliveryError::retryable("HTTP 500")),
    ]);
    let setup = setup(dir.path(), &["BatchSize=4"], records(6, &[]));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!(script.correlation_ids(), ids(0..6));
    assert_eq!((summary.read, summary.enriched, summary.delivered), (6, 6, 6));
    assert_eq!((summary.retried, summary.dead_lettered, summary.batches), (3, 0, 2));
    assert_eq!(*script.attempts.lock().unwrap(), 5);
    assert!(dead_letters(&setup.dead_letter).is_empty());
}

#[tokio::test]
async fn a_partial_failure_redelivers_only_the_failed_events() {
    let dir = tempfile::tempdir().unwrap();
    let partial = DeliveryError { failed: vec![1, 3], ..DeliveryError::retryable("2 entries failed") };
    let script = Script::answering(vec![Err(partial)]);
    let setup = setup(dir.path(), &[], records(5, &[]));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!(script.correlation_ids(), ["e0", "e2", "e4", "e1", "e3"]);
    assert_eq!((summary.delivered, summary.retried), (5, 1));
}

#[tokio::test]
async fn a_target_that_always_fails_dead_letters_the_batch_with_its_records_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let failures = (0..3).map(|_| Err(DeliveryError::retryable("HTTP 503"))).collect();
    let script = Script::answering(failures);
    let mut setup = setup(dir.path(), &["BatchSize=3", "MaximumRetryAttempts=2"], records(5, &[]));
    setup.state = Some(dir.path().join("state.json"));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    // First batch: 1 try + 2 retries, then dead-lettered; the second batch goes through.
    assert_eq!(script.correlation_ids(), ids(3..5));
    assert_eq!((summary.delivered, summary.retried, summary.dead_lettered), (2, 2, 3));
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!((letter["stage"].as_str(), letter["attempts"].as_u64()), (Some("delivery"), Some(3)));
    assert_eq!((letter["shardId"].as_str(), letter["pipe"].as_str()), (Some("file"), Some("PatientPipe")));
    assert_eq!((letter["firstSequenceNumber"].as_str(), letter["lastSequenceNumber"].as_str()), (Some("1"), Some("3")));
    let record_ids: Vec<&str> =
        letter["records"].as_array().unwrap().iter().map(|r| r["eventID"].as_str().unwrap()).collect();
    assert_eq!(record_ids, ["e0", "e1", "e2"]);
    assert!(letter["reason"].as_str().unwrap().contains("HTTP 503"));
    // Dead-lettered counts as done: the checkpoint moved past it.
    assert_eq!(Checkpoints::load(setup.state.as_ref().unwrap()).unwrap().get("file"), Some("5"));
}

#[tokio::test]
async fn a_target_that_cannot_take_events_stops_the_run_without_dead_lettering_or_checkpointing_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let gone = DeliveryError::of(Retry::Stop, Vec::new(), "cannot write to stdout: broken pipe");
    let script = Script::answering(vec![Ok(()), Err(gone)]);
    let mut setup = setup(dir.path(), &["BatchSize=2"], records(5, &[]));
    setup.state = Some(dir.path().join("state.json"));
    let error = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap_err();
    assert!(matches!(&error, RuntimeError::TargetStopped(message) if message.contains("broken pipe")), "{error}");
    assert_eq!(*script.attempts.lock().unwrap(), 2, "not retried");
    assert!(!setup.dead_letter.exists(), "nothing dead-lettered");
    // The first batch is done; the second resumes on the next run.
    assert_eq!(Checkpoints::load(setup.state.as_ref().unwrap()).unwrap().get("file"), Some("2"));
}

#[tokio::test]
async fn a_permanent_failure_is_not_retried_and_dead_letters_only_the_failed_events_records() {
    let dir = tempfile::tempdir().unwrap();
    let too_large = DeliveryError { failed: vec![2], ..DeliveryError::permanent("event too large") };
    let script = Script::answering(vec![Err(too_large)]);
    let setup = setup(dir.path(), &[], records(4, &[]));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!(script.correlation_ids(), ["e0", "e1", "e3"]);
    assert_eq!((summary.delivered, summary.retried, summary.dead_lettered), (3, 0, 1));
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(letters[0]["records"][0]["eventID"], "e2");
    assert_eq!(letters[0]["recordCount"], 1);
}

/// Regression: without an enrichment the events are the records, which carry no
/// correlationId: a partial failure dead-lettered the whole batch, delivered records included.
#[tokio::test]
async fn regression_without_enrichment_a_partial_failure_dead_letters_only_the_failed_record() {
    let dir = tempfile::tempdir().unwrap();
    let refused = DeliveryError { failed: vec![1], ..DeliveryError::permanent("event too large") };
    let script = Script::answering(vec![Err(refused)]);
    let setup = setup(dir.path(), &[], records(3, &[]));
    let mut runtime = runtime(&setup, Target::Custom(Box::new(script.clone())));
    runtime.enrichment = Enrichment::None;
    let summary = runtime.run().await.unwrap();
    assert_eq!((summary.delivered, summary.dead_lettered), (2, 1));
    let letters = dead_letters(&setup.dead_letter);
    let ids: Vec<&Value> =
        letters.iter().flat_map(|l| l["records"].as_array().unwrap()).map(|r| &r["eventID"]).collect();
    assert_eq!(ids, ["e1"]);
}

#[tokio::test]
async fn permanent_failures_among_retryable_ones_are_dead_lettered_at_once_with_their_detail() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = DeliveryError {
        failed: vec![1, 2],
        permanent: vec![1],
        detail: Some("e1: rejected with 400: Invalid value".into()),
        ..DeliveryError::retryable("2 of 4 event(s) not written")
    };
    let script = Script::answering(vec![Err(mixed)]);
    let setup = setup(dir.path(), &[], records(4, &[]));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    // e1 is not tried again; e2 is, and gets through.
    assert_eq!(script.correlation_ids(), ["e0", "e3", "e2"]);
    assert_eq!((summary.delivered, summary.retried, summary.dead_lettered), (3, 1, 1));
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["records"][0]["eventID"], "e1");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 of 4 event(s) not written") && reason.ends_with("; e1: rejected with 400: Invalid value"),
        "{reason}"
    );
}

#[tokio::test]
async fn fail_batch_with_one_bad_record_bisects_down_to_it_and_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::default();
    let setup = setup(dir.path(), &["ErrorPolicy=fail-batch", "BatchSize=8"], records(11, &[5]));
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    let expected: Vec<String> = ids(0..11).into_iter().filter(|id| id != "e5").collect();
    assert_eq!(script.correlation_ids(), expected, "the others are delivered, in order");
    assert_eq!((summary.delivered, summary.dead_lettered, summary.failed), (10, 1, 1));
    // 8 -> 4+4 -> 2+2 -> 1+1: three bisections.
    assert_eq!(summary.retried, 3);
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["stage"], "enrichment");
    assert_eq!(letters[0]["records"].as_array().unwrap().len(), 1);
    assert_eq!(letters[0]["records"][0]["eventID"], "e5");
    assert!(letters[0]["reason"].as_str().unwrap().contains("RecordFailed"), "{}", letters[0]["reason"]);
}

#[tokio::test]
async fn the_filter_drops_what_no_pattern_matches() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::default();
    let input =
        records(3, &[]).replacen(r#""eventID":"e1","eventName":"REMOVE""#, r#""eventID":"e1","eventName":"INSERT""#, 1);
    let setup = setup(dir.path(), &["StreamEventNames=INSERT,MODIFY"], input);
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!((summary.read, summary.filtered_out, summary.delivered), (3, 2, 1));
    assert_eq!(script.correlation_ids(), ["e1"], "only the INSERT passes");
}

#[tokio::test]
async fn an_interrupted_run_resumes_after_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::default();
    let mut setup = setup(dir.path(), &["BatchSize=2"], records(7, &[]));
    setup.state = Some(dir.path().join("state.json"));
    setup.max_batches = Some(2);
    let first = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!((first.batches, first.delivered), (2, 4));
    setup.max_batches = None;
    let second = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!((second.read, second.delivered), (3, 3));
    assert_eq!(script.correlation_ids(), ids(0..7));
}

#[tokio::test]
async fn an_enricher_process_that_dies_is_retried_restarted_then_its_records_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::default();
    let setup = setup(dir.path(), &["MaximumRetryAttempts=1", "BatchSize=2"], records(2, &[]));
    let mut runtime = runtime(&setup, Target::Custom(Box::new(script.clone())));
    // A "Lambda binary" that exits at once without asking for work.
    let function = Template::load(&template_path()).unwrap().pipe(None, &[]).unwrap().enrichment.unwrap();
    runtime.enrichment = Enrichment::binary(&function, Path::new("true")).await.unwrap();
    let summary = runtime.run().await.unwrap();
    assert!(script.correlation_ids().is_empty());
    // One retry of the pair, one bisection, then each record alone has used up its retries.
    assert_eq!((summary.retried, summary.dead_lettered, summary.delivered), (2, 2, 0));
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(letters.len(), 2);
    for (letter, id) in letters.iter().zip(["e0", "e1"]) {
        assert_eq!(letter["stage"], "enrichment");
        assert_eq!(letter["records"][0]["eventID"], id);
        assert!(letter["reason"].as_str().unwrap().contains("exited"), "{}", letter["reason"]);
    }
}

#[tokio::test]
async fn records_older_than_the_maximum_record_age_are_dead_lettered_unprocessed() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script::default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let input = records(3, &[])
        .replace(r#""dynamodb":{"#, &format!(r#""dynamodb":{{"ApproximateCreationDateTime":{now},"#))
        .replacen(&format!("{now}"), "1763800000", 1);
    let setup = setup(dir.path(), &["MaximumRecordAgeInSeconds=3600"], input);
    let summary = runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!(script.correlation_ids(), ["e1", "e2"]);
    assert_eq!((summary.delivered, summary.dead_lettered), (2, 1));
    let letters = dead_letters(&setup.dead_letter);
    assert_eq!(
        (letters[0]["stage"].as_str(), letters[0]["records"][0]["eventID"].as_str()),
        (Some("expired"), Some("e0"))
    );
    // Without a limit (-1, the default) the same records all go through.
    let script = Script::default();
    let setup = Setup { parameters: Vec::new(), ..setup };
    runtime(&setup, Target::Custom(Box::new(script.clone()))).run().await.unwrap();
    assert_eq!(script.correlation_ids(), ["e0", "e1", "e2"]);
}

fn template_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")
}

#[tokio::test]
async fn an_endpoint_without_a_stream_names_the_parameter_to_set() {
    // Nothing listens on port 9: the error must come before any call.
    let config = RunConfig {
        template: Some(template_path()),
        endpoint_url: Some("http://127.0.0.1:9".to_owned()),
        ..RunConfig::default()
    };
    assert!(config.reads_stream() && config.uses_aws());
    let error = config.build().await.unwrap_err().to_string();
    assert!(error.contains("PatientTableStreamArn") && error.contains("--table"), "{error}");
}

#[tokio::test]
async fn a_stream_arn_and_a_table_together_are_refused() {
    let config = RunConfig {
        template: Some(template_path()),
        stream_arn: Some("arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/1".to_owned()),
        table: Some("T".to_owned()),
        ..RunConfig::default()
    };
    let error = config.build().await.unwrap_err().to_string();
    assert!(error.contains("not both"), "{error}");
}

#[test]
fn an_input_file_with_an_endpoint_reads_the_file_but_uses_aws_for_the_target() {
    let config = RunConfig {
        input: Some("records.json".into()),
        endpoint_url: Some("http://127.0.0.1:9".to_owned()),
        ..RunConfig::default()
    };
    assert!(!config.reads_stream() && config.uses_aws());
    assert!(!RunConfig::default().uses_aws());
}
