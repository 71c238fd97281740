//! `fhir-pipes run` against a moto server started here: a table with a NEW_AND_OLD_IMAGES
//! stream, changes made with the AWS SDK, the runtime reading the stream and delivering to the
//! template's target (CloudWatch Logs, or an EventBridge bus with a rule into SQS). Covers
//! exactly-once under normal running, a SIGKILLed CLI process resumed from its state file, a
//! target that goes down and comes back, and dead letters (file and SQS) past the retry limit.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fhir_pipes::{
    runtime::{LOCAL_LOG_STREAM, RunConfig, Summary},
    source::dynamodb_streams::DynamoDbStreamsConfig,
    template::{PipeDefinition, TargetKind},
};
use fhir_pipes_e2e::{binaries::fhir_pipes, fixtures_dir, moto::MotoServer, read_ndjson, template_path};
use serde_json::{Value, json};

const TABLE: &str = "Patients";

/// A bound on every wait for a process or a server: a guard against hanging, not a timing test.
const GUARD: Duration = Duration::from_secs(120);

/// A run of the Patient pipe against `moto`, reading the table's stream from its start.
fn stream_config(moto: &MotoServer, dir: &Path, extra_parameters: &[&str]) -> RunConfig {
    let mut parameters = vec!["StartingPosition=TRIM_HORIZON".to_owned(), "BatchSize=2".to_owned()];
    parameters.extend(extra_parameters.iter().map(|p| (*p).to_owned()));
    RunConfig {
        template: Some(template_path()),
        parameters,
        endpoint_url: Some(moto.endpoint()),
        table: Some(TABLE.to_owned()),
        dead_letter: Some(dir.join("dead-letter.ndjson")),
        poll_interval_ms: Some(50),
        backoff_base_ms: Some(1),
        backoff_cap_ms: Some(5),
        ..RunConfig::default()
    }
}

async fn run(config: &RunConfig) -> (Summary, PipeDefinition) {
    let (runtime, pipe) = config.build().await.unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
    (runtime.run().await.unwrap_or_else(|e| panic!("the run failed: {e}")), pipe)
}

/// Puts, updates (one changing the FHIR resource, one not), deletes.
async fn make_changes(moto: &MotoServer, ids: &[&str]) {
    for id in ids {
        moto.put_patient(TABLE, id, "First").await;
    }
    moto.update_last_name(TABLE, ids[0], "Second").await;
    moto.update_unmapped_note(TABLE, ids[1], "not in FHIR").await;
    moto.delete_patient(TABLE, ids[2]).await;
}

/// The stream's records read independently of the runtime: eventID → the command its event
/// must carry, `None` for a MODIFY that leaves the FHIR resource unchanged (no event).
async fn expected_commands(moto: &MotoServer) -> BTreeMap<String, Option<&'static str>> {
    let config: DynamoDbStreamsConfig = serde_json::from_value(json!({
        "table_name": TABLE, "starting_position": "TRIM_HORIZON", "endpoint_url": moto.endpoint(),
        "stop_when_idle": true, "poll_interval_ms": 50,
    }))
    .unwrap();
    let mut source = config.build().await.expect("stream source");
    let mut expected = BTreeMap::new();
    while let Some(batch) = source.next_batch().await.expect("next_batch") {
        for raw in &batch.records {
            let record: Value = serde_json::from_str(raw.get()).unwrap();
            let images = &record["dynamodb"];
            let command = match record["eventName"].as_str().unwrap() {
                "REMOVE" => Some("DELETE"),
                "MODIFY" if images["OldImage"]["lastName"] == images["NewImage"]["lastName"] => None,
                _ => Some("PUT"),
            };
            expected.insert(record["eventID"].as_str().unwrap().to_owned(), command);
        }
    }
    expected
}

/// What must arrive: correlationId → command, every record but the unchanged MODIFYs.
fn deliverable(expected: &BTreeMap<String, Option<&'static str>>) -> BTreeMap<String, Value> {
    expected.iter().filter_map(|(id, command)| command.map(|c| (id.clone(), Value::from(c)))).collect()
}

fn log_group(pipe: &PipeDefinition) -> String {
    match &pipe.target.kind {
        TargetKind::LogGroup { name } => name.clone(),
        other => panic!("the pipe's target is not a log group: {other:?}"),
    }
}

/// Every event logged, in order.
async fn logged_events(moto: &MotoServer, log_group: &str) -> Vec<Value> {
    let messages = moto.log_messages(log_group, LOCAL_LOG_STREAM).await;
    messages.iter().map(|m| serde_json::from_str(m).expect("one JSON event per log message")).collect()
}

/// correlationId → command, failing on an event that arrives twice.
fn exactly_once<'a>(events: impl Iterator<Item = &'a Value>) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    for event in events {
        let id = event["correlationId"].as_str().expect("a correlationId").to_owned();
        let previous = seen.insert(id.clone(), event["details"]["command"].clone());
        assert!(previous.is_none(), "{id} arrived twice");
    }
    seen
}

