//! FHIR data types built from domain attributes, shared by every mapping: codes and codeable
//! concepts, references (by the shared id rule), identifiers, telecom, addresses, periods,
//! quantities.

use fhir_sdk::{
    DateTime,
    r4b::{
        codes::{AddressUse, ContactPointSystem, ContactPointUse, NameUse},
        types::{Address, CodeableConcept, Coding, ContactPoint, HumanName, Identifier, Period, Quantity, Reference},
    },
};

use crate::{AttributeValue, ErrorKind, Image, MappingError, dates, fhir_string, id};

/// Code system URIs of the terminologies the shipped mappings use.
pub mod systems {
    /// LOINC.
    pub const LOINC: &str = "http://loinc.org";
    /// SNOMED CT.
    pub const SNOMED: &str = "http://snomed.info/sct";
    /// ICD-10-CM (US clinical modification).
    pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    /// UCUM units.
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// US National Provider Identifier.
    pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
    /// US Employer Identification Number (tax id).
    pub const US_EIN: &str = "urn:oid:2.16.840.1.113883.4.4";
    /// HL7 v2 table 0203, identifier types (`MR`, `NPI`, `TAX`).
    pub const IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    /// HL7 v2 table 0360, degrees and licenses (`MD`, `RN`).
    pub const DEGREE_LICENSE: &str = "http://terminology.hl7.org/CodeSystem/v2-0360";
    /// HL7 v3 ActCode (encounter classes `AMB`, `IMP`, `EMER`).
    pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    /// HL7 v3 ParticipationType (`ATND`, `PPRF`).
    pub const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
    /// Observation categories (`vital-signs`, `laboratory`).
    pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
    /// Condition clinical status.
    pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
    /// Condition verification status.
    pub const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
    /// Condition categories (`problem-list-item`, `encounter-diagnosis`).
    pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
    /// Organization types (`prov`, `dept`).
    pub const ORGANIZATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
}

/// A short system name a domain table may use instead of a URI (`loinc`, `snomed`, `icd10cm`,
/// `ucum`, any case); a URI (`http…`, `urn:…`) is kept; anything else is `None`.
pub fn resolve_system(name: &str) -> Option<&str> {
    let known = [
        ("loinc", systems::LOINC),
        ("snomed", systems::SNOMED),
        ("sct", systems::SNOMED),
        ("icd10cm", systems::ICD10CM),
        ("icd-10-cm", systems::ICD10CM),
        ("ucum", systems::UCUM),
    ];
    if let Some((_, uri)) = known.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)) {
        return Some(uri);
    }
    (name.starts_with("http://") || name.starts_with("https://") || name.starts_with("urn:")).then_some(name)
}

/// The entry of `table` (code, display) whose code is `code`, in any case; otherwise an
/// invalid-value error on `field` listing the codes.
pub fn code_from_table(
    table: &[(&'static str, &'static str)],
    code: &str,
    field: &str,
) -> Result<(&'static str, &'static str), MappingError> {
    table.iter().find(|(known, _)| known.eq_ignore_ascii_case(code)).copied().ok_or_else(|| {
        let codes: Vec<&str> = table.iter().map(|(known, _)| *known).collect();
        MappingError::new(field, ErrorKind::InvalidValue, format!("not one of {}", codes.join(", ")))
    })
}

/// A fhir-sdk code enum (`EncounterStatus`, `ObservationStatus`…) from its FHIR code, in any
/// case; otherwise an invalid-value error on `field` saying what `expected` is.
pub fn fhir_code<T: std::str::FromStr>(code: &str, field: &str, expected: &str) -> Result<T, MappingError> {
    code.to_ascii_lowercase()
        .parse()
        .map_err(|_| MappingError::new(field, ErrorKind::InvalidValue, format!("not {expected}")))
}

/// One coding.
pub fn coding(system: &str, code: &str, display: Option<&str>) -> Result<Coding, MappingError> {
    let mut builder = Coding::builder().system(system.to_owned()).code(fhir_string(code));
    if let Some(display) = display {
        builder = builder.display(fhir_string(display));
    }
    Ok(builder.build()?)
}

/// A codeable concept of one coding.
pub fn codeable_concept(system: &str, code: &str, display: Option<&str>) -> Result<CodeableConcept, MappingError> {
    Ok(CodeableConcept::builder().coding(vec![Some(coding(system, code, display)?)]).build()?)
}

