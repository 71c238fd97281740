//! What the HealthLake stand-in (`tests/fhir-store/server.mjs`) does like HealthLake for change
//! data capture and Medplum does not: searches paged by `next` links with an opaque `page` token
//! that must be percent-encoded before signing, the `x-amz-fhir-history-consistency-level` header
//! in the request log, and a change signal (an EventBridge event, CloudTrail-shaped or a FHIR
//! Subscription notification) for every write, to an NDJSON file and to a moto SQS queue.

use std::collections::BTreeSet;

use fhir_pipes_e2e::{
    fhir_store::{
        CLOUDTRAIL_DETAIL_TYPE, CLOUDTRAIL_SOURCE, CONSISTENCY_HEADER, CloudTrailSignals, DATASTORE_ID, FhirStore,
        HIDDEN_RESOURCE_ID, REGION, ResourceIdVisibility, SECRET_ACCESS_KEY, SIGNAL_ACCOUNT, SUBSCRIPTION_DETAIL_TYPE,
        SUBSCRIPTION_SOURCE, Signals, StoreResponse, SubscriptionPayload, read_signal_file,
    },
    moto::MotoServer,
};
use serde_json::{Value, json};

const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "name": [{"family": family}]})
}

async fn sign(store: &FhirStore, method: &str, path: &str, body: Option<Value>) -> StoreResponse {
    store.signed_request(method, path, body.as_ref(), SECRET_ACCESS_KEY).await
}

/// A GET of an absolute URL, signed, with `x-amz-fhir-history-consistency-level: strong`.
async fn strong_get(store: &FhirStore, url: &str) -> StoreResponse {
    store.signed_request_to("GET", url, &[(CONSISTENCY_HEADER, "strong")], None, SECRET_ACCESS_KEY).await
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == "next").map(|l| l["url"].as_str().unwrap().to_owned())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The link with its `page` value percent-encoded: what a client must send (and sign).
fn reencode_page(link: &str) -> String {
    let (before, token) = link.split_once("&page=").expect("a page parameter last in the link");
    format!("{before}&page={}", percent_encode(token))
}

fn page_token(link: &str) -> &str {
    link.split_once("&page=").expect("a page parameter").1
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// `2026-12-06T18:07:16Z`.
fn is_whole_seconds(text: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:ddZ";
    text.len() == pattern.len()
        && text.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
}

/// The EventBridge envelope every signal has.
fn assert_envelope(event: &Value, source: &str, detail_type: &str) {
    let keys: BTreeSet<&str> = event.as_object().expect("an event object").keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> =
        ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"].into();
    assert_eq!(keys, expected, "{event:#}");
    assert_eq!(event["version"], "0");
    assert!(is_uuid(event["id"].as_str().unwrap()), "{event:#}");
    assert_eq!(event["source"], source);
    assert_eq!(event["detail-type"], detail_type);
    assert_eq!(event["account"], SIGNAL_ACCOUNT);
    assert_eq!(event["region"], REGION);
    assert!(is_whole_seconds(event["time"].as_str().unwrap()), "{event:#}");
    assert!(event["resources"].is_array());
}

/// A CloudTrail signal's envelope and detail; returns the detail.
fn assert_cloudtrail<'a>(event: &'a Value, event_name: &str, status: u16) -> &'a Value {
    assert_envelope(event, CLOUDTRAIL_SOURCE, CLOUDTRAIL_DETAIL_TYPE);
    assert_eq!(event["resources"], json!([]));
    let detail = &event["detail"];
    assert_eq!(detail["eventSource"], "healthlake.amazonaws.com");
    assert_eq!(detail["eventName"], event_name, "{event:#}");
    assert_eq!(detail["eventTime"], event["time"]);
    assert!(is_uuid(detail["eventID"].as_str().unwrap()), "{event:#}");
    assert_eq!(detail["requestParameters"], json!({"datastoreId": DATASTORE_ID, "resourceType": "Patient"}));
    assert_eq!(detail["responseElements"], json!({"statusCode": status}), "{event:#}");
    assert_eq!(detail["awsRegion"], REGION);
    assert_eq!(detail["eventType"], "AwsApiCall");
    assert_eq!(detail["userIdentity"]["accountId"], SIGNAL_ACCOUNT);
    assert!(detail["eventVersion"].is_string());
    detail
}

