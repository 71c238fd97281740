//! One DynamoDB stream record as EventBridge Pipes sends it, decoded without copying.
//!
//! Only the fields the enrichment reads are decoded; `awsRegion`, `SizeBytes` and the rest may be
//! absent (unlike `aws_lambda_events::dynamodb::EventRecord`, where their absence fails the whole
//! batch). Images stay raw until a mapping needs them.

use serde::Deserialize;
use serde_json::value::RawValue;

use fhir_pipes_mappings::{CowStr, Image};

use crate::error::RecordError;

/// The decoded parts of a stream record.
#[derive(Deserialize)]
pub struct StreamRecord<'a> {
    /// `eventID`: the correlation id of every event made from this record.
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Option<CowStr<'a>>,
    /// `eventName`: INSERT, MODIFY or REMOVE.
    #[serde(rename = "eventName", borrow, default)]
    pub event_name: Option<CowStr<'a>>,
    /// `eventSourceARN`: the stream ARN, which names the table.
    #[serde(rename = "eventSourceARN", borrow, default)]
    pub event_source_arn: Option<CowStr<'a>>,
    /// `userIdentity`: set on deletes made by DynamoDB's TTL.
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<UserIdentity<'a>>,
    /// `dynamodb`: keys, images and stream position.
    #[serde(borrow, default)]
    pub dynamodb: Option<StreamData<'a>>,
}

/// `userIdentity` of a stream record.
#[derive(Deserialize)]
pub struct UserIdentity<'a> {
    /// `Service` for TTL deletes.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<CowStr<'a>>,
    /// `dynamodb.amazonaws.com` for TTL deletes.
    #[serde(rename = "principalId", borrow, default)]
    pub principal_id: Option<CowStr<'a>>,
}

/// The `dynamodb` object of a stream record.
#[derive(Deserialize)]
pub struct StreamData<'a> {
    /// Epoch seconds when the change was made (approximate).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<serde_json::Number>,
    /// Key attributes of the item.
    #[serde(rename = "Keys", borrow, default)]
    pub keys: Option<MaybeImage<'a>>,
    /// The item after the change.
    #[serde(rename = "NewImage", borrow, default)]
    pub new_image: Option<MaybeImage<'a>>,
    /// The item before the change.
    #[serde(rename = "OldImage", borrow, default)]
    pub old_image: Option<MaybeImage<'a>>,
    /// Position of the record in its shard.
    #[serde(rename = "SequenceNumber", borrow, default)]
    pub sequence_number: Option<CowStr<'a>>,
}

/// What the record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    /// A new item.
    Insert,
    /// A changed item.
    Modify,
    /// A deleted item.
    Remove,
}

impl EventName {
    /// The name as DynamoDB spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Insert => "INSERT",
            EventName::Modify => "MODIFY",
            EventName::Remove => "REMOVE",
        }
    }
}

impl<'a> StreamRecord<'a> {
    /// Decodes one record; a record that is not shaped like a stream record gets an error
    /// naming the offending field (found by a slower second look, only on failure).
    pub fn parse(raw: &'a RawValue) -> Result<Self, RecordError> {
        serde_json::from_str(raw.get()).map_err(|_| diagnose(raw))
    }

    /// The record's eventID, if it has one.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_ref().map(|id| id.0.as_ref())
    }

    /// The record's event name, checked.
    pub fn event_name(&self) -> Result<EventName, RecordError> {
        match self.event_name.as_ref().map(|name| name.0.as_ref()) {
            Some("INSERT") => Ok(EventName::Insert),
            Some("MODIFY") => Ok(EventName::Modify),
            Some("REMOVE") => Ok(EventName::Remove),
            Some(_) => {
                Err(RecordError::new("eventName", "unknown_event_name", "eventName is not INSERT, MODIFY or REMOVE"))
            }
            None => Err(RecordError::new("eventName", "missing_field", "eventName is absent")),
        }
    }

    /// True for a delete made by DynamoDB's time-to-live.
    pub fn is_ttl_delete(&self) -> bool {
        self.user_identity.as_ref().is_some_and(|identity| {
            identity.kind.as_ref().is_some_and(|k| k.0 == "Service")
                && identity.principal_id.as_ref().is_some_and(|p| p.0 == "dynamodb.amazonaws.com")
        })
    }

    /// The table name, from `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
    pub fn source_table(&self) -> Option<&str> {
        let arn = self.event_source_arn.as_ref()?.0.as_ref();
        arn.split_once(":table/").map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
    }

    /// One of the images; `None` when the record does not carry it.
    pub fn image(&self, which: ImageKind) -> Result<Option<&Image<'a>>, RecordError> {
        let Some(data) = &self.dynamodb else { return Ok(None) };
        let image = match which {
            ImageKind::Keys => &data.keys,
            ImageKind::New => &data.new_image,
            ImageKind::Old => &data.old_image,
        };
        match image {
            None | Some(MaybeImage::Null) => Ok(None),
            Some(MaybeImage::Image(image)) => Ok(Some(image)),
            Some(MaybeImage::NotAnObject) => {
                Err(RecordError::new(which.field(), "wrong_type", "an image must be a JSON object of attribute values"))
            }
        }
    }
}

/// An image field as found: decoded in the same pass as the record, and never failing it (a
/// wrong image only matters when the mapping needs that image).
pub enum MaybeImage<'a> {
    /// A JSON object of attribute values.
    Image(Image<'a>),
    /// `null`.
    Null,
    /// Any other JSON value.
    NotAnObject,
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeImage<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};

        struct MaybeImageVisitor;
        impl<'de> Visitor<'de> for MaybeImageVisitor {
            type Value = MaybeImage<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("an item image")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Image::deserialize(MapAccessDeserializer::new(map)).map(MaybeImage::Image)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeImage::NotAnObject)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeImage::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeImage::Null)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeImage::NotAnObject)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeImage::NotAnObject)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeImage::NotAnObject)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeImage::NotAnObject)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeImage::NotAnObject)
            }
        }
        deserializer.deserialize_any(MaybeImageVisitor)
    }
}

