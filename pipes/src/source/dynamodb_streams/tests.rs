use aws_sdk_dynamodbstreams::{
    config::{BehaviorVersion, Region},
    primitives::{Blob, DateTime},
    types::{Identity, OperationType, StreamRecord, StreamViewType},
};
use serde_json::{Value, json};

use super::*;

const ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/Patients/stream/2026-01-01T00:00:00.000";

fn shard(id: &str, parent: Option<&str>, closed: bool) -> ShardState {
    ShardState {
        id: id.to_owned(),
        parent_id: parent.map(str::to_owned),
        closed,
        start: StartAt::TrimHorizon,
        iterator: None,
        exhausted: false,
        last_read: None,
        buffer: Vec::new(),
        buffer_last_sequence: None,
        buffered_since: None,
    }
}

/// A source that never calls AWS (the tests here only look at its bookkeeping).
fn source(shards: Vec<ShardState>) -> DynamoDbStreamsSource {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    DynamoDbStreamsSource {
        client: Client::from_conf(config),
        stream_arn: ARN.to_owned(),
        region: "eu-west-1".to_owned(),
        starting_position: StartingPosition::TrimHorizon,
        batch_size: 3,
        batching_window: Duration::ZERO,
        poll_interval: Duration::from_millis(250),
        stop_when_idle: true,
        checkpoints: HashMap::new(),
        shards,
        listed_once: false,
        refresh_due: Instant::now() + SHARD_REFRESH,
        idle_rounds: 0,
    }
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

#[test]
fn parents_come_before_children_whatever_the_listing_order() {
    let listed = vec![
        ("grandchild", Some("child")),
        ("root", None),
        ("child", Some("root")),
        ("orphan", Some("trimmed-away")),
        ("other-root", None),
    ];
    let ordered = order_parents_first(listed, |s| s.0, |s| s.1);
    let ids: Vec<&str> = ordered.iter().map(|s| s.0).collect();
    assert_eq!(ids, ["root", "orphan", "other-root", "child", "grandchild"]);
}

#[test]
fn a_child_shard_is_read_only_after_its_parent_is_exhausted_and_handed_over() {
    let mut source = source(vec![shard("parent", None, true), shard("child", Some("parent"), false)]);
    assert!(source.is_readable(0));
    assert!(!source.is_readable(1), "parent still has records");
    assert!(!source.all_read(), "a closed shard is not read to its end");
    source.shards[0].exhausted = true;
    source.shards[0].buffer.push(raw("{}"));
    assert!(!source.is_readable(1), "parent's last records not handed over yet");
    assert_eq!(source.take_ready_batch(false).unwrap().shard_id, "parent");
    assert!(source.is_readable(1));
    assert!(source.all_read());
}

#[test]
fn a_child_of_a_trimmed_parent_is_readable() {
    let source = source(vec![shard("child", Some("gone"), false)]);
    assert!(source.is_readable(0));
}

#[test]
fn checkpoints_resume_after_their_sequence_and_new_children_start_at_their_beginning() {
    let mut source = source(Vec::new());
    source.starting_position = StartingPosition::Latest;
    source.checkpoints.insert("resumed".to_owned(), "42".to_owned());
    assert_eq!(source.start_of("resumed", None, true), Some(StartAt::After("42".to_owned())));
    assert_eq!(source.start_of("child-of-resumed", Some("resumed"), false), Some(StartAt::TrimHorizon));
    assert_eq!(source.start_of("open", None, false), Some(StartAt::Latest));
    assert_eq!(source.start_of("closed", None, true), None, "LATEST skips closed shards");
    source.listed_once = true;
    assert_eq!(source.start_of("split-later", Some("open"), false), Some(StartAt::TrimHorizon));
}

#[test]
fn a_batch_is_ready_when_full_after_the_window_or_at_the_end_of_its_shard() {
    let mut source = source(vec![shard("s", None, false)]);
    source.batching_window = Duration::from_secs(300);
    let s = &mut source.shards[0];
    s.buffer.extend([raw("1"), raw("2")]);
    s.buffer_last_sequence = Some("2".to_owned());
    s.buffered_since = Some(Instant::now());
    assert!(source.take_ready_batch(false).is_none(), "2 of 3 within the window");
    source.shards[0].buffer.push(raw("3"));
    let batch = source.take_ready_batch(false).unwrap();
    assert_eq!(batch.records.len(), 3);
    assert_eq!(batch.last_sequence_number.as_deref(), Some("2"));
    assert!(source.shards[0].buffer.is_empty() && source.shards[0].buffered_since.is_none());

    source.shards[0].buffer.push(raw("4"));
    source.shards[0].buffered_since = Some(Instant::now());
    assert!(source.take_ready_batch(false).is_none());
    assert_eq!(source.take_ready_batch(true).unwrap().records.len(), 1, "flushed when idle");

    source.batching_window = Duration::ZERO;
    source.shards[0].buffer.push(raw("5"));
    source.shards[0].buffered_since = Some(Instant::now());
    assert!(source.take_ready_batch(false).is_some(), "no window: hand over what was read");
}

fn full_record() -> Record {
    let mut keys = HashMap::new();
    keys.insert("id".to_owned(), AttributeValue::S("p1".to_owned()));
    let mut address = HashMap::new();
    address.insert("city".to_owned(), AttributeValue::S("Lyon".to_owned()));
    let mut image = keys.clone();
    for (name, value) in [("firstName", "Ada"), ("lastName", "Test"), ("birthDate", "1980-01-02"), ("gender", "F")] {
        image.insert(name.to_owned(), AttributeValue::S(value.to_owned()));
    }
    image.insert("age".to_owned(), AttributeValue::N("42".to_owned()));
    image.insert("active".to_owned(), AttributeValue::Bool(true));
    image.insert("none".to_owned(), AttributeValue::Null(true));
    image.insert("photo".to_owned(), AttributeValue::B(Blob::new(b"hi".to_vec())));
    image.insert("tags".to_owned(), AttributeValue::Ss(vec!["a".to_owned(), "b".to_owned()]));
    image.insert("scores".to_owned(), AttributeValue::Ns(vec!["1".to_owned(), "2.5".to_owned()]));
    image.insert("blobs".to_owned(), AttributeValue::Bs(vec![Blob::new(b"hi".to_vec())]));
    image.insert(
        "names".to_owned(),
        AttributeValue::L(vec![AttributeValue::S("x".to_owned()), AttributeValue::N("1".to_owned())]),
    );
    image.insert("address".to_owned(), AttributeValue::M(address));
    Record::builder()
        .event_id("e-1")
        .event_name(OperationType::Modify)
        .event_version("1.1")
        .event_source("aws:dynamodb")
        .aws_region("eu-west-1")
        .user_identity(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build())
        .dynamodb(
            StreamRecord::builder()
                .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                .set_keys(Some(keys))
                .set_new_image(Some(image.clone()))
                .set_old_image(Some(image))
                .sequence_number("111")
                .size_bytes(26)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build(),
        )
        .build()
}

#[test]
fn records_take_the_pipes_json_shape_with_dynamodb_json_values() {
    let json: Value = serde_json::from_str(pipes_record_json(&full_record(), ARN, "ignored").unwrap().get()).unwrap();
    let image = json!({
        "id": {"S": "p1"}, "firstName": {"S": "Ada"}, "lastName": {"S": "Test"}, "birthDate": {"S": "1980-01-02"},
        "gender": {"S": "F"}, "age": {"N": "42"}, "active": {"BOOL": true}, "none": {"NULL": true},
        "photo": {"B": "aGk="}, "tags": {"SS": ["a", "b"]}, "scores": {"NS": ["1", "2.5"]},
        "blobs": {"BS": ["aGk="]}, "names": {"L": [{"S": "x"}, {"N": "1"}]},
        "address": {"M": {"city": {"S": "Lyon"}}}
    });
    let expected = json!({
        "eventID": "e-1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1", "eventSourceARN": ARN,
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000, "Keys": {"id": {"S": "p1"}},
            "NewImage": image, "OldImage": image, "SequenceNumber": "111", "SizeBytes": 26,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    });
    assert_eq!(json, expected);
}

#[test]
fn the_creation_time_keeps_its_fraction_and_the_region_defaults_to_the_streams() {
    let record = Record::builder()
        .event_id("e-2")
        .event_name(OperationType::Remove)
        .dynamodb(
            StreamRecord::builder().approximate_creation_date_time(DateTime::from_millis(1_700_000_000_500)).build(),
        )
        .build();
    let json: Value = serde_json::from_str(pipes_record_json(&record, ARN, "eu-west-1").unwrap().get()).unwrap();
    assert_eq!(json["dynamodb"]["ApproximateCreationDateTime"], json!(1_700_000_000.5));
    assert_eq!(json["awsRegion"], "eu-west-1");
    assert_eq!(json["eventSource"], "aws:dynamodb");
}

#[test]
fn the_enrichment_accepts_the_records_produced() {
    let mut insert = full_record();
    insert.event_name = Some(OperationType::Insert);
    insert.user_identity = None;
    insert.dynamodb.as_mut().unwrap().old_image = None;
    let batch = format!("[{}]", pipes_record_json(&insert, ARN, "eu-west-1").unwrap().get());
    let patient = fhir_pipes_enrichers::resources::find("patient").unwrap();
    let enricher = (patient.build)(&|_| None).unwrap();
    let events: Value = serde_json::from_slice(&enricher.enrich(&batch).unwrap().to_json()).unwrap();
    let event = &events[0];
    assert_eq!(event["correlationId"], "e-1", "{event}");
    assert_eq!(event["details"]["command"], "PUT", "{event}");
    assert_eq!(event["details"]["entity"]["resourceType"], "Patient", "{event}");
    assert_eq!(event["details"]["entity"]["id"], "p1", "{event}");
}

#[test]
fn settings_reject_unknown_fields_and_need_a_position() {
    let error = serde_json::from_value::<DynamoDbStreamsConfig>(
        json!({"stream_arn": ARN, "starting_position": "LATEST", "batchsize": 1}),
    )
    .unwrap_err();
    assert!(error.to_string().contains("unknown field"), "{error}");
    let config: DynamoDbStreamsConfig =
        serde_json::from_value(json!({"table_name": "Patients", "starting_position": "TRIM_HORIZON"})).unwrap();
    assert_eq!(config.batch_size, 100);
    assert_eq!(config.starting_position, StartingPosition::TrimHorizon);
}
