//! The HealthLake change hydrator against the stand-in: writes to the store produce the signals a
//! real datastore produces (CloudTrail records with the id shown or hidden, Subscription
//! notifications id-only or full-resource); they are handed to the hydrator as the SQS messages
//! an EventBridge Pipe delivers, and the events it answers are checked against the store's state
//! and its request log.

use std::time::{Duration, Instant};

use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use fhir_pipes_e2e::{
    fhir_store::{
        ACCESS_KEY_ID, CONSISTENCY_HEADER, FhirStore, REGION, RecordedRequest, ResourceIdVisibility, SECRET_ACCESS_KEY,
        Signals, SubscriptionPayload,
    },
    fixtures_dir, r4_violations, read,
};
use fhir_pipes_healthlake::{
    HealthLakeConfig,
    hydrator::{HydrateError, Hydrated, Hydrator, HydratorConfig},
};
use serde_json::{Value, json};

fn hydrator(store: &FhirStore, page_size: u32) -> Hydrator {
    hydrator_with(store, HydratorConfig { page_size, ..HydratorConfig::default() })
}

fn hydrator_with(store: &FhirStore, config: HydratorConfig) -> Hydrator {
    let credentials =
        SharedCredentialsProvider::new(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "test"));
    let store_config =
        HealthLakeConfig { endpoint: store.base_url(), backoff_base_ms: 5, backoff_cap_ms: 50, ..config.store.clone() };
    HydratorConfig { store: store_config, ..config }.build_with(credentials, REGION.to_owned()).expect("a hydrator")
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "name": [{"family": family, "given": ["Wilhelmina"]}]})
}

async fn put(store: &FhirStore, resource: &Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
    let answer = store.signed_request("PUT", &path, Some(resource), SECRET_ACCESS_KEY).await;
    assert!(answer.status < 300, "PUT {path}: {}", answer.status);
}

async fn delete(store: &FhirStore, path: &str) {
    let answer = store.signed_request("DELETE", path, None, SECRET_ACCESS_KEY).await;
    assert!(answer.status < 300, "DELETE {path}: {}", answer.status);
}

