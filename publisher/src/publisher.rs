//! The publishing itself: de-duplicate, put on the bus, record what the bus accepted.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fhir_pipes_cdc::event::ChangeMetadata;
use fhir_pipes_core::{
    Backoff, Envelope,
    envelope::{self, Details, ResourceRef},
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, warn};

use crate::{
    aws::CallError,
    bus::{BusEntry, EntryOutcome, EventBridgeBus, EventBus, MAX_CALL_BYTES, MAX_ENTRIES_PER_CALL},
    dedup::{DedupTable, DynamoDbDedupTable, MAX_KEYS_PER_CHECK},
};

/// Most tries of recording one published key (a failure there costs a duplicate, not a loss).
const MAX_RECORD_ATTEMPTS: u32 = 3;

/// Failure kind: the event is not a change event envelope with metadata and an idempotency key.
pub const KIND_INVALID_EVENT: &str = "invalid_event";
/// Failure kind: even reference-only, the entry is 256 KB or more (or it is an ERROR or NOTIFY
/// event, which has no reference-only form).
pub const KIND_TOO_LARGE: &str = "too_large";
/// Failure kind: an earlier version of the same resource in the batch was not published, so
/// this one waits for the retry (versions reach the bus in order).
pub const KIND_EARLIER_VERSION_FAILED: &str = "earlier_version_failed";
/// Failure kind: no time left in the invocation before the entry was sent.
pub const KIND_DEADLINE: &str = "deadline";
/// Prefix of the failure kind when the de-duplication table could not be asked (followed by the
/// table's error code): the event is not published unchecked.
pub const KIND_DEDUP_CHECK_FAILED: &str = "dedup_check_failed";

/// The publisher: puts the change events of a batch on the bus, each idempotency key once.
#[derive(Debug)]
pub struct Publisher<B = EventBridgeBus, T = DynamoDbDedupTable> {
    pub(crate) bus: B,
    pub(crate) table: T,
    pub(crate) source: String,
    pub(crate) ttl: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) deadline_margin: Duration,
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// On the bus; `reference_only` when it went as `{resourceType, id}` with `hydrated: false`.
    Published {
        /// The entity was replaced by the resource's identity (too large).
        reference_only: bool,
    },
    /// Its idempotency key was published already (recorded, or earlier in the batch).
    Duplicate,
    /// Not published: the Pipe must retry its message.
    Failed {
        /// PHI-free: a `KIND_*` constant or the bus's or table's error code.
        kind: String,
    },
}

/// One event's outcome, with what identifies it in logs and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    /// The event's correlationId: the SQS messageId of its signal.
    pub correlation_id: Option<String>,
    /// Its eventType, when readable.
    pub event_type: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

/// What a batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// One per event, in batch order.
    pub outcomes: Vec<EventOutcome>,
    /// PutEvents calls made.
    pub calls: u32,
    /// Entries sent again and table calls made again.
    pub retries: u32,
    /// Events published whose key could not be recorded (a later copy is published again).
    pub unrecorded: u32,
}

impl PublishReport {
    /// Events published (reference-only ones included).
    pub fn published(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o.outcome, Outcome::Published { .. })).count()
    }

    /// Events published reference-only.
    pub fn reference_only(&self) -> usize {
        self.outcomes.iter().filter(|o| o.outcome == Outcome::Published { reference_only: true }).count()
    }

    /// Events skipped as duplicates.
    pub fn duplicates(&self) -> usize {
        self.outcomes.iter().filter(|o| o.outcome == Outcome::Duplicate).count()
    }

    /// The events not published: position, outcome and failure kind.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &EventOutcome, &str)> {
        self.outcomes.iter().enumerate().filter_map(|(index, outcome)| match &outcome.outcome {
            Outcome::Failed { kind } => Some((index, outcome, kind.as_str())),
            _ => None,
        })
    }
}

/// An event as the hydrator writes it, the entity kept as raw JSON.
type Incoming<'a> = Envelope<'a, &'a RawValue, ChangeMetadata<'a>>;

/// `resourceType` and `id` of an entity, when it has them.
#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// An event to put on the bus.
struct Item {
    /// Its position in the batch.
    index: usize,
    key: String,
    /// `<Type>/<id>` of a resource change; `None` for events that change no known resource.
    resource: Option<String>,
    entry: BusEntry,
    reference_only: bool,
    attempts: u32,
    last_error: Option<String>,
}

