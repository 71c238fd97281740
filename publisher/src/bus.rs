//! The event bus the publisher puts entries on: the [`EventBus`] trait (so tests can make
//! PutEvents fail partially, which no emulator does) and its EventBridge implementation.

use std::future::Future;

use crate::aws::{CallError, call_error, loggable_code, retryable_code};

/// PutEvents takes at most this many entries per call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// PutEvents: the entries of one call must total less than 256 KB, sized by
/// [`BusEntry::size`]. One entry must be smaller too.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// Per-entry error codes that no retry can fix (the entry itself is refused).
const PERMANENT_ENTRY_CODES: &[&str] = &[
    "MalformedDetail",
    "InvalidArgument",
    "ValidationException",
    "NotAuthorizedForSourceException",
    "AccessDeniedException",
];

/// One PutEvents entry (`EventBusName` is the bus's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// `Source`.
    pub source: String,
    /// `DetailType`: the envelope's `eventType`.
    pub detail_type: String,
    /// `Detail`: the envelope JSON.
    pub detail: String,
}

impl BusEntry {
    /// The entry's size by AWS's rule ("Calculating PutEvents event entry size"): the UTF-8
    /// bytes of `Source`, `DetailType`, `Detail` and each of `Resources` (none here), plus 14
    /// for a `Time` (none here: the bus stamps it).
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// What the bus did with one entry of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Accepted: it is on the bus.
    Accepted,
    /// Refused (`ErrorCode`); `retryable` unless the entry itself is at fault.
    Failed {
        /// The entry's `ErrorCode` (PHI-free).
        code: String,
        /// Whether sending it again may succeed.
        retryable: bool,
    },
}

impl EntryOutcome {
    /// The outcome of a per-entry `ErrorCode`: retryable unless the code says the entry is
    /// refused as such (unknown codes are retried).
    pub fn failed(code: Option<&str>) -> Self {
        let code = loggable_code(code);
        let retryable = retryable_code(&code) || !PERMANENT_ENTRY_CODES.contains(&code.as_str());
        Self::Failed { code, retryable }
    }
}

/// An event bus.
pub trait EventBus: Send + Sync {
    /// One PutEvents call with `entries` (at most [`MAX_ENTRIES_PER_CALL`], less than
    /// [`MAX_CALL_BYTES`] in all): one outcome per entry, in order, or the call's failure.
    fn put_events(&self, entries: &[BusEntry]) -> impl Future<Output = Result<Vec<EntryOutcome>, CallError>> + Send;
}

/// A custom EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    /// The bus `bus_name` (a name or an ARN) through `client`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into() }
    }
}

impl EventBus for EventBridgeBus {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryOutcome>, CallError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|entry| {
                PutEventsRequestEntry::builder()
                    .source(&entry.source)
                    .detail_type(&entry.detail_type)
                    .detail(&entry.detail)
                    .event_bus_name(&self.bus_name)
                    .build()
            })
            .collect();
        let output =
            self.client.put_events().set_entries(Some(request)).send().await.map_err(|error| call_error(&error))?;
        let results = output.entries();
        Ok((0..entries.len())
            .map(|index| match results.get(index) {
                Some(result) if result.error_code().is_none() && result.event_id().is_some() => EntryOutcome::Accepted,
                Some(result) => EntryOutcome::failed(result.error_code()),
                // No result for the entry: not known to be on the bus, so sent again.
                None => EntryOutcome::Failed { code: "missing_result".to_owned(), retryable: true },
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_size_follows_the_aws_rule_in_utf8_bytes() {
        let entry =
            BusEntry { source: "src".into(), detail_type: "PatientChange".into(), detail: "{\"a\":\"é\"}".into() };
        assert_eq!(entry.size(), 3 + 13 + 10);
    }

    #[test]
    fn entry_codes_are_retried_unless_the_entry_itself_is_refused() {
        assert_eq!(
            EntryOutcome::failed(Some("ThrottlingException")),
            EntryOutcome::Failed { code: "ThrottlingException".into(), retryable: true }
        );
        assert_eq!(
            EntryOutcome::failed(Some("MalformedDetail")),
            EntryOutcome::Failed { code: "MalformedDetail".into(), retryable: false }
        );
        assert!(matches!(EntryOutcome::failed(Some("SomethingNew")), EntryOutcome::Failed { retryable: true, .. }));
    }
}
