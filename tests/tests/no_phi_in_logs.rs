//! No patient data in logs, at any level: every fixture is enriched under TRACE logging (with
//! span events) and no name, birth date, address, phone, email, MRN or record id of the
//! fixtures may appear in the output. eventIDs and counts must.

use fhir_pipes_e2e::{CapturedLogs, enrich_case, fixture_cases, parse, phi::phi_values};

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
