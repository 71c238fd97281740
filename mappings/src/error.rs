//! Mapping errors: they name the field and the kind of problem, and never carry the value
//! (values are patient data; these errors end up in logs and error events).

use std::fmt;

use serde::Serialize;

use crate::image::AttributeValue;

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A required attribute is absent, `NULL`, empty or blank.
    MissingField,
    /// The attribute has another DynamoDB type than the mapping reads (or malformed JSON).
    WrongType,
    /// The value is of the right type but not one the mapping accepts (e.g. a gender code).
    InvalidValue,
    /// The value is not a calendar date in an accepted format.
    InvalidDate,
}

impl ErrorKind {
    /// The snake_case name used in error events, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MissingField => "missing_field",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::InvalidDate => "invalid_date",
        }
    }
}

/// A field of a domain record that cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct MappingError {
    /// The attribute path in the domain image, e.g. `birthDate` or `address.zip`.
    pub field: String,
    /// What is wrong.
    pub kind: ErrorKind,
    /// A human explanation that names no value.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {} ({})", self.field, self.message, self.kind.as_str())
    }
}

impl MappingError {
    /// Any error for `field`.
    pub fn new(field: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), kind, message: message.into() }
    }

    /// A required field is missing.
    pub fn missing(field: &str) -> Self {
        Self::new(field, ErrorKind::MissingField, "required attribute is absent, NULL or blank")
    }

    /// The same error for the field inside `prefix` (e.g. `lookup.practitioner.firstName`).
    pub fn within(self, prefix: &str) -> Self {
        Self { field: format!("{prefix}.{}", self.field), ..self }
    }

    /// A field has the wrong DynamoDB type.
    pub fn wrong_type(field: &str, expected: &str, found: &AttributeValue<'_>) -> Self {
        Self::new(
            field,
            ErrorKind::WrongType,
            format!("expected a DynamoDB {expected} value, found {}", found.type_name()),
        )
    }
}

impl From<fhir_sdk::BuilderError> for MappingError {
    fn from(error: fhir_sdk::BuilderError) -> Self {
        // Only reachable through a bug in a mapping (a required FHIR element not set).
        MappingError::new("(resource)", ErrorKind::InvalidValue, format!("FHIR builder: {error}"))
    }
}
