//! `fhir-pipes run` of the template's HealthLake change capture pipe (`HealthLakeChangePipe`,
//! an SQS source) against a moto server started here: messages received in batches and handed
//! over in the shape Pipes gives the enrichment, deleted once their batch is done; a failing
//! enrichment leaves them in the queue for redelivery, and the queue's redrive policy moves them
//! to its dead-letter queue after maxReceiveCount receives; a run stopped after a batch, or
//! killed mid-batch, loses nothing; a file of EventBridge events runs the pipe with no service.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use fhir_pipes::{
    runtime::{RunConfig, Summary},
    source::md5::md5_hex,
};
use fhir_pipes_e2e::{binaries::fhir_pipes, fixtures_dir, moto::MotoServer, read_ndjson, template_path};
use serde_json::{Value, json};

const PIPE: &str = "HealthLakeChangePipe";
/// The template's queue, by its logical id (what the run looks up at the endpoint).
const QUEUE: &str = "ChangeCaptureQueue";
const DEAD_LETTER_QUEUE: &str = "ChangeCaptureDeadLetterQueue";
/// moto's account.
const ACCOUNT: &str = "123456789012";

/// A bound on every wait: a guard against hanging, not a timing test.
const GUARD: Duration = Duration::from_secs(120);

/// The change pipe's parameters, with `extra` (e.g. `ChangeCaptureBatchSize=4`).
fn parameters(extra: &[&str]) -> Vec<String> {
    let mut parameters = vec![
        "HealthLakeChangeCapture=Enabled".to_owned(),
        "HealthLakeDatastoreEndpoint=https://healthlake.us-east-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/"
            .to_owned(),
        "ChangeCaptureBatchingWindowInSeconds=0".to_owned(),
    ];
    parameters.extend(extra.iter().map(|p| (*p).to_owned()));
    parameters
}

/// A run of the change pipe against `moto` that writes the records as NDJSON to `output`.
fn queue_run(moto: &MotoServer, dir: &Path, output: &Path, extra: &[&str]) -> RunConfig {
    RunConfig {
        template: Some(template_path()),
        pipe: Some(PIPE.to_owned()),
        parameters: parameters(extra),
        endpoint_url: Some(moto.endpoint()),
        output: Some(output.to_owned()),
        dead_letter: Some(dir.join("dead-letter.ndjson")),
        no_enrichment: true,
        backoff_base_ms: Some(1),
        backoff_cap_ms: Some(5),
        ..RunConfig::default()
    }
}

async fn run(config: &RunConfig) -> Summary {
    let (runtime, _) = config.build().await.unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
    runtime.run().await.unwrap_or_else(|e| panic!("the run failed: {e}"))
}

/// An EventBridge event as an HealthLake rule delivers it (made-up ids).
fn event(number: usize) -> String {
    json!({
        "version": "0", "id": format!("event-{number}"), "detail-type": "Import Job Completed",
        "source": "aws.healthlake", "account": ACCOUNT, "time": "2026-01-02T03:04:05Z", "region": "us-east-1",
        "resources": [], "detail": {"datastoreId": "0123456789abcdef0123456789abcdef", "jobId": format!("job-{number}")},
    })
    .to_string()
}

/// Sends `count` events as messages (with a message attribute, as a rule never sets but Pipes
/// hands over); returns body → message id.
async fn send_events(moto: &MotoServer, queue_url: &str, count: usize) -> BTreeMap<String, String> {
    let sqs = moto.sqs().await;
    let mut sent = BTreeMap::new();
    for number in 0..count {
        let attribute = MessageAttributeValue::builder().data_type("String").string_value("test").build().unwrap();
        let answer = sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(event(number))
            .message_attributes("origin", attribute)
            .send()
            .await
            .expect("SendMessage");
        sent.insert(event(number), answer.message_id.unwrap());
    }
    sent
}

/// Messages in the queue: (visible, in flight).
async fn queue_depth(moto: &MotoServer, queue: &str) -> (usize, usize) {
    let sqs = moto.sqs().await;
    let url = sqs.get_queue_url().queue_name(queue).send().await.expect("GetQueueUrl").queue_url.unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    let count = |name: QueueAttributeName| attributes.get(&name).map_or(0, |v| v.parse().unwrap());
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every body in a queue (received with a zero visibility timeout, so nothing moves).
async fn bodies_in(moto: &MotoServer, queue: &str) -> BTreeSet<String> {
    let sqs = moto.sqs().await;
    let url = sqs.get_queue_url().queue_name(queue).send().await.expect("GetQueueUrl").queue_url.unwrap();
    let mut bodies = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let answer = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = answer.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        bodies.extend(messages.into_iter().filter_map(|m| m.body));
    }
    bodies
}

