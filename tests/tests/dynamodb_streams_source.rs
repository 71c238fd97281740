//! The DynamoDB Streams source against a moto server: a table with a NEW_AND_OLD_IMAGES stream,
//! changes made with the AWS SDK, read back in order in the Pipes shape the enrichment accepts.

use std::collections::HashMap;

use fhir_pipes::source::{
    SourceBatch,
    dynamodb_streams::{DynamoDbStreamsConfig, DynamoDbStreamsSource, StartingPosition, StreamsError},
};
use fhir_pipes_e2e::moto::MotoServer;
use serde_json::Value;

const TABLE: &str = "Patients";

async fn create_table(moto: &MotoServer, name: &str, with_stream: bool) -> String {
    moto.create_patient_table(name, with_stream).await
}

async fn put_patient(moto: &MotoServer, id: &str, last_name: &str) {
    moto.put_patient(TABLE, id, last_name).await
}

async fn update_last_name(moto: &MotoServer, id: &str, last_name: &str) {
    moto.update_last_name(TABLE, id, last_name).await
}

async fn delete_patient(moto: &MotoServer, id: &str) {
    moto.delete_patient(TABLE, id).await
}

fn config(moto: &MotoServer, position: StartingPosition) -> DynamoDbStreamsConfig {
    serde_json::from_value(serde_json::json!({
        "table_name": TABLE,
        "starting_position": position,
        "batch_size": 100,
        "endpoint_url": moto.endpoint(),
        "region": "us-east-1",
        "stop_when_idle": true,
        "poll_interval_ms": 50,
    }))
    .expect("source settings")
}

async fn read_all(source: &mut DynamoDbStreamsSource) -> Vec<SourceBatch> {
    let mut batches = Vec::new();
    while let Some(batch) = source.next_batch().await.expect("next_batch") {
        assert!(!batch.records.is_empty(), "a batch is never empty");
        batches.push(batch);
    }
    batches
}

fn records(batches: &[SourceBatch]) -> Vec<Value> {
    batches.iter().flat_map(|b| &b.records).map(|r| serde_json::from_str(r.get()).unwrap()).collect()
}

