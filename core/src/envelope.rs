//! The versioned event envelope, written and read by every fhir-pipes crate (and compatible
//! with the Go `PatientEvent`):
//!
//! ```json
//! {"version": "1.0", "source": "PatientTable", "eventType": "PatientChange",
//!  "correlationId": "<the record's id>",
//!  "details": {"command": "PUT", "entity": {"resourceType": "Patient", "id": "…"}},
//!  "metadata": {…}}
//! ```
//!
//! `details.command` is `PUT` (create or update `entity`), `DELETE` (delete `entity`: the old
//! resource or just `{resourceType, id}`), `NOTIFY` (news that changes no resource, e.g. a
//! HealthLake import job that completed: `entity` is its detail) or `ERROR` (the record could
//! not become a change: `error` says why, `record` is the record itself, unchanged). `metadata` depends on the
//! direction: where a stream change came from, or which datastore version a HealthLake change is.
//!
//! [`Envelope`] is generic over the entity `E` and the metadata `M`, so a writer serializes its
//! typed resource while a reader borrows the entity as raw JSON (`&RawValue`, kept byte for byte)
//! and skips what it does not need (`serde::de::IgnoredAny`).

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::value::RawValue;

/// The envelope format version written.
pub const ENVELOPE_VERSION: &str = "1.0";

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, E, M> {
    /// The format version ([`ENVELOPE_VERSION`]).
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    /// Where the change comes from: a table (`PatientTable`) or a datastore (`HealthLake`).
    #[serde(borrow, default)]
    pub source: Cow<'a, str>,
    /// `<Resource>Change`, `<Resource>MappingFailed`, `ImportJobCompleted`, …
    #[serde(borrow, default)]
    pub event_type: Cow<'a, str>,
    /// The id of the source record Pipes matches partial failures by (a stream record's
    /// eventID, an SQS messageId); `null` only for a record that has none.
    #[serde(borrow)]
    pub correlation_id: Option<Cow<'a, str>>,
    /// What the target should do.
    #[serde(borrow)]
    pub details: Details<'a, E>,
    /// Where the change came from; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<M>,
}

/// `details`: what the target should do, tagged by `command`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "command", rename_all = "UPPERCASE")]
pub enum Details<'a, E> {
    /// Create or update `entity`.
    Put {
        /// The resource.
        entity: E,
    },
    /// Delete `entity` (the full old resource, or just its type and id).
    Delete {
        /// The resource, or its [`ResourceRef`].
        entity: E,
    },
    /// News that changes no resource (a job or datastore lifecycle event): `entity` is its detail.
    Notify {
        /// What happened, as the source described it.
        entity: E,
    },
    /// The record could not become a change: why, and the record itself, unchanged.
    Error {
        /// What is wrong.
        error: ErrorDetails<'a>,
        /// The source record as it came.
        record: &'a RawValue,
    },
}

/// `details.error`: why a record could not become a change. The message never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails<'a> {
    /// The field at fault (`birthDate`, `detail.requestParameters.resourceType`, `(record)`).
    #[serde(borrow)]
    pub field: Cow<'a, str>,
    /// Machine-readable kind, snake_case (`missing_field`, `invalid_date`, …).
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    /// Human explanation.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

/// A resource's identity: the entity of a DELETE when only the keys are known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef<'a> {
    /// `Patient`, `Encounter`, …
    #[serde(borrow)]
    pub resource_type: Cow<'a, str>,
    /// The logical id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// An entity a writer emits: a typed resource, or only its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Entity<'a, R> {
    /// The whole resource.
    Resource(R),
    /// `{resourceType, id}`.
    Ref(ResourceRef<'a>),
}

/// Why an envelope cannot be read: the field at fault, never a value of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid envelope: {0}")]
pub struct EnvelopeError(pub Cow<'static, str>);

/// The messages of a `details` that has the wrong fields; reading reports exactly these.
const DETAILS_ERRORS: [&str; 5] = [
    "`details.command` is missing",
    "`details.command` is not PUT, DELETE, NOTIFY or ERROR",
    "`details.entity` is missing",
    "`details.error` is missing",
    "`details.record` is missing",
];

impl<'a, E: Deserialize<'a>, M: Deserialize<'a>> Envelope<'a, E, M> {
    /// Reads an envelope borrowing from `json`. The error names the field at fault and never
    /// quotes the input (serde's own messages would: "invalid type: string \"Jane\"…").
    pub fn from_json(json: &'a str) -> Result<Self, EnvelopeError> {
        serde_json::from_str(json).map_err(|error| EnvelopeError(describe(&error)))
    }
}

/// `correlationId` of an envelope that may be otherwise unreadable (so a broken event can still
/// be reported by it).
pub fn correlation_id(json: &str) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "correlationId", borrow)]
        correlation_id: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Probe<'_>>(json).ok().and_then(|probe| probe.correlation_id)
}

fn describe(error: &serde_json::Error) -> Cow<'static, str> {
    let message = error.to_string();
    if let Some(own) = DETAILS_ERRORS.iter().find(|own| message.starts_with(**own)) {
        return Cow::Borrowed(own);
    }
    Cow::Borrowed(match error.classify() {
        serde_json::error::Category::Io => "unreadable input",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "not an envelope object with the fields of its version",
    })
}

