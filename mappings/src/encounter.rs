//! A domain `Encounters` table to a FHIR R4 Encounter.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `status` (required) | S, an EncounterStatus code (`planned`, `in-progress`, `finished`…), any case | `status` |
//! | `class` (required) | S, a v3-ActCode (`AMB`, `IMP`, `EMER`, `VR`, `HH`…) or `ambulatory`, `outpatient`, `emergency`, `field`, `home`, `home health`, `inpatient`, `observation`, `virtual`, `telehealth` | `class` |
//! | `type` | M {`code` (required), `system` (default SNOMED CT), `display`} | `type[0]` |
//! | `patientId` (required) | S, the Patient's domain id | `subject` `Patient/<id>` |
//! | `practitionerId` | S, the Practitioner's domain id | `participant[0]` (type `ATND`) `Practitioner/<id>` |
//! | `organizationId` | S, the Organization's domain id | `serviceProvider` `Organization/<id>` |
//! | `start`, `end` | S date or RFC 3339 time with offset, or N epoch seconds | `period` (end before start is an error) |
//!
//! With a practitioner table set ([`EncounterMapping::practitioner_table`]), `practitionerId` is
//! looked up in it (key attribute `id`, fetched for the whole batch by the enrichment core) and
//! the practitioner's `prefix firstName middleName lastName` becomes `participant[0].individual.display`.
//! A practitioner that does not exist fails the record (`lookup.practitioner`).

use fhir_sdk::r4b::{
    codes::EncounterStatus,
    resources::{Encounter, EncounterParticipant},
};

use crate::{
    ErrorKind, Image, LookupKey, Lookups, Mapping, MappingError,
    datatypes::{codeable_concept, coding, fhir_code, period, reference, systems},
    fhir_id,
};

/// The lookup label of the participant's practitioner (error events name `lookup.practitioner`).
const PRACTITIONER_LOOKUP: &str = "practitioner";
/// The field prefix of errors in the looked-up practitioner.
const PRACTITIONER_FIELD: &str = "lookup.practitioner";
/// The key attribute of the practitioner table (its domain id, as `practitionerId` holds it).
const PRACTITIONER_KEY: &str = "id";

/// The v3-ActCode encounter classes: code, display, and the plain words accepted for it.
const ENCOUNTER_CLASSES: &[(&str, &str, &[&str])] = &[
    ("AMB", "ambulatory", &["ambulatory", "outpatient"]),
    ("EMER", "emergency", &["emergency"]),
    ("FLD", "field", &["field"]),
    ("HH", "home health", &["home", "home health"]),
    ("IMP", "inpatient encounter", &["inpatient"]),
    ("ACUTE", "inpatient acute", &[]),
    ("NONAC", "inpatient non-acute", &[]),
    ("OBSENC", "observation encounter", &["observation"]),
    ("PRENC", "pre-admission", &[]),
    ("SS", "short stay", &[]),
    ("VR", "virtual", &["virtual", "telehealth"]),
];

const ENCOUNTER_STATUSES: &str = "an Encounter status (planned, arrived, triaged, in-progress, onleave, finished, cancelled, entered-in-error, unknown)";

/// Domain Encounter → FHIR Encounter.
#[derive(Debug, Clone, Default)]
pub struct EncounterMapping {
    /// The practitioners' table: when set, each participant gets its practitioner's name as
    /// `display` (one batched lookup per invocation). When unset, no lookup is made.
    pub practitioner_table: Option<String>,
}

impl Mapping for EncounterMapping {
    type Resource = Encounter;

    const RESOURCE_TYPE: &'static str = "Encounter";

    fn map(&self, image: &Image<'_>) -> Result<Encounter, MappingError> {
        self.map_with(image, &Lookups::none())
    }

    fn uses_lookups(&self) -> bool {
        self.practitioner_table.is_some()
    }

    fn lookups(&self, image: &Image<'_>) -> Vec<LookupKey> {
        let (Some(table), Ok(Some(practitioner_id))) =
            (&self.practitioner_table, image.string("practitionerId", "practitionerId"))
        else {
            return Vec::new();
        };
        vec![LookupKey::by_string(PRACTITIONER_LOOKUP, table, PRACTITIONER_KEY, practitioner_id)]
    }

