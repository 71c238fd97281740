//! `fhir-pipes run` (a pipe of the template, locally) and `fhir-pipes filter` (test event
//! patterns on records, like `aws events test-event-pattern`).

use std::{
    io::{self, IsTerminal, Read, Write},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::Args;

use crate::{
    filter::FilterSet,
    runtime::RunConfig,
    source::file::{FileInput, FileSource, FileSourceOptions},
};

/// Arguments of `fhir-pipes run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SAM/CloudFormation template [default: pipes/template.yaml, else the embedded copy].
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Logical id of the AWS::Pipes::Pipe to run [default: the first one].
    #[arg(long)]
    pub pipe: Option<String>,
    /// Template parameter override, Key=Value (repeatable), e.g. --parameter BatchSize=10.
    #[arg(long = "parameter", short = 'p', value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// Stream records: a JSON array or NDJSON file, `-` for stdin [default: the embedded demo batch].
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Append the events (NDJSON) to this file [default: stdout].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Checkpoint state file: the last delivered sequence number per shard; a rerun resumes after it.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Dead-letter file (NDJSON, one line per failed batch with its records).
    #[arg(long, default_value = crate::runtime::DEFAULT_DEAD_LETTER_FILE)]
    pub dead_letter: PathBuf,
    /// Enrich with this Lambda binary (e.g. target/debug/patient-enricher) behind a local Runtime API.
    #[arg(long)]
    pub enricher_binary: Option<PathBuf>,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Stop after this many source batches (simulates an interrupted run).
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// Longest sleep before the first retry, in milliseconds (full jitter, doubling per retry).
    #[arg(long, default_value_t = 100)]
    pub backoff_base_ms: u64,
    /// Longest sleep before any retry, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    pub backoff_cap_ms: u64,
}

impl RunArgs {
    /// The runtime settings these arguments give.
    pub fn config(&self) -> RunConfig {
        RunConfig {
            template: self.template.clone(),
            pipe: self.pipe.clone(),
            parameters: self.parameters.clone(),
            input: self.input.clone(),
            output: self.output.clone(),
            state: self.state.clone(),
            dead_letter: Some(self.dead_letter.clone()),
            enricher_binary: self.enricher_binary.clone(),
            progress: !self.quiet && io::stderr().is_terminal(),
            max_batches: self.max_batches,
            backoff_base_ms: Some(self.backoff_base_ms),
            backoff_cap_ms: Some(self.backoff_cap_ms),
        }
    }

    /// Runs the pipe.
    pub async fn run(&self) -> anyhow::Result<()> {
        let (runtime, pipe) = self.config().build().await?;
        if !self.quiet {
            if self.input.is_none() {
                eprintln!("fhir-pipes run: no --input, replaying the embedded demo batch");
            }
            for name in &pipe.placeholders {
                eprintln!(
                    "fhir-pipes run: parameter {name} has no value; using a local placeholder (--parameter {name}=...)"
                );
            }
            if pipe.stream.maximum_retry_attempts < 0 {
                eprintln!(
                    "fhir-pipes run: MaximumRetryAttempts is -1 (until the record expires); capped at {} locally",
                    crate::template::LOCAL_MAX_RETRY_ATTEMPTS
                );
            }
        }
        let summary = runtime.run().await?;
        if !self.quiet {
            eprintln!("fhir-pipes run: {}: {summary}", pipe.logical_id);
        }
        if let Some(path) = &self.summary_json {
            let json = serde_json::to_vec_pretty(&summary).expect("the summary serializes");
            std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Arguments of `fhir-pipes filter`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// A file holding one event pattern (JSON), as in a Pipe's FilterCriteria.Filters[].Pattern.
    #[arg(long)]
    pub pattern: PathBuf,
    /// Records: a JSON array or NDJSON file, `-` for stdin [default: stdin].
    pub input: Option<PathBuf>,
}

/// Exit code of `fhir-pipes filter` for an invalid pattern.
pub const INVALID_PATTERN_EXIT_CODE: i32 = 2;

impl FilterArgs {
    /// Prints the matching records as NDJSON. `Err` with a message for an invalid pattern.
    pub fn run(&self) -> anyhow::Result<Result<(), String>> {
        let mut text = String::new();
        std::fs::File::open(&self.pattern)
            .and_then(|mut file| file.read_to_string(&mut text))
            .with_context(|| format!("cannot read the pattern {}", self.pattern.display()))?;
        let filters = match FilterSet::parse(&[text.trim()]) {
            Ok(filters) => filters,
            Err(error) => return Ok(Err(format!("invalid pattern in {}: {error}", self.pattern.display()))),
        };
        let input = match &self.input {
            Some(path) if path.as_os_str() != "-" => FileInput::Path(path.clone()),
            _ => FileInput::Stdin,
        };
        let options = FileSourceOptions { batch_size: usize::MAX, source_arn: None, resume_after: None };
        let source = FileSource::open(&input, &options)?;
        let mut out = io::BufWriter::new(io::stdout().lock());
        for record in source.into_records() {
            let value: serde_json::Value = serde_json::from_str(record.get()).expect("checked JSON");
            if filters.matches(&value) {
                out.write_all(record.get().as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        Ok(Ok(()))
    }
}
