//! The enrichment: a batch of stream records in, a JSON array of envelopes out.

use std::borrow::Cow;

use serde_json::value::RawValue;
use tracing::{debug, info, warn};

use fhir_pipes_core::envelope::{Details, ENVELOPE_VERSION, Entity, Envelope, ResourceRef};
use fhir_pipes_mappings::Mapping;

use crate::{
    config::{EnrichConfig, ErrorPolicy},
    error::{EnrichError, RecordError},
    lookup::{Fetched, Fetcher, LookupClient},
    metadata::StreamMetadata,
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
    /// The old resource when it maps, its bare identity otherwise.
    Delete(Entity<'static, R>),
    Unchanged,
    Failed(RecordError),
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
    ///
    /// A mapping that declares lookups needs [`Enricher::enrich_with_lookups`]: here its
    /// records that need one become `lookup_failed` error events.
    pub fn enrich(&self, batch: &str) -> Result<Enriched, EnrichError> {
        if self.mapping.uses_lookups() {
            return self.enrich_fetched(batch, Some(&Fetched::unavailable()));
        }
        self.enrich_fetched(batch, None)
    }

    /// The mapping in use.
    pub fn mapping(&self) -> &M {
        &self.mapping
    }

    /// Enriches one batch like [`Enricher::enrich`], first fetching the related records its
    /// mapping declares for every record of the batch at once through `fetcher`.
    pub async fn enrich_with_lookups<C: LookupClient>(
        &self,
        batch: &str,
        fetcher: &Fetcher<C>,
    ) -> Result<Enriched, EnrichError> {
        if !self.mapping.uses_lookups() {
            return self.enrich_fetched(batch, None);
        }
        let fetched = fetcher.fetch(self.lookup_keys(batch)).await;
        self.enrich_fetched(batch, Some(&fetched))
    }

    /// The keys every image the batch maps needs: new images of INSERTs and MODIFYs, old images
    /// of REMOVEs and, with skip-unchanged, of MODIFYs. Records that do not decode need none:
    /// they fail on their own later.
    fn lookup_keys(&self, batch: &str) -> Vec<fhir_pipes_mappings::ItemKey> {
        let mut keys = Vec::new();
        let mut collect = |record: &StreamRecord<'_>| {
            let kinds: &[ImageKind] = match record.event_name() {
                Ok(EventName::Insert) => &[ImageKind::New],
                Ok(EventName::Modify) if self.config.skip_unchanged => &[ImageKind::New, ImageKind::Old],
                Ok(EventName::Modify) => &[ImageKind::New],
                Ok(EventName::Remove) => &[ImageKind::Old],
                Err(_) => &[],
            };
            for kind in kinds {
                if let Ok(Some(image)) = record.image(*kind) {
                    keys.extend(self.mapping.lookups(image).into_iter().map(|key| key.item));
                }
            }
        };
        // As in `enrich_fetched`: after a record the one pass cannot read, the rest one by one.
        let mut walked = 0;
        let pass = record::for_each_record(batch, |_, record| {
            walked += 1;
            if let record::Lax::Ok(record) = record {
                collect(&record);
            }
            Ok::<(), ()>(())
        });
        if pass.is_err()
            && let Ok(split) = serde_json::from_str::<Vec<&RawValue>>(batch)
        {
            for raw in split.into_iter().skip(walked) {
                if let Ok(record::Lax::Ok(record)) = record::decode_record(raw) {
                    collect(&record);
                }
            }
        }
        keys
    }

    fn enrich_fetched(&self, batch: &str, fetched: Option<&Fetched>) -> Result<Enriched, EnrichError> {
        // One pass decodes the records and enriches each as soon as it is decoded, so memory
        // holds the batch, the events and one decoded record. When the lax pass stops at a
        // record it cannot read, the batch is split into raw records and the rest is done one
        // by one, so one odd record still cannot fail the others. The records before it were
        // pushed whole (each only once decoded), so they are not done again.
        let mut output = Output::new(batch);
        let walked = record::for_each_record(batch, |index, record| output.push(self, fetched, index, checked(record)));
        match walked {
            Ok(done) => done?,
            Err(_) => {
                let split: Vec<&RawValue> =
                    serde_json::from_str(batch).map_err(|error| EnrichError::NotABatch(describe_json_error(&error)))?;
                let done = output.counts.records;
                output.raws = Some(split.clone());
                for (index, raw) in split.iter().enumerate().skip(done) {
                    let decoded = match record::decode_record(raw) {
                        Ok(record) => checked(record),
                        Err(error) => Decoded { record: Err(error), salvaged_id: salvage_event_id(raw) },
                    };
                    output.push(self, fetched, index, decoded)?;
                }
            }
        }
        let Output { events, counts, .. } = output;
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

    /// Maps an image, with its lookups resolved from `fetched` when the batch has them.
    fn map_image(
        &self,
        image: &fhir_pipes_mappings::Image<'_>,
        fetched: Option<&Fetched>,
    ) -> Result<M::Resource, RecordError> {
        match fetched {
            None => Ok(self.mapping.map(image)?),
            Some(fetched) => {
                let lookups = fetched.resolve(&self.mapping.lookups(image))?;
                Ok(self.mapping.map_with(image, &lookups)?)
            }
        }
    }

    fn process(&self, record: &StreamRecord<'_>, fetched: Option<&Fetched>) -> Outcome<M::Resource> {
        match self.try_process(record, fetched) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed(error),
        }
    }

    fn try_process(
        &self,
        record: &StreamRecord<'_>,
        fetched: Option<&Fetched>,
    ) -> Result<Outcome<M::Resource>, RecordError> {
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
                let resource = self.map_image(new_image, fetched)?;
                if self.config.skip_unchanged
                    && record.event_name()? == EventName::Modify
                    && let Ok(Some(old_image)) = record.image(ImageKind::Old)
                    && self.map_image(old_image, fetched).is_ok_and(|old| old == resource)
                {
                    return Ok(Outcome::Unchanged);
                }
                Ok(Outcome::Put(resource))
            }
            EventName::Remove => {
                if let Ok(Some(old_image)) = record.image(ImageKind::Old)
                    && let Ok(resource) = self.map_image(old_image, fetched)
                {
                    return Ok(Outcome::Delete(Entity::Resource(resource)));
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
                Ok(Outcome::Delete(Entity::Ref(ResourceRef {
                    resource_type: Cow::Borrowed(M::RESOURCE_TYPE),
                    id: Cow::Owned(id),
                })))
            }
        }
    }

    fn metadata<'r>(&self, record: &'r StreamRecord<'_>) -> StreamMetadata<'r> {
        StreamMetadata {
            resource_type: M::RESOURCE_TYPE,
            event_name: record.event_name_str(),
            sequence_number: record.sequence_number(),
            approximate_creation_date_time: record.approximate_creation_date_time(),
            source_table: record.source_table(),
            ttl_delete: record.is_ttl_delete().then_some(true),
        }
    }
}

