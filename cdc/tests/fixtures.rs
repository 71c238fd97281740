//! Every fixture of `fixtures/healthlake-signals/`, parsed and checked field by field.

use std::{collections::BTreeSet, fs, path::PathBuf};

use fhir_pipes_cdc::{
    ChangeSignal, LifecycleEventType, LifecycleSignal, NotAChange, Operation, ParsedMessage, Signal, SignalError,
    SignalErrorKind, SignalOrigin, Timestamp, parse_message,
};
use serde_json::value::RawValue;

const DATASTORE_ID: &str = "5f3a1e1d4c8b4a7e9d2c1b0a9f8e7d6c";

/// Every fixture, with the test that checks it. `every_fixture_is_checked` keeps this honest.
const FIXTURES: [&str; 21] = [
    "batch-mixed.json",
    "cloudtrail-create-id-shown.json",
    "cloudtrail-create-non-2xx.json",
    "cloudtrail-delete-id-absent.json",
    "cloudtrail-read-resource.json",
    "cloudtrail-update-id-hidden.json",
    "lifecycle-data-store-active.json",
    "lifecycle-export-job-failed.json",
    "lifecycle-import-job-completed.json",
    "malformed-body-not-json.json",
    "malformed-invalid-focus-reference.json",
    "malformed-invalid-id.json",
    "malformed-missing-resource-type.json",
    "malformed-no-message-id.json",
    "malformed-unknown-detail-type.json",
    "malformed-unknown-source.json",
    "subscription-full-resource.json",
    "subscription-handshake.json",
    "subscription-heartbeat.json",
    "subscription-id-only-parameters.json",
    "subscription-id-only-subscription-status.json",
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/healthlake-signals")
}

