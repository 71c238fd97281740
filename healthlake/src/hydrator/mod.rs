//! The change hydrator: the enrichment of the HealthLake change-capture pipe. A batch of SQS
//! messages (each an EventBridge event: a CloudTrail record, a FHIR Subscription notification or
//! a lifecycle event) in; one envelope per resource version out, with the resource as read.
//!
//! - **Id known** (CloudTrail's `resourceId`, a notification's focus): one event per distinct
//!   resource of the batch, for its last signal: a delete is a `DELETE`; otherwise one signed
//!   `GET <Type>/<id>` gives the resource as it is now (404/410: gone since, no event: the
//!   delete's own signal makes the one `DELETE`, so a delete is published once).
//! - **Full-resource notifications** carry the resource: no request.
//! - **Id hidden**: one search per resource type and batch, over the batch's signal times widened
//!   by a margin, `_lastUpdated=ge…&_lastUpdated=le…&_count=100` (later changes have signals of
//!   their own) with the strong consistency header, following every
//!   `next` link up to a page cap. A hidden-id delete cannot be attributed: a `NOTIFY` event says
//!   so.
//! - 429, 5xx, 408 and connection errors are retried with backoff and full jitter within the
//!   deadline; an error answer is never read as "no results". A read or search that still fails
//!   fails the invocation (Pipes takes no partial failure from an enrichment), so the batch is
//!   retried and then dead-lettered with its signals.
//! - A message that cannot be read becomes an `ERROR` event carrying it; the rest goes on.
//!
//! Resources pass through as the JSON the store answered (only `resourceType`, `id` and `meta`
//! are read). The answer stays under Pipes' 6 MB and each event under a bus entry's 256 KB:
//! past either, an event carries the resource's identity only (`metadata.hydrated: false`).
//! Logs carry counts, resource types, statuses and message ids, never resource ids or content.

pub mod config;
pub mod lambda;

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, info, warn};

use fhir_pipes_cdc::{
    ChangeSignal, LifecycleSignal, Operation, ParsedMessage, Signal, SignalError, Timestamp,
    event::{
        ChangeMetadata, SIGNAL_FAILED_EVENT_TYPE, SignalKind, change_event_type, delete_key,
        unattributed_delete_event_type, unreadable_key, version_key,
    },
    parse_message,
};
use fhir_pipes_core::{
    Backoff,
    envelope::{Details, ENVELOPE_VERSION, Envelope, ErrorDetails, ResourceRef},
};

use crate::client::{FhirStoreClient, RequestError, Response};

pub use config::HydratorConfig;

/// The least time left for which another attempt is started.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(100);

/// Reads changed resources from a HealthLake datastore; built by [`HydratorConfig::build`].
pub struct Hydrator {
    client: FhirStoreClient,
    /// The datastore of the endpoint; signals of another datastore are refused.
    datastore_id: Option<String>,
    max_concurrency: usize,
    request_timeout: Duration,
    backoff: Backoff,
    deadline_margin: Duration,
    source: String,
    max_pages: u32,
    page_size: u32,
    search_margin: Duration,
    max_response_bytes: usize,
    max_event_bytes: usize,
}

impl std::fmt::Debug for Hydrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hydrator").field("client", &self.client).field("datastore_id", &self.datastore_id).finish()
    }
}

/// What one batch gave.
#[derive(Debug)]
pub struct Hydrated {
    /// The events, in batch order: serialized as a sequence they are the enrichment's answer.
    pub events: Vec<Box<RawValue>>,
    /// What happened.
    pub counts: HydrateCounts,
}

/// Counts of one batch, for the log and the local runtime's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HydrateCounts {
    /// SQS messages in the batch.
    pub messages: usize,
    /// Messages that could not be read (each an `ERROR` event).
    pub unreadable: usize,
    /// Change signals.
    pub changes: usize,
    /// Signals that change nothing (reads, refused writes, heartbeats).
    pub not_a_change: usize,
    /// Lifecycle events passed on.
    pub lifecycle: usize,
    /// Hidden-id deletes that cannot be attributed to a resource.
    pub unattributed_deletes: usize,
    /// `GET`s of resources.
    pub reads: usize,
    /// Resources read by id that were gone by then (their delete's own signal makes the event).
    pub gone: usize,
    /// Searches (one per resource type with hidden ids).
    pub searches: usize,
    /// Search pages read.
    pub pages: usize,
    /// Requests retried.
    pub retries: usize,
    /// Events written.
    pub events: usize,
    /// Events that carry a reference instead of the resource (size limits).
    pub references_only: usize,
    /// Resource versions seen twice in the batch (e.g. by CloudTrail and a subscription).
    pub duplicates: usize,
}

