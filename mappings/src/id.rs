//! The FHIR id rule, shared by every mapping so that references (`Patient/<id>`) resolve.

use uuid::Uuid;

/// Namespace of the UUIDv5 ids given to domain ids that are not valid FHIR ids.
/// Changing it would change the FHIR id of every such record: never do.
pub const ID_NAMESPACE: Uuid = uuid::uuid!("6f1f3a52-2a55-4e8b-9a0e-6a0c2b8f1d11");

/// True when `id` matches FHIR's id rule: `[A-Za-z0-9\-.]{1,64}`.
pub fn is_valid_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The FHIR id of a domain record: its own id when that is a valid FHIR id, otherwise a UUIDv5
/// of `"<resource_type>/<domain_id>"` (stable: every change of one record gets the same id).
pub fn fhir_id(resource_type: &str, domain_id: &str) -> String {
    if is_valid_fhir_id(domain_id) {
        return domain_id.to_owned();
    }
    let mut name = String::with_capacity(resource_type.len() + 1 + domain_id.len());
    name.push_str(resource_type);
    name.push('/');
    name.push_str(domain_id);
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

/// A literal reference to another resource, `"<resource_type>/<fhir id>"`, by the same rule.
pub fn reference(resource_type: &str, domain_id: &str) -> String {
    format!("{resource_type}/{}", fhir_id(resource_type, domain_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept() {
        for id in ["a", "pat-0001", "A.b-9", &"x".repeat(64)] {
            assert_eq!(fhir_id("Patient", id), id);
        }
    }

    #[test]
    fn other_ids_get_a_stable_uuid_v5() {
        let id = fhir_id("Patient", "PATIENT#123");
        assert_eq!(id, fhir_id("Patient", "PATIENT#123"));
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
        assert!(is_valid_fhir_id(&id));
        assert_ne!(id, fhir_id("Practitioner", "PATIENT#123"), "the resource type is part of the name");
        for bad in ["", "a b", "é", &"x".repeat(65), "a_b"] {
            assert!(!is_valid_fhir_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn references_use_the_same_rule() {
        assert_eq!(reference("Patient", "p1"), "Patient/p1");
        assert_eq!(reference("Patient", "P#1"), format!("Patient/{}", fhir_id("Patient", "P#1")));
    }
}
