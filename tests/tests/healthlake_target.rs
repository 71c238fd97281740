//! The HealthLake target end to end against the local HealthLake stand-in (`FhirStore`): events
//! made by the real Patient enricher from DynamoDB stream records, written by
//! `fhir_pipes_healthlake` with SigV4-signed requests; what the store holds, what it was asked
//! (its request log) and what the Lambda handler answers are checked.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use fhir_pipes_e2e::{
    CapturedLogs, assert_json_eq,
    binaries::cargo_bin,
    capture_logs,
    fhir_store::{
        ACCESS_KEY_ID, DATASTORE_ID, FhirStore, REGION, RecordedRequest, SECRET_ACCESS_KEY, max_in_flight, without_meta,
    },
};
use fhir_pipes_enrichers::resources;
use fhir_pipes_healthlake::{
    Applied, EventOutcome, FailureKind, HealthLakeConfig, HealthLakeWriter, WriteReport,
    lambda::{self, BatchResponse},
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json, value::RawValue};

// ---------------------------------------------------------------------------------------------
// Stream records, enrichment, writer
// ---------------------------------------------------------------------------------------------

/// A patient row of the DynamoDB table.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    first: String,
    last: String,
    birth: String,
    gender: &'static str,
}

impl Person {
    fn new(id: &str, first: &str, last: &str, birth: &str) -> Self {
        Self { id: id.to_owned(), first: first.to_owned(), last: last.to_owned(), birth: birth.to_owned(), gender: "F" }
    }

    /// The same patient with another last name (a change the FHIR resource shows).
    fn renamed(&self, last: &str) -> Self {
        Self { last: last.to_owned(), ..self.clone() }
    }

    fn image(&self) -> Value {
        json!({
            "id": {"S": self.id},
            "firstName": {"S": self.first},
            "lastName": {"S": self.last},
            "birthDate": {"S": self.birth},
            "gender": {"S": self.gender},
            "active": {"BOOL": true},
        })
    }
}

/// DynamoDB stream records of one batch, with unique eventIDs and rising sequence numbers.
struct Stream {
    seed: u32,
    records: Vec<Value>,
}

impl Stream {
    fn new(seed: u32) -> Self {
        Self { seed, records: Vec::new() }
    }

    fn push(&mut self, name: &str, id: &str, new: Option<Value>, old: Option<Value>) -> String {
        let n = self.records.len() as u64 + 1;
        let event_id = format!("{:08x}{n:024x}", self.seed);
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": 1_795_286_402u64 + n,
            "Keys": {"id": {"S": id}},
            "SequenceNumber": format!("{}{n:012}", 1_111_000_000 + self.seed as u64),
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        self.records.push(json!({
            "eventID": event_id,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:111122223333:table/Patients/stream/2026-11-01T00:00:00.000",
            "dynamodb": dynamodb,
        }));
        event_id
    }

    fn insert(&mut self, person: &Person) -> String {
        self.push("INSERT", &person.id, Some(person.image()), None)
    }

    fn modify(&mut self, old: &Person, new: &Person) -> String {
        self.push("MODIFY", &new.id, Some(new.image()), Some(old.image()))
    }

    fn remove(&mut self, person: &Person) -> String {
        self.push("REMOVE", &person.id, None, Some(person.image()))
    }

    /// The events the real Patient enricher makes of the records (one per record).
    fn enrich(&self) -> Vec<Box<RawValue>> {
        let resource = resources::find("patient").expect("the patient mapping is shipped");
        let enricher = (resource.build)(&|_| None).expect("default settings");
        let batch = Value::Array(self.records.clone()).to_string();
        let events = enricher.enrich(&batch).expect("the batch enriches").events;
        assert_eq!(events.len(), self.records.len(), "one event per record");
        events
    }
}

fn json_of(event: &RawValue) -> Value {
    serde_json::from_str(event.get()).expect("events are JSON")
}

fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("valid JSON")
}

fn command(event: &RawValue) -> String {
    json_of(event)["details"]["command"].as_str().unwrap_or_default().to_owned()
}