/// Why a whole batch fails (Pipes then retries it, and dead-letters it with its signals).
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    /// The payload is not a JSON array.
    #[error("the hydrator's input must be a JSON array of SQS messages (as EventBridge Pipes sends them): {0}")]
    NotABatch(&'static str),
    /// The store did not answer usably within the deadline.
    #[error("{what} failed after {attempts} attempt(s): {reason}; the batch fails so that Pipes retries it")]
    Store {
        /// The request (`read of a Patient`, `search of Patient, page 3`): never an id.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last answer or error.
        reason: String,
    },
    /// A search has more pages than allowed.
    #[error(
        "the {resource_type} search has more than {max_pages} pages of changes: raise \
         FHIR_PIPES_HYDRATOR_MAX_PAGES or lower the pipe's BatchSize; the batch fails so nothing is skipped"
    )]
    TooManyPages {
        /// The type searched.
        resource_type: String,
        /// The cap.
        max_pages: u32,
    },
    /// Even references do not fit Pipes' answer limit.
    #[error(
        "the batch's events exceed the {limit}-byte enrichment answer limit even as references; lower the pipe's BatchSize"
    )]
    ResponseTooLarge {
        /// The limit.
        limit: usize,
    },
}

impl HydrateError {
    /// Short name for logs and the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotABatch(_) => "NotABatch",
            Self::Store { .. } => "StoreUnavailable",
            Self::TooManyPages { .. } => "TooManyPages",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
        }
    }
}

/// `resourceType`, `id` and `meta` of a resource: all the hydrator reads of it.
#[derive(Deserialize)]
struct ResourceProbe<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    meta: Option<MetaProbe<'a>>,
}

#[derive(Deserialize)]
struct MetaProbe<'a> {
    #[serde(rename = "versionId", borrow)]
    version_id: Option<Cow<'a, str>>,
    #[serde(rename = "lastUpdated", borrow)]
    last_updated: Option<Cow<'a, str>>,
}

/// A resource as read: its JSON and its identity.
struct ReadResource {
    json: Box<RawValue>,
    resource_type: String,
    id: String,
    version_id: Option<String>,
    last_updated: Option<String>,
}

impl ReadResource {
    fn from_json(json: Box<RawValue>) -> Option<Self> {
        let probe: ResourceProbe<'_> = serde_json::from_str(json.get()).ok()?;
        let resource_type = probe.resource_type.filter(|t| fhir_pipes_cdc::ids::is_valid_resource_type(t))?;
        let id = probe.id.filter(|id| fhir_pipes_cdc::ids::is_valid_fhir_id(id))?;
        let (version_id, last_updated) = match probe.meta {
            Some(meta) => (meta.version_id.map(Cow::into_owned), meta.last_updated.map(Cow::into_owned)),
            None => (None, None),
        };
        Some(Self { resource_type: resource_type.into_owned(), id: id.into_owned(), version_id, last_updated, json })
    }

    /// Versions of one resource sort by `meta.lastUpdated` (ISO 8601 UTC sorts as text).
    fn key(&self, signal_id: &str) -> String {
        match &self.version_id {
            Some(version) => version_key(&self.resource_type, &self.id, version),
            None => format!("{}/{}/_signal/{signal_id}", self.resource_type, self.id),
        }
    }
}

