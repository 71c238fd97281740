//! The reference mapping: a domain `Patients` table to a FHIR R4 Patient.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `firstName` (required), `middleName` | S | `name[0].given` |
//! | `lastName` (required) | S | `name[0].family` |
//! | `birthDate` (required) | S, `YYYY-MM-DD` or `MM-DD-YYYY` | `birthDate` (`YYYY-MM-DD`) |
//! | `gender` | S, `M`/`male`, `F`/`female`, `O`/`other`, `U`/`unknown` | `gender` |
//! | `phone`, `email` | S | `telecom` |
//! | `mrn` | S | `identifier` (type `MR`) |
//! | `active` | BOOL | `active` |
//! | `address` | M {`address1`, `address2`, `city`, `state`, `zip` (S or N), `country`} | `address[0]` |

use fhir_sdk::{
    Date,
    r4b::{
        codes::{AddressUse, AdministrativeGender, ContactPointSystem},
        resources::Patient,
    },
};

use crate::{
    ErrorKind, Image, Mapping, MappingError,
    datatypes::{address, identifier, official_name, telecom},
    dates, fhir_id,
};

/// Code system of identifier types (HL7 v2 table 0203).
pub const IDENTIFIER_TYPE_SYSTEM: &str = crate::datatypes::systems::IDENTIFIER_TYPE;

/// Identifier system used for `mrn` unless configured.
pub const DEFAULT_MRN_SYSTEM: &str = "urn:fhir-pipes:mrn";

/// Domain Patient → FHIR Patient.
#[derive(Debug, Clone)]
pub struct PatientMapping {
    /// `identifier.system` of the MRN identifier (the issuing organisation's namespace).
    pub mrn_system: String,
}

impl Default for PatientMapping {
    fn default() -> Self {
        Self { mrn_system: DEFAULT_MRN_SYSTEM.to_owned() }
    }
}

impl Mapping for PatientMapping {
    type Resource = Patient;

    const RESOURCE_TYPE: &'static str = "Patient";

    fn map(&self, image: &Image<'_>) -> Result<Patient, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let first_name = image.required_string("firstName", "firstName")?;
        let middle_name = image.string("middleName", "middleName")?;
        let last_name = image.required_string("lastName", "lastName")?;
        let birth_date = parse_birth_date(image.required_string("birthDate", "birthDate")?)?;
        let gender = image.string("gender", "gender")?.map(parse_gender).transpose()?;
        let phone = image.string("phone", "phone")?;
        let email = image.string("email", "email")?;
        let mrn = image.string("mrn", "mrn")?;
        let active = image.bool("active", "active")?;
        let address = address(image, AddressUse::Home)?;

        let name = official_name(first_name, middle_name, last_name, None)?;

        let telecom = telecom(&[(ContactPointSystem::Phone, phone), (ContactPointSystem::Email, email)], None)?;

        let mut patient = Patient::builder().id(id).name(vec![Some(name)]).birth_date(birth_date).telecom(telecom);
        if let Some(mrn) = mrn {
            patient = patient.identifier(vec![Some(identifier(Some("MR"), &self.mrn_system, mrn)?)]);
        }
        if let Some(active) = active {
            patient = patient.active(active);
        }
        if let Some(gender) = gender {
            patient = patient.gender(gender);
        }
        if let Some(address) = address {
            patient = patient.address(vec![Some(address)]);
        }
        Ok(patient.build()?)
    }
}

/// `M`/`male`, `F`/`female`, `O`/`other`, `U`/`unknown`, any case.
pub fn parse_gender(code: &str) -> Result<AdministrativeGender, MappingError> {
    let gender = match code.to_ascii_lowercase().as_str() {
        "m" | "male" => AdministrativeGender::Male,
        "f" | "female" => AdministrativeGender::Female,
        "o" | "other" => AdministrativeGender::Other,
        "u" | "unknown" => AdministrativeGender::Unknown,
        _ => {
            return Err(MappingError::new(
                "gender",
                ErrorKind::InvalidValue,
                "not a known gender code (expected M, F, O, U, male, female, other or unknown)",
            ));
        }
    };
    Ok(gender)
}