/// The three item images a record may carry.
#[derive(Debug, Clone, Copy)]
pub enum ImageKind {
    /// `dynamodb.Keys`.
    Keys,
    /// `dynamodb.NewImage`.
    New,
    /// `dynamodb.OldImage`.
    Old,
}

impl ImageKind {
    /// The field path of the image in the record.
    pub fn field(self) -> &'static str {
        match self {
            ImageKind::Keys => "dynamodb.Keys",
            ImageKind::New => "dynamodb.NewImage",
            ImageKind::Old => "dynamodb.OldImage",
        }
    }
}

/// The eventID of a record that does not decode, so its error event stays correlated.
pub fn salvage_event_id(raw: &RawValue) -> Option<String> {
    let record: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    record.get("eventID")?.as_str().map(str::to_owned)
}

/// Finds which field made a record undecodable. Never quotes values (they may be patient data).
fn diagnose(raw: &RawValue) -> RecordError {
    use serde_json::Value;

    let Ok(record) = serde_json::from_str::<Value>(raw.get()) else {
        return RecordError::new("(record)", "invalid_record", "the record is not valid JSON");
    };
    let Some(record) = record.as_object() else {
        return RecordError::new(
            "(record)",
            "invalid_record",
            format!("a stream record must be a JSON object, found {}", json_type(&record)),
        );
    };
    let expect = |value: Option<&Value>, field: &str, ok: fn(&Value) -> bool, expected: &str| {
        value.filter(|v| !v.is_null() && !ok(v)).map(|v| {
            RecordError::new(field.to_owned(), "wrong_type", format!("expected {expected}, found {}", json_type(v)))
        })
    };
    let checks = [
        expect(record.get("eventID"), "eventID", Value::is_string, "a string"),
        expect(record.get("eventName"), "eventName", Value::is_string, "a string"),
        expect(record.get("eventSourceARN"), "eventSourceARN", Value::is_string, "a string"),
        expect(record.get("userIdentity"), "userIdentity", Value::is_object, "an object"),
        expect(record.get("dynamodb"), "dynamodb", Value::is_object, "an object"),
    ];
    if let Some(error) = checks.into_iter().flatten().next() {
        return error;
    }
    if let Some(identity) = record.get("userIdentity").and_then(Value::as_object) {
        for field in ["type", "principalId"] {
            if let Some(error) =
                expect(identity.get(field), &format!("userIdentity.{field}"), Value::is_string, "a string")
            {
                return error;
            }
        }
    }
    if let Some(data) = record.get("dynamodb").and_then(Value::as_object) {
        let data_checks = [
            expect(
                data.get("ApproximateCreationDateTime"),
                "dynamodb.ApproximateCreationDateTime",
                Value::is_number,
                "a number",
            ),
            expect(data.get("SequenceNumber"), "dynamodb.SequenceNumber", Value::is_string, "a string"),
        ];
        if let Some(error) = data_checks.into_iter().flatten().next() {
            return error;
        }
    }
    RecordError::new("(record)", "invalid_record", "the record is not a DynamoDB stream record")
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn decodes_without_region_or_size() {
        let raw = raw(
            r#"{"eventID":"e1","eventName":"REMOVE","eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/Patients/stream/2026",
            "userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"},
            "dynamodb":{"Keys":{"id":{"S":"p1"}},"SequenceNumber":"7","ApproximateCreationDateTime":1.5}}"#,
        );
        let record = StreamRecord::parse(&raw).unwrap();
        assert_eq!(record.event_id(), Some("e1"));
        assert_eq!(record.event_name().unwrap(), EventName::Remove);
        assert!(record.is_ttl_delete());
        assert_eq!(record.source_table(), Some("Patients"));
        assert_eq!(record.image(ImageKind::Keys).unwrap().unwrap().len(), 1);
        assert!(record.image(ImageKind::New).unwrap().is_none());
    }

    #[test]
    fn names_the_field_that_breaks_a_record() {
        for (json, field) in [
            (r#""oops""#, "(record)"),
            (r#"{"eventName":5}"#, "eventName"),
            (r#"{"eventID":["x"]}"#, "eventID"),
            (r#"{"dynamodb":"x"}"#, "dynamodb"),
            (r#"{"dynamodb":{"SequenceNumber":1}}"#, "dynamodb.SequenceNumber"),
            (r#"{"userIdentity":{"type":1}}"#, "userIdentity.type"),
        ] {
            let error = StreamRecord::parse(&raw(json)).err().unwrap();
            assert_eq!(error.field, field, "{json}");
        }
        let record = raw(r#"{"eventName":"UPSERT","dynamodb":{"NewImage":[1]}}"#);
        let record = StreamRecord::parse(&record).unwrap();
        assert_eq!(record.event_name().unwrap_err().kind, "unknown_event_name");
        assert_eq!(record.image(ImageKind::New).unwrap_err().field, "dynamodb.NewImage");
    }

    #[test]
    fn error_messages_never_quote_values() {
        let error = StreamRecord::parse(&raw(r#"{"eventName":"Quennell Vasquez"}"#))
            .map(|r| r.event_name().unwrap_err())
            .unwrap();
        assert!(!error.message.contains("Quennell"));
        let error = StreamRecord::parse(&raw(r#"{"eventID":{"name":"Quennell"}}"#)).err().unwrap();
        assert!(!error.message.contains("Quennell"));
    }
}
