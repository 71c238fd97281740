//! One SQS message in, typed HealthLake change signals out.
//!
//! An EventBridge Pipe with an SQS source hands its enrichment a JSON array of SQS messages;
//! each message's `body` is a string holding an EventBridge event. [`parse_message`] reads one
//! such message and recognises three families of events:
//!
//! - CloudTrail records of HealthLake's FHIR calls (`source` `aws.healthlake`, `detail-type`
//!   `AWS API Call via CloudTrail`): `CreateResource`, `UpdateResource` and `DeleteResource`
//!   are changes; other calls and failed calls are [`NotAChange`].
//! - FHIR Subscription notifications (R5 backport on R4; the event's `detail` is the
//!   notification Bundle): each notification event's focus is a change, with the resource when
//!   the payload is `full-resource`; handshakes and heartbeats are [`NotAChange`].
//! - HealthLake's own lifecycle events (import and export jobs, data stores).
//!
//! Anything else is a [`SignalError`] that names the message (its `messageId`) and the field,
//! never a value: values may be patient data. Nothing is dropped silently and nothing panics.
//! `fixtures/healthlake-signals/README.md` documents the accepted shapes field by field.

mod cloudtrail;
mod json;
mod lifecycle;
mod subscription;

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::is_valid_datastore_id;
use crate::time::Timestamp;
use json::{Fault, item};

/// The `source` of every event HealthLake (or CloudTrail for it) puts on a bus.
pub const HEALTHLAKE_SOURCE: &str = "aws.healthlake";

/// Everything one SQS message said.
#[derive(Debug)]
pub struct ParsedMessage {
    /// The SQS `messageId`.
    pub message_id: String,
    /// The EventBridge event's `id`.
    pub event_id: String,
    /// The EventBridge event's `source` (`aws.healthlake`, …).
    pub source: String,
    /// The EventBridge event's `detail-type`.
    pub detail_type: String,
    /// The EventBridge event's `time`, when present.
    pub event_time: Option<Timestamp>,
    /// The EventBridge event's `region`, when present.
    pub region: Option<String>,
    /// The EventBridge event's `account`, when present.
    pub account: Option<String>,
    /// What the event means, in notification order (a subscription notification can carry
    /// several changes; the other events carry exactly one signal).
    pub signals: Vec<Signal>,
}

/// One thing a message says.
#[derive(Debug)]
pub enum Signal {
    /// A FHIR resource was (or may have been) created, updated or deleted.
    Change(ChangeSignal),
    /// An import job, export job or data store changed state.
    Lifecycle(LifecycleSignal),
    /// A well-formed event that changes no resource; count it, do nothing else.
    NotAChange {
        /// Why it is not a change.
        reason: NotAChange,
    },
}

/// Where a change signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalOrigin {
    /// A CloudTrail record of a HealthLake write call.
    CloudTrail,
    /// A subscription notification without resources (payload `id-only`).
    SubscriptionIdOnly,
    /// A subscription notification with resource entries (payload `full-resource`).
    SubscriptionFullResource,
}

/// The write a change signal reports, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `CreateResource`, or a notification entry whose request is `POST`.
    Create,
    /// `UpdateResource`, or a notification entry whose request is `PUT` or `PATCH` (a `PUT`
    /// may also have created the resource).
    Update,
    /// `DeleteResource`, or a notification entry whose request is `DELETE`.
    Delete,
}

/// A resource that changed in a HealthLake datastore.
#[derive(Debug)]
pub struct ChangeSignal {
    /// The event family the signal came from.
    pub origin: SignalOrigin,
    /// A stable id for de-duplication: CloudTrail's `eventID`; for a subscription, the
    /// EventBridge event `id` and the notification's `event-number` as `<id>#<number>` (or,
    /// when the event has no number, its position as `<id>@<index>`).
    pub signal_id: String,
    /// The datastore (`requestParameters.datastoreId`, else the event's `resources` ARN), when
    /// known. Checked: `[A-Za-z0-9_-]{1,64}`.
    pub datastore_id: Option<String>,
    /// The resource type. Checked: `[A-Z][A-Za-z]+`.
    pub resource_type: String,
    /// The resource id; `None` when CloudTrail hid it (`HIDDEN_DUE_TO_SECURITY_REASONS`) or
    /// left it out. Checked: a FHIR id (`[A-Za-z0-9\-.]{1,64}`, not `.` or `..`).
    pub resource_id: Option<String>,
    /// What was done, when the signal says (always for CloudTrail; for a subscription only
    /// when a resource entry carries a request method).
    pub operation: Option<Operation>,
    /// When the change happened: CloudTrail's `eventTime`, or the notification event's
    /// `timestamp`, when present.
    pub event_time: Option<Timestamp>,
    /// The resource itself, byte for byte as the notification carried it (payload
    /// `full-resource` only; `None` for a deleted resource).
    pub resource: Option<Box<RawValue>>,
    /// The version: the resource's `meta.versionId`, else the `_history` part of the focus
    /// reference, when present. Checked like an id.
    pub version_id: Option<String>,
    /// The resource's `meta.lastUpdated`, when the resource is there and has it.
    pub last_updated: Option<Timestamp>,
}

