//! Reading JSON one field at a time, so that every failure names the field it is about.
//!
//! Objects are read into structs whose fields are all `Option<&RawValue>`: serde only checks
//! that the value is an object; each field is then read here, with its full path (for example
//! `body.detail.requestParameters.resourceType`) in the error.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::SignalErrorKind;

/// A field that cannot be read: where, and why. The message id is added by the caller.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(crate) field: String,
    pub(crate) kind: SignalErrorKind,
}

impl Fault {
    pub(crate) fn new(field: impl Into<String>, kind: SignalErrorKind) -> Self {
        Self { field: field.into(), kind }
    }
}

/// The path of `name` inside `parent`.
pub(crate) fn child(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

/// The path of item `index` of the array at `parent`.
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The value, or a `Missing` fault at `path` when it is absent or `null`.
pub(crate) fn required<'a>(value: Option<&'a RawValue>, path: &str) -> Result<&'a RawValue, Fault> {
    value.ok_or_else(|| Fault::new(path, SignalErrorKind::Missing))
}

/// The object at `path` as `T` (a struct of `Option<&RawValue>` fields).
pub(crate) fn object<'a, T: Deserialize<'a>>(value: &'a RawValue, path: &str) -> Result<T, Fault> {
    serde_json::from_str(value.get()).map_err(|_| {
        let kind = if value.get().starts_with('{') {
            SignalErrorKind::RepeatedKey
        } else {
            SignalErrorKind::WrongType { expected: "an object" }
        };
        Fault::new(path, kind)
    })
}

/// The string at `path`, unescaped.
pub(crate) fn string(value: &RawValue, path: &str) -> Result<String, Fault> {
    serde_json::from_str(value.get()).map_err(|_| Fault::new(path, SignalErrorKind::WrongType { expected: "a string" }))
}

/// The string at `path`, when present and not `null`.
pub(crate) fn optional_string(value: Option<&RawValue>, path: &str) -> Result<Option<String>, Fault> {
    value.map(|value| string(value, path)).transpose()
}

/// The required string at `path`.
pub(crate) fn required_string(value: Option<&RawValue>, path: &str) -> Result<String, Fault> {
    string(required(value, path)?, path)
}

/// The items of the array at `path`, each still raw.
pub(crate) fn array<'a>(value: &'a RawValue, path: &str) -> Result<Vec<&'a RawValue>, Fault> {
    serde_json::from_str(value.get()).map_err(|_| Fault::new(path, SignalErrorKind::WrongType { expected: "an array" }))
}

/// The whole number at `path` (no fraction, no exponent, no quotes).
pub(crate) fn integer(value: &RawValue, path: &str) -> Result<i64, Fault> {
    serde_json::from_str(value.get())
        .map_err(|_| Fault::new(path, SignalErrorKind::WrongType { expected: "a whole number" }))
}

/// A string or a number at `path`, as text (a number keeps its JSON spelling). For fields whose
/// JSON type differs between FHIR versions or is not documented (`eventNumber`, `submitTime`).
pub(crate) fn string_or_number(value: &RawValue, path: &str) -> Result<String, Fault> {
    let text = value.get();
    if text.starts_with(|first: char| first == '-' || first.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    serde_json::from_str(text)
        .map_err(|_| Fault::new(path, SignalErrorKind::WrongType { expected: "a string or a number" }))
}