fn entity(event: &RawValue) -> Value {
    json_of(event)["details"]["entity"].clone()
}

/// The event with its entity changed by `edit`.
fn edited(event: &RawValue, edit: impl FnOnce(&mut Value)) -> Box<RawValue> {
    let mut value = json_of(event);
    edit(&mut value["details"]["entity"]);
    raw(&value)
}

fn config(endpoint: String) -> HealthLakeConfig {
    HealthLakeConfig { endpoint, backoff_base_ms: 5, backoff_cap_ms: 50, ..HealthLakeConfig::default() }
}

fn writer_with(config: HealthLakeConfig, secret: &str) -> HealthLakeWriter {
    let credentials = Credentials::new(ACCESS_KEY_ID, secret, None, None, "test");
    config.build_with(SharedCredentialsProvider::new(credentials), REGION.into()).expect("a valid configuration")
}

fn writer(store: &FhirStore) -> HealthLakeWriter {
    writer_with(config(store.base_url()), SECRET_ACCESS_KEY)
}

fn in_30s() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn epoch_ms_in(ms: u64) -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + ms
}

/// Runs the Lambda handler on `events`; `deadline_ms` since the epoch, 0 for the default budget.
async fn invoke(writer: &HealthLakeWriter, events: &[Box<RawValue>], deadline_ms: u64) -> BatchResponse {
    let payload = RawValue::from_string(serde_json::to_string(events).unwrap()).unwrap();
    let mut context = Context::default();
    context.deadline = deadline_ms;
    lambda::handle(writer, LambdaEvent::new(payload, context)).await.expect("the handler answers")
}

fn failed_ids(response: &BatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

fn applied(report: &WriteReport) -> Vec<Option<Applied>> {
    report.outcomes.iter().map(|o| o.result.as_ref().ok().copied()).collect()
}

fn failure_kind(outcome: &EventOutcome) -> &FailureKind {
    &outcome.result.as_ref().expect_err("the event should have failed").kind
}

/// The stored Patients without `meta`, by id.
async fn stored_patients(store: &FhirStore) -> BTreeMap<String, Value> {
    store
        .resources("Patient")
        .await
        .into_iter()
        .map(|r| (r["id"].as_str().expect("stored resources have ids").to_owned(), without_meta(r)))
        .collect()
}

/// The log's requests for one Patient id, in arrival order.
fn requests_for<'a>(log: &'a [RecordedRequest], id: &str) -> Vec<&'a RecordedRequest> {
    log.iter().filter(|r| r.id.as_deref() == Some(id)).collect()
}

fn statuses(requests: &[&RecordedRequest]) -> Vec<(String, Option<u16>)> {
    requests.iter().map(|r| (r.method.clone(), r.status)).collect()
}