/// What the event says, before it is serialized.
enum Body {
    Put(Box<RawValue>),
    Delete(ResourceRef<'static>),
    Notify(Box<RawValue>),
    Error { error: ErrorDetails<'static>, message: usize },
}

/// One event to write, with where it goes in the answer.
struct PendingEvent {
    /// The message it answers (its correlationId) and its place in the batch.
    message: usize,
    event_type: String,
    body: Body,
    metadata: Option<ChangeMetadata<'static>>,
}

/// A resource known by id, with its last signal of the batch and that signal's message: the
/// event answers it, so a retry of that message reads the resource again.
struct ReadRequest {
    message: usize,
    signal: ChangeSignal,
}

/// A search for one resource type: from the earliest time, answering the message that has it.
struct SearchRequest {
    message: usize,
    since: Timestamp,
    /// The latest signal's time: later changes have signals of their own, in later batches.
    until: Timestamp,
    signal: ChangeSignal,
}

/// The batch read, sorted into what needs the store.
#[derive(Default)]
struct Plan {
    events: Vec<PendingEvent>,
    reads: BTreeMap<(String, String), ReadRequest>,
    searches: BTreeMap<String, SearchRequest>,
    counts: HydrateCounts,
}

impl Hydrator {
    /// Hydrates one batch (the JSON array Pipes hands the enrichment), with requests bounded by
    /// `deadline`.
    pub async fn hydrate(&self, batch: &str, deadline: Instant) -> Result<Hydrated, HydrateError> {
        let messages: Vec<&RawValue> =
            serde_json::from_str(batch).map_err(|e| HydrateError::NotABatch(json_class(&e)))?;
        let mut plan =
            Plan { counts: HydrateCounts { messages: messages.len(), ..HydrateCounts::default() }, ..Plan::default() };
        let mut message_ids: Vec<Option<String>> = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            match parse_message(message) {
                Ok(parsed) => {
                    message_ids.push(Some(parsed.message_id.clone()));
                    self.plan_message(&mut plan, index, parsed);
                }
                Err(error) => {
                    message_ids.push(error.message_id.clone());
                    plan.unreadable(index, &error);
                }
            }
        }
        let deadline = deadline.checked_sub(self.deadline_margin).unwrap_or_else(Instant::now);
        let Plan { mut events, reads, searches, mut counts } = plan;
        counts.reads = reads.values().filter(|r| r.signal.operation != Some(Operation::Delete)).count();
        counts.searches = searches.len();
        events.extend(self.read_all(reads, deadline, &mut counts).await?);
        for (resource_type, search) in searches {
            events.extend(self.search(&resource_type, search, deadline, &mut counts).await?);
        }
        let events = self.serialize(events, &messages, &message_ids, &mut counts)?;
        counts.events = events.len();
        Ok(Hydrated { events, counts })
    }

    fn plan_message(&self, plan: &mut Plan, index: usize, parsed: ParsedMessage) {
        let event_time = parsed.event_time;
        for signal in parsed.signals {
            match signal {
                Signal::NotAChange { .. } => plan.counts.not_a_change += 1,
                Signal::Lifecycle(lifecycle) => {
                    plan.counts.lifecycle += 1;
                    plan.events.push(lifecycle_event(index, lifecycle));
                }
                Signal::Change(change) => {
                    plan.counts.changes += 1;
                    if let (Some(ours), Some(theirs)) = (&self.datastore_id, &change.datastore_id)
                        && ours != theirs
                    {
                        let error = ErrorDetails {
                            field: Cow::Borrowed("body.detail.requestParameters.datastoreId"),
                            kind: Cow::Borrowed("other_datastore"),
                            message: Cow::Borrowed("the signal is of another datastore than the hydrator's endpoint"),
                        };
                        plan.events.push(error_event(index, Some(&parsed.message_id), error));
                        continue;
                    }
                    plan.change(index, &parsed.message_id, change, event_time);
                }
            }
        }
    }

    async fn read_all(
        &self,
        reads: BTreeMap<(String, String), ReadRequest>,
        deadline: Instant,
        counts: &mut HydrateCounts,
    ) -> Result<Vec<PendingEvent>, HydrateError> {
        let results: Vec<Result<(Option<PendingEvent>, u32), HydrateError>> = stream::iter(reads.into_values())
            .map(|request| self.read_one(request, deadline))
            .buffered(self.max_concurrency)
            .collect()
            .await;
        let mut events = Vec::with_capacity(results.len());
        for result in results {
            let (event, retries) = result?;
            counts.retries += retries as usize;
            match event {
                Some(event) => events.push(event),
                None => counts.gone += 1,
            }
        }
        Ok(events)
    }

    /// The event of a resource known by id (none when it is gone: its delete has a signal of its
    /// own, which makes the one `DELETE` event), and the retries it took.
    async fn read_one(
        &self,
        request: ReadRequest,
        deadline: Instant,
    ) -> Result<(Option<PendingEvent>, u32), HydrateError> {
        let ReadRequest { message, signal } = request;
        if signal.operation == Some(Operation::Delete) {
            return Ok((Some(deleted_event(message, &signal)), 0));
        }
        let id = signal.resource_id.as_deref().expect("reads are planned for known ids");
        let what = || format!("read of a {}", signal.resource_type);
        let (response, attempts) =
            self.send(what, deadline, |timeout| self.client.read(&signal.resource_type, id, timeout)).await?;
        let event = if matches!(response.status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            debug!(message, resource_type = %signal.resource_type, "gone since its signal");
            None
        } else {
            let resource =
                parse_resource(&response.body, &signal.resource_type).ok_or_else(|| HydrateError::Store {
                    what: what(),
                    attempts,
                    reason: "the answer is not the resource asked for".into(),
                })?;
            Some(put_event(message, &signal, resource))
        };
        Ok((event, attempts - 1))
    }

    async fn search(
        &self,
        resource_type: &str,
        request: SearchRequest,
        deadline: Instant,
        counts: &mut HydrateCounts,
    ) -> Result<Vec<PendingEvent>, HydrateError> {
        let margin = self.search_margin.as_millis() as i64;
        let since = Timestamp::from_epoch_millis(request.since.epoch_millis() - margin);
        let until = Timestamp::from_epoch_millis(request.until.epoch_millis() + margin);
        let mut url = format!(
            "{}{resource_type}?_lastUpdated=ge{since}&_lastUpdated=le{until}&_count={}",
            self.client.base(),
            self.page_size
        );
        let mut events = Vec::new();
        for page in 1..=self.max_pages {
            let what = || format!("search of {resource_type}, page {page}");
            let (response, attempts) = self.send(what, deadline, |timeout| self.client.search(&url, timeout)).await?;
            counts.pages += 1;
            counts.retries += attempts as usize - 1;
            let bundle: SearchBundle<'_> = serde_json::from_slice(&response.body).map_err(|_| HydrateError::Store {
                what: what(),
                attempts,
                reason: "the answer is not a search Bundle".into(),
            })?;
            for entry in bundle.entry {
                if entry.search.as_ref().and_then(|s| s.mode.as_deref()).is_some_and(|mode| mode != "match") {
                    continue;
                }
                let Some(resource) = entry.resource.and_then(|json| ReadResource::from_json(json.to_owned())) else {
                    return Err(HydrateError::Store {
                        what: what(),
                        attempts,
                        reason: "an entry is not a resource with an id".into(),
                    });
                };
                if resource.resource_type == resource_type {
                    events.push(put_event(request.message, &request.signal, resource));
                }
            }
            match bundle.link.iter().find(|link| link.relation == "next") {
                Some(next) => url = next.url.to_string(),
                None => return Ok(events),
            }
        }
        Err(HydrateError::TooManyPages { resource_type: resource_type.to_owned(), max_pages: self.max_pages })
    }

    /// Sends a request until it gets an answer to keep (2xx, 404, 410) or the deadline: 429,
    /// 5xx, 408 and connection errors are retried with backoff (honouring `Retry-After`), other
    /// answers fail at once. Returns the answer and the attempts made.
    async fn send<F, Fut>(
        &self,
        what: impl Fn() -> String,
        deadline: Instant,
        request: F,
    ) -> Result<(Response, u32), HydrateError>
    where
        F: Fn(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<Response, RequestError>>,
    {
        let mut attempt = 0;
        let mut last_answer: Option<String> = None;
        loop {
            attempt += 1;
            let timeout = self.request_timeout.min(deadline.saturating_duration_since(Instant::now()));
            let outcome = request(timeout.max(Duration::from_millis(1))).await;
            let (reason, retry_after) = match outcome {
                Ok(response)
                    if response.status.is_success()
                        || matches!(response.status, StatusCode::NOT_FOUND | StatusCode::GONE) =>
                {
                    return Ok((response, attempt));
                }
                Ok(response)
                    if response.status == StatusCode::TOO_MANY_REQUESTS
                        || response.status == StatusCode::REQUEST_TIMEOUT
                        || response.status.is_server_error() =>
                {
                    (format!("HTTP {}", response.status.as_u16()), response.retry_after)
                }
                Ok(response) => {
                    return Err(HydrateError::Store {
                        what: what(),
                        attempts: attempt,
                        reason: format!("HTTP {} (not retried)", response.status.as_u16()),
                    });
                }
                // Cut short by the deadline, not by the store: its last answer says more.
                Err(RequestError::Timeout(_)) if timeout < self.request_timeout && last_answer.is_some() => {
                    let reason = last_answer.take().unwrap_or_default();
                    return Err(HydrateError::Store { what: what(), attempts: attempt, reason });
                }
                Err(error) => (error.to_string(), None),
            };
            let sleep = retry_after.unwrap_or_else(|| self.backoff.delay(attempt)).max(Duration::from_millis(1));
            // No attempt is started with too little time left to get an answer.
            if Instant::now() + sleep + MIN_ATTEMPT_TIME >= deadline {
                return Err(HydrateError::Store { what: what(), attempts: attempt, reason });
            }
            warn!(request = %what(), attempt, reason = %reason, "retrying");
            last_answer = Some(reason);
            tokio::time::sleep(sleep).await;
        }
    }

    /// The events in batch order, versions of one resource in version order, each version once,
    /// within the size limits.
    fn serialize(
        &self,
        mut events: Vec<PendingEvent>,
        messages: &[&RawValue],
        message_ids: &[Option<String>],
        counts: &mut HydrateCounts,
    ) -> Result<Vec<Box<RawValue>>, HydrateError> {
        events.sort_by(|a, b| a.message.cmp(&b.message).then_with(|| last_updated(a).cmp(&last_updated(b))));
        let mut seen: HashSet<String> = HashSet::with_capacity(events.len());
        let mut out = Vec::with_capacity(events.len());
        let mut size = 2;
        for mut event in events {
            if let Some(metadata) = &event.metadata
                && !seen.insert(metadata.idempotency_key.to_string())
            {
                counts.duplicates += 1;
                continue;
            }
            let correlation_id = message_ids[event.message].as_deref();
            let mut json = self.event_json(&event, correlation_id, messages);
            let over_entry = json.get().len() > self.max_event_bytes;
            let over_answer = size + json.get().len() + 1 > self.max_response_bytes;
            if (over_entry || over_answer)
                && let Body::Put(resource) = &event.body
            {
                let reference = reference_of(resource);
                event.body = Body::Put(reference);
                if let Some(metadata) = &mut event.metadata {
                    metadata.hydrated = false;
                }
                counts.references_only += 1;
                json = self.event_json(&event, correlation_id, messages);
            }
            size += json.get().len() + usize::from(!out.is_empty());
            if size > self.max_response_bytes || json.get().len() > self.max_event_bytes {
                return Err(HydrateError::ResponseTooLarge { limit: self.max_response_bytes });
            }
            out.push(json);
        }
        Ok(out)
    }

    fn event_json(&self, event: &PendingEvent, correlation_id: Option<&str>, messages: &[&RawValue]) -> Box<RawValue> {
        let details = match &event.body {
            Body::Put(resource) => Details::Put { entity: Cow::Borrowed(&**resource) },
            Body::Delete(reference) => Details::Delete {
                entity: Cow::Owned(serde_json::value::to_raw_value(reference).expect("a reference serializes")),
            },
            Body::Notify(entity) => Details::Notify { entity: Cow::Borrowed(&**entity) },
            Body::Error { error, message } => Details::Error { error: error.clone(), record: messages[*message] },
        };
        let envelope = Envelope {
            version: Cow::Borrowed(ENVELOPE_VERSION),
            source: Cow::Borrowed(&self.source),
            event_type: Cow::Borrowed(&event.event_type),
            correlation_id: correlation_id.map(Cow::Borrowed),
            details,
            metadata: event.metadata.as_ref(),
        };
        serde_json::value::to_raw_value(&envelope).expect("envelopes always serialize")
    }
}