/// A literal reference `"<resource_type>/<fhir id>"` to the record with domain id `domain_id`,
/// by the same id rule that gives that record its own id (so it resolves in HealthLake).
pub fn reference(resource_type: &str, domain_id: &str, display: Option<&str>) -> Result<Reference, MappingError> {
    let mut builder = Reference::builder().reference(id::reference(resource_type, domain_id));
    if let Some(display) = display {
        builder = builder.display(fhir_string(display));
    }
    Ok(builder.build()?)
}

/// An identifier, with a v2-0203 type code when given.
pub fn identifier(type_code: Option<&str>, system: &str, value: &str) -> Result<Identifier, MappingError> {
    let mut builder = Identifier::builder().system(system.to_owned()).value(fhir_string(value));
    if let Some(code) = type_code {
        builder = builder.r#type(codeable_concept(systems::IDENTIFIER_TYPE, code, None)?);
    }
    Ok(builder.build()?)
}

/// A person's official name: the first and middle names as given names, the last as family
/// name, and a prefix (`Dr.`) when given.
pub fn official_name(
    first: &str,
    middle: Option<&str>,
    last: &str,
    prefix: Option<&str>,
) -> Result<HumanName, MappingError> {
    let mut given = vec![Some(fhir_string(first))];
    given.extend(middle.map(|m| Some(fhir_string(m))));
    let mut name = HumanName::builder().r#use(NameUse::Official).family(fhir_string(last)).given(given);
    if let Some(prefix) = prefix {
        name = name.prefix(vec![Some(fhir_string(prefix))]);
    }
    Ok(name.build()?)
}

/// Contact points for the values present, in order.
pub fn telecom(
    entries: &[(ContactPointSystem, Option<&str>)],
    contact_use: Option<ContactPointUse>,
) -> Result<Vec<Option<ContactPoint>>, MappingError> {
    let mut telecom = Vec::new();
    for (system, value) in entries {
        if let Some(value) = value {
            let mut builder = ContactPoint::builder().system(*system).value(fhir_string(value));
            if let Some(contact_use) = contact_use {
                builder = builder.r#use(contact_use);
            }
            telecom.push(Some(builder.build()?));
        }
    }
    Ok(telecom)
}

/// The `address` attribute, an `M` of `address1`, `address2`, `city`, `state`, `zip` (S or N)
/// and `country`, as one Address; `None` when absent or when every part is missing.
pub fn address(image: &Image<'_>, address_use: AddressUse) -> Result<Option<Address>, MappingError> {
    let Some(address) = image.map("address", "address")? else { return Ok(None) };
    let line1 = address.string("address1", "address.address1")?;
    let line2 = address.string("address2", "address.address2")?;
    let city = address.string("city", "address.city")?;
    let state = address.string("state", "address.state")?;
    let zip = address.string_or_number("zip", "address.zip")?;
    let country = address.string("country", "address.country")?;
    if [line1, line2, city, state, zip, country].iter().all(Option::is_none) {
        return Ok(None);
    }
    let lines = [line1, line2].into_iter().flatten().map(|l| Some(fhir_string(l))).collect();
    let mut builder = Address::builder().r#use(address_use).line(lines);
    if let Some(city) = city {
        builder = builder.city(fhir_string(city));
    }
    if let Some(state) = state {
        builder = builder.state(fhir_string(state));
    }
    if let Some(zip) = zip {
        builder = builder.postal_code(fhir_string(zip));
    }
    if let Some(country) = country {
        builder = builder.country(fhir_string(country));
    }
    Ok(Some(builder.build()?))
}

/// A period from optional bounds; `None` when both are missing. An end before its start is an
/// error naming `end_field`.
pub fn period(start: Option<DateTime>, end: Option<DateTime>, end_field: &str) -> Result<Option<Period>, MappingError> {
    if let (Some(start), Some(end)) = (&start, &end)
        && dates::is_after(start, end)
    {
        return Err(MappingError::new(end_field, ErrorKind::InvalidValue, "the end is before the start"));
    }
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let mut builder = Period::builder();
    if let Some(start) = start {
        builder = builder.start(start);
    }
    if let Some(end) = end {
        builder = builder.end(end);
    }
    Ok(Some(builder.build()?))
}

