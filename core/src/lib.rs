//! What every fhir-pipes crate shares, and nothing more: the event envelope, retry backoff and
//! PHI-safe logging.
//! It depends on no AWS SDK, no Lambda runtime and no FHIR model, so any crate (a Lambda, the
//! CLI, a test) can use it without pulling those in.

pub mod backoff;
pub mod envelope;
pub mod logging;

pub use backoff::Backoff;
pub use envelope::{ENVELOPE_VERSION, Envelope};
