//! The Organization enrichment Lambda for EventBridge Pipes. Configured by environment variables:
//! `FHIR_PIPES_SOURCE`, `FHIR_PIPES_SKIP_UNCHANGED`, `FHIR_PIPES_ERROR_POLICY`, `RUST_LOG` (see the README).

use fhir_pipes_enrichers::lambda;
use fhir_pipes_mappings::OrganizationMapping;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::serve(OrganizationMapping).await
}