/// The events of a batch so far.
struct Output<'a> {
    batch: &'a str,
    /// The batch split into raw records, made on the first error event (which carries its record).
    raws: Option<Vec<&'a RawValue>>,
    events: Vec<Box<RawValue>>,
    counts: Counts,
}

impl<'a> Output<'a> {
    fn new(batch: &'a str) -> Self {
        // `[` and `]`; each event adds its length and a separating comma.
        let counts = Counts { response_bytes: 2, ..Counts::default() };
        Self { batch, raws: None, events: Vec::new(), counts }
    }

    /// Enriches record `index` and appends its event, if it has one.
    fn push<M: Mapping>(
        &mut self,
        enricher: &Enricher<M>,
        fetched: Option<&Fetched>,
        index: usize,
        Decoded { record: parsed, salvaged_id }: Decoded<'_>,
    ) -> Result<(), EnrichError> {
        let counts = &mut self.counts;
        counts.records += 1;
        let event_id = match &parsed {
            Ok(record) => record.event_id(),
            Err(_) => salvaged_id.as_deref(),
        };
        let outcome = match &parsed {
            Ok(record) => enricher.process(record, fetched),
            Err(error) => Outcome::Failed(error.clone()),
        };
        let metadata = parsed.as_ref().ok().map(|r| enricher.metadata(r));
        let failure;
        let details = match outcome {
            Outcome::Unchanged => {
                counts.skipped += 1;
                debug!(event_id, index, "unchanged FHIR resource, no event");
                return Ok(());
            }
            Outcome::Put(entity) => {
                counts.puts += 1;
                debug!(event_id, index, command = "PUT");
                Details::Put { entity: Entity::Resource(entity) }
            }
            Outcome::Delete(entity) => {
                counts.deletes += 1;
                debug!(event_id, index, command = "DELETE");
                Details::Delete { entity }
            }
            Outcome::Failed(error) => {
                counts.failed += 1;
                warn!(event_id, index, field = %error.field, kind = error.kind, "record cannot be mapped");
                if enricher.config.error_policy == ErrorPolicy::FailBatch {
                    let event_id = event_id.unwrap_or("-").to_owned();
                    return Err(EnrichError::RecordFailed { index, event_id, error });
                }
                let raws = match &mut self.raws {
                    Some(raws) => raws,
                    // The walk has not reached the end yet: a truncated batch shows up here.
                    raws @ None => raws.insert(
                        serde_json::from_str(self.batch)
                            .map_err(|error| EnrichError::NotABatch(describe_json_error(&error)))?,
                    ),
                };
                failure = error;
                Details::Error { error: failure.details(), record: raws[index] }
            }
        };
        let event_type = match details {
            Details::Error { .. } => &enricher.failure_event_type,
            _ => &enricher.change_event_type,
        };
        let envelope = Envelope {
            version: Cow::Borrowed(ENVELOPE_VERSION),
            source: Cow::Borrowed(&enricher.config.source),
            event_type: Cow::Borrowed(event_type),
            correlation_id: event_id.map(Cow::Borrowed),
            details,
            metadata,
        };
        let event = serde_json::value::to_raw_value(&envelope).expect("envelopes always serialize");
        counts.response_bytes += event.get().len() + usize::from(!self.events.is_empty());
        if counts.response_bytes > enricher.config.max_response_bytes {
            // Only on this error path is the whole batch counted.
            let records = serde_json::from_str::<Vec<&RawValue>>(self.batch).map_or(index + 1, |raws| raws.len());
            return Err(EnrichError::ResponseTooLarge {
                records,
                written: index + 1,
                size: counts.response_bytes,
                limit: enricher.config.max_response_bytes,
            });
        }
        self.events.push(event);
        Ok(())
    }
}