fn people(prefix: &str, count: usize) -> Vec<Person> {
    const FIRST: [&str; 5] = ["Wilhelmina", "Bartholomew", "Cordelia", "Evander", "Philippa"];
    const LAST: [&str; 5] = ["Quarrington", "Fairweather", "Oyelaran", "Umberfield", "Thistlewood"];
    (0..count)
        .map(|i| {
            Person::new(
                &format!("{prefix}-{i:03}"),
                FIRST[i % FIRST.len()],
                &format!("{}{}", LAST[i % LAST.len()], ["", "-Ash", "-Birch", "-Cedar"][i / 5 % 4]),
                &format!("19{:02}-0{}-{:02}", 40 + i, 1 + i % 9, 10 + i % 18),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inserts_create_exactly_the_enriched_resources_with_signed_puts() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let patients = people("hl-create", 6);
    let mut stream = Stream::new(1);
    let event_ids: Vec<String> = patients.iter().map(|p| stream.insert(p)).collect();
    let events = stream.enrich();

    let report = writer.write(&events, in_30s()).await;

    assert_eq!(applied(&report), vec![Some(Applied::Created); patients.len()], "{report:#?}");
    let ids: Vec<Option<String>> = report.outcomes.iter().map(|o| o.correlation_id.clone()).collect();
    assert_eq!(ids, event_ids.into_iter().map(Some).collect::<Vec<_>>());
    assert!(report.outcomes.iter().all(|o| o.attempts == 1 && o.resource_type.as_deref() == Some("Patient")));

    let stored = stored_patients(&store).await;
    assert_eq!(stored.len(), patients.len(), "{stored:#?}");
    for event in &events {
        let expected = entity(event);
        let id = expected["id"].as_str().unwrap();
        let actual = stored.get(id).unwrap_or_else(|| panic!("Patient/{id} was not stored"));
        assert_json_eq(actual, &expected, &format!("stored Patient/{id}"));
        let full = store.resource("Patient", id).await.unwrap();
        assert_eq!(full["meta"]["versionId"], "1", "{full}");
    }

    let log = store.requests().await;
    assert_eq!(log.len(), patients.len(), "{log:#?}");
    for request in &log {
        assert!(request.signed, "unsigned request: {request:#?}");
        assert_eq!((request.method.as_str(), request.status), ("PUT", Some(201)), "{request:#?}");
        let id = request.id.as_deref().unwrap_or_default();
        assert_eq!(request.path, format!("/datastore/{DATASTORE_ID}/r4/Patient/{id}"));
    }
    let mut requested: Vec<String> = log.iter().map(|r| r.id.clone().unwrap()).collect();
    requested.sort();
    let expected: Vec<String> = patients.iter().map(|p| p.id.clone()).collect();
    assert_eq!(requested, expected, "one PUT per patient");
}

#[tokio::test]
async fn modify_updates_remove_deletes_and_a_missing_resource_counts_as_gone() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let [kept, removed]: [Person; 2] = people("hl-update", 2).try_into().unwrap();
    let mut first = Stream::new(2);
    first.insert(&kept);
    first.insert(&removed);
    let created = writer.write(&first.enrich(), in_30s()).await;
    assert_eq!(applied(&created), [Some(Applied::Created); 2], "{created:#?}");

    let renamed = kept.renamed("Marchbanks");
    let mut second = Stream::new(3);
    second.modify(&kept, &renamed);
    second.remove(&removed);
    let never = Person::new("hl-update-never", "Nobody", "Nowhere", "1950-01-01");
    let never_event = second.remove(&never);
    let events = second.enrich();
    assert_eq!(events.iter().map(|e| command(e)).collect::<Vec<_>>(), ["PUT", "DELETE", "DELETE"]);

    let report = writer.write(&events, in_30s()).await;
    assert_eq!(
        applied(&report),
        [Some(Applied::Updated), Some(Applied::Deleted), Some(Applied::AlreadyGone)],
        "{report:#?}"
    );
    let stored = store.resource("Patient", &kept.id).await.expect("the modified patient is stored");
    assert_eq!(stored["meta"]["versionId"], "2", "a new version: {stored}");
    assert_json_eq(&without_meta(stored), &entity(&events[0]), "the modified patient");
    assert_eq!(store.resource("Patient", &removed.id).await, None, "the removed patient is gone");

    // Through the Lambda handler: deleting what was never there is a success.
    let response = invoke(&writer, &events[2..], 0).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?} ({never_event})");

    let log = store.requests().await;
    assert_eq!(statuses(&requests_for(&log, &kept.id)), [("PUT".into(), Some(201)), ("PUT".into(), Some(200))]);
    assert_eq!(statuses(&requests_for(&log, &removed.id)), [("PUT".into(), Some(201)), ("DELETE".into(), Some(200))]);
    assert_eq!(statuses(&requests_for(&log, &never.id)), [("DELETE".into(), Some(404)), ("DELETE".into(), Some(404))]);
    assert!(log.iter().all(|r| r.signed));
}

#[tokio::test]
async fn replaying_a_batch_leaves_the_same_state_without_failures() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let [a, b, c, d]: [Person; 4] = people("hl-replay", 4).try_into().unwrap();
    let mut stream = Stream::new(4);
    stream.insert(&a);
    stream.insert(&b);
    stream.modify(&a, &a.renamed("Ravenscroft"));
    stream.remove(&b);
    stream.insert(&c);
    stream.modify(&c, &c.renamed("Lockwood"));
    stream.remove(&d);
    let events = stream.enrich();

    let first = invoke(&writer, &events, 0).await;
    assert!(first.batch_item_failures.is_empty(), "first run: {first:?}");
    let after_first = stored_patients(&store).await;
    let expected: BTreeMap<String, Value> =
        [(a.id.clone(), entity(&events[2])), (c.id.clone(), entity(&events[5]))].into_iter().collect();
    assert_eq!(after_first.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (id, resource) in &expected {
        assert_json_eq(&after_first[id], resource, &format!("Patient/{id} after the first run"));
    }
    let requests_first = store.requests().await.len();

    let second = invoke(&writer, &events, 0).await;
    assert!(second.batch_item_failures.is_empty(), "replay: {second:?}");
    let after_second = stored_patients(&store).await;
    assert_eq!(after_second.len(), after_first.len());
    for (id, resource) in &after_first {
        assert_json_eq(&after_second[id], resource, &format!("Patient/{id} after the replay"));
    }
    let log = store.requests().await;
    assert_eq!(log.len(), 2 * requests_first, "every event is sent again: {log:#?}");
    assert!(log.iter().all(|r| r.status.is_some_and(|s| s < 300 || (r.method == "DELETE" && s == 404))), "{log:#?}");
}

#[tokio::test]
async fn changes_to_one_patient_keep_batch_order_while_patients_are_written_in_parallel() {
    let store = FhirStore::start();
    store.set_delay(20).await;
    let writer = writer_with(HealthLakeConfig { max_concurrency: 3, ..config(store.base_url()) }, SECRET_ACCESS_KEY);
    let patients = people("hl-order", 10);
    let mut stream = Stream::new(5);
    let mut latest: Vec<Option<Person>> = patients.iter().cloned().map(Some).collect();
    let mut change = |stream: &mut Stream, index: usize, kind: &str| match kind {
        "insert" => {
            stream.insert(&patients[index]);
        }
        "modify" => {
            let old = latest[index].clone().expect("modify a live patient");
            let new = old.renamed(&format!("{}-v{}", patients[index].last, stream.records.len()));
            stream.modify(&old, &new);
            latest[index] = Some(new);
        }
        _ => {
            stream.remove(latest[index].as_ref().expect("remove a live patient"));
            latest[index] = None;
        }
    };
    // Interleaved: several changes of patients 1, 2 and 3 among the others' inserts.
    for (index, kind) in [
        (1, "insert"),
        (2, "insert"),
        (1, "modify"),
        (0, "insert"),
        (1, "modify"),
        (2, "remove"),
        (3, "insert"),
        (4, "insert"),
        (3, "modify"),
        (5, "insert"),
        (1, "modify"),
        (6, "insert"),
        (7, "insert"),
        (3, "remove"),
        (8, "insert"),
        (9, "insert"),
    ] {
        change(&mut stream, index, kind);
    }
    // Each PUT body carries its batch position as `meta.versionId` (the store keeps its own), so
    // the request log shows which change each request was.
    let events: Vec<Box<RawValue>> = stream
        .enrich()
        .iter()
        .enumerate()
        .map(|(position, event)| match command(event).as_str() {
            "PUT" => edited(event, |entity| entity["meta"] = json!({"versionId": format!("b{position}")})),
            _ => event.clone(),
        })
        .collect();

    let report = writer.write(&events, in_30s()).await;
    assert_eq!(report.failures().count(), 0, "{report:#?}");

    let log = store.requests().await;
    assert_eq!(log.len(), events.len(), "{log:#?}");
    for person in &patients {
        let expected: Vec<(String, Option<String>)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| entity(e)["id"] == person.id.as_str())
            .map(|(position, e)| {
                let command = command(e);
                let tag = (command == "PUT").then(|| format!("b{position}"));
                (command, tag)
            })
            .collect();
        let requests = requests_for(&log, &person.id);
        let actual: Vec<(String, Option<String>)> =
            requests.iter().map(|r| (r.method.clone(), r.body_version.clone())).collect();
        assert_eq!(actual, expected, "requests for Patient/{} out of batch order", person.id);
        for pair in requests.windows(2) {
            assert!(
                pair[1].started_at >= pair[0].ended_at.unwrap(),
                "a change of Patient/{} started before the previous one was answered: {pair:#?}",
                person.id
            );
        }
    }

    let stored = stored_patients(&store).await;
    for (index, person) in patients.iter().enumerate() {
        let last_put = events.iter().rev().find(|e| entity(e)["id"] == person.id.as_str()).unwrap();
        match &latest[index] {
            Some(_) => {
                let expected = without_meta(entity(last_put));
                assert_json_eq(
                    &stored[&person.id],
                    &expected,
                    &format!("Patient/{} ends as its last change", person.id),
                );
            }
            None => assert!(!stored.contains_key(&person.id), "Patient/{} was removed last", person.id),
        }
    }
    let overlap = max_in_flight(&log);
    assert!(overlap > 1, "patients should be written in parallel (max in flight {overlap})");
    assert!(overlap <= 3, "max_concurrency 3 exceeded: {overlap} requests in flight");
}

