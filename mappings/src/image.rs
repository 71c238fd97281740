//! A DynamoDB item image as it appears in a stream record (`{"name": {"S": "x"}, ...}`),
//! parsed without copying: strings borrow from the input JSON.
//!
//! Parsing never fails on odd attribute *values*: a value whose JSON shape does not match its
//! DynamoDB type tag (`{"S": 5}`, `{}`, `{"S": "a", "N": "1"}`) becomes
//! [`AttributeValue::Malformed`], so the mapping that reads that attribute can report it by
//! name, and attributes the mapping never reads cannot fail the record.

use std::{borrow::Cow, collections::HashMap, fmt};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::MappingError;

/// One DynamoDB attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue<'a> {
    /// `S`: a string.
    S(Cow<'a, str>),
    /// `N`: a number, kept as the decimal string DynamoDB sends.
    N(Cow<'a, str>),
    /// `BOOL`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// `M`: a nested map.
    M(Image<'a>),
    /// `L`: a list of values.
    L(Vec<AttributeValue<'a>>),
    /// `SS`, `NS`, `BS`, `B`: types no shipped mapping reads; the tag is kept, the content skipped.
    Other(&'static str),
    /// A value whose JSON does not match any DynamoDB type.
    Malformed,
}

impl AttributeValue<'_> {
    /// The same value owning its strings.
    pub fn into_owned(self) -> AttributeValue<'static> {
        match self {
            AttributeValue::S(value) => AttributeValue::S(Cow::Owned(value.into_owned())),
            AttributeValue::N(value) => AttributeValue::N(Cow::Owned(value.into_owned())),
            AttributeValue::Bool(value) => AttributeValue::Bool(value),
            AttributeValue::Null => AttributeValue::Null,
            AttributeValue::M(image) => AttributeValue::M(image.into_owned()),
            AttributeValue::L(values) => {
                AttributeValue::L(values.into_iter().map(AttributeValue::into_owned).collect())
            }
            AttributeValue::Other(tag) => AttributeValue::Other(tag),
            AttributeValue::Malformed => AttributeValue::Malformed,
        }
    }

    /// The DynamoDB type tag, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::Other(tag) => tag,
            AttributeValue::Malformed => "malformed value",
        }
    }
}

/// An item image: attribute name to value, in input order.
///
/// A small vector beats a hash map here: images have tens of attributes, and building a map
/// would cost an allocation per attribute for every record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image<'a> {
    attributes: Vec<(Cow<'a, str>, AttributeValue<'a>)>,
}

impl<'a> Image<'a> {
    /// Builds an image from attributes (used by tests and generators).
    pub fn from_attributes(attributes: Vec<(Cow<'a, str>, AttributeValue<'a>)>) -> Self {
        Self { attributes }
    }

    /// Parses an image from its JSON text.
    pub fn from_json(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The raw value of an attribute, `None` when absent.
    pub fn get(&self, name: &str) -> Option<&AttributeValue<'a>> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    /// The same image owning its strings (a looked-up item outlives the response it came in).
    pub fn into_owned(self) -> Image<'static> {
        let attributes =
            self.attributes.into_iter().map(|(name, value)| (Cow::Owned(name.into_owned()), value.into_owned()));
        Image { attributes: attributes.collect() }
    }

    /// True when the image has no attributes.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// Reads the attribute `name` as a trimmed string; absent, `NULL`, empty or blank is `None`.
    /// `path` is the field name used in errors (e.g. `address.city`).
    pub fn string(&self, name: &str, path: &str) -> Result<Option<&str>, MappingError> {
        match self.get(name) {
            None | Some(AttributeValue::Null) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(non_blank(value)),
            Some(other) => Err(MappingError::wrong_type(path, "S", other)),
        }
    }

    /// Like [`Image::string`], but a missing value is an error.
    pub fn required_string(&self, name: &str, path: &str) -> Result<&str, MappingError> {
        self.string(name, path)?.ok_or_else(|| MappingError::missing(path))
    }

    /// Reads a string that may also be given as a DynamoDB number (`N` keeps its digits as sent).
    pub fn string_or_number(&self, name: &str, path: &str) -> Result<Option<&str>, MappingError> {
        match self.get(name) {
            None | Some(AttributeValue::Null) => Ok(None),
            Some(AttributeValue::S(value) | AttributeValue::N(value)) => Ok(non_blank(value)),
            Some(other) => Err(MappingError::wrong_type(path, "S or N", other)),
        }
    }

