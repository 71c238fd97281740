//! Pipe definitions read out of a CloudFormation/SAM template (`pipes/template.yaml`), so the
//! local runtime runs the same pipe that is deployed: its source parameters, filter criteria,
//! enrichment function (binary and environment) and target.
//!
//! ```
//! use fhir_pipes::template::Template;
//!
//! let template = Template::embedded()?;
//! let pipe = template.pipe(None, &[])?;
//! assert_eq!(pipe.logical_id, "PatientPipe");
//! assert_eq!(pipe.enrichment.as_ref().unwrap().binary, "patient-enricher");
//! # Ok::<(), fhir_pipes::template::TemplateError>(())
//! ```

mod error;
mod resolve;

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::Value;

pub use error::TemplateError;
pub use resolve::{LOCAL_ACCOUNT_ID, LOCAL_REGION, LOCAL_STACK_NAME};
use resolve::{Scope, scalar_text};

use crate::filter::FilterSet;

/// `pipes/template.yaml`, embedded so `fhir-pipes run` works from any directory.
pub const EMBEDDED_TEMPLATE: &str = include_str!("../../template.yaml");

/// The default template path, relative to the repository root.
pub const DEFAULT_TEMPLATE_PATH: &str = "pipes/template.yaml";

/// The most retries the local runtime makes; `-1` (retry until the record expires) is capped to it.
pub const LOCAL_MAX_RETRY_ATTEMPTS: u32 = 10;

/// A parsed template (intrinsics not yet resolved).
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