/// An event read and sized, before the de-duplication check.
enum Read {
    Ready(Item),
    /// Not publishable (its outcome says why); the resource it changes, when known.
    Failed(Option<String>),
}

impl<B: EventBus, T: DedupTable> Publisher<B, T> {
    /// The bus (tests inspect their fakes through it).
    pub fn bus(&self) -> &B {
        &self.bus
    }

    /// The de-duplication table.
    pub fn table(&self) -> &T {
        &self.table
    }

    /// Publishes `events` (the hydrator's envelopes) before `deadline`, less the margin.
    pub async fn publish(&self, events: &[Box<RawValue>], deadline: Instant) -> PublishReport {
        let stop_at = deadline.checked_sub(self.deadline_margin).unwrap_or_else(Instant::now);
        let mut report = PublishReport::default();
        let mut reads = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let (outcome, read) = self.read(index, event);
            report.outcomes.push(outcome);
            reads.push(read);
        }

        // Each key once: the first occurrence; the table says which were published before.
        let mut first: HashMap<String, usize> = HashMap::new();
        let mut keys: Vec<String> = Vec::new();
        for read in &reads {
            if let Read::Ready(item) = read
                && !first.contains_key(&item.key)
            {
                first.insert(item.key.clone(), item.index);
                keys.push(item.key.clone());
            }
        }
        let (recorded, unchecked) = self.check(&keys, stop_at, &mut report.retries).await;

        // Batch order: a version that cannot go blocks the later versions of its resource.
        let mut blocked: HashSet<String> = HashSet::new();
        let mut items: Vec<Item> = Vec::new();
        for read in reads {
            let item = match read {
                // Its outcome is set already.
                Read::Failed(resource) => {
                    blocked.extend(resource);
                    continue;
                }
                Read::Ready(item) => item,
            };
            if first.get(&item.key) != Some(&item.index) || recorded.contains(&item.key) {
                report.outcomes[item.index].outcome = Outcome::Duplicate;
                continue;
            }
            let failure = if let Some(kind) = unchecked.get(&item.key) {
                format!("{KIND_DEDUP_CHECK_FAILED}:{kind}")
            } else if item.resource.as_ref().is_some_and(|r| blocked.contains(r)) {
                KIND_EARLIER_VERSION_FAILED.to_owned()
            } else {
                items.push(item);
                continue;
            };
            report.outcomes[item.index].outcome = Outcome::Failed { kind: failure };
            blocked.extend(item.resource);
        }

