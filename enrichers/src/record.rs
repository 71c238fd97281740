//! One DynamoDB stream record as EventBridge Pipes sends it, decoded in one pass and without
//! copying strings.
//!
//! Decoding never fails on a field's type: every field the enrichment reads is [`Lax`], so a
//! wrong type is recorded and reported by name ([`StreamRecord::check`]) when the record is
//! processed, and the other records of the batch decode normally. Only the fields the
//! enrichment reads are decoded; `awsRegion`, `SizeBytes` and the rest may be absent (unlike
//! `aws_lambda_events::dynamodb::EventRecord`, where their absence fails the whole batch).

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
use serde_json::value::RawValue;

use fhir_pipes_mappings::{CowStr, Image};

use crate::error::RecordError;

/// A value of the expected JSON type, or the name of the type found instead.
pub enum Lax<T> {
    /// The expected value.
    Ok(T),
    /// What was there instead (`"a number"`, `"an array"`…).
    Wrong(&'static str),
}

impl<T> Lax<T> {
    /// The value when it has the expected type.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Lax::Ok(value) => Some(value),
            Lax::Wrong(_) => None,
        }
    }

    fn check(&self, field: &str, expected: &str) -> Result<(), RecordError> {
        match self {
            Lax::Ok(_) => Ok(()),
            Lax::Wrong(found) => {
                Err(RecordError::new(field.to_owned(), "wrong_type", format!("expected {expected}, found {found}")))
            }
        }
    }
}

/// How a [`Lax`] value is built from the JSON types it accepts.
pub trait LaxKind<'de>: Sized {
    /// From a JSON string.
    fn from_str(_value: Cow<'de, str>) -> Option<Self> {
        None
    }
    /// From a JSON number.
    fn from_number(_value: serde_json::Number) -> Option<Self> {
        None
    }
    /// From a JSON object; by default it is skipped and rejected.
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de: 'a, 'a> LaxKind<'de> for CowStr<'a> {
    fn from_str(value: Cow<'de, str>) -> Option<Self> {
        Some(CowStr(value))
    }
}

impl<'de> LaxKind<'de> for serde_json::Number {
    fn from_number(value: serde_json::Number) -> Option<Self> {
        Some(value)
    }
}

impl<'de, T: LaxKind<'de>> Deserialize<'de> for Lax<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LaxVisitor(PhantomData))
    }
}

struct LaxVisitor<T>(PhantomData<T>);

impl<'de, T: LaxKind<'de>> Visitor<'de> for LaxVisitor<T> {
    type Value = Lax<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(T::from_str(Cow::Borrowed(value)).map_or(Lax::Wrong("a string"), Lax::Ok))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(T::from_str(Cow::Owned(value.to_owned())).map_or(Lax::Wrong("a string"), Lax::Ok))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(T::from_str(Cow::Owned(value)).map_or(Lax::Wrong("a string"), Lax::Ok))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(T::from_number(value.into()).map_or(Lax::Wrong("a number"), Lax::Ok))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(T::from_number(value.into()).map_or(Lax::Wrong("a number"), Lax::Ok))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        let number = serde_json::Number::from_f64(value);
        Ok(number.and_then(T::from_number).map_or(Lax::Wrong("a number"), Lax::Ok))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lax::Wrong("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lax::Wrong("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lax::Wrong("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(T::from_map(map)?.map_or(Lax::Wrong("an object"), Lax::Ok))
    }
}

/// Implements [`LaxKind`] for a struct decoded from a JSON object (its own fields are lax).
macro_rules! lax_struct {
    ($name:ident) => {
        impl<'de: 'a, 'a> LaxKind<'de> for $name<'a> {
            fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                $name::deserialize(MapAccessDeserializer::new(map)).map(Some)
            }
        }
    };
}