fn last_updated(event: &PendingEvent) -> Option<&str> {
    event.metadata.as_ref().and_then(|m| m.last_updated.as_deref())
}

impl Plan {
    fn unreadable(&mut self, index: usize, error: &SignalError) {
        self.counts.unreadable += 1;
        warn!(message_id = error.message_id.as_deref().unwrap_or("-"), field = %error.field, kind = error.kind.code(), "unreadable signal");
        let details = ErrorDetails {
            field: Cow::Owned(error.field.clone()),
            kind: Cow::Borrowed(error.kind.code()),
            message: Cow::Owned(error.to_string()),
        };
        self.events.push(error_event(index, error.message_id.as_deref(), details));
    }

    fn change(&mut self, index: usize, message_id: &str, signal: ChangeSignal, message_time: Option<Timestamp>) {
        match (&signal.resource, &signal.resource_id) {
            (Some(resource), _) => match ReadResource::from_json(resource.clone()) {
                Some(read) if read.resource_type == signal.resource_type => {
                    self.events.push(put_event(index, &signal, read))
                }
                _ => self.events.push(error_event(
                    index,
                    Some(message_id),
                    ErrorDetails {
                        field: Cow::Borrowed("body.detail.entry.resource"),
                        kind: Cow::Borrowed("invalid_resource"),
                        message: Cow::Borrowed(
                            "the notification's resource has no valid resourceType and id of its focus",
                        ),
                    },
                )),
            },
            (None, Some(id)) => {
                let key = (signal.resource_type.clone(), id.clone());
                self.reads.insert(key, ReadRequest { message: index, signal });
            }
            (None, None) if signal.operation == Some(Operation::Delete) => {
                self.counts.unattributed_deletes += 1;
                self.events.push(unattributed_delete_event(index, &signal));
            }
            (None, None) => match signal.event_time.or(message_time) {
                Some(time) => {
                    // The search answers the message with the earliest time, so its retry covers all.
                    match self.searches.get_mut(&signal.resource_type) {
                        Some(search) if time < search.since => {
                            let until = search.until;
                            *search = SearchRequest { message: index, since: time, until, signal };
                        }
                        Some(search) => search.until = search.until.max(time),
                        None => {
                            let request = SearchRequest { message: index, since: time, until: time, signal };
                            self.searches.insert(request.signal.resource_type.clone(), request);
                        }
                    }
                }
                None => self.events.push(error_event(
                    index,
                    Some(message_id),
                    ErrorDetails {
                        field: Cow::Borrowed("body.detail.eventTime"),
                        kind: Cow::Borrowed("missing_field"),
                        message: Cow::Borrowed("a change with a hidden id needs a time to search from"),
                    },
                )),
            },
        }
    }
}

