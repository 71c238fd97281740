//! The HealthLake change publisher against moto: a custom bus whose rule sends every event to
//! an SQS queue, and the DynamoDB de-duplication table. Each event reaches the queue once; the
//! same batch again adds nothing (de-duplicated); the table holds the keys with their TTL. Then
//! the shipped `healthlake-publisher` binary behind the local Lambda Runtime API at
//! `RUST_LOG=trace`: it publishes, and its log holds no resource id, idempotency key or name.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fhir_pipes_core::{
    ENVELOPE_VERSION, Envelope,
    envelope::{Details, ErrorDetails, ResourceRef},
    logging::LogFilter,
};
use fhir_pipes_e2e::{CapturedLogs, binaries::cargo_bin, capture_logs, moto::MotoServer, phi::assert_no_phi, read};
use fhir_pipes_publisher::{
    Publisher, PublisherConfig,
    event::{ChangeMetadata, SIGNAL_FAILED_EVENT_TYPE, SignalKind},
    handle,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json, value::RawValue};

const SOURCE: &str = "fhir-pipes.healthlake";
const TABLE: &str = "cdc-dedup";

/// Creates the bus with a rule sending everything of [`SOURCE`] to a new queue (its URL), and
/// the de-duplication table with TTL on `expiresAt` (once per server).
async fn infrastructure(moto: &MotoServer, bus: &str) -> String {
    let queue_url = moto.bus_rule_to_queue(bus, &json!({"source": [SOURCE]})).await;
    if moto.dynamodb().await.describe_table().table_name(TABLE).send().await.is_err() {
        moto.create_dedup_table(TABLE).await;
    }
    queue_url
}

fn config(bus: &str) -> PublisherConfig {
    PublisherConfig {
        event_bus: bus.to_owned(),
        dedup_table: TABLE.to_owned(),
        backoff_base_ms: 5,
        backoff_cap_ms: 50,
        ..PublisherConfig::default()
    }
}

fn metadata(resource: Option<(&'static str, String)>, version: Option<u32>, key: String) -> ChangeMetadata<'static> {
    ChangeMetadata {
        datastore_id: Some("0123456789abcdef0123456789abcdef".into()),
        resource_type: resource.as_ref().map(|(t, _)| (*t).into()),
        id: resource.map(|(_, id)| id.into()),
        version_id: version.map(|v| v.to_string().into()),
        last_updated: Some("2026-03-04T05:06:07.890Z".into()),
        signal: SignalKind::Cloudtrail,
        signal_id: "11111111-2222-3333-4444-555555555555".into(),
        idempotency_key: key.into(),
        hydrated: true,
    }
}

fn raw<E: serde::Serialize>(envelope: &Envelope<'_, E, ChangeMetadata<'_>>) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(envelope).unwrap()).unwrap()
}

/// A batch as the hydrator answers it: two versions of a patient (message 1), a delete
/// (message 2), a lifecycle event and a signal that failed (message 3); correlationIds are the
/// SQS messageIds `<messages>-<n>`. Resource ids and keys start with `prefix`.
fn batch(prefix: &str, messages: &str, family: &str) -> Vec<Box<RawValue>> {
    let patient = format!("{prefix}-patient");
    let gone = format!("{prefix}-gone");
    let message = |n: u32| Some(format!("{messages}-{n}").into());
    let version = |v: u32| {
        let entity = json!({"resourceType": "Patient", "id": patient, "meta": {"versionId": v.to_string()},
                            "name": [{"family": family, "given": ["Ermintrude"]}], "birthDate": "1966-02-14"});
        raw(&Envelope {
            version: ENVELOPE_VERSION.into(),
            source: "HealthLake".into(),
            event_type: "PatientChange".into(),
            correlation_id: message(1),
            details: Details::Put { entity },
            metadata: Some(metadata(
                Some(("Patient", patient.clone())),
                Some(v),
                format!("Patient/{patient}/_history/{v}"),
            )),
        })
    };
    let delete = raw(&Envelope {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: "PatientChange".into(),
        correlation_id: message(2),
        details: Details::Delete { entity: ResourceRef { resource_type: "Patient".into(), id: gone.clone().into() } },
        metadata: Some(metadata(Some(("Patient", gone.clone())), None, format!("Patient/{gone}/_deleted/1772600767"))),
    });
    let lifecycle = raw(&Envelope {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: "ImportJobCompleted".into(),
        correlation_id: message(3),
        details: Details::Notify {
            entity: json!({"datastoreId": "0123456789abcdef0123456789abcdef", "jobId": "job-1"}),
        },
        metadata: Some(ChangeMetadata {
            signal: SignalKind::Lifecycle,
            ..metadata(None, None, format!("{prefix}-lifecycle-event-id"))
        }),
    });
    let record =
        RawValue::from_string(json!({"messageId": format!("{messages}-3"), "body": "{}"}).to_string()).unwrap();
    let failed = raw(&Envelope::<'_, Value, _> {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: SIGNAL_FAILED_EVENT_TYPE.into(),
        correlation_id: message(3),
        details: Details::Error {
            error: ErrorDetails {
                field: "detail".into(),
                kind: "invalid_signal".into(),
                message: "not a signal".into(),
            },
            record: &record,
        },
        metadata: Some(metadata(None, None, format!("{prefix}-failed-signal-id"))),
    });
    vec![version(1), version(2), delete, lifecycle, failed]
}

