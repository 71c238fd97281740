//! The change events of a HealthLake datastore: the enrichers' `version 1.0` envelope
//! ([`fhir_pipes_core::Envelope`]) with HealthLake's metadata, written by the hydrator and read
//! by the publisher.
//!
//! | what | `eventType` | `details` |
//! |---|---|---|
//! | a resource written | `<Type>Change` | `PUT`, `entity` the resource as read (meta kept) |
//! | a resource deleted | `<Type>Change` | `DELETE`, `entity` `{resourceType, id}` |
//! | a delete whose id HealthLake hid | `<Type>DeleteUnattributed` | `NOTIFY`, `entity` `{resourceType}` |
//! | an import/export job or datastore event | `ImportJobCompleted`, … | `NOTIFY`, `entity` the event's `detail` |
//! | a signal that cannot be read | `HealthLakeSignalFailed` | `ERROR`, `record` the SQS message |

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The envelope's `source` unless configured otherwise.
pub const DEFAULT_SOURCE: &str = "HealthLake";

/// `eventType` of a signal that cannot be read.
pub const SIGNAL_FAILED_EVENT_TYPE: &str = "HealthLakeSignalFailed";

/// What told the hydrator of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalKind {
    /// A CloudTrail record of the FHIR API call.
    Cloudtrail,
    /// A FHIR Subscription notification naming the resource.
    SubscriptionIdOnly,
    /// A FHIR Subscription notification carrying the resource.
    SubscriptionFullResource,
    /// A HealthLake job or datastore lifecycle event.
    Lifecycle,
    /// A message that could not be read (the event is an `ERROR` carrying it).
    Unreadable,
}

impl From<crate::SignalOrigin> for SignalKind {
    fn from(origin: crate::SignalOrigin) -> Self {
        match origin {
            crate::SignalOrigin::CloudTrail => Self::Cloudtrail,
            crate::SignalOrigin::SubscriptionIdOnly => Self::SubscriptionIdOnly,
            crate::SignalOrigin::SubscriptionFullResource => Self::SubscriptionFullResource,
        }
    }
}

/// `metadata` of a HealthLake change event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeMetadata<'a> {
    /// The datastore the change happened in.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub datastore_id: Option<Cow<'a, str>>,
    /// The resource type (`Patient`), or absent for a lifecycle event.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<Cow<'a, str>>,
    /// The resource id, when known.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// `meta.versionId` of the resource as read.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<Cow<'a, str>>,
    /// `meta.lastUpdated` of the resource as read (or the signal's time for a delete).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Cow<'a, str>>,
    /// What told of the change.
    pub signal: SignalKind,
    /// The signal's own id (CloudTrail eventID, notification event, EventBridge event id).
    #[serde(borrow)]
    pub signal_id: Cow<'a, str>,
    /// The key the publisher de-duplicates by: `<Type>/<id>/_history/<versionId>` for a
    /// version, `<Type>/<id>/_deleted/<epoch second>` for a delete (so the CloudTrail record and
    /// the notification of one delete are one event), `unreadable/<messageId>` for a message
    /// that could not be read, the signal id otherwise.
    #[serde(borrow)]
    pub idempotency_key: Cow<'a, str>,
    /// False when `details.entity` holds only the resource's identity, not the resource (it did
    /// not fit the size limits): the consumer reads it from the datastore.
    pub hydrated: bool,
}

/// `eventType` of a change to `resource_type`.
pub fn change_event_type(resource_type: &str) -> String {
    format!("{resource_type}Change")
}

/// `eventType` of a delete of `resource_type` whose id HealthLake hid.
pub fn unattributed_delete_event_type(resource_type: &str) -> String {
    format!("{resource_type}DeleteUnattributed")
}

/// The idempotency key of a resource version.
pub fn version_key(resource_type: &str, id: &str, version_id: &str) -> String {
    format!("{resource_type}/{id}/_history/{version_id}")
}

/// The idempotency key of the error event of an unreadable message.
pub fn unreadable_key(message_id: &str) -> String {
    format!("unreadable/{message_id}")
}

/// The idempotency key of a delete that happened at `epoch_second`.
pub fn delete_key(resource_type: &str, id: &str, epoch_second: i64) -> String {
    format!("{resource_type}/{id}/_deleted/{epoch_second}")
}