fn summary(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (r["eventName"].as_str().unwrap().to_owned(), r["dynamodb"]["Keys"]["id"]["S"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test]
async fn trim_horizon_reads_every_change_once_in_order_in_the_pipes_shape() {
    let moto = MotoServer::start();
    let stream_arn = create_table(&moto, TABLE, true).await;
    put_patient(&moto, "p1", "Alpha").await;
    put_patient(&moto, "p2", "Beta").await;
    update_last_name(&moto, "p1", "Gamma").await;
    delete_patient(&moto, "p2").await;

    let mut source = config(&moto, StartingPosition::TrimHorizon).build().await.expect("build");
    assert_eq!(source.stream_arn(), stream_arn);
    let batches = read_all(&mut source).await;
    let records = records(&batches);
    assert_eq!(summary(&records), pairs(&[("INSERT", "p1"), ("INSERT", "p2"), ("MODIFY", "p1"), ("REMOVE", "p2")]));
    let sequence: Vec<u128> =
        records.iter().map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().parse().unwrap()).collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "stream order: {sequence:?}");
    assert_eq!(
        batches.last().unwrap().last_sequence_number.as_deref(),
        records[3]["dynamodb"]["SequenceNumber"].as_str()
    );
    for record in &records {
        assert_eq!(record["eventSourceARN"], stream_arn.as_str());
        assert_eq!(record["eventSource"], "aws:dynamodb");
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
        assert!(record["dynamodb"]["ApproximateCreationDateTime"].is_number(), "{record}");
        assert!(record["dynamodb"]["SizeBytes"].is_number(), "{record}");
        assert!(record["eventID"].is_string(), "{record}");
    }
    assert_eq!(records[0]["dynamodb"]["NewImage"]["lastName"]["S"], "Alpha");
    assert!(records[0]["dynamodb"].get("OldImage").is_none());
    assert_eq!(records[2]["dynamodb"]["OldImage"]["lastName"]["S"], "Alpha");
    assert_eq!(records[2]["dynamodb"]["NewImage"]["lastName"]["S"], "Gamma");
    assert_eq!(records[3]["dynamodb"]["OldImage"]["id"]["S"], "p2");
    assert!(records[3]["dynamodb"].get("NewImage").is_none());

    // The enrichment takes the batches as they are.
    let patient = fhir_pipes_enrichers::resources::find("patient").unwrap();
    let enricher = (patient.build)(&|_| None).unwrap();
    let mut commands = Vec::new();
    for batch in &batches {
        let array = format!("[{}]", batch.records.iter().map(|r| r.get()).collect::<Vec<_>>().join(","));
        let events: Value = serde_json::from_slice(&enricher.enrich(&array).unwrap().to_json()).unwrap();
        for event in events.as_array().unwrap() {
            assert_ne!(event["details"]["command"], "ERROR", "not an error event: {event}");
            commands.push((event["details"]["command"].as_str().unwrap().to_owned(), event["correlationId"].clone()));
        }
    }
    let expected: Vec<(String, Value)> = ["PUT", "PUT", "PUT", "DELETE"]
        .iter()
        .zip(&records)
        .map(|(command, record)| ((*command).to_owned(), record["eventID"].clone()))
        .collect();
    assert_eq!(commands, expected);
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_records_and_end_with_their_last_sequence_number() {
    let moto = MotoServer::start();
    create_table(&moto, TABLE, true).await;
    for id in ["p1", "p2", "p3", "p4", "p5"] {
        put_patient(&moto, id, "Same").await;
    }
    let mut config = config(&moto, StartingPosition::TrimHorizon);
    config.batch_size = 2;
    let batches = read_all(&mut config.build().await.unwrap()).await;
    assert_eq!(batches.iter().map(|b| b.records.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
    for batch in &batches {
        let last: Value = serde_json::from_str(batch.records.last().unwrap().get()).unwrap();
        assert_eq!(batch.last_sequence_number.as_deref(), last["dynamodb"]["SequenceNumber"].as_str());
    }
}

#[tokio::test]
async fn a_checkpoint_resumes_right_after_the_last_delivered_record() {
    let moto = MotoServer::start();
    create_table(&moto, TABLE, true).await;
    for id in ["p1", "p2", "p3", "p4"] {
        put_patient(&moto, id, "Same").await;
    }
    let mut first = config(&moto, StartingPosition::TrimHorizon);
    first.batch_size = 2;
    let mut source = first.build().await.unwrap();
    let delivered = source.next_batch().await.unwrap().expect("a first batch");
    assert_eq!(summary(&records(std::slice::from_ref(&delivered))), pairs(&[("INSERT", "p1"), ("INSERT", "p2")]));

    let mut resumed = config(&moto, StartingPosition::TrimHorizon);
    resumed.checkpoints = HashMap::from([(
        delivered.shard_id.clone(),
        delivered.last_sequence_number.clone().expect("a sequence number"),
    )]);
    let batches = read_all(&mut resumed.build().await.unwrap()).await;
    assert_eq!(summary(&records(&batches)), pairs(&[("INSERT", "p3"), ("INSERT", "p4")]));
}

#[tokio::test]
async fn latest_skips_the_changes_made_before_the_start() {
    let moto = MotoServer::start();
    create_table(&moto, TABLE, true).await;
    put_patient(&moto, "old1", "Before").await;
    put_patient(&moto, "old2", "Before").await;
    let mut source = config(&moto, StartingPosition::Latest).build().await.unwrap();
    put_patient(&moto, "new1", "After").await;
    delete_patient(&moto, "old1").await;
    let batches = read_all(&mut source).await;
    assert_eq!(summary(&records(&batches)), pairs(&[("INSERT", "new1"), ("REMOVE", "old1")]));
}

#[tokio::test]
async fn a_table_without_a_stream_is_a_clear_error() {
    let moto = MotoServer::start();
    create_table(&moto, TABLE, false).await;
    let error = config(&moto, StartingPosition::TrimHorizon).build().await.unwrap_err();
    assert!(matches!(&error, StreamsError::NoStream { table } if table == TABLE), "{error}");
    assert!(error.to_string().contains("no stream"), "{error}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_call_error() {
    let mut moto = MotoServer::start();
    let stream_arn = create_table(&moto, TABLE, true).await;
    moto.stop();
    let mut config = config(&moto, StartingPosition::TrimHorizon);
    config.table_name = None;
    config.stream_arn = Some(stream_arn);
    let error = config.build().await.unwrap_err();
    assert!(matches!(&error, StreamsError::Call { retryable: true, .. }), "{error}");
    assert!(error.to_string().contains("DescribeStream"), "{error}");
}