/// A subscription signal's envelope and notification Bundle; returns the Bundle.
fn assert_notification<'a>(event: &'a Value, event_number: u32, focus: &str) -> &'a Value {
    assert_envelope(event, SUBSCRIPTION_SOURCE, SUBSCRIPTION_DETAIL_TYPE);
    assert_eq!(
        event["resources"],
        json!([format!("arn:aws:healthlake:{REGION}:{SIGNAL_ACCOUNT}:datastore/fhir/{DATASTORE_ID}")])
    );
    let bundle = &event["detail"];
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "history");
    assert_eq!(bundle["meta"]["profile"], json!([format!("{BACKPORT}/backport-subscription-notification-r4")]));
    let status = &bundle["entry"][0];
    assert!(status["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_eq!(status["request"]["method"], "GET");
    assert!(status["request"]["url"].as_str().unwrap().ends_with("/Subscription/fhir-store-changes/$status"));
    assert_eq!(status["response"]["status"], "200");
    let parameters = &status["resource"];
    assert_eq!(parameters["resourceType"], "Parameters");
    assert_eq!(parameters["meta"]["profile"], json!([format!("{BACKPORT}/backport-subscription-status-r4")]));
    let parameter = |name: &str| {
        parameters["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_default()
    };
    assert_eq!(parameter("subscription")["valueReference"]["reference"], "Subscription/fhir-store-changes");
    assert!(parameter("topic")["valueCanonical"].is_string());
    assert_eq!(parameter("status")["valueCode"], "active");
    assert_eq!(parameter("type")["valueCode"], "event-notification");
    assert_eq!(parameter("events-since-subscription-start")["valueString"], event_number.to_string());
    let parts = parameter("notification-event")["part"].clone();
    let part = |name: &str| parts.as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or_default();
    assert_eq!(part("event-number")["valueString"], event_number.to_string());
    assert!(part("timestamp")["valueInstant"].is_string());
    assert_eq!(part("focus")["valueReference"]["reference"], focus, "{event:#}");
    bundle
}

#[tokio::test]
async fn searches_page_with_next_links_that_reach_every_resource_once() {
    let store = FhirStore::start();
    assert_eq!(sign(&store, "PUT", "Patient/old", Some(patient("old", "Before"))).await.status, 201);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut written = Vec::new();
    for i in 0..7 {
        let id = format!("page-{i}");
        let created = sign(&store, "PUT", &format!("Patient/{id}"), Some(patient(&id, "Paged"))).await;
        assert_eq!(created.status, 201, "{}", created.body);
        written.push(created.body);
    }
    let since = written[0]["meta"]["lastUpdated"].as_str().unwrap().to_owned();

    let mut url = format!("{}Patient?_lastUpdated=ge{since}&_count=2", store.base_url());
    let mut pages = Vec::new();
    loop {
        let page = strong_get(&store, &url).await;
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        assert_eq!(page.body["type"], "searchset");
        assert_eq!(page.body.get("total"), None, "a search with _count has no total: {}", page.body);
        let next = next_link(&page.body);
        pages.push(ids(&page.body));
        let Some(next) = next else { break };
        // The same search plus an opaque page token, which holds characters that need encoding.
        let prefix = format!("{}Patient?_lastUpdated=ge{since}&_count=2&page=", store.base_url());
        assert!(next.starts_with(&prefix), "{next}");
        let token = page_token(&next);
        assert!(token.contains('+') && token.contains('/') && token.ends_with('='), "{token}");
        url = reencode_page(&next);
        assert!(pages.len() < 10, "the next links never end");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1], "{pages:?}");
    // Every resource once, in _lastUpdated then id order, and not the one written before `since`.
    let expected: Vec<String> = written.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(pages.concat(), expected);

    // The request log keeps the consistency header and the query as sent.
    let searches: Vec<_> = store.requests().await.into_iter().filter(|r| r.method == "GET").collect();
    assert_eq!(searches.len(), 4);
    assert!(searches.iter().all(|r| r.consistency_level.as_deref() == Some("strong") && r.signed), "{searches:#?}");
    assert!(searches[1].query.as_deref().unwrap().contains("&page=%2B%2F%2B%2F"), "{:?}", searches[1].query);
    let unflagged = sign(&store, "GET", "Patient/page-0", None).await;
    assert_eq!(unflagged.status, 200);
    assert_eq!(store.requests().await.last().unwrap().consistency_level, None);

    // A search without _count keeps its total and fits one page.
    let all = sign(&store, "GET", "Patient?family=Paged", None).await;
    assert_eq!(all.body["total"], 7, "{}", all.body);
    assert_eq!(next_link(&all.body), None);
    assert_eq!(ids(&all.body), expected);
}

#[tokio::test]
async fn a_page_token_must_be_percent_encoded_before_signing() {
    let store = FhirStore::start();
    for i in 0..3 {
        let id = format!("enc-{i}");
        assert_eq!(sign(&store, "PUT", &format!("Patient/{id}"), Some(patient(&id, "Encoded"))).await.status, 201);
    }
    let first = sign(&store, "GET", "Patient?family=Encoded&_count=2", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let next = next_link(&first.body).expect("a next link");

    // Sent as the link gives it: the signer reads the raw `+` as a space, the store as a plus.
    let verbatim = strong_get(&store, &next).await;
    assert_eq!(verbatim.status, 403, "{}", verbatim.body);
    assert!(verbatim.body.to_string().contains("signature does not match"), "{}", verbatim.body);

    // Re-encoded: signed and served.
    let encoded = strong_get(&store, &reencode_page(&next)).await;
    assert_eq!(encoded.status, 200, "{}", encoded.body);
    assert_eq!(ids(&encoded.body), ["enc-2"]);
    assert_eq!(next_link(&encoded.body), None, "the last page has no next link");

    // A client that decoded `+` as a space and encoded that: the token is refused.
    let (before, token) = next.split_once("&page=").unwrap();
    let spaced = format!("{before}&page={}", percent_encode(&token.replace('+', " ")));
    let corrupted = strong_get(&store, &spaced).await;
    assert_eq!(corrupted.status, 400, "{}", corrupted.body);
    assert!(corrupted.body.to_string().contains("invalid page token"), "{}", corrupted.body);

    // A token belongs to its search.
    let other = format!("{}Patient?family=Other&_count=2&page={}", store.base_url(), percent_encode(token));
    let mismatched = strong_get(&store, &other).await;
    assert_eq!(mismatched.status, 400, "{}", mismatched.body);
    assert!(mismatched.body.to_string().contains("another search"), "{}", mismatched.body);
}

#[tokio::test]
async fn cloudtrail_signals_for_create_update_and_delete() {
    let store = FhirStore::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals.ndjson");
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Shown).to_file(&file)).await;

    let posted = sign(&store, "POST", "Patient", Some(json!({"resourceType": "Patient", "gender": "male"}))).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let posted_id = posted.body["id"].as_str().unwrap().to_owned();
    assert_eq!(sign(&store, "PUT", "Patient/ct-1", Some(patient("ct-1", "One"))).await.status, 201);
    assert_eq!(sign(&store, "PUT", "Patient/ct-1", Some(patient("ct-1", "Two"))).await.status, 200);
    // Neither a refused write, an unsigned one, nor a read is a change.
    let mut robot = patient("ct-2", "Robot");
    robot["gender"] = json!("robot");
    assert_eq!(sign(&store, "PUT", "Patient/ct-2", Some(robot)).await.status, 400);
    assert_eq!(store.unsigned_request("PUT", "Patient/ct-3", Some(&patient("ct-3", "Unsigned"))).await.status, 403);
    assert_eq!(sign(&store, "GET", "Patient/ct-1", None).await.status, 200);
    let deleted = sign(&store, "DELETE", "Patient/ct-1", None).await;
    assert_eq!(deleted.status, 200, "Medplum answers a DELETE with 200 and an OperationOutcome: {}", deleted.body);
    // Medplum keeps no trace of a deleted resource: a read answers 404, not HealthLake's 410.
    assert_eq!(sign(&store, "GET", "Patient/ct-1", None).await.status, 404);
    assert_eq!(sign(&store, "DELETE", "Patient/ct-1", None).await.status, 404);

    let events = read_signal_file(&file);
    assert_eq!(events, store.signals().await.events, "the file holds what the store emitted, in order");
    assert_eq!(events.len(), 4, "{events:#?}");
    let expected = [
        ("CreateResource", 201, posted_id.as_str()),
        ("UpdateResource", 201, "ct-1"),
        ("UpdateResource", 200, "ct-1"),
        ("DeleteResource", 200, "ct-1"),
    ];
    for (event, (name, status, id)) in events.iter().zip(expected) {
        let detail = assert_cloudtrail(event, name, status);
        assert_eq!(detail["additionalEventData"], json!({"resourceId": id}));
    }
    let event_ids: BTreeSet<_> = events.iter().map(|e| e["detail"]["eventID"].as_str().unwrap()).collect();
    assert_eq!(event_ids.len(), 4, "every eventID is new");
    assert!(store.signals().await.errors.is_empty());
}

