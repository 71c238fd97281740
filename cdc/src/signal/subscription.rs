//! FHIR Subscription notifications (R5 backport on R4) as an EventBridge event's `detail`.
//!
//! The notification is a Bundle (`type` `history`, or R5's `subscription-notification`) whose
//! first entry is the notification status, either as the R4 backport's `Parameters` or as an
//! R4B/R5 `SubscriptionStatus`. Each notification event's `focus` is one change. Further
//! entries carry the focus resources when the payload is `full-resource`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Fault, child, item};
use super::{ChangeSignal, Event, NotAChange, Operation, Signal, SignalErrorKind, SignalOrigin};
use crate::ids::{is_valid_fhir_id, is_valid_resource_type};
use crate::time::Timestamp;

/// True when the event's `detail` is a FHIR Bundle (a notification, or a malformed one).
pub(super) fn is_notification(detail: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: Option<&'a RawValue>,
    }
    serde_json::from_str::<Probe<'_>>(detail.get())
        .ok()
        .and_then(|probe| probe.resource_type)
        .is_some_and(|resource_type| resource_type.get() == "\"Bundle\"")
}

#[derive(Deserialize)]
struct BundleFields<'a> {
    #[serde(rename = "type", borrow)]
    bundle_type: Option<&'a RawValue>,
    #[serde(borrow)]
    entry: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EntryFields<'a> {
    #[serde(rename = "fullUrl", borrow)]
    full_url: Option<&'a RawValue>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RequestFields<'a> {
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    url: Option<&'a RawValue>,
}

/// The status resource: the fields of `Parameters` and of `SubscriptionStatus` together.
#[derive(Deserialize)]
struct StatusFields<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<&'a RawValue>,
    #[serde(borrow)]
    parameter: Option<&'a RawValue>,
    #[serde(rename = "type", borrow)]
    notification_type: Option<&'a RawValue>,
    #[serde(rename = "notificationEvent", borrow)]
    notification_event: Option<&'a RawValue>,
}

/// A `Parameters.parameter` or one of its `part`s, with the value types the status uses.
#[derive(Deserialize)]
struct ParameterFields<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    part: Option<&'a RawValue>,
    #[serde(rename = "valueCode", borrow)]
    value_code: Option<&'a RawValue>,
    #[serde(rename = "valueString", borrow)]
    value_string: Option<&'a RawValue>,
    #[serde(rename = "valueInteger64", borrow)]
    value_integer64: Option<&'a RawValue>,
    #[serde(rename = "valueUnsignedInt", borrow)]
    value_unsigned_int: Option<&'a RawValue>,
    #[serde(rename = "valuePositiveInt", borrow)]
    value_positive_int: Option<&'a RawValue>,
    #[serde(rename = "valueInteger", borrow)]
    value_integer: Option<&'a RawValue>,
    #[serde(rename = "valueInstant", borrow)]
    value_instant: Option<&'a RawValue>,
    #[serde(rename = "valueDateTime", borrow)]
    value_date_time: Option<&'a RawValue>,
    #[serde(rename = "valueReference", borrow)]
    value_reference: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NotificationEventFields<'a> {
    #[serde(rename = "eventNumber", borrow)]
    event_number: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    focus: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ReferenceFields<'a> {
    #[serde(borrow)]
    reference: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResourceFields<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MetaFields<'a> {
    #[serde(rename = "versionId", borrow)]
    version_id: Option<&'a RawValue>,
    #[serde(rename = "lastUpdated", borrow)]
    last_updated: Option<&'a RawValue>,
}

/// The status's `type`.
enum NotificationType {
    EventNotification,
    Handshake,
    Heartbeat,
}

/// One notification event, read.
struct NotificationEvent {
    number: Option<String>,
    timestamp: Option<Timestamp>,
    focus: Reference,
}

/// A reference to a resource, `Type/id[/_history/version]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) resource_type: String,
    pub(crate) id: String,
    pub(crate) version: Option<String>,
}

/// A Bundle entry after the status: what it is about and what it carries.
struct ResourceEntry<'a> {
    /// `(resourceType, id)`, from the resource, else `fullUrl`, else `request.url`.
    key: Option<(String, String)>,
    resource: Option<ResourceRead<'a>>,
    operation: Option<Operation>,
}

