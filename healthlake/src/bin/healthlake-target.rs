//! The HealthLake target Lambda for EventBridge Pipes: writes the enriched FHIR events into a
//! HealthLake datastore with SigV4-signed requests. Configured by environment variables:
//! `FHIR_PIPES_HEALTHLAKE_ENDPOINT`, `FHIR_PIPES_HEALTHLAKE_REGION`,
//! `FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY`, `FHIR_PIPES_HEALTHLAKE_REQUEST_TIMEOUT_MS`, `RUST_LOG`
//! (see the README).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_healthlake::lambda::serve().await
}