/// The decoded parts of a stream record.
#[derive(Deserialize)]
pub struct StreamRecord<'a> {
    /// `eventID`: the correlation id of every event made from this record.
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Option<Lax<CowStr<'a>>>,
    /// `eventName`: INSERT, MODIFY or REMOVE.
    #[serde(rename = "eventName", borrow, default)]
    pub event_name: Option<Lax<CowStr<'a>>>,
    /// `eventSourceARN`: the stream ARN, which names the table.
    #[serde(rename = "eventSourceARN", borrow, default)]
    pub event_source_arn: Option<Lax<CowStr<'a>>>,
    /// `userIdentity`: set on deletes made by DynamoDB's TTL.
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<Lax<UserIdentity<'a>>>,
    /// `dynamodb`: keys, images and stream position.
    #[serde(borrow, default)]
    pub dynamodb: Option<Lax<StreamData<'a>>>,
}
lax_struct!(StreamRecord);

/// `userIdentity` of a stream record.
#[derive(Deserialize)]
pub struct UserIdentity<'a> {
    /// `Service` for TTL deletes.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Lax<CowStr<'a>>>,
    /// `dynamodb.amazonaws.com` for TTL deletes.
    #[serde(rename = "principalId", borrow, default)]
    pub principal_id: Option<Lax<CowStr<'a>>>,
}
lax_struct!(UserIdentity);

/// The `dynamodb` object of a stream record.
#[derive(Deserialize)]
pub struct StreamData<'a> {
    /// Epoch seconds when the change was made (approximate).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<Lax<serde_json::Number>>,
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
    pub sequence_number: Option<Lax<CowStr<'a>>>,
}
lax_struct!(StreamData);

/// Decodes a batch in one pass, handing each record to `each` before the next is decoded, so
/// one decoded record is alive at a time whatever the batch size; a record that is not a JSON
/// object is `Lax::Wrong`. `each` stops the walk by returning `Err`, which is passed back.
/// Fails when the batch is not a JSON array or a record is not decodable even laxly (duplicate
/// fields); see [`decode_record`] for that case.
pub fn for_each_record<'a, E>(
    batch: &'a str,
    each: impl FnMut(usize, Lax<StreamRecord<'a>>) -> Result<(), E>,
) -> Result<Result<(), E>, serde_json::Error> {
    let mut walk = EachRecord { each, stopped: None, _records: PhantomData };
    let mut deserializer = serde_json::Deserializer::from_str(batch);
    let decoded = deserializer.deserialize_seq(&mut walk).and_then(|()| deserializer.end());
    // A stop leaves the rest of the array unread, which serde reports as an error: the stop wins.
    match walk.stopped {
        Some(stop) => Ok(Err(stop)),
        None => decoded.map(Ok),
    }
}

struct EachRecord<'a, F, E> {
    each: F,
    stopped: Option<E>,
    _records: PhantomData<StreamRecord<'a>>,
}

impl<'de, F, E> Visitor<'de> for &mut EachRecord<'de, F, E>
where
    F: FnMut(usize, Lax<StreamRecord<'de>>) -> Result<(), E>,
{
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of stream records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(record) = seq.next_element()? {
            if let Err(stop) = (self.each)(index, record) {
                self.stopped = Some(stop);
                break;
            }
            index += 1;
        }
        Ok(())
    }
}

/// Decodes one record on its own.
pub fn decode_record(raw: &RawValue) -> Result<Lax<StreamRecord<'_>>, RecordError> {
    serde_json::from_str(raw.get()).map_err(|_| {
        RecordError::new("(record)", "invalid_record", "the record is not a DynamoDB stream record (duplicate fields?)")
    })
}