#[tokio::test]
async fn a_refused_resource_is_reported_by_its_correlation_id_and_the_others_are_stored() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let [a, robot, c]: [Person; 3] = people("hl-invalid", 3).try_into().unwrap();
    let mut stream = Stream::new(6);
    stream.insert(&a);
    let robot_event = stream.insert(&robot);
    stream.insert(&c);
    let mut events = stream.enrich();
    events[1] = edited(&events[1], |entity| entity["gender"] = json!("robot"));

    let response = invoke(&writer, &events, 0).await;
    assert_eq!(failed_ids(&response), std::slice::from_ref(&robot_event));
    let stored = stored_patients(&store).await;
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), [a.id.clone(), c.id.clone()]);
    assert_json_eq(&stored[&a.id], &entity(&events[0]), "the valid patient before the refused one");
    assert_json_eq(&stored[&c.id], &entity(&events[2]), "the valid patient after the refused one");

    // The same batch again, for the outcome itself: refused at once, not retried.
    let report = writer.write(&events, in_30s()).await;
    let outcome = &report.outcomes[1];
    assert_eq!(outcome.correlation_id.as_deref(), Some(robot_event.as_str()));
    assert_eq!(outcome.attempts, 1, "a 400 is not retried: {outcome:#?}");
    let failure = outcome.result.as_ref().unwrap_err();
    let FailureKind::Rejected { status: 400, outcome: Some(store_outcome) } = &failure.kind else {
        panic!("expected a 400 with an OperationOutcome: {failure:#?}");
    };
    assert_eq!(store_outcome.issues[0].code, "code-invalid", "{store_outcome:#?}");
    assert!(!failure.is_retryable());
    let explanation = "value not in the required value set";
    let report_text = failure.report();
    assert!(report_text.contains(explanation), "the report should carry the store's explanation: {report_text}");
    let logged = failure.to_string();
    assert!(logged.contains("400") && logged.contains("code-invalid") && logged.contains("Patient.gender"), "{logged}");
    assert!(!logged.contains(explanation), "the logged form must leave the diagnostics out: {logged}");
    assert_eq!(applied(&report)[0], Some(Applied::Updated));
    assert_eq!(applied(&report)[2], Some(Applied::Updated));
}

