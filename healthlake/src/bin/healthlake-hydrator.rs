//! The HealthLake change hydrator Lambda for EventBridge Pipes (the enrichment of the
//! change-capture pipe): reads each changed resource from the datastore with SigV4-signed
//! requests. Configured by environment variables: `FHIR_PIPES_HEALTHLAKE_ENDPOINT`,
//! `FHIR_PIPES_HEALTHLAKE_REGION`, `FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY`,
//! `FHIR_PIPES_HEALTHLAKE_REQUEST_TIMEOUT_MS`, `FHIR_PIPES_HYDRATOR_SOURCE`,
//! `FHIR_PIPES_HYDRATOR_MAX_PAGES`, `FHIR_PIPES_HYDRATOR_SEARCH_MARGIN_SECONDS`, `RUST_LOG`
//! (see the README).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_healthlake::hydrator::lambda::serve().await
}