/// The error of a record that is not a JSON object.
pub fn not_an_object(found: &str) -> RecordError {
    RecordError::new("(record)", "invalid_record", format!("a stream record must be a JSON object, found {found}"))
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
    /// Checks the types of the fields the enrichment reads; the first wrong one is named.
    pub fn check(&self) -> Result<(), RecordError> {
        let string = "a string";
        let checks = [
            self.event_id.as_ref().map(|v| v.check("eventID", string)),
            self.event_name.as_ref().map(|v| v.check("eventName", string)),
            self.event_source_arn.as_ref().map(|v| v.check("eventSourceARN", string)),
            self.user_identity.as_ref().map(|v| v.check("userIdentity", "an object")),
            self.dynamodb.as_ref().map(|v| v.check("dynamodb", "an object")),
        ];
        checks.into_iter().flatten().collect::<Result<(), _>>()?;
        if let Some(Lax::Ok(identity)) = &self.user_identity {
            let checks = [
                identity.kind.as_ref().map(|v| v.check("userIdentity.type", string)),
                identity.principal_id.as_ref().map(|v| v.check("userIdentity.principalId", string)),
            ];
            checks.into_iter().flatten().collect::<Result<(), _>>()?;
        }
        if let Some(Lax::Ok(data)) = &self.dynamodb {
            let checks = [
                data.approximate_creation_date_time
                    .as_ref()
                    .map(|v| v.check("dynamodb.ApproximateCreationDateTime", "a number")),
                data.sequence_number.as_ref().map(|v| v.check("dynamodb.SequenceNumber", string)),
            ];
            checks.into_iter().flatten().collect::<Result<(), _>>()?;
        }
        Ok(())
    }

    /// The record's eventID, when it has one that is a string.
    pub fn event_id(&self) -> Option<&str> {
        lax_str(&self.event_id)
    }

    /// The record's event name, checked.
    pub fn event_name(&self) -> Result<EventName, RecordError> {
        match lax_str(&self.event_name) {
            Some("INSERT") => Ok(EventName::Insert),
            Some("MODIFY") => Ok(EventName::Modify),
            Some("REMOVE") => Ok(EventName::Remove),
            Some(_) => {
                Err(RecordError::new("eventName", "unknown_event_name", "eventName is not INSERT, MODIFY or REMOVE"))
            }
            None => Err(RecordError::new("eventName", "missing_field", "eventName is absent")),
        }
    }

    /// The raw event name, when it is a string.
    pub fn event_name_str(&self) -> Option<&str> {
        lax_str(&self.event_name)
    }

    /// True for a delete made by DynamoDB's time-to-live.
    pub fn is_ttl_delete(&self) -> bool {
        let Some(Lax::Ok(identity)) = &self.user_identity else { return false };
        lax_str(&identity.kind) == Some("Service") && lax_str(&identity.principal_id) == Some("dynamodb.amazonaws.com")
    }

    /// The table name, from `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
    pub fn source_table(&self) -> Option<&str> {
        let arn = lax_str(&self.event_source_arn)?;
        arn.split_once(":table/").map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
    }

    /// The `dynamodb` object, when it is one.
    pub fn data(&self) -> Option<&StreamData<'a>> {
        self.dynamodb.as_ref().and_then(Lax::ok)
    }

    /// `dynamodb.SequenceNumber`.
    pub fn sequence_number(&self) -> Option<&str> {
        lax_str(&self.data()?.sequence_number)
    }

    /// `dynamodb.ApproximateCreationDateTime`.
    pub fn approximate_creation_date_time(&self) -> Option<&serde_json::Number> {
        self.data()?.approximate_creation_date_time.as_ref()?.ok()
    }

    /// One of the images; `None` when the record does not carry it.
    pub fn image(&self, which: ImageKind) -> Result<Option<&Image<'a>>, RecordError> {
        let Some(data) = self.data() else { return Ok(None) };
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

