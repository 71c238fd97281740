//! `fhir-pipes run` with the template's HealthLake target, end to end: a moto DynamoDB table's
//! stream → the pipe's filter → the real `patient-enricher` Lambda binary (local Runtime API) →
//! the HealthLake target → the local FHIR store (Medplum, SigV4-checked). The store must end up
//! holding exactly the table's current state; ERROR events and refused resources end up in the
//! dead-letter file with their records.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
};

use fhir_pipes_e2e::{
    assert_json_eq,
    binaries::{cargo_bin, fhir_pipes},
    fhir_store::{ACCESS_KEY_ID, FhirStore, REGION, SECRET_ACCESS_KEY, without_meta},
    moto::MotoServer,
    read_ndjson, template_path,
};
use serde_json::{Value, json};

const TABLE: &str = "Patients";

/// `fhir-pipes run` of the Patient pipe into `store`, with the store's credentials in the
/// environment (the standard chain reads them), plus `args`.
fn run_cli(store: &FhirStore, dir: &Path, args: &[&str]) -> (Output, Value) {
    run_cli_with_env(store, dir, args, &[])
}

/// [`run_cli`] with environment variables set over the test credentials.
fn run_cli_with_env(store: &FhirStore, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let summary = dir.join("summary.json");
    let output = Command::new(fhir_pipes())
        .arg("run")
        .arg("--template")
        .arg(template_path())
        .args(["-p", "TargetType=HealthLake", "-p"])
        .arg(format!("HealthLakeDatastoreEndpoint={}", store.base_url()))
        .args(["--region", REGION, "--quiet", "--backoff-base-ms", "1", "--backoff-cap-ms", "5"])
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.ndjson"))
        .arg("--summary-json")
        .arg(&summary)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run fhir-pipes");
    let summary = std::fs::read_to_string(&summary)
        .map(|text| serde_json::from_str(&text).expect("the summary is JSON"))
        .unwrap_or(Value::Null);
    (output, summary)
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "fhir-pipes run failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// The Patient the pipe must have written for `item`: the enricher's own output for an INSERT
/// of it (the golden tests check that mapping; this test checks what reaches the store).
fn expected_patient(item: &Value) -> Value {
    let record = json!([{
        "eventID": "expected", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": REGION,
        "dynamodb": {"Keys": {"id": item["id"]}, "NewImage": item, "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    }]);
    let resource = fhir_pipes_enrichers::resources::find("patient").expect("the patient mapping");
    let enricher = (resource.build)(&|_| None).expect("default settings");
    let events = enricher.enrich(&record.to_string()).expect("enrich");
    let event: Value = serde_json::from_str(events.events[0].get()).unwrap();
    assert_eq!(event["details"]["command"], "PUT", "{event}");
    event["details"]["entity"].clone()
}

#[tokio::test]
async fn the_store_holds_exactly_the_tables_current_state_after_a_stream_run() {
    let moto = MotoServer::start();
    let store = FhirStore::start();
    moto.create_patient_table(TABLE, true).await;
    let ids = ["hl-1", "hl-2", "hl-3", "hl-4", "hl-5", "hl-6"];
    for id in ids {
        moto.put_patient(TABLE, id, "First").await;
    }
    // Several changes of one patient in a batch must land in order; deletes of live and of
    // re-created items; an item deleted and put back.
    moto.update_last_name(TABLE, "hl-1", "Second").await;
    moto.update_last_name(TABLE, "hl-1", "Third").await;
    moto.update_unmapped_note(TABLE, "hl-2", "not in FHIR").await;
    moto.delete_patient(TABLE, "hl-3").await;
    moto.update_last_name(TABLE, "hl-4", "Gone-soon").await;
    moto.delete_patient(TABLE, "hl-4").await;
    moto.delete_patient(TABLE, "hl-5").await;
    moto.put_patient(TABLE, "hl-5", "Back").await;

    let dir = tempfile::tempdir().unwrap();
    let enricher = cargo_bin("fhir-pipes-enrichers", "patient-enricher");
    let enricher = enricher.to_str().unwrap();
    let common = ["--endpoint-url", &moto.endpoint(), "--table", TABLE, "--enricher-binary", enricher];
    let (output, summary) = run_cli(
        &store,
        dir.path(),
        &[&common[..], &["-p", "StartingPosition=TRIM_HORIZON", "-p", "BatchSize=50"]].concat(),
    );
    assert_success(&output);
    assert_eq!(summary["deadLettered"], 0, "{summary}");
    assert!(!dir.path().join("dead-letter.ndjson").exists(), "nothing is dead-lettered");

    let items = moto.scan_items(TABLE).await;
    assert_eq!(items.len(), 4, "hl-1, hl-2, hl-5, hl-6 are left");
    for item in &items {
        let id = item["id"]["S"].as_str().unwrap();
        let expected = expected_patient(item);
        let stored = store.resource("Patient", expected["id"].as_str().unwrap()).await;
        let stored = stored.unwrap_or_else(|| panic!("no Patient for item {id}"));
        assert_json_eq(&without_meta(stored), &expected, &format!("Patient of item {id}"));
    }
    // Nothing else: the deleted items' Patients are gone.
    let stored = store.resources("Patient").await;
    assert_eq!(stored.len(), items.len(), "the store holds one Patient per item and no more");
    let requests = store.requests().await;
    assert!(requests.iter().all(|r| r.signed), "every request was signed");

    // A second run from the stream's start replays every change: the end state is the same.
    let before: Vec<Value> = sorted(store.resources("Patient").await.into_iter().map(without_meta).collect());
    let (output, _) = run_cli(
        &store,
        dir.path(),
        &[&common[..], &["-p", "StartingPosition=TRIM_HORIZON", "-p", "BatchSize=3"]].concat(),
    );
    assert_success(&output);
    let after: Vec<Value> = sorted(store.resources("Patient").await.into_iter().map(without_meta).collect());
    assert_eq!(after, before, "replaying the stream leaves the store as it was");
}

fn sorted(mut resources: Vec<Value>) -> Vec<Value> {
    resources.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    resources
}

#[tokio::test]
async fn error_events_and_refused_resources_are_dead_lettered_with_their_records() {
    let store = FhirStore::start();
    let dir = tempfile::tempdir().unwrap();
    let image = |id: &str, birth_date: &str| json!({"id": {"S": id}, "firstName": {"S": "Test"}, "lastName": {"S": "Case"}, "birthDate": {"S": birth_date}});
    let record = |event_id: &str, image: &Value| {
        json!({
            "eventID": event_id, "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": REGION,
            "dynamodb": {"Keys": {"id": image["id"]}, "SizeBytes": 1, "SequenceNumber": &event_id[1..], "NewImage": image}
        })
    };
    let (ok, bad_date, refused) =
        (image("ok-1", "1980-01-02"), image("bad-date", "1980-13-45"), image("refused", "1990-05-06"));
    let records = json!([record("e1", &ok), record("e2", &bad_date), record("e3", &refused)]);
    let input = dir.path().join("records.json");
    std::fs::write(&input, records.to_string()).unwrap();
    // The store refuses the third patient (as HealthLake refuses an invalid resource).
    let refused_id = expected_patient(&refused)["id"].as_str().unwrap().to_owned();
    store.inject(400, 1, Some("PUT"), Some(("Patient", &refused_id))).await;

    let (output, summary) = run_cli(&store, dir.path(), &["--input", input.to_str().unwrap()]);
    assert_success(&output);
    assert_eq!((summary["delivered"].as_u64(), summary["deadLettered"].as_u64()), (Some(1), Some(2)), "{summary}");
    let letters = read_ndjson(&dir.path().join("dead-letter.ndjson"));
    // The file source gives records without one the pipe's source ARN, as Pipes would.
    let as_read = |record: &Value| {
        let mut record = record.clone();
        record.as_object_mut().unwrap().remove("eventSourceARN");
        record
    };
    let mut dead: Vec<(Value, String)> = letters
        .iter()
        .flat_map(|l| {
            l["records"].as_array().unwrap().iter().map(|r| (as_read(r), l["reason"].as_str().unwrap().to_owned()))
        })
        .collect();
    dead.sort_by(|a, b| a.0["eventID"].as_str().cmp(&b.0["eventID"].as_str()));
    assert_eq!(dead.len(), 2, "{letters:?}");
    assert_eq!(dead[0].0, records[1], "the ERROR event's record, unchanged");
    assert!(dead[0].1.contains("error_event"), "{}", dead[0].1);
    assert_eq!(dead[1].0, records[2], "the refused resource's record, unchanged");
    assert!(dead[1].1.contains("rejected with 400"), "{}", dead[1].1);
    // The ERROR event was not sent; the refused PUT was sent once (a 400 is not retried).
    let sent: Vec<(String, Option<u16>)> =
        store.requests().await.iter().map(|r| (r.method.clone(), r.status)).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.contains(&("PUT".to_owned(), Some(400))) && sent.contains(&("PUT".to_owned(), Some(201))), "{sent:?}");
    assert_eq!(store.resources("Patient").await.len(), 1);
}

#[tokio::test]
async fn refused_credentials_stop_the_run_instead_of_dead_lettering_every_record() {
    let store = FhirStore::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let wrong_secret = [("AWS_SECRET_ACCESS_KEY", "not-the-secret")];
    let (output, summary) = run_cli_with_env(&store, dir.path(), &["--state", state.to_str().unwrap()], &wrong_secret);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("stopped") && stderr.contains("not checkpointed"), "{stderr}");
    assert!(!dir.path().join("dead-letter.ndjson").exists(), "nothing dead-lettered");
    let checkpoints = fhir_pipes::runtime::Checkpoints::load(&state).unwrap();
    assert_eq!(checkpoints.get(fhir_pipes::source::file::FILE_SHARD_ID), None, "no batch checkpointed");
    // The summary says what was done before the stop.
    assert_eq!((summary["batches"].as_u64(), summary["delivered"].as_u64()), (Some(1), Some(0)), "{summary}");
    let statuses: Vec<Option<u16>> = store.requests().await.iter().map(|r| r.status).collect();
    assert!(!statuses.is_empty() && statuses.iter().all(|s| *s == Some(403)), "{statuses:?}");
    assert!(store.resources("Patient").await.is_empty());
}
