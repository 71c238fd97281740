//! A domain `Observations` table to a FHIR R4 Observation.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `status` (required) | S, an ObservationStatus code (`final`, `preliminary`…), any case | `status` |
//! | `category` | S, an observation-category code (`vital-signs`, `laboratory`…) | `category[0]` |
//! | `code` (required) | S, a LOINC code (`8867-4`), its mod 10 check digit verified | `code` (system `http://loinc.org`) |
//! | `display` | S | `code.coding[0].display` and `code.text` |
//! | `patientId` (required) | S, the Patient's domain id | `subject` `Patient/<id>` |
//! | `encounterId` | S, the Encounter's domain id | `encounter` `Encounter/<id>` |
//! | `effective` | S date or RFC 3339 time with offset, or N epoch seconds | `effectiveDateTime` |
//! | `value` + `unit` | N (or S decimal) + S UCUM code (its syntax checked) | `valueQuantity` (system `http://unitsofmeasure.org`) |
//! | `valueCode` | M {`code` (required), `system` (default SNOMED CT), `display`} | `valueCodeableConcept` |
//!
//! At most one of `value` and `valueCode`; `unit` is required with `value`.

use fhir_sdk::r4b::{
    codes::ObservationStatus,
    resources::{Observation, ObservationEffective, ObservationValue},
    types::CodeableConcept,
};

use crate::{
    ErrorKind, Image, Mapping, MappingError,
    datatypes::{code_from_table, codeable_concept, coding, fhir_code, systems, ucum_quantity, validate_ucum},
    fhir_id, fhir_string,
};

/// The codes of `http://terminology.hl7.org/CodeSystem/observation-category` with their displays.
const OBSERVATION_CATEGORIES: &[(&str, &str)] = &[
    ("social-history", "Social History"),
    ("vital-signs", "Vital Signs"),
    ("imaging", "Imaging"),
    ("laboratory", "Laboratory"),
    ("procedure", "Procedure"),
    ("survey", "Survey"),
    ("exam", "Exam"),
    ("therapy", "Therapy"),
    ("activity", "Activity"),
];

const OBSERVATION_STATUSES: &str = "an Observation status (registered, preliminary, final, amended, corrected, cancelled, \
     entered-in-error, unknown)";

/// Domain Observation → FHIR Observation.
#[derive(Debug, Clone, Default)]
pub struct ObservationMapping;

impl Mapping for ObservationMapping {
    type Resource = Observation;

    const RESOURCE_TYPE: &'static str = "Observation";

    fn map(&self, image: &Image<'_>) -> Result<Observation, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let status =
            fhir_code::<ObservationStatus>(image.required_string("status", "status")?, "status", OBSERVATION_STATUSES)?;
        let category = image
            .string("category", "category")?
            .map(|code| code_from_table(OBSERVATION_CATEGORIES, code, "category"))
            .transpose()?;
        let code = validate_loinc(image.required_string("code", "code")?)?;
        let display = image.string("display", "display")?;
        let subject = image.reference("patientId", "Patient")?.ok_or_else(|| MappingError::missing("patientId"))?;
        let encounter = image.reference("encounterId", "Encounter")?;
        let effective = image.date_time("effective", "effective")?;
        let value = map_value(image)?;

        let mut concept = CodeableConcept::builder().coding(vec![Some(coding(systems::LOINC, code, display)?)]);
        if let Some(display) = display {
            concept = concept.text(fhir_string(display));
        }
        let mut observation = Observation::builder().id(id).status(status).code(concept.build()?).subject(subject);
        if let Some((code, display)) = category {
            let category = codeable_concept(systems::OBSERVATION_CATEGORY, code, Some(display))?;
            observation = observation.category(vec![Some(category)]);
        }
        if let Some(encounter) = encounter {
            observation = observation.encounter(encounter);
        }
        if let Some(effective) = effective {
            observation = observation.effective(ObservationEffective::DateTime(effective));
        }
        if let Some(value) = value {
            observation = observation.value(value);
        }
        Ok(observation.build()?)
    }
}

fn map_value(image: &Image<'_>) -> Result<Option<ObservationValue>, MappingError> {
    let quantity = image.number("value", "value")?;
    let unit = image.string("unit", "unit")?;
    let concept = image.coded("valueCode", "valueCode", Some(systems::SNOMED))?;
    match (quantity, concept) {
        (Some(_), Some(_)) => Err(MappingError::new(
            "valueCode",
            ErrorKind::InvalidValue,
            "an observation has one value: give either value (with unit) or valueCode",
        )),
        (Some(quantity), None) => {
            let unit = validate_ucum(unit.ok_or_else(|| MappingError::missing("unit"))?, "unit")?;
            Ok(Some(ObservationValue::Quantity(ucum_quantity(quantity, unit)?)))
        }
        (None, Some(concept)) => Ok(Some(ObservationValue::CodeableConcept(concept))),
        (None, None) => Ok(None),
    }
}

/// A LOINC code: 1 to 7 digits without a leading zero, a hyphen, and the check digit of LOINC's
/// mod 10 algorithm (Luhn over the digits before the hyphen: from the right, every other digit
/// doubled starting with the last one; the check digit brings the sum to a multiple of 10).
fn validate_loinc(code: &str) -> Result<&str, MappingError> {
    let Some((number, check)) = code.split_once('-').filter(|(number, check)| {
        (1..=7).contains(&number.len())
            && !number.starts_with('0')
            && number.bytes().all(|b| b.is_ascii_digit())
            && check.len() == 1
            && check.bytes().all(|b| b.is_ascii_digit())
    }) else {
        return Err(MappingError::new(
            "code",
            ErrorKind::InvalidValue,
            "not a LOINC code (1 to 7 digits without a leading zero, a hyphen, a check digit)",
        ));
    };
    if loinc_check_digit(number) != u32::from(check.as_bytes()[0] - b'0') {
        return Err(MappingError::new(
            "code",
            ErrorKind::InvalidValue,
            "not a LOINC code: the check digit does not match (LOINC mod 10)",
        ));
    }
    Ok(code)
}