fn lax_str<'s>(value: &'s Option<Lax<CowStr<'_>>>) -> Option<&'s str> {
    match value {
        Some(Lax::Ok(text)) => Some(text.0.as_ref()),
        _ => None,
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
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaybeImageVisitor;
        impl<'de> Visitor<'de> for MaybeImageVisitor {
            type Value = MaybeImage<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Lax<StreamRecord<'_>> {
        serde_json::from_str(json).unwrap()
    }

    fn checked(json: &str) -> Result<(), RecordError> {
        match decode(json) {
            Lax::Ok(record) => record.check(),
            Lax::Wrong(found) => Err(not_an_object(found)),
        }
    }

    #[test]
    fn decodes_without_region_or_size() {
        let json = r#"{"eventID":"e1","eventName":"REMOVE","eventSourceARN":"arn:aws:dynamodb:us-east-1:1:table/Patients/stream/2026",
            "userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"},
            "dynamodb":{"Keys":{"id":{"S":"p1"}},"SequenceNumber":"7","ApproximateCreationDateTime":1.5}}"#;
        let Lax::Ok(record) = decode(json) else { panic!() };
        record.check().unwrap();
        assert_eq!(record.event_id(), Some("e1"));
        assert_eq!(record.event_name().unwrap(), EventName::Remove);
        assert!(record.is_ttl_delete());
        assert_eq!(record.source_table(), Some("Patients"));
        assert_eq!(record.sequence_number(), Some("7"));
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
            (r#"{"dynamodb":{"ApproximateCreationDateTime":"x"}}"#, "dynamodb.ApproximateCreationDateTime"),
            (r#"{"userIdentity":{"type":1}}"#, "userIdentity.type"),
            (r#"{"userIdentity":true}"#, "userIdentity"),
        ] {
            assert_eq!(checked(json).unwrap_err().field, field, "{json}");
        }
        let Lax::Ok(record) = decode(r#"{"eventName":"UPSERT","dynamodb":{"NewImage":[1]}}"#) else { panic!() };
        assert_eq!(record.event_name().unwrap_err().kind, "unknown_event_name");
        assert_eq!(record.image(ImageKind::New).unwrap_err().field, "dynamodb.NewImage");
    }

    fn decode_all(batch: &str) -> Result<Vec<Lax<StreamRecord<'_>>>, serde_json::Error> {
        let mut records = Vec::new();
        for_each_record(batch, |index, record| {
            assert_eq!(index, records.len());
            records.push(record);
            Ok::<_, ()>(())
        })
        .map(|walk| walk.unwrap())
        .map(|()| records)
    }

    #[test]
    fn one_broken_record_does_not_break_the_batch() {
        let batch = r#"[{"eventID":"a","eventName":5},"oops",42,{"eventID":"b","dynamodb":{"NewImage":{}}}]"#;
        let records = decode_all(batch).unwrap();
        assert_eq!(records.len(), 4);
        assert!(matches!(records[1], Lax::Wrong("a string")) && matches!(records[2], Lax::Wrong("a number")));
        let Lax::Ok(first) = &records[0] else { panic!() };
        assert_eq!(first.event_id(), Some("a"), "the eventID survives a broken eventName");
    }

    #[test]
    fn a_stop_ends_the_walk_and_is_passed_back() {
        let batch = r#"[{"eventID":"a"},{"eventID":"b"},{"eventID":"c"}]"#;
        let mut seen = Vec::new();
        let walk = for_each_record(batch, |index, _| {
            seen.push(index);
            if index == 1 { Err("stop") } else { Ok(()) }
        });
        assert_eq!(walk.unwrap(), Err("stop"));
        assert_eq!(seen, [0, 1]);
    }

    #[test]
    fn rejects_what_is_not_an_array_of_decodable_records() {
        for batch in [r#"{"Records":[]}"#, "[", r#"[{"eventID":"a","eventID":"b"}]"#, "[] []"] {
            assert!(decode_all(batch).is_err(), "{batch}");
        }
    }

    #[test]
    fn error_messages_never_quote_values() {
        let Lax::Ok(record) = decode(r#"{"eventName":"Quennell Vasquez"}"#) else { panic!() };
        assert!(!record.event_name().unwrap_err().message.contains("Quennell"));
        let error = checked(r#"{"eventID":{"name":"Quennell"}}"#).unwrap_err();
        assert!(!error.message.contains("Quennell"));
    }
}
