//! The publisher over a fake bus and table: partial PutEvents failures, crashes between publish
//! and record, call splitting, reference-only events, duplicates and order.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fhir_pipes_cdc::event::{ChangeMetadata, SignalKind};
use fhir_pipes_core::{
    ENVELOPE_VERSION, Envelope,
    envelope::{Details, ErrorDetails},
};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::{Value, json, value::RawValue};

use crate::{
    CallError, PublisherConfig,
    bus::{BusEntry, EntryOutcome, EventBus, MAX_CALL_BYTES, MAX_ENTRIES_PER_CALL},
    dedup::{DedupTable, Lookup, MAX_KEYS_PER_CHECK},
    handle,
    publisher::{Outcome, PublishReport, Publisher},
};

type Script = Box<dyn Fn(usize, &[BusEntry]) -> Result<Vec<EntryOutcome>, CallError> + Send + Sync>;

/// What the fakes did, in order: `put <keys…>` per PutEvents call, `record <key>` per recorded key.
type Journal = Arc<Mutex<Vec<String>>>;

struct FakeBus {
    script: Script,
    calls: Mutex<Vec<Vec<BusEntry>>>,
    journal: Journal,
}

impl EventBus for FakeBus {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, CallError> {
        let number = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(entries.to_vec());
            calls.len()
        };
        let result = (self.script)(number, entries);
        let keys: Vec<String> = entries
            .iter()
            .zip(0..)
            .map(|(e, i)| {
                let accepted = matches!(&result, Ok(r) if r.get(i) == Some(&EntryOutcome::Accepted));
                format!("{}{}", key_of(e), if accepted { "" } else { "!" })
            })
            .collect();
        self.journal.lock().unwrap().push(format!("put {}", keys.join(" ")));
        result
    }
}

#[derive(Default)]
struct FakeTable {
    recorded: Mutex<HashMap<String, i64>>,
    /// Sizes of the BatchGetItem calls.
    checks: Mutex<Vec<usize>>,
    /// The first check calls leave this many keys unprocessed (then all are processed).
    unprocessed: Mutex<Vec<usize>>,
    /// Every PutItem fails.
    record_fails: bool,
    /// Every BatchGetItem fails (retryable).
    check_fails: bool,
    journal: Journal,
}

impl DedupTable for FakeTable {
    async fn recorded(&self, keys: &[String]) -> Result<Lookup, CallError> {
        self.checks.lock().unwrap().push(keys.len());
        assert!(keys.len() <= MAX_KEYS_PER_CHECK, "BatchGetItem takes at most 100 keys");
        if self.check_fails {
            return Err(CallError::new("ProvisionedThroughputExceededException", true));
        }
        let left = {
            let mut unprocessed = self.unprocessed.lock().unwrap();
            if unprocessed.is_empty() { 0 } else { unprocessed.remove(0) }
        };
        let (unprocessed, processed) = keys.split_at(left.min(keys.len()));
        let recorded = self.recorded.lock().unwrap();
        Ok(Lookup {
            recorded: processed.iter().filter(|k| recorded.contains_key(*k)).cloned().collect(),
            unprocessed: unprocessed.to_vec(),
        })
    }

    async fn record(&self, key: &str, expires_at: i64) -> Result<(), CallError> {
        if self.record_fails {
            return Err(CallError::new("InternalServerError", false));
        }
        self.recorded.lock().unwrap().entry(key.to_owned()).or_insert(expires_at);
        self.journal.lock().unwrap().push(format!("record {key}"));
        Ok(())
    }
}

fn key_of(entry: &BusEntry) -> String {
    let detail: Value = serde_json::from_str(&entry.detail).unwrap();
    detail["metadata"]["idempotencyKey"].as_str().unwrap().to_owned()
}

fn accept_all() -> Script {
    Box::new(|_, entries| Ok(vec![EntryOutcome::Accepted; entries.len()]))
}

fn config() -> PublisherConfig {
    PublisherConfig {
        event_bus: "cdc-bus".into(),
        dedup_table: "cdc-dedup".into(),
        max_attempts: 4,
        backoff_base_ms: 1,
        backoff_cap_ms: 4,
        deadline_margin_ms: 0,
        ..PublisherConfig::default()
    }
}

fn publisher_with(script: Script, table: FakeTable) -> Publisher<FakeBus, FakeTable> {
    let journal = Arc::clone(&table.journal);
    let bus = FakeBus { script, calls: Mutex::new(Vec::new()), journal };
    config().build_with(bus, table).unwrap()
}

