//! `fhir-pipes run` and `fhir-pipes filter` end to end: the runtime called as a library on the
//! real template, the built CLI, and the real `patient-enricher` binary behind the local
//! Lambda Runtime API.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

use fhir_pipes::runtime::{RunConfig, Summary};
use fhir_pipes_e2e::{
    assert_json_eq,
    binaries::{cargo_bin, fhir_pipes},
    fixtures_dir, parse, read, read_ndjson, template_path, workspace_root,
};

fn demo_expected() -> Vec<Value> {
    let path = fixtures_dir().join("patient/demo.expected.json");
    match parse(&read(&path), &path) {
        Value::Array(events) => events,
        other => panic!("{} is not an array: {other}", path.display()),
    }
}

fn config(dir: &Path) -> RunConfig {
    RunConfig {
        template: Some(template_path()),
        output: Some(dir.join("events.ndjson")),
        dead_letter: Some(dir.join("dead-letter.ndjson")),
        backoff_base_ms: Some(1),
        backoff_cap_ms: Some(5),
        ..RunConfig::default()
    }
}

async fn run(config: &RunConfig) -> Summary {
    let (runtime, _) = config.build().await.unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
    runtime.run().await.unwrap_or_else(|e| panic!("the run failed: {e}"))
}

#[tokio::test]
async fn the_embedded_default_delivers_the_enriched_demo_batch() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&config(dir.path())).await;
    // The pipe's filter passes INSERT, MODIFY and REMOVE: every demo record reaches the enricher.
    assert_json_eq(
        &Value::Array(read_ndjson(&dir.path().join("events.ndjson"))),
        &Value::Array(demo_expected()),
        "demo",
    );
    assert_eq!((summary.read, summary.filtered_out, summary.enriched, summary.skipped), (5, 0, 4, 1));
    assert_eq!((summary.failed, summary.delivered, summary.dead_lettered, summary.retried), (1, 4, 0, 0));
    assert!(!dir.path().join("dead-letter.ndjson").exists());
}

#[tokio::test]
async fn the_filter_of_the_template_applies() {
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig { parameters: vec!["StreamEventNames=INSERT,MODIFY".into()], ..config(dir.path()) };
    let summary = run(&config).await;
    let expected: Vec<Value> = demo_expected().into_iter().filter(|e| e["metadata"]["eventName"] != "REMOVE").collect();
    assert_json_eq(&Value::Array(read_ndjson(&dir.path().join("events.ndjson"))), &Value::Array(expected), "no REMOVE");
    assert_eq!((summary.read, summary.filtered_out, summary.delivered), (5, 1, 3));
}

#[test]
fn the_cli_with_no_arguments_runs_the_demo_to_stdout_from_any_directory() {
    let binary = fhir_pipes();
    let elsewhere = tempfile::tempdir().unwrap();
    for cwd in [workspace_root(), elsewhere.path().to_path_buf()] {
        let output = Command::new(&binary).arg("run").current_dir(&cwd).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "from {}: {stderr}", cwd.display());
        let events: Vec<Value> =
            String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_json_eq(&Value::Array(events), &Value::Array(demo_expected()), "stdout");
        assert!(stderr.contains("5 read, 0 filtered out, 4 enriched, 1 skipped, 1 failed, 4 delivered"), "{stderr}");
        // No PHI on stderr: the demo's names and dates stay in the events.
        for phi in ["Rosalind", "Hartwell", "1958", "Crickhollow", "555-0199"] {
            assert!(!stderr.contains(phi), "stderr leaks {phi}: {stderr}");
        }
    }
    assert!(!elsewhere.path().join("fhir-pipes-dead-letter.ndjson").exists());
}