/// The signals emitted so far, as the SQS messages a Pipe hands its enrichment (one per event).
async fn sqs_batch(store: &FhirStore) -> (Vec<Value>, String) {
    let events = store.signals().await.events;
    let messages: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            json!({
                "messageId": format!("msg-{n:04}"),
                "receiptHandle": format!("receipt-{n}"),
                "body": event.to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1796590000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:healthlake-changes",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let batch = Value::Array(messages.clone()).to_string();
    (messages, batch)
}

async fn hydrate(hydrator: &Hydrator, batch: &str) -> (Hydrated, Vec<Value>) {
    let hydrated = hydrator.hydrate(batch, Instant::now() + Duration::from_secs(20)).await.expect("hydrated");
    let events = hydrated.events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect();
    (hydrated, events)
}

fn searches(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests.iter().filter(|r| r.method == "GET" && r.query.as_deref().is_some_and(|q| !q.is_empty())).collect()
}

fn reads(requests: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    requests.iter().filter(|r| r.method == "GET" && r.query.as_deref().is_none_or(str::is_empty)).collect()
}

/// Asserts an event is a PUT of the store's current version of `resource_type/id`, its metadata
/// naming that version.
async fn assert_current_version(store: &FhirStore, event: &Value, resource_type: &str, id: &str) {
    let stored = store.resource(resource_type, id).await.expect("stored");
    assert_eq!(event["details"]["command"], "PUT", "{event}");
    assert_eq!(event["details"]["entity"], stored, "the resource as read, meta kept");
    assert_eq!(event["eventType"], format!("{resource_type}Change"));
    let version = stored["meta"]["versionId"].as_str().unwrap();
    assert_eq!(event["metadata"]["versionId"], version);
    assert_eq!(event["metadata"]["idempotencyKey"], format!("{resource_type}/{id}/_history/{version}"));
    assert_eq!(event["metadata"]["hydrated"], true);
    assert!(r4_violations(&event["details"]["entity"]).is_empty(), "not R4-valid: {event}");
}

#[tokio::test]
async fn cloudtrail_ids_shown_read_each_resource_once_as_it_is_now() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Shown)).await;
    for (id, family) in [("cdc-a", "Ashdown"), ("cdc-b", "Birchall"), ("cdc-c", "Cresswell")] {
        put(&store, &patient(id, family)).await;
    }
    put(&store, &patient("cdc-a", "Ashdown-Vane")).await;
    put(&store, &patient("cdc-a", "Ashdown-Vere")).await;
    delete(&store, "Patient/cdc-c").await;
    let (messages, batch) = sqs_batch(&store).await;
    assert_eq!(messages.len(), 6);
    let before = store.requests().await.len();

    let (hydrated, events) = hydrate(&hydrator(&store, 100), &batch).await;
    let requests = store.requests().await.split_off(before);
    assert_eq!(reads(&requests).len(), 2, "one GET per distinct resource not deleted: {requests:#?}");
    assert!(searches(&requests).is_empty());
    assert_eq!(hydrated.counts.changes, 6);
    assert_eq!(events.len(), 3, "{events:#?}");
    // In batch order of each resource's last signal: b (message 1), a (message 4), c (message 5).
    assert_eq!(
        events.iter().map(|e| e["correlationId"].as_str().unwrap()).collect::<Vec<_>>(),
        ["msg-0001", "msg-0004", "msg-0005"]
    );
    assert_current_version(&store, &events[0], "Patient", "cdc-b").await;
    assert_current_version(&store, &events[1], "Patient", "cdc-a").await;
    assert_eq!(events[1]["details"]["entity"]["name"][0]["family"], "Ashdown-Vere");
    assert_eq!(
        events[2]["details"],
        json!({"command": "DELETE", "entity": {"resourceType": "Patient", "id": "cdc-c"}})
    );
    assert!(events[2]["metadata"]["idempotencyKey"].as_str().unwrap().starts_with("Patient/cdc-c/_deleted/"));
    // A batch holding only the creates: cdc-c is gone by now, and its delete has a signal of its
    // own (the one DELETE event), so its create gives none.
    let creates = Value::Array(messages[..3].to_vec()).to_string();
    let (early, early_events) = hydrate(&hydrator(&store, 100), &creates).await;
    assert_eq!((early.counts.reads, early.counts.gone, early_events.len()), (3, 1, 2), "{early_events:#?}");
    for event in &events {
        assert_eq!((event["version"].as_str(), event["source"].as_str()), (Some("1.0"), Some("HealthLake")));
        assert_eq!(event["metadata"]["signal"], "cloudtrail");
        assert_eq!(event["metadata"]["datastoreId"], fhir_pipes_e2e::fhir_store::DATASTORE_ID);
    }
}