/// A UCUM quantity: `value` as DynamoDB sends it (a decimal string), `unit` a UCUM code.
pub fn ucum_quantity(value: f64, unit: &str) -> Result<Quantity, MappingError> {
    let unit = fhir_string(unit);
    Ok(Quantity::builder().value(value).unit(unit.clone()).system(systems::UCUM.to_owned()).code(unit).build()?)
}

/// A UCUM unit code, by UCUM's syntax (the units themselves are not looked up): printable
/// US-ASCII without spaces (so not `°C`, `µg` or `beats per minute`: UCUM writes `Cel`, `ug`,
/// `/min`), annotations `{…}` closed and not nested, `[…]` closed and not nested, parentheses
/// balanced.
pub fn validate_ucum<'u>(unit: &'u str, field: &str) -> Result<&'u str, MappingError> {
    let invalid =
        |rule: &str| Err(MappingError::new(field, ErrorKind::InvalidValue, format!("not a UCUM code ({rule})")));
    if !unit.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("printable US-ASCII characters only, no spaces");
    }
    let (mut annotation, mut bracket, mut parentheses) = (false, false, 0_usize);
    for byte in unit.bytes() {
        match (byte, annotation, bracket) {
            (b'}', true, _) => annotation = false,
            (b'{', true, _) | (b'}', false, _) => return invalid("an unbalanced or nested {annotation}"),
            (_, true, _) => {}
            (b'{', false, false) => annotation = true,
            (b']', false, true) => bracket = false,
            (b'[' | b'{', false, true) | (b']', false, false) => return invalid("an unbalanced or nested [bracket]"),
            (_, false, true) => {}
            (b'[', false, false) => bracket = true,
            (b'(', false, false) => parentheses += 1,
            (b')', false, false) => match parentheses.checked_sub(1) {
                Some(depth) => parentheses = depth,
                None => return invalid("unbalanced parentheses"),
            },
            _ => {}
        }
    }
    match (annotation, bracket, parentheses) {
        (true, _, _) => invalid("an unbalanced or nested {annotation}"),
        (_, true, _) => invalid("an unbalanced or nested [bracket]"),
        (_, _, 1..) => invalid("unbalanced parentheses"),
        _ => Ok(unit),
    }
}

impl Image<'_> {
    /// Reads an `N` attribute (or a decimal number written as `S`) as a finite number.
    pub fn number(&self, name: &str, path: &str) -> Result<Option<f64>, MappingError> {
        let Some(text) = self.string_or_number(name, path)? else { return Ok(None) };
        let is_decimal = {
            let digits = text.strip_prefix('-').unwrap_or(text);
            let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
            !whole.is_empty()
                && !fraction.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        };
        match text.parse::<f64>() {
            Ok(number) if is_decimal && number.is_finite() => Ok(Some(number)),
            _ => Err(MappingError::new(path, ErrorKind::InvalidValue, "not a decimal number")),
        }
    }

    /// Reads a code: an `M` with `code` (required), `system` (a URI or a short name, see
    /// [`resolve_system`]; `default_system` when absent) and `display`.
    pub fn coded(
        &self,
        name: &str,
        path: &str,
        default_system: Option<&str>,
    ) -> Result<Option<CodeableConcept>, MappingError> {
        let Some(coded) = self.map(name, path)? else { return Ok(None) };
        coded_concept(coded, path, default_system).map(Some)
    }

    /// Reads the domain id of another record (e.g. `patientId`) as a literal reference to it.
    pub fn reference(&self, name: &str, resource_type: &str) -> Result<Option<Reference>, MappingError> {
        self.string(name, name)?.map(|domain_id| reference(resource_type, domain_id, None)).transpose()
    }
}

/// See [`Image::coded`]; `path` prefixes the field names in errors.
pub fn coded_concept(
    coded: &Image<'_>,
    path: &str,
    default_system: Option<&str>,
) -> Result<CodeableConcept, MappingError> {
    let field = |name: &str| format!("{path}.{name}");
    let within = |error: MappingError| error.within(path);
    let code = coded.string("code", "code").map_err(within)?;
    let code = code.ok_or_else(|| MappingError::missing(&field("code")))?;
    let system = match coded.string("system", "system").map_err(within)? {
        Some(name) => resolve_system(name).ok_or_else(|| {
            MappingError::new(
                &field("system"),
                ErrorKind::InvalidValue,
                "not a code system URI nor one of loinc, snomed, icd10cm, ucum",
            )
        })?,
        None => default_system.ok_or_else(|| MappingError::missing(&field("system")))?,
    };
    let display = coded.string("display", "display").map_err(within)?;
    codeable_concept(system, code, display)
}