impl Template {
    /// Parses YAML (or JSON) template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| TemplateError::Yaml(e.to_string()))?;
        let root = resolve::yaml_to_json(yaml, "")?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err(TemplateError::invalid("Resources", "the template has no Resources section"));
        }
        Ok(Self { root })
    }

    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { file: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// The embedded `pipes/template.yaml`.
    pub fn embedded() -> Result<Self, TemplateError> {
        Self::parse(EMBEDDED_TEMPLATE)
    }

    /// The logical ids of the template's `AWS::Pipes::Pipe` resources, in template order.
    pub fn pipe_ids(&self) -> Vec<String> {
        self.resources()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Pipes::Pipe"))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.root.get("Resources").and_then(Value::as_object).into_iter().flatten()
    }

    /// Parameter values: `overrides` (`Key=Value`) over defaults; a required parameter without
    /// default gets a local placeholder (listed in [`PipeDefinition::placeholders`]).
    fn parameters(&self, overrides: &[String]) -> Result<(BTreeMap<String, Value>, Vec<String>), TemplateError> {
        let declared = self.root.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut given = BTreeMap::new();
        for item in overrides {
            let (key, value) = item.split_once('=').ok_or_else(|| TemplateError::ParameterSyntax(item.clone()))?;
            if !declared.contains_key(key) {
                let declared = declared.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(TemplateError::UnknownParameter { name: key.to_owned(), declared });
            }
            given.insert(key.to_owned(), value.to_owned());
        }
        let mut values = BTreeMap::new();
        let mut placeholders = Vec::new();
        for (name, declaration) in &declared {
            let path = format!("Parameters.{name}");
            let text = match (given.remove(name), declaration.get("Default")) {
                (Some(value), _) => value,
                (None, Some(default)) => scalar_text(default, &path)?,
                (None, None) => {
                    placeholders.push(name.clone());
                    placeholder(name)
                }
            };
            if let Some(allowed) = declaration.get("AllowedValues").and_then(Value::as_array) {
                let allowed: Vec<String> = allowed.iter().filter_map(|v| scalar_text(v, &path).ok()).collect();
                if !allowed.contains(&text) {
                    return Err(TemplateError::invalid(
                        &path,
                        format!("`{text}` is not one of the allowed values: {}", allowed.join(", ")),
                    ));
                }
            }
            let kind = declaration.get("Type").and_then(Value::as_str).unwrap_or("String");
            let value = if kind.starts_with("List<") || kind == "CommaDelimitedList" {
                Value::Array(text.split(',').map(|s| Value::String(s.trim().to_owned())).collect())
            } else {
                Value::String(text)
            };
            values.insert(name.clone(), value);
        }
        Ok((values, placeholders))
    }

    /// The pipe `logical_id` (default: the first `AWS::Pipes::Pipe`, by logical id, that these
    /// parameters create) with `parameters` (`Key=Value`) resolved into a runnable definition.
    pub fn pipe(&self, logical_id: Option<&str>, parameters: &[String]) -> Result<PipeDefinition, TemplateError> {
        let ids = self.pipe_ids();
        let (values, placeholders) = self.parameters(parameters)?;
        let scope = Scope::new(&self.root, values);
        let created = |id: &str| -> Result<Option<String>, TemplateError> {
            match self.root["Resources"][id].get("Condition").and_then(Value::as_str) {
                Some(condition) if !scope.condition(condition, &format!("Resources.{id}.Condition"), 0)? => {
                    Ok(Some(condition.to_owned()))
                }
                _ => Ok(None),
            }
        };
        let id = match logical_id {
            Some(id) if ids.iter().any(|p| p == id) => {
                if let Some(condition) = created(id)? {
                    return Err(TemplateError::invalid(
                        &format!("Resources.{id}.Condition"),
                        format!("the pipe is not created with these parameters ({condition} is false)"),
                    ));
                }
                id.to_owned()
            }
            Some(id) => {
                return Err(TemplateError::PipeNotFound { requested: id.to_owned(), available: ids.join(", ") });
            }
            None => {
                let mut enabled = None;
                for id in &ids {
                    if created(id)?.is_none() {
                        enabled = Some(id.clone());
                        break;
                    }
                }
                match enabled {
                    Some(id) => id,
                    None if ids.is_empty() => return Err(TemplateError::NoPipe),
                    None => return Err(TemplateError::NoPipeCreated { pipes: ids.join(", ") }),
                }
            }
        };
        let base = format!("Resources.{id}.Properties");
        let raw = self.root["Resources"][&id].get("Properties").cloned().unwrap_or_default();
        let properties = scope.resolve_present(&raw, &base)?;
        let field = |path: &[&str]| -> Option<&Value> { path.iter().try_fold(&properties, |v, key| v.get(key)) };
        let at = |path: &[&str]| format!("{base}.{}", path.join("."));

        let source_arn = match field(&["Source"]) {
            Some(value) => scalar_text(value, &at(&["Source"]))?,
            None => return Err(TemplateError::invalid(&at(&["Source"]), "the pipe has no Source")),
        };
        let is_queue =
            field(&["SourceParameters", "SqsQueueParameters"]).is_some() || source_arn.split(':').nth(2) == Some("sqs");
        let (source, stream) = if is_queue {
            let queue = SqsQueueParameters::read(
                self,
                &scope,
                &properties,
                &source_arn,
                &at(&["SourceParameters", "SqsQueueParameters"]),
            )?;
            let stream = queue.batching();
            (PipeSource::SqsQueue(queue), stream)
        } else {
            let stream = StreamParameters::read(&properties, &at(&["SourceParameters", "DynamoDBStreamParameters"]))?;
            (PipeSource::DynamoDbStream, stream)
        };

        let filter_path = at(&["SourceParameters", "FilterCriteria", "Filters"]);
        let mut filter_patterns = Vec::new();
        if let Some(filters) = field(&["SourceParameters", "FilterCriteria", "Filters"]) {
            let filters =
                filters.as_array().ok_or_else(|| TemplateError::invalid(&filter_path, "Filters must be a list"))?;
            for (i, filter) in filters.iter().enumerate() {
                let path = format!("{filter_path}[{i}].Pattern");
                let pattern = filter.get("Pattern").ok_or_else(|| TemplateError::invalid(&path, "missing Pattern"))?;
                filter_patterns.push(scalar_text(pattern, &path)?);
            }
        }
        let filters =
            FilterSet::parse(&filter_patterns).map_err(|source| TemplateError::Filter { path: filter_path, source })?;

        let enrichment = match field(&["Enrichment"]) {
            Some(arn) => {
                Some(self.enrichment(&scope, &scalar_text(arn, &at(&["Enrichment"]))?, &at(&["Enrichment"]))?)
            }
            None => None,
        };

        let target_path = at(&["Target"]);
        let target_arn = match field(&["Target"]) {
            Some(value) => scalar_text(value, &target_path)?,
            None => return Err(TemplateError::invalid(&target_path, "the pipe has no Target")),
        };
        let mut target = TargetDefinition::from_arn(&target_arn, field(&["TargetParameters"]), &target_path)?;
        let is_template_function = |arn: &str| {
            let name = arn.rsplit(':').next().unwrap_or_default();
            arn.split(':').nth(2) == Some("lambda") && self.root["Resources"].get(name).is_some()
        };
        if is_template_function(&target_arn) {
            let function = self.function(&scope, &target_arn, &target_path)?;
            target.kind = if function.binary == HEALTHLAKE_TARGET_BINARY {
                TargetKind::HealthLake(function)
            } else {
                let invocation_type = field(&["TargetParameters", "LambdaFunctionParameters", "InvocationType"])
                    .map(|value| scalar_text(value, &at(&["TargetParameters", "LambdaFunctionParameters"])))
                    .transpose()?;
                if invocation_type.as_deref().is_some_and(|kind| kind != "REQUEST_RESPONSE") {
                    return Err(TemplateError::invalid(
                        &at(&["TargetParameters", "LambdaFunctionParameters", "InvocationType"]),
                        "only REQUEST_RESPONSE runs locally (a FIRE_AND_FORGET target reports no failures)",
                    ));
                }
                TargetKind::Lambda(function)
            };
        }

        Ok(PipeDefinition {
            logical_id: id,
            source_arn,
            source,
            stream,
            filter_patterns,
            filters,
            enrichment,
            target,
            placeholders,
        })
    }

    /// The function behind an enrichment ARN synthesised for a template function.
    fn enrichment(&self, scope: &Scope<'_>, arn: &str, path: &str) -> Result<EnrichmentFunction, TemplateError> {
        let function = self.function(scope, arn, path)?;
        let resource = match fhir_pipes_enrichers::resources::find(&function.binary) {
            Some(resource) => Some(resource.name),
            None if function.binary == HEALTHLAKE_HYDRATOR_BINARY => None,
            None => {
                let mut known: Vec<&str> = fhir_pipes_enrichers::RESOURCES.iter().map(|r| r.binary).collect();
                known.push(HEALTHLAKE_HYDRATOR_BINARY);
                return Err(TemplateError::UnknownEnricher {
                    path: format!("Resources.{}.Properties.CodeUri", function.logical_id),
                    binary: function.binary.clone(),
                    known: known.join(", "),
                });
            }
        };
        Ok(EnrichmentFunction {
            logical_id: function.logical_id,
            binary: function.binary,
            resource_name: resource,
            environment: function.environment,
            timeout: function.timeout,
        })
    }

    /// The template function an ARN synthesised for it names.
    fn function(&self, scope: &Scope<'_>, arn: &str, path: &str) -> Result<FunctionDefinition, TemplateError> {
        let name = arn.rsplit(':').next().unwrap_or_default();
        let resource = self
            .root
            .get("Resources")
            .and_then(|r| r.get(name))
            .filter(|r| {
                matches!(
                    r.get("Type").and_then(Value::as_str),
                    Some("AWS::Serverless::Function" | "AWS::Lambda::Function")
                )
            })
            .ok_or_else(|| TemplateError::invalid(path, format!("`{arn}` is not a function of this template")))?;
        let base = format!("Resources.{name}.Properties");
        // Only what a local run uses is resolved (not, say, the IAM policies).
        let used = |properties: Option<&Value>| -> Value {
            let keep = ["CodeUri", "Environment", "Timeout"];
            let used = properties.and_then(Value::as_object).map(|p| {
                p.iter().filter(|(k, _)| keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
            });
            used.map_or(Value::Null, Value::Object)
        };
        let properties = scope.resolve_present(&used(resource.get("Properties")), &base)?;
        let globals = match self.root.get("Globals").and_then(|g| g.get("Function")) {
            Some(globals) => scope.resolve_present(&used(Some(globals)), "Globals.Function")?,
            None => Value::Null,
        };
        let code_uri = properties
            .get("CodeUri")
            .and_then(Value::as_str)
            .ok_or_else(|| TemplateError::invalid(&format!("{base}.CodeUri"), "a local path is needed"))?;
        let binary = code_uri.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        let mut environment = BTreeMap::new();
        for (source, source_path) in [(&globals, "Globals.Function"), (&properties, base.as_str())] {
            if let Some(variables) = source.pointer("/Environment/Variables").and_then(Value::as_object) {
                for (key, value) in variables {
                    let path = format!("{source_path}.Environment.Variables.{key}");
                    environment.insert(key.clone(), scalar_text(value, &path)?);
                }
            }
        }
        let timeout = properties
            .get("Timeout")
            .or_else(|| globals.get("Timeout"))
            .map(|v| number(v, &format!("{base}.Timeout")))
            .transpose()?
            .unwrap_or(3);
        Ok(FunctionDefinition {
            logical_id: name.to_owned(),
            binary,
            environment,
            timeout: Duration::from_secs(timeout.max(1) as u64),
        })
    }
}

/// The local stand-in for a required parameter without a default.
fn placeholder(name: &str) -> String {
    if name.ends_with("StreamArn") {
        format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/local-placeholder/stream/{name}")
    } else {
        format!("local-placeholder-{name}")
    }
}

fn number(value: &Value, path: &str) -> Result<i64, TemplateError> {
    scalar_text(value, path)?.trim().parse().map_err(|_| TemplateError::invalid(path, "expected an integer"))
}

/// A pipe, resolved and ready to run locally.
#[derive(Debug, Clone)]
pub struct PipeDefinition {
    /// The pipe's logical id.
    pub logical_id: String,
    /// The source ARN (a DynamoDB stream or an SQS queue), given to records that lack `eventSourceARN`.
    pub source_arn: String,
    /// What the pipe reads, with the source's own parameters.
    pub source: PipeSource,
    /// `SourceParameters.DynamoDBStreamParameters`. For an SQS pipe, its batching
    /// (`SqsQueueParameters`) and, as retries of a file run, the queue's `maxReceiveCount` − 1
    /// ([`SqsQueueParameters::batching`]).
    pub stream: StreamParameters,
    /// `FilterCriteria.Filters[].Pattern`, as written.
    pub filter_patterns: Vec<String>,
    /// The compiled patterns.
    pub filters: FilterSet,
    /// The enrichment function, if the pipe has one.
    pub enrichment: Option<EnrichmentFunction>,
    /// Where events go.
    pub target: TargetDefinition,
    /// Required parameters that got a local placeholder value.
    pub placeholders: Vec<String>,
}

/// What a pipe reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeSource {
    /// A DynamoDB stream (`DynamoDBStreamParameters`, in [`PipeDefinition::stream`]).
    DynamoDbStream,
    /// An SQS queue (`SqsQueueParameters`).
    SqsQueue(SqsQueueParameters),
}