#[tokio::test]
async fn an_error_event_is_reported_and_never_sent() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let [a, bad, c]: [Person; 3] = people("hl-error", 3).try_into().unwrap();
    let mut stream = Stream::new(7);
    stream.insert(&a);
    let bad_event = stream.insert(&Person { birth: "1975-13-45".into(), ..bad.clone() });
    stream.insert(&c);
    let events = stream.enrich();
    assert_eq!(command(&events[1]), "ERROR", "the enricher should refuse the invalid birthDate");

    let response = invoke(&writer, &events, 0).await;
    assert_eq!(failed_ids(&response), std::slice::from_ref(&bad_event));
    let log = store.requests().await;
    let requested: Vec<_> = log.iter().map(|r| r.id.clone().unwrap_or_default()).collect();
    assert_eq!(requested, [a.id.clone(), c.id.clone()], "only the mapped patients are sent");
    assert!(requests_for(&log, &bad.id).is_empty());

    let report = writer.write(&events[1..2], in_30s()).await;
    let outcome = &report.outcomes[0];
    assert_eq!((outcome.correlation_id.as_deref(), outcome.attempts), (Some(bad_event.as_str()), 0));
    assert_eq!(
        failure_kind(outcome),
        &FailureKind::ErrorEvent { kind: "invalid_date".into(), field: "birthDate".into() }
    );
    assert_eq!(store.requests().await.len(), 2, "the ERROR event alone sends nothing either");
}