fn metadata<'a>(resource_type: Option<&'a str>, id: Option<&'a str>, key: String) -> ChangeMetadata<'a> {
    ChangeMetadata {
        datastore_id: Some("0123456789abcdef0123456789abcdef".into()),
        resource_type: resource_type.map(Into::into),
        id: id.map(Into::into),
        version_id: Some("1".into()),
        last_updated: Some("2026-01-02T03:04:05.678Z".into()),
        signal: SignalKind::Cloudtrail,
        signal_id: "signal-1".into(),
        idempotency_key: key.into(),
        hydrated: true,
    }
}

fn raw<E: serde::Serialize>(envelope: &Envelope<'_, E, ChangeMetadata<'_>>) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(envelope).unwrap()).unwrap()
}

/// A PUT of `Patient/<id>` version `version`, from SQS message `message`.
fn put(message: &str, id: &str, version: u32) -> Box<RawValue> {
    put_with(message, id, version, json!({"name": [{"family": "Doe", "given": ["Jane"]}]}))
}

fn put_with(message: &str, id: &str, version: u32, extra: Value) -> Box<RawValue> {
    let mut entity = json!({"resourceType": "Patient", "id": id, "meta": {"versionId": version.to_string()}});
    entity.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    raw(&Envelope {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: "PatientChange".into(),
        correlation_id: Some(message.into()),
        details: Details::Put { entity },
        metadata: Some(ChangeMetadata {
            version_id: Some(version.to_string().into()),
            ..metadata(Some("Patient"), Some(id), format!("Patient/{id}/_history/{version}"))
        }),
    })
}

fn error_event(message: &str, record: &str) -> Box<RawValue> {
    let record = RawValue::from_string(record.to_owned()).unwrap();
    raw(&Envelope::<'_, Value, _> {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: fhir_pipes_cdc::event::SIGNAL_FAILED_EVENT_TYPE.into(),
        correlation_id: Some(message.into()),
        details: Details::Error {
            error: ErrorDetails { field: "detail".into(), kind: "invalid_signal".into(), message: "m".into() },
            record: &record,
        },
        metadata: Some(metadata(None, None, format!("signal/{message}"))),
    })
}

