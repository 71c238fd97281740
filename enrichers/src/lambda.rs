//! The Lambda side: configuration from the environment, JSON logging, the handler.
//!
//! Each resource's binary is `run(mapping_from_env()?)`; everything it does is here and
//! unit-tested by calling [`handle`] with `Context::default()`.

use std::{
    future::Future,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing::{Instrument, error, info_span};

use fhir_pipes_core::logging::init_lambda_logging;
use fhir_pipes_mappings::{EncounterMapping, Mapping, PatientMapping};

use crate::{
    EnrichConfig, EnrichError, Enriched, Enricher, ErrorPolicy, Fetcher, LookupClient, LookupConfig,
    dynamodb_lookup::DynamoDbLookup,
};

/// Environment variable naming the envelope `source`.
pub const ENV_SOURCE: &str = "FHIR_PIPES_SOURCE";
/// Environment variable: `true` (default) drops MODIFYs that do not change the FHIR resource.
pub const ENV_SKIP_UNCHANGED: &str = "FHIR_PIPES_SKIP_UNCHANGED";
/// Environment variable: `emit-error-event` (default) or `fail-batch`.
pub const ENV_ERROR_POLICY: &str = "FHIR_PIPES_ERROR_POLICY";
/// Environment variable of the Patient MRN identifier system.
pub const ENV_MRN_SYSTEM: &str = "FHIR_PIPES_MRN_SYSTEM";
/// Environment variable of the practitioners' table the Encounter Lambda looks participants up in
/// (their names become `participant.individual.display`); unset, no lookup is made.
pub const ENV_PRACTITIONER_TABLE: &str = "FHIR_PIPES_PRACTITIONER_TABLE";

/// Reads the enrichment settings for `resource_type` through `var` (the environment, or a
/// map in tests). Unset variables keep their defaults; invalid ones are errors.
pub fn config_from_env(resource_type: &str, var: impl Fn(&str) -> Option<String>) -> Result<EnrichConfig, String> {
    let mut config = EnrichConfig::for_resource(resource_type);
    if let Some(source) = var(ENV_SOURCE).filter(|s| !s.trim().is_empty()) {
        config.source = source;
    }
    if let Some(skip) = var(ENV_SKIP_UNCHANGED) {
        config.skip_unchanged =
            parse_bool(&skip).ok_or_else(|| format!("{ENV_SKIP_UNCHANGED} must be true or false"))?;
    }
    if let Some(policy) = var(ENV_ERROR_POLICY) {
        config.error_policy = policy.parse::<ErrorPolicy>().map_err(|e| format!("{ENV_ERROR_POLICY}: {e}"))?;
    }
    Ok(config)
}

/// The Patient mapping with its settings read through `var`.
pub fn patient_mapping(var: impl Fn(&str) -> Option<String>) -> PatientMapping {
    let mut mapping = PatientMapping::default();
    if let Some(system) = var(ENV_MRN_SYSTEM).filter(|s| !s.trim().is_empty()) {
        mapping.mrn_system = system;
    }
    mapping
}

/// The Encounter mapping with its settings read through `var`.
pub fn encounter_mapping(var: impl Fn(&str) -> Option<String>) -> EncounterMapping {
    EncounterMapping { practitioner_table: var(ENV_PRACTITIONER_TABLE).filter(|s| !s.trim().is_empty()) }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The Lambda handler: enriches the batch Pipes sent, logs counts and prints one EMF line.
pub async fn handle<M: Mapping>(
    enricher: &Enricher<M>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Vec<Box<RawValue>>, EnrichError> {
    respond::<M>(&event.context.request_id, async { enricher.enrich(event.payload.get()) }).await
}

/// The Lambda handler of a mapping with lookups: fetches the batch's related records through
/// `fetcher`, then as [`handle`].
pub async fn handle_with_lookups<M: Mapping, C: LookupClient>(
    enricher: &Enricher<M>,
    fetcher: &Fetcher<C>,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Vec<Box<RawValue>>, EnrichError> {
    respond::<M>(&event.context.request_id, enricher.enrich_with_lookups(event.payload.get(), fetcher)).await
}

async fn respond<M: Mapping>(
    request_id: &str,
    enrich: impl Future<Output = Result<Enriched, EnrichError>>,
) -> Result<Vec<Box<RawValue>>, EnrichError> {
    let span = info_span!("invocation", request_id = %request_id, resource = M::RESOURCE_TYPE);
    async {
        let started = Instant::now();
        match enrich.await {
            Ok(enriched) => {
                let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                println!("{}", enriched.counts.emf_line(M::RESOURCE_TYPE, now_ms, elapsed_ms));
                Ok(enriched.events)
            }
            Err(failure) => {
                error!(kind = failure.kind(), error = %failure, "invocation failed");
                Err(failure)
            }
        }
    }
    .instrument(span)
    .await
}

impl From<EnrichError> for Diagnostic {
    fn from(error: EnrichError) -> Self {
        Diagnostic { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

/// The whole `main` of a resource's Lambda: logging, settings from the environment, then
/// [`run`]. Mappings with settings of their own read them before (see `patient-enricher`).
pub async fn serve<M: Mapping>(mapping: M) -> Result<(), lambda_runtime::Error> {
    init_lambda_logging();
    let config = config_from_env(M::RESOURCE_TYPE, |name| std::env::var(name).ok())?;
    run(Enricher::new(mapping, config)).await
}

/// Like [`serve`] for a mapping that may declare lookups: when it does (as configured), a
/// DynamoDB client of the Lambda's role fetches them (`BatchGetItem`, batched per invocation).
pub async fn serve_with_lookups<M: Mapping>(mapping: M) -> Result<(), lambda_runtime::Error> {
    init_lambda_logging();
    let config = config_from_env(M::RESOURCE_TYPE, |name| std::env::var(name).ok())?;
    let enricher = Enricher::new(mapping, config);
    if !enricher.mapping().uses_lookups() {
        return run(enricher).await;
    }
    let fetcher = LookupConfig::default().build(DynamoDbLookup::from_env().await);
    let (enricher, fetcher) = (&enricher, &fetcher);
    lambda_runtime::run(service_fn(move |event| handle_with_lookups(enricher, fetcher, event))).await
}

/// Runs `enricher` as a Lambda function until the runtime stops it.
pub async fn run<M: Mapping>(enricher: Enricher<M>) -> Result<(), lambda_runtime::Error> {
    let enricher = &enricher;
    lambda_runtime::run(service_fn(move |event| handle(enricher, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn config_defaults_and_overrides() {
        let config = config_from_env("Patient", env(&[])).unwrap();
        assert_eq!(config, EnrichConfig::for_resource("Patient"));
        assert_eq!(config.source, "PatientTable");
        let config = config_from_env(
            "Patient",
            env(&[(ENV_SOURCE, "Clinic"), (ENV_SKIP_UNCHANGED, "false"), (ENV_ERROR_POLICY, "fail-batch")]),
        )
        .unwrap();
        assert_eq!(
            (config.source.as_str(), config.skip_unchanged, config.error_policy),
            ("Clinic", false, ErrorPolicy::FailBatch)
        );
        assert!(config_from_env("Patient", env(&[(ENV_ERROR_POLICY, "drop")])).unwrap_err().contains("drop"));
        assert!(config_from_env("Patient", env(&[(ENV_SKIP_UNCHANGED, "maybe")])).is_err());
    }

    fn event(json: &str) -> LambdaEvent<Box<RawValue>> {
        LambdaEvent::new(RawValue::from_string(json.to_owned()).unwrap(), Context::default())
    }

    #[tokio::test]
    async fn handler_returns_one_event_per_record() {
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let batch = r#"[{"eventID":"e1","eventName":"INSERT","dynamodb":{"NewImage":{"id":{"S":"p1"},"firstName":{"S":"A"},"lastName":{"S":"B"},"birthDate":{"S":"2000-01-02"}}}},
                        {"eventID":"e2","eventName":"REMOVE","dynamodb":{"Keys":{"id":{"S":"p1"}}}}]"#;
        let events = handle(&enricher, event(batch)).await.unwrap();
        let events: Vec<serde_json::Value> = events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["details"]["command"], "PUT");
        assert_eq!(events[1]["details"]["entity"], serde_json::json!({"resourceType":"Patient","id":"p1"}));
    }

    #[tokio::test]
    async fn handler_fails_the_invocation_on_a_non_array_with_a_typed_diagnostic() {
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let error = handle(&enricher, event(r#"{"Records":[]}"#)).await.unwrap_err();
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "NotABatch");
        assert!(diagnostic.error_message.contains("JSON array"));
    }
}
