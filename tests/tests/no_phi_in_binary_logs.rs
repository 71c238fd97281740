//! No patient data in the logs of the shipped binaries, tried black-box: each Lambda binary
//! behind the local Lambda Runtime API (stdout and stderr, as CloudWatch Logs gets them), at
//! `RUST_LOG=trace` and at `AWS_LAMBDA_LOG_LEVEL=TRACE`, and `fhir-pipes run --enricher-binary`
//! at `RUST_LOG=trace`, on every fixture (patient data, error events) and on failing
//! invocations. Dependencies log too: `lambda_runtime` logs each invocation's raw body at trace.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use fhir_pipes::runtime::LocalLambda;
use fhir_pipes_e2e::{
    binaries::{cargo_bin, fhir_pipes},
    enrich_case,
    fhir_store::{ACCESS_KEY_ID, FhirStore, REGION, SECRET_ACCESS_KEY},
    fixture_cases, parse,
    phi::{assert_no_phi, batch_phi_values},
    read, template_path, workspace_root,
};
use fhir_pipes_enrichers::resources;
use serde_json::{Value, json};

/// The two ways a deployed function's log level is raised to the most verbose.
const TRACE_SETTINGS: [(&str, &str); 2] = [("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")];

/// A payload that is no batch but carries patient data: its invocation fails, and the error
/// must not quote it (serde's messages quote the string they met).
const NOT_A_BATCH: &str = r#""Ermintrude Scrimgeour, born 1966-02-14, 12 Grimmauld Place""#;
const NOT_A_BATCH_PHI: [&str; 3] = ["Ermintrude", "Scrimgeour", "Grimmauld"];

fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn start(binary: &Path, name: &str, env: BTreeMap<String, String>, log: &Path) -> LocalLambda {
    start_with_timeout(binary, name, env, log, Duration::from_secs(30)).await
}

async fn start_with_timeout(
    binary: &Path,
    name: &str,
    env: BTreeMap<String, String>,
    log: &Path,
    timeout: Duration,
) -> LocalLambda {
    LocalLambda::start_logging_to(binary, name, env, timeout, Some(log))
        .await
        .unwrap_or_else(|e| panic!("{name} does not start: {e}"))
}

/// Each enricher binary, each fixture of its resource as one invocation, under both trace
/// settings; then under `fail-batch`, where a bad record fails the invocation.
#[tokio::test]
async fn the_enricher_binaries_log_no_patient_data_at_trace() {
    let cases = fixture_cases();
    for resource in resources::RESOURCES {
        let binary = tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-enrichers", resource.binary)).await.unwrap();
        let payloads: Vec<String> =
            cases.iter().filter(|case| case.resource == resource.name).map(|case| case.input_text()).collect();
        let mut phi: Vec<String> =
            payloads.iter().flat_map(|p| batch_phi_values(&serde_json::from_str(p).unwrap_or(Value::Null))).collect();
        phi.extend(NOT_A_BATCH_PHI.map(str::to_owned));
        assert!(phi.len() > 10, "{}: the fixtures should carry PHI to look for", resource.name);
        let event_ids: Vec<String> = payloads
            .iter()
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .flat_map(|batch| batch.as_array().cloned().unwrap_or_default())
            .filter_map(|record| record["eventID"].as_str().map(str::to_owned))
            .collect();

        for (variable, level) in TRACE_SETTINGS {
            for policy in ["emit-error-event", "fail-batch"] {
                let dir = tempfile::tempdir().unwrap();
                let log = dir.path().join("lambda.log");
                let env = environment(&[(variable, level), ("FHIR_PIPES_ERROR_POLICY", policy)]);
                let mut lambda = start(&binary, resource.binary, env, &log).await;
                let mut failed = 0;
                for payload in payloads.iter().map(String::as_str).chain([NOT_A_BATCH]) {
                    failed += usize::from(lambda.invoke(payload.to_owned().into()).await.is_err());
                }
                lambda.shutdown().await;
                let logs = read(&log);
                let origin = format!("{} ({variable}={level}, {policy})", resource.binary);
                assert_no_phi(&logs, &phi, &origin);
                // The run was real: invocations failed, and the logs are as verbose as asked.
                assert!(failed >= 1, "{origin}: the payload that is no batch must fail");
                assert!(
                    logs.contains("Lambda runtime invoke"),
                    "{origin}: the runtime's own lines are missing:\n{logs}"
                );
                if policy == "fail-batch" {
                    assert!(logs.contains("RecordFailed"), "{origin}: no invocation failed on a bad record:\n{logs}");
                } else {
                    let logged_ids = event_ids.iter().filter(|id| logs.contains(id.as_str())).count();
                    assert!(
                        logged_ids * 10 >= event_ids.len() * 9,
                        "{origin}: {logged_ids} of {} eventIDs logged",
                        event_ids.len()
                    );
                }
            }
        }
    }
}