/// An import job, export job or data store changed state.
#[derive(Debug)]
pub struct LifecycleSignal {
    /// Which change (from the `detail-type`).
    pub event_type: LifecycleEventType,
    /// The EventBridge event `id` (for de-duplication).
    pub signal_id: String,
    /// `detail.datastoreId`. Checked like [`ChangeSignal::datastore_id`].
    pub datastore_id: String,
    /// `detail.jobId`, when present.
    pub job_id: Option<String>,
    /// `detail.submitTime` as sent (its format is not documented; a number keeps its digits).
    pub submit_time: Option<String>,
    /// `detail.inputDataConfig.s3Uri` (import jobs), when present.
    pub input_s3_uri: Option<String>,
    /// `detail.outputDataConfig.s3Uri` (export jobs), when present.
    pub output_s3_uri: Option<String>,
    /// `detail.datastoreName`, when present.
    pub datastore_name: Option<String>,
    /// `detail.datastoreEndpoint`, when present.
    pub datastore_endpoint: Option<String>,
    /// `detail.datastoreTypeVersion` (`R4`), when present.
    pub datastore_type_version: Option<String>,
    /// The EventBridge event's `time`, when present.
    pub event_time: Option<Timestamp>,
    /// The whole `detail`, byte for byte, to pass on as the entity of a lifecycle envelope.
    pub detail: Box<RawValue>,
}

/// HealthLake's lifecycle events, one per `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEventType {
    /// `Import Job Submitted`.
    ImportJobSubmitted,
    /// `Import Job Queued`.
    ImportJobQueued,
    /// `Import Job In Progress`.
    ImportJobInProgress,
    /// `Import Job Completed`.
    ImportJobCompleted,
    /// `Import Job Completed With Errors`.
    ImportJobCompletedWithErrors,
    /// `Import Job Failed`.
    ImportJobFailed,
    /// `Export Job Submitted`.
    ExportJobSubmitted,
    /// `Export Job Queued`.
    ExportJobQueued,
    /// `Export Job In Progress`.
    ExportJobInProgress,
    /// `Export Job Completed`.
    ExportJobCompleted,
    /// `Export Job Completed With Errors`.
    ExportJobCompletedWithErrors,
    /// `Export Job Failed`.
    ExportJobFailed,
    /// `Data Store Creating`.
    DataStoreCreating,
    /// `Data Store Creation Failed`.
    DataStoreCreationFailed,
    /// `Data Store Active`.
    DataStoreActive,
    /// `Data Store Deleting`.
    DataStoreDeleting,
    /// `Data Store Deleted`.
    DataStoreDeleted,
}

impl LifecycleEventType {
    /// Every lifecycle event type, in the order of HealthLake's documentation.
    pub const ALL: [Self; 17] = [
        Self::ImportJobSubmitted,
        Self::ImportJobQueued,
        Self::ImportJobInProgress,
        Self::ImportJobCompleted,
        Self::ImportJobCompletedWithErrors,
        Self::ImportJobFailed,
        Self::ExportJobSubmitted,
        Self::ExportJobQueued,
        Self::ExportJobInProgress,
        Self::ExportJobCompleted,
        Self::ExportJobCompletedWithErrors,
        Self::ExportJobFailed,
        Self::DataStoreCreating,
        Self::DataStoreCreationFailed,
        Self::DataStoreActive,
        Self::DataStoreDeleting,
        Self::DataStoreDeleted,
    ];