/// `SqsQueueParameters` of a pipe, with the queue when it is one of the template's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueueParameters {
    /// `BatchSize` (1-10000; default 10).
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds` (0-300; default 0).
    pub maximum_batching_window: Duration,
    /// The template's `AWS::SQS::Queue` the pipe reads, when `Source` is one.
    pub queue: Option<QueueDefinition>,
}

/// An `AWS::SQS::Queue` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDefinition {
    /// Its logical id, which is also its name locally (`Ref` gives a URL ending in it).
    pub logical_id: String,
    /// `VisibilityTimeout` in seconds (SQS's default 30 when absent).
    pub visibility_timeout_seconds: u32,
    /// `RedrivePolicy.maxReceiveCount`, when the queue has a dead-letter queue.
    pub max_receive_count: Option<u32>,
    /// The logical id of the dead-letter queue (`RedrivePolicy.deadLetterTargetArn`).
    pub dead_letter_queue: Option<String>,
}

/// SQS's visibility timeout when a queue sets none.
const SQS_DEFAULT_VISIBILITY_TIMEOUT: u32 = 30;

impl SqsQueueParameters {
    fn read(
        template: &Template,
        scope: &Scope<'_>,
        properties: &Value,
        source_arn: &str,
        path: &str,
    ) -> Result<Self, TemplateError> {
        let parameters = properties.pointer("/SourceParameters/SqsQueueParameters").unwrap_or(&Value::Null);
        let int = |key: &str, default: i64| -> Result<i64, TemplateError> {
            parameters.get(key).map(|v| number(v, &format!("{path}.{key}"))).transpose().map(|v| v.unwrap_or(default))
        };
        let batch_size = int("BatchSize", 10)?;
        if !(1..=10_000).contains(&batch_size) {
            return Err(TemplateError::invalid(&format!("{path}.BatchSize"), "must be 1-10000"));
        }
        let window = int("MaximumBatchingWindowInSeconds", 0)?;
        if !(0..=300).contains(&window) {
            return Err(TemplateError::invalid(&format!("{path}.MaximumBatchingWindowInSeconds"), "must be 0-300"));
        }
        let name = source_arn.rsplit(':').next().unwrap_or_default();
        let queue = match template.root["Resources"].get(name) {
            Some(resource) if resource.get("Type").and_then(Value::as_str) == Some("AWS::SQS::Queue") => {
                Some(QueueDefinition::read(scope, name, resource)?)
            }
            _ => None,
        };
        Ok(Self { batch_size: batch_size as usize, maximum_batching_window: Duration::from_secs(window as u64), queue })
    }

    /// The batching as [`StreamParameters`] for the runtime: a file run retries a failed batch
    /// as often as the queue would hand it out again (`maxReceiveCount` − 1; none without a
    /// redrive policy), unbisected (Pipes does not bisect SQS batches).
    pub fn batching(&self) -> StreamParameters {
        let receives = self.queue.as_ref().and_then(|queue| queue.max_receive_count).unwrap_or(1);
        StreamParameters {
            starting_position: StartingPosition::Latest,
            batch_size: self.batch_size,
            maximum_batching_window: self.maximum_batching_window,
            maximum_retry_attempts: i64::from(receives.saturating_sub(1)),
            maximum_record_age_seconds: -1,
            bisect_on_failure: false,
            dead_letter_arn: None,
        }
    }
}

impl QueueDefinition {
    fn read(scope: &Scope<'_>, name: &str, resource: &Value) -> Result<Self, TemplateError> {
        let base = format!("Resources.{name}.Properties");
        let properties = match resource.get("Properties") {
            Some(properties) => scope.resolve_present(properties, &base)?,
            None => Value::Null,
        };
        let visibility_timeout_seconds = match properties.get("VisibilityTimeout") {
            Some(value) => u32::try_from(number(value, &format!("{base}.VisibilityTimeout"))?)
                .map_err(|_| TemplateError::invalid(&format!("{base}.VisibilityTimeout"), "must be 0-43200"))?,
            None => SQS_DEFAULT_VISIBILITY_TIMEOUT,
        };
        let redrive = properties.get("RedrivePolicy");
        let max_receive_count = redrive
            .and_then(|r| r.get("maxReceiveCount"))
            .map(|value| {
                let path = format!("{base}.RedrivePolicy.maxReceiveCount");
                u32::try_from(number(value, &path)?).map_err(|_| TemplateError::invalid(&path, "must be 1-1000"))
            })
            .transpose()?;
        let dead_letter_queue = redrive
            .and_then(|r| r.get("deadLetterTargetArn"))
            .and_then(Value::as_str)
            .and_then(|arn| arn.rsplit(':').next())
            .map(str::to_owned);
        Ok(Self { logical_id: name.to_owned(), visibility_timeout_seconds, max_receive_count, dead_letter_queue })
    }
}

/// Where a new pipe starts reading a stream: the stream source's own setting.
pub use crate::source::dynamodb_streams::StartingPosition;

/// `DynamoDBStreamParameters` of a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamParameters {
    /// `StartingPosition`.
    pub starting_position: StartingPosition,
    /// `BatchSize` (1-10000; default 10).
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub maximum_batching_window: Duration,
    /// `MaximumRetryAttempts` as written (-1 = until the record expires).
    pub maximum_retry_attempts: i64,
    /// `MaximumRecordAgeInSeconds` (-1 = no limit).
    pub maximum_record_age_seconds: i64,
    /// `OnPartialBatchItemFailure` is `AUTOMATIC_BISECT`.
    pub bisect_on_failure: bool,
    /// `DeadLetterConfig.Arn`.
    pub dead_letter_arn: Option<String>,
}

impl StreamParameters {
    fn read(properties: &Value, path: &str) -> Result<Self, TemplateError> {
        let parameters = properties.pointer("/SourceParameters/DynamoDBStreamParameters").unwrap_or(&Value::Null);
        let get = |key: &str| parameters.get(key);
        let int = |key: &str, default: i64| -> Result<i64, TemplateError> {
            get(key).map(|v| number(v, &format!("{path}.{key}"))).transpose().map(|v| v.unwrap_or(default))
        };
        let starting_position = match get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") | None => StartingPosition::Latest,
            Some(other) => {
                return Err(TemplateError::invalid(
                    &format!("{path}.StartingPosition"),
                    format!("`{other}` is not LATEST or TRIM_HORIZON"),
                ));
            }
        };
        let batch_size = int("BatchSize", 10)?;
        if !(1..=10_000).contains(&batch_size) {
            return Err(TemplateError::invalid(&format!("{path}.BatchSize"), "must be 1-10000"));
        }
        let window = int("MaximumBatchingWindowInSeconds", 0)?;
        if !(0..=300).contains(&window) {
            return Err(TemplateError::invalid(&format!("{path}.MaximumBatchingWindowInSeconds"), "must be 0-300"));
        }
        let bisect = match get("OnPartialBatchItemFailure").and_then(Value::as_str) {
            Some("AUTOMATIC_BISECT") => true,
            None => false,
            Some(other) => {
                return Err(TemplateError::invalid(
                    &format!("{path}.OnPartialBatchItemFailure"),
                    format!("`{other}` is not AUTOMATIC_BISECT"),
                ));
            }
        };
        Ok(Self {
            starting_position,
            batch_size: batch_size as usize,
            maximum_batching_window: Duration::from_secs(window as u64),
            maximum_retry_attempts: int("MaximumRetryAttempts", -1)?,
            maximum_record_age_seconds: int("MaximumRecordAgeInSeconds", -1)?,
            bisect_on_failure: bisect,
            dead_letter_arn: parameters.pointer("/DeadLetterConfig/Arn").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// `MaximumRecordAgeInSeconds` as a duration; `None` for -1 (no limit).
    pub fn maximum_record_age(&self) -> Option<Duration> {
        u64::try_from(self.maximum_record_age_seconds).ok().map(Duration::from_secs)
    }

    /// The retry limit used locally: `-1` (unbounded) is capped at [`LOCAL_MAX_RETRY_ATTEMPTS`].
    pub fn local_retry_attempts(&self) -> u32 {
        u32::try_from(self.maximum_retry_attempts).unwrap_or(LOCAL_MAX_RETRY_ATTEMPTS)
    }
}

/// The pipe's enrichment function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentFunction {
    /// Its logical id.
    pub logical_id: String,
    /// The Lambda binary, the last segment of `CodeUri` (e.g. `patient-enricher`).
    pub binary: String,
    /// The shipped resource it maps in process (`fhir_pipes_enrichers::resources::find`);
    /// `None` for the HealthLake change hydrator ([`HEALTHLAKE_HYDRATOR_BINARY`]), which maps
    /// nothing.
    pub resource_name: Option<&'static str>,
    /// `Environment.Variables`, resolved, over `Globals.Function.Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// The invocation timeout (`Timeout`, default 3 s).
    pub timeout: Duration,
}