#[tokio::test]
async fn hidden_ids_are_found_by_one_search_per_type_over_every_page() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Hidden)).await;
    for n in 0..7 {
        put(&store, &patient(&format!("hid-{n}"), "Hollingsworth")).await;
    }
    put(&store, &json!({"resourceType": "Practitioner", "id": "hid-pr", "name": [{"family": "Quill"}]})).await;
    put(&store, &patient("hid-gone", "Hollingsworth")).await;
    delete(&store, "Patient/hid-gone").await;
    let (_, batch) = sqs_batch(&store).await;
    let before = store.requests().await.len();

    let (hydrated, events) = hydrate(&hydrator(&store, 2), &batch).await;
    let requests = store.requests().await.split_off(before);
    let searched = searches(&requests);
    assert!(reads(&requests).is_empty(), "no id to read");
    // Patients: 7 live ones over pages of 2 (4 pages); Practitioners: 1 page.
    assert_eq!(searched.len(), 5, "{searched:#?}");
    assert_eq!((hydrated.counts.searches, hydrated.counts.pages), (2, 5));
    assert!(
        searched.iter().all(|r| r.consistency_level.as_deref() == Some("strong")),
        "{CONSISTENCY_HEADER} on every page"
    );
    assert!(searched.iter().all(|r| r.status == Some(200)), "every page signed correctly: {searched:#?}");
    let puts: Vec<&Value> = events.iter().filter(|e| e["details"]["command"] == "PUT").collect();
    let mut ids: Vec<&str> = puts.iter().map(|e| e["details"]["entity"]["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["hid-0", "hid-1", "hid-2", "hid-3", "hid-4", "hid-5", "hid-6", "hid-pr"]);
    for event in &puts {
        let (resource_type, id) = (
            event["details"]["entity"]["resourceType"].as_str().unwrap(),
            event["details"]["entity"]["id"].as_str().unwrap(),
        );
        assert_current_version(&store, event, resource_type, id).await;
    }
    // The delete cannot be attributed: said so, counted.
    let unattributed: Vec<&Value> = events.iter().filter(|e| e["eventType"] == "PatientDeleteUnattributed").collect();
    assert_eq!(unattributed.len(), 1, "{events:#?}");
    assert_eq!(unattributed[0]["details"], json!({"command": "NOTIFY", "entity": {"resourceType": "Patient"}}));
    assert_eq!(unattributed[0]["metadata"]["hydrated"], false);
    assert_eq!(hydrated.counts.unattributed_deletes, 1);
}

#[tokio::test]
async fn full_resource_notifications_need_no_request_and_id_only_ones_read_once() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::subscription(SubscriptionPayload::FullResource)).await;
    put(&store, &patient("sub-a", "Abernethy")).await;
    let first = store.resource("Patient", "sub-a").await.unwrap();
    put(&store, &patient("sub-a", "Abernethy-Lyle")).await;
    delete(&store, "Patient/sub-a").await;
    let (_, batch) = sqs_batch(&store).await;
    let before = store.requests().await.len();
    let (_, events) = hydrate(&hydrator(&store, 100), &batch).await;
    assert!(store.requests().await.split_off(before).is_empty(), "the notifications carry the resources");
    let commands: Vec<&str> = events.iter().map(|e| e["details"]["command"].as_str().unwrap()).collect();
    assert_eq!(commands, ["PUT", "PUT", "DELETE"], "every version, in order: {events:#?}");
    assert_eq!(events[0]["details"]["entity"], first, "the first version as written");
    assert_eq!(events[1]["details"]["entity"]["name"][0]["family"], "Abernethy-Lyle");
    // A delete's notification carries no resource, so nothing tells its payload kind apart.
    assert!(events[..2].iter().all(|e| e["metadata"]["signal"] == "subscription-full-resource"), "{events:#?}");

    store.reset().await;
    store.configure_signals(&Signals::subscription(SubscriptionPayload::IdOnly)).await;
    put(&store, &patient("sub-b", "Blackwood")).await;
    put(&store, &patient("sub-b", "Blackwood-Fane")).await;
    let (_, batch) = sqs_batch(&store).await;
    let before = store.requests().await.len();
    let (_, events) = hydrate(&hydrator(&store, 100), &batch).await;
    assert_eq!(reads(&store.requests().await.split_off(before)).len(), 1, "one GET for two notifications");
    assert_eq!(events.len(), 1);
    assert_current_version(&store, &events[0], "Patient", "sub-b").await;
    assert_eq!(events[0]["metadata"]["signal"], "subscription-id-only");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_nothing_is_lost() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Shown)).await;
    for n in 0..4 {
        put(&store, &patient(&format!("busy-{n}"), "Thornbury")).await;
    }
    let (_, batch) = sqs_batch(&store).await;
    store.inject(429, 3, Some("GET"), None).await;
    store.inject(503, 2, Some("GET"), None).await;
    let (hydrated, events) = hydrate(&hydrator(&store, 100), &batch).await;
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(hydrated.counts.retries, 5);
    for (n, event) in events.iter().enumerate() {
        assert_current_version(&store, event, "Patient", &format!("busy-{n}")).await;
    }
}

