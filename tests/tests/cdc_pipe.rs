//! HealthLake change capture end to end: writes to the HealthLake stand-in → the signals a
//! datastore produces, on a moto SQS queue (as the template's rules deliver them) →
//! `fhir-pipes run --pipe HealthLakeChangePipe` (the SQS source, the hydrator in process or the
//! shipped `healthlake-hydrator` as enrichment, the shipped `healthlake-publisher` as target) → the moto CDC bus → a rule → a
//! queue the test reads. Every change the signals reveal is published once.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Output},
};

use fhir_pipes_e2e::{
    binaries::{cargo_bin, fhir_pipes},
    fhir_store::{ACCESS_KEY_ID, FhirStore, ResourceIdVisibility, SECRET_ACCESS_KEY, Signals, SubscriptionPayload},
    fixtures_dir,
    moto::MotoServer,
    read, template_path, workspace_root,
};
use serde_json::{Value, json};

/// The template's names for the pipe's resources, as `fhir-pipes run` resolves them locally.
const QUEUE: &str = "ChangeCaptureQueue";
const DEAD_LETTER_QUEUE: &str = "ChangeCaptureDeadLetterQueue";
const BUS: &str = "fhir-pipes-local-healthlake-changes";
const TABLE: &str = "ChangeCaptureDedupTable";

struct Services {
    moto: MotoServer,
    store: FhirStore,
    /// Where the signals go (the template's queue).
    signal_queue: String,
    /// What a rule on the CDC bus delivers.
    bus_queue: String,
}

async fn services(signals: Signals) -> Services {
    let moto = MotoServer::start();
    let store = FhirStore::start();
    let signal_queue = moto.create_queue_with_dead_letter(QUEUE, DEAD_LETTER_QUEUE, 30, 3).await;
    let bus_queue = moto.bus_rule_to_queue(BUS, &json!({"source": ["fhir-pipes.healthlake"]})).await;
    moto.create_dedup_table(TABLE).await;
    store.configure_signals(&signals.to_queue(signal_queue.clone())).await;
    Services { moto, store, signal_queue, bus_queue }
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "male", "name": [{"family": family, "given": ["Ambrose"]}]})
}

async fn put(store: &FhirStore, resource: &Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
    let answer = store.signed_request("PUT", &path, Some(resource), SECRET_ACCESS_KEY).await;
    assert!(answer.status < 300, "PUT {path}: {}", answer.status);
}

/// How the run hydrates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hydrator {
    /// The shipped `healthlake-hydrator` behind the local Runtime API (`--enricher-binary`).
    Binary,
    /// The same code in the CLI's process (no `--enricher-binary`).
    InProcess,
}

