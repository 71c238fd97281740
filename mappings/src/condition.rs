//! A domain `Conditions` table to a FHIR R4 Condition.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `clinicalStatus` | S, `active` `recurrence` `relapse` `inactive` `remission` `resolved` | `clinicalStatus` |
//! | `verificationStatus` | S, `unconfirmed` `provisional` `differential` `confirmed` `refuted` `entered-in-error` | `verificationStatus` |
//! | `category` | S, `problem-list-item` or `encounter-diagnosis` | `category[0]` |
//! | `code` (required) | S, ICD-10-CM (`E11.9`, `E119`) or a SNOMED CT concept id (`44054006`, check digit verified) | `code.coding[0]` |
//! | `codeSystem` | S, `icd10cm` (default) or `snomed` | `code.coding[0].system` |
//! | `display` | S | `code.coding[0].display` and `code.text` |
//! | `patientId` (required) | S, the Patient's domain id | `subject` `Patient/<id>` |
//! | `encounterId` | S, the Encounter's domain id | `encounter` `Encounter/<id>` |
//! | `onset`, `abatement`, `recordedDate` | S date or RFC 3339 time with offset, or N epoch seconds | `onsetDateTime`, `abatementDateTime`, `recordedDate` |
//!
//! R4's invariants are enforced: no clinicalStatus when entered-in-error (con-5), an abatement
//! only with a clinicalStatus, inactive, remission or resolved (con-4), a clinicalStatus on a
//! problem-list item that is not entered-in-error (con-3).

use fhir_sdk::r4b::{
    resources::{Condition, ConditionAbatement, ConditionOnset},
    types::CodeableConcept,
};

use crate::{
    ErrorKind, Image, Mapping, MappingError,
    datatypes::{code_from_table, codeable_concept, coding, resolve_system, systems, validate_snomed_concept_id},
    dates, fhir_id, fhir_string,
};

const CLINICAL_STATUSES: &[(&str, &str)] = &[
    ("active", "Active"),
    ("recurrence", "Recurrence"),
    ("relapse", "Relapse"),
    ("inactive", "Inactive"),
    ("remission", "Remission"),
    ("resolved", "Resolved"),
];
const VERIFICATION_STATUSES: &[(&str, &str)] = &[
    ("unconfirmed", "Unconfirmed"),
    ("provisional", "Provisional"),
    ("differential", "Differential"),
    ("confirmed", "Confirmed"),
    ("refuted", "Refuted"),
    ("entered-in-error", "Entered in Error"),
];
const CATEGORIES: &[(&str, &str)] =
    &[("problem-list-item", "Problem List Item"), ("encounter-diagnosis", "Encounter Diagnosis")];

/// Domain Condition → FHIR Condition.
#[derive(Debug, Clone, Default)]
pub struct ConditionMapping;

impl Mapping for ConditionMapping {
    type Resource = Condition;

    const RESOURCE_TYPE: &'static str = "Condition";