/// A decoded record whose fields have the types the enrichment reads, or why not (with its
/// eventID when it has one, so the error event stays correlated).
struct Decoded<'a> {
    record: Result<StreamRecord<'a>, RecordError>,
    salvaged_id: Option<String>,
}

fn checked(record: record::Lax<StreamRecord<'_>>) -> Decoded<'_> {
    match record {
        record::Lax::Ok(record) => match record.check() {
            Ok(()) => Decoded { record: Ok(record), salvaged_id: None },
            Err(error) => Decoded { salvaged_id: record.event_id().map(str::to_owned), record: Err(error) },
        },
        record::Lax::Wrong(found) => Decoded { record: Err(record::not_an_object(found)), salvaged_id: None },
    }
}

fn salvage_event_id(raw: &RawValue) -> Option<String> {
    let record: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    record.get("eventID")?.as_str().map(str::to_owned)
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

#[cfg(test)]
mod tests {
    use fhir_pipes_mappings::PatientMapping;

    use super::*;
    use crate::{MAX_RESPONSE_BYTES, sample};

    #[test]
    fn a_response_over_the_pipes_limit_fails_the_invocation_and_says_how_to_fix_it() {
        // 10,000 records is Pipes' largest DynamoDB batch; its events are far over 6 MB.
        let batch = sample::patient_batch(10_000);
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let error = enricher.enrich(&batch).unwrap_err();
        let EnrichError::ResponseTooLarge { records, written, size, limit } = &error else { panic!("{error}") };
        assert_eq!((*records, *limit), (10_000, MAX_RESPONSE_BYTES));
        assert!(*size > MAX_RESPONSE_BYTES && *written < 10_000);
        let message = error.to_string();
        assert!(message.contains("BatchSize") && message.contains("6291456"), "{message}");
    }

    #[test]
    fn a_response_at_the_limit_is_accepted() {
        let batch = sample::patient_batch(20);
        let unlimited = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let exact = unlimited.enrich(&batch).unwrap().to_json().len();
        let config = EnrichConfig { max_response_bytes: exact, ..EnrichConfig::default() };
        let enriched = Enricher::new(PatientMapping::default(), config.clone()).enrich(&batch).unwrap();
        assert_eq!(enriched.counts.response_bytes, exact);
        let config = EnrichConfig { max_response_bytes: exact - 1, ..config };
        assert!(matches!(
            Enricher::new(PatientMapping::default(), config).enrich(&batch),
            Err(EnrichError::ResponseTooLarge { .. })
        ));
    }

    #[test]
    fn a_record_with_duplicate_fields_fails_alone() {
        // Duplicate keys make the one-pass decode reject the batch: the records are then decoded one by one.
        let batch = r#"[{"eventID":"a","eventName":"REMOVE","dynamodb":{"Keys":{"id":{"S":"p1"}}}},
                        {"eventID":"b","eventName":"INSERT","eventName":"MODIFY"}]"#;
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let enriched = enricher.enrich(batch).unwrap();
        assert_eq!((enriched.counts.deletes, enriched.counts.failed), (1, 1));
        let error: serde_json::Value = serde_json::from_str(enriched.events[1].get()).unwrap();
        assert_eq!(error["details"]["error"]["field"], "(record)");
        assert_eq!(error["details"]["record"]["eventID"], "b");
        assert_eq!(error["correlationId"], "b");
    }

    #[test]
    fn input_that_is_not_an_array_is_an_invocation_error_that_quotes_nothing() {
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        for input in [r#"{"firstName":"Quennell"}"#, r#"["Quennell""#, "", r#""Quennell""#] {
            let error = enricher.enrich(input).unwrap_err();
            assert!(matches!(error, EnrichError::NotABatch(_)));
            assert!(!error.to_string().contains("Quennell"), "{error}");
        }
    }
}
