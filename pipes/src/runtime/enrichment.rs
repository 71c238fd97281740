//! The enrichment step: in-process through the shipped mapping (default), or by invoking the
//! real Lambda binary behind a local Runtime API.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use fhir_pipes_enrichers::{BatchEnricher, Fetcher, LookupConfig, dynamodb_lookup::DynamoDbLookup, resources};
use fhir_pipes_healthlake::hydrator::{HydrateError, Hydrator, HydratorConfig};

use super::lambda_api::{InvokeFailure, LambdaApiError, LocalLambda};
use crate::template::EnrichmentFunction;

/// Why the enrichment cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnrichmentError {
    /// The function's environment is not valid for its mapping.
    #[error("enrichment function {function}: {message}")]
    Settings {
        /// The function's logical id.
        function: String,
        /// What is wrong.
        message: String,
    },
    /// The Lambda binary cannot be started.
    #[error(transparent)]
    Lambda(#[from] LambdaApiError),
    /// The HealthLake hydrator cannot be set up (its endpoint, region or credentials).
    #[error("enrichment function {function}: {source}")]
    Hydrator {
        /// The function's logical id.
        function: String,
        /// What is wrong.
        source: fhir_pipes_healthlake::ConfigError,
    },
}

/// A failed enrichment of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichFailure {
    /// What went wrong (error kinds and eventIDs; never record content).
    pub message: String,
    /// More for the dead letter only, never logged: a Lambda binary's own error message.
    pub detail: Option<String>,
    /// Whether trying the same batch again may succeed (a crashed or hung process). A function
    /// error (e.g. `fail-batch` on a bad record) is not: the batch is bisected instead.
    pub retryable: bool,
}

impl EnrichFailure {
    /// A failure with nothing more for the dead letter.
    fn of(message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), detail: None, retryable }
    }
}

/// The events of an enriched batch, with what happened to its records.
#[derive(Debug)]
pub struct EnrichedBatch {
    /// The events, in record order.
    pub events: Vec<Box<RawValue>>,
    /// Unchanged MODIFYs that produced no event.
    pub skipped: usize,
    /// Records that became mapping-error events.
    pub failed: usize,
}

/// How batches are enriched.
pub enum Enrichment {
    /// No enrichment: the records themselves are the events.
    None,
    /// The shipped mapping, in this process, with the fetcher of its lookups when it declares
    /// some and the run has AWS (or an endpoint) to fetch them from.
    InProcess(Box<dyn BatchEnricher>, Option<Fetcher<DynamoDbLookup>>),
    /// The HealthLake change hydrator, in this process, with the function's timeout as each
    /// batch's deadline.
    Hydrator(Box<Hydrator>, Duration),
    /// The Lambda binary behind a local Runtime API.
    Binary(Box<LocalLambda>),
}

impl std::fmt::Debug for Enrichment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Enrichment::None => f.write_str("Enrichment::None"),
            Enrichment::InProcess(enricher, lookups) => {
                let lookups = if lookups.is_some() { ", with lookups" } else { "" };
                write!(f, "Enrichment::InProcess({}{lookups})", enricher.resource_type())
            }
            Enrichment::Hydrator(..) => f.write_str("Enrichment::Hydrator"),
            Enrichment::Binary(lambda) => write!(f, "Enrichment::Binary({lambda:?})"),
        }
    }
}

impl Enrichment {
    /// The function's mapping in this process, configured by its environment (not this
    /// process's). Its lookups, if it declares any, are fetched through `lookups`; without a
    /// client the records that need one become `lookup_failed` events.
    pub fn in_process(function: &EnrichmentFunction, lookups: Option<DynamoDbLookup>) -> Result<Self, EnrichmentError> {
        let Some(resource) = function.resource_name.and_then(resources::find) else {
            return Err(EnrichmentError::Settings {
                function: function.logical_id.clone(),
                message: format!("`{}` is no shipped enrichment", function.binary),
            });
        };
        let settings = |name: &str| function.environment.get(name).cloned();
        let enricher = (resource.build)(&settings)
            .map_err(|message| EnrichmentError::Settings { function: function.logical_id.clone(), message })?;
        let fetcher = lookups.filter(|_| enricher.uses_lookups()).map(|client| LookupConfig::default().build(client));
        Ok(Self::InProcess(enricher, fetcher))
    }

