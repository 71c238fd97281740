//! What every fhir-pipes crate shares, and nothing more: the event envelope, retry backoff,
//! PHI-safe logging and the Lambda targets' partial-failure answer.
//! It depends on no AWS SDK, no Lambda runtime and no FHIR model, so any crate (a Lambda, the
//! CLI, a test) can use it without pulling those in.

pub mod backoff;
pub mod envelope;
pub mod lambda_answer;
pub mod logging;

pub use backoff::Backoff;
pub use envelope::{ENVELOPE_VERSION, Envelope};