#[tokio::test]
async fn cloudtrail_resource_ids_can_be_hidden_or_absent() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Hidden)).await;
    assert_eq!(sign(&store, "PUT", "Patient/h-1", Some(patient("h-1", "Hidden"))).await.status, 201);
    store.configure_signals(&Signals::cloud_trail(ResourceIdVisibility::Absent)).await;
    assert_eq!(sign(&store, "PUT", "Patient/h-1", Some(patient("h-1", "Absent"))).await.status, 200);
    store.configure_signals(&Signals::default()).await;
    assert_eq!(sign(&store, "DELETE", "Patient/h-1", None).await.status, 200, "no signal once turned off");

    let events = store.signals().await.events;
    assert_eq!(events.len(), 2, "{events:#?}");
    let hidden = assert_cloudtrail(&events[0], "UpdateResource", 201);
    assert_eq!(hidden["additionalEventData"], json!({"resourceId": HIDDEN_RESOURCE_ID}));
    let absent = assert_cloudtrail(&events[1], "UpdateResource", 200);
    assert_eq!(absent.get("additionalEventData"), None, "{absent:#}");
}

#[tokio::test]
async fn refused_writes_signal_their_status_when_asked() {
    let store = FhirStore::start();
    let signals = Signals {
        cloud_trail: Some(CloudTrailSignals { resource_id: ResourceIdVisibility::Shown, refused_writes: true }),
        ..Signals::default()
    };
    store.configure_signals(&signals).await;
    let mut robot = patient("r-1", "Robot");
    robot["gender"] = json!("robot");
    assert_eq!(sign(&store, "PUT", "Patient/r-1", Some(robot)).await.status, 400);
    store.inject(429, 1, Some("PUT"), Some(("Patient", "r-1"))).await;
    store.inject(503, 1, Some("PUT"), Some(("Patient", "r-1"))).await;
    assert_eq!(sign(&store, "PUT", "Patient/r-1", Some(patient("r-1", "Throttled"))).await.status, 429);
    assert_eq!(sign(&store, "PUT", "Patient/r-1", Some(patient("r-1", "Unavailable"))).await.status, 503);
    assert_eq!(sign(&store, "DELETE", "Patient/r-1", None).await.status, 404);
    assert_eq!(sign(&store, "PUT", "Patient/r-1", Some(patient("r-1", "Stored"))).await.status, 201);

    let events = store.signals().await.events;
    let statuses: Vec<_> = events
        .iter()
        .map(|e| (e["detail"]["eventName"].clone(), e["detail"]["responseElements"]["statusCode"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("UpdateResource"), json!(400)),
            (json!("UpdateResource"), json!(429)),
            (json!("DeleteResource"), json!(404)),
            (json!("UpdateResource"), json!(201)),
        ],
        "4xx are signalled, 5xx are not"
    );
    for event in &events {
        assert_envelope(event, CLOUDTRAIL_SOURCE, CLOUDTRAIL_DETAIL_TYPE);
        assert_eq!(event["detail"]["additionalEventData"]["resourceId"], "r-1");
    }
}

