//! The AWS pieces composed as a pipe, against one moto server: table changes → DynamoDB Streams
//! source → Patient enrichment → CloudWatch Logs and an EventBridge bus (rule → SQS). Every change
//! arrives exactly once at each target, as the envelope the enrichment made of it.

use std::collections::BTreeMap;

use fhir_pipes::{
    source::dynamodb_streams::DynamoDbStreamsConfig,
    target::{cloudwatch_logs::CloudWatchLogsConfig, eventbridge::EventBridgeConfig},
};
use fhir_pipes_e2e::moto::MotoServer;
use serde_json::{Value, json};

const TABLE: &str = "Patients";
const LOG_GROUP: &str = "/fhir-pipes/patient";
const LOG_STREAM: &str = "fhir-pipes-local";
const BUS: &str = "fhir";
const SOURCE: &str = "fhir-pipes.patient";
const DETAIL_TYPE: &str = "fhir.Patient";

#[tokio::test]
async fn every_change_reaches_both_targets_exactly_once() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, true).await;
    moto.cloudwatch_logs().await.create_log_group().log_group_name(LOG_GROUP).send().await.unwrap();
    let queue_url = moto.bus_to_queue(BUS, SOURCE, DETAIL_TYPE).await;
    for id in ["p1", "p2", "p3"] {
        moto.put_patient(TABLE, id, "First").await;
    }
    moto.update_last_name(TABLE, "p2", "Second").await;
    moto.delete_patient(TABLE, "p3").await;

    let endpoint = moto.endpoint();
    let source: DynamoDbStreamsConfig = serde_json::from_value(json!({
        "table_name": TABLE, "starting_position": "TRIM_HORIZON", "batch_size": 2,
        "endpoint_url": endpoint, "stop_when_idle": true, "poll_interval_ms": 50,
    }))
    .unwrap();
    let logs: CloudWatchLogsConfig =
        serde_json::from_value(json!({"log_group_name": LOG_GROUP, "endpoint_url": endpoint})).unwrap();
    let bus: EventBridgeConfig = serde_json::from_value(json!({
        "event_bus_name": BUS, "detail_type": DETAIL_TYPE, "source": SOURCE, "endpoint_url": endpoint,
    }))
    .unwrap();
    let (mut source, mut logs, mut bus) =
        (source.build().await.unwrap(), logs.build().await.unwrap(), bus.build().await.unwrap());
    let patient = fhir_pipes_enrichers::resources::find("patient").unwrap();
    let enricher = (patient.build)(&|_| None).unwrap();

    // eventID → the command its envelope carries, as the enrichment made them.
    let mut expected = BTreeMap::new();
    while let Some(batch) = source.next_batch().await.unwrap() {
        let array = format!("[{}]", batch.records.iter().map(|r| r.get()).collect::<Vec<_>>().join(","));
        let enriched = enricher.enrich(&array).unwrap();
        for event in &enriched.events {
            let event: Value = serde_json::from_str(event.get()).unwrap();
            expected.insert(event["correlationId"].as_str().unwrap().to_owned(), event["details"]["command"].clone());
        }
        logs.deliver(&enriched.events).await.expect("CloudWatch Logs delivery");
        bus.deliver(&enriched.events).await.expect("EventBridge delivery");
    }
    let commands: Vec<&Value> = expected.values().collect();
    assert_eq!(commands.iter().filter(|c| **c == "PUT").count(), 4, "{expected:?}");
    assert_eq!(commands.iter().filter(|c| **c == "DELETE").count(), 1, "{expected:?}");

    let mut logged = BTreeMap::new();
    for message in moto.log_messages(LOG_GROUP, LOG_STREAM).await {
        let event: Value = serde_json::from_str(&message).unwrap();
        let id = event["correlationId"].as_str().unwrap().to_owned();
        assert!(logged.insert(id.clone(), event["details"]["command"].clone()).is_none(), "{id} logged twice");
    }
    assert_eq!(logged, expected);

    let mut on_bus = BTreeMap::new();
    for body in moto.drain_queue(&queue_url).await {
        let id = body["detail"]["correlationId"].as_str().unwrap().to_owned();
        assert!(
            on_bus.insert(id.clone(), body["detail"]["details"]["command"].clone()).is_none(),
            "{id} arrived twice"
        );
    }
    assert_eq!(on_bus, expected);
}
