//! The dead-letter file: one NDJSON line per batch the pipe gave up on, with the reason, the
//! shard, the sequence range and the records themselves, so nothing is lost.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::value::RawValue;

/// Why a dead-letter line cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the dead-letter file {file}: {source}")]
pub struct DeadLetterError {
    /// The file.
    pub file: String,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Where the pipe gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The enrichment failed for these records.
    Enrichment,
    /// The target did not accept their events.
    Delivery,
    /// The records were older than the pipe's MaximumRecordAgeInSeconds.
    Expired,
}

impl Stage {
    /// Its name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Enrichment => "enrichment",
            Stage::Delivery => "delivery",
            Stage::Expired => "expired",
        }
    }
}

/// One dead-lettered batch: a line of the dead-letter file, the body of an SQS dead letter.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter<'a> {
    /// The pipe's logical id.
    pub pipe: &'a str,
    /// Where it failed.
    pub stage: Stage,
    /// Why: error kinds and counts, plus, for a target's per-event failures, its detail (e.g.
    /// the FHIR store's diagnostics, which may quote values of the records the letter carries).
    pub reason: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The shard of the records.
    pub shard_id: &'a str,
    /// Sequence number of the first record.
    pub first_sequence_number: Option<&'a str>,
    /// Sequence number of the last record.
    pub last_sequence_number: Option<&'a str>,
    /// How many records.
    pub record_count: usize,
    /// The records, unchanged.
    pub records: &'a [&'a RawValue],
}

/// An append-only NDJSON dead-letter file, created at the first dead letter.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl DeadLetterFile {
    /// A dead-letter file at `path` (not created until needed).
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), file: None }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and flushes it to disk before returning (the checkpoint follows).
    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<(), DeadLetterError> {
        let error = |source| DeadLetterError { file: self.path.display().to_string(), source };
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(error)?;
                self.file.insert(BufWriter::new(file))
            }
        };
        let mut line = serde_json::to_vec(letter).expect("dead letters serialize");
        line.push(b'\n');
        file.write_all(&line).and_then(|()| file.flush()).and_then(|()| file.get_ref().sync_data()).map_err(error)
    }
}