/// A resource carried by an entry, with the few fields read from it.
struct ResourceRead<'a> {
    raw: &'a RawValue,
    version_id: Option<String>,
    last_updated: Option<Timestamp>,
}

const STATUS_PATH: &str = "body.detail.entry[0].resource";

/// The signals of one notification.
pub(super) fn parse(event: &Event<'_>) -> Result<Vec<Signal>, Fault> {
    let bundle: BundleFields<'_> = json::object(event.detail, "body.detail")?;
    let bundle_type = json::required_string(bundle.bundle_type, "body.detail.type")?;
    if bundle_type != "history" && bundle_type != "subscription-notification" {
        return Err(Fault::new(
            "body.detail.type",
            SignalErrorKind::Unsupported { accepted: "history, subscription-notification" },
        ));
    }
    let entries = json::array(json::required(bundle.entry, "body.detail.entry")?, "body.detail.entry")?;
    let Some((status_entry, resource_entries)) = entries.split_first() else {
        return Err(Fault::new("body.detail.entry[0]", SignalErrorKind::Missing));
    };
    let status_entry: EntryFields<'_> = json::object(status_entry, "body.detail.entry[0]")?;
    let status = json::required(status_entry.resource, STATUS_PATH)?;
    let (notification_type, events) = read_status(status)?;
    match notification_type {
        NotificationType::Handshake => {
            return Ok(vec![Signal::NotAChange { reason: NotAChange::SubscriptionHandshake }]);
        }
        NotificationType::Heartbeat => {
            return Ok(vec![Signal::NotAChange { reason: NotAChange::SubscriptionHeartbeat }]);
        }
        NotificationType::EventNotification => {}
    }

    let resource_entries = resource_entries
        .iter()
        .enumerate()
        .map(|(index, entry)| read_entry(entry, &item("body.detail.entry", index + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let origin = if resource_entries.iter().any(|entry| entry.resource.is_some()) {
        SignalOrigin::SubscriptionFullResource
    } else {
        SignalOrigin::SubscriptionIdOnly
    };

    let signals = events
        .into_iter()
        .enumerate()
        .map(|(index, notification_event)| {
            let focus = notification_event.focus;
            let entry = resource_entries.iter().find(|entry| {
                entry
                    .key
                    .as_ref()
                    .is_some_and(|(resource_type, id)| *resource_type == focus.resource_type && *id == focus.id)
            });
            let resource = entry.and_then(|entry| entry.resource.as_ref());
            let signal_id = match &notification_event.number {
                Some(number) => format!("{}#{number}", event.id),
                None => format!("{}@{index}", event.id),
            };
            Signal::Change(ChangeSignal {
                origin,
                signal_id,
                datastore_id: event.datastore_from_resources.clone(),
                resource_type: focus.resource_type,
                resource_id: Some(focus.id),
                operation: entry.and_then(|entry| entry.operation),
                event_time: notification_event.timestamp,
                resource: resource.map(|resource| resource.raw.to_owned()),
                version_id: resource.and_then(|resource| resource.version_id.clone()).or(focus.version),
                last_updated: resource.and_then(|resource| resource.last_updated),
            })
        })
        .collect();
    Ok(signals)
}

/// The notification type and events of the status resource (`Parameters` or
/// `SubscriptionStatus`). An `event-notification` without events is an error: it names no
/// change, and dropping it silently could lose one.
fn read_status(status: &RawValue) -> Result<(NotificationType, Vec<NotificationEvent>), Fault> {
    let fields: StatusFields<'_> = json::object(status, STATUS_PATH)?;
    let resource_type_path = child(STATUS_PATH, "resourceType");
    let resource_type = json::required_string(fields.resource_type, &resource_type_path)?;
    let (notification_type, events, events_path) = match resource_type.as_str() {
        "Parameters" => {
            let (notification_type, events) = read_parameters(fields.parameter)?;
            (notification_type, events, child(STATUS_PATH, "parameter[name=notification-event]"))
        }
        "SubscriptionStatus" => {
            let type_path = child(STATUS_PATH, "type");
            let notification_type =
                read_notification_type(json::required_string(fields.notification_type, &type_path)?, &type_path)?;
            let events = read_notification_events(fields.notification_event)?;
            (notification_type, events, child(STATUS_PATH, "notificationEvent"))
        }
        _ => {
            return Err(Fault::new(
                resource_type_path,
                SignalErrorKind::Unsupported { accepted: "Parameters, SubscriptionStatus" },
            ));
        }
    };
    if matches!(notification_type, NotificationType::EventNotification) && events.is_empty() {
        return Err(Fault::new(events_path, SignalErrorKind::Missing));
    }
    Ok((notification_type, events))
}

fn read_notification_type(value: String, path: &str) -> Result<NotificationType, Fault> {
    match value.as_str() {
        "event-notification" => Ok(NotificationType::EventNotification),
        "handshake" => Ok(NotificationType::Handshake),
        "heartbeat" => Ok(NotificationType::Heartbeat),
        _ => {
            Err(Fault::new(path, SignalErrorKind::Unsupported { accepted: "event-notification, handshake, heartbeat" }))
        }
    }
}

/// The R4 backport's `Parameters`: `type` (valueCode) and the `notification-event` parameters.
fn read_parameters(parameters: Option<&RawValue>) -> Result<(NotificationType, Vec<NotificationEvent>), Fault> {
    let parameters_path = child(STATUS_PATH, "parameter");
    let parameters = json::array(json::required(parameters, &parameters_path)?, &parameters_path)?;
    let mut notification_type = None;
    let mut events = Vec::new();
    for (index, parameter) in parameters.into_iter().enumerate() {
        let path = item(&parameters_path, index);
        let parameter: ParameterFields<'_> = json::object(parameter, &path)?;
        let name = json::required_string(parameter.name, &child(&path, "name"))?;
        match name.as_str() {
            "type" => {
                let (value, value_path) = match (parameter.value_code, parameter.value_string) {
                    (Some(value), _) => (value, child(&path, "valueCode")),
                    (None, Some(value)) => (value, child(&path, "valueString")),
                    (None, None) => return Err(Fault::new(child(&path, "valueCode"), SignalErrorKind::Missing)),
                };
                notification_type = Some(read_notification_type(json::string(value, &value_path)?, &value_path)?);
            }
            "notification-event" => events.push(read_parameter_event(parameter.part, &path)?),
            _ => {}
        }
    }
    let notification_type = notification_type
        .ok_or_else(|| Fault::new(child(&parameters_path, "[name=type]"), SignalErrorKind::Missing))?;
    Ok((notification_type, events))
}

/// One `notification-event` parameter: parts `event-number`, `timestamp`, `focus`.
fn read_parameter_event(parts: Option<&RawValue>, parameter_path: &str) -> Result<NotificationEvent, Fault> {
    let parts_path = child(parameter_path, "part");
    let parts = json::array(json::required(parts, &parts_path)?, &parts_path)?;
    let mut number = None;
    let mut timestamp = None;
    let mut focus = None;
    for (index, part) in parts.into_iter().enumerate() {
        let path = item(&parts_path, index);
        let part: ParameterFields<'_> = json::object(part, &path)?;
        let name = json::required_string(part.name, &child(&path, "name"))?;
        match name.as_str() {
            "event-number" => {
                let value = [
                    (part.value_string, "valueString"),
                    (part.value_integer64, "valueInteger64"),
                    (part.value_unsigned_int, "valueUnsignedInt"),
                    (part.value_positive_int, "valuePositiveInt"),
                    (part.value_integer, "valueInteger"),
                ]
                .into_iter()
                .find_map(|(value, name)| value.map(|value| (value, name)));
                let Some((value, value_name)) = value else {
                    return Err(Fault::new(child(&path, "valueString"), SignalErrorKind::Missing));
                };
                number = Some(json::string_or_number(value, &child(&path, value_name))?);
            }
            "timestamp" => {
                let (value, value_path) = match (part.value_instant, part.value_date_time) {
                    (Some(value), _) => (Some(value), child(&path, "valueInstant")),
                    (None, value) => (value, child(&path, "valueDateTime")),
                };
                timestamp = super::optional_time(value, &value_path)?;
            }
            "focus" => {
                let value_path = child(&path, "valueReference");
                let value = json::required(part.value_reference, &value_path)?;
                focus = Some(read_reference(value, &value_path)?);
            }
            _ => {}
        }
    }
    let focus = focus.ok_or_else(|| Fault::new(child(&parts_path, "[name=focus]"), SignalErrorKind::Missing))?;
    Ok(NotificationEvent { number, timestamp, focus })
}

/// `SubscriptionStatus.notificationEvent`: `eventNumber`, `timestamp`, `focus`.
fn read_notification_events(events: Option<&RawValue>) -> Result<Vec<NotificationEvent>, Fault> {
    let events_path = child(STATUS_PATH, "notificationEvent");
    let Some(events) = events else { return Ok(Vec::new()) };
    json::array(events, &events_path)?
        .into_iter()
        .enumerate()
        .map(|(index, notification_event)| {
            let path = item(&events_path, index);
            let fields: NotificationEventFields<'_> = json::object(notification_event, &path)?;
            let number_path = child(&path, "eventNumber");
            let number = fields.event_number.map(|number| json::string_or_number(number, &number_path)).transpose()?;
            let timestamp = super::optional_time(fields.timestamp, &child(&path, "timestamp"))?;
            let focus_path = child(&path, "focus");
            let focus = read_reference(json::required(fields.focus, &focus_path)?, &focus_path)?;
            Ok(NotificationEvent { number, timestamp, focus })
        })
        .collect()
}

/// A FHIR `Reference` object's `reference`, parsed.
fn read_reference(reference: &RawValue, path: &str) -> Result<Reference, Fault> {
    let fields: ReferenceFields<'_> = json::object(reference, path)?;
    let path = child(path, "reference");
    let reference = json::required_string(fields.reference, &path)?;
    parse_reference(&reference).map_err(|kind| Fault::new(path, kind))
}

/// Parses `Type/id`, `Type/id/_history/version`, or an absolute `http(s)` URL ending so.
/// Every part is checked (resource type, FHIR ids).
pub(crate) fn parse_reference(reference: &str) -> Result<Reference, SignalErrorKind> {
    let path = match reference.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "http" | "https") || reference.contains(['?', '#']) {
                return Err(SignalErrorKind::InvalidReference);
            }
            // Drop the host; what follows is the base path and the resource path.
            rest.split_once('/').ok_or(SignalErrorKind::InvalidReference)?.1
        }
        None => reference,
    };
    let segments: Vec<&str> = path.split('/').collect();
    let absolute = path.len() != reference.len();
    let (resource_type, id, version) = match segments.as_slice() {
        [.., resource_type, id, "_history", version] if absolute || segments.len() == 4 => {
            (*resource_type, *id, Some(*version))
        }
        [.., resource_type, id] if absolute || segments.len() == 2 => (*resource_type, *id, None),
        _ => return Err(SignalErrorKind::InvalidReference),
    };
    if !is_valid_resource_type(resource_type) {
        return Err(SignalErrorKind::InvalidResourceType);
    }
    if !is_valid_fhir_id(id) || version.is_some_and(|version| !is_valid_fhir_id(version)) {
        return Err(SignalErrorKind::InvalidId);
    }
    Ok(Reference { resource_type: resource_type.to_owned(), id: id.to_owned(), version: version.map(str::to_owned) })
}