/// The binary of the HealthLake target Lambda (the last segment of its `CodeUri`).
pub const HEALTHLAKE_TARGET_BINARY: &str = "healthlake-target";

/// The binary of the HealthLake change capture hydrator (an enrichment that reads HealthLake).
pub const HEALTHLAKE_HYDRATOR_BINARY: &str = "healthlake-hydrator";

/// A Lambda function of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDefinition {
    /// Its logical id.
    pub logical_id: String,
    /// The Lambda binary, the last segment of `CodeUri`.
    pub binary: String,
    /// `Environment.Variables`, resolved, over `Globals.Function.Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// The invocation timeout (`Timeout`, default 3 s).
    pub timeout: Duration,
}

/// The pipe's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDefinition {
    /// The target ARN.
    pub arn: String,
    /// What kind of target, with its parameters.
    pub kind: TargetKind,
}

/// The kinds of target the local runtime knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A CloudWatch log group.
    LogGroup {
        /// The log group name.
        name: String,
    },
    /// An EventBridge event bus.
    EventBus {
        /// The bus name.
        name: String,
        /// `EventBridgeEventBusParameters.DetailType`.
        detail_type: Option<String>,
        /// `EventBridgeEventBusParameters.Source`.
        source: Option<String>,
    },
    /// The template's HealthLake target Lambda (`healthlake-target`), with its settings.
    HealthLake(FunctionDefinition),
    /// Another Lambda function of the template, invoked `REQUEST_RESPONSE` (e.g. the
    /// `healthlake-publisher`): locally its binary runs behind a local Runtime API (`--target-binary`).
    Lambda(FunctionDefinition),
    /// Anything else (only the local stdout/file target can stand in for it).
    Other,
}

impl TargetDefinition {
    fn from_arn(arn: &str, parameters: Option<&Value>, path: &str) -> Result<Self, TemplateError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() < 6 || parts[0] != "arn" {
            return Err(TemplateError::invalid(path, format!("`{arn}` is not an ARN")));
        }
        let kind = match parts[2] {
            "logs" => {
                let name = parts[5].strip_prefix("log-group:").unwrap_or(parts[5]);
                TargetKind::LogGroup { name: name.strip_suffix(":*").unwrap_or(name).to_owned() }
            }
            "events" => {
                let bus = parameters.and_then(|p| p.get("EventBridgeEventBusParameters"));
                let text = |key: &str| bus.and_then(|b| b.get(key)).and_then(Value::as_str).map(str::to_owned);
                TargetKind::EventBus {
                    name: parts[5].strip_prefix("event-bus/").unwrap_or(parts[5]).to_owned(),
                    detail_type: text("DetailType"),
                    source: text("Source"),
                }
            }
            _ => TargetKind::Other,
        };
        Ok(Self { arn: arn.to_owned(), kind })
    }
}

#[cfg(test)]
mod tests;