    /// Reads a `BOOL` attribute.
    pub fn bool(&self, name: &str, path: &str) -> Result<Option<bool>, MappingError> {
        match self.get(name) {
            None | Some(AttributeValue::Null) => Ok(None),
            Some(AttributeValue::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(MappingError::wrong_type(path, "BOOL", other)),
        }
    }

    /// Reads an `L` attribute (absent or `NULL` is an empty list).
    pub fn list(&self, name: &str, path: &str) -> Result<&[AttributeValue<'a>], MappingError> {
        match self.get(name) {
            None | Some(AttributeValue::Null) => Ok(&[]),
            Some(AttributeValue::L(values)) => Ok(values),
            Some(other) => Err(MappingError::wrong_type(path, "L", other)),
        }
    }

    /// Reads an `M` attribute.
    pub fn map(&self, name: &str, path: &str) -> Result<Option<&Image<'a>>, MappingError> {
        match self.get(name) {
            None | Some(AttributeValue::Null) => Ok(None),
            Some(AttributeValue::M(value)) => Ok(Some(value)),
            Some(other) => Err(MappingError::wrong_type(path, "M", other)),
        }
    }
}

/// The value trimmed, `None` when blank: empty, or only white space and byte order marks (a
/// BOM is not white space to Rust but FHIR strings drop it, so a BOM-only value is blank too).
fn non_blank(value: &str) -> Option<&str> {
    let trimmed = value.trim();
    (!trimmed.chars().all(|c| c.is_whitespace() || c == '\u{feff}')).then_some(trimmed)
}

impl<'de: 'a, 'a> Deserialize<'de> for Image<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ImageVisitor)
    }
}

struct ImageVisitor;

impl<'de> Visitor<'de> for ImageVisitor {
    type Value = Image<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a DynamoDB item image (a JSON object of typed attribute values)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attributes = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(name) = map.next_key::<CowStr<'de>>()?.map(|k| k.0) {
            let value = map.next_value::<AttributeValue<'de>>()?;
            attributes.push((name, value));
        }
        Ok(Image { attributes })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AttributeValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = AttributeValue<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a DynamoDB attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        while let Some(tag) = map.next_key::<CowStr<'de>>()?.map(|k| k.0) {
            let parsed = match tag.as_ref() {
                "S" => map
                    .next_value::<Lenient<CowStr<'de>>>()?
                    .0
                    .map_or(AttributeValue::Malformed, |s| AttributeValue::S(s.0)),
                "N" => map
                    .next_value::<Lenient<CowStr<'de>>>()?
                    .0
                    .map_or(AttributeValue::Malformed, |s| AttributeValue::N(s.0)),
                "BOOL" => map.next_value::<Lenient<bool>>()?.0.map_or(AttributeValue::Malformed, AttributeValue::Bool),
                "NULL" => {
                    map.next_value::<IgnoredAny>()?;
                    AttributeValue::Null
                }
                "M" => map.next_value::<Lenient<Image<'de>>>()?.0.map_or(AttributeValue::Malformed, AttributeValue::M),
                "L" => map
                    .next_value::<Lenient<Vec<AttributeValue<'de>>>>()?
                    .0
                    .map_or(AttributeValue::Malformed, AttributeValue::L),
                other => {
                    map.next_value::<IgnoredAny>()?;
                    match other {
                        "SS" => AttributeValue::Other("SS"),
                        "NS" => AttributeValue::Other("NS"),
                        "BS" => AttributeValue::Other("BS"),
                        "B" => AttributeValue::Other("B"),
                        _ => AttributeValue::Malformed,
                    }
                }
            };
            // Exactly one type tag per value: a second one makes the value ambiguous.
            value = Some(if value.is_some() { AttributeValue::Malformed } else { parsed });
        }
        Ok(value.unwrap_or(AttributeValue::Malformed))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(AttributeValue::Malformed)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(AttributeValue::Malformed)
    }
}

/// A string that borrows from the input unless it has escapes (serde's own `Cow<str>` always copies).
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = CowStr<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Deserializes `T` when the JSON has the right shape, and `None` (consuming the value) otherwise.
struct Lenient<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffering through `serde_json::Value` would copy; instead peek at the JSON shape.
        let raw = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
}

impl<'a> Image<'a> {
    /// Converts into a [`serde_dynamo::Item`], for mappings that prefer to deserialize a typed
    /// domain struct with `serde_dynamo::from_item`. Malformed values become `NULL`.
    pub fn to_item(&self) -> serde_dynamo::Item {
        let map: HashMap<String, serde_dynamo::AttributeValue> =
            self.attributes.iter().map(|(k, v)| (k.to_string(), v.to_dynamo())).collect();
        serde_dynamo::Item::from(map)
    }
}

