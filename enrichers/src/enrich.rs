//! The enrichment: a batch of stream records in, a JSON array of envelopes out.

use serde::Serialize;
use serde_json::value::RawValue;
use tracing::{debug, info, warn};

use fhir_pipes_mappings::Mapping;

use crate::{
    config::{EnrichConfig, ErrorPolicy},
    envelope::{Command, Envelope, Metadata, ResourceRef},
    error::{EnrichError, RecordError},
    metrics::Counts,
    record::{self, EventName, ImageKind, StreamRecord},
};

/// The result of one batch.
#[derive(Debug)]
pub struct Enriched {
    /// The events, in input order; serialized as a sequence they are the JSON array to hand
    /// back to Pipes (each one is serialized once, here, and copied verbatim after).
    pub events: Vec<Box<RawValue>>,
    /// What happened to the records.
    pub counts: Counts,
}

impl Enriched {
    /// The response body: the events as one JSON array.
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.counts.response_bytes);
        body.push(b'[');
        for (index, event) in self.events.iter().enumerate() {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event.get().as_bytes());
        }
        body.push(b']');
        body
    }
}

/// What one record becomes.
enum Outcome<R> {
    Put(R),
    Delete(DeleteEntity<R>),
    Unchanged,
    Failed(RecordError),
}

/// The entity of a DELETE: the old resource when it maps, its bare identity otherwise.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum DeleteEntity<R> {
    Full(R),
    Bare(ResourceRef),
}

/// A mapping with its settings: turns batches into envelopes.
#[derive(Debug, Clone)]
pub struct Enricher<M> {
    mapping: M,
    config: EnrichConfig,
    change_event_type: String,
    failure_event_type: String,
}