/// Reads each element of a list attribute as an `M`, naming elements `name[index]` in errors.
pub fn each_map<'i, 'a>(
    values: &'i [AttributeValue<'a>],
    path: &str,
) -> impl Iterator<Item = Result<(usize, &'i Image<'a>), MappingError>> {
    values.iter().enumerate().map(move |(index, value)| match value {
        AttributeValue::M(image) => Ok((index, image)),
        other => Err(MappingError::wrong_type(&format!("{path}[{index}]"), "M", other)),
    })
}

/// A US National Provider Identifier: 10 digits whose last is the Luhn check digit over
/// `80840` and the first nine (given as `S` or `N`).
pub fn validate_npi<'v>(npi: &'v str, field: &str) -> Result<&'v str, MappingError> {
    let bytes = npi.as_bytes();
    let valid = bytes.len() == 10 && bytes.iter().all(u8::is_ascii_digit) && {
        // Luhn over "80840" + the 10 digits, computed from the right.
        let digits = b"80840".iter().chain(bytes).map(|b| u32::from(b - b'0'));
        let sum: u32 = digits
            .rev()
            .enumerate()
            .map(|(position, digit)| if position % 2 == 1 { (digit * 2) / 10 + (digit * 2) % 10 } else { digit })
            .sum();
        sum.is_multiple_of(10)
    };
    if valid {
        Ok(npi)
    } else {
        Err(MappingError::new(field, ErrorKind::InvalidValue, "not an NPI (10 digits with a valid check digit)"))
    }
}

/// A SNOMED CT concept id (SCTID): 6 to 18 digits without a leading zero, whose partition
/// identifier (the second and third digits from the right) is `00` (a concept of the
/// International Edition) or `10` (a concept of an extension), and whose last digit is the
/// Verhoeff check digit.
pub fn validate_snomed_concept_id<'c>(code: &'c str, field: &str) -> Result<&'c str, MappingError> {
    let bytes = code.as_bytes();
    let well_formed = (6..=18).contains(&bytes.len()) && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit);
    if !well_formed {
        return Err(MappingError::new(
            field,
            ErrorKind::InvalidValue,
            "not a SNOMED CT concept id (6 to 18 digits without a leading zero)",
        ));
    }
    if !matches!(&bytes[bytes.len() - 3..bytes.len() - 1], b"00" | b"10") {
        return Err(MappingError::new(
            field,
            ErrorKind::InvalidValue,
            "not a SNOMED CT concept id (its partition identifier is not 00 or 10)",
        ));
    }
    if !verhoeff_valid(bytes) {
        return Err(MappingError::new(
            field,
            ErrorKind::InvalidValue,
            "not a SNOMED CT concept id: the check digit does not match (Verhoeff)",
        ));
    }
    Ok(code)
}