impl<'de: 'a, 'a, E: Deserialize<'de>> Deserialize<'de> for Details<'a, E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as plain fields: an internally tagged enum buffers its content and cannot lend
        // a `&RawValue`.
        #[derive(Deserialize)]
        struct Fields<'a, E> {
            #[serde(borrow)]
            command: Option<Cow<'a, str>>,
            entity: Option<E>,
            #[serde(borrow)]
            error: Option<ErrorDetails<'a>>,
            #[serde(borrow)]
            record: Option<&'a RawValue>,
        }
        let fields = Fields::<'a, E>::deserialize(deserializer)?;
        let missing = |index: usize| de::Error::custom(DETAILS_ERRORS[index]);
        match fields.command.as_deref().ok_or_else(|| missing(0))? {
            "PUT" => Ok(Details::Put { entity: fields.entity.ok_or_else(|| missing(2))? }),
            "DELETE" => Ok(Details::Delete { entity: fields.entity.ok_or_else(|| missing(2))? }),
            "NOTIFY" => Ok(Details::Notify { entity: fields.entity.ok_or_else(|| missing(2))? }),
            "ERROR" => Ok(Details::Error {
                error: fields.error.ok_or_else(|| missing(3))?,
                record: fields.record.ok_or_else(|| missing(4))?,
            }),
            _ => Err(missing(1)),
        }
    }
}

impl fmt::Display for ErrorDetails<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {} ({})", self.field, self.message, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;
    use serde_json::json;

    use super::*;

    type Read<'a> = Envelope<'a, &'a RawValue, IgnoredAny>;

    #[test]
    fn what_a_writer_serializes_a_reader_reads_back_with_the_entity_byte_for_byte() {
        let resource = json!({"resourceType": "Patient", "id": "p-1", "active": true});
        let record = RawValue::from_string(r#"{"eventID":"e3"}"#.to_owned()).unwrap();
        let events: [Envelope<'_, Entity<'_, &serde_json::Value>, serde_json::Value>; 3] = [
            Envelope {
                version: ENVELOPE_VERSION.into(),
                source: "PatientTable".into(),
                event_type: "PatientChange".into(),
                correlation_id: Some("e1".into()),
                details: Details::Put { entity: Entity::Resource(&resource) },
                metadata: Some(json!({"sequenceNumber": "1"})),
            },
            Envelope {
                version: ENVELOPE_VERSION.into(),
                source: "PatientTable".into(),
                event_type: "PatientChange".into(),
                correlation_id: Some("e2".into()),
                details: Details::Delete {
                    entity: Entity::Ref(ResourceRef { resource_type: "Patient".into(), id: "p-1".into() }),
                },
                metadata: None,
            },
            Envelope {
                version: ENVELOPE_VERSION.into(),
                source: "PatientTable".into(),
                event_type: "PatientMappingFailed".into(),
                correlation_id: None,
                details: Details::Error {
                    error: ErrorDetails { field: "birthDate".into(), kind: "invalid_date".into(), message: "m".into() },
                    record: &record,
                },
                metadata: None,
            },
        ];
        let written: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        assert_eq!(
            written[0],
            r#"{"version":"1.0","source":"PatientTable","eventType":"PatientChange","correlationId":"e1","details":{"command":"PUT","entity":{"active":true,"id":"p-1","resourceType":"Patient"}},"metadata":{"sequenceNumber":"1"}}"#
        );
        let put = Read::from_json(&written[0]).unwrap();
        assert_eq!(put.correlation_id.as_deref(), Some("e1"));
        assert!(
            matches!(put.details, Details::Put { entity } if entity.get() == r#"{"active":true,"id":"p-1","resourceType":"Patient"}"#)
        );
        let delete = Read::from_json(&written[1]).unwrap();
        let Details::Delete { entity } = delete.details else { panic!("not a DELETE") };
        let reference: ResourceRef<'_> = serde_json::from_str(entity.get()).unwrap();
        assert_eq!((&*reference.resource_type, &*reference.id), ("Patient", "p-1"));
        let error = Read::from_json(&written[2]).unwrap();
        assert_eq!(error.correlation_id, None);
        let Details::Error { error, record: original } = error.details else { panic!("not an ERROR") };
        assert_eq!((&*error.field, &*error.kind, original.get()), ("birthDate", "invalid_date", record.get()));
    }

    #[test]
    fn an_unreadable_envelope_names_the_field_never_a_value_and_keeps_its_correlation_id() {
        let cases = [
            (r#"[1,2]"#, "not an envelope object"),
            (r#"{"correlationId":"e"}"#, "not an envelope object"),
            (r#"{"details":{"entity":{}}}"#, "`details.command` is missing"),
            (r#"{"details":{"command":"PATCH-Jane-Doe-1970"}}"#, "not PUT, DELETE, NOTIFY or ERROR"),
            (r#"{"details":{"command":"PUT"}}"#, "`details.entity` is missing"),
            (r#"{"details":{"command":"ERROR","record":{}}}"#, "`details.error` is missing"),
            (r#"{"details":"Jane"}"#, "not an envelope object"),
            (r#"{"correlationId":"Jane","details":{"command":"PUT","entity":{}},"metadata":"x"#, "truncated"),
        ];
        for (json, expected) in cases {
            let message = Read::from_json(json).unwrap_err().to_string();
            assert!(message.contains(expected), "{json}: {message}");
            assert!(!message.contains("Jane"), "{json}: the message quotes a value: {message}");
        }
        assert_eq!(correlation_id(r#"{"correlationId":"e9","details":{"command":"PUT"}}"#).as_deref(), Some("e9"));
    }
}