    fn map_with(&self, image: &Image<'_>, lookups: &Lookups<'_>) -> Result<Encounter, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let status =
            fhir_code::<EncounterStatus>(image.required_string("status", "status")?, "status", ENCOUNTER_STATUSES)?;
        let (class_code, class_display) = parse_class(image.required_string("class", "class")?)?;
        let encounter_type = image.coded("type", "type", Some(systems::SNOMED))?;
        let subject = image.reference("patientId", "Patient")?.ok_or_else(|| MappingError::missing("patientId"))?;
        let practitioner_display = lookups.get(PRACTITIONER_LOOKUP).map(practitioner_display).transpose()?.flatten();
        let practitioner = image
            .string("practitionerId", "practitionerId")?
            .map(|domain_id| reference("Practitioner", domain_id, practitioner_display.as_deref()))
            .transpose()?;
        let service_provider = image.reference("organizationId", "Organization")?;
        let start = image.date_time("start", "start")?;
        let end = image.date_time("end", "end")?;

        let class = coding(systems::ACT_CODE, class_code, Some(class_display))?;
        let mut encounter = Encounter::builder().id(id).status(status).class(class).subject(subject);
        if let Some(encounter_type) = encounter_type {
            encounter = encounter.r#type(vec![Some(encounter_type)]);
        }
        if let Some(practitioner) = practitioner {
            let attender = codeable_concept(systems::PARTICIPATION_TYPE, "ATND", Some("attender"))?;
            let participant = EncounterParticipant::builder().r#type(vec![Some(attender)]).individual(practitioner);
            encounter = encounter.participant(vec![Some(participant.build()?)]);
        }
        if let Some(period) = period(start, end, "end")? {
            encounter = encounter.period(period);
        }
        if let Some(service_provider) = service_provider {
            encounter = encounter.service_provider(service_provider);
        }
        Ok(encounter.build()?)
    }
}

/// `prefix firstName middleName lastName` of a Practitioners item, `None` when it has no name part.
fn practitioner_display(item: &Image<'_>) -> Result<Option<String>, MappingError> {
    let mut parts = Vec::with_capacity(4);
    for attribute in ["prefix", "firstName", "middleName", "lastName"] {
        parts.extend(item.string(attribute, attribute).map_err(|e| e.within(PRACTITIONER_FIELD))?);
    }
    Ok((!parts.is_empty()).then(|| parts.join(" ")))
}

