//! Lookups against moto: an Encounter batch whose participants are looked up in a Practitioners
//! table with BatchGetItem — once per batch, de-duplicated, at most 100 keys a call — and what
//! a missing practitioner or an unreachable service does to the records that need them; and
//! `fhir-pipes run` fetching them as the Lambda would, in process and through the binary.

use std::collections::HashSet;

use fhir_pipes::runtime::RunConfig;
use fhir_pipes_e2e::{
    CapturedLogs,
    binaries::cargo_bin,
    capture_logs,
    lookups::{CountingLookup, encounter_batch, practitioner_display, put_practitioners},
    moto::MotoServer,
    read_ndjson, template_path,
};
use fhir_pipes_enrichers::{
    EnrichConfig, EnrichError, Enricher, ErrorPolicy, LookupConfig, dynamodb_lookup::DynamoDbLookup, lambda,
    lookup::MAX_KEYS_PER_CALL,
};
use fhir_pipes_mappings::{EncounterMapping, ItemKey};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, value::RawValue};

const TABLE: &str = "Practitioners";

fn encounter_enricher(policy: ErrorPolicy) -> Enricher<EncounterMapping> {
    let settings = |name: &str| (name == lambda::ENV_PRACTITIONER_TABLE).then(|| TABLE.to_owned());
    let config = EnrichConfig { error_policy: policy, ..EnrichConfig::for_resource("Encounter") };
    Enricher::new(lambda::encounter_mapping(settings), config)
}

fn parse(events: &[Box<RawValue>]) -> Vec<Value> {
    events.iter().map(|event| serde_json::from_str(event.get()).unwrap()).collect()
}

#[tokio::test]
async fn a_batch_looks_up_each_practitioner_once_in_calls_of_at_most_100_keys() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, false).await;
    put_practitioners(&moto, TABLE, 0..150).await;
    // 300 encounters over 150 practitioners (each twice), one unknown practitioner, one without.
    let mut practitioners: Vec<Option<String>> = (0..300).map(|i| Some(format!("pr-{}", (i * 7) % 150))).collect();
    practitioners.push(Some("pr-unknown".into()));
    practitioners.push(None);
    let batch = encounter_batch(&practitioners);

    let fetcher = LookupConfig::default().build(CountingLookup::new(DynamoDbLookup::new(moto.dynamodb().await)));
    let event = LambdaEvent::new(RawValue::from_string(batch).unwrap(), Context::default());
    let logs = CapturedLogs::default();
    let logging =
        capture_logs(logs.filtered_json_subscriber(fhir_pipes_core::logging::LogFilter::new(Some("trace"), "info")));
    let events =
        lambda::handle_with_lookups(&encounter_enricher(ErrorPolicy::EmitErrorEvent), &fetcher, event).await.unwrap();
    drop(logging);
    // RUST_LOG=trace, the SDK's logs included: no practitioner id or name is logged.
    let logs = logs.text();
    assert!(logs.contains("lookups fetched") && logs.contains("aws_smithy_runtime"), "{logs}");
    for value in ["pr-7", "pr-unknown", "First7", "Last7"] {
        assert!(!logs.contains(value), "{value} logged:\n{logs}");
    }

    let calls = fetcher.client().calls();
    assert_eq!(calls.len(), 2, "151 distinct keys need two calls");
    assert!(calls.iter().all(|keys| keys.len() <= MAX_KEYS_PER_CALL), "{:?}", calls.iter().map(Vec::len));
    let sent: Vec<&ItemKey> = calls.iter().flatten().collect();
    assert_eq!(sent.len(), 151, "each distinct key is sent once");
    assert_eq!(sent.iter().collect::<HashSet<_>>().len(), 151);

    let events = parse(&events);
    assert_eq!(events.len(), 302);
    for (index, event) in events.iter().enumerate().take(300) {
        assert_eq!(event["eventType"], "EncounterChange", "record {index}");
        let individual = &event["details"]["entity"]["participant"][0]["individual"];
        let number = (index * 7) % 150;
        assert_eq!(individual["reference"], format!("Practitioner/pr-{number}"), "record {index}");
        assert_eq!(individual["display"], practitioner_display(number), "record {index}");
    }
    let missing = &events[300];
    assert_eq!(missing["correlationId"], "enc-300");
    assert_eq!(missing["details"]["command"], "ERROR");
    assert_eq!(missing["details"]["error"]["field"], "lookup.practitioner");
    assert_eq!(missing["details"]["error"]["kind"], "lookup_not_found");
    assert_eq!(events[301]["details"]["command"], "PUT");
    assert!(events[301]["details"]["entity"].get("participant").is_none());
}

#[tokio::test]
async fn an_unreachable_table_fails_only_the_records_that_need_it() {
    let mut moto = MotoServer::start();
    let client = moto.dynamodb().await;
    moto.stop();
    let batch = encounter_batch(&[Some("pr-1".into()), None, Some("pr-2".into())]);
    let fetcher = LookupConfig::default().build(CountingLookup::new(DynamoDbLookup::new(client)));

    let enriched = encounter_enricher(ErrorPolicy::EmitErrorEvent).enrich_with_lookups(&batch, &fetcher).await.unwrap();
    assert_eq!(fetcher.client().calls().len(), 1, "both keys in one call, not retried as unprocessed");
    assert_eq!((enriched.counts.failed, enriched.counts.puts), (2, 1));
    let events = parse(&enriched.events);
    for failed in [&events[0], &events[2]] {
        assert_eq!(failed["details"]["error"]["field"], "lookup.practitioner");
        assert_eq!(failed["details"]["error"]["kind"], "lookup_failed");
        let message = failed["details"]["error"]["message"].as_str().unwrap();
        assert!(message.contains("could not be reached"), "{message}");
    }
    assert_eq!(events[1]["details"]["command"], "PUT");

    let error = encounter_enricher(ErrorPolicy::FailBatch).enrich_with_lookups(&batch, &fetcher).await.unwrap_err();
    let EnrichError::RecordFailed { index, event_id, error } = error else { panic!("{error}") };
    assert_eq!((index, event_id.as_str(), error.field.as_ref()), (0, "enc-0", "lookup.practitioner"));
}