/// One entry after the status. A resource, when present, must have a valid `resourceType` and
/// `id`; `fullUrl` and `request.url` only help match the entry to a focus.
fn read_entry<'a>(entry: &'a RawValue, path: &str) -> Result<ResourceEntry<'a>, Fault> {
    let fields: EntryFields<'a> = json::object(entry, path)?;
    let resource = fields.resource.map(|resource| read_resource(resource, &child(path, "resource"))).transpose()?;
    let (request_url, operation) = match fields.request {
        Some(request) => {
            let request_path = child(path, "request");
            let request: RequestFields<'_> = json::object(request, &request_path)?;
            let method = json::optional_string(request.method, &child(&request_path, "method"))?;
            let operation = match method.as_deref() {
                Some("POST") => Some(Operation::Create),
                Some("PUT" | "PATCH") => Some(Operation::Update),
                Some("DELETE") => Some(Operation::Delete),
                _ => None,
            };
            (json::optional_string(request.url, &child(&request_path, "url"))?, operation)
        }
        None => (None, None),
    };
    let full_url = json::optional_string(fields.full_url, &child(path, "fullUrl"))?;
    let key = match &resource {
        Some((key, _)) => Some(key.clone()),
        None => [full_url, request_url]
            .into_iter()
            .flatten()
            .find_map(|url| parse_reference(&url).ok())
            .map(|reference| (reference.resource_type, reference.id)),
    };
    Ok(ResourceEntry { key, resource: resource.map(|(_, resource)| resource), operation })
}