        self.send(&mut items, stop_at, &mut report).await;
        report
    }

    /// Reads one event into an item, or its failure.
    fn read(&self, index: usize, event: &RawValue) -> (EventOutcome, Read) {
        let json = event.get();
        let failed = |kind: &'static str, event_type: Option<String>, resource: Option<String>| {
            let correlation_id = envelope::correlation_id(json).map(Cow::into_owned);
            (
                EventOutcome { correlation_id, event_type, outcome: Outcome::Failed { kind: kind.to_owned() } },
                Read::Failed(resource),
            )
        };
        let Ok(envelope) = Incoming::from_json(json) else {
            return failed(KIND_INVALID_EVENT, None, None);
        };
        let event_type = Some(envelope.event_type.clone().into_owned()).filter(|t| !t.is_empty());
        let Some(metadata) = &envelope.metadata else {
            return failed(KIND_INVALID_EVENT, event_type, None);
        };
        if metadata.idempotency_key.is_empty() || envelope.event_type.is_empty() {
            return failed(KIND_INVALID_EVENT, event_type, None);
        }
        let identity = resource_identity(&envelope);
        let resource = identity.as_ref().map(|r| format!("{}/{}", r.resource_type, r.id));
        let mut entry = BusEntry {
            source: self.source.clone(),
            detail_type: envelope.event_type.clone().into_owned(),
            detail: json.to_owned(),
        };
        let mut reference_only = false;
        if entry.size() >= MAX_CALL_BYTES {
            match identity.and_then(|identity| reference_only_json(&envelope, identity)) {
                Some(detail) => {
                    entry.detail = detail;
                    reference_only = true;
                }
                None => return failed(KIND_TOO_LARGE, event_type, resource),
            }
            if entry.size() >= MAX_CALL_BYTES {
                return failed(KIND_TOO_LARGE, event_type, resource);
            }
        }
        let outcome = EventOutcome {
            correlation_id: envelope.correlation_id.as_deref().map(str::to_owned),
            event_type,
            outcome: Outcome::Failed { kind: KIND_DEADLINE.to_owned() },
        };
        let item = Item {
            index,
            key: metadata.idempotency_key.clone().into_owned(),
            resource,
            entry,
            reference_only,
            attempts: 0,
            last_error: None,
        };
        (outcome, Read::Ready(item))
    }

    /// Which keys are recorded, and which could not be checked (with the error kind): at most
    /// [`MAX_KEYS_PER_CHECK`] per call, unprocessed keys and retryable errors retried with
    /// backoff.
    async fn check(
        &self,
        keys: &[String],
        stop_at: Instant,
        retries: &mut u32,
    ) -> (HashSet<String>, HashMap<String, String>) {
        let mut recorded = HashSet::new();
        let mut unchecked = HashMap::new();
        for chunk in keys.chunks(MAX_KEYS_PER_CHECK) {
            let mut todo: Vec<String> = chunk.to_vec();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let error = match self.table.recorded(&todo).await {
                    Ok(lookup) => {
                        recorded.extend(lookup.recorded);
                        let asked: HashSet<&String> = todo.iter().collect();
                        // Only keys asked for can come back unprocessed.
                        todo = lookup.unprocessed.into_iter().filter(|k| asked.contains(k)).collect();
                        if todo.is_empty() {
                            break;
                        }
                        CallError::new("unprocessed_keys", true)
                    }
                    Err(error) => error,
                };
                if !error.retryable || attempt >= self.max_attempts || !self.pause(attempt, stop_at).await {
                    unchecked.extend(todo.drain(..).map(|key| (key, error.kind.clone())));
                    break;
                }
                *retries += 1;
            }
        }
        (recorded, unchecked)
    }

    /// Puts `items` on the bus in batch order, sequential calls of at most ten entries and less
    /// than 256 KB, one version per resource per call; re-sends what failed, with backoff;
    /// records what the bus accepted.
    async fn send(&self, items: &mut [Item], stop_at: Instant, report: &mut PublishReport) {
        let expires_at = epoch_seconds(SystemTime::now() + self.ttl);
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut failing_rounds = 0;
        while !pending.is_empty() {
            if Instant::now() >= stop_at {
                break;
            }
            let call = next_call(items, &pending);
            let entries: Vec<BusEntry> = call.iter().map(|&i| items[i].entry.clone()).collect();
            for &i in &call {
                report.retries += u32::from(items[i].attempts > 0);
                items[i].attempts += 1;
            }
            report.calls += 1;
            let results = match self.bus.put_events(&entries).await {
                Ok(results) if results.len() == call.len() => results,
                Ok(_) => vec![EntryOutcome::Failed { code: "missing_result".to_owned(), retryable: true }; call.len()],
                Err(error) => {
                    vec![EntryOutcome::Failed { code: error.kind, retryable: error.retryable }; call.len()]
                }
            };
            let mut accepted = Vec::new();
            let mut finished = HashSet::new();
            let mut blocked = HashSet::new();
            let mut retry = false;
            for (&i, result) in call.iter().zip(results) {
                match result {
                    EntryOutcome::Accepted => {
                        accepted.push(i);
                        finished.insert(i);
                    }
                    EntryOutcome::Failed { code, retryable } => {
                        if retryable && items[i].attempts < self.max_attempts {
                            retry = true;
                        } else {
                            report.outcomes[items[i].index].outcome = Outcome::Failed { kind: code.clone() };
                            finished.insert(i);
                            blocked.extend(items[i].resource.clone());
                        }
                        items[i].last_error = Some(code);
                    }
                }
            }
            self.record(items, &accepted, expires_at, stop_at, report).await;
            pending.retain(|&i| {
                if finished.contains(&i) {
                    return false;
                }
                if items[i].resource.as_ref().is_some_and(|r| blocked.contains(r)) {
                    let kind = KIND_EARLIER_VERSION_FAILED.to_owned();
                    report.outcomes[items[i].index].outcome = Outcome::Failed { kind };
                    return false;
                }
                true
            });
            if retry {
                failing_rounds += 1;
                if !self.pause(failing_rounds, stop_at).await {
                    break;
                }
            }
        }
        // Out of time: what is left fails with its last error.
        for i in pending {
            let kind = items[i].last_error.clone().unwrap_or_else(|| KIND_DEADLINE.to_owned());
            report.outcomes[items[i].index].outcome = Outcome::Failed { kind };
        }
    }

    /// Records the accepted items' keys (conditional puts, concurrently) and marks them
    /// published. A key not recorded is logged: a later copy of it will be published again.
    async fn record(
        &self,
        items: &[Item],
        accepted: &[usize],
        expires_at: i64,
        stop_at: Instant,
        report: &mut PublishReport,
    ) {
        let results = futures_util::future::join_all(
            accepted.iter().map(|&i| self.record_one(&items[i].key, expires_at, stop_at)),
        )
        .await;
        for (&i, (result, retries)) in accepted.iter().zip(results) {
            let item = &items[i];
            let outcome = &mut report.outcomes[item.index];
            outcome.outcome = Outcome::Published { reference_only: item.reference_only };
            report.retries += retries;
            if let Err(error) = result {
                report.unrecorded += 1;
                warn!(
                    index = item.index,
                    correlation_id = outcome.correlation_id.as_deref().unwrap_or(""),
                    event_type = outcome.event_type.as_deref().unwrap_or(""),
                    kind = %error.kind,
                    "published but not recorded: a later copy of this change will be published again"
                );
            } else {
                debug!(
                    index = item.index,
                    correlation_id = outcome.correlation_id.as_deref().unwrap_or(""),
                    reference_only = item.reference_only,
                    "published"
                );
            }
        }
    }

    /// Records one key, retrying retryable errors a few times; the retries made.
    async fn record_one(&self, key: &str, expires_at: i64, stop_at: Instant) -> (Result<(), CallError>, u32) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.table.record(key, expires_at).await {
                Ok(()) => return (Ok(()), attempt - 1),
                Err(error)
                    if error.retryable
                        && attempt < MAX_RECORD_ATTEMPTS.min(self.max_attempts)
                        && self.pause(attempt, stop_at).await => {}
                Err(error) => return (Err(error), attempt - 1),
            }
        }
    }

    /// Sleeps before retry `attempt` (full jitter); false, without sleeping, when the sleep
    /// would pass `stop_at`.
    async fn pause(&self, attempt: u32, stop_at: Instant) -> bool {
        let delay = self.backoff.delay(attempt);
        if Instant::now() + delay >= stop_at {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

/// The next call: pending items in batch order, skipping any whose resource has an earlier
/// pending version (it waits for that one), until ten entries or the size limit.
fn next_call(items: &[Item], pending: &[usize]) -> Vec<usize> {
    let mut call = Vec::new();
    let mut size = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for &i in pending {
        if let Some(resource) = &items[i].resource
            && !seen.insert(resource)
        {
            continue;
        }
        let entry_size = items[i].entry.size();
        if call.len() == MAX_ENTRIES_PER_CALL || size + entry_size >= MAX_CALL_BYTES {
            break;
        }
        call.push(i);
        size += entry_size;
    }
    call
}

/// The changed resource's identity: from the metadata, else from a PUT's or DELETE's entity.
fn resource_identity<'a>(envelope: &'a Incoming<'a>) -> Option<ResourceRef<'a>> {
    let metadata = envelope.metadata.as_ref()?;
    if let (Some(resource_type), Some(id)) = (&metadata.resource_type, &metadata.id) {
        return Some(ResourceRef { resource_type: resource_type.clone(), id: id.clone() });
    }
    let (Details::Put { entity } | Details::Delete { entity }) = &envelope.details else {
        return None;
    };
    let identity: Identity<'a> = serde_json::from_str(entity.get()).ok()?;
    Some(ResourceRef { resource_type: identity.resource_type?, id: identity.id? })
}

/// The reference-only form of a PUT or DELETE: the entity replaced by `identity`,
/// `metadata.hydrated` false, the rest as received. `None` for other commands.
fn reference_only_json(envelope: &Incoming<'_>, identity: ResourceRef<'_>) -> Option<String> {
    let details = match envelope.details {
        Details::Put { .. } => Details::Put { entity: identity },
        Details::Delete { .. } => Details::Delete { entity: identity },
        _ => return None,
    };
    let mut metadata = envelope.metadata.clone()?;
    metadata.hydrated = false;
    let reference = Envelope {
        version: envelope.version.clone(),
        source: envelope.source.clone(),
        event_type: envelope.event_type.clone(),
        correlation_id: envelope.correlation_id.clone(),
        details,
        metadata: Some(metadata),
    };
    serde_json::to_string(&reference).ok()
}

fn epoch_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
