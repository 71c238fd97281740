//! `RunConfig`: everything `fhir-pipes run` needs, built into a [`Runtime`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    Backoff, Checkpoints, DeadLetterFile, DeadLetterSink, Enrichment, Policy, Runtime, RuntimeError, Source, Target,
};
use crate::{
    source::file::{FILE_SHARD_ID, FileInput, FileSource, FileSourceOptions},
    target::ndjson::NdjsonTarget,
    template::{DEFAULT_TEMPLATE_PATH, PipeDefinition, Template},
};

/// The demo batch read when no input is given.
pub fn embedded_demo_input() -> FileInput {
    FileInput::Embedded(crate::enrich_cmd::DEMO_PATIENT_BATCH)
}

/// Default dead-letter file, in the working directory.
pub const DEFAULT_DEAD_LETTER_FILE: &str = "fhir-pipes-dead-letter.ndjson";

/// Settings of a local run of one pipe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RunConfig {
    /// The template file; default `pipes/template.yaml` if it exists, else the embedded copy.
    pub template: Option<PathBuf>,
    /// The pipe's logical id; default the template's first `AWS::Pipes::Pipe`.
    pub pipe: Option<String>,
    /// Template parameter overrides, `Key=Value`.
    pub parameters: Vec<String>,
    /// Records to read: a JSON array or NDJSON file, `-` for stdin; default the embedded demo batch.
    pub input: Option<PathBuf>,
    /// Where to append the events as NDJSON; default stdout.
    pub output: Option<PathBuf>,
    /// Checkpoint state file (`{shard: last sequence number}`); a restart resumes after it.
    pub state: Option<PathBuf>,
    /// Dead-letter file (NDJSON); default `fhir-pipes-dead-letter.ndjson`, created when needed.
    pub dead_letter: Option<PathBuf>,
    /// Run this Lambda binary behind a local Runtime API instead of enriching in-process.
    pub enricher_binary: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop after this many source batches (simulates an interrupted run).
    pub max_batches: Option<usize>,
    /// Longest sleep before the first retry, in milliseconds (default 100).
    pub backoff_base_ms: Option<u64>,
    /// Longest sleep before any retry, in milliseconds (default 20000).
    pub backoff_cap_ms: Option<u64>,
}

impl RunConfig {
    /// Reads the template and resolves the pipe.
    pub fn pipe_definition(&self) -> Result<PipeDefinition, RuntimeError> {
        let template = match &self.template {
            Some(path) => Template::load(path)?,
            None if Path::new(DEFAULT_TEMPLATE_PATH).exists() => Template::load(Path::new(DEFAULT_TEMPLATE_PATH))?,
            None => Template::embedded()?,
        };
        Ok(template.pipe(self.pipe.as_deref(), &self.parameters)?)
    }

    /// Builds the runtime: reads the template, the checkpoint and the input, starts the
    /// enricher binary if one is given.
    pub async fn build(&self) -> Result<(Runtime, PipeDefinition), RuntimeError> {
        let pipe = self.pipe_definition()?;
        let checkpoints = match &self.state {
            Some(path) => Checkpoints::load(path)?,
            None => Checkpoints::in_memory(),
        };
        let input = match &self.input {
            None => super::embedded_demo_input(),
            Some(path) if path.as_os_str() == "-" => FileInput::Stdin,
            Some(path) => FileInput::Path(path.clone()),
        };
        let options = FileSourceOptions {
            batch_size: pipe.stream.batch_size,
            source_arn: Some(pipe.source_arn.clone()),
            resume_after: checkpoints.get(FILE_SHARD_ID).map(str::to_owned),
        };
        let source = match input {
            FileInput::Stdin => Source::File(FileSource::stdin(&options, pipe.stream.maximum_batching_window).await?),
            input => Source::File(FileSource::open(&input, &options)?),
        };
        let enrichment = match (&pipe.enrichment, &self.enricher_binary) {
            (Some(function), Some(binary)) => Enrichment::binary(function, binary).await?,
            (Some(function), None) => Enrichment::in_process(function)?,
            (None, Some(_)) => {
                return Err(RuntimeError::Config(format!(
                    "--enricher-binary given, but pipe {} has no Enrichment",
                    pipe.logical_id
                )));
            }
            (None, None) => Enrichment::None,
        };
        let target = match &self.output {
            Some(path) => Target::Ndjson(
                NdjsonTarget::file(path)
                    .map_err(|source| RuntimeError::Output { file: path.display().to_string(), source })?,
            ),
            None => Target::Ndjson(NdjsonTarget::stdout()),
        };
        let dead_letter = self.dead_letter.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DEAD_LETTER_FILE));
        let defaults = Backoff::default();
        let backoff = Backoff {
            base: self.backoff_base_ms.map_or(defaults.base, std::time::Duration::from_millis),
            cap: self.backoff_cap_ms.map_or(defaults.cap, std::time::Duration::from_millis),
        };
        let runtime = Runtime {
            pipe: pipe.logical_id.clone(),
            source,
            filters: pipe.filters.clone(),
            enrichment,
            target,
            checkpoints,
            dead_letters: DeadLetterSink::File(DeadLetterFile::new(&dead_letter)),
            policy: Policy {
                max_retry_attempts: pipe.stream.local_retry_attempts(),
                bisect: pipe.stream.bisect_on_failure,
                backoff,
                max_batches: self.max_batches,
                maximum_record_age: pipe.stream.maximum_record_age(),
            },
            progress: self.progress,
        };
        Ok((runtime, pipe))
    }
}