/// `healthlake-target` gets whole resources: written ones, a refused one (whose diagnostics
/// quote the value), ERROR events carrying their records, and a payload that is no batch.
#[tokio::test]
async fn the_healthlake_target_binary_logs_no_patient_data_at_trace() {
    let binary = tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-healthlake", "healthlake-target")).await.unwrap();
    let store = FhirStore::start();
    let mut events = Vec::new();
    let mut phi = NOT_A_BATCH_PHI.map(str::to_owned).to_vec();
    for case in fixture_cases().into_iter().filter(|case| case.resource == "patient") {
        phi.extend(batch_phi_values(&parse(&case.input_text(), &case.input)));
        // An event without a correlationId would fail the whole invocation (nothing to report it by).
        let enriched = enrich_case(&case).as_array().cloned().unwrap_or_default();
        events.extend(enriched.into_iter().filter(|e| e["correlationId"].is_string()));
    }
    // A resource the store refuses: its OperationOutcome quotes the value.
    let mut refused = events.iter().find(|e| e["details"]["command"] == "PUT").expect("a PUT event").clone();
    refused["details"]["entity"]["gender"] = json!("robotic-unicorn");
    refused["correlationId"] = json!("refused-event");
    events.push(refused);
    phi.push("robotic-unicorn".to_owned());
    assert!(events.iter().any(|e| e["details"]["command"] == "ERROR"), "the fixtures hold records that fail");

    for (variable, level) in TRACE_SETTINGS {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("lambda.log");
        let env = environment(&[
            (variable, level),
            ("FHIR_PIPES_HEALTHLAKE_ENDPOINT", &store.base_url()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_REGION", REGION),
        ]);
        let mut lambda = start(&binary, "healthlake-target", env, &log).await;
        let answer = lambda.invoke(Value::Array(events.clone()).to_string().into()).await.expect("an answer");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let failures = answer["batchItemFailures"].as_array().expect("batchItemFailures");
        assert!(failures.contains(&json!({"itemIdentifier": "refused-event"})), "{answer}");
        lambda.invoke(NOT_A_BATCH.into()).await.expect_err("no batch");
        lambda.shutdown().await;
        let logs = read(&log);
        let origin = format!("healthlake-target ({variable}={level})");
        assert_no_phi(&logs, &phi, &origin);
        assert!(logs.contains("batch written") && logs.contains("refused-event"), "{origin}: too quiet:\n{logs}");
    }
}

/// The command line at `RUST_LOG=trace`, running the Patient pipe through the real
/// `patient-enricher` binary (whose level the template's `RustLog` sets), with records that
/// fail: its stdout and stderr carry no patient data (events go to a file).
#[test]
fn fhir_pipes_run_with_the_enricher_binary_logs_no_patient_data_at_trace() {
    let enricher = cargo_bin("fhir-pipes-enrichers", "patient-enricher");
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for case in fixture_cases().into_iter().filter(|case| case.resource == "patient") {
        // The file source refuses a file with a record that is not an object.
        let batch = parse(&case.input_text(), &case.input).as_array().cloned().unwrap_or_default();
        records.extend(batch.into_iter().filter(Value::is_object));
    }
    let phi = batch_phi_values(&Value::Array(records.clone()));
    let input = dir.path().join("records.json");
    std::fs::write(&input, Value::Array(records).to_string()).unwrap();
    for policy in ["emit-error-event", "fail-batch"] {
        let output = Command::new(fhir_pipes())
            .current_dir(workspace_root())
            .env("RUST_LOG", "trace")
            .arg("run")
            .arg("--template")
            .arg(template_path())
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(dir.path().join("events.ndjson"))
            .arg("--dead-letter")
            .arg(dir.path().join("dead.ndjson"))
            .arg("--enricher-binary")
            .arg(&enricher)
            .args(["-p", "RustLog=trace", "-p", &format!("ErrorPolicy={policy}"), "-p", "BatchSize=4"])
            .args(["--backoff-base-ms", "1", "--backoff-cap-ms", "5"])
            .output()
            .expect("fhir-pipes runs");
        let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "fhir-pipes run failed:\n{logs}");
        assert_no_phi(&logs, &phi, &format!("fhir-pipes run ({policy})"));
        assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "the run logged nothing at trace:\n{logs}");
    }
}