/// True when the ASCII digits `digits` end with their Verhoeff check digit.
fn verhoeff_valid(digits: &[u8]) -> bool {
    const MULTIPLICATION: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERMUTATION: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let check = digits.iter().rev().enumerate().fold(0_u8, |check, (position, digit)| {
        MULTIPLICATION[usize::from(check)][usize::from(PERMUTATION[position % 8][usize::from(digit - b'0')])]
    });
    check == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn npi_check_digit() {
        for valid in ["1234567893", "1245319599", "1003000126"] {
            assert!(validate_npi(valid, "npi").is_ok(), "{valid}");
        }
        for invalid in ["1234567890", "123456789", "12345678930", "12345-7893", ""] {
            assert_eq!(validate_npi(invalid, "npi").unwrap_err().field, "npi", "{invalid}");
        }
    }

    #[test]
    fn systems_by_alias_or_uri() {
        assert_eq!(resolve_system("LOINC"), Some(systems::LOINC));
        assert_eq!(resolve_system("icd10cm"), Some(systems::ICD10CM));
        assert_eq!(resolve_system("urn:oid:1.2.3"), Some("urn:oid:1.2.3"));
        assert_eq!(resolve_system("loinc.org"), None);
    }

    #[test]
    fn coded_values_name_their_fields() {
        let image = Image::from_json(
            r#"{"a":{"M":{"code":{"S":"8867-4"},"display":{"S":"Heart rate"}}},"b":{"M":{"system":{"S":"x"},"code":{"S":"1"}}},
                "c":{"M":{"display":{"S":"d"}}},"d":{"M":{"code":{"N":"1"}}}}"#,
        )
        .unwrap();
        let concept = image.coded("a", "a", Some(systems::LOINC)).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(concept).unwrap(),
            json!({"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]})
        );
        assert_eq!(image.coded("a", "a", None).unwrap_err().field, "a.system");
        assert_eq!(image.coded("b", "b", None).unwrap_err().field, "b.system");
        assert_eq!(image.coded("c", "type", None).unwrap_err().field, "type.code");
        assert_eq!(image.coded("d", "d", None).unwrap_err().kind, ErrorKind::WrongType);
        assert_eq!(image.coded("zz", "zz", None).unwrap(), None);
    }

    #[test]
    fn numbers_are_decimals() {
        let image = Image::from_json(
            r#"{"a":{"N":"72"},"b":{"N":"-0.50"},"c":{"S":"1e3"},"d":{"S":"NaN"},"e":{"S":".5"},"f":{"S":"5."}}"#,
        )
        .unwrap();
        assert_eq!(image.number("a", "a").unwrap(), Some(72.0));
        assert_eq!(image.number("b", "b").unwrap(), Some(-0.5));
        for bad in ["c", "d", "e", "f"] {
            assert_eq!(image.number(bad, bad).unwrap_err().kind, ErrorKind::InvalidValue, "{bad}");
        }
    }

    #[test]
    fn periods_reject_an_end_before_the_start() {
        let at = |text| Some(dates::parse_date_time(text, "f").unwrap());
        assert!(period(at("2026-03-02"), at("2026-03-01"), "end").unwrap_err().field == "end");
        assert_eq!(
            serde_json::to_value(period(at("2026-03-01T09:00:00Z"), None, "end").unwrap()).unwrap(),
            json!({"start":"2026-03-01T09:00:00Z"})
        );
        assert_eq!(period(None, None, "end").unwrap(), None);
    }

    #[test]
    fn references_use_the_shared_id_rule() {
        let value = serde_json::to_value(reference("Patient", "PATIENT#1", Some("x")).unwrap()).unwrap();
        assert_eq!(value, json!({"reference": id::reference("Patient", "PATIENT#1"), "display":"x"}));
        let image = Image::from_json(r#"{"patientId":{"S":"pat-1"}}"#).unwrap();
        assert_eq!(
            serde_json::to_value(image.reference("patientId", "Patient").unwrap()).unwrap(),
            json!({"reference":"Patient/pat-1"})
        );
    }

    #[test]
    fn snomed_concept_id_check_digit_and_partition() {
        for valid in ["44054006", "260385009", "185349003", "419772000", "138875005", "999000011000000103"] {
            assert!(validate_snomed_concept_id(valid, "code").is_ok(), "{valid}");
        }
        // Every other last digit of a valid id fails (Verhoeff catches every single-digit error).
        for (index, last) in (b'0'..=b'9').enumerate() {
            let id = format!("4405400{}", last as char);
            assert_eq!(validate_snomed_concept_id(&id, "code").is_ok(), index == 6, "{id}");
        }
        // Two swapped neighbours fail too; partition 01 (a description id) and 02 (a relationship id) fail.
        for invalid in ["44045006", "44054010", "123450200", "4405406", "100022", "0044054006", "4405400x", ""] {
            assert_eq!(validate_snomed_concept_id(invalid, "code").unwrap_err().field, "code", "{invalid}");
        }
    }

    #[test]
    fn ucum_syntax() {
        for valid in ["/min", "mm[Hg]", "[in_i]", "{score}", "10*3/uL", "mL/(min.{1.73_m2})", "%"] {
            assert!(validate_ucum(valid, "unit").is_ok(), "{valid}");
        }
        for invalid in ["°C", "beats per minute", "m\tg", "{x", "x}", "[x", "x]", "([x)]", "(x", "x)", "{[x}]"] {
            assert_eq!(validate_ucum(invalid, "unit").unwrap_err().field, "unit", "{invalid}");
        }
    }
}
