//! Writing a batch of events: in batch order per resource, in parallel across resources, each
//! request retried within the deadline; one outcome per event.

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, Instant},
};

use bytes::Bytes;
use fhir_pipes_core::Backoff;
use futures_util::{StreamExt, stream};
use http::StatusCode;
use serde_json::value::RawValue;
use tracing::{debug, warn};

use crate::{
    client::{FhirStoreClient, RequestError, Response},
    event::{Action, ResourceKey, TargetEvent},
    outcome::Outcome,
};

/// The least time left for which a retry is still started.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(100);

/// Writes batches of events into one datastore.
#[derive(Debug)]
pub struct HealthLakeWriter {
    pub(crate) client: FhirStoreClient,
    pub(crate) max_concurrency: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) deadline_margin: Duration,
}

/// What the store did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `PUT` created the resource (201).
    Created,
    /// `PUT` updated it (200).
    Updated,
    /// `DELETE` deleted it.
    Deleted,
    /// `DELETE` found it gone already (404/410): the same end state.
    AlreadyGone,
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// An ERROR event of the enrichment: never sent to the store.
    ErrorEvent {
        /// The error kind.
        kind: String,
        /// The field at fault.
        field: String,
    },
    /// The event cannot be read.
    InvalidEvent(String),
    /// The store refused it (a 4xx that retrying cannot fix).
    Rejected {
        /// The status.
        status: u16,
        /// The store's OperationOutcome, when it sent one.
        outcome: Option<Outcome>,
    },
    /// Still failing (429, 5xx, 409, 412, a connection error) when the time ran out.
    GaveUp {
        /// The last answer's status, or the transport error.
        last: String,
        /// Its OperationOutcome, when it had one.
        outcome: Option<Outcome>,
        /// Requests made.
        attempts: u32,
    },
    /// Not tried: an earlier change to the same resource failed and later ones must not overtake it.
    Blocked {
        /// The correlationId of the failed change.
        by: Option<String>,
    },
    /// The request could not be signed (no credentials).
    Signing(String),
}

/// An event that was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub kind: FailureKind,
}

impl From<FailureKind> for Failure {
    fn from(kind: FailureKind) -> Self {
        Self { kind }
    }
}

impl Failure {
    /// True when trying again later may succeed (the Pipe retries it): throttling, outages,
    /// blocked changes; false for ERROR events, invalid events and refused resources.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, FailureKind::GaveUp { .. } | FailureKind::Blocked { .. } | FailureKind::Signing(_))
    }

    /// The store refused the credentials (401/403): no request can pass until they are fixed.
    pub fn is_denied(&self) -> bool {
        matches!(self.kind, FailureKind::Rejected { status: 401 | 403, .. })
    }

    /// A short, PHI-free kind for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            FailureKind::ErrorEvent { .. } => "error_event",
            FailureKind::InvalidEvent(_) => "invalid_event",
            FailureKind::Rejected { .. } => "rejected",
            FailureKind::GaveUp { .. } => "gave_up",
            FailureKind::Blocked { .. } => "blocked",
            FailureKind::Signing(_) => "signing",
        }
    }

    /// The whole story, with the store's diagnostics (which may quote values): for reports and
    /// dead letters, never for logs.
    pub fn report(&self) -> String {
        match &self.kind {
            FailureKind::Rejected { status, outcome: Some(outcome) } => {
                format!("rejected with {status}: {}", outcome.text())
            }
            FailureKind::GaveUp { last, outcome: Some(outcome), attempts } => {
                format!("gave up after {attempts} attempt(s), last {last}: {}", outcome.text())
            }
            _ => self.to_string(),
        }
    }
}

/// PHI-free: statuses, issue codes and FHIRPaths, error kinds and fields; no diagnostics.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FailureKind::ErrorEvent { kind, field } => {
                write!(f, "error event ({kind} at `{field}`): not sent to the store")
            }
            FailureKind::InvalidEvent(message) => f.write_str(message),
            FailureKind::Rejected { status, outcome } => {
                write!(f, "rejected with {status}")?;
                match outcome.as_ref().map(Outcome::codes).filter(|c| !c.is_empty()) {
                    Some(codes) => write!(f, " ({codes})"),
                    None => Ok(()),
                }
            }
            FailureKind::GaveUp { last, attempts, .. } => write!(f, "gave up after {attempts} attempt(s), last {last}"),
            FailureKind::Blocked { by: Some(by) } => {
                write!(f, "not tried: the earlier change {by} to the resource failed")
            }
            FailureKind::Blocked { by: None } => f.write_str("not tried: an earlier change to the resource failed"),
            FailureKind::Signing(message) => f.write_str(message),
        }
    }
}