    /// The EventBridge `detail-type` (`Import Job Completed With Errors`).
    pub const fn detail_type(self) -> &'static str {
        match self {
            Self::ImportJobSubmitted => "Import Job Submitted",
            Self::ImportJobQueued => "Import Job Queued",
            Self::ImportJobInProgress => "Import Job In Progress",
            Self::ImportJobCompleted => "Import Job Completed",
            Self::ImportJobCompletedWithErrors => "Import Job Completed With Errors",
            Self::ImportJobFailed => "Import Job Failed",
            Self::ExportJobSubmitted => "Export Job Submitted",
            Self::ExportJobQueued => "Export Job Queued",
            Self::ExportJobInProgress => "Export Job In Progress",
            Self::ExportJobCompleted => "Export Job Completed",
            Self::ExportJobCompletedWithErrors => "Export Job Completed With Errors",
            Self::ExportJobFailed => "Export Job Failed",
            Self::DataStoreCreating => "Data Store Creating",
            Self::DataStoreCreationFailed => "Data Store Creation Failed",
            Self::DataStoreActive => "Data Store Active",
            Self::DataStoreDeleting => "Data Store Deleting",
            Self::DataStoreDeleted => "Data Store Deleted",
        }
    }

    /// The envelope's `eventType`: the detail-type in PascalCase (`ImportJobCompletedWithErrors`).
    pub const fn event_type(self) -> &'static str {
        match self {
            Self::ImportJobSubmitted => "ImportJobSubmitted",
            Self::ImportJobQueued => "ImportJobQueued",
            Self::ImportJobInProgress => "ImportJobInProgress",
            Self::ImportJobCompleted => "ImportJobCompleted",
            Self::ImportJobCompletedWithErrors => "ImportJobCompletedWithErrors",
            Self::ImportJobFailed => "ImportJobFailed",
            Self::ExportJobSubmitted => "ExportJobSubmitted",
            Self::ExportJobQueued => "ExportJobQueued",
            Self::ExportJobInProgress => "ExportJobInProgress",
            Self::ExportJobCompleted => "ExportJobCompleted",
            Self::ExportJobCompletedWithErrors => "ExportJobCompletedWithErrors",
            Self::ExportJobFailed => "ExportJobFailed",
            Self::DataStoreCreating => "DataStoreCreating",
            Self::DataStoreCreationFailed => "DataStoreCreationFailed",
            Self::DataStoreActive => "DataStoreActive",
            Self::DataStoreDeleting => "DataStoreDeleting",
            Self::DataStoreDeleted => "DataStoreDeleted",
        }
    }

    /// The lifecycle event type of an EventBridge `detail-type`, if it is one.
    pub fn from_detail_type(detail_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event_type| event_type.detail_type() == detail_type)
    }

    /// True for import job events.
    pub const fn is_import_job(self) -> bool {
        matches!(
            self,
            Self::ImportJobSubmitted
                | Self::ImportJobQueued
                | Self::ImportJobInProgress
                | Self::ImportJobCompleted
                | Self::ImportJobCompletedWithErrors
                | Self::ImportJobFailed
        )
    }
}

impl fmt::Display for LifecycleEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.event_type())
    }
}

/// Why a well-formed event changes no resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAChange {
    /// A CloudTrail record of a HealthLake call other than Create/Update/DeleteResource
    /// (`ReadResource`, `SearchWithGet`, `StartFHIRImportJob`…).
    NotAWriteCall {
        /// CloudTrail's `eventName` (an API name, not patient data).
        event_name: String,
    },
    /// A CloudTrail record of a write call that failed: a `responseElements.statusCode` outside
    /// 200–299, or an `errorCode`.
    FailedCall {
        /// `responseElements.statusCode`, when present.
        status_code: Option<i64>,
    },
    /// A subscription handshake (sent when a subscription is activated).
    SubscriptionHandshake,
    /// A subscription heartbeat.
    SubscriptionHeartbeat,
}

/// Why one SQS message cannot be turned into signals. The message names the SQS message and
/// the field (a JSON path such as `body.detail.requestParameters.resourceType`), never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS message {}: `{field}` {kind}", MessageName(.message_id.as_deref()))]
pub struct SignalError {
    /// The SQS `messageId`, when the message has a readable one.
    pub message_id: Option<String>,
    /// The JSON path of the field at fault, from the SQS message (`messageId`, `body`,
    /// `body.detail.entry[0].resource`, …).
    pub field: String,
    /// What is wrong with it.
    pub kind: SignalErrorKind,
}

