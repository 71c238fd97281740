//! The CloudWatch Logs and EventBridge targets and the SQS dead-letter queue against a moto
//! server: what is delivered arrives exactly once; a stopped server is a retryable failure and
//! delivery succeeds once it is back.

use std::collections::BTreeMap;

use fhir_pipes::{
    runtime::{DeadLetter, Stage},
    target::{
        Retry,
        cloudwatch_logs::{CloudWatchLogsConfig, CloudWatchLogsTarget},
        eventbridge::{EventBridgeConfig, EventBridgeTarget},
        sqs_dead_letter::SqsDeadLetterConfig,
    },
};
use fhir_pipes_e2e::moto::MotoServer;
use serde_json::{Value, json, value::RawValue};

const LOG_GROUP: &str = "/fhir-pipes/patient";
const LOG_STREAM: &str = "local-test";
const BUS: &str = "fhir-bus";
const DETAIL_TYPE: &str = "fhir.Patient";
const SOURCE: &str = "fhir-pipes.patient";

/// `count` small envelopes, each with a distinct `correlationId` (`c0`, `c1`…) and `padding`
/// extra bytes.
fn envelopes(count: usize, padding: usize) -> Vec<Box<RawValue>> {
    (0..count)
        .map(|i| {
            let event = json!({"version": "1", "correlationId": format!("c{i}"), "details": {"command": "PUT"}, "pad": "x".repeat(padding)});
            RawValue::from_string(event.to_string()).unwrap()
        })
        .collect()
}

fn correlation_ids(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("c{i}")).collect()
}

async fn create_log_group(moto: &MotoServer) {
    moto.cloudwatch_logs().await.create_log_group().log_group_name(LOG_GROUP).send().await.expect("CreateLogGroup");
}

async fn cloudwatch_target(moto: &MotoServer, log_group: &str) -> CloudWatchLogsTarget {
    let config: CloudWatchLogsConfig = serde_json::from_value(json!({
        "log_group_name": log_group,
        "log_stream_name": LOG_STREAM,
        "endpoint_url": moto.endpoint(),
        "region": "us-east-1",
    }))
    .unwrap();
    config.build().await.unwrap()
}

async fn log_messages(moto: &MotoServer) -> Vec<String> {
    moto.log_messages(LOG_GROUP, LOG_STREAM).await
}

/// How many PutLogEvents calls the stream received: moto counts them in the (deprecated)
/// `uploadSequenceToken`.
async fn put_log_events_calls(moto: &MotoServer) -> u64 {
    let streams = moto.cloudwatch_logs().await.describe_log_streams().log_group_name(LOG_GROUP).send().await.unwrap();
    let stream =
        streams.log_streams().iter().find(|s| s.log_stream_name() == Some(LOG_STREAM)).expect("the log stream");
    #[allow(deprecated)] // AWS no longer needs the token; moto still reports it.
    let token = stream.upload_sequence_token().expect("moto reports uploadSequenceToken");
    token.parse().unwrap()
}

