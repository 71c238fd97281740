//! Reading the enrichment's envelopes: what each event asks of the store.
//!
//! Only what the target needs is read (`correlationId`, `details.command`, the entity's
//! `resourceType` and `id`); the resource itself is passed on as the raw JSON it came in.

use std::{borrow::Cow, fmt};

use fhir_pipes_core::envelope::{self, Details};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::value::RawValue;

/// A resource's identity in the store: `{resourceType}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    /// `Patient`, `Encounter`, …
    pub resource_type: String,
    /// The logical id.
    pub id: String,
}

/// What one event asks of the store.
#[derive(Debug, Clone)]
pub enum Action<'a> {
    /// Create or update the resource with this body (`PUT`).
    Put {
        /// The resource.
        key: ResourceKey,
        /// Its JSON, as the enrichment wrote it.
        body: &'a RawValue,
    },
    /// Delete the resource (`DELETE`).
    Delete {
        /// The resource.
        key: ResourceKey,
    },
    /// The enrichment could not map the record: nothing is sent; the event is reported.
    Error {
        /// The error kind (`invalid_date`, …).
        kind: String,
        /// The field at fault.
        field: String,
    },
}

/// Why an event cannot be understood; the message names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {0}")]
pub struct EventError(pub String);

/// One event: its correlationId (the stream eventID) and, if it can be read, its action.
#[derive(Debug)]
pub struct TargetEvent<'a> {
    /// `correlationId`, when the event has one.
    pub correlation_id: Option<String>,
    /// What to do, or why the event cannot be read.
    pub action: Result<Action<'a>, EventError>,
}

/// The envelope as the target reads it: the entity kept as raw JSON, the metadata skipped.
type Envelope<'a> = fhir_pipes_core::Envelope<'a, &'a RawValue, IgnoredAny>;

#[derive(Deserialize)]
struct EntityProbe<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

impl<'a> TargetEvent<'a> {
    /// Reads one envelope.
    pub fn parse(event: &'a RawValue) -> Self {
        match Envelope::from_json(event.get()) {
            Ok(envelope) => {
                Self { correlation_id: envelope.correlation_id.map(Cow::into_owned), action: action(envelope.details) }
            }
            // Only a broken event is read twice, for the id to report it by.
            Err(error) => Self {
                correlation_id: envelope::correlation_id(event.get()).map(Cow::into_owned),
                action: Err(EventError(error.to_string())),
            },
        }
    }
}

fn action<'a>(details: Details<'a, &'a RawValue>) -> Result<Action<'a>, EventError> {
    match details {
        Details::Put { entity } => Ok(Action::Put { key: key_of(entity)?, body: entity }),
        Details::Delete { entity } => Ok(Action::Delete { key: key_of(entity)? }),
        Details::Error { error, .. } => {
            Ok(Action::Error { kind: error.kind.into_owned(), field: error.field.into_owned() })
        }
        Details::Notify { .. } => Err(EventError("a NOTIFY event changes no resource: not for a FHIR store".into())),
    }
}

fn key_of(entity: &RawValue) -> Result<ResourceKey, EventError> {
    let probe = serde_json::from_str::<EntityProbe<'_>>(entity.get())
        .map_err(|error| EventError(format!("`details.entity` is not a resource ({})", error_class(&error))))?;
    let resource_type = probe
        .resource_type
        .filter(|t| is_resource_type(t))
        .ok_or_else(|| EventError("`details.entity.resourceType` is missing or not a FHIR type name".to_owned()))?;
    let id = probe
        .id
        .filter(|id| fhir_pipes_mappings::is_valid_fhir_id(id))
        .ok_or_else(|| EventError("`details.entity.id` is missing or not a FHIR id".to_owned()))?;
    Ok(ResourceKey { resource_type: resource_type.into_owned(), id: id.into_owned() })
}

/// A FHIR resource type name: `[A-Z][A-Za-z]*`.
fn is_resource_type(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphabetic())
}

/// The kind of a JSON error, without the input it quotes.
fn error_class(error: &serde_json::Error) -> impl fmt::Display {
    match error.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "JSON syntax error",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> (Option<String>, Result<Action<'static>, EventError>) {
        let raw: &'static RawValue = Box::leak(RawValue::from_string(json.to_owned()).unwrap());
        let event = TargetEvent::parse(raw);
        (event.correlation_id, event.action)
    }

    fn key(resource_type: &str, id: &str) -> ResourceKey {
        ResourceKey { resource_type: resource_type.to_owned(), id: id.to_owned() }
    }

    #[test]
    fn reads_put_delete_and_error_events() {
        let (id, action) = parse(
            r#"{"version":"1.0","correlationId":"e1","details":{"command":"PUT","entity":{"resourceType":"Patient","id":"p-1","active":true}}}"#,
        );
        assert_eq!(id.as_deref(), Some("e1"));
        let Action::Put { key: put_key, body } = action.unwrap() else { panic!("not a PUT") };
        assert_eq!(put_key, key("Patient", "p-1"));
        assert_eq!(body.get(), r#"{"resourceType":"Patient","id":"p-1","active":true}"#);

        let (_, action) = parse(
            r#"{"correlationId":"e2","details":{"command":"DELETE","entity":{"resourceType":"Patient","id":"p-1"}}}"#,
        );
        assert!(matches!(action.unwrap(), Action::Delete { key: k } if k == key("Patient", "p-1")));

        let (_, action) = parse(
            r#"{"correlationId":"e3","details":{"command":"ERROR","error":{"field":"birthDate","kind":"invalid_date","message":"m"},"record":{}}}"#,
        );
        assert!(
            matches!(action.unwrap(), Action::Error { kind, field } if kind == "invalid_date" && field == "birthDate")
        );
    }

    #[test]
    fn names_the_field_of_an_unusable_event_without_quoting_values() {
        let cases = [
            (r#"[1,2]"#, "not an envelope object"),
            (r#"{"correlationId":"e"}"#, "not an envelope object"),
            (r#"{"details":{"entity":{}}}"#, "`details.command` is missing"),
            (r#"{"details":{"command":"PATCH-Jane-Doe-1970"}}"#, "not PUT, DELETE, NOTIFY or ERROR"),
            (r#"{"details":{"command":"PUT"}}"#, "`details.entity` is missing"),
            (r#"{"details":{"command":"PUT","entity":{"id":"x"}}}"#, "`details.entity.resourceType`"),
            (r#"{"details":{"command":"PUT","entity":{"resourceType":"Patient"}}}"#, "`details.entity.id`"),
            (
                r#"{"details":{"command":"PUT","entity":{"resourceType":"Patient","id":"Jane Doe/../x"}}}"#,
                "not a FHIR id",
            ),
            (r#"{"details":{"command":"DELETE","entity":"Jane"}}"#, "not a resource"),
        ];
        for (json, expected) in cases {
            let message = parse(json).1.unwrap_err().to_string();
            assert!(message.contains(expected), "{json}: {message}");
            assert!(!message.contains("Jane"), "{json}: the message quotes a value: {message}");
        }
    }

    #[test]
    fn keeps_the_correlation_id_of_an_unusable_event() {
        let (id, action) = parse(r#"{"correlationId":"e9","details":{"command":"PUT"}}"#);
        assert_eq!(id.as_deref(), Some("e9"));
        assert!(action.is_err());
    }
}