#[tokio::test]
async fn throttling_and_outages_are_retried_until_the_write_succeeds() {
    let store = FhirStore::start();
    let writer = writer(&store);
    let [flaky, steady]: [Person; 2] = people("hl-retry", 2).try_into().unwrap();
    store.inject(429, 2, Some("PUT"), Some(("Patient", &flaky.id))).await;
    store.inject(503, 2, Some("PUT"), Some(("Patient", &flaky.id))).await;
    let mut stream = Stream::new(8);
    stream.insert(&flaky);
    stream.insert(&steady);
    let events = stream.enrich();

    let report = writer.write(&events, in_30s()).await;
    assert_eq!(applied(&report), [Some(Applied::Created), Some(Applied::Created)], "{report:#?}");
    assert_eq!(report.outcomes[0].attempts, 5, "2 × 429, 2 × 503, then 201");
    assert_eq!(report.outcomes[1].attempts, 1);
    assert_eq!(report.retries(), 4);
    assert_eq!(lambda::response(&report).unwrap(), BatchResponse::default());

    let log = store.requests().await;
    let flaky_statuses: Vec<_> = requests_for(&log, &flaky.id).iter().map(|r| r.status).collect();
    assert_eq!(flaky_statuses, [Some(429), Some(429), Some(503), Some(503), Some(201)]);
    let stored = store.resource("Patient", &flaky.id).await.expect("stored after the retries");
    assert_json_eq(&without_meta(stored), &entity(&events[0]), "the retried patient");
}

#[tokio::test]
async fn a_change_that_runs_out_of_time_blocks_the_later_changes_of_its_patient_only() {
    let store = FhirStore::start();
    let writer = writer_with(HealthLakeConfig { deadline_margin_ms: 0, ..config(store.base_url()) }, SECRET_ACCESS_KEY);
    let [stuck, other_1, other_2]: [Person; 3] = people("hl-block", 3).try_into().unwrap();
    // Only the first change (a PUT) of `stuck` meets the outage; its later PUT and DELETE would not.
    store.inject(503, 100_000, Some("PUT"), Some(("Patient", &stuck.id))).await;
    let mut stream = Stream::new(9);
    let stuck_ids = [
        stream.insert(&stuck),
        {
            stream.insert(&other_1);
            stream.modify(&stuck, &stuck.renamed("Blackwood"))
        },
        {
            stream.insert(&other_2);
            stream.remove(&stuck.renamed("Blackwood"))
        },
    ];
    let events = stream.enrich();

    let report = writer.write(&events, Instant::now() + Duration::from_secs(3)).await;
    let first = &report.outcomes[0];
    let FailureKind::GaveUp { last, .. } = failure_kind(first) else { panic!("expected GaveUp: {first:#?}") };
    // Regression: a last retry started with a few µs left timed out and its "no answer within
    // 465µs" replaced the store's real answer as the reason.
    assert_eq!(last, "status 503");
    assert!(first.attempts >= 2, "retried before giving up: {first:#?}");
    for later in [&report.outcomes[2], &report.outcomes[4]] {
        assert_eq!(failure_kind(later), &FailureKind::Blocked { by: Some(stuck_ids[0].clone()) }, "{later:#?}");
        assert_eq!(later.attempts, 0);
    }
    assert_eq!(applied(&report)[1], Some(Applied::Created));
    assert_eq!(applied(&report)[3], Some(Applied::Created));
    assert_eq!(failed_ids(&lambda::response(&report).unwrap()), stuck_ids);

    let log = store.requests().await;
    let stuck_requests = requests_for(&log, &stuck.id);
    assert_eq!(stuck_requests.len() as u32, first.attempts, "{stuck_requests:#?}");
    assert!(stuck_requests.iter().all(|r| r.method == "PUT" && r.status == Some(503)), "{stuck_requests:#?}");
    assert_eq!(store.resource("Patient", &stuck.id).await, None);
    let stored = stored_patients(&store).await;
    assert_json_eq(&stored[&other_1.id], &entity(&events[1]), "the other patients are written");
    assert_json_eq(&stored[&other_2.id], &entity(&events[3]), "the other patients are written");
}