/// The outcome of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    /// The event's correlationId (the stream record's eventID).
    pub correlation_id: Option<String>,
    /// The resource type, when the event names one (for logs).
    pub resource_type: Option<String>,
    /// Applied, or why not.
    pub result: Result<Applied, Failure>,
    /// Requests made (retries included).
    pub attempts: u32,
}

/// The outcomes of a batch, in the order of its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// One per event.
    pub outcomes: Vec<EventOutcome>,
}

impl WriteReport {
    /// The events that were not applied, with their index in the batch.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &EventOutcome, &Failure)> {
        self.outcomes.iter().enumerate().filter_map(|(i, o)| o.result.as_ref().err().map(|f| (i, o, f)))
    }

    /// How many events were applied with this result.
    pub fn count(&self, applied: Applied) -> usize {
        self.outcomes.iter().filter(|o| o.result.as_ref().ok() == Some(&applied)).count()
    }

    /// Requests beyond the first of each event.
    pub fn retries(&self) -> u32 {
        self.outcomes.iter().map(|o| o.attempts.saturating_sub(1)).sum()
    }
}

/// What an answer means for the request.
enum Verdict {
    Done(Applied),
    Refused(FailureKind),
    Retry { last: String, outcome: Option<Outcome>, retry_after: Option<Duration> },
}

impl HealthLakeWriter {
    /// The latest time a request may still be started for an invocation ending at `deadline`.
    fn work_deadline(&self, deadline: Instant) -> Instant {
        deadline.checked_sub(self.deadline_margin).unwrap_or(deadline)
    }

    /// Writes `events` (enrichment envelopes), retrying until `deadline` (less the margin).
    pub async fn write(&self, events: &[Box<RawValue>], deadline: Instant) -> WriteReport {
        let deadline = self.work_deadline(deadline);
        let parsed: Vec<TargetEvent<'_>> = events.iter().map(|e| TargetEvent::parse(e)).collect();
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; parsed.len()];

        // Changes to one resource form a group, applied in batch order; groups run in parallel.
        // (Groups hold positions in `changes`: a stream of futures over borrowed groups trips
        // rustc's `Send` inference for higher-ranked lifetimes in callers that spawn the run.)
        let mut changes: Vec<Change<'_>> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<&ResourceKey, usize> = HashMap::new();
        for (index, event) in parsed.iter().enumerate() {
            let correlation_id = event.correlation_id.as_deref();
            let (key, body) = match &event.action {
                Ok(Action::Put { key, body }) => (key, Some(*body)),
                Ok(Action::Delete { key }) => (key, None),
                Ok(Action::Error { kind, field }) => {
                    let failure = FailureKind::ErrorEvent { kind: kind.clone(), field: field.clone() };
                    outcomes[index] = Some(outcome_of(correlation_id, None, Err(failure.into()), 0));
                    continue;
                }
                Err(error) => {
                    let failure = FailureKind::InvalidEvent(error.to_string());
                    outcomes[index] = Some(outcome_of(correlation_id, None, Err(failure.into()), 0));
                    continue;
                }
            };
            let group = *group_of.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(changes.len());
            changes.push(Change { index, key, body, correlation_id });
        }