impl AttributeValue<'_> {
    fn to_dynamo(&self) -> serde_dynamo::AttributeValue {
        use serde_dynamo::AttributeValue as D;
        match self {
            AttributeValue::S(s) => D::S(s.to_string()),
            AttributeValue::N(n) => D::N(n.to_string()),
            AttributeValue::Bool(b) => D::Bool(*b),
            AttributeValue::M(image) => D::M(image.to_item().into()),
            AttributeValue::L(values) => D::L(values.iter().map(AttributeValue::to_dynamo).collect()),
            AttributeValue::Null | AttributeValue::Other(_) | AttributeValue::Malformed => D::Null(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_values_and_borrows_strings() {
        let json = r#"{"a":{"S":"x"},"b":{"N":"01"},"c":{"BOOL":true},"d":{"NULL":true},
            "e":{"M":{"f":{"S":"y"}}},"g":{"SS":["1","2"]},"h":{"L":[{"S":"z"}]}}"#;
        let image = Image::from_json(json).unwrap();
        assert!(matches!(image.get("a"), Some(AttributeValue::S(Cow::Borrowed("x")))));
        assert_eq!(image.get("b"), Some(&AttributeValue::N("01".into())));
        assert_eq!(image.get("c"), Some(&AttributeValue::Bool(true)));
        assert_eq!(image.get("d"), Some(&AttributeValue::Null));
        assert_eq!(image.map("e", "e").unwrap().unwrap().string("f", "e.f").unwrap(), Some("y"));
        assert_eq!(image.get("g"), Some(&AttributeValue::Other("SS")));
        assert_eq!(image.list("h", "h").unwrap(), &[AttributeValue::S("z".into())]);
        assert_eq!(image.list("absent", "absent").unwrap(), &[]);
        assert_eq!(image.list("a", "a").unwrap_err().kind, crate::ErrorKind::WrongType);
    }

    #[test]
    fn odd_values_become_malformed_instead_of_failing_the_image() {
        let json = r#"{"a":{"S":5},"b":{},"c":{"S":"x","N":"1"},"d":"plain","e":{"XX":1},"f":{"M":[]},"g":{"L":{}}}"#;
        let image = Image::from_json(json).unwrap();
        for name in ["a", "b", "c", "d", "e", "f", "g"] {
            assert_eq!(image.get(name), Some(&AttributeValue::Malformed), "{name}");
        }
    }

    #[test]
    fn blank_strings_and_null_count_as_missing() {
        let image = Image::from_json(r#"{"a":{"S":"  "},"b":{"NULL":true},"c":{"S":" x "}}"#).unwrap();
        assert_eq!(image.string("a", "a").unwrap(), None);
        assert_eq!(image.string("b", "b").unwrap(), None);
        assert_eq!(image.string("c", "c").unwrap(), Some("x"));
        assert_eq!(image.required_string("zz", "zz").unwrap_err().field, "zz");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let image = Image::from_json(r#"{"a":{"N":"1"}}"#).unwrap();
        let error = image.string("a", "outer.a").unwrap_err();
        assert_eq!(error.field, "outer.a");
        assert_eq!(error.kind, crate::ErrorKind::WrongType);
    }

    #[test]
    fn converts_to_a_serde_dynamo_item() {
        #[derive(serde::Deserialize)]
        struct Row {
            a: String,
            b: u32,
        }
        let image = Image::from_json(r#"{"a":{"S":"x"},"b":{"N":"7"}}"#).unwrap();
        let row: Row = serde_dynamo::from_item(image.to_item()).unwrap();
        assert_eq!((row.a.as_str(), row.b), ("x", 7));
    }

    #[test]
    fn regression_bom_only_strings_are_blank() {
        let image = Image::from_json(
            r#"{"a":{"S":"\ufeff"},"b":{"S":" \ufeff\u00a0\ufeff "},"c":{"N":"\ufeff"},"d":{"S":"\ufeffx"}}"#,
        )
        .unwrap();
        assert_eq!(image.string("a", "a").unwrap(), None);
        assert_eq!(image.string("b", "b").unwrap(), None);
        assert_eq!(image.string_or_number("c", "c").unwrap(), None);
        assert_eq!(image.required_string("a", "a").unwrap_err().kind, crate::ErrorKind::MissingField);
        assert_eq!(
            image.string("d", "d").unwrap(),
            Some("\u{feff}x"),
            "a BOM next to text is kept (fhir_string drops it)"
        );
    }
}