fn metadata(signal: &ChangeSignal, resource_type: &str, id: Option<&str>, key: String) -> ChangeMetadata<'static> {
    ChangeMetadata {
        datastore_id: signal.datastore_id.clone().map(Cow::Owned),
        resource_type: Some(Cow::Owned(resource_type.to_owned())),
        id: id.map(|id| Cow::Owned(id.to_owned())),
        version_id: None,
        last_updated: signal.event_time.map(|t| Cow::Owned(t.to_string())),
        signal: signal.origin.into(),
        signal_id: Cow::Owned(signal.signal_id.clone()),
        idempotency_key: Cow::Owned(key),
        hydrated: true,
    }
}

fn put_event(message: usize, signal: &ChangeSignal, resource: ReadResource) -> PendingEvent {
    let mut meta = metadata(signal, &resource.resource_type, Some(&resource.id), resource.key(&signal.signal_id));
    meta.version_id = resource.version_id.clone().map(Cow::Owned);
    meta.last_updated = resource.last_updated.clone().map(Cow::Owned).or(meta.last_updated);
    debug!(message, resource_type = %resource.resource_type, command = "PUT");
    PendingEvent {
        message,
        event_type: change_event_type(&resource.resource_type),
        body: Body::Put(resource.json),
        metadata: Some(meta),
    }
}

