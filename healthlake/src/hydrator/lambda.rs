//! The `healthlake-hydrator` Lambda: the change-capture pipe's enrichment.

use std::time::Instant;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing::{Instrument, error, info_span};

use super::{HydrateError, Hydrator, HydratorConfig, log_counts};
use fhir_pipes_core::lambda_answer::deadline_from_epoch_ms;

impl From<HydrateError> for Diagnostic {
    fn from(error: HydrateError) -> Self {
        Diagnostic { error_type: error.kind().to_owned(), error_message: error.to_string() }
    }
}

/// The handler: hydrates the batch within the invocation's deadline, logs its counts.
pub async fn handle(
    hydrator: &Hydrator,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Vec<Box<RawValue>>, HydrateError> {
    let span = info_span!("invocation", request_id = %event.context.request_id);
    async {
        let started = Instant::now();
        match hydrator.hydrate(event.payload.get(), deadline_from_epoch_ms(event.context.deadline)).await {
            Ok(hydrated) => {
                log_counts(&hydrated.counts, started.elapsed());
                Ok(hydrated.events)
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

/// The whole `main` of the `healthlake-hydrator` Lambda: logging, settings from the
/// environment, the standard credential chain, then the handler until the runtime stops it.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    fhir_pipes_core::logging::init_lambda_logging();
    let hydrator = HydratorConfig::from_env(|name| std::env::var(name).ok())?.build().await?;
    let hydrator = &hydrator;
    lambda_runtime::run(service_fn(move |event| handle(hydrator, event))).await
}