#[tokio::test]
async fn a_store_that_stays_down_fails_the_batch_within_the_deadline() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Hidden)).await;
    put(&store, &patient("down-0", "Fairweather")).await;
    let (_, batch) = sqs_batch(&store).await;
    store.inject(503, 1000, Some("GET"), None).await;
    let hydrator = hydrator(&store, 100);
    let started = Instant::now();
    let error = hydrator.hydrate(&batch, Instant::now() + Duration::from_secs(3)).await.expect_err("the store is down");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(&error, HydrateError::Store { reason, .. } if reason == "HTTP 503"), "{error}");
    assert_eq!(error.kind(), "StoreUnavailable");
    assert!(error.to_string().contains("search of Patient"), "{error}");
    // A refusal is not retried: it fails at once.
    store.reset().await;
    store.inject(403, 1, Some("GET"), None).await;
    let error = hydrator.hydrate(&batch, Instant::now() + Duration::from_secs(10)).await.expect_err("refused");
    assert!(matches!(&error, HydrateError::Store { attempts: 1, .. }), "{error}");
}

#[tokio::test]
async fn unreadable_messages_and_lifecycle_events_become_events_and_the_rest_goes_on() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Shown)).await;
    put(&store, &patient("mix-0", "Pemberton")).await;
    let (mut messages, _) = sqs_batch(&store).await;
    let fixture = |name: &str| -> Vec<Value> {
        let path = fixtures_dir().join("healthlake-signals").join(name);
        serde_json::from_str(&read(&path)).unwrap()
    };
    messages.extend(fixture("malformed-body-not-json.json"));
    messages.extend(fixture("lifecycle-import-job-completed.json"));
    let batch = Value::Array(messages.clone()).to_string();
    let (hydrated, events) = hydrate(&hydrator(&store, 100), &batch).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_current_version(&store, &events[0], "Patient", "mix-0").await;
    assert_eq!(events[1]["eventType"], "HealthLakeSignalFailed");
    assert_eq!(events[1]["details"]["command"], "ERROR");
    assert_eq!(events[1]["details"]["record"], messages[1], "the message itself, unchanged");
    assert_eq!(events[1]["correlationId"], messages[1]["messageId"]);
    assert_eq!(events[2]["eventType"], "ImportJobCompleted");
    assert_eq!(events[2]["details"]["command"], "NOTIFY");
    let lifecycle_detail: Value = serde_json::from_str(messages[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(events[2]["details"]["entity"], lifecycle_detail["detail"]);
    assert_eq!((hydrated.counts.unreadable, hydrated.counts.lifecycle), (1, 1));
}

#[tokio::test]
async fn a_resource_over_the_size_limits_is_carried_by_reference() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Shown)).await;
    put(&store, &patient("big-0", &"Featherstonehaugh".repeat(40))).await;
    put(&store, &patient("big-1", "Small")).await;
    let (_, batch) = sqs_batch(&store).await;
    let hydrator = hydrator_with(&store, HydratorConfig { max_event_bytes: 700, ..HydratorConfig::default() });
    let (hydrated, events) = hydrate(&hydrator, &batch).await;
    assert_eq!(events[0]["details"]["entity"], json!({"resourceType": "Patient", "id": "big-0"}));
    assert_eq!(events[0]["metadata"]["hydrated"], false);
    assert!(events[0]["metadata"]["versionId"].is_string(), "the version is still named");
    assert_current_version(&store, &events[1], "Patient", "big-1").await;
    assert_eq!(hydrated.counts.references_only, 1);
}
