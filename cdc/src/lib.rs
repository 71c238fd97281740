//! HealthLake change data capture for fhir-pipes: the pure part.
//!
//! [`parse_message`] turns one SQS message, as an EventBridge Pipe with an SQS source hands it
//! to its enrichment, into typed [`Signal`]s: CloudTrail records of HealthLake's FHIR writes,
//! FHIR Subscription notifications and HealthLake's lifecycle events. No AWS code, no I/O: the
//! hydrator that reads the changed resources from HealthLake builds on it.
//!
//! Every name a signal carries that could end up in a URL (resource type, resource id, version
//! id, datastore id) is checked first. Errors name the SQS message and the field, never a value.

pub mod event;
pub mod ids;
pub mod signal;
pub mod time;

pub use signal::{
    ChangeSignal, HEALTHLAKE_SOURCE, LifecycleEventType, LifecycleSignal, NotAChange, Operation, ParsedMessage, Signal,
    SignalError, SignalErrorKind, SignalOrigin, parse_message,
};
pub use time::Timestamp;
