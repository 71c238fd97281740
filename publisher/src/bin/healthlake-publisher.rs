//! The HealthLake change publisher Lambda, the target of the change-capture Pipe: puts the
//! hydrated change events on a custom EventBridge bus, each idempotency key once. Configured by
//! environment variables: `FHIR_PIPES_PUBLISHER_EVENT_BUS`, `FHIR_PIPES_PUBLISHER_DEDUP_TABLE`,
//! `FHIR_PIPES_PUBLISHER_SOURCE`, `FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS`, `RUST_LOG` (see the
//! crate's documentation).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_publisher::lambda::serve().await
}
