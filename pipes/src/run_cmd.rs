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
    /// Append the events (NDJSON) to this file, `-` for stdout [default: stdout, or the template's
    /// target with --endpoint-url, --stream-arn or --table].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// AWS endpoint, e.g. a moto server http://127.0.0.1:5000: read the pipe's DynamoDB stream
    /// (unless --input is given) and deliver to the template's target (unless --output is given).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region [default: the SDK's chain; us-east-1 with --endpoint-url].
    #[arg(long)]
    pub region: Option<String>,
    /// Read this DynamoDB stream (overrides the template's `<Resource>TableStreamArn`).
    #[arg(long, value_name = "ARN", conflicts_with = "table")]
    pub stream_arn: Option<String>,
    /// Read this table's current stream (its LatestStreamArn).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Keep polling the stream for new changes (stop with Ctrl-C) [default: stop once every shard
    /// has nothing new].
    #[arg(long)]
    pub follow: bool,
    /// Create the template's log group or event bus when it does not exist.
    #[arg(long)]
    pub create_target: bool,
    /// Send dead letters to this SQS queue (a batch it cannot take goes to --dead-letter).
    #[arg(long, value_name = "URL")]
    pub dead_letter_queue_url: Option<String>,
    /// Checkpoint state file: the last delivered sequence number per shard; a rerun resumes after it.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Dead-letter file (NDJSON, one line per failed batch with its records).
    #[arg(long, default_value = crate::runtime::DEFAULT_DEAD_LETTER_FILE)]
    pub dead_letter: PathBuf,
    /// Enrich with this Lambda binary (e.g. target/debug/patient-enricher) behind a local Runtime API.
    #[arg(long)]
    pub enricher_binary: Option<PathBuf>,
    /// Hand the records to the target as they are, as a pipe without Enrichment.
    #[arg(long, conflicts_with = "enricher_binary")]
    pub no_enrichment: bool,
    /// Run the pipe's target function (e.g. target/debug/healthlake-publisher) behind a local
    /// Runtime API, invoked REQUEST_RESPONSE; its batchItemFailures fail exactly those records.
    #[arg(long, value_name = "PATH", conflicts_with = "output")]
    pub target_binary: Option<PathBuf>,
    /// A pipe with an SQS source (HealthLakeChangePipe): read this queue [default: the template's
    /// queue, by its logical id, at --endpoint-url]. With --input, the file's EventBridge events
    /// are wrapped as the queue's messages instead.
    #[arg(long, value_name = "URL")]
    pub queue_url: Option<String>,
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
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            stream_arn: self.stream_arn.clone(),
            table: self.table.clone(),
            follow: self.follow,
            poll_interval_ms: None,
            create_target: self.create_target,
            dead_letter_queue_url: self.dead_letter_queue_url.clone(),
            queue_url: self.queue_url.clone(),
            target_binary: self.target_binary.clone(),
            no_enrichment: self.no_enrichment,
        }
    }

    /// Runs the pipe.
    pub async fn run(&self) -> anyhow::Result<()> {
        let config = self.config();
        let (runtime, pipe) = config.build().await?;
        if !self.quiet {
            let reads_queue = matches!(pipe.source, crate::template::PipeSource::SqsQueue(_));
            if self.input.is_none() && !config.reads_stream() && !reads_queue {
                eprintln!("fhir-pipes run: no --input, replaying the embedded demo batch");
            }
            // A stream named on the command line stands in for the template's stream parameter.
            let stream_given = config.stream_arn.is_some() || config.table.is_some();
            for name in pipe.placeholders.iter().filter(|name| !(stream_given && name.ends_with("TableStreamArn"))) {
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
        // What was done is reported also when the run stopped early (a target that cannot take events).
        let (summary, result) = runtime.run_to_end().await;
        if !self.quiet {
            eprintln!("fhir-pipes run: {}: {summary}", pipe.logical_id);
        }
        if let Some(path) = &self.summary_json {
            let json = serde_json::to_vec_pretty(&summary).expect("the summary serializes");
            std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(result?)
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
        let options =
            FileSourceOptions { batch_size: usize::MAX, source_arn: None, resume_after: None, as_sqs_messages: None };
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
