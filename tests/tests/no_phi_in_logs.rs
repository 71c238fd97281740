//! No patient data in logs, at any level: every fixture is enriched under TRACE logging (with
//! span events) and no name, birth date, address, phone, email, MRN or record id of the
//! fixtures may appear in the output. eventIDs and counts must.

use fhir_pipes_e2e::{CapturedLogs, enrich_case, fixture_cases, parse};
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
fn phi_values(record: &Value) -> Vec<String> {
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

#[test]
fn no_fixture_phi_appears_in_trace_logs() {
    let logs = CapturedLogs::default();
    let mut phi = Vec::new();
    let mut event_ids = Vec::new();
    tracing::subscriber::with_default(logs.json_subscriber(), || {
        for case in fixture_cases() {
            let input = parse(&case.input_text(), &case.input);
            for record in input.as_array().into_iter().flatten() {
                phi.extend(phi_values(record));
                event_ids.extend(record["eventID"].as_str().map(str::to_owned));
            }
            enrich_case(&case);
        }
    });
    let text = logs.text();
    assert!(phi.len() > 50, "the fixtures should carry PHI to look for, found {}", phi.len());
    for value in &phi {
        assert!(!text.contains(value.as_str()), "PHI value {value:?} appears in the logs");
    }
    // The logs are not empty by accident: they carry the eventIDs and the counts.
    let logged_ids = event_ids.iter().filter(|id| text.contains(id.as_str())).count();
    assert!(logged_ids * 10 >= event_ids.len() * 9, "only {logged_ids} of {} eventIDs are logged", event_ids.len());
    assert!(text.contains("\"records\":"), "no per-invocation counts in the logs");
}