#[tokio::test]
async fn an_unreachable_store_fails_every_event_within_the_deadline() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}/datastore/{DATASTORE_ID}/r4/");
    let writer = writer_with(HealthLakeConfig { deadline_margin_ms: 0, ..config(endpoint) }, SECRET_ACCESS_KEY);
    let [a, b]: [Person; 2] = people("hl-down", 2).try_into().unwrap();
    let mut stream = Stream::new(10);
    let ids = [stream.insert(&a), stream.insert(&b), stream.remove(&a)];
    let events = stream.enrich();

    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(60), writer.write(&events, started + Duration::from_secs(1)))
        .await
        .expect("write must return once the deadline has passed");
    // A bound with room for a loaded machine: a writer ignoring the deadline retries far longer.
    assert!(started.elapsed() < Duration::from_secs(5), "returned {:?} after a 1 s deadline", started.elapsed());
    for outcome in &report.outcomes[..2] {
        let FailureKind::GaveUp { last, .. } = failure_kind(outcome) else { panic!("expected GaveUp: {outcome:#?}") };
        assert!(last.contains("connection failed"), "{last}");
        assert!(outcome.attempts >= 2, "a connection error is retried: {outcome:#?}");
    }
    assert_eq!(failure_kind(&report.outcomes[2]), &FailureKind::Blocked { by: Some(ids[0].clone()) });

    let response = tokio::time::timeout(Duration::from_secs(60), invoke(&writer, &events, epoch_ms_in(1000)))
        .await
        .expect("the handler must return once the deadline has passed");
    assert_eq!(failed_ids(&response), ids);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_403_and_not_retried() {
    let store = FhirStore::start();
    let writer = writer_with(config(store.base_url()), "not-the-secret-access-key");
    let [a, b]: [Person; 2] = people("hl-secret", 2).try_into().unwrap();
    let mut stream = Stream::new(11);
    let ids = [stream.insert(&a), stream.remove(&b)];
    let events = stream.enrich();

    let report = writer.write(&events, in_30s()).await;
    for outcome in &report.outcomes {
        let FailureKind::Rejected { status, .. } = failure_kind(outcome) else {
            panic!("expected Rejected: {outcome:#?}")
        };
        assert_eq!((*status, outcome.attempts), (403, 1), "{outcome:#?}");
    }
    assert_eq!(failed_ids(&lambda::response(&report).unwrap()), ids);
    let log = store.requests().await;
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log.iter().all(|r| !r.signed && r.auth_error.as_deref().is_some_and(|e| e.contains("signature"))));
    assert!(store.resources("Patient").await.is_empty());
}