fn parse_class(code: &str) -> Result<(&'static str, &'static str), MappingError> {
    ENCOUNTER_CLASSES
        .iter()
        .find(|(known, _, words)| {
            known.eq_ignore_ascii_case(code) || words.iter().any(|word| word.eq_ignore_ascii_case(code))
        })
        .map(|(known, display, _)| (*known, *display))
        .ok_or_else(|| {
            let codes: Vec<&str> = ENCOUNTER_CLASSES.iter().map(|(code, _, _)| *code).collect();
            let words: Vec<&str> = ENCOUNTER_CLASSES.iter().flat_map(|(_, _, words)| words.iter().copied()).collect();
            let message = format!("not a v3-ActCode encounter class ({}) nor {}", codes.join(", "), words.join(", "));
            MappingError::new("class", ErrorKind::InvalidValue, message)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id;
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&EncounterMapping::default(), image)
    }

    const MINIMAL: &str =
        r#"{"id":{"S":"enc-1"},"status":{"S":"finished"},"class":{"S":"AMB"},"patientId":{"S":"pat-1"}}"#;

    /// The minimal image with `extra` attributes added or replaced.
    fn with(extra: &str) -> String {
        crate::test_support::image_with(MINIMAL, extra)
    }

    #[test]
    fn minimal_encounter() {
        assert_eq!(
            map(&with("")).unwrap(),
            json!({"resourceType":"Encounter","id":"enc-1","status":"finished",
                   "class":{"system":systems::ACT_CODE,"code":"AMB","display":"ambulatory"},
                   "subject":{"reference":"Patient/pat-1"}})
        );
    }

    #[test]
    fn references_follow_each_resource_id_rule() {
        let encounter = map(&with(
            r##","patientId":{"S":"PATIENT#1"},"practitionerId":{"S":"PRACTITIONER#2"},"organizationId":{"S":"ORG#3"}"##,
        ))
        .unwrap();
        assert_eq!(encounter["subject"]["reference"], id::reference("Patient", "PATIENT#1"));
        assert_eq!(
            encounter["participant"][0]["individual"]["reference"],
            id::reference("Practitioner", "PRACTITIONER#2")
        );
        assert_eq!(encounter["participant"][0]["type"][0]["coding"][0]["code"], "ATND");
        assert_eq!(encounter["serviceProvider"]["reference"], id::reference("Organization", "ORG#3"));
    }

    #[test]
    fn statuses_and_classes() {
        let status = |code: &str| map(&with(&format!(r#","status":{{"S":"{code}"}}"#)));
        assert_eq!(status("In-Progress").unwrap()["status"], "in-progress");
        assert_eq!(status("entered-in-error").unwrap()["status"], "entered-in-error");
        assert_eq!(status("done").unwrap_err().field, "status");
        let class = |code: &str| map(&with(&format!(r#","class":{{"S":"{code}"}}"#)));
        assert_eq!(class("inpatient").unwrap()["class"]["code"], "IMP");
        assert_eq!(class("outpatient").unwrap()["class"]["code"], "AMB");
        assert_eq!(class("vr").unwrap()["class"]["code"], "VR");
        assert_eq!(class("clinic").unwrap_err().field, "class");
    }

    #[test]
    fn period_and_type() {
        let encounter = map(&with(
            r#","start":{"S":"2026-03-01T09:30:00-05:00"},"end":{"N":"1772379000"},"type":{"M":{"code":{"S":"185349003"},"display":{"S":"Encounter for check up"}}}"#,
        ))
        .unwrap();
        assert_eq!(encounter["period"], json!({"start":"2026-03-01T09:30:00-05:00","end":"2026-03-01T15:30:00Z"}));
        assert_eq!(encounter["type"][0]["coding"][0]["system"], systems::SNOMED);
        let error =
            map(&with(r#","start":{"S":"2026-03-01T09:30:00Z"},"end":{"S":"2026-03-01T09:00:00Z"}"#)).unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("end", ErrorKind::InvalidValue));
    }

    #[test]
    fn practitioner_lookup_only_with_a_table_and_an_id() {
        let image = with(r#","practitionerId":{"S":"pr-1"}"#);
        let image = Image::from_json(&image).unwrap();
        assert!(EncounterMapping::default().lookups(&image).is_empty());
        let mapping = EncounterMapping { practitioner_table: Some("Practitioners".into()) };
        assert!(mapping.uses_lookups());
        let keys = mapping.lookups(&image);
        assert_eq!(keys, vec![LookupKey::by_string("practitioner", "Practitioners", "id", "pr-1")]);
        let without = Image::from_json(MINIMAL).unwrap();
        assert!(mapping.lookups(&without).is_empty());
    }

    #[test]
    fn the_looked_up_practitioner_name_is_the_participant_display() {
        let image = with(r#","practitionerId":{"S":"pr-1"}"#);
        let image = Image::from_json(&image).unwrap();
        let mapping = EncounterMapping { practitioner_table: Some("Practitioners".into()) };
        let item = Image::from_json(
            r#"{"id":{"S":"pr-1"},"prefix":{"S":"Dr."},"firstName":{"S":"Ann"},"lastName":{"S":"Lee"}}"#,
        )
        .unwrap();
        let item: Image<'static> = item.into_owned();
        let mut lookups = Lookups::none();
        lookups.insert("practitioner", &item);
        let encounter = serde_json::to_value(mapping.map_with(&image, &lookups).unwrap()).unwrap();
        assert_eq!(
            encounter["participant"][0]["individual"],
            json!({"reference":"Practitioner/pr-1","display":"Dr. Ann Lee"})
        );
        // Not required and absent: no display.
        let encounter = serde_json::to_value(mapping.map_with(&image, &Lookups::none()).unwrap()).unwrap();
        assert_eq!(encounter["participant"][0]["individual"], json!({"reference":"Practitioner/pr-1"}));
        let bad = Image::from_json(r#"{"id":{"S":"pr-1"},"lastName":{"N":"5"}}"#).unwrap().into_owned();
        let mut lookups = Lookups::none();
        lookups.insert("practitioner", &bad);
        assert_eq!(mapping.map_with(&image, &lookups).unwrap_err().field, "lookup.practitioner.lastName");
    }

    #[test]
    fn required_fields() {
        for field in ["id", "status", "class", "patientId"] {
            let mut image: Value = serde_json::from_str(&with("")).unwrap();
            image.as_object_mut().unwrap().remove(field);
            let error = map(&image.to_string()).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), (field, ErrorKind::MissingField));
        }
    }
}