struct MessageName<'a>(Option<&'a str>);

impl fmt::Display for MessageName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(message_id) => f.write_str(message_id),
            None => f.write_str("(no readable messageId)"),
        }
    }
}

/// What is wrong with a field. The text follows the field's name in messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalErrorKind {
    /// The field is absent or `null`.
    #[error("is missing")]
    Missing,
    /// The field has another JSON type.
    #[error("is not {expected}")]
    WrongType {
        /// The JSON type expected (`a string`, `an object`, …).
        expected: &'static str,
    },
    /// The SQS body is not JSON.
    #[error("is not valid JSON")]
    NotJson,
    /// An object names one key twice.
    #[error("is an object with a repeated key")]
    RepeatedKey,
    /// Not a FHIR resource type.
    #[error("is not a FHIR resource type ([A-Z][A-Za-z]+)")]
    InvalidResourceType,
    /// Not a FHIR id.
    #[error("is not a FHIR id ([A-Za-z0-9-.]{{1,64}})")]
    InvalidId,
    /// Not a datastore id.
    #[error("is not a datastore id ([A-Za-z0-9_-]{{1,64}})")]
    InvalidDatastoreId,
    /// Not an RFC 3339 date-time with an offset.
    #[error("is not an RFC 3339 date-time with an offset")]
    InvalidTime,
    /// Not a `Type/id` reference.
    #[error("is not a reference Type/id or Type/id/_history/version, relative or absolute")]
    InvalidReference,
    /// A value this parser does not handle (an unknown `source`, `detail-type`, Bundle `type`…).
    #[error("is none of {accepted}")]
    Unsupported {
        /// What is accepted there.
        accepted: &'static str,
    },
}

impl SignalErrorKind {
    /// A short, stable name for metrics and logs (`missing_field`, `invalid_id`, …).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::NotJson => "invalid_json",
            Self::RepeatedKey => "repeated_key",
            Self::InvalidResourceType => "invalid_resource_type",
            Self::InvalidId => "invalid_id",
            Self::InvalidDatastoreId => "invalid_datastore_id",
            Self::InvalidTime => "invalid_time",
            Self::InvalidReference => "invalid_reference",
            Self::Unsupported { .. } => "unsupported_value",
        }
    }
}

#[derive(Deserialize)]
struct SqsMessageFields<'a> {
    #[serde(rename = "messageId", borrow)]
    message_id: Option<&'a RawValue>,
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventFields<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(rename = "detail-type", borrow)]
    detail_type: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    account: Option<&'a RawValue>,
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow)]
    region: Option<&'a RawValue>,
    #[serde(borrow)]
    resources: Option<&'a RawValue>,
    #[serde(borrow)]
    detail: Option<&'a RawValue>,
}

/// The EventBridge event, read, for the three families' parsers.
struct Event<'a> {
    id: String,
    event_time: Option<Timestamp>,
    /// The datastore id of the first HealthLake datastore ARN in `resources`.
    datastore_from_resources: Option<String>,
    detail: &'a RawValue,
}

/// Reads one SQS message (as an EventBridge Pipe delivers it) into its signals.
///
/// The `messageId` is read first, so every error after it names the message. The `body` is
/// parsed once; resources and lifecycle details are copied out of it byte for byte.
pub fn parse_message(message: &RawValue) -> Result<ParsedMessage, SignalError> {
    let fields: SqsMessageFields<'_> = json::object(message, "message").map_err(|fault| fault.into_error(None))?;
    let message_id = json::required_string(fields.message_id, "messageId").map_err(|fault| fault.into_error(None))?;
    match parse_identified_message(&fields) {
        Ok((event, signals)) => Ok(ParsedMessage {
            message_id,
            event_id: event.event_id,
            source: event.source,
            detail_type: event.detail_type,
            event_time: event.event_time,
            region: event.region,
            account: event.account,
            signals,
        }),
        Err(fault) => Err(fault.into_error(Some(message_id))),
    }
}