fn ids_of(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap()["correlationId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cloudwatch_logs_gets_every_event_once_in_order_and_creates_its_stream() {
    let moto = MotoServer::start();
    create_log_group(&moto).await;
    let mut target = cloudwatch_target(&moto, LOG_GROUP).await;
    let events = envelopes(25, 0);
    target.deliver(&events).await.expect("deliver");
    target.deliver(&envelopes(0, 0)).await.expect("nothing to deliver");
    let messages = log_messages(&moto).await;
    assert_eq!(messages, events.iter().map(|e| e.get().to_owned()).collect::<Vec<_>>());
    assert_eq!(put_log_events_calls(&moto).await, 1);
}

#[tokio::test]
async fn cloudwatch_logs_calls_hold_at_most_ten_thousand_events() {
    let moto = MotoServer::start();
    create_log_group(&moto).await;
    let mut target = cloudwatch_target(&moto, LOG_GROUP).await;
    target.deliver(&envelopes(10_001, 0)).await.expect("deliver");
    assert_eq!(put_log_events_calls(&moto).await, 2);
    assert_eq!(ids_of(&log_messages(&moto).await), correlation_ids(10_001));
}

#[tokio::test]
async fn cloudwatch_logs_calls_hold_at_most_one_mebibyte_and_big_events_fail_alone() {
    let moto = MotoServer::start();
    create_log_group(&moto).await;
    let mut target = cloudwatch_target(&moto, LOG_GROUP).await;
    // 12 events of ~100 KB: 1.2 MB, so two calls.
    let mut events = envelopes(12, 100_000);
    // One event over 256 KB: refused by index, the others delivered.
    events.insert(5, envelopes(1, 300_000).pop().unwrap());
    let error = target.deliver(&events).await.unwrap_err();
    assert_eq!(error.retry, Retry::Permanent);
    assert_eq!(error.failed, vec![5]);
    assert_eq!(put_log_events_calls(&moto).await, 2);
    assert_eq!(ids_of(&log_messages(&moto).await), correlation_ids(12));
}

#[tokio::test]
async fn cloudwatch_logs_without_its_log_group_is_a_permanent_error_naming_it() {
    let moto = MotoServer::start();
    let mut target = cloudwatch_target(&moto, "/missing/group").await;
    let error = target.deliver(&envelopes(2, 0)).await.unwrap_err();
    assert_eq!(error.retry, Retry::Permanent);
    assert!(error.message.contains("/missing/group") && error.message.contains("does not exist"), "{}", error.message);
}

#[tokio::test]
async fn cloudwatch_logs_down_is_retryable_and_nothing_is_lost_once_back() {
    let mut moto = MotoServer::start();
    create_log_group(&moto).await;
    let mut target = cloudwatch_target(&moto, LOG_GROUP).await;
    target.deliver(&envelopes(3, 0)).await.expect("first delivery");
    moto.stop();
    let events = envelopes(4, 0);
    let error = target.deliver(&events).await.unwrap_err();
    assert_eq!(error.retry, Retry::Retryable, "{}", error.message);
    assert_eq!(error.failed, vec![0, 1, 2, 3]);
    // Back, with empty state (moto keeps none across restarts): the group is made again, the
    // stream by the target.
    moto.restart();
    create_log_group(&moto).await;
    let retry: Vec<Box<RawValue>> = error.failed.iter().map(|&i| events[i].clone()).collect();
    let mut outcome = target.deliver(&retry).await;
    if let Err(error) = &outcome {
        // The first call after the restart finds the stream gone and asks to be retried.
        assert_eq!(error.retry, Retry::Retryable, "{}", error.message);
        outcome = target.deliver(&retry).await;
    }
    outcome.expect("delivery once the server is back");
    assert_eq!(ids_of(&log_messages(&moto).await), correlation_ids(4));
}

async fn bus_to_queue(moto: &MotoServer) -> String {
    moto.bus_to_queue(BUS, SOURCE, DETAIL_TYPE).await
}

async fn drain_queue(moto: &MotoServer, queue_url: &str) -> Vec<Value> {
    moto.drain_queue(queue_url).await
}

async fn eventbridge_target(moto: &MotoServer) -> EventBridgeTarget {
    let config: EventBridgeConfig = serde_json::from_value(json!({
        "event_bus_name": BUS,
        "detail_type": DETAIL_TYPE,
        "source": SOURCE,
        "endpoint_url": moto.endpoint(),
    }))
    .unwrap();
    config.build().await.unwrap()
}

/// How many times each correlation id arrived, from the bus events in the queue.
fn arrivals(bodies: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for body in bodies {
        assert_eq!(body["source"], SOURCE, "{body}");
        assert_eq!(body["detail-type"], DETAIL_TYPE, "{body}");
        *counts.entry(body["detail"]["correlationId"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    counts
}

fn once_each(count: usize) -> BTreeMap<String, usize> {
    correlation_ids(count).into_iter().map(|id| (id, 1)).collect()
}

#[tokio::test]
async fn eventbridge_delivers_every_event_once_through_a_rule_to_sqs_in_calls_of_ten() {
    let moto = MotoServer::start();
    let queue_url = bus_to_queue(&moto).await;
    let mut target = eventbridge_target(&moto).await;
    // moto refuses PutEvents calls of more than 10 entries, so 25 events succeed only chunked.
    target.deliver(&envelopes(25, 0)).await.expect("deliver");
    let bodies = drain_queue(&moto, &queue_url).await;
    assert_eq!(arrivals(&bodies), once_each(25));
    assert_eq!(bodies[0]["detail"]["details"]["command"], "PUT");
}

#[tokio::test]
async fn eventbridge_refuses_an_entry_over_256_kb_by_index_and_delivers_the_rest() {
    let moto = MotoServer::start();
    let queue_url = bus_to_queue(&moto).await;
    let mut target = eventbridge_target(&moto).await;
    let mut events = envelopes(3, 0);
    events.insert(1, envelopes(1, 270_000).pop().unwrap());
    let error = target.deliver(&events).await.unwrap_err();
    assert_eq!((error.retry, error.failed), (Retry::Permanent, vec![1]));
    assert_eq!(arrivals(&drain_queue(&moto, &queue_url).await), once_each(3));
}

#[tokio::test]
async fn eventbridge_down_is_retryable_and_delivery_succeeds_once_back() {
    let mut moto = MotoServer::start();
    bus_to_queue(&moto).await;
    let mut target = eventbridge_target(&moto).await;
    moto.stop();
    let events = envelopes(12, 0);
    let error = target.deliver(&events).await.unwrap_err();
    assert_eq!(error.retry, Retry::Retryable, "{}", error.message);
    assert_eq!(error.failed, (0..12).collect::<Vec<_>>());
    moto.restart();
    let queue_url = bus_to_queue(&moto).await;
    let retry: Vec<Box<RawValue>> = error.failed.iter().map(|&i| events[i].clone()).collect();
    target.deliver(&retry).await.expect("delivery once the server is back");
    assert_eq!(arrivals(&drain_queue(&moto, &queue_url).await), once_each(12));
}

#[tokio::test]
async fn the_sqs_dead_letter_carries_the_records_split_over_messages_when_large() {
    let moto = MotoServer::start();
    let sqs = moto.sqs().await;
    let queue_url = sqs.create_queue().queue_name("dead-letters").send().await.unwrap().queue_url().unwrap().to_owned();
    let config: SqsDeadLetterConfig =
        serde_json::from_value(json!({"queue_url": queue_url, "endpoint_url": moto.endpoint()})).unwrap();
    let mut queue = config.build().await.unwrap();

    let small = envelopes(3, 0);
    let small_records: Vec<&RawValue> = small.iter().map(AsRef::as_ref).collect();
    let letter = DeadLetter {
        pipe: "PatientPipe",
        stage: Stage::Delivery,
        reason: "PutEvents: ThrottlingException (HTTP 400)",
        attempts: 4,
        shard_id: "shardId-0001",
        first_sequence_number: Some("100"),
        last_sequence_number: Some("102"),
        record_count: small_records.len(),
        records: &small_records,
    };
    assert_eq!(queue.send(&letter).await.unwrap(), 1);
    let bodies = drain_queue(&moto, &queue_url).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["reason"], letter.reason);
    assert_eq!(
        (&bodies[0]["pipe"], &bodies[0]["stage"], &bodies[0]["attempts"]),
        (&json!("PatientPipe"), &json!("delivery"), &json!(4))
    );
    assert_eq!(bodies[0]["shardId"], "shardId-0001");
    assert_eq!(
        (bodies[0]["firstSequenceNumber"].as_str(), bodies[0]["lastSequenceNumber"].as_str()),
        (Some("100"), Some("102"))
    );
    let records: Vec<Value> = small.iter().map(|r| serde_json::from_str(r.get()).unwrap()).collect();
    assert_eq!(bodies[0]["records"], Value::Array(records));

    // 10 records of ~60 KB: 600 KB, over several messages of at most 256 KB, order kept.
    let large = envelopes(10, 60_000);
    let large_records: Vec<&RawValue> = large.iter().map(AsRef::as_ref).collect();
    let parts =
        queue.send(&DeadLetter { records: &large_records, record_count: large_records.len(), ..letter }).await.unwrap();
    assert!(parts >= 3, "{parts} messages");
    let mut bodies = drain_queue(&moto, &queue_url).await;
    assert_eq!(bodies.len(), parts);
    bodies.sort_by_key(|b| b["part"].as_u64());
    let ids: Vec<String> = bodies
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap().iter())
        .map(|r| r["correlationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, correlation_ids(10));
}
