//! The Patient enrichment Lambda for EventBridge Pipes. Configured by environment variables:
//! `FHIR_PIPES_SOURCE`, `FHIR_PIPES_MRN_SYSTEM`, `FHIR_PIPES_SKIP_UNCHANGED`,
//! `FHIR_PIPES_ERROR_POLICY`, `RUST_LOG` (see the README).

use fhir_pipes_enrichers::{Enricher, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let var = |name: &str| std::env::var(name).ok();
    let config = lambda::config_from_env("Patient", var)?;
    let mapping = lambda::patient_mapping(var);
    lambda::run(Enricher::new(mapping, config)).await
}