/// The SQS messages of a fixture (a JSON array, as a Pipe delivers it).
fn messages(name: &str) -> Vec<Box<RawValue>> {
    let text = fs::read_to_string(fixtures_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The result of the fixture's only message.
fn parse_only(name: &str) -> Result<ParsedMessage, SignalError> {
    let messages = messages(name);
    assert_eq!(messages.len(), 1, "{name}");
    parse_message(&messages[0])
}

fn only_signal(parsed: &ParsedMessage) -> &Signal {
    assert_eq!(parsed.signals.len(), 1);
    &parsed.signals[0]
}

fn change(signal: &Signal) -> &ChangeSignal {
    match signal {
        Signal::Change(change) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn lifecycle(signal: &Signal) -> &LifecycleSignal {
    match signal {
        Signal::Lifecycle(lifecycle) => lifecycle,
        other => panic!("expected a lifecycle signal, got {other:?}"),
    }
}

fn not_a_change(signal: &Signal) -> &NotAChange {
    match signal {
        Signal::NotAChange { reason } => reason,
        other => panic!("expected a non-change, got {other:?}"),
    }
}

fn time(text: &str) -> Option<Timestamp> {
    Some(Timestamp::parse_rfc3339(text).unwrap())
}

fn assert_envelope(parsed: &ParsedMessage, message_id: &str, event_id: &str, detail_type: &str, event_time: &str) {
    assert_eq!(parsed.message_id, message_id);
    assert_eq!(parsed.event_id, event_id);
    assert_eq!(parsed.source, "aws.healthlake");
    assert_eq!(parsed.detail_type, detail_type);
    assert_eq!(parsed.event_time, time(event_time));
    assert_eq!(parsed.region.as_deref(), Some("us-east-1"));
    assert_eq!(parsed.account.as_deref(), Some("123456789012"));
}

fn assert_error(
    result: Result<ParsedMessage, SignalError>,
    message_id: Option<&str>,
    field: &str,
    kind: SignalErrorKind,
) {
    let error = result.expect_err("expected an error");
    assert_eq!(error.message_id.as_deref(), message_id);
    assert_eq!(error.field, field);
    assert_eq!(error.kind, kind);
}

#[test]
fn every_fixture_is_checked() {
    let on_disk: BTreeSet<String> = fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|name| name.to_string()).collect();
    assert_eq!(on_disk, listed, "a fixture without a test, or a test without its fixture");
}

#[test]
fn cloudtrail_create_with_the_id_shown() {
    let parsed = parse_only("cloudtrail-create-id-shown.json").unwrap();
    assert_envelope(
        &parsed,
        "0b6e4c8a-1f0d-4f5e-9a3b-000000000001",
        "d1e2f3a4-0000-4000-8000-000000000001",
        "AWS API Call via CloudTrail",
        "2022-11-29T18:07:16Z",
    );
    let change = change(only_signal(&parsed));
    assert_eq!(change.origin, SignalOrigin::CloudTrail);
    assert_eq!(change.signal_id, "7f1c3a2e-5b6d-4e8f-9a0b-000000000001");
    assert_eq!(change.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(change.resource_type, "Patient");
    assert_eq!(change.resource_id.as_deref(), Some("pat-0001"));
    assert_eq!(change.operation, Some(Operation::Create));
    assert_eq!(change.event_time, time("2022-11-29T18:07:16Z"));
    assert_eq!(change.event_time.unwrap().epoch_millis(), 1_669_745_236_000);
    assert!(change.resource.is_none());
    assert_eq!(change.version_id, None);
    assert_eq!(change.last_updated, None);
}

#[test]
fn cloudtrail_update_with_the_id_hidden() {
    let parsed = parse_only("cloudtrail-update-id-hidden.json").unwrap();
    let change = change(only_signal(&parsed));
    assert_eq!(change.origin, SignalOrigin::CloudTrail);
    assert_eq!(change.signal_id, "7f1c3a2e-5b6d-4e8f-9a0b-000000000002");
    assert_eq!(change.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(change.resource_type, "Observation");
    assert_eq!(change.resource_id, None, "HIDDEN_DUE_TO_SECURITY_REASONS is a hidden id");
    assert_eq!(change.operation, Some(Operation::Update));
    assert_eq!(change.event_time, time("2022-11-29T18:08:01Z"));
    assert!(change.resource.is_none());
}

#[test]
fn cloudtrail_delete_without_status_code_or_id() {
    let parsed = parse_only("cloudtrail-delete-id-absent.json").unwrap();
    let change = change(only_signal(&parsed));
    assert_eq!(change.origin, SignalOrigin::CloudTrail);
    assert_eq!(change.signal_id, "7f1c3a2e-5b6d-4e8f-9a0b-000000000003");
    assert_eq!(change.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(change.resource_type, "Encounter");
    assert_eq!(change.resource_id, None);
    assert_eq!(change.operation, Some(Operation::Delete), "a delete without statusCode is a success");
    assert_eq!(change.event_time, time("2022-11-29T18:09:30Z"));
}

#[test]
fn cloudtrail_non_2xx_is_a_failed_call() {
    let parsed = parse_only("cloudtrail-create-non-2xx.json").unwrap();
    assert_eq!(parsed.message_id, "0b6e4c8a-1f0d-4f5e-9a3b-000000000004");
    assert_eq!(not_a_change(only_signal(&parsed)), &NotAChange::FailedCall { status_code: Some(400) });
}

#[test]
fn cloudtrail_read_resource_is_not_a_write() {
    let parsed = parse_only("cloudtrail-read-resource.json").unwrap();
    assert_eq!(
        not_a_change(only_signal(&parsed)),
        &NotAChange::NotAWriteCall { event_name: "ReadResource".to_owned() }
    );
}

#[test]
fn subscription_id_only_in_the_r4_parameters_form() {
    let parsed = parse_only("subscription-id-only-parameters.json").unwrap();
    assert_envelope(
        &parsed,
        "0b6e4c8a-1f0d-4f5e-9a3b-000000000011",
        "e5f6a7b8-0000-4000-8000-000000000011",
        "FHIR Subscription Notification",
        "2025-03-04T10:11:14Z",
    );
    assert_eq!(parsed.signals.len(), 2);

    let absolute = change(&parsed.signals[0]);
    assert_eq!(absolute.origin, SignalOrigin::SubscriptionIdOnly);
    assert_eq!(absolute.signal_id, "e5f6a7b8-0000-4000-8000-000000000011#41");
    assert_eq!(absolute.datastore_id.as_deref(), Some(DATASTORE_ID), "from the event's resources ARN");
    assert_eq!(absolute.resource_type, "Patient");
    assert_eq!(absolute.resource_id.as_deref(), Some("pat-0001"));
    assert_eq!(absolute.operation, None);
    assert_eq!(absolute.event_time, time("2025-03-04T10:11:12.345Z"));
    assert!(absolute.resource.is_none());
    assert_eq!(absolute.version_id, None);
    assert_eq!(absolute.last_updated, None);

    let versioned = change(&parsed.signals[1]);
    assert_eq!(versioned.origin, SignalOrigin::SubscriptionIdOnly);
    assert_eq!(versioned.signal_id, "e5f6a7b8-0000-4000-8000-000000000011#42");
    assert_eq!(versioned.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(versioned.resource_type, "Observation");
    assert_eq!(versioned.resource_id.as_deref(), Some("obs-7"));
    assert_eq!(versioned.operation, None);
    assert_eq!(versioned.event_time, time("2025-03-04T10:11:13.500Z"), "an offset is read");
    assert_eq!(versioned.version_id.as_deref(), Some("3"), "from `_history/3`");
    assert!(versioned.resource.is_none());
}

#[test]
fn subscription_id_only_in_the_subscription_status_form() {
    let parsed = parse_only("subscription-id-only-subscription-status.json").unwrap();
    let change = change(only_signal(&parsed));
    assert_eq!(change.origin, SignalOrigin::SubscriptionIdOnly, "an entry without a resource is not full-resource");
    assert_eq!(change.signal_id, "e5f6a7b8-0000-4000-8000-000000000012#7");
    assert_eq!(change.datastore_id, None, "the event has no datastore ARN");
    assert_eq!(change.resource_type, "Encounter");
    assert_eq!(change.resource_id.as_deref(), Some("enc-1"));
    assert_eq!(change.operation, Some(Operation::Update), "from the entry's request method PUT");
    assert_eq!(change.event_time, time("2025-03-04T11:00:00Z"));
    assert!(change.resource.is_none());
    assert_eq!(change.version_id, None);
}

#[test]
fn subscription_full_resource_keeps_the_resource_byte_for_byte_and_reports_the_delete() {
    let parsed = parse_only("subscription-full-resource.json").unwrap();
    assert_eq!(parsed.signals.len(), 2);

    let updated = change(&parsed.signals[0]);
    assert_eq!(updated.origin, SignalOrigin::SubscriptionFullResource);
    assert_eq!(updated.signal_id, "e5f6a7b8-0000-4000-8000-000000000013#101");
    assert_eq!(updated.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(updated.resource_type, "Patient");
    assert_eq!(updated.resource_id.as_deref(), Some("pat-0002"));
    assert_eq!(updated.operation, Some(Operation::Update));
    assert_eq!(updated.event_time, time("2025-03-04T12:30:45.678Z"));
    assert_eq!(
        updated.resource.as_ref().unwrap().get(),
        r#"{"resourceType":"Patient","id":"pat-0002","meta":{"versionId":"5","lastUpdated":"2025-03-04T12:30:45.678Z"},  "name":[{"family":"Ex\u00e4mple","given":["Test"]}],"birthDate":"1970-01-01"}"#,
        "the resource as sent: spacing and escapes kept"
    );
    assert_eq!(updated.version_id.as_deref(), Some("5"));
    assert_eq!(updated.last_updated, time("2025-03-04T12:30:45.678Z"));

    let deleted = change(&parsed.signals[1]);
    assert_eq!(deleted.origin, SignalOrigin::SubscriptionFullResource);
    assert_eq!(deleted.signal_id, "e5f6a7b8-0000-4000-8000-000000000013#102");
    assert_eq!(deleted.resource_type, "Patient");
    assert_eq!(deleted.resource_id.as_deref(), Some("pat-0003"));
    assert_eq!(deleted.operation, Some(Operation::Delete));
    assert_eq!(deleted.event_time, time("2025-03-04T12:31:00Z"));
    assert!(deleted.resource.is_none());
    assert_eq!(deleted.version_id, None);
    assert_eq!(deleted.last_updated, None);
}

#[test]
fn subscription_handshake_is_not_a_change() {
    let parsed = parse_only("subscription-handshake.json").unwrap();
    assert_eq!(parsed.message_id, "0b6e4c8a-1f0d-4f5e-9a3b-000000000014");
    assert_eq!(not_a_change(only_signal(&parsed)), &NotAChange::SubscriptionHandshake);
}

#[test]
fn subscription_heartbeat_is_not_a_change() {
    let parsed = parse_only("subscription-heartbeat.json").unwrap();
    assert_eq!(not_a_change(only_signal(&parsed)), &NotAChange::SubscriptionHeartbeat);
}

#[test]
fn lifecycle_import_job_completed() {
    let parsed = parse_only("lifecycle-import-job-completed.json").unwrap();
    assert_envelope(
        &parsed,
        "0b6e4c8a-1f0d-4f5e-9a3b-000000000021",
        "f7a8b9c0-0000-4000-8000-000000000021",
        "Import Job Completed",
        "2025-03-04T01:42:10Z",
    );
    let signal = lifecycle(only_signal(&parsed));
    assert_eq!(signal.event_type, LifecycleEventType::ImportJobCompleted);
    assert_eq!(signal.event_type.event_type(), "ImportJobCompleted");
    assert_eq!(signal.signal_id, "f7a8b9c0-0000-4000-8000-000000000021");
    assert_eq!(signal.datastore_id, DATASTORE_ID);
    assert_eq!(signal.job_id.as_deref(), Some("c145fbb27b192af392f8ce6e7838e34f"));
    assert_eq!(signal.submit_time.as_deref(), Some("2025-03-04T01:00:00.000Z"));
    assert_eq!(signal.input_s3_uri.as_deref(), Some("s3://example-import-bucket/ndjson/"));
    assert_eq!(signal.output_s3_uri, None);
    assert_eq!(signal.datastore_name, None);
    assert_eq!(signal.datastore_endpoint, None);
    assert_eq!(signal.datastore_type_version, None);
    assert_eq!(signal.event_time, time("2025-03-04T01:42:10Z"));
    let detail: serde_json::Value = serde_json::from_str(signal.detail.get()).unwrap();
    assert_eq!(detail["jobName"], "nightly-import", "the detail is kept whole, unknown fields included");
    assert!(signal.detail.get().starts_with(r#"{"datastoreId":"5f3a1e1d4c8b4a7e9d2c1b0a9f8e7d6c","jobId""#));
}

#[test]
fn lifecycle_export_job_failed() {
    let parsed = parse_only("lifecycle-export-job-failed.json").unwrap();
    let signal = lifecycle(only_signal(&parsed));
    assert_eq!(signal.event_type, LifecycleEventType::ExportJobFailed);
    assert_eq!(signal.event_type.to_string(), "ExportJobFailed");
    assert_eq!(signal.signal_id, "f7a8b9c0-0000-4000-8000-000000000022");
    assert_eq!(signal.datastore_id, DATASTORE_ID);
    assert_eq!(signal.job_id.as_deref(), Some("9b9a51943afaedd0a8c0c26c49135a31"));
    assert_eq!(signal.submit_time.as_deref(), Some("2025-03-04T02:00:00.000Z"));
    assert_eq!(signal.input_s3_uri, None);
    assert_eq!(signal.output_s3_uri.as_deref(), Some("s3://example-export-bucket/exports/"));
    assert_eq!(signal.event_time, time("2025-03-04T02:05:00Z"));
}

#[test]
fn lifecycle_data_store_active() {
    let parsed = parse_only("lifecycle-data-store-active.json").unwrap();
    let signal = lifecycle(only_signal(&parsed));
    assert_eq!(signal.event_type, LifecycleEventType::DataStoreActive);
    assert_eq!(signal.event_type.event_type(), "DataStoreActive");
    assert_eq!(signal.datastore_id, DATASTORE_ID);
    assert_eq!(signal.job_id, None);
    assert_eq!(signal.submit_time, None);
    assert_eq!(signal.datastore_name.as_deref(), Some("clinical-store"));
    assert_eq!(
        signal.datastore_endpoint.as_deref(),
        Some("https://healthlake.us-east-1.amazonaws.com/datastore/5f3a1e1d4c8b4a7e9d2c1b0a9f8e7d6c/r4/")
    );
    assert_eq!(signal.datastore_type_version.as_deref(), Some("R4"));
}

#[test]
fn malformed_body_not_json() {
    assert_error(
        parse_only("malformed-body-not-json.json"),
        Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000031"),
        "body",
        SignalErrorKind::NotJson,
    );
}

#[test]
fn malformed_unknown_source() {
    let result = parse_only("malformed-unknown-source.json");
    let error = result.as_ref().expect_err("an S3 event is not a HealthLake signal");
    assert_eq!(error.kind.code(), "unsupported_value");
    assert_error(
        result,
        Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000032"),
        "body.source",
        SignalErrorKind::Unsupported { accepted: "aws.healthlake (or a FHIR Bundle as the detail)" },
    );
}

#[test]
fn malformed_unknown_detail_type() {
    let error = parse_only("malformed-unknown-detail-type.json").unwrap_err();
    assert_eq!(error.message_id.as_deref(), Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000033"));
    assert_eq!(error.field, "body.detail-type");
    assert_eq!(error.kind.code(), "unsupported_value");
}

#[test]
fn malformed_missing_resource_type() {
    assert_error(
        parse_only("malformed-missing-resource-type.json"),
        Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000034"),
        "body.detail.requestParameters.resourceType",
        SignalErrorKind::Missing,
    );
}

#[test]
fn malformed_invalid_id_names_the_field_not_the_value() {
    let error = parse_only("malformed-invalid-id.json").unwrap_err();
    assert_eq!(error.message_id.as_deref(), Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000035"));
    assert_eq!(error.field, "body.detail.additionalEventData.resourceId");
    assert_eq!(error.kind, SignalErrorKind::InvalidId);
    let text = error.to_string();
    assert_eq!(
        text,
        "SQS message 0b6e4c8a-1f0d-4f5e-9a3b-000000000035: `body.detail.additionalEventData.resourceId` \
         is not a FHIR id ([A-Za-z0-9-.]{1,64})"
    );
    assert!(!text.contains("Jane"));
}

#[test]
fn malformed_invalid_focus_reference() {
    let error = parse_only("malformed-invalid-focus-reference.json").unwrap_err();
    assert_eq!(error.message_id.as_deref(), Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000036"));
    assert_eq!(error.field, "body.detail.entry[0].resource.parameter[5].part[2].valueReference.reference");
    assert_eq!(error.kind, SignalErrorKind::InvalidId);
    assert!(!error.to_string().contains("Jane"));
}

#[test]
fn malformed_no_message_id() {
    let error = parse_only("malformed-no-message-id.json").unwrap_err();
    assert_eq!(error.message_id, None);
    assert_eq!(error.field, "messageId");
    assert_eq!(error.kind, SignalErrorKind::Missing);
    assert_eq!(error.to_string(), "SQS message (no readable messageId): `messageId` is missing");
}

#[test]
fn batch_mixed_parses_each_message_on_its_own() {
    let results: Vec<_> = messages("batch-mixed.json").iter().map(|message| parse_message(message)).collect();
    assert_eq!(results.len(), 4);
    let created = results[0].as_ref().unwrap();
    assert_eq!(change(only_signal(created)).resource_id.as_deref(), Some("pat-0001"));
    let notified = results[1].as_ref().unwrap();
    assert_eq!(notified.signals.len(), 2);
    let imported = results[2].as_ref().unwrap();
    assert_eq!(lifecycle(only_signal(imported)).event_type, LifecycleEventType::ImportJobCompleted);
    let error = results[3].as_ref().unwrap_err();
    assert_eq!(error.message_id.as_deref(), Some("0b6e4c8a-1f0d-4f5e-9a3b-000000000034"));
    assert_eq!(error.field, "body.detail.requestParameters.resourceType");
}

#[test]
fn error_messages_never_quote_values() {
    for name in FIXTURES.iter().filter(|name| name.starts_with("malformed-")) {
        let error = parse_only(name).unwrap_err();
        let text = error.to_string();
        for value in ["Jane", "pat-0001", "changed", "example-bucket", "Object Created", "Resource Changed", "aws.s3"] {
            assert!(!text.contains(value), "{name}: {text}");
        }
    }
}

#[test]
fn every_lifecycle_detail_type_maps_to_pascal_case() {
    for event_type in LifecycleEventType::ALL {
        assert_eq!(event_type.event_type(), event_type.detail_type().replace(' ', ""));
        assert_eq!(LifecycleEventType::from_detail_type(event_type.detail_type()), Some(event_type));
        let body = serde_json::json!({
            "version": "0", "id": "lifecycle-1", "detail-type": event_type.detail_type(),
            "source": "aws.healthlake", "time": "2025-03-04T00:00:00Z", "resources": [],
            "detail": {"datastoreId": DATASTORE_ID, "jobId": "j1", "submitTime": 1741046400}
        });
        let message = serde_json::json!({"messageId": "m-1", "body": body.to_string(), "eventSource": "aws:sqs"});
        let message = RawValue::from_string(message.to_string()).unwrap();
        let parsed = parse_message(&message).unwrap();
        let signal = lifecycle(only_signal(&parsed));
        assert_eq!(signal.event_type, event_type);
        assert_eq!(signal.submit_time.as_deref(), Some("1741046400"), "a numeric submitTime keeps its digits");
    }
    assert_eq!(LifecycleEventType::from_detail_type("Import Job Cancelled"), None);
    assert!(LifecycleEventType::ImportJobFailed.is_import_job());
    assert!(!LifecycleEventType::ExportJobFailed.is_import_job());
}