fn key_of(event: &Value) -> String {
    event["metadata"]["idempotencyKey"].as_str().expect("an idempotency key").to_owned()
}

fn payload(events: &[Box<RawValue>]) -> String {
    serde_json::to_string(events).unwrap()
}

async fn invoke(publisher: &Publisher, events: &[Box<RawValue>]) -> Value {
    let event = LambdaEvent::new(RawValue::from_string(payload(events)).unwrap(), Context::default());
    serde_json::to_value(handle(publisher, event).await.expect("an answer")).unwrap()
}

/// The events on the queue, by idempotency key; each must be there once.
fn by_key(messages: &[Value]) -> BTreeMap<String, Value> {
    let mut events = BTreeMap::new();
    for message in messages {
        assert_eq!(message["source"], SOURCE, "{message}");
        assert_eq!(message["detail-type"], message["detail"]["eventType"], "DetailType is the eventType");
        let previous = events.insert(key_of(&message["detail"]), message["detail"].clone());
        assert!(previous.is_none(), "an event reached the queue twice: {message}");
    }
    events
}

async fn table_items(moto: &MotoServer) -> BTreeMap<String, Value> {
    moto.scan_items(TABLE)
        .await
        .into_iter()
        .map(|item| (item["idempotencyKey"]["S"].as_str().unwrap().to_owned(), item))
        .collect()
}