/// The envelope part of a [`ParsedMessage`].
struct EventSummary {
    event_id: String,
    source: String,
    detail_type: String,
    event_time: Option<Timestamp>,
    region: Option<String>,
    account: Option<String>,
}

fn parse_identified_message(fields: &SqsMessageFields<'_>) -> Result<(EventSummary, Vec<Signal>), Fault> {
    if let Some(event_source) = json::optional_string(fields.event_source, "eventSource")?
        && event_source != "aws:sqs"
    {
        return Err(Fault::new("eventSource", SignalErrorKind::Unsupported { accepted: "aws:sqs" }));
    }
    let body = json::required_string(fields.body, "body")?;
    let body: &RawValue = serde_json::from_str(&body).map_err(|_| Fault::new("body", SignalErrorKind::NotJson))?;
    let event: EventFields<'_> = json::object(body, "body")?;

    let event_id = json::required_string(event.id, "body.id")?;
    let source = json::required_string(event.source, "body.source")?;
    let detail_type = json::required_string(event.detail_type, "body.detail-type")?;
    let event_time = optional_time(event.time, "body.time")?;
    let region = json::optional_string(event.region, "body.region")?;
    let account = json::optional_string(event.account, "body.account")?;
    let datastore_from_resources = datastore_from_resources(event.resources)?;
    let detail = json::required(event.detail, "body.detail")?;

    let read = Event { id: event_id, event_time, datastore_from_resources, detail };
    let signals = if source == HEALTHLAKE_SOURCE && detail_type == cloudtrail::DETAIL_TYPE {
        vec![cloudtrail::parse(&read)?]
    } else if let Some(event_type) =
        LifecycleEventType::from_detail_type(&detail_type).filter(|_| source == HEALTHLAKE_SOURCE)
    {
        vec![lifecycle::parse(&read, event_type)?]
    } else if subscription::is_notification(detail) {
        subscription::parse(&read)?
    } else if source != HEALTHLAKE_SOURCE {
        return Err(Fault::new(
            "body.source",
            SignalErrorKind::Unsupported { accepted: "aws.healthlake (or a FHIR Bundle as the detail)" },
        ));
    } else {
        return Err(Fault::new(
            "body.detail-type",
            SignalErrorKind::Unsupported {
                accepted: "AWS API Call via CloudTrail, the import, export and data store lifecycle events \
                           (or a FHIR Bundle as the detail)",
            },
        ));
    };
    let summary = EventSummary { event_id: read.id, source, detail_type, event_time, region, account };
    Ok((summary, signals))
}

/// The datastore id of the first `arn:<partition>:healthlake:<region>:<account>:datastore/fhir/<id>`
/// in the event's `resources`; other ARNs are skipped.
fn datastore_from_resources(resources: Option<&RawValue>) -> Result<Option<String>, Fault> {
    let Some(resources) = resources else { return Ok(None) };
    for (index, resource) in json::array(resources, "body.resources")?.into_iter().enumerate() {
        let path = item("body.resources", index);
        let arn = json::string(resource, &path)?;
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("healthlake"), Some(_region), Some(_account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(datastore_id) = resource.strip_prefix("datastore/fhir/") else { continue };
        if !is_valid_datastore_id(datastore_id) {
            return Err(Fault::new(path, SignalErrorKind::InvalidDatastoreId));
        }
        return Ok(Some(datastore_id.to_owned()));
    }
    Ok(None)
}

impl Fault {
    fn into_error(self, message_id: Option<String>) -> SignalError {
        SignalError { message_id, field: self.field, kind: self.kind }
    }
}

/// Reads an optional RFC 3339 time at `path`.
fn optional_time(value: Option<&RawValue>, path: &str) -> Result<Option<Timestamp>, Fault> {
    json::optional_string(value, path)?
        .map(|time| Timestamp::parse_rfc3339(&time).ok_or_else(|| Fault::new(path, SignalErrorKind::InvalidTime)))
        .transpose()
}

/// Reads an optional datastore id at `path`, checked.
fn optional_datastore_id(value: Option<&RawValue>, path: &str) -> Result<Option<String>, Fault> {
    let datastore_id = json::optional_string(value, path)?;
    if datastore_id.as_deref().is_some_and(|id| !is_valid_datastore_id(id)) {
        return Err(Fault::new(path, SignalErrorKind::InvalidDatastoreId));
    }
    Ok(datastore_id)
}