#[tokio::test]
async fn subscription_notifications_carry_the_focus_or_the_full_resource() {
    let store = FhirStore::start();
    store.configure_signals(&Signals::subscription(SubscriptionPayload::IdOnly)).await;
    assert_eq!(sign(&store, "PUT", "Patient/s-1", Some(patient("s-1", "One"))).await.status, 201);
    assert_eq!(sign(&store, "DELETE", "Patient/s-1", None).await.status, 200);
    store.configure_signals(&Signals::subscription(SubscriptionPayload::FullResource)).await;
    let created = sign(&store, "PUT", "Patient/s-2", Some(patient("s-2", "Two"))).await;
    let updated = sign(&store, "PUT", "Patient/s-2", Some(patient("s-2", "Three"))).await;
    let posted = sign(&store, "POST", "Patient", Some(json!({"resourceType": "Patient"}))).await;
    assert_eq!((created.status, updated.status, posted.status), (201, 200, 201));
    assert_eq!(sign(&store, "DELETE", "Patient/s-2", None).await.status, 200);
    let posted_id = posted.body["id"].as_str().unwrap();

    let events = store.signals().await.events;
    assert_eq!(events.len(), 6, "{events:#?}");
    // id-only: the status entry alone, naming the focus.
    for (index, event) in events[..2].iter().enumerate() {
        let bundle = assert_notification(event, index as u32 + 1, "Patient/s-1");
        assert_eq!(bundle["entry"].as_array().unwrap().len(), 1, "{bundle:#}");
    }
    // full-resource: plus an entry with the resource as stored (none for a delete).
    let full = [
        ("s-2", "PUT", "Patient/s-2", "201", Some(&created.body)),
        ("s-2", "PUT", "Patient/s-2", "200", Some(&updated.body)),
        (posted_id, "POST", "Patient", "201", Some(&posted.body)),
        ("s-2", "DELETE", "Patient/s-2", "200", None),
    ];
    for (index, (event, (id, method, url, status, resource))) in events[2..].iter().zip(full).enumerate() {
        let bundle = assert_notification(event, index as u32 + 3, &format!("Patient/{id}"));
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{bundle:#}");
        assert_eq!(entries[1]["fullUrl"], format!("{}Patient/{id}", store.base_url()));
        assert_eq!(entries[1]["request"], json!({"method": method, "url": url}));
        assert_eq!(entries[1]["response"], json!({"status": status}));
        assert_eq!(entries[1].get("resource"), resource, "{bundle:#}");
    }
    // The notification's timestamp is the write's lastUpdated.
    let timestamp = &events[3]["detail"]["entry"][0]["resource"]["parameter"][5]["part"][1]["valueInstant"];
    assert_eq!(timestamp, &updated.body["meta"]["lastUpdated"]);
}

#[tokio::test]
async fn signals_reach_an_sqs_queue_as_eventbridge_delivers_them() {
    let moto = MotoServer::start();
    let sqs = moto.sqs().await;
    let created = sqs.create_queue().queue_name("healthlake-changes").send().await.expect("CreateQueue");
    let queue_url = created.queue_url().expect("a queue URL").to_owned();
    let store = FhirStore::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals.ndjson");
    let signals = Signals {
        subscription: Signals::subscription(SubscriptionPayload::FullResource).subscription,
        ..Signals::cloud_trail(ResourceIdVisibility::Shown)
    }
    .to_file(&file)
    .to_queue(&queue_url);
    store.configure_signals(&signals).await;

    assert_eq!(sign(&store, "PUT", "Patient/q-1", Some(patient("q-1", "Queued"))).await.status, 201);
    assert_eq!(sign(&store, "PUT", "Patient/q-1", Some(patient("q-1", "Requeued"))).await.status, 200);
    assert_eq!(sign(&store, "DELETE", "Patient/q-1", None).await.status, 200);

    let log = store.signals().await;
    assert!(log.errors.is_empty(), "{:#?}", log.errors);
    let events = read_signal_file(&file);
    assert_eq!(events, log.events);
    // Each write: its CloudTrail event, then its notification.
    let kinds: Vec<_> = events.iter().map(|e| e["detail-type"].as_str().unwrap()).collect();
    assert_eq!(kinds, [CLOUDTRAIL_DETAIL_TYPE, SUBSCRIPTION_DETAIL_TYPE].repeat(3));

    // Every message body is one whole event, exactly as emitted.
    let mut received = moto.drain_queue(&queue_url).await;
    let mut sent = events.clone();
    let by_id = |a: &Value, b: &Value| a["id"].as_str().cmp(&b["id"].as_str());
    received.sort_by(by_id);
    sent.sort_by(by_id);
    assert_eq!(received, sent);
}