/// `fhir-pipes run` of the change pipe with the shipped publisher binary as target, signing for
/// the store with its credentials (moto takes any).
fn run_pipe(services: &Services, dir: &Path, hydrator: Hydrator, parameters: &[&str], args: &[&str]) -> Output {
    let publisher = cargo_bin("fhir-pipes-publisher", "healthlake-publisher");
    let endpoint = format!("HealthLakeDatastoreEndpoint={}", services.store.base_url());
    let output = Command::new(fhir_pipes())
        .current_dir(workspace_root())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_REGION", "us-east-1")
        .arg("run")
        .arg("--template")
        .arg(template_path())
        .args(["--pipe", "HealthLakeChangePipe", "--quiet", "--endpoint-url", &services.moto.endpoint()])
        .args([
            "-p",
            "HealthLakeChangeCapture=Enabled",
            "-p",
            &endpoint,
            "-p",
            "ChangeCaptureBatchingWindowInSeconds=0",
        ])
        .args(parameters.iter().flat_map(|p| ["-p", p]))
        .args(args)
        .args(match hydrator {
            Hydrator::Binary => {
                vec!["--enricher-binary".into(), cargo_bin("fhir-pipes-healthlake", "healthlake-hydrator")]
            }
            Hydrator::InProcess => vec![],
        })
        .arg("--target-binary")
        .arg(&publisher)
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.ndjson"))
        .arg("--summary-json")
        .arg(dir.join("summary.json"))
        .output()
        .expect("fhir-pipes runs");
    assert!(output.status.success(), "fhir-pipes run failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The change events the CDC bus delivered (their `detail`: the envelopes), by idempotency key;
/// panics on a key delivered twice.
async fn published(services: &Services) -> BTreeMap<String, Value> {
    let mut by_key = BTreeMap::new();
    for event in services.moto.drain_queue(&services.bus_queue).await {
        let envelope = event["detail"].clone();
        let key = envelope["metadata"]["idempotencyKey"].as_str().unwrap_or("(none)").to_owned();
        assert_eq!(event["detail-type"], envelope["eventType"], "DetailType is the eventType");
        if let Some(first) = by_key.insert(key.clone(), envelope) {
            panic!("{key} published twice (first: {first})");
        }
    }
    by_key
}

async fn send_to_queue(services: &Services, bodies: impl IntoIterator<Item = String>) {
    let sqs = services.moto.sqs().await;
    for body in bodies {
        sqs.send_message().queue_url(&services.signal_queue).message_body(body).send().await.expect("SendMessage");
    }
}

/// The EventBridge event of a fixture message (`fixtures/healthlake-signals/<name>`).
fn fixture_event(name: &str) -> String {
    let messages: Vec<Value> =
        serde_json::from_str(&read(&fixtures_dir().join("healthlake-signals").join(name))).unwrap();
    messages[0]["body"].as_str().expect("a body").to_owned()
}

#[tokio::test]
async fn every_change_reaches_the_bus_once_and_a_replay_adds_nothing() {
    // Both signal kinds on: every write is told twice, by CloudTrail and by a notification.
    let mut signals = Signals::cloud_trail(ResourceIdVisibility::Shown);
    signals.subscription = Signals::subscription(SubscriptionPayload::IdOnly).subscription;
    let services = services(signals).await;
    let store = &services.store;
    for n in 0..4 {
        put(store, &patient(&format!("e2e-{n}"), "Ravenscroft")).await;
    }
    put(store, &patient("e2e-0", "Ravenscroft-Hale")).await;
    put(store, &patient("e2e-0", "Ravenscroft-Hume")).await;
    put(store, &json!({"resourceType": "Practitioner", "id": "e2e-pr", "name": [{"family": "Quill"}]})).await;
    assert!(store.signed_request("DELETE", "Patient/e2e-3", None, SECRET_ACCESS_KEY).await.status < 300);
    let signals = store.signals().await.events;
    assert_eq!(signals.len(), 16);
    send_to_queue(&services, [fixture_event("lifecycle-import-job-completed.json"), "not an event".to_owned()]).await;

    let dir = tempfile::tempdir().unwrap();
    run_pipe(&services, dir.path(), Hydrator::Binary, &["ChangeCaptureBatchSize=5"], &[]);
    let events = published(&services).await;
    let current = |id: &str| {
        let store = store;
        let id = id.to_owned();
        async move { store.resource("Patient", &id).await.expect("stored") }
    };
    let puts: BTreeMap<String, &Value> = events
        .values()
        .filter(|e| e["details"]["command"] == "PUT")
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["details"]["entity"]["resourceType"].as_str().unwrap(),
                    e["details"]["entity"]["id"].as_str().unwrap()
                ),
                e,
            )
        })
        .collect();
    // Each resource as it is now, once (the latest version: the signals name no version).
    assert_eq!(
        puts.keys().collect::<Vec<_>>(),
        ["Patient/e2e-0", "Patient/e2e-1", "Patient/e2e-2", "Practitioner/e2e-pr"]
    );
    for id in ["e2e-0", "e2e-1", "e2e-2"] {
        assert_eq!(puts[&format!("Patient/{id}")]["details"]["entity"], current(id).await);
    }
    let deletes: Vec<&Value> = events.values().filter(|e| e["details"]["command"] == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "the delete, once: {deletes:#?}");
    assert_eq!(deletes[0]["details"]["entity"], json!({"resourceType": "Patient", "id": "e2e-3"}));
    let by_type = |event_type: &str| events.values().filter(|e| e["eventType"] == event_type).count();
    assert_eq!((by_type("ImportJobCompleted"), by_type("HealthLakeSignalFailed")), (1, 1));
    assert_eq!(events.len(), 7, "{events:#?}");
    // Everything was delivered: the queue and its dead-letter queue are empty.
    assert!(services.moto.drain_queue(&services.signal_queue).await.is_empty());
    let summary: Value = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    assert_eq!(summary["read"], 18, "{summary}");

    // The same signals again (a redelivery, a replayed queue): nothing new on the bus.
    send_to_queue(&services, signals.iter().map(Value::to_string)).await;
    run_pipe(&services, dir.path(), Hydrator::Binary, &["ChangeCaptureBatchSize=5"], &[]);
    assert_eq!(published(&services).await, BTreeMap::new(), "duplicates suppressed");
}

