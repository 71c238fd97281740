//! The Encounter enrichment Lambda for EventBridge Pipes. Configured by environment variables:
//! `FHIR_PIPES_SOURCE`, `FHIR_PIPES_SKIP_UNCHANGED`, `FHIR_PIPES_ERROR_POLICY`, `RUST_LOG`, and
//! `FHIR_PIPES_PRACTITIONER_TABLE` (participants' names looked up there with BatchGetItem; see the README).

// The SDK's futures nest deeper than the default limit allows.
#![recursion_limit = "256"]

use fhir_pipes_enrichers::lambda;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve_with_lookups(lambda::encounter_mapping(|name| std::env::var(name).ok())).await
}
