//! A domain `Organizations` table to a FHIR R4 Organization.
//!
//! | attribute | type | FHIR |
//! |---|---|---|
//! | `id` (required) | S | `id` (kept when a valid FHIR id, else UUIDv5) |
//! | `name` (required) | S | `name` |
//! | `npi` | S or N, 10 digits with a valid check digit | `identifier` (system `http://hl7.org/fhir/sid/us-npi`) |
//! | `taxId` | S or N, US EIN `NN-NNNNNNN` or 9 digits (the format: an EIN has no check digit) | `identifier` (type `TAX`, system `urn:oid:2.16.840.1.113883.4.4`) |
//! | `type` | S, an organization-type code (`prov`, `dept`, `ins`…) | `type[0]` |
//! | `phone`, `email` | S | `telecom` (use `work`) |
//! | `address` | M, as Patient | `address[0]` (use `work`) |
//! | `active` | BOOL | `active` |
//! | `partOfId` | S, the parent organization's domain id | `partOf` `Organization/<id>` |

use fhir_sdk::r4b::{
    codes::{AddressUse, ContactPointSystem, ContactPointUse},
    resources::Organization,
};

use crate::{
    ErrorKind, Image, Mapping, MappingError,
    datatypes::{address, code_from_table, codeable_concept, identifier, systems, telecom, validate_npi},
    fhir_id, fhir_string,
};

/// The codes of `http://terminology.hl7.org/CodeSystem/organization-type` with their displays.
const ORGANIZATION_TYPES: &[(&str, &str)] = &[
    ("prov", "Healthcare Provider"),
    ("dept", "Hospital Department"),
    ("team", "Organizational team"),
    ("govt", "Government"),
    ("ins", "Insurance Company"),
    ("pay", "Payer"),
    ("edu", "Educational Institute"),
    ("reli", "Religious Institution"),
    ("crs", "Clinical Research Sponsor"),
    ("cg", "Community Group"),
    ("bus", "Non-Healthcare Business or Corporation"),
    ("other", "Other"),
];

/// Domain Organization → FHIR Organization.
#[derive(Debug, Clone, Default)]
pub struct OrganizationMapping;

impl Mapping for OrganizationMapping {
    type Resource = Organization;

    const RESOURCE_TYPE: &'static str = "Organization";

    fn map(&self, image: &Image<'_>) -> Result<Organization, MappingError> {
        let id = fhir_id(Self::RESOURCE_TYPE, image.required_string("id", "id")?);
        let name = image.required_string("name", "name")?;
        let npi = image.string_or_number("npi", "npi")?.map(|npi| validate_npi(npi, "npi")).transpose()?;
        let tax_id = image.string_or_number("taxId", "taxId")?.map(parse_ein).transpose()?;
        let organization_type =
            image.string("type", "type")?.map(|code| code_from_table(ORGANIZATION_TYPES, code, "type")).transpose()?;
        let phone = image.string("phone", "phone")?;
        let email = image.string("email", "email")?;
        let address = address(image, AddressUse::Work)?;
        let active = image.bool("active", "active")?;
        let part_of = image.reference("partOfId", Self::RESOURCE_TYPE)?;

        let mut identifiers = Vec::new();
        if let Some(npi) = npi {
            identifiers.push(Some(identifier(None, systems::NPI, npi)?));
        }
        if let Some(ein) = tax_id {
            identifiers.push(Some(identifier(Some("TAX"), systems::US_EIN, &ein)?));
        }
        let telecom = telecom(
            &[(ContactPointSystem::Phone, phone), (ContactPointSystem::Email, email)],
            Some(ContactPointUse::Work),
        )?;
        let mut organization =
            Organization::builder().id(id).name(fhir_string(name)).identifier(identifiers).telecom(telecom);
        if let Some((code, display)) = organization_type {
            organization =
                organization.r#type(vec![Some(codeable_concept(systems::ORGANIZATION_TYPE, code, Some(display))?)]);
        }
        if let Some(address) = address {
            organization = organization.address(vec![Some(address)]);
        }
        if let Some(active) = active {
            organization = organization.active(active);
        }
        if let Some(part_of) = part_of {
            organization = organization.part_of(part_of);
        }
        Ok(organization.build()?)
    }
}

/// A US Employer Identification Number, `NN-NNNNNNN` or nine digits, as `NN-NNNNNNN`.
fn parse_ein(text: &str) -> Result<String, MappingError> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let well_formed = digits.len() == 9
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 9 || text.as_bytes().get(2) == Some(&b'-') && text.len() == 10);
    if !well_formed {
        return Err(MappingError::new("taxId", ErrorKind::InvalidValue, "not a US EIN (NN-NNNNNNN or 9 digits)"));
    }
    Ok(format!("{}-{}", &digits[..2], &digits[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id;
    use serde_json::{Value, json};

    fn map(image: &str) -> Result<Value, MappingError> {
        crate::test_support::map_json(&OrganizationMapping, image)
    }

    const MINIMAL: &str = r#"{"id":{"S":"org-1"},"name":{"S":"Hollowmere Clinic"}"#;

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}}}")
    }

    #[test]
    fn minimal_organization() {
        assert_eq!(
            map(&with("")).unwrap(),
            json!({"resourceType":"Organization","id":"org-1","name":"Hollowmere Clinic"})
        );
    }

    #[test]
    fn npi_and_tax_identifiers() {
        let organization = map(&with(r#","npi":{"N":"1245319599"},"taxId":{"S":"123456789"}"#)).unwrap();
        assert_eq!(
            organization["identifier"],
            json!([
                {"system":systems::NPI,"value":"1245319599"},
                {"type":{"coding":[{"system":systems::IDENTIFIER_TYPE,"code":"TAX"}]},"system":systems::US_EIN,"value":"12-3456789"}
            ])
        );
        assert_eq!(map(&with(r#","taxId":{"S":"12-3456789"}"#)).unwrap()["identifier"][0]["value"], "12-3456789");
        for bad in ["1234-56789", "12-345678", "12345678X", "12--3456789"] {
            let error = map(&with(&format!(r#","taxId":{{"S":"{bad}"}}"#))).unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("taxId", ErrorKind::InvalidValue), "{bad}");
        }
    }

    #[test]
    fn type_codes_and_parent() {
        let organization = map(&with(r##","type":{"S":"PROV"},"partOfId":{"S":"ORG#1"}"##)).unwrap();
        assert_eq!(
            organization["type"],
            json!([{"coding":[{"system":systems::ORGANIZATION_TYPE,"code":"prov","display":"Healthcare Provider"}]}])
        );
        assert_eq!(organization["partOf"], json!({"reference": id::reference("Organization", "ORG#1")}));
        assert_eq!(map(&with(r#","type":{"S":"hospital"}"#)).unwrap_err().field, "type");
    }

    #[test]
    fn work_address() {
        let organization = map(&with(r#","address":{"M":{"city":{"S":"Larchford"},"zip":{"N":"05401"}}}"#)).unwrap();
        assert_eq!(organization["address"], json!([{"use":"work","city":"Larchford","postalCode":"05401"}]));
    }
}