/// Runs in the test's current-thread runtime, so the thread's default subscriber sees every task.
#[tokio::test]
async fn no_patient_data_or_store_diagnostics_appear_in_trace_logs() {
    let logs = CapturedLogs::default();
    let _capture =
        capture_logs(logs.filtered_json_subscriber(fhir_pipes_core::logging::LogFilter::new(Some("trace"), "info")));
    let store = FhirStore::start();
    let writer = writer(&store);
    let patients = people("hl-phi", 5);
    store.inject(503, 2, Some("PUT"), Some(("Patient", &patients[0].id))).await;
    let mut stream = Stream::new(12);
    let mut event_ids: Vec<String> = patients.iter().map(|p| stream.insert(p)).collect();
    let bad = Person::new("hl-phi-bad", "Ermintrude", "Scrimgeour", "1966-02-31");
    event_ids.push(stream.insert(&bad));
    event_ids.push(stream.modify(&patients[1], &patients[1].renamed("Pendragon")));
    event_ids.push(stream.remove(&patients[2]));
    let mut events = stream.enrich();
    events[3] = edited(&events[3], |entity| entity["gender"] = json!("robot"));

    let response = invoke(&writer, &events, 0).await;
    assert_eq!(failed_ids(&response), [event_ids[3].clone(), event_ids[5].clone()]);
    assert_eq!(requests_for(&store.requests().await, &patients[0].id).len(), 3, "the 503s were retried");

    let text = logs.text();
    let mut phi: Vec<&str> = vec!["value not in the required value set", "injected fault"];
    for person in patients.iter().chain([&bad]) {
        phi.extend([person.id.as_str(), person.first.as_str(), person.last.as_str(), person.birth.as_str()]);
    }
    phi.push("Pendragon");
    for value in phi {
        assert!(!text.contains(value), "{value:?} appears in the logs:\n{text}");
    }
    assert!(text.contains(event_ids[0].as_str()), "eventID {} is not logged:\n{text}", event_ids[0]);
    // The target's own lines name the failed events.
    let failure_lines: Vec<&str> =
        text.lines().filter(|l| l.contains("fhir_pipes_healthlake") && l.contains("event not written")).collect();
    for id in [&event_ids[3], &event_ids[5]] {
        assert!(failure_lines.iter().any(|l| l.contains(id.as_str())), "failed eventID {id} is not logged:\n{text}");
    }
    assert!(text.contains("\"retrying\""), "the retries are logged:\n{text}");
    assert!(text.contains("batch written"), "no summary line:\n{text}");
}

/// The shipped `healthlake-target` binary behind a local Lambda Runtime API: settings (endpoint,
/// concurrency) and credentials from its environment (the standard chain), the partial-failure
/// answer Pipes reads.
#[tokio::test]
async fn the_lambda_binary_writes_the_batch_and_answers_the_failed_correlation_ids() {
    use fhir_pipes::runtime::LocalLambda;
    let binary = tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-healthlake", "healthlake-target")).await.unwrap();
    let store = FhirStore::start();
    let environment: BTreeMap<String, String> = [
        ("FHIR_PIPES_HEALTHLAKE_ENDPOINT", store.base_url()),
        ("FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY", "4".to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut lambda = LocalLambda::start(&binary, "healthlake-target", environment, Duration::from_secs(30))
        .await
        .expect("the binary starts");

    let patients = people("hl-bin", 4);
    let mut stream = Stream::new(21);
    for patient in &patients {
        stream.insert(patient);
    }
    let refused = stream.insert(&Person::new("hl-bin-refused", "Test", "Case", "1970-01-01"));
    let unmappable = stream.insert(&Person::new("hl-bin-error", "Test", "Case", "1970-02-31"));
    let mut events = stream.enrich();
    events[4] = edited(&events[4], |entity| entity["gender"] = json!("robot"));
    let payload: Vec<Value> = events.iter().map(|e| json_of(e)).collect();

    store.set_delay(20).await; // so that concurrent requests overlap visibly
    let answer = lambda.invoke(Value::Array(payload).to_string().into()).await.expect("an answer");
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": refused}, {"itemIdentifier": unmappable}]}),
        "the refused resource and the ERROR event, in batch order"
    );
    let stored = stored_patients(&store).await;
    let expected: Vec<String> = patients.iter().map(|p| p.id.clone()).collect();
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), expected);
    let requests = store.requests().await;
    assert!(requests.iter().all(|r| r.signed), "signed with the credentials of its environment");
    let in_flight = max_in_flight(&requests);
    assert!((2..=4).contains(&in_flight), "5 PUTs in parallel, FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY=4: {in_flight}");

    // A payload that is not a batch fails the invocation (the Pipe retries it whole).
    let failure = lambda.invoke(r#"{"Records":[]}"#.into()).await.expect_err("not a batch");
    assert!(format!("{failure:?}").contains("NotABatch"), "{failure:?}");
    lambda.shutdown().await;
}