/// `YYYY-MM-DD` or `MM-DD-YYYY`, on the calendar, to a FHIR date (`YYYY-MM-DD`).
pub fn parse_birth_date(text: &str) -> Result<Date, MappingError> {
    dates::parse_full_date(text, "birthDate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&PatientMapping::default(), image)
    }

    const MINIMAL: &str =
        r#"{"id":{"S":"p1"},"firstName":{"S":"Ada"},"lastName":{"S":"Lovelace"},"birthDate":{"S":"1815-12-10"}"#;

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}}}")
    }

    #[test]
    fn minimal_patient() {
        assert_eq!(
            map(&with("")).unwrap(),
            json!({"resourceType":"Patient","id":"p1","name":[{"use":"official","family":"Lovelace","given":["Ada"]}],"birthDate":"1815-12-10"})
        );
    }

    #[test]
    fn both_date_formats_normalise_and_off_calendar_dates_fail() {
        assert_eq!(serde_json::to_value(parse_birth_date("12-10-1815").unwrap()).unwrap(), "1815-12-10");
        assert_eq!(serde_json::to_value(parse_birth_date("2000-02-29").unwrap()).unwrap(), "2000-02-29");
        for bad in [
            "1990-13-45",
            "02-30-1991",
            "1900-02-29",
            "1815/12/10",
            "1815-1-10",
            "0000-01-01",
            "19901231",
            "",
            "१९९०-०१-०१",
        ] {
            let error = parse_birth_date(bad).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("birthDate", ErrorKind::InvalidDate), "{bad}");
            assert!(!error.message.contains(bad) || bad.is_empty());
        }
    }

    #[test]
    fn gender_codes_any_case() {
        for (code, expected) in [
            ("M", "male"),
            ("male", "male"),
            ("FEMALE", "female"),
            ("f", "female"),
            ("O", "other"),
            ("u", "unknown"),
            ("Unknown", "unknown"),
        ] {
            assert_eq!(map(&with(&format!(r#","gender":{{"S":"{code}"}}"#))).unwrap()["gender"], expected);
        }
        assert_eq!(map(&with(r#","gender":{"S":"X"}"#)).unwrap_err().field, "gender");
    }

    #[test]
    fn required_fields_missing_blank_null_or_wrong_type() {
        for field in ["id", "firstName", "lastName", "birthDate"] {
            let image: Value = serde_json::from_str(&with("")).unwrap();
            for replacement in [None, Some(json!({"S": "  "})), Some(json!({"NULL": true}))] {
                let mut image = image.clone();
                match &replacement {
                    None => drop(image.as_object_mut().unwrap().remove(field)),
                    Some(value) => image[field] = value.clone(),
                }
                let error = map(&image.to_string()).unwrap_err();
                assert_eq!((error.field.as_str(), error.kind), (field, ErrorKind::MissingField));
            }
            let mut image = image.clone();
            image[field] = json!({"N": "1"});
            let error = map(&image.to_string()).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), (field, ErrorKind::WrongType));
        }
    }

    #[test]
    fn full_patient_with_numeric_zip() {
        let patient = map(&with(
            r#","middleName":{"S":"King"},"gender":{"S":"F"},"phone":{"S":"555-0100"},"email":{"S":"ada@example.org"},
            "mrn":{"S":"MRN-1"},"active":{"BOOL":true},"address":{"M":{"address1":{"S":"1 St James Sq"},"city":{"S":"London"},"zip":{"N":"02134"}}}"#,
        ))
        .unwrap();
        assert_eq!(patient["name"][0]["given"], json!(["Ada", "King"]));
        assert_eq!(
            patient["telecom"],
            json!([{"system":"phone","value":"555-0100"},{"system":"email","value":"ada@example.org"}])
        );
        assert_eq!(
            patient["identifier"],
            json!([{"type":{"coding":[{"system":IDENTIFIER_TYPE_SYSTEM,"code":"MR"}]},"system":DEFAULT_MRN_SYSTEM,"value":"MRN-1"}])
        );
        assert_eq!(patient["active"], true);
        assert_eq!(
            patient["address"],
            json!([{"use":"home","line":["1 St James Sq"],"city":"London","postalCode":"02134"}])
        );
    }

    #[test]
    fn empty_address_is_omitted_and_wrong_nested_type_is_named() {
        assert!(map(&with(r#","address":{"M":{"city":{"S":" "}}}"#)).unwrap().get("address").is_none());
        assert_eq!(map(&with(r#","address":{"M":{"zip":{"BOOL":true}}}"#)).unwrap_err().field, "address.zip");
        assert_eq!(map(&with(r#","address":{"S":"1 Main St"}"#)).unwrap_err().field, "address");
        assert_eq!(map(&with(r#","active":{"S":"true"}"#)).unwrap_err().field, "active");
    }

    #[test]
    fn unknown_attributes_of_any_type_are_ignored() {
        let extra = r#","tags":{"SS":["a"]},"scores":{"NS":["1"]},"blob":{"B":"AA=="},"list":{"L":[]},"meta":{"M":{}},"nothing":{"NULL":true},"odd":{"S":7}"#;
        assert_eq!(map(&with(extra)).unwrap(), map(&with("")).unwrap());
    }

    #[test]
    fn ids_that_are_not_fhir_ids_get_uuid_v5() {
        let image = with("").replace(r#""id":{"S":"p1"}"#, r##""id":{"S":"PATIENT#1"}"##);
        assert_eq!(map(&image).unwrap()["id"], fhir_id("Patient", "PATIENT#1"));
        let keys = Image::from_json(r##"{"id":{"S":"PATIENT#1"}}"##).unwrap();
        assert_eq!(PatientMapping::default().fhir_id_from_keys(&keys).unwrap(), fhir_id("Patient", "PATIENT#1"));
    }
}