#[tokio::test]
async fn every_stream_change_reaches_cloudwatch_logs_exactly_once() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    make_changes(&moto, &["p1", "p2", "p3", "p4"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig { create_target: true, ..stream_config(&moto, dir.path(), &[]) };

    let (summary, pipe) = run(&config).await;

    let expected = expected_commands(&moto).await;
    assert_eq!(expected.len(), 7, "4 INSERTs, 2 MODIFYs, 1 REMOVE: {expected:?}");
    let events = logged_events(&moto, &log_group(&pipe)).await;
    assert_eq!(exactly_once(events.iter()), deliverable(&expected));
    assert_eq!((summary.read, summary.skipped, summary.delivered), (7, 1, 6), "{summary:?}");
    assert_eq!((summary.failed, summary.dead_lettered, summary.retried), (0, 0, 0), "{summary:?}");
    assert!(summary.batches >= 4, "BatchSize=2 over 7 records: {summary:?}");
}

#[tokio::test]
async fn without_create_target_a_missing_log_group_dead_letters_with_a_clear_reason() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    moto.put_patient(TABLE, "p1", "First").await;
    let dir = tempfile::tempdir().unwrap();
    let (summary, pipe) = run(&stream_config(&moto, dir.path(), &[])).await;
    assert_eq!((summary.delivered, summary.dead_lettered), (0, 1), "{summary:?}");
    let letters = read_ndjson(&dir.path().join("dead-letter.ndjson"));
    let [letter] = letters.as_slice() else { panic!("one dead letter: {letters:?}") };
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.contains(&log_group(&pipe)) && reason.contains("--create-target"), "{reason}");
    assert_eq!(letter["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_stream_change_reaches_the_bus_and_its_rule_exactly_once() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = stream_config(&moto, dir.path(), &["TargetType=EventBus"]);
    let pipe = config.pipe_definition().unwrap();
    let TargetKind::EventBus { name, detail_type: Some(detail_type), source: Some(source) } = &pipe.target.kind else {
        panic!("the pipe's target is not a bus with DetailType and Source: {:?}", pipe.target.kind);
    };
    let queue_url = moto.bus_to_queue(name, source, detail_type).await;
    make_changes(&moto, &["p1", "p2", "p3"]).await;

    let (summary, _) = run(&config).await;

    let expected = expected_commands(&moto).await;
    let bodies = moto.drain_queue(&queue_url).await;
    for body in &bodies {
        assert_eq!((&body["source"], &body["detail-type"]), (&json!(source), &json!(detail_type)));
    }
    assert_eq!(exactly_once(bodies.iter().map(|b| &b["detail"])), deliverable(&expected));
    assert_eq!((summary.skipped, summary.delivered, summary.dead_lettered), (1, 5, 0), "{summary:?}");
}

/// Waits until `done` holds, polling; panics after [`GUARD`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_run_killed_mid_stream_resumes_from_its_state_file_without_loss() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    let ids: Vec<String> = (1..=12).map(|i| format!("p{i:02}")).collect();
    let first: Vec<&str> = ids[..8].iter().map(String::as_str).collect();
    make_changes(&moto, &first).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let binary = fhir_pipes();
    let cli = |follow: bool| {
        let mut command = Command::new(&binary);
        command
            .current_dir(dir.path())
            .arg("run")
            .arg("--template")
            .arg(template_path())
            .args(["-p", "StartingPosition=TRIM_HORIZON", "-p", "BatchSize=1", "--quiet", "--create-target"])
            .args(["--endpoint-url", &moto.endpoint(), "--table", TABLE])
            .arg("--state")
            .arg(&state)
            .arg("--summary-json")
            .arg(dir.path().join("summary.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if follow {
            command.arg("--follow");
        }
        command
    };

    // Killed (SIGKILL) once its first batch is delivered and checkpointed.
    let mut child = cli(true).spawn().expect("start fhir-pipes run");
    wait_for("the first checkpoint", || state.exists());
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let checkpointed: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();

    // More changes while it is down, then a run to the end of the stream.
    let more: Vec<&str> = ids[8..].iter().map(String::as_str).collect();
    make_changes(&moto, &more).await;
    let status = cli(false).status().expect("rerun fhir-pipes run");
    assert!(status.success(), "the resumed run failed: {status}");
    let resumed: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();

    let pipe = RunConfig { template: Some(template_path()), ..RunConfig::default() }.pipe_definition().unwrap();
    let expected = expected_commands(&moto).await;
    let events = logged_events(&moto, &log_group(&pipe)).await;
    // At least once, and a re-delivered change is the same event: same correlationId, same content.
    let mut delivered: BTreeMap<String, Value> = BTreeMap::new();
    for event in &events {
        let id = event["correlationId"].as_str().unwrap().to_owned();
        if let Some(earlier) = delivered.insert(id.clone(), event["details"].clone()) {
            assert_eq!(earlier, event["details"], "duplicate {id} differs");
        }
    }
    let commands: BTreeMap<String, Value> =
        delivered.iter().map(|(id, details)| (id.clone(), details["command"].clone())).collect();
    assert_eq!(commands, deliverable(&expected));
    // The resumed run started after the checkpoint: it did not read the whole stream again.
    assert!(checkpointed.as_object().is_some_and(|shards| !shards.is_empty()), "{checkpointed}");
    assert!(resumed.read < expected.len(), "the resumed run read everything again: {resumed:?}");
    assert_eq!(resumed.dead_lettered, 0, "{resumed:?}");
}

/// A Patient pipe reading the demo batch from a file and delivering to the template's log
/// group on `moto`.
fn file_to_logs_config(moto: &MotoServer, dir: &Path, max_retry_attempts: u32) -> RunConfig {
    RunConfig {
        template: Some(template_path()),
        parameters: vec![format!("MaximumRetryAttempts={max_retry_attempts}")],
        input: Some(fixtures_dir().join("patient/demo.input.json")),
        endpoint_url: Some(moto.endpoint()),
        create_target: true,
        dead_letter: Some(dir.join("dead-letter.ndjson")),
        backoff_base_ms: Some(50),
        backoff_cap_ms: Some(200),
        ..RunConfig::default()
    }
}

fn demo_event_ids() -> BTreeSet<String> {
    let text = std::fs::read_to_string(fixtures_dir().join("patient/demo.input.json")).unwrap();
    let records: Vec<Value> = serde_json::from_str(&text).unwrap();
    records.iter().map(|r| r["eventID"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_then_back_loses_nothing() {
    let mut moto = MotoServer::start();
    moto.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = file_to_logs_config(&moto, dir.path(), 10_000);
    let (runtime, pipe) = config.build().await.unwrap();
    let running = tokio::spawn(runtime.run());
    // Let a few deliveries fail (a guard, not a measurement: the first one surely fails).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!running.is_finished(), "the run ended while its target was down");
    tokio::task::block_in_place(|| moto.restart());
    let summary = tokio::time::timeout(GUARD, running).await.expect("the run ended").unwrap().expect("the run");

    assert!(summary.retried > 0, "{summary:?}");
    assert_eq!((summary.delivered, summary.dead_lettered), (summary.enriched, 0), "{summary:?}");
    let events = logged_events(&moto, &log_group(&pipe)).await;
    let logged: BTreeSet<String> = exactly_once(events.iter()).into_keys().collect();
    assert_eq!(logged.len(), summary.enriched);
    assert!(logged.is_subset(&demo_event_ids()), "{logged:?}");
    assert!(!dir.path().join("dead-letter.ndjson").exists());
}

#[tokio::test]
async fn a_target_kept_down_past_the_retry_limit_dead_letters_the_batch_with_its_records() {
    let mut moto = MotoServer::start();
    moto.stop();
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = run(&file_to_logs_config(&moto, dir.path(), 2)).await;

    assert_eq!(summary.delivered, 0, "{summary:?}");
    assert_eq!(summary.dead_lettered, summary.enriched, "{summary:?}");
    let mut records = Vec::new();
    for letter in read_ndjson(&dir.path().join("dead-letter.ndjson")) {
        assert_eq!(letter["stage"], "delivery", "{letter}");
        assert_eq!(letter["attempts"], 3, "one try and two retries: {letter}");
        assert_eq!(letter["recordCount"].as_u64().unwrap() as usize, letter["records"].as_array().unwrap().len());
        records.extend(letter["records"].as_array().unwrap().iter().cloned());
    }
    let ids: BTreeSet<String> = records.iter().map(|r| r["eventID"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), summary.dead_lettered);
    assert!(ids.is_subset(&demo_event_ids()), "{ids:?}");
    // The records are the stream records themselves, images included.
    assert!(records.iter().all(|r| r["dynamodb"]["Keys"].is_object()), "{records:?}");
}

#[tokio::test]
async fn dead_letters_go_to_the_sqs_queue_with_their_records() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    moto.put_patient(TABLE, "p1", "First").await;
    moto.put_patient(TABLE, "p2", "Second").await;
    let queue = moto.sqs().await.create_queue().queue_name("pipe-dlq").send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    // The bus does not exist and is not created: every delivery fails.
    let config = RunConfig {
        dead_letter_queue_url: Some(queue_url.clone()),
        ..stream_config(&moto, dir.path(), &["TargetType=EventBus", "MaximumRetryAttempts=1"])
    };

    let (summary, _) = run(&config).await;

    assert_eq!((summary.delivered, summary.dead_lettered), (0, 2), "{summary:?}");
    let expected: BTreeSet<String> = expected_commands(&moto).await.into_keys().collect();
    let mut dead: BTreeSet<String> = BTreeSet::new();
    for message in moto.drain_queue(&queue_url).await {
        assert_eq!((&message["pipe"], &message["stage"]), (&json!("PatientPipe"), &json!("delivery")), "{message}");
        assert_eq!(message["recordCount"], message["records"].as_array().unwrap().len());
        for record in message["records"].as_array().unwrap() {
            dead.insert(record["eventID"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(dead, expected);
    assert!(!dir.path().join("dead-letter.ndjson").exists(), "the queue took every letter");
}
