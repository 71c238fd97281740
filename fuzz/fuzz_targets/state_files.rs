//! The local runtime's files: the checkpoint state file (`Checkpoints::load`, then a commit and a
//! reload), the file of records the pipe reads (`FileSource::open`, resuming after the loaded
//! checkpoint) and the dead-letter file those records go to (`DeadLetterFile::write`, read
//! back). The input is the state file's text, then, after an optional NUL byte, the records
//! file's text. Never a panic; `Err` is fine. Files live in /dev/shm (fsync costs nothing there).

#![no_main]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use fhir_pipes::{
    runtime::{Checkpoints, DeadLetter, DeadLetterFile, Stage},
    source::file::{FileInput, FileSource, FileSourceOptions, SqsMessageWrapping},
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, value::RawValue};

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("fhir-pipes-fuzz-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, bytes).expect("scratch file written");
    path
}

fuzz_target!(|data: &[u8]| {
    let (state, records) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };

    // The checkpoint state file.
    let state_path = write("state.json", state);
    let resume_after = match Checkpoints::load(&state_path) {
        Ok(mut checkpoints) => {
            let mut expected: BTreeMap<String, String> = checkpoints.shards().clone();
            for (shard, sequence) in &expected {
                assert_eq!(checkpoints.get(shard), Some(sequence.as_str()));
            }
            let resume_after = checkpoints.get("file").map(str::to_owned);
            checkpoints.commit("shardId-fuzz", "42").expect("a commit to a writable directory");
            expected.insert("shardId-fuzz".to_owned(), "42".to_owned());
            let reloaded = Checkpoints::load(&state_path).expect("a committed state file reloads");
            assert_eq!(reloaded.shards(), &expected, "the committed state reloads as written");
            resume_after
        }
        Err(error) => {
            let _ = error.to_string();
            None
        }
    };

    // The file of records, read as `fhir-pipes run --input` reads it.
    let records_path = write("records.json", records);
    let input = FileInput::Path(records_path);
    let plain = FileSourceOptions {
        batch_size: 10,
        source_arn: Some("arn:aws:dynamodb:us-east-1:000000000000:table/Fuzz/stream/1".to_owned()),
        resume_after,
        as_sqs_messages: None,
    };
    let wrapped = FileSourceOptions {
        as_sqs_messages: Some(SqsMessageWrapping {
            queue_arn: "arn:aws:sqs:us-east-1:000000000000:fuzz".to_owned(),
            region: "us-east-1".to_owned(),
        }),
        ..plain.clone()
    };
    let _ = FileSource::open(&input, &wrapped).map(|source| source.into_records().count());
    let Ok(source) = FileSource::open(&input, &plain) else { return };
    let read: Vec<Box<RawValue>> = source.into_records().collect();
    for record in &read {
        assert!(!record.get().contains('\n'), "records are handed over on one line");
        serde_json::from_str::<Value>(record.get()).expect("a record read is JSON");
    }

    // The dead-letter file: one line per letter, read back.
    let records: Vec<&RawValue> = read.iter().map(|r| &**r).collect();
    let letter = DeadLetter {
        pipe: "FuzzPipe",
        stage: Stage::Delivery,
        reason: "fuzz",
        attempts: 1,
        shard_id: "file",
        first_sequence_number: None,
        last_sequence_number: None,
        record_count: records.len(),
        records: &records,
    };
    let dead_letters = dir().join("dead-letters.ndjson");
    let _ = std::fs::remove_file(&dead_letters);
    let mut file = DeadLetterFile::new(&dead_letters);
    file.write(&letter).expect("a dead letter written");
    drop(file);
    let text = std::fs::read_to_string(&dead_letters).expect("the dead-letter file reads");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line per dead letter");
    let line: Value = serde_json::from_str(lines[0]).expect("a dead-letter line is JSON");
    assert_eq!(line["records"].as_array().map(Vec::len), Some(records.len()));
});