fn notify(message: &str) -> Box<RawValue> {
    raw(&Envelope {
        version: ENVELOPE_VERSION.into(),
        source: "HealthLake".into(),
        event_type: "ImportJobCompleted".into(),
        correlation_id: Some(message.into()),
        details: Details::Notify { entity: json!({"datastoreId": "d", "jobId": "j"}) },
        metadata: Some(ChangeMetadata {
            signal: SignalKind::Lifecycle,
            ..metadata(None, None, format!("lifecycle/{message}"))
        }),
    })
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn calls(publisher: &Publisher<FakeBus, FakeTable>) -> Vec<Vec<BusEntry>> {
    publisher.bus().calls.lock().unwrap().clone()
}

fn recorded(publisher: &Publisher<FakeBus, FakeTable>) -> Vec<String> {
    let mut keys: Vec<String> = publisher.table().recorded.lock().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn kinds(report: &PublishReport) -> Vec<&Outcome> {
    report.outcomes.iter().map(|o| &o.outcome).collect()
}

async fn invoke(publisher: &Publisher<FakeBus, FakeTable>, events: &[Box<RawValue>]) -> Value {
    let payload = serde_json::to_string(events).unwrap();
    let event = LambdaEvent::new(RawValue::from_string(payload).unwrap(), Context::default());
    serde_json::to_value(handle(publisher, event).await.unwrap()).unwrap()
}

const PUBLISHED: Outcome = Outcome::Published { reference_only: false };

#[tokio::test]
async fn each_event_goes_on_the_bus_as_received_and_is_recorded_with_its_ttl() {
    let publisher = publisher_with(accept_all(), FakeTable::default());
    let events = vec![put("m1", "p1", 1), error_event("m2", r#"{"messageId":"m2"}"#), notify("m3")];
    let answer = invoke(&publisher, &events).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let calls = calls(&publisher);
    assert_eq!(calls.len(), 1);
    for (entry, event) in calls[0].iter().zip(&events) {
        assert_eq!(entry.detail, event.get(), "Detail is the envelope byte for byte");
        assert_eq!(entry.source, "fhir-pipes.healthlake");
    }
    let types: Vec<&str> = calls[0].iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(types, ["PatientChange", "HealthLakeSignalFailed", "ImportJobCompleted"]);
    assert_eq!(recorded(&publisher), ["Patient/p1/_history/1", "lifecycle/m3", "signal/m2"]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let expires = publisher.table().recorded.lock().unwrap()["lifecycle/m3"];
    assert!((expires - now - 7 * 86_400).abs() <= 5, "TTL of 7 days: {expires} vs {now}");
}

#[tokio::test]
async fn recorded_keys_and_repeats_in_the_batch_are_duplicates_and_not_published() {
    let table = FakeTable::default();
    table.recorded.lock().unwrap().insert("Patient/p1/_history/1".into(), 0);
    let publisher = publisher_with(accept_all(), table);
    let events = vec![put("m1", "p1", 1), put("m1", "p2", 1), put("m2", "p2", 1), put("m2", "p1", 2)];
    let report = publisher.publish(&events, far()).await;
    assert_eq!(kinds(&report), [&Outcome::Duplicate, &PUBLISHED, &Outcome::Duplicate, &PUBLISHED]);
    assert_eq!((report.published(), report.duplicates()), (2, 2));
    let sent: Vec<String> = calls(&publisher).concat().iter().map(key_of).collect();
    assert_eq!(sent, ["Patient/p2/_history/1", "Patient/p1/_history/2"]);
    // Invoked again with the same batch: nothing new on the bus.
    let again = publisher.publish(&events, far()).await;
    assert_eq!(again.duplicates(), 4);
    assert_eq!(calls(&publisher).len(), 1);
}

#[tokio::test]
async fn entries_the_bus_refuses_are_sent_again_and_only_accepted_ones_are_recorded() {
    // Call 1 refuses its 2nd and 4th entries (throttled); call 2 accepts everything.
    let script: Script = Box::new(|call, entries| {
        Ok((0..entries.len())
            .map(|i| {
                if call == 1 && i % 2 == 1 {
                    EntryOutcome::failed(Some("ThrottlingException"))
                } else {
                    EntryOutcome::Accepted
                }
            })
            .collect())
    });
    let publisher = publisher_with(script, FakeTable::default());
    let events: Vec<_> = (1..=5).map(|n| put(&format!("m{n}"), &format!("p{n}"), 1)).collect();
    let answer = invoke(&publisher, &events).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let journal = publisher.table().journal.lock().unwrap().clone();
    let k = |n: u32| format!("Patient/p{n}/_history/1");
    assert_eq!(journal[0], format!("put {} {}! {} {}! {}", k(1), k(2), k(3), k(4), k(5)));
    let records_after_first: Vec<&String> = journal[1..4].iter().collect();
    assert_eq!(
        records_after_first,
        [&format!("record {}", k(1)), &format!("record {}", k(3)), &format!("record {}", k(5))]
    );
    assert_eq!(journal[4], format!("put {} {}", k(2), k(4)), "only the refused entries are re-sent");
    assert_eq!(&journal[5..], [format!("record {}", k(2)), format!("record {}", k(4))]);
    let report = publisher.publish(&events, far()).await;
    assert_eq!(report.duplicates(), 5);
}

#[tokio::test]
async fn a_crash_between_publish_and_record_costs_a_duplicate_never_a_loss() {
    let table = FakeTable { record_fails: true, ..FakeTable::default() };
    let publisher = publisher_with(accept_all(), table);
    let events = vec![put("m1", "p1", 1)];
    let report = publisher.publish(&events, far()).await;
    assert_eq!((kinds(&report), report.unrecorded), (vec![&PUBLISHED], 1));
    assert_eq!(crate::lambda::response(&report).unwrap().batch_item_failures, [], "it is on the bus");
    // The same change signalled again is published again: a duplicate on the bus, nothing lost.
    let again = publisher.publish(&events, far()).await;
    assert_eq!(kinds(&again), [&PUBLISHED]);
    assert_eq!(calls(&publisher).len(), 2);
}

#[tokio::test]
async fn events_that_always_fail_name_exactly_their_messages_and_block_later_versions() {
    // Entries from message m2 are always refused; everything else is accepted.
    let script: Script = Box::new(|_, entries| {
        Ok(entries
            .iter()
            .map(|e| {
                if e.detail.contains("\"correlationId\":\"m2\"") {
                    EntryOutcome::failed(Some("InternalFailure"))
                } else {
                    EntryOutcome::Accepted
                }
            })
            .collect())
    });
    let publisher = publisher_with(script, FakeTable::default());
    // p1 v1 (m1), p2 v1 (m2, fails), p2 v2 (m3: must wait for v1, so fails too), p3 (m3), p1 v2 (m4).
    let events =
        vec![put("m1", "p1", 1), put("m2", "p2", 1), put("m3", "p2", 2), put("m3", "p3", 1), put("m4", "p1", 2)];
    let answer = invoke(&publisher, &events).await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}));
    let report = publisher.publish(&events, far()).await;
    let expected_kinds = [
        &Outcome::Duplicate,
        &Outcome::Failed { kind: "InternalFailure".into() },
        &Outcome::Failed { kind: crate::KIND_EARLIER_VERSION_FAILED.into() },
        &Outcome::Duplicate,
        &Outcome::Duplicate,
    ];
    assert_eq!(kinds(&report), expected_kinds);
    let sent_p2: usize = calls(&publisher).concat().iter().filter(|e| key_of(e) == "Patient/p2/_history/1").count();
    assert_eq!(sent_p2, 2 * 4, "tried max_attempts (4) times per invocation");
    assert!(!calls(&publisher).concat().iter().any(|e| key_of(e) == "Patient/p2/_history/2"), "v2 never before v1");
    assert!(!recorded(&publisher).iter().any(|k| k.starts_with("Patient/p2/")));
}

#[tokio::test]
async fn versions_of_one_resource_go_in_separate_calls_in_batch_order() {
    let publisher = publisher_with(accept_all(), FakeTable::default());
    let mut events = Vec::new();
    for n in 1..=12 {
        events.push(put("m", &format!("other-{n}"), 1));
        if n % 4 == 0 {
            events.push(put("m", "hot", n / 4));
        }
    }
    events.insert(1, put("m", "hot", 0));
    let report = publisher.publish(&events, far()).await;
    assert_eq!(report.published(), events.len());
    let calls = calls(&publisher);
    let mut hot_versions = Vec::new();
    for call in &calls {
        let hot: Vec<String> = call.iter().map(key_of).filter(|k| k.starts_with("Patient/hot/")).collect();
        assert!(hot.len() <= 1, "one version of a resource per call: {hot:?}");
        hot_versions.extend(hot);
    }
    let expected: Vec<String> = (0..=3).map(|v| format!("Patient/hot/_history/{v}")).collect();
    assert_eq!(hot_versions, expected, "in version order");
    let others: Vec<String> = calls.concat().iter().map(key_of).filter(|k| k.starts_with("Patient/other-")).collect();
    let expected: Vec<String> = (1..=12).map(|n| format!("Patient/other-{n}/_history/1")).collect();
    assert_eq!(others, expected, "batch order");
}

#[tokio::test]
async fn calls_hold_at_most_ten_entries_and_less_than_256_kb() {
    let publisher = publisher_with(accept_all(), FakeTable::default());
    let mut events: Vec<_> = (0..25).map(|n| put("m", &format!("small-{n}"), 1)).collect();
    let big = "x".repeat(100 * 1024);
    events.extend((0..5).map(|n| put_with("m", &format!("big-{n}"), 1, json!({"text": {"div": big}}))));
    let report = publisher.publish(&events, far()).await;
    assert_eq!(report.published(), 30);
    let calls = calls(&publisher);
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 7, 2, 1], "25 small, then the big ones two by two");
    for call in &calls {
        assert!(call.len() <= MAX_ENTRIES_PER_CALL);
        assert!(call.iter().map(BusEntry::size).sum::<usize>() < MAX_CALL_BYTES);
    }
}