impl<M: Mapping> Enricher<M> {
    /// An enricher for `mapping`.
    pub fn new(mapping: M, config: EnrichConfig) -> Self {
        Self {
            mapping,
            config,
            change_event_type: format!("{}Change", M::RESOURCE_TYPE),
            failure_event_type: format!("{}MappingFailed", M::RESOURCE_TYPE),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &EnrichConfig {
        &self.config
    }

    /// Enriches one batch (the JSON array Pipes sends). Output order is input order; skipped
    /// MODIFYs leave no event; a record that cannot be mapped becomes an error event, or fails
    /// the batch under [`ErrorPolicy::FailBatch`].
    pub fn enrich(&self, batch: &str) -> Result<Enriched, EnrichError> {
        let records: Vec<&RawValue> =
            serde_json::from_str(batch).map_err(|error| EnrichError::NotABatch(describe_json_error(&error)))?;
        let mut counts = Counts { records: records.len(), ..Counts::default() };
        let mut events = Vec::with_capacity(records.len());
        // `[` and `]`, then each event and its separating comma.
        let mut response_bytes = 2;
        for (index, raw) in records.iter().enumerate() {
            let parsed = StreamRecord::parse(raw);
            let salvaged_id;
            let event_id = match &parsed {
                Ok(record) => record.event_id(),
                Err(_) => {
                    salvaged_id = record::salvage_event_id(raw);
                    salvaged_id.as_deref()
                }
            };
            let record = parsed.as_ref().map_err(Clone::clone);
            let outcome = match record {
                Ok(record) => self.process(record),
                Err(error) => Outcome::Failed(error),
            };
            let (command, metadata) = match &outcome {
                Outcome::Unchanged => {
                    counts.skipped += 1;
                    debug!(event_id, index, "unchanged FHIR resource, no event");
                    continue;
                }
                Outcome::Put(_) => {
                    counts.puts += 1;
                    debug!(event_id, index, command = "PUT");
                    ("PUT", parsed.as_ref().ok().map(|r| self.metadata(r)))
                }
                Outcome::Delete(_) => {
                    counts.deletes += 1;
                    debug!(event_id, index, command = "DELETE");
                    ("DELETE", parsed.as_ref().ok().map(|r| self.metadata(r)))
                }
                Outcome::Failed(error) => {
                    counts.failed += 1;
                    warn!(event_id, index, field = %error.field, kind = error.kind, "record cannot be mapped");
                    if self.config.error_policy == ErrorPolicy::FailBatch {
                        return Err(EnrichError::RecordFailed {
                            index,
                            event_id: event_id.unwrap_or("-").to_owned(),
                            error: error.clone(),
                        });
                    }
                    ("ERROR", parsed.as_ref().ok().map(|r| self.metadata(r)))
                }
            };
            let details = match outcome {
                Outcome::Put(entity) => Command::Put { entity },
                Outcome::Delete(entity) => Command::Delete { entity },
                Outcome::Failed(error) => Command::Error { error, record: raw },
                Outcome::Unchanged => unreachable!("skipped above"),
            };
            let envelope = Envelope {
                version: crate::envelope::VERSION,
                source: &self.config.source,
                event_type: if command == "ERROR" { &self.failure_event_type } else { &self.change_event_type },
                correlation_id: event_id,
                details,
                metadata,
            };
            let event = serde_json::value::to_raw_value(&envelope).expect("envelopes always serialize");
            response_bytes += event.get().len() + usize::from(!events.is_empty());
            if response_bytes > self.config.max_response_bytes {
                return Err(EnrichError::ResponseTooLarge {
                    records: records.len(),
                    written: index + 1,
                    size: response_bytes,
                    limit: self.config.max_response_bytes,
                });
            }
            events.push(event);
        }
        counts.response_bytes = response_bytes;
        info!(
            records = counts.records,
            mapped = counts.mapped(),
            puts = counts.puts,
            deletes = counts.deletes,
            skipped = counts.skipped,
            failed = counts.failed,
            response_bytes = counts.response_bytes,
            "batch enriched"
        );
        Ok(Enriched { events, counts })
    }

    fn process(&self, record: &StreamRecord<'_>) -> Outcome<M::Resource> {
        match self.try_process(record) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed(error),
        }
    }

    fn try_process(&self, record: &StreamRecord<'_>) -> Result<Outcome<M::Resource>, RecordError> {
        if record.event_id().is_none() {
            return Err(RecordError::new(
                "eventID",
                "missing_field",
                "eventID is absent; events could not be correlated",
            ));
        }
        match record.event_name()? {
            EventName::Insert | EventName::Modify => {
                let new_image = record.image(ImageKind::New)?.ok_or_else(|| {
                    RecordError::new(
                        ImageKind::New.field(),
                        "missing_image",
                        "INSERT and MODIFY need the new image: use StreamViewType NEW_IMAGE or NEW_AND_OLD_IMAGES",
                    )
                })?;
                let resource = self.mapping.map(new_image)?;
                if self.config.skip_unchanged
                    && record.event_name()? == EventName::Modify
                    && let Ok(Some(old_image)) = record.image(ImageKind::Old)
                    && self.mapping.map(old_image).is_ok_and(|old| old == resource)
                {
                    return Ok(Outcome::Unchanged);
                }
                Ok(Outcome::Put(resource))
            }
            EventName::Remove => {
                if let Ok(Some(old_image)) = record.image(ImageKind::Old)
                    && let Ok(resource) = self.mapping.map(old_image)
                {
                    return Ok(Outcome::Delete(DeleteEntity::Full(resource)));
                }
                let keys = record.image(ImageKind::Keys)?.ok_or_else(|| {
                    RecordError::new(
                        ImageKind::Keys.field(),
                        "missing_image",
                        "a REMOVE without a mappable old image needs its Keys",
                    )
                })?;
                let id = self.mapping.fhir_id_from_keys(keys).map_err(|error| RecordError {
                    field: format!("{}.{}", ImageKind::Keys.field(), error.field).into(),
                    ..error.into()
                })?;
                Ok(Outcome::Delete(DeleteEntity::Bare(ResourceRef { resource_type: M::RESOURCE_TYPE, id })))
            }
        }
    }

    fn metadata<'r>(&self, record: &'r StreamRecord<'_>) -> Metadata<'r> {
        let data = record.dynamodb.as_ref();
        Metadata {
            resource_type: M::RESOURCE_TYPE,
            event_name: record.event_name.as_ref().map(|n| n.0.as_ref()),
            sequence_number: data.and_then(|d| d.sequence_number.as_ref()).map(|s| s.0.as_ref()),
            approximate_creation_date_time: data.and_then(|d| d.approximate_creation_date_time.as_ref()),
            source_table: record.source_table(),
            ttl_delete: record.is_ttl_delete().then_some(true),
        }
    }
}

/// Describes a JSON error by position and category only: serde's messages can quote values.
fn describe_json_error(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Data => "not an array",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "unreadable input",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}