    /// The HealthLake change hydrator in this process, configured by the function's environment
    /// and signing with the credentials of this process's environment (the standard chain).
    pub async fn hydrator(function: &EnrichmentFunction) -> Result<Self, EnrichmentError> {
        let error = |source| EnrichmentError::Hydrator { function: function.logical_id.clone(), source };
        let config = HydratorConfig::from_env(|name| function.environment.get(name).cloned()).map_err(error)?;
        Ok(Self::Hydrator(Box::new(config.build().await.map_err(error)?), function.timeout))
    }

    /// The function's binary at `binary`, run with the function's environment.
    pub async fn binary(function: &EnrichmentFunction, binary: &Path) -> Result<Self, EnrichmentError> {
        let lambda =
            LocalLambda::start(binary, &function.logical_id, function.environment.clone(), function.timeout).await?;
        Ok(Self::Binary(Box::new(lambda)))
    }

    /// Enriches one batch of records (handed over as the JSON array Pipes sends).
    pub async fn enrich(&mut self, records: &[&RawValue]) -> Result<EnrichedBatch, EnrichFailure> {
        match self {
            // No enrichment: the records themselves are the events.
            Enrichment::None => {
                let events = records.iter().map(|record| (*record).to_owned()).collect();
                Ok(EnrichedBatch { events, skipped: 0, failed: 0 })
            }
            Enrichment::InProcess(enricher, lookups) => {
                let batch = batch_json(records);
                let enriched = match lookups {
                    Some(fetcher) => enricher.enrich_with_lookups(&batch, fetcher).await,
                    None => enricher.enrich(&batch),
                };
                match enriched {
                    Ok(enriched) => Ok(EnrichedBatch {
                        events: enriched.events,
                        skipped: enriched.counts.skipped,
                        failed: enriched.counts.failed,
                    }),
                    Err(error) => Err(EnrichFailure::of(format!("{}: {error}", error.kind()), false)),
                }
            }
            Enrichment::Hydrator(hydrator, timeout) => {
                match hydrator.hydrate(&batch_json(records), Instant::now() + *timeout).await {
                    Ok(hydrated) => {
                        let failed = hydrated.counts.unreadable;
                        Ok(EnrichedBatch { events: hydrated.events, skipped: 0, failed })
                    }
                    // The store may answer on a later try; a batch that is no batch never will.
                    Err(error) => {
                        let retryable = !matches!(error, HydrateError::NotABatch(_));
                        Err(EnrichFailure::of(format!("{}: {error}", error.kind()), retryable))
                    }
                }
            }
            Enrichment::Binary(lambda) => match lambda.invoke(Bytes::from(batch_json(records))).await {
                Ok(body) => {
                    let events: Vec<Box<RawValue>> = serde_json::from_slice(&body).map_err(|error| {
                        let message = format!(
                            "the function's response is not a JSON array of events (line {} column {})",
                            error.line(),
                            error.column()
                        );
                        EnrichFailure::of(message, false)
                    })?;
                    let failed = events.iter().filter(|event| is_error_event(event)).count();
                    Ok(EnrichedBatch { skipped: records.len().saturating_sub(events.len()), failed, events })
                }
                Err(InvokeFailure::Function(error)) => Err(EnrichFailure {
                    message: format!("the function failed with {}", error.error_type),
                    detail: Some(error.to_string()),
                    retryable: false,
                }),
                Err(InvokeFailure::Runtime(message)) => Err(EnrichFailure::of(message, true)),
            },
        }
    }

    /// Stops a Lambda binary, if one runs.
    pub async fn shutdown(&mut self) {
        if let Enrichment::Binary(lambda) = self {
            lambda.shutdown().await;
        }
    }
}

/// The records as the JSON array Pipes hands the enrichment.
fn batch_json(records: &[&RawValue]) -> String {
    let mut batch = String::with_capacity(2 + records.iter().map(|r| r.get().len() + 1).sum::<usize>());
    batch.push('[');
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            batch.push(',');
        }
        batch.push_str(record.get());
    }
    batch.push(']');
    batch
}

/// Whether an envelope is a mapping-error event (`details.command` is `ERROR`).
fn is_error_event(event: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        details: Option<Details<'a>>,
    }
    #[derive(Deserialize)]
    struct Details<'a> {
        #[serde(borrow)]
        command: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Envelope<'_>>(event.get())
        .ok()
        .and_then(|e| e.details)
        .and_then(|d| d.command)
        .is_some_and(|command| command == "ERROR")
}