/// LOINC's mod 10 check digit of the ASCII digits `number` (the part before the hyphen).
fn loinc_check_digit(number: &str) -> u32 {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let digit = u32::from(digit - b'0');
            if position % 2 == 0 { (digit * 2) / 10 + (digit * 2) % 10 } else { digit }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&ObservationMapping, image)
    }

    const MINIMAL: &str =
        r#"{"id":{"S":"obs-1"},"status":{"S":"final"},"code":{"S":"8867-4"},"patientId":{"S":"pat-1"}}"#;

    /// The minimal image with `extra` attributes added or replaced.
    fn with(extra: &str) -> String {
        crate::test_support::image_with(MINIMAL, extra)
    }

    #[test]
    fn minimal_observation() {
        assert_eq!(
            map(MINIMAL).unwrap(),
            json!({"resourceType":"Observation","id":"obs-1","status":"final",
                   "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/pat-1"}})
        );
    }

    #[test]
    fn quantity_with_ucum_unit() {
        let observation =
            map(&with(r#""value":{"N":"72"},"unit":{"S":"/min"},"category":{"S":"Vital-Signs"}"#)).unwrap();
        assert_eq!(
            observation["valueQuantity"],
            json!({"value":72.0,"unit":"/min","system":systems::UCUM,"code":"/min"})
        );
        assert_eq!(observation["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(map(&with(r#""value":{"N":"72"}"#)).unwrap_err().field, "unit");
        assert_eq!(map(&with(r#""value":{"N":"72"},"unit":{"S":"beats per min"}"#)).unwrap_err().field, "unit");
        assert_eq!(map(&with(r#""value":{"S":"seventy"},"unit":{"S":"/min"}"#)).unwrap_err().field, "value");
    }

    #[test]
    fn coded_value_and_only_one_value() {
        let observation =
            map(&with(r#""valueCode":{"M":{"code":{"S":"260385009"},"display":{"S":"Negative"}}}"#)).unwrap();
        assert_eq!(
            observation["valueCodeableConcept"],
            json!({"coding":[{"system":systems::SNOMED,"code":"260385009","display":"Negative"}]})
        );
        let error =
            map(&with(r#""value":{"N":"1"},"unit":{"S":"1"},"valueCode":{"M":{"code":{"S":"x"}}}"#)).unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("valueCode", ErrorKind::InvalidValue));
    }

    #[test]
    fn codes_statuses_and_references() {
        for bad in ["8867", "8867-45", "abc-4", "-4", "12345678-9"] {
            assert_eq!(map(&with(&format!(r#""code":{{"S":"{bad}"}}"#))).unwrap_err().field, "code", "{bad}");
        }
        assert_eq!(map(&with(r#""status":{"S":"Amended"}"#)).unwrap()["status"], "amended");
        assert_eq!(map(&with(r#""status":{"S":"done"}"#)).unwrap_err().field, "status");
        assert_eq!(map(&with(r#""category":{"S":"labs"}"#)).unwrap_err().field, "category");
        let observation =
            map(&with(r##""encounterId":{"S":"ENC#1"},"effective":{"S":"2026-03-01T08:00:00Z"}"##)).unwrap();
        assert_eq!(observation["encounter"]["reference"], crate::id::reference("Encounter", "ENC#1"));
        assert_eq!(observation["effectiveDateTime"], "2026-03-01T08:00:00Z");
    }

    #[test]
    fn regression_loinc_check_digit_is_verified() {
        let code = |code: &str| map(&with(&format!(r#""code":{{"S":"{code}"}}"#)));
        for valid in ["8867-4", "2339-0", "718-7", "4548-4", "1-8", "94500-6", "72166-2", "8310-5"] {
            assert_eq!(code(valid).unwrap()["code"]["coding"][0]["code"], valid);
        }
        for wrong in ["8867-5", "2339-1", "718-8", "4548-0", "0718-7", "08867-4"] {
            let error = code(wrong).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("code", ErrorKind::InvalidValue), "{wrong}");
            let number = wrong.split('-').next().unwrap().trim_start_matches('0');
            assert!(!error.to_string().contains(number), "{error}");
        }
        // Exactly one check digit fits each number.
        for number in ["8867", "2339", "718", "4548", "1", "94500", "72166", "1234567", "9999999"] {
            let valid: Vec<u32> =
                (0..10).filter(|digit| validate_loinc(&format!("{number}-{digit}")).is_ok()).collect();
            assert_eq!(valid.len(), 1, "{number}: {valid:?}");
        }
    }

    #[test]
    fn regression_units_are_checked_against_ucum_syntax() {
        let unit = |unit: &str| map(&with(&format!(r#""value":{{"N":"1"}},"unit":{{"S":"{unit}"}}"#)));
        for valid in ["/min", "mg/dL", "Cel", "mm[Hg]", "10*3/uL", "{beats}/min", "%", "kg/m2", "mL/(min.{1.73_m2})"] {
            assert_eq!(unit(valid).unwrap()["valueQuantity"]["code"], valid);
        }
        for wrong in [
            "°C",
            "µg",
            "beats per minute",
            "mm[Hg",
            "mmHg]",
            "{score",
            "score}",
            "{a{b}}",
            "[a[b]]",
            "(mL/min",
            "mL)/min",
        ] {
            let error = unit(wrong).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("unit", ErrorKind::InvalidValue), "{wrong}");
            assert!(!error.message.contains(wrong), "{error}");
        }
    }
}