#[tokio::test]
async fn each_event_reaches_the_bus_once_and_a_replayed_batch_adds_nothing() {
    let moto = MotoServer::start();
    let queue = infrastructure(&moto, "cdc-bus").await;
    let publisher = config("cdc-bus").build_with_sdk(&moto.sdk_config().await).expect("a publisher");
    let events = batch("pub-e2e", "sqs-e2e", "Scrimgeour");
    let sent: Vec<Value> = events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect();

    let logs = CapturedLogs::default();
    let answer = {
        let _capture = capture_logs(logs.filtered_json_subscriber(LogFilter::new(Some("trace"), "info")));
        invoke(&publisher, &events).await
    };
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let received = by_key(&moto.drain_queue(&queue).await);
    let expected: BTreeMap<String, Value> = sent.iter().map(|e| (key_of(e), e.clone())).collect();
    assert_eq!(received, expected, "each event once, its detail the envelope as sent");

    // The table holds every key, with a TTL a week from now.
    let items = table_items(&moto).await;
    assert_eq!(items.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    for item in items.values() {
        let expires: i64 = item["expiresAt"]["N"].as_str().unwrap().parse().unwrap();
        assert!((expires - now - 7 * 86_400).abs() < 60, "expiresAt a week ahead: {item}");
    }

    // Pipes retries the batch (or the hydrator reads the same versions again): nothing new.
    assert_eq!(invoke(&publisher, &events).await, json!({"batchItemFailures": []}));
    assert_eq!(moto.drain_queue(&queue).await, Vec::<Value>::new(), "de-duplicated");
    // A batch overlapping the first: only the new version goes.
    let mut overlapping = batch("pub-e2e", "sqs-e2e", "Scrimgeour");
    overlapping.truncate(2);
    let new_version = batch("pub-e2e-2", "sqs-e2e-2", "Scrimgeour").remove(0);
    overlapping.push(new_version);
    assert_eq!(invoke(&publisher, &overlapping).await, json!({"batchItemFailures": []}));
    let received = by_key(&moto.drain_queue(&queue).await);
    assert_eq!(received.keys().collect::<Vec<_>>(), ["Patient/pub-e2e-2-patient/_history/1"]);

    let text = logs.text();
    assert!(text.contains("batch published"), "no summary line:\n{text}");
    let secrets: Vec<String> =
        ["pub-e2e-patient", "pub-e2e-gone", "Scrimgeour", "Ermintrude", "1966-02-14", "pub-e2e-lifecycle"]
            .map(str::to_owned)
            .to_vec();
    assert_no_phi(&text, &secrets, "the publisher in process at trace");
}

#[tokio::test]
async fn a_missing_bus_fails_every_message_and_records_nothing() {
    let moto = MotoServer::start();
    infrastructure(&moto, "cdc-bus").await;
    let publisher = config("no-such-bus").build_with_sdk(&moto.sdk_config().await).expect("a publisher");
    let events = batch("pub-missing", "sqs-missing", "Doe");
    let answer = invoke(&publisher, &events).await;
    let failed: Vec<&str> =
        answer["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
    assert_eq!(failed, ["sqs-missing-1", "sqs-missing-2", "sqs-missing-3"]);
    assert!(table_items(&moto).await.is_empty(), "nothing recorded that the bus did not accept");
}

/// The shipped binary, settings and credentials from its environment (AWS_ENDPOINT_URL pointing
/// at moto), at RUST_LOG=trace.
#[tokio::test]
async fn the_lambda_binary_publishes_and_logs_no_identifiers_at_trace() {
    use fhir_pipes::runtime::LocalLambda;
    let binary =
        tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-publisher", "healthlake-publisher")).await.unwrap();
    let moto = MotoServer::start();
    let queue = infrastructure(&moto, "cdc-bin-bus").await;
    let environment: BTreeMap<String, String> = [
        ("FHIR_PIPES_PUBLISHER_EVENT_BUS", "cdc-bin-bus".to_owned()),
        ("FHIR_PIPES_PUBLISHER_DEDUP_TABLE", TABLE.to_owned()),
        ("FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS", "3".to_owned()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", fhir_pipes_e2e::moto::REGION.to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("publisher.log");
    let mut lambda = LocalLambda::start_logging_to(
        &binary,
        "healthlake-publisher",
        environment,
        Duration::from_secs(30),
        Some(&log),
    )
    .await
    .expect("the binary starts");
    let events = batch("pub-bin-7f3a", "sqs-bin", "Grimmauldson");
    let answer = lambda.invoke(payload(&events).into()).await.expect("an answer");
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap(), json!({"batchItemFailures": []}));
    let again = lambda.invoke(payload(&events).into()).await.expect("an answer");
    assert_eq!(serde_json::from_slice::<Value>(&again).unwrap(), json!({"batchItemFailures": []}));
    lambda.invoke(r#""Ermintrude Grimmauldson, pub-bin-7f3a-patient""#.into()).await.expect_err("not a batch");
    lambda.shutdown().await;

    assert_eq!(by_key(&moto.drain_queue(&queue).await).len(), events.len(), "each event once");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    for item in table_items(&moto).await.values() {
        let expires: i64 = item["expiresAt"]["N"].as_str().unwrap().parse().unwrap();
        assert!((expires - now - 3 * 86_400).abs() < 60, "FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS=3: {item}");
    }
    let logs = read(&log);
    let secrets: Vec<String> = ["pub-bin-7f3a", "Grimmauldson", "Ermintrude", "1966-02-14"].map(str::to_owned).to_vec();
    assert_no_phi(&logs, &secrets, "healthlake-publisher (RUST_LOG=trace)");
    assert!(logs.contains("batch published") && logs.contains("NotABatch"), "too quiet:\n{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "not at trace:\n{logs}");
}