        let changes = &changes;
        let done: Vec<Vec<(usize, EventOutcome)>> = stream::iter(groups)
            .map(|group| self.write_group(changes, group, deadline))
            .buffer_unordered(self.max_concurrency)
            .collect()
            .await;
        for (index, outcome) in done.into_iter().flatten() {
            outcomes[index] = Some(outcome);
        }
        WriteReport { outcomes: outcomes.into_iter().flatten().collect() }
    }

    /// One resource's changes, in order. After a change that may still succeed later fails, the
    /// later ones are not tried (a retry of the earlier one would undo them). After a refused
    /// change they go on: it can never be applied, so it cannot overtake them.
    async fn write_group(
        &self,
        changes: &[Change<'_>],
        group: Vec<usize>,
        deadline: Instant,
    ) -> Vec<(usize, EventOutcome)> {
        let mut results = Vec::with_capacity(group.len());
        let mut blocked_by: Option<Option<String>> = None;
        for change in group.into_iter().map(|position| &changes[position]) {
            let (result, attempts) = match &blocked_by {
                Some(by) => (Err(FailureKind::Blocked { by: by.clone() }.into()), 0),
                None => self.apply(change, deadline).await,
            };
            if let Err(failure) = &result
                && failure.is_retryable()
                && blocked_by.is_none()
            {
                blocked_by = Some(change.correlation_id.map(str::to_owned));
            }
            let resource_type = Some(change.key.resource_type.as_str());
            results.push((change.index, outcome_of(change.correlation_id, resource_type, result, attempts)));
        }
        results
    }

    /// One change, retried while the answer says retrying may help and time is left.
    async fn apply(&self, change: &Change<'_>, deadline: Instant) -> (Result<Applied, Failure>, u32) {
        let key = change.key;
        let body = change.body.map(|body| Bytes::copy_from_slice(body.get().as_bytes()));
        let mut attempts = 0;
        let mut last_failure = ("no time left before the deadline".to_owned(), None);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let (last, outcome) = last_failure;
                return (Err(FailureKind::GaveUp { last, outcome, attempts }.into()), attempts);
            }
            attempts += 1;
            let timeout = self.request_timeout.min(remaining);
            let answer = match &body {
                Some(body) => self.client.put(key, body.clone(), timeout).await,
                None => self.client.delete(key, timeout).await,
            };
            // A retry the deadline cut short says nothing about the store: keep the answer before.
            let cut_short =
                attempts > 1 && timeout < self.request_timeout && matches!(answer, Err(RequestError::Timeout(_)));
            let retry_after = match verdict(answer, body.is_none()) {
                Verdict::Done(applied) => return (Ok(applied), attempts),
                Verdict::Refused(failure) => return (Err(failure.into()), attempts),
                Verdict::Retry { last, outcome, retry_after } => {
                    if !cut_short {
                        last_failure = (last, outcome);
                    }
                    retry_after
                }
            };
            let delay = retry_after.unwrap_or_else(|| self.backoff.delay(attempts)).min(self.backoff.cap);
            // Not worth starting a request with less time than this left.
            if Instant::now() + delay + MIN_REQUEST_TIME.min(self.request_timeout) >= deadline {
                let (last, outcome) = last_failure;
                return (Err(FailureKind::GaveUp { last, outcome, attempts }.into()), attempts);
            }
            debug!(
                event_id = change.correlation_id.unwrap_or("-"),
                resource = %key.resource_type,
                attempt = attempts,
                last = %last_failure.0,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// A PUT or DELETE of one event.
struct Change<'e> {
    index: usize,
    key: &'e ResourceKey,
    /// The resource of a PUT; `None` for a DELETE.
    body: Option<&'e RawValue>,
    correlation_id: Option<&'e str>,
}

fn outcome_of(
    correlation_id: Option<&str>,
    resource_type: Option<&str>,
    result: Result<Applied, Failure>,
    attempts: u32,
) -> EventOutcome {
    EventOutcome {
        correlation_id: correlation_id.map(str::to_owned),
        resource_type: resource_type.map(str::to_owned),
        result,
        attempts,
    }
}

/// Success, refusal or retry, by status: DELETE's 404/410 mean the resource is gone (success);
/// 404 (a PUT), 408, 409, 412, 429 and 5xx may pass later; other 4xx (and 3xx) will not.
fn verdict(answer: Result<Response, RequestError>, is_delete: bool) -> Verdict {
    let response = match answer {
        Ok(response) => response,
        Err(RequestError::Sign(error)) => {
            return Verdict::Refused(FailureKind::Signing(error.to_string()));
        }
        Err(error) => return Verdict::Retry { last: error.to_string(), outcome: None, retry_after: None },
    };
    let status = response.status;
    if status.is_success() {
        let applied = match (is_delete, status) {
            (true, _) => Applied::Deleted,
            (false, StatusCode::CREATED) => Applied::Created,
            (false, _) => Applied::Updated,
        };
        return Verdict::Done(applied);
    }
    if is_delete && matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
        return Verdict::Done(Applied::AlreadyGone);
    }
    let outcome = Outcome::parse(&response.body);
    let retryable = status.is_server_error()
        || matches!(
            status,
            StatusCode::NOT_FOUND
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::CONFLICT
                | StatusCode::PRECONDITION_FAILED
                | StatusCode::TOO_MANY_REQUESTS
        );
    if retryable {
        Verdict::Retry { last: format!("status {}", status.as_u16()), outcome, retry_after: response.retry_after }
    } else {
        Verdict::Refused(FailureKind::Rejected { status: status.as_u16(), outcome })
    }
}

/// Logs one line per failed event: eventID, resource type, failure kind, statuses and codes.
pub fn log_failures(report: &WriteReport) {
    for (index, outcome, failure) in report.failures() {
        warn!(
            event_id = outcome.correlation_id.as_deref().unwrap_or("-"),
            index,
            resource = outcome.resource_type.as_deref().unwrap_or("-"),
            kind = failure.kind_name(),
            retryable = failure.is_retryable(),
            attempts = outcome.attempts,
            reason = %failure,
            "event not written"
        );
    }
}