#[test]
fn a_stopped_run_resumes_from_its_checkpoint_without_loss() {
    let binary = fhir_pipes();
    let dir = tempfile::tempdir().unwrap();
    let (output, state) = (dir.path().join("events.ndjson"), dir.path().join("state.json"));
    let run = |extra: &[&str]| {
        let status = Command::new(&binary)
            .args(["run", "--quiet", "--parameter", "BatchSize=2", "--output"])
            .arg(&output)
            .arg("--state")
            .arg(&state)
            .args(extra)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    };
    run(&["--max-batches", "1"]);
    let first = read_ndjson(&output);
    assert_eq!(first.len(), 1, "the first batch holds an INSERT and an unchanged MODIFY");
    let checkpoint: Value = parse(&read(&state), &state);
    assert_eq!(checkpoint, serde_json::json!({"file": "900000000000000000000002"}));
    run(&[]);
    let all = read_ndjson(&output);
    // The resumed run started after the checkpoint: every change exactly once, in order.
    assert_json_eq(&Value::Array(all), &Value::Array(demo_expected()), "resumed output");
    // A third run finds nothing new.
    run(&[]);
    assert_eq!(read_ndjson(&output).len(), 4);
}

#[test]
fn fhir_pipes_filter_prints_the_matching_records() {
    let binary = fhir_pipes();
    let dir = tempfile::tempdir().unwrap();
    let demo = fixtures_dir().join("patient/demo.input.json");
    let table: &[(&str, &[&str])] = &[
        (r#"{"eventName": ["REMOVE"]}"#, &["d0e0000000000000000000000000005e"]),
        (r#"{"eventName": [{"anything-but": ["INSERT", "MODIFY"]}]}"#, &["d0e0000000000000000000000000005e"]),
        (
            r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"gender": {"S": ["F"]}}}}"#,
            &["d0e0000000000000000000000000001a"],
        ),
        (
            r#"{"dynamodb": {"Keys": {"id": {"S": [{"prefix": "demo-000"}]}}}, "eventName": ["MODIFY"]}"#,
            &["d0e0000000000000000000000000002b", "d0e0000000000000000000000000003c"],
        ),
        (
            r#"{"dynamodb": {"OldImage": {"id": {"S": [{"exists": false}]}}}}"#,
            &[
                "d0e0000000000000000000000000001a",
                "d0e0000000000000000000000000004d",
                "d0e0000000000000000000000000005e",
            ],
        ),
        (r#"{"eventName": ["TRUNCATE"]}"#, &[]),
    ];
    for (index, (pattern, expected)) in table.iter().enumerate() {
        let pattern_file = dir.path().join(format!("pattern-{index}.json"));
        std::fs::write(&pattern_file, pattern).unwrap();
        let output =
            Command::new(&binary).arg("filter").arg("--pattern").arg(&pattern_file).arg(&demo).output().unwrap();
        assert!(output.status.success(), "{pattern}: {}", String::from_utf8_lossy(&output.stderr));
        let ids: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["eventID"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, *expected, "{pattern}");
    }
    // NDJSON on stdin works too.
    let pattern_file = dir.path().join("pattern-0.json");
    let records: Vec<Value> = serde_json::from_str(&read(&demo)).unwrap();
    let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
    let mut child = Command::new(&binary)
        .arg("filter")
        .arg("--pattern")
        .arg(&pattern_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(ndjson.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 1);
}

#[test]
fn fhir_pipes_filter_rejects_an_invalid_pattern_with_exit_code_2() {
    let binary = fhir_pipes();
    let dir = tempfile::tempdir().unwrap();
    for (pattern, says) in [
        (r#"{"eventName": "INSERT"}"#, "$.eventName"),
        (r#"{"eventName": [{"contains": "x"}]}"#, "unknown operator"),
        ("{not json", "not valid JSON"),
    ] {
        let pattern_file = dir.path().join("pattern.json");
        std::fs::write(&pattern_file, pattern).unwrap();
        let output = Command::new(&binary)
            .arg("filter")
            .arg("--pattern")
            .arg(&pattern_file)
            .arg(fixtures_dir().join("patient/demo.input.json"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{pattern}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains("pattern.json"), "{pattern}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn the_real_lambda_binary_gives_the_same_events_as_in_process() {
    let enricher = tokio::task::spawn_blocking(|| cargo_bin("fhir-pipes-enrichers", "patient-enricher")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let in_process_dir = dir.path().join("in-process");
    let binary_dir = dir.path().join("binary");
    std::fs::create_dir_all(&in_process_dir).unwrap();
    std::fs::create_dir_all(&binary_dir).unwrap();
    let parameters = vec!["BatchSize=2".to_owned()];
    let in_process = run(&RunConfig { parameters: parameters.clone(), ..config(&in_process_dir) }).await;
    let with_binary =
        run(&RunConfig { parameters, enricher_binary: Some(enricher.clone()), ..config(&binary_dir) }).await;
    let events = read_ndjson(&binary_dir.join("events.ndjson"));
    assert_json_eq(&Value::Array(events), &Value::Array(read_ndjson(&in_process_dir.join("events.ndjson"))), "binary");
    assert_eq!(
        (with_binary.enriched, with_binary.skipped, with_binary.failed, with_binary.delivered),
        (in_process.enriched, in_process.skipped, in_process.failed, in_process.delivered)
    );
    assert_eq!(with_binary.batches, 3);

    // fail-batch through the binary: its /error answers make the runtime bisect down to the bad record.
    let fail_dir = dir.path().join("fail-batch");
    std::fs::create_dir_all(&fail_dir).unwrap();
    let config = RunConfig {
        parameters: vec!["ErrorPolicy=fail-batch".into(), "BatchSize=5".into()],
        enricher_binary: Some(enricher),
        ..config(&fail_dir)
    };
    let summary = run(&config).await;
    assert_eq!((summary.delivered, summary.dead_lettered), (3, 1));
    let letters = read_ndjson(&fail_dir.join("dead-letter.ndjson"));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["records"][0]["eventID"], "d0e0000000000000000000000000004d");
    assert!(letters[0]["reason"].as_str().unwrap().contains("RecordFailed"), "{}", letters[0]["reason"]);
}

#[test]
fn live_ndjson_on_stdin_is_batched_by_the_batching_window() {
    use std::io::{BufRead, BufReader};
    let binary = fhir_pipes();
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let records: Vec<Value> = serde_json::from_str(&read(&fixtures_dir().join("patient/demo.input.json"))).unwrap();
    let mut child = Command::new(&binary)
        .args(["run", "--quiet", "--input", "-", "--parameter", "BatchSize=10", "--summary-json"])
        .arg(&summary_path)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Records 0 and 3 (an INSERT and a bad INSERT): two events, though the batch is not full.
    writeln!(stdin, "{}\n{}", records[0], records[3]).unwrap();
    stdin.flush().unwrap();
    // Should the window never close the batch, a watchdog ends the input after a minute; the
    // batch count below then shows it.
    let (finished, done) = std::sync::mpsc::channel::<()>();
    let stdin = std::sync::Arc::new(std::sync::Mutex::new(Some(stdin)));
    let held = std::sync::Arc::clone(&stdin);
    std::thread::spawn(move || {
        if done.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            held.lock().unwrap().take();
        }
    });
    let mut first = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        first.push(serde_json::from_str::<Value>(&line).unwrap()["correlationId"].clone());
    }
    finished.send(()).unwrap();
    let stdin = stdin.lock().unwrap().take();
    if let Some(mut stdin) = stdin {
        writeln!(stdin, "{}", records[4]).unwrap();
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(first, ["d0e0000000000000000000000000001a", "d0e0000000000000000000000000004d"]);
    assert_eq!(rest.lines().count(), 1);
    let summary: Summary = serde_json::from_str(&read(&summary_path)).unwrap();
    assert_eq!((summary.batches, summary.read, summary.delivered), (2, 3, 3));
}

/// Regression: with stdout closed (`fhir-pipes run | head -1`), the run retried writing to the
/// broken pipe with backoff for half a minute, then dead-lettered batches no one had refused.
#[test]
fn regression_a_closed_stdout_stops_the_run_instead_of_retrying_and_dead_lettering() {
    let binary = fhir_pipes();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&binary)
        .args(["run", "--quiet", "--parameter", "BatchSize=1", "--state", "state.json"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("broken pipe") && stderr.contains("not checkpointed"), "{stderr}");
    assert!(!stderr.contains("retry") && !stderr.contains("delivery failed"), "{stderr}");
    assert!(!dir.path().join(fhir_pipes::runtime::DEFAULT_DEAD_LETTER_FILE).exists(), "nothing dead-lettered");
    // The first batch hit the closed pipe and is not checkpointed: a rerun re-delivers it.
    let checkpoints = fhir_pipes::runtime::Checkpoints::load(&dir.path().join("state.json")).unwrap();
    assert_eq!(checkpoints.get(fhir_pipes::source::file::FILE_SHARD_ID), None);
}