#[tokio::test]
async fn an_event_too_large_for_the_bus_goes_reference_only() {
    let publisher = publisher_with(accept_all(), FakeTable::default());
    let huge = "y".repeat(300 * 1024);
    let events = vec![
        put_with("m1", "p-huge", 3, json!({"text": {"div": huge}})),
        error_event("m2", &format!("{{\"body\":\"{huge}\"}}")),
        put("m3", "p-small", 1),
    ];
    let report = publisher.publish(&events, far()).await;
    assert_eq!(
        kinds(&report),
        [
            &Outcome::Published { reference_only: true },
            &Outcome::Failed { kind: crate::KIND_TOO_LARGE.into() },
            &PUBLISHED
        ]
    );
    let entry = &calls(&publisher)[0][0];
    let mut expected: Value = serde_json::from_str(events[0].get()).unwrap();
    expected["details"]["entity"] = json!({"resourceType": "Patient", "id": "p-huge"});
    expected["metadata"]["hydrated"] = json!(false);
    assert_eq!(serde_json::from_str::<Value>(&entry.detail).unwrap(), expected);
    assert_eq!(recorded(&publisher), ["Patient/p-huge/_history/3", "Patient/p-small/_history/1"]);
}

#[tokio::test]
async fn unprocessed_keys_are_asked_again_and_checks_take_at_most_100_keys() {
    let table = FakeTable { unprocessed: Mutex::new(vec![30]), ..FakeTable::default() };
    table.recorded.lock().unwrap().insert("Patient/p-0/_history/1".into(), 0);
    let publisher = publisher_with(accept_all(), table);
    let events: Vec<_> = (0..150).map(|n| put("m", &format!("p-{n}"), 1)).collect();
    let report = publisher.publish(&events, far()).await;
    assert_eq!((report.duplicates(), report.published()), (1, 149), "p-0 was unprocessed at first, then found");
    assert_eq!(*publisher.table().checks.lock().unwrap(), [100, 30, 50]);
}