fn deleted_event(message: usize, signal: &ChangeSignal) -> PendingEvent {
    let id = signal.resource_id.clone().expect("a delete event has an id");
    let second = signal.event_time.map_or(0, |t| t.epoch_millis().div_euclid(1000));
    let key = delete_key(&signal.resource_type, &id, second);
    let meta = metadata(signal, &signal.resource_type, Some(&id), key);
    PendingEvent {
        message,
        event_type: change_event_type(&signal.resource_type),
        body: Body::Delete(ResourceRef { resource_type: Cow::Owned(signal.resource_type.clone()), id: Cow::Owned(id) }),
        metadata: Some(meta),
    }
}

fn unattributed_delete_event(message: usize, signal: &ChangeSignal) -> PendingEvent {
    let entity = serde_json::value::to_raw_value(&serde_json::json!({"resourceType": signal.resource_type}))
        .expect("a type serializes");
    let mut meta = metadata(signal, &signal.resource_type, None, signal.signal_id.clone());
    meta.hydrated = false;
    PendingEvent {
        message,
        event_type: unattributed_delete_event_type(&signal.resource_type),
        body: Body::Notify(entity),
        metadata: Some(meta),
    }
}

fn lifecycle_event(message: usize, signal: LifecycleSignal) -> PendingEvent {
    let meta = ChangeMetadata {
        datastore_id: Some(Cow::Owned(signal.datastore_id)),
        resource_type: None,
        id: None,
        version_id: None,
        last_updated: signal.event_time.map(|t| Cow::Owned(t.to_string())),
        signal: SignalKind::Lifecycle,
        idempotency_key: Cow::Owned(signal.signal_id.clone()),
        signal_id: Cow::Owned(signal.signal_id),
        hydrated: true,
    };
    PendingEvent {
        message,
        event_type: signal.event_type.event_type().to_owned(),
        body: Body::Notify(signal.detail),
        metadata: Some(meta),
    }
}

