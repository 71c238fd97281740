//! The Patient enrichment Lambda for EventBridge Pipes. Configured by environment variables:
//! `FHIR_PIPES_SOURCE`, `FHIR_PIPES_MRN_SYSTEM`, `FHIR_PIPES_SKIP_UNCHANGED`,
//! `FHIR_PIPES_ERROR_POLICY`, `RUST_LOG` (see the README).

use fhir_pipes_enrichers::lambda;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve(lambda::patient_mapping(|name| std::env::var(name).ok())).await
}