#[tokio::test]
async fn a_table_that_cannot_be_asked_publishes_nothing_unchecked() {
    let table = FakeTable { check_fails: true, ..FakeTable::default() };
    let publisher = publisher_with(accept_all(), table);
    let answer = invoke(&publisher, &[put("m1", "p1", 1), put("m2", "p2", 1)]).await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}));
    assert!(calls(&publisher).is_empty());
    assert_eq!(publisher.table().checks.lock().unwrap().len(), 4, "max_attempts tries");
}

#[tokio::test]
async fn call_failures_are_retried_when_transient_and_not_when_permanent() {
    let transient: Script = Box::new(|call, entries| {
        if call == 1 {
            Err(CallError::new("connection", true))
        } else {
            Ok(vec![EntryOutcome::Accepted; entries.len()])
        }
    });
    let publisher = publisher_with(transient, FakeTable::default());
    let report = publisher.publish(&[put("m1", "p1", 1)], far()).await;
    assert_eq!((kinds(&report), report.calls, report.retries), (vec![&PUBLISHED], 2, 1));

    let permanent: Script = Box::new(|_, _| Err(CallError::new("ResourceNotFoundException", false)));
    let publisher = publisher_with(permanent, FakeTable::default());
    let report = publisher.publish(&[put("m1", "p1", 1), put("m1", "p1", 2)], far()).await;
    assert_eq!(
        kinds(&report),
        [
            &Outcome::Failed { kind: "ResourceNotFoundException".into() },
            &Outcome::Failed { kind: crate::KIND_EARLIER_VERSION_FAILED.into() }
        ]
    );
    assert_eq!(report.calls, 1);
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let script: Script =
        Box::new(|_, entries| Ok(vec![EntryOutcome::failed(Some("ThrottlingException")); entries.len()]));
    let config = PublisherConfig { max_attempts: 1000, backoff_base_ms: 20, backoff_cap_ms: 40, ..config() };
    let journal = Journal::default();
    let bus = FakeBus { script, calls: Mutex::new(Vec::new()), journal: Arc::clone(&journal) };
    let publisher = config.build_with(bus, FakeTable { journal, ..FakeTable::default() }).unwrap();
    let started = Instant::now();
    let report = publisher.publish(&[put("m1", "p1", 1)], Instant::now() + Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(kinds(&report), [&Outcome::Failed { kind: "ThrottlingException".into() }]);
}

#[tokio::test]
async fn unreadable_events_fail_by_correlation_id_or_fail_the_invocation() {
    let publisher = publisher_with(accept_all(), FakeTable::default());
    let no_metadata = RawValue::from_string(
        r#"{"version":"1.0","eventType":"PatientChange","correlationId":"m9","details":{"command":"PUT","entity":{}}}"#
            .to_owned(),
    )
    .unwrap();
    let answer = invoke(&publisher, &[no_metadata, put("m1", "p1", 1)]).await;
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m9"}]}));

    let anonymous = RawValue::from_string(r#"{"details":"Jane"}"#.to_owned()).unwrap();
    let payload = serde_json::to_string(&[anonymous]).unwrap();
    let event = LambdaEvent::new(RawValue::from_string(payload).unwrap(), Context::default());
    let diagnostic = Diagnostic::from(handle(&publisher, event).await.unwrap_err());
    assert_eq!(diagnostic.error_type, "UnidentifiedFailure");
    assert!(!diagnostic.error_message.contains("Jane"), "{}", diagnostic.error_message);

    let event = LambdaEvent::new(RawValue::from_string(r#"{"Records":[]}"#.into()).unwrap(), Context::default());
    assert_eq!(Diagnostic::from(handle(&publisher, event).await.unwrap_err()).error_type, "NotABatch");
}