#[test]
fn without_a_client_records_needing_a_lookup_fail_and_without_a_table_none_is_made() {
    let batch = encounter_batch(&[Some("pr-1".into()), None]);
    let enriched = encounter_enricher(ErrorPolicy::EmitErrorEvent).enrich(&batch).unwrap();
    assert_eq!((enriched.counts.failed, enriched.counts.puts), (1, 1));
    let event: Value = serde_json::from_str(enriched.events[0].get()).unwrap();
    assert_eq!(event["details"]["error"]["kind"], "lookup_failed");
    // Unset table: the mapping of before, no lookup.
    let plain = Enricher::new(EncounterMapping::default(), EnrichConfig::for_resource("Encounter"));
    let enriched = plain.enrich(&batch).unwrap();
    assert_eq!((enriched.counts.failed, enriched.counts.puts), (0, 2));
}

#[tokio::test]
async fn old_images_are_looked_up_too_for_skip_unchanged_and_delete_entities() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, false).await;
    put_practitioners(&moto, TABLE, 0..3).await;
    let image = |practitioner: usize, status: &str| {
        format!(
            r#"{{"id":{{"S":"enc-1"}},"status":{{"S":"{status}"}},"class":{{"S":"AMB"}},"patientId":{{"S":"pat-1"}},"practitionerId":{{"S":"pr-{practitioner}"}}}}"#
        )
    };
    let batch = format!(
        r#"[{{"eventID":"same","eventName":"MODIFY","dynamodb":{{"NewImage":{},"OldImage":{}}}}},
            {{"eventID":"changed","eventName":"MODIFY","dynamodb":{{"NewImage":{},"OldImage":{}}}}},
            {{"eventID":"gone","eventName":"REMOVE","dynamodb":{{"Keys":{{"id":{{"S":"enc-1"}}}},"OldImage":{}}}}}]"#,
        image(0, "finished"),
        image(0, "finished"),
        image(1, "finished"),
        image(0, "finished"),
        image(2, "cancelled"),
    );
    let fetcher = LookupConfig::default().build(CountingLookup::new(DynamoDbLookup::new(moto.dynamodb().await)));
    let enriched = encounter_enricher(ErrorPolicy::EmitErrorEvent).enrich_with_lookups(&batch, &fetcher).await.unwrap();
    let calls = fetcher.client().calls();
    assert_eq!((calls.len(), calls[0].len()), (1, 3), "pr-0, pr-1 and pr-2 once each");
    assert_eq!((enriched.counts.skipped, enriched.counts.puts, enriched.counts.deletes), (1, 1, 1));
    let events = parse(&enriched.events);
    assert_eq!(events[0]["details"]["entity"]["participant"][0]["individual"]["display"], practitioner_display(1));
    assert_eq!(events[1]["details"]["command"], "DELETE");
    assert_eq!(events[1]["details"]["entity"]["participant"][0]["individual"]["display"], practitioner_display(2));
}

#[tokio::test]
async fn fhir_pipes_run_fetches_the_lookups_in_process_and_through_the_binary() {
    let moto = MotoServer::start();
    moto.create_patient_table(TABLE, false).await;
    put_practitioners(&moto, TABLE, 0..3).await;
    let binary = tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-enrichers", "encounter-enricher")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("encounters.json");
    std::fs::write(&input, encounter_batch(&[Some("pr-0".into()), Some("pr-unknown".into()), Some("pr-2".into())]))
        .unwrap();

    for (name, enricher_binary) in [("in-process", None), ("binary", Some(binary))] {
        let output = dir.path().join(format!("{name}.ndjson"));
        let config = RunConfig {
            template: Some(template_path()),
            pipe: Some("EncounterPipe".into()),
            parameters: vec![
                "EncounterTableStreamArn=arn:aws:dynamodb:us-east-1:123456789012:table/Encounters/stream/1".into(),
                format!("EncounterPractitionerTable={TABLE}"),
            ],
            input: Some(input.clone()),
            output: Some(output.clone()),
            dead_letter: Some(dir.path().join(format!("{name}-dead-letter.ndjson"))),
            endpoint_url: Some(moto.endpoint()),
            enricher_binary,
            ..RunConfig::default()
        };
        let (runtime, _) = config.build().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let summary = runtime.run().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((summary.enriched, summary.failed, summary.delivered), (3, 1, 3), "{name}: {summary:?}");

        let events = read_ndjson(&output);
        let display =
            |index: usize| events[index]["details"]["entity"]["participant"][0]["individual"]["display"].clone();
        assert_eq!(
            (display(0), display(2)),
            (practitioner_display(0).into(), practitioner_display(2).into()),
            "{name}"
        );
        let missing = &events[1]["details"];
        assert_eq!(
            (&missing["command"], &missing["error"]["kind"]),
            (&"ERROR".into(), &"lookup_not_found".into()),
            "{name}"
        );
    }
}