    fn map(&self, image: &Image<'_>) -> Result<Condition, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let clinical = image
            .string("clinicalStatus", "clinicalStatus")?
            .map(|c| code_from_table(CLINICAL_STATUSES, c, "clinicalStatus"))
            .transpose()?;
        let verification = image
            .string("verificationStatus", "verificationStatus")?
            .map(|c| code_from_table(VERIFICATION_STATUSES, c, "verificationStatus"))
            .transpose()?;
        let category =
            image.string("category", "category")?.map(|c| code_from_table(CATEGORIES, c, "category")).transpose()?;
        let (system, code) =
            parse_code(image.required_string("code", "code")?, image.string("codeSystem", "codeSystem")?)?;
        let display = image.string("display", "display")?;
        let subject = image.reference("patientId", "Patient")?.ok_or_else(|| MappingError::missing("patientId"))?;
        let encounter = image.reference("encounterId", "Encounter")?;
        let onset = image.date_time("onset", "onset")?;
        let abatement = image.date_time("abatement", "abatement")?;
        let recorded = image.date_time("recordedDate", "recordedDate")?;

        let entered_in_error = verification.is_some_and(|(code, _)| code == "entered-in-error");
        let clinical_code = clinical.map(|(code, _)| code);
        if entered_in_error && clinical.is_some() {
            return Err(invariant("clinicalStatus", "must be absent when verificationStatus is entered-in-error"));
        }
        // con-4: `abatement.empty() or clinicalStatus` is inactive, remission or resolved, so an
        // abatement needs a clinicalStatus (and none is allowed when entered-in-error, con-5).
        if abatement.is_some() {
            match clinical_code {
                Some("inactive" | "remission" | "resolved") => {}
                Some(_) => {
                    return Err(invariant(
                        "clinicalStatus",
                        "must be inactive, remission or resolved when abatement is set",
                    ));
                }
                None if entered_in_error => {
                    return Err(invariant(
                        "abatement",
                        "must be absent when verificationStatus is entered-in-error (which allows no clinicalStatus)",
                    ));
                }
                None => {
                    return Err(MappingError::new(
                        "clinicalStatus",
                        ErrorKind::MissingField,
                        "required (inactive, remission or resolved) when abatement is set",
                    ));
                }
            }
        }
        if category.is_some_and(|(code, _)| code == "problem-list-item") && !entered_in_error && clinical.is_none() {
            return Err(MappingError::new(
                "clinicalStatus",
                ErrorKind::MissingField,
                "required on a problem-list-item unless verificationStatus is entered-in-error",
            ));
        }
        if let (Some(onset), Some(abatement)) = (&onset, &abatement)
            && dates::is_after(onset, abatement)
        {
            return Err(invariant("abatement", "is before the onset"));
        }

        let mut concept = CodeableConcept::builder().coding(vec![Some(coding(system, &code, display)?)]);
        if let Some(display) = display {
            concept = concept.text(fhir_string(display));
        }
        let mut condition = Condition::builder().id(id).code(concept.build()?).subject(subject);
        if let Some((code, display)) = clinical {
            condition = condition.clinical_status(codeable_concept(systems::CONDITION_CLINICAL, code, Some(display))?);
        }
        if let Some((code, display)) = verification {
            condition =
                condition.verification_status(codeable_concept(systems::CONDITION_VERIFICATION, code, Some(display))?);
        }
        if let Some((code, display)) = category {
            condition =
                condition.category(vec![Some(codeable_concept(systems::CONDITION_CATEGORY, code, Some(display))?)]);
        }
        if let Some(encounter) = encounter {
            condition = condition.encounter(encounter);
        }
        if let Some(onset) = onset {
            condition = condition.onset(ConditionOnset::DateTime(onset));
        }
        if let Some(abatement) = abatement {
            condition = condition.abatement(ConditionAbatement::DateTime(abatement));
        }
        if let Some(recorded) = recorded {
            condition = condition.recorded_date(recorded);
        }
        Ok(condition.build()?)
    }
}

fn invariant(field: &str, rule: &str) -> MappingError {
    MappingError::new(field, ErrorKind::InvalidValue, rule)
}

