//! Pure domain-to-FHIR R4 mappings for DynamoDB stream images. No AWS code lives here.
//!
//! A mapping reads one item [`Image`] of a user's table and returns a fhir-sdk resource, or a
//! [`MappingError`] that names the field. The enrichment core (`fhir-pipes-enrichers`) is
//! generic over [`Mapping`]: envelopes, skip-unchanged, DELETE handling and error events are
//! written once there.

pub mod condition;
pub mod datatypes;
pub mod dates;
pub mod decode;
pub mod encounter;
pub mod error;
pub mod id;
pub mod image;
pub mod lookup;
pub mod observation;
pub mod organization;
pub mod patient;
pub mod practitioner;
pub mod text;

#[cfg(test)]
mod test_support;

pub use condition::ConditionMapping;
pub use encounter::EncounterMapping;
pub use error::{ErrorKind, MappingError};
pub use id::{fhir_id, is_valid_fhir_id, reference};
pub use image::{AttributeValue, CowStr, Image};
pub use lookup::{ItemKey, KeyValue, LookupKey, Lookups};
pub use observation::ObservationMapping;
pub use organization::OrganizationMapping;
pub use patient::PatientMapping;
pub use practitioner::PractitionerMapping;
pub use text::fhir_string;

use serde::Serialize;

/// One domain table shape mapped to one FHIR resource type.
pub trait Mapping: Send + Sync {
    /// The FHIR resource produced, serialized into the envelope's `details.entity`.
    type Resource: Serialize + PartialEq;

    /// FHIR resource type, e.g. `"Patient"`; also the prefix of event types
    /// (`PatientChange`, `PatientMappingFailed`).
    const RESOURCE_TYPE: &'static str;

    /// Maps a full item image (`NewImage`, or `OldImage` of a REMOVE).
    fn map(&self, image: &Image<'_>) -> Result<Self::Resource, MappingError>;

    /// The FHIR id of the record from its key attributes only (a REMOVE without an old image).
    /// By default the `id` key attribute, by the shared id rule ([`fhir_id`]).
    fn fhir_id_from_keys(&self, keys: &Image<'_>) -> Result<String, MappingError> {
        Ok(fhir_id(Self::RESOURCE_TYPE, keys.required_string("id", "id")?))
    }

    /// True when this mapping (as configured) may need related records: the enrichment then
    /// fetches them for the whole batch before mapping. False by default.
    fn uses_lookups(&self) -> bool {
        false
    }

    /// The related records mapping `image` needs. None by default. An attribute of the wrong
    /// type needs no lookup here: [`Mapping::map_with`] reports it.
    fn lookups(&self, _image: &Image<'_>) -> Vec<LookupKey> {
        Vec::new()
    }

    /// Maps `image` with the related records fetched for it (see [`Mapping::lookups`]). By
    /// default the items are not needed and this is [`Mapping::map`].
    fn map_with(&self, image: &Image<'_>, _lookups: &Lookups<'_>) -> Result<Self::Resource, MappingError> {
        self.map(image)
    }
}
