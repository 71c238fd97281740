//! `RunConfig`: everything `fhir-pipes run` needs, built into a [`Runtime`].

use std::path::{Path, PathBuf};

use fhir_pipes_enrichers::dynamodb_lookup::DynamoDbLookup;
use fhir_pipes_healthlake::HealthLakeConfig;
use serde::Deserialize;

use super::{
    Backoff, Checkpoints, DeadLetterFile, DeadLetterSink, Enrichment, Policy, Runtime, RuntimeError, Source, Target,
};
use crate::{
    aws::{SdkRetries, lambda_environment, sdk_config},
    source::{
        dynamodb_streams::{DynamoDbStreamsConfig, DynamoDbStreamsSource},
        file::{FILE_SHARD_ID, FileInput, FileSource, FileSourceOptions, SqsMessageWrapping},
        sqs::{SqsQueueConfig, SqsQueueSource},
    },
    target::{
        cloudwatch_logs::CloudWatchLogsConfig, eventbridge::EventBridgeConfig, healthlake::HealthLakeTarget,
        lambda::LambdaTargetConfig, ndjson::NdjsonTarget, sqs_dead_letter::SqsDeadLetterConfig,
    },
    template::{
        DEFAULT_TEMPLATE_PATH, HEALTHLAKE_HYDRATOR_BINARY, PipeDefinition, PipeSource, SqsQueueParameters, TargetKind,
        Template,
    },
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
    /// For a pipe with an SQS source, EventBridge events, each handed over as the message a rule
    /// with the queue as target would deliver.
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
    /// AWS endpoint (e.g. a moto server `http://127.0.0.1:5000`): the source becomes the pipe's
    /// DynamoDB stream (unless `input` is given) and the target the template's (unless `output`
    /// is given). Static test credentials are used when none are configured.
    pub endpoint_url: Option<String>,
    /// AWS region of the source and target (default the SDK's chain; `us-east-1` with an endpoint).
    pub region: Option<String>,
    /// Read this DynamoDB stream (overrides the template's `<Resource>TableStreamArn`).
    pub stream_arn: Option<String>,
    /// Read this table's current stream (its LatestStreamArn, by DescribeTable).
    pub table: Option<String>,
    /// Keep polling the stream for new changes; without it a stream run stops once every shard
    /// has nothing new (for scripted runs and tests).
    pub follow: bool,
    /// Wait between reads of a stream shard that had nothing new, in milliseconds (default 250).
    pub poll_interval_ms: Option<u64>,
    /// Create the template's target (log group or event bus) when it does not exist.
    pub create_target: bool,
    /// Send dead letters to this SQS queue; a batch the queue cannot take goes to `dead_letter`.
    pub dead_letter_queue_url: Option<String>,
    /// A pipe with an SQS source: read this queue (default: the template's queue, by its logical
    /// id, at `endpoint_url`).
    pub queue_url: Option<String>,
    /// Run the pipe's target function (a Lambda of the template, e.g. `healthlake-publisher`)
    /// with this binary behind a local Runtime API, invoked REQUEST_RESPONSE.
    pub target_binary: Option<PathBuf>,
    /// Hand the records to the target as they are, as a pipe without `Enrichment` would.
    pub no_enrichment: bool,
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
        let queue = match &pipe.source {
            PipeSource::SqsQueue(queue) => Some(queue),
            PipeSource::DynamoDbStream => None,
        };
        if queue.is_some() && self.state.is_some() {
            return Err(RuntimeError::Config(format!(
                "--state does not apply to pipe {}: its SQS queue is the state (delivered messages are deleted)",
                pipe.logical_id
            )));
        }
        if queue.is_none() && self.queue_url.is_some() {
            return Err(RuntimeError::Config(format!(
                "--queue-url given, but pipe {} does not read an SQS queue",
                pipe.logical_id
            )));
        }
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
            as_sqs_messages: queue.map(|_| SqsMessageWrapping {
                queue_arn: pipe.source_arn.clone(),
                region: pipe.source_arn.split(':').nth(3).unwrap_or(crate::template::LOCAL_REGION).to_owned(),
            }),
        };
        let reads_queue = queue.is_some() && self.input.is_none();
        if reads_queue && self.endpoint_url.is_none() && self.queue_url.is_none() {
            return Err(RuntimeError::Config(format!(
                "pipe {} reads an SQS queue: give --endpoint-url URL (the template's queue there) or --queue-url \
                 URL, or --input FILE of EventBridge events",
                pipe.logical_id
            )));
        }
        let source = if let (Some(queue), true) = (queue, reads_queue) {
            Source::Sqs(self.queue_source(&pipe, queue).await?)
        } else if queue.is_none() && self.reads_stream() {
            Source::DynamoDbStreams(self.stream_source(&pipe, &checkpoints).await?)
        } else {
            match input {
                FileInput::Stdin => {
                    Source::File(FileSource::stdin(&options, pipe.stream.maximum_batching_window).await?)
                }
                input => Source::File(FileSource::open(&input, &options)?),
            }
        };
        let enrichment = match (&pipe.enrichment, &self.enricher_binary) {
            (_, Some(_)) if self.no_enrichment => {
                return Err(RuntimeError::Config("give --enricher-binary or --no-enrichment, not both".to_owned()));
            }
            _ if self.no_enrichment => Enrichment::None,
            (Some(function), Some(binary)) => {
                let mut function = function.clone();
                if self.uses_aws() {
                    let aws = lambda_environment(self.endpoint_url.as_deref(), self.region.as_deref()).await;
                    function.environment.extend(aws);
                }
                Enrichment::binary(&function, binary).await?
            }
            (Some(function), None) if function.binary == HEALTHLAKE_HYDRATOR_BINARY => {
                Enrichment::hydrator(function).await?
            }
            (Some(function), None) => Enrichment::in_process(function, self.lookup_client().await)?,
            (None, Some(_)) => {
                return Err(RuntimeError::Config(format!(
                    "--enricher-binary given, but pipe {} has no Enrichment",
                    pipe.logical_id
                )));
            }
            (None, None) => Enrichment::None,
        };
        if self.output.is_some() && self.target_binary.is_some() {
            return Err(RuntimeError::Config(
                "give --output (events to NDJSON instead of the target) or --target-binary, not both".to_owned(),
            ));
        }
        let target = match &self.output {
            Some(path) if path.as_os_str() == "-" => Target::Ndjson(NdjsonTarget::stdout()),
            Some(path) => Target::Ndjson(
                NdjsonTarget::file(path)
                    .map_err(|source| RuntimeError::Output { file: path.display().to_string(), source })?,
            ),
            None if self.target_binary.is_some() => self.lambda_target(&pipe).await?,
            // A FHIR store needs no AWS endpoint: the template's HealthLake target is always used.
            None if self.uses_aws() || matches!(pipe.target.kind, TargetKind::HealthLake(_)) => {
                self.template_target(&pipe).await?
            }
            None => Target::Ndjson(NdjsonTarget::stdout()),
        };
        let dead_letter = self.dead_letter.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DEAD_LETTER_FILE));
        let dead_letters = match &self.dead_letter_queue_url {
            Some(queue_url) => {
                let queue = SqsDeadLetterConfig {
                    queue_url: queue_url.clone(),
                    endpoint_url: self.endpoint_url.clone(),
                    region: self.region.clone(),
                }
                .build()
                .await?;
                DeadLetterSink::Sqs { queue, fallback: DeadLetterFile::new(&dead_letter), used_fallback: false }
            }
            None => DeadLetterSink::File(DeadLetterFile::new(&dead_letter)),
        };
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
            dead_letters,
            policy: Policy {
                // A failed SQS batch is retried by the queue (redelivery), not here.
                max_retry_attempts: if reads_queue { 0 } else { pipe.stream.local_retry_attempts() },
                bisect: pipe.stream.bisect_on_failure,
                backoff,
                max_batches: self.max_batches,
                maximum_record_age: pipe.stream.maximum_record_age(),
            },
            progress: self.progress,
        };
        Ok((runtime, pipe))
    }

    /// True when the source is a DynamoDB stream: a stream or table is named, or an endpoint is
    /// given without an input file.
    pub fn reads_stream(&self) -> bool {
        self.stream_arn.is_some() || self.table.is_some() || (self.endpoint_url.is_some() && self.input.is_none())
    }

    /// A DynamoDB client for the enrichment's lookups when the run uses AWS or an endpoint.
    async fn lookup_client(&self) -> Option<DynamoDbLookup> {
        if !self.uses_aws() {
            return None;
        }
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Standard).await;
        Some(DynamoDbLookup::new(aws_sdk_dynamodb::Client::new(&sdk)))
    }

    /// True when AWS (or a local endpoint) is used: then the target is the template's (and
    /// the enrichment's lookups are fetched there).
    pub fn uses_aws(&self) -> bool {
        self.endpoint_url.is_some() || self.reads_stream() || self.queue_url.is_some()
    }

    /// The pipe's SQS queue: `queue_url`, else the template's queue by its logical id.
    async fn queue_source(
        &self,
        pipe: &PipeDefinition,
        queue: &SqsQueueParameters,
    ) -> Result<SqsQueueSource, RuntimeError> {
        let queue_name = match (&self.queue_url, &queue.queue) {
            (Some(_), _) => None,
            (None, Some(definition)) => Some(definition.logical_id.clone()),
            (None, None) => Some(pipe.source_arn.rsplit(':').next().unwrap_or_default().to_owned()),
        };
        let config = SqsQueueConfig {
            queue_url: self.queue_url.clone(),
            queue_name,
            batch_size: queue.batch_size,
            maximum_batching_window_in_seconds: queue.maximum_batching_window.as_secs(),
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            stop_when_idle: !self.follow,
        };
        Ok(config.build().await?)
    }

    /// The pipe's target function run from `target_binary` behind a local Runtime API, with the
    /// function's environment and, when the run uses AWS, its region, endpoint and credentials.
    async fn lambda_target(&self, pipe: &PipeDefinition) -> Result<Target, RuntimeError> {
        let (TargetKind::Lambda(function) | TargetKind::HealthLake(function)) = &pipe.target.kind else {
            return Err(RuntimeError::Config(format!(
                "--target-binary given, but pipe {}'s target {} is not a Lambda function of the template",
                pipe.logical_id, pipe.target.arn
            )));
        };
        let binary = self.target_binary.clone().expect("checked by the caller");
        let extra_environment = if self.uses_aws() {
            lambda_environment(self.endpoint_url.as_deref(), self.region.as_deref()).await
        } else {
            Vec::new()
        };
        let config = LambdaTargetConfig { function: function.clone(), binary, extra_environment };
        Ok(Target::Lambda(config.build().await?))
    }

    async fn stream_source(
        &self,
        pipe: &PipeDefinition,
        checkpoints: &Checkpoints,
    ) -> Result<DynamoDbStreamsSource, RuntimeError> {
        let (stream_arn, table_name) = match (&self.stream_arn, &self.table) {
            (Some(_), Some(_)) => {
                return Err(RuntimeError::Config("give --stream-arn or --table, not both".to_owned()));
            }
            (Some(arn), None) => (Some(arn.clone()), None),
            (None, Some(table)) => (None, Some(table.clone())),
            (None, None) => match pipe.placeholders.iter().find(|name| name.ends_with("TableStreamArn")) {
                Some(name) => {
                    return Err(RuntimeError::Config(format!(
                        "pipe {} reads {name}, which has no value: give --table NAME, --stream-arn ARN or \
                         --parameter {name}=ARN",
                        pipe.logical_id
                    )));
                }
                None => (Some(pipe.source_arn.clone()), None),
            },
        };
        let config = DynamoDbStreamsConfig {
            stream_arn,
            table_name,
            starting_position: pipe.stream.starting_position,
            batch_size: pipe.stream.batch_size,
            maximum_batching_window_in_seconds: pipe.stream.maximum_batching_window.as_secs(),
            poll_interval_ms: self.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS),
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            stop_when_idle: !self.follow,
            checkpoints: checkpoints.shards().iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        Ok(config.build().await?)
    }

    /// The template's target: its log group (CloudWatch Logs), its bus (EventBridge) or its
    /// HealthLake target Lambda's datastore.
    async fn template_target(&self, pipe: &PipeDefinition) -> Result<Target, RuntimeError> {
        match &pipe.target.kind {
            TargetKind::HealthLake(function) => {
                let mut config = HealthLakeConfig::from_env(|name| function.environment.get(name).cloned())?;
                if config.region.is_none() {
                    config.region = self.region.clone();
                }
                Ok(Target::HealthLake(Box::new(HealthLakeTarget::build(config, function.timeout).await?)))
            }
            TargetKind::LogGroup { name } => {
                let config = CloudWatchLogsConfig {
                    log_group_name: name.clone(),
                    log_stream_name: LOCAL_LOG_STREAM.to_owned(),
                    endpoint_url: self.endpoint_url.clone(),
                    region: self.region.clone(),
                    create_log_group: self.create_target,
                };
                Ok(Target::CloudWatchLogs(config.build().await?))
            }
            TargetKind::EventBus { name, detail_type, source } => {
                let missing = |field: &str| {
                    RuntimeError::Config(format!(
                        "pipe {}: the EventBridge target has no EventBridgeEventBusParameters.{field}",
                        pipe.logical_id
                    ))
                };
                let config = EventBridgeConfig {
                    event_bus_name: name.clone(),
                    detail_type: detail_type.clone().ok_or_else(|| missing("DetailType"))?,
                    source: source.clone().ok_or_else(|| missing("Source"))?,
                    endpoint_url: self.endpoint_url.clone(),
                    region: self.region.clone(),
                    create_event_bus: self.create_target,
                };
                Ok(Target::EventBridge(config.build().await?))
            }
            TargetKind::Lambda(function) => Err(RuntimeError::Config(format!(
                "pipe {}: the target is the function {} ({}): give --target-binary PATH (e.g. target/debug/{}) or \
                 --output FILE",
                pipe.logical_id, function.logical_id, function.binary, function.binary
            ))),
            TargetKind::Other => Err(RuntimeError::Config(format!(
                "pipe {}: target {} is not a log group, an event bus or the HealthLake target: use --output FILE",
                pipe.logical_id, pipe.target.arn
            ))),
        }
    }
}

/// The log stream the local runtime writes to in the template's log group.
pub const LOCAL_LOG_STREAM: &str = "fhir-pipes-local";

/// Wait between reads of an idle shard (four reads per second, like Lambda).
const DEFAULT_POLL_INTERVAL_MS: u64 = 250;