/// The code system and the code, normalised: ICD-10-CM upper case with its dot (`E11.9`).
fn parse_code(code: &str, system: Option<&str>) -> Result<(&'static str, String), MappingError> {
    // A short name only (`icd10cm`, `snomed`…, any case), not a URI.
    let system = match system {
        None => Some(systems::ICD10CM),
        Some(name) => resolve_system(name).filter(|uri| *uri != name),
    };
    match system {
        Some(systems::ICD10CM) => {
            let upper = code.to_ascii_uppercase();
            let (category, rest) = upper.split_at_checked(3).unwrap_or((&upper, ""));
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            let bytes = category.as_bytes();
            let valid = bytes.len() == 3
                && bytes[0].is_ascii_uppercase()
                && bytes[1].is_ascii_digit()
                && bytes[2].is_ascii_alphanumeric()
                && rest.len() <= 4
                && rest.bytes().all(|b| b.is_ascii_alphanumeric());
            if !valid {
                return Err(invariant("code", "not an ICD-10-CM code (e.g. E11.9)"));
            }
            let code = if rest.is_empty() { category.to_owned() } else { format!("{category}.{rest}") };
            Ok((systems::ICD10CM, code))
        }
        Some(systems::SNOMED) => Ok((systems::SNOMED, validate_snomed_concept_id(code, "code")?.to_owned())),
        _ => Err(invariant("codeSystem", "not icd10cm or snomed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&ConditionMapping, image)
    }

    const MINIMAL: &str = r#"{"id":{"S":"cond-1"},"code":{"S":"E11.9"},"patientId":{"S":"pat-1"}}"#;

    /// The minimal image with `extra` attributes added or replaced.
    fn with(extra: &str) -> String {
        crate::test_support::image_with(MINIMAL, extra)
    }

    #[test]
    fn minimal_condition() {
        assert_eq!(
            map(MINIMAL).unwrap(),
            json!({"resourceType":"Condition","id":"cond-1","code":{"coding":[{"system":systems::ICD10CM,"code":"E11.9"}]},
                   "subject":{"reference":"Patient/pat-1"}})
        );
    }

    #[test]
    fn icd10cm_codes_are_normalised_and_snomed_checked() {
        let code = |extra: &str| map(&with(extra)).map(|c| c["code"]["coding"][0].clone());
        assert_eq!(code(r#""code":{"S":"e119"}"#).unwrap()["code"], "E11.9");
        assert_eq!(code(r#""code":{"S":"I10"}"#).unwrap()["code"], "I10");
        assert_eq!(code(r#""code":{"S":"S72.001A"}"#).unwrap()["code"], "S72.001A");
        for bad in ["11.9", "E1", "E11.90001", "E11-9"] {
            assert_eq!(code(&format!(r#""code":{{"S":"{bad}"}}"#)).unwrap_err().field, "code", "{bad}");
        }
        let snomed = code(r#""code":{"S":"44054006"},"codeSystem":{"S":"SNOMED"}"#).unwrap();
        assert_eq!(snomed, json!({"system":systems::SNOMED,"code":"44054006"}));
        assert_eq!(code(r#""code":{"S":"E11.9"},"codeSystem":{"S":"snomed"}"#).unwrap_err().field, "code");
        assert_eq!(code(r#""codeSystem":{"S":"icd9"}"#).unwrap_err().field, "codeSystem");
    }

    #[test]
    fn statuses_with_r4_invariants() {
        let condition = map(&with(
            r#""clinicalStatus":{"S":"Resolved"},"verificationStatus":{"S":"confirmed"},"category":{"S":"problem-list-item"},
               "onset":{"S":"2019-04"},"abatement":{"S":"2021-02-11"}"#,
        ))
        .unwrap();
        assert_eq!(
            condition["clinicalStatus"],
            json!({"coding":[{"system":systems::CONDITION_CLINICAL,"code":"resolved","display":"Resolved"}]})
        );
        assert_eq!(condition["onsetDateTime"], "2019-04");
        assert_eq!(condition["abatementDateTime"], "2021-02-11");
        let field = |extra: &str| map(&with(extra)).unwrap_err().field;
        assert_eq!(
            field(r#""clinicalStatus":{"S":"active"},"verificationStatus":{"S":"entered-in-error"}"#),
            "clinicalStatus"
        );
        assert_eq!(field(r#""clinicalStatus":{"S":"active"},"abatement":{"S":"2021"}"#), "clinicalStatus");
        assert_eq!(field(r#""category":{"S":"problem-list-item"}"#), "clinicalStatus");
        assert_eq!(
            field(r#""onset":{"S":"2021-03"},"abatement":{"S":"2021-02-11"},"clinicalStatus":{"S":"resolved"}"#),
            "abatement"
        );
        assert_eq!(field(r#""clinicalStatus":{"S":"cured"}"#), "clinicalStatus");
        assert_eq!(field(r#""verificationStatus":{"S":"yes"}"#), "verificationStatus");
        assert_eq!(field(r#""category":{"S":"diagnosis"}"#), "category");
        assert!(
            map(&with(r#""category":{"S":"problem-list-item"},"verificationStatus":{"S":"entered-in-error"}"#)).is_ok()
        );
    }

    #[test]
    fn regression_con4_an_abatement_needs_a_clinical_status() {
        let error = map(&with(r#""abatement":{"S":"2021"}"#)).unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("clinicalStatus", ErrorKind::MissingField));
        let error =
            map(&with(r#""abatement":{"S":"2021"},"verificationStatus":{"S":"entered-in-error"}"#)).unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("abatement", ErrorKind::InvalidValue));
        for status in ["inactive", "Remission", "resolved"] {
            let condition = map(&with(&format!(r#""abatement":{{"S":"2021"}},"clinicalStatus":{{"S":"{status}"}}"#)));
            assert_eq!(condition.unwrap()["abatementDateTime"], "2021", "{status}");
        }
        for status in ["active", "recurrence", "relapse"] {
            let error = map(&with(&format!(r#""abatement":{{"S":"2021"}},"clinicalStatus":{{"S":"{status}"}}"#)));
            assert_eq!(error.unwrap_err().kind, ErrorKind::InvalidValue, "{status}");
        }
    }

    #[test]
    fn regression_snomed_concept_ids_are_verified() {
        let code = |code: &str| map(&with(&format!(r#""code":{{"S":"{code}"}},"codeSystem":{{"S":"snomed"}}"#)));
        for valid in ["44054006", "73211009", "195967001", "900000000000207008", "999000011000000103"] {
            assert_eq!(code(valid).unwrap()["code"]["coding"][0]["code"], valid);
        }
        // A wrong check digit, description ids (partition 01, right check digit), a leading zero, too short.
        for wrong in ["44054007", "44054010", "195967017", "044054006", "12345"] {
            let error = code(wrong).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("code", ErrorKind::InvalidValue), "{wrong}");
            assert!(!error.message.contains(wrong), "{error}");
        }
    }
}