/// A carried resource: its `(resourceType, id)` and the fields a signal reports.
fn read_resource<'a>(resource: &'a RawValue, path: &str) -> Result<((String, String), ResourceRead<'a>), Fault> {
    let fields: ResourceFields<'_> = json::object(resource, path)?;
    let type_path = child(path, "resourceType");
    let resource_type = json::required_string(fields.resource_type, &type_path)?;
    if !is_valid_resource_type(&resource_type) {
        return Err(Fault::new(type_path, SignalErrorKind::InvalidResourceType));
    }
    let id_path = child(path, "id");
    let id = json::required_string(fields.id, &id_path)?;
    if !is_valid_fhir_id(&id) {
        return Err(Fault::new(id_path, SignalErrorKind::InvalidId));
    }
    let (version_id, last_updated) = match fields.meta {
        Some(meta) => {
            let meta_path = child(path, "meta");
            let meta: MetaFields<'_> = json::object(meta, &meta_path)?;
            let version_path = child(&meta_path, "versionId");
            let version_id = json::optional_string(meta.version_id, &version_path)?;
            if version_id.as_deref().is_some_and(|version| !is_valid_fhir_id(version)) {
                return Err(Fault::new(version_path, SignalErrorKind::InvalidId));
            }
            (version_id, super::optional_time(meta.last_updated, &child(&meta_path, "lastUpdated"))?)
        }
        None => (None, None),
    };
    Ok(((resource_type, id), ResourceRead { raw: resource, version_id, last_updated }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(resource_type: &str, id: &str, version: Option<&str>) -> Result<Reference, SignalErrorKind> {
        Ok(Reference { resource_type: resource_type.into(), id: id.into(), version: version.map(Into::into) })
    }

    #[test]
    fn reads_relative_absolute_and_versioned_references() {
        assert_eq!(parse_reference("Patient/123"), reference("Patient", "123", None));
        assert_eq!(parse_reference("Patient/123/_history/2"), reference("Patient", "123", Some("2")));
        assert_eq!(
            parse_reference("https://healthlake.us-east-1.amazonaws.com/datastore/abc/r4/Encounter/e-1"),
            reference("Encounter", "e-1", None)
        );
        assert_eq!(
            parse_reference("http://example.org/fhir/Observation/o.1/_history/7"),
            reference("Observation", "o.1", Some("7"))
        );
    }

    #[test]
    fn refuses_other_references() {
        for (text, kind) in [
            ("", SignalErrorKind::InvalidReference),
            ("Patient", SignalErrorKind::InvalidReference),
            ("fhir/Patient/123", SignalErrorKind::InvalidReference),
            ("Patient/123/_history", SignalErrorKind::InvalidReference),
            ("urn:uuid:2d5afc69-6ef2-420f-a8d1-8500c99eb96c", SignalErrorKind::InvalidReference),
            ("#contained", SignalErrorKind::InvalidReference),
            ("https://example.org", SignalErrorKind::InvalidReference),
            ("https://example.org/Patient/1?x=1", SignalErrorKind::InvalidReference),
            ("ftp://example.org/Patient/1", SignalErrorKind::InvalidReference),
            ("https://example.org/fhir/Patient", SignalErrorKind::InvalidResourceType),
            ("patient/123", SignalErrorKind::InvalidResourceType),
            ("Patient/12 3", SignalErrorKind::InvalidId),
            ("Patient/..", SignalErrorKind::InvalidId),
            ("Patient/", SignalErrorKind::InvalidId),
            ("Patient/1/_history/v 2", SignalErrorKind::InvalidId),
        ] {
            assert_eq!(parse_reference(text), Err(kind), "{text:?}");
        }
    }
}