/// `healthlake-hydrator` reads resources (GETs, searches, full-resource notifications) and gets
/// messages that may be malformed; a store that stays down fails the invocation.
#[tokio::test]
async fn the_healthlake_hydrator_binary_logs_no_patient_data_at_trace() {
    use fhir_pipes_e2e::fhir_store::{ResourceIdVisibility, Signals, SubscriptionPayload};
    let binary =
        tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-healthlake", "healthlake-hydrator")).await.unwrap();
    let store = FhirStore::start();
    let mut signals = Signals::cloud_trail(ResourceIdVisibility::Shown);
    signals.subscription = Signals::subscription(SubscriptionPayload::FullResource).subscription;
    store.configure_signals(&signals).await;
    let people = [("hyd-ermintrude", "Ermintrude", "Scrimgeour"), ("hyd-bartholomew", "Bartholomew", "Quillfeather")];
    let mut phi = NOT_A_BATCH_PHI.map(str::to_owned).to_vec();
    for (id, given, family) in people {
        let patient = json!({"resourceType": "Patient", "id": id, "name": [{"given": [given], "family": family}], "birthDate": "1931-04-17"});
        let answer = store.signed_request("PUT", &format!("Patient/{id}"), Some(&patient), SECRET_ACCESS_KEY).await;
        assert!(answer.status < 300, "{}", answer.status);
        phi.extend([id, given, family].map(str::to_owned));
    }
    phi.push("1931-04-17".to_owned());
    let mut messages: Vec<Value> = store
        .signals()
        .await
        .events
        .iter()
        .enumerate()
        .map(|(n, event)| json!({"messageId": format!("hyd-msg-{n}"), "eventSource": "aws:sqs", "body": event.to_string()}))
        .collect();
    messages.push(json!({"messageId": "hyd-msg-bad", "eventSource": "aws:sqs", "body": "Ermintrude Scrimgeour {"}));
    let batch = Value::Array(messages).to_string();

    for (variable, level) in TRACE_SETTINGS {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("lambda.log");
        let env = environment(&[
            (variable, level),
            ("FHIR_PIPES_HEALTHLAKE_ENDPOINT", &store.base_url()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_REGION", REGION),
        ]);
        // A short deadline: the store-down invocation retries until it.
        let mut lambda = start_with_timeout(&binary, "healthlake-hydrator", env, &log, Duration::from_secs(4)).await;
        let answer = lambda.invoke(batch.clone().into()).await.expect("hydrated");
        let events: Vec<Value> = serde_json::from_slice(&answer).unwrap();
        assert!(
            events.iter().any(|e| e["details"]["entity"]["name"][0]["family"] == "Scrimgeour"),
            "the events do carry PHI"
        );
        lambda.invoke(NOT_A_BATCH.into()).await.expect_err("no batch");
        store.inject(503, 10_000, Some("GET"), None).await;
        lambda.invoke(batch.clone().into()).await.expect_err("the store is down");
        store.reset().await;
        store.configure_signals(&signals).await;
        lambda.shutdown().await;
        let logs = read(&log);
        let origin = format!("healthlake-hydrator ({variable}={level})");
        assert_no_phi(&logs, &phi, &origin);
        assert!(logs.contains("batch hydrated") && logs.contains("hyd-msg-bad"), "{origin}: too quiet:\n{logs}");
        assert!(logs.contains("StoreUnavailable"), "{origin}: the failed invocation is not logged:\n{logs}");
    }
}
