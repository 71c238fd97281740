//! The patient data of the fixtures, to look for in logs: no test may find any of it there.

use serde_json::Value;

/// Attributes whose values are patient data or identifiers (of every shipped resource's table).
const PHI_ATTRIBUTES: &[&str] = &[
    "id",
    "firstName",
    "middleName",
    "lastName",
    "birthDate",
    "phone",
    "email",
    "mrn",
    "address",
    "npi",
    "taxId",
    "name",
    "patientId",
    "practitionerId",
    "organizationId",
    "encounterId",
    "issuerId",
    "partOfId",
    "qualifications",
    "start",
    "end",
    "effective",
    "onset",
    "abatement",
    "recordedDate",
];

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// PHI values of one record's images, with the forms the mapping may turn them into.
pub fn phi_values(record: &Value) -> Vec<String> {
    let mut values = Vec::new();
    for image in ["NewImage", "OldImage", "Keys"] {
        let Some(image) = record["dynamodb"][image].as_object() else { continue };
        for attribute in PHI_ATTRIBUTES {
            if let Some(value) = image.get(*attribute) {
                collect_strings(value, &mut values);
            }
        }
    }
    let mut derived = Vec::new();
    for value in &values {
        derived.push(value.trim().to_owned());
        // MM-DD-YYYY birth dates are logged nowhere in their normalised form either.
        if let [m1, m2, b'-', d1, d2, b'-', y @ ..] = value.as_bytes() {
            derived.push(format!(
                "{}-{}{}-{}{}",
                String::from_utf8_lossy(y),
                *m1 as char,
                *m2 as char,
                *d1 as char,
                *d2 as char
            ));
        }
    }
    values.extend(derived);
    // Short values ("S", "M", "1") are type tags or noise, not identifying.
    values.retain(|v| v.chars().count() >= 5);
    values
}

/// Every PHI value of the records of `batch` (a JSON array of stream records; anything else
/// holds none).
pub fn batch_phi_values(batch: &Value) -> Vec<String> {
    batch.as_array().into_iter().flatten().flat_map(phi_values).collect()
}

/// Panics naming the first of `phi` that appears in `logs` (what logged it: `origin`). A value
/// of digits only (a zip code, an NPI) counts only where no digit touches it: the digits of a
/// duration or a timestamp may spell it by chance.
pub fn assert_no_phi(logs: &str, phi: &[String], origin: &str) {
    if let Some(value) = phi.iter().find(|value| appears(logs, value)) {
        let line = logs.lines().find(|line| appears(line, value)).unwrap_or_default();
        panic!("PHI value {value:?} appears in the logs of {origin}, in:\n{line}");
    }
}

fn appears(text: &str, value: &str) -> bool {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return text.contains(value);
    }
    text.match_indices(value).any(|(at, _)| {
        let before = text[..at].bytes().next_back();
        let after = text[at + value.len()..].bytes().next();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}