/// The `ERROR` event of message `message` (`message_id`, when it has a readable one).
fn error_event(message: usize, message_id: Option<&str>, error: ErrorDetails<'static>) -> PendingEvent {
    let signal_id = message_id.map_or_else(|| format!("message-{message}"), str::to_owned);
    let metadata = ChangeMetadata {
        datastore_id: None,
        resource_type: None,
        id: None,
        version_id: None,
        last_updated: None,
        signal: SignalKind::Unreadable,
        idempotency_key: Cow::Owned(unreadable_key(&signal_id)),
        signal_id: Cow::Owned(signal_id),
        hydrated: false,
    };
    let body = Body::Error { error, message };
    PendingEvent { message, event_type: SIGNAL_FAILED_EVENT_TYPE.to_owned(), body, metadata: Some(metadata) }
}

/// `{resourceType, id}` of a resource, for an event that cannot carry it.
fn reference_of(resource: &RawValue) -> Box<RawValue> {
    let probe: ResourceProbe<'_> = serde_json::from_str(resource.get()).expect("a resource read before");
    let reference =
        ResourceRef { resource_type: probe.resource_type.unwrap_or_default(), id: probe.id.unwrap_or_default() };
    serde_json::value::to_raw_value(&reference).expect("a reference serializes")
}

fn parse_resource(body: &[u8], resource_type: &str) -> Option<ReadResource> {
    let text = std::str::from_utf8(body).ok()?;
    let json = RawValue::from_string(text.trim().to_owned()).ok()?;
    ReadResource::from_json(json).filter(|r| r.resource_type == resource_type)
}

#[derive(Deserialize)]
struct SearchBundle<'a> {
    #[serde(borrow, default)]
    entry: Vec<SearchEntry<'a>>,
    #[serde(borrow, default)]
    link: Vec<BundleLink<'a>>,
}

#[derive(Deserialize)]
struct SearchEntry<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    #[serde(borrow)]
    search: Option<EntrySearch<'a>>,
}

#[derive(Deserialize)]
struct EntrySearch<'a> {
    #[serde(borrow)]
    mode: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct BundleLink<'a> {
    #[serde(borrow)]
    relation: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

fn json_class(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Data => "not an array",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Io => "unreadable input",
    }
}

/// Logs one batch's counts (PHI-free).
pub fn log_counts(counts: &HydrateCounts, elapsed: Duration) {
    info!(
        messages = counts.messages,
        unreadable = counts.unreadable,
        changes = counts.changes,
        not_a_change = counts.not_a_change,
        lifecycle = counts.lifecycle,
        unattributed_deletes = counts.unattributed_deletes,
        reads = counts.reads,
        gone = counts.gone,
        searches = counts.searches,
        pages = counts.pages,
        retries = counts.retries,
        events = counts.events,
        references_only = counts.references_only,
        duplicates = counts.duplicates,
        elapsed_ms = elapsed.as_millis() as u64,
        "batch hydrated"
    );
}
