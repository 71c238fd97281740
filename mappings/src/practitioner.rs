//! A domain `Practitioners` table to a FHIR R4 Practitioner.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `firstName` (required), `middleName` | S | `name[0].given` |
//! | `lastName` (required) | S | `name[0].family` |
//! | `prefix` | S, e.g. `Dr.` | `name[0].prefix` |
//! | `npi` | S or N, 10 digits with a valid check digit | `identifier` (system `http://hl7.org/fhir/sid/us-npi`) |
//! | `gender` | S, as Patient | `gender` |
//! | `phone`, `email` | S | `telecom` (use `work`) |
//! | `active` | BOOL | `active` |
//! | `qualifications` | L of M {`code` (required), `system` (default v2-0360), `display`, `issuerId`, `start`, `end`} | `qualification[]` (issuer `Organization/<id>`) |

use fhir_sdk::r4b::{
    codes::{ContactPointSystem, ContactPointUse},
    resources::{Practitioner, PractitionerQualification},
};

use crate::{
    Image, Mapping, MappingError,
    datatypes::{
        coded_concept, each_map, identifier, official_name, period, reference, systems, telecom, validate_npi,
    },
    fhir_id,
    patient::parse_gender,
};

/// Domain Practitioner → FHIR Practitioner.
#[derive(Debug, Clone, Default)]
pub struct PractitionerMapping;

impl Mapping for PractitionerMapping {
    type Resource = Practitioner;

    const RESOURCE_TYPE: &'static str = "Practitioner";

    fn map(&self, image: &Image<'_>) -> Result<Practitioner, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let first_name = image.required_string("firstName", "firstName")?;
        let middle_name = image.string("middleName", "middleName")?;
        let last_name = image.required_string("lastName", "lastName")?;
        let prefix = image.string("prefix", "prefix")?;
        let npi = image.string_or_number("npi", "npi")?.map(|npi| validate_npi(npi, "npi")).transpose()?;
        let gender = image.string("gender", "gender")?.map(parse_gender).transpose()?;
        let phone = image.string("phone", "phone")?;
        let email = image.string("email", "email")?;
        let active = image.bool("active", "active")?;
        let qualifications = image.list("qualifications", "qualifications")?;

        let name = official_name(first_name, middle_name, last_name, prefix)?;
        let telecom = telecom(
            &[(ContactPointSystem::Phone, phone), (ContactPointSystem::Email, email)],
            Some(ContactPointUse::Work),
        )?;
        let mut qualification = Vec::with_capacity(qualifications.len());
        for entry in each_map(qualifications, "qualifications") {
            let (index, entry) = entry?;
            qualification.push(Some(map_qualification(entry, index)?));
        }

        let mut practitioner =
            Practitioner::builder().id(id).name(vec![Some(name)]).telecom(telecom).qualification(qualification);
        if let Some(npi) = npi {
            practitioner = practitioner.identifier(vec![Some(identifier(None, systems::NPI, npi)?)]);
        }
        if let Some(gender) = gender {
            practitioner = practitioner.gender(gender);
        }
        if let Some(active) = active {
            practitioner = practitioner.active(active);
        }
        Ok(practitioner.build()?)
    }
}

/// One element of `qualifications`; its fields are named `qualifications[<index>].<name>` in errors.
fn map_qualification(entry: &Image<'_>, index: usize) -> Result<PractitionerQualification, MappingError> {
    let path = format!("qualifications[{index}]");
    let within = |error: MappingError| error.within(&path);
    let code = coded_concept(entry, &path, Some(systems::DEGREE_LICENSE))?;
    let issuer = entry.string("issuerId", "issuerId").map_err(within)?;
    let start = entry.date_time("start", "start").map_err(within)?;
    let end = entry.date_time("end", "end").map_err(within)?;
    let mut builder = PractitionerQualification::builder().code(code);
    if let Some(period) = period(start, end, "end").map_err(within)? {
        builder = builder.period(period);
    }
    if let Some(issuer) = issuer {
        builder = builder.issuer(reference("Organization", issuer, None)?);
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, id};
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&PractitionerMapping, image)
    }

    const MINIMAL: &str = r#"{"id":{"S":"prac-1"},"firstName":{"S":"Ada"},"lastName":{"S":"Quill"}"#;

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}}}")
    }

    #[test]
    fn minimal_practitioner() {
        assert_eq!(
            map(&with("")).unwrap(),
            json!({"resourceType":"Practitioner","id":"prac-1","name":[{"use":"official","family":"Quill","given":["Ada"]}]})
        );
    }

    #[test]
    fn npi_identifier_from_string_or_number_and_checked() {
        let expected = json!([{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}]);
        assert_eq!(map(&with(r#","npi":{"S":"1234567893"}"#)).unwrap()["identifier"], expected);
        assert_eq!(map(&with(r#","npi":{"N":"1234567893"}"#)).unwrap()["identifier"], expected);
        let error = map(&with(r#","npi":{"S":"1234567890"}"#)).unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("npi", ErrorKind::InvalidValue));
    }

    #[test]
    fn qualifications_with_issuer_reference_and_period() {
        let practitioner = map(&with(
            r##","qualifications":{"L":[{"M":{"code":{"S":"MD"},"display":{"S":"Doctor of Medicine"},"issuerId":{"S":"ORG#7"},"start":{"S":"2001-06"}}},
                {"M":{"system":{"S":"snomed"},"code":{"S":"309343006"}}}]}"##,
        ))
        .unwrap();
        assert_eq!(
            practitioner["qualification"],
            json!([
                {"code":{"coding":[{"system":systems::DEGREE_LICENSE,"code":"MD","display":"Doctor of Medicine"}]},
                 "period":{"start":"2001-06"},"issuer":{"reference":id::reference("Organization", "ORG#7")}},
                {"code":{"coding":[{"system":systems::SNOMED,"code":"309343006"}]}}
            ])
        );
    }

    #[test]
    fn qualification_errors_name_the_element() {
        let field = |extra: &str| map(&with(extra)).unwrap_err().field;
        assert_eq!(field(r#","qualifications":{"L":[{"M":{"display":{"S":"x"}}}]}"#), "qualifications[0].code");
        assert_eq!(field(r#","qualifications":{"L":[{"M":{"code":{"S":"MD"}}},{"S":"MD"}]}"#), "qualifications[1]");
        assert_eq!(
            field(r#","qualifications":{"L":[{"M":{"code":{"S":"MD"},"start":{"S":"2001-13"}}}]}"#),
            "qualifications[0].start"
        );
        assert_eq!(
            field(r#","qualifications":{"L":[{"M":{"code":{"S":"MD"},"start":{"S":"2001"},"end":{"S":"2000"}}}]}"#),
            "qualifications[0].end"
        );
        assert_eq!(field(r#","qualifications":{"M":{}}"#), "qualifications");
    }

    #[test]
    fn required_fields() {
        for field in ["id", "firstName", "lastName"] {
            let mut image: Value = serde_json::from_str(&with("")).unwrap();
            image.as_object_mut().unwrap().remove(field);
            let error = map(&image.to_string()).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), (field, ErrorKind::MissingField));
        }
    }
}