#[tokio::test]
async fn messages_are_handed_over_in_batches_in_the_pipes_sqs_shape_and_deleted_after_success() {
    let moto = MotoServer::start();
    let queue_url = moto.create_queue_with_dead_letter(QUEUE, DEAD_LETTER_QUEUE, 30, 3).await;
    let sent = send_events(&moto, &queue_url, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("records.ndjson");
    let summary = run(&queue_run(&moto, dir.path(), &output, &["ChangeCaptureBatchSize=4"])).await;
    assert_eq!((summary.read, summary.delivered, summary.returned_to_queue), (10, 10, 0), "{summary:?}");
    assert!(summary.batches >= 3, "batches of at most 4: {summary:?}");

    let records = read_ndjson(&output);
    let mut seen = BTreeMap::new();
    for record in &records {
        let keys: BTreeSet<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "md5OfMessageAttributes",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        ]
        .into();
        assert_eq!(keys, expected, "{record}");
        let body = record["body"].as_str().unwrap();
        assert_eq!(record["md5OfBody"], md5_hex(body.as_bytes()), "SQS's MD5 and ours agree");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{QUEUE}"));
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
        assert!(record["attributes"]["SentTimestamp"].as_str().unwrap().parse::<u64>().is_ok(), "{record}");
        assert_eq!(
            record["messageAttributes"]["origin"],
            json!({"stringValue": "test", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
        assert!(!record["receiptHandle"].as_str().unwrap().is_empty());
        seen.insert(body.to_owned(), record["messageId"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, sent, "every message once, with the id SendMessage gave it");
    assert_eq!(queue_depth(&moto, QUEUE).await, (0, 0), "delivered messages are deleted");
}

/// A system binary that exits at once: as an enrichment Lambda it fails every invocation.
fn failing_binary() -> PathBuf {
    ["/usr/bin/false", "/bin/false"].iter().map(PathBuf::from).find(|p| p.exists()).expect("a `false` binary")
}

#[tokio::test]
async fn a_failing_enrichment_leaves_the_messages_for_redelivery_then_the_redrive_policy_dead_letters_them() {
    let moto = MotoServer::start();
    let queue_url = moto.create_queue_with_dead_letter(QUEUE, DEAD_LETTER_QUEUE, 1, 2).await;
    let sent = send_events(&moto, &queue_url, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("records.ndjson");
    let failing = RunConfig {
        no_enrichment: false,
        enricher_binary: Some(failing_binary()),
        ..queue_run(&moto, dir.path(), &output, &["ChangeCaptureBatchSize=10"])
    };
    for receive in 1..=2 {
        let summary = run(&failing).await;
        assert_eq!((summary.read, summary.delivered, summary.returned_to_queue), (3, 0, 3), "receive {receive}");
        assert_eq!(summary.dead_lettered, 0, "the queue, not the runtime, dead-letters");
        assert!(!dir.path().join("dead-letter.ndjson").exists());
        // Back after the visibility timeout (1 s).
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // Received twice (maxReceiveCount 2): the next receive moves them to the dead-letter queue.
    let summary = run(&queue_run(&moto, dir.path(), &output, &[])).await;
    assert_eq!(summary.read, 0, "{summary:?}");
    assert_eq!(bodies_in(&moto, DEAD_LETTER_QUEUE).await, sent.keys().cloned().collect());
    assert_eq!(queue_depth(&moto, QUEUE).await, (0, 0));
}

#[tokio::test]
async fn a_run_stopped_after_a_batch_leaves_the_rest_and_a_killed_runs_messages_come_back() {
    let moto = MotoServer::start();
    let queue_url = moto.create_queue_with_dead_letter(QUEUE, DEAD_LETTER_QUEUE, 2, 5).await;
    let sent = send_events(&moto, &queue_url, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("records.ndjson");

    // --max-batches 1: one batch of 2 delivered and deleted; the rest never left the queue.
    let stopped =
        RunConfig { max_batches: Some(1), ..queue_run(&moto, dir.path(), &output, &["ChangeCaptureBatchSize=2"]) };
    let summary = run(&stopped).await;
    assert_eq!((summary.batches, summary.delivered), (1, 2), "{summary:?}");
    assert_eq!(queue_depth(&moto, QUEUE).await, (3, 0));

    // The CLI, killed while its enrichment hangs on the next batch: nothing is deleted.
    let hanging = dir.path().join("hanging-enrichment");
    std::fs::write(&hanging, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cli = Command::new(fhir_pipes())
        .args(["run", "--quiet", "--pipe", PIPE, "--template"])
        .arg(template_path())
        .args(parameters(&["ChangeCaptureBatchSize=10"]).iter().flat_map(|p| ["-p", p.as_str()]))
        .args(["--endpoint-url", &moto.endpoint(), "--enricher-binary"])
        .arg(&hanging)
        .arg("--output")
        .arg(dir.path().join("killed.ndjson"))
        .arg("--dead-letter")
        .arg(dir.path().join("killed-dead-letter.ndjson"))
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start fhir-pipes");
    let deadline = Instant::now() + GUARD;
    while queue_depth(&moto, QUEUE).await != (0, 3) {
        assert!(Instant::now() < deadline, "the CLI never received the messages");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGKILL the CLI and the enrichment it started (its process group).
    let group = cli.id();
    let killed = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status().unwrap();
    assert!(killed.success());
    let _ = cli.wait();
    assert!(read_ndjson_if_any(&dir.path().join("killed.ndjson")).is_empty());

    // After the visibility timeout the three come back, received a second time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let summary = run(&queue_run(&moto, dir.path(), &output, &["ChangeCaptureBatchSize=10"])).await;
    assert_eq!(summary.delivered, 3, "{summary:?}");
    let records = read_ndjson(&output);
    let bodies: BTreeSet<&str> = records.iter().map(|r| r["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, sent.keys().map(String::as_str).collect(), "all five, none lost");
    assert_eq!(records.len(), 5, "none twice");
    let receive_counts: Vec<&str> =
        records[2..].iter().map(|r| r["attributes"]["ApproximateReceiveCount"].as_str().unwrap()).collect();
    assert_eq!(receive_counts, ["2", "2", "2"]);
    assert_eq!(queue_depth(&moto, QUEUE).await, (0, 0));
}

fn read_ndjson_if_any(path: &Path) -> Vec<Value> {
    if path.exists() { read_ndjson(path) } else { Vec::new() }
}

#[tokio::test]
async fn a_file_of_eventbridge_events_runs_the_change_pipe_with_no_service() {
    // The bodies of the HealthLake signal fixtures: EventBridge events as rules deliver them.
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("healthlake-signals/batch-mixed.json")).unwrap(),
    )
    .unwrap();
    let events: Vec<String> = fixture
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .filter(|body| serde_json::from_str::<Value>(body).is_ok_and(|b| b.is_object()))
        .map(|body| serde_json::to_string(&serde_json::from_str::<Value>(body).unwrap()).unwrap())
        .collect();
    assert!(events.len() >= 3, "{events:?}");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, events.join("\n") + "\n").unwrap();
    let output = dir.path().join("records.ndjson");
    let config = RunConfig {
        template: Some(template_path()),
        pipe: Some(PIPE.to_owned()),
        parameters: parameters(&["ChangeCaptureBatchSize=2"]),
        input: Some(input.clone()),
        output: Some(output.clone()),
        dead_letter: Some(dir.path().join("dead-letter.ndjson")),
        no_enrichment: true,
        ..RunConfig::default()
    };
    let summary = run(&config).await;
    assert_eq!(
        (summary.read, summary.delivered, summary.batches),
        (events.len(), events.len(), events.len().div_ceil(2))
    );
    let records = read_ndjson(&output);
    let bodies: Vec<&str> = records.iter().map(|r| r["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, events, "each event, in order, as a message body");
    for record in &records {
        assert_eq!(record["eventSourceARN"], format!("arn:aws:sqs:us-east-1:000000000000:{QUEUE}"));
        assert_eq!(record["md5OfBody"], md5_hex(record["body"].as_str().unwrap().as_bytes()));
        assert_eq!(
            (record["eventSource"].as_str(), record["attributes"]["ApproximateReceiveCount"].as_str()),
            (Some("aws:sqs"), Some("1"))
        );
    }
    let ids: BTreeSet<&str> = records.iter().map(|r| r["messageId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), records.len(), "a new messageId each");

    // Without --no-enrichment the hydrator runs in process.
    let (runtime, _) =
        RunConfig { no_enrichment: false, ..config.clone() }.build().await.expect("the hydrator in process");
    assert!(format!("{:?}", runtime.enrichment).contains("Hydrator"), "{:?}", runtime.enrichment);
    // Against AWS (an endpoint), the target is the template's: the publisher function.
    let against_aws = RunConfig { output: None, endpoint_url: Some("http://127.0.0.1:9".to_owned()), ..config.clone() };
    let error = against_aws.build().await.unwrap_err().to_string();
    assert!(error.contains("--target-binary") && error.contains("healthlake-publisher"), "{error}");
    let error = RunConfig { input: None, ..config }.build().await.unwrap_err().to_string();
    assert!(error.contains("--endpoint-url") && error.contains("--queue-url"), "{error}");
}