#[tokio::test]
async fn full_resource_notifications_publish_every_version_in_order() {
    let services = services(Signals::subscription(SubscriptionPayload::FullResource)).await;
    for family in ["Ashcombe", "Ashcombe-Bligh", "Ashcombe-Bligh-Carrow"] {
        put(&services.store, &patient("e2e-versions", family)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    run_pipe(&services, dir.path(), Hydrator::InProcess, &["ChangeCaptureBatchSize=10"], &[]);
    let delivered: Vec<Value> = services.moto.drain_queue(&services.bus_queue).await;
    let families: Vec<&str> =
        delivered.iter().map(|e| e["detail"]["details"]["entity"]["name"][0]["family"].as_str().unwrap()).collect();
    assert_eq!(families, ["Ashcombe", "Ashcombe-Bligh", "Ashcombe-Bligh-Carrow"], "every version, in version order");
}

#[tokio::test]
async fn hidden_ids_are_published_from_one_search_over_more_than_three_pages() {
    let services = services(Signals::cloud_trail(ResourceIdVisibility::Hidden)).await;
    for n in 0..310 {
        put(&services.store, &patient(&format!("e2e-hidden-{n:03}"), "Underhill")).await;
    }
    let before = services.store.requests().await.len();
    let dir = tempfile::tempdir().unwrap();
    run_pipe(
        &services,
        dir.path(),
        Hydrator::InProcess,
        &["ChangeCaptureBatchSize=310", "ChangeCaptureBatchingWindowInSeconds=60"],
        &[],
    );
    let requests = services.store.requests().await.split_off(before);
    let searches: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| r.query.as_deref())
        .filter(|q| q.contains("_count"))
        .collect();
    // One batch of the 310 signals (its size; the window is only a bound), so one search over
    // their times: 4 pages of 100. Each search is counted with the pages it followed.
    let mut chains: Vec<usize> = Vec::new();
    for query in &searches {
        match chains.last_mut() {
            Some(pages) if query.contains("page=") => *pages += 1,
            _ => chains.push(1),
        }
    }
    let summary: Value = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    assert!(chains.len() <= summary["batches"].as_u64().unwrap() as usize, "{chains:?} searches: {summary}");
    assert_eq!(chains.first(), Some(&4), "every page of the first search: {searches:#?}");
    let events = published(&services).await;
    assert_eq!(events.len(), 310, "every patient once");
    assert!(events.values().all(|e| e["details"]["command"] == "PUT" && e["metadata"]["hydrated"] == true));
}

#[tokio::test]
async fn a_run_stopped_mid_queue_loses_nothing_and_the_next_publishes_each_change_once() {
    let services = services(Signals::cloud_trail(ResourceIdVisibility::Shown)).await;
    for n in 0..6 {
        put(&services.store, &patient(&format!("e2e-stop-{n}"), "Stopford")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    // Stopped after its first batch: two changes published, the other messages still queued.
    run_pipe(&services, dir.path(), Hydrator::Binary, &["ChangeCaptureBatchSize=2"], &["--max-batches", "1"]);
    let first = published(&services).await;
    assert_eq!(first.len(), 2, "{first:#?}");
    run_pipe(&services, dir.path(), Hydrator::InProcess, &["ChangeCaptureBatchSize=2"], &[]);
    let rest = published(&services).await;
    let mut ids: Vec<&str> =
        first.values().chain(rest.values()).map(|e| e["details"]["entity"]["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["e2e-stop-0", "e2e-stop-1", "e2e-stop-2", "e2e-stop-3", "e2e-stop-4", "e2e-stop-5"], "each once");
}
