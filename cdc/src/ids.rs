//! The checks every name read from a signal passes before anyone puts it in a URL.

/// True when `resource_type` looks like a FHIR resource type: `[A-Z][A-Za-z]+`, at most 64
/// characters. The list of types is not checked (HealthLake answers for types it lacks).
pub fn is_valid_resource_type(resource_type: &str) -> bool {
    let bytes = resource_type.as_bytes();
    (2..=64).contains(&bytes.len()) && bytes[0].is_ascii_uppercase() && bytes.iter().all(u8::is_ascii_alphabetic)
}

/// True when `id` matches FHIR's id rule, `[A-Za-z0-9\-.]{1,64}`, and is not `.` or `..`
/// (which FHIR's rule allows but which are path steps in a URL). Used for resource ids and
/// version ids.
pub fn is_valid_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.')
        && id != "."
        && id != ".."
}

/// True when `datastore_id` can be a HealthLake datastore id in a URL path:
/// `[A-Za-z0-9_-]{1,64}` (HealthLake's are 32 hexadecimal digits).
pub fn is_valid_datastore_id(datastore_id: &str) -> bool {
    (1..=64).contains(&datastore_id.len())
        && datastore_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types() {
        for good in ["Patient", "Observation", "DocumentReference", "Ab"] {
            assert!(is_valid_resource_type(good), "{good}");
        }
        for bad in ["", "P", "patient", "Patient1", "Patient/1", "Pat ient", "Patiént", &"A".repeat(65)] {
            assert!(!is_valid_resource_type(bad), "{bad}");
        }
    }

    #[test]
    fn fhir_ids() {
        for good in ["1", "pat-0001", "a.b", "A-Za-z0-9", &"x".repeat(64)] {
            assert!(is_valid_fhir_id(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a_b", "PATIENT#1", "é", &"x".repeat(65)] {
            assert!(!is_valid_fhir_id(bad), "{bad}");
        }
    }

    #[test]
    fn datastore_ids() {
        for good in ["5f3a1e1d4c8b4a7e9d2c1b0a9f8e7d6c", "store_1-a"] {
            assert!(is_valid_datastore_id(good), "{good}");
        }
        for bad in ["", "..", "a/b", "a.b", "a b", &"x".repeat(65)] {
            assert!(!is_valid_datastore_id(bad), "{bad}");
        }
    }
}
