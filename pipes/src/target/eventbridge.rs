//! An EventBridge bus as a target: each event (the enrichment's envelope) is the `Detail` of one
//! PutEvents entry, with the template's `DetailType` and `Source`. PutEvents takes at most 10
//! entries and 256 KB per call; entries the bus reports as failed (`FailedEntryCount`) come back
//! as `Retryable` by index. One attempt per call: the runtime retries.

use aws_sdk_eventbridge::{Client, types::PutEventsRequestEntry};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DeliveryError, Retry};
use crate::aws::{SdkRetries, classify, sdk_config};

/// Most entries in one PutEvents call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// Most bytes of one PutEvents call, and so of one entry.
pub const MAX_BYTES_PER_CALL: usize = 262_144;

/// Settings of the EventBridge target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// The bus, by name or ARN.
    pub event_bus_name: String,
    /// `DetailType` of every entry (the template's target parameter), e.g. `fhir.Patient`.
    pub detail_type: String,
    /// `Source` of every entry (the template's target parameter), e.g. `fhir-pipes.patient`.
    pub source: String,
    /// Endpoint to call instead of AWS (e.g. a moto server); static test credentials are used
    /// when none are configured.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// AWS region; the SDK's region chain when absent (`us-east-1` with an `endpoint_url`).
    #[serde(default)]
    pub region: Option<String>,
    /// Create the bus when it does not exist (a name, not an ARN), e.g. on a local endpoint.
    #[serde(default)]
    pub create_event_bus: bool,
}

/// Errors of building the EventBridge target.
#[derive(Debug, thiserror::Error)]
pub enum EventBridgeError {
    /// The settings are unusable.
    #[error("invalid eventbridge target settings: {0}")]
    Config(String),
    /// CreateEventBus failed.
    #[error("cannot create event bus {bus}: {summary}")]
    CreateBus {
        /// The bus name.
        bus: String,
        /// The error code and HTTP status or the transport failure.
        summary: String,
    },
}

impl EventBridgeConfig {
    /// Builds the target.
    pub async fn build(self) -> Result<EventBridgeTarget, EventBridgeError> {
        for (field, value) in
            [("event_bus_name", &self.event_bus_name), ("detail_type", &self.detail_type), ("source", &self.source)]
        {
            if value.is_empty() {
                return Err(EventBridgeError::Config(format!("{field} must not be empty")));
            }
        }
        let sdk = sdk_config(self.endpoint_url.as_deref(), self.region.as_deref(), SdkRetries::Disabled).await;
        let client = Client::new(&sdk);
        if self.create_event_bus {
            create_bus_if_absent(&client, &self.event_bus_name).await?;
        }
        Ok(EventBridgeTarget {
            client,
            event_bus_name: self.event_bus_name,
            detail_type: self.detail_type,
            source: self.source,
        })
    }
}

/// CreateEventBus, unless it exists already.
async fn create_bus_if_absent(client: &Client, bus: &str) -> Result<(), EventBridgeError> {
    use aws_sdk_eventbridge::error::ProvideErrorMetadata;
    match client.create_event_bus().name(bus).send().await {
        Ok(_) => {
            tracing::info!(bus, "event bus created");
            Ok(())
        }
        Err(error) if error.code() == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(error) => Err(EventBridgeError::CreateBus {
            bus: bus.to_owned(),
            summary: classify("CreateEventBus", &error).summary,
        }),
    }
}

/// The EventBridge target; see the module documentation.
#[derive(Debug)]
pub struct EventBridgeTarget {
    client: Client,
    event_bus_name: String,
    detail_type: String,
    source: String,
}

impl EventBridgeTarget {
    /// Puts the events on the bus, in order, in calls of at most 10 entries and 256 KB. Stops at
    /// the first failed call: its entries and every later one are in `failed`, with the entries
    /// the bus reported failed in earlier calls. Entries over 256 KB are `Permanent` failures.
    pub async fn deliver(&mut self, events: &[Box<RawValue>]) -> Result<(), DeliveryError> {
        let fixed = self.source.len() + self.detail_type.len();
        let (chunks, oversized) = plan_chunks(events.iter().map(|e| fixed + e.get().len()));
        let mut failed_entries: Vec<usize> = Vec::new();
        let mut codes: Vec<String> = Vec::new();
        for (number, chunk) in chunks.iter().enumerate() {
            let entries = chunk
                .iter()
                .map(|&i| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.event_bus_name)
                        .source(&self.source)
                        .detail_type(&self.detail_type)
                        .detail(events[i].get())
                        .build()
                })
                .collect();
            match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(output) if output.failed_entry_count() > 0 => {
                    // Result entries are in request order; an entry with an error code failed.
                    for (position, entry) in output.entries().iter().enumerate() {
                        if let Some(code) = entry.error_code() {
                            failed_entries.push(chunk[position]);
                            if !codes.iter().any(|c| c == code) {
                                codes.push(code.to_owned());
                            }
                        }
                    }
                    if output.entries().len() != chunk.len() {
                        // Cannot tell which failed: send the whole call again.
                        failed_entries.extend(chunk);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let failure = classify("PutEvents", &error);
                    let retry = Retry::from_call(&failure);
                    return Err(DeliveryError::call_failed(failure, retry, &chunks, number, &failed_entries)
                        .with_permanent(&oversized));
                }
            }
        }
        if !failed_entries.is_empty() {
            let message = format!("PutEvents: the bus failed {} entries ({})", failed_entries.len(), codes.join(", "));
            return Err(DeliveryError::of(Retry::Retryable, failed_entries, message).with_permanent(&oversized));
        }
        if oversized.is_empty() {
            return Ok(());
        }
        let message =
            format!("{} events over the PutEvents entry limit of {MAX_BYTES_PER_CALL} bytes", oversized.len());
        Err(DeliveryError::of(Retry::Permanent, oversized, message))
    }
}

/// Splits entries (given by their sizes as EventBridge counts them: Source, DetailType and Detail
/// bytes) into PutEvents calls of at most [`MAX_ENTRIES_PER_CALL`] entries and
/// [`MAX_BYTES_PER_CALL`] bytes, keeping their order. Returns the calls (indices) and the indices
/// of entries too large to send at all.
pub fn plan_chunks(sizes: impl Iterator<Item = usize>) -> (Vec<Vec<usize>>, Vec<usize>) {
    super::plan_calls(sizes, MAX_ENTRIES_PER_CALL, MAX_BYTES_PER_CALL, MAX_BYTES_PER_CALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_by_ten_entries() {
        let (chunks, oversized) = plan_chunks(std::iter::repeat_n(100, 25));
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(chunks.concat(), (0..25).collect::<Vec<_>>());
        assert!(oversized.is_empty());
    }

    #[test]
    fn chunks_by_256_kb_per_call() {
        let third = MAX_BYTES_PER_CALL / 3;
        let (chunks, _) = plan_chunks(std::iter::repeat_n(third, 4));
        assert_eq!(chunks, vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn an_entry_over_256_kb_is_set_aside_by_index() {
        let (chunks, oversized) = plan_chunks([10, MAX_BYTES_PER_CALL + 1, MAX_BYTES_PER_CALL, 10].into_iter());
        assert_eq!(oversized, vec![1]);
        assert_eq!(chunks, vec![vec![0], vec![2], vec![3]]);
    }
}
