//! Walks `fixtures/<resource>/<case>.input.json`, enriches each through the Lambda handler and
//! compares with `<case>.expected.json`; every FHIR entity must be valid against the official
//! R4 JSON schema. `BLESS=1 cargo test -p fhir-pipes-e2e --test golden` rewrites the expected
//! files (review the diff before committing).

use fhir_pipes_e2e::{assert_json_eq, blessing, enrich_case, fixture_cases, parse, r4_violations, read};

#[test]
fn every_fixture_matches_its_expected_output() {
    let cases = fixture_cases();
    assert!(cases.len() >= 20, "expected the shipped fixtures, found {} cases", cases.len());
    for case in &cases {
        let actual = enrich_case(case);
        let expected_path = case.expected_path();
        if blessing() {
            std::fs::write(&expected_path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        assert!(
            expected_path.exists(),
            "{} has no expected output: run `BLESS=1 cargo test -p fhir-pipes-e2e --test golden` and review it",
            case.input.display()
        );
        let expected = parse(&read(&expected_path), &expected_path);
        assert_json_eq(&actual, &expected, &format!("{}/{}", case.resource, case.name));
    }
}

#[test]
fn every_fixture_entity_is_valid_fhir_r4() {
    let mut checked = 0;
    for case in fixture_cases() {
        let expected_path = case.expected_path();
        if !expected_path.exists() {
            continue; // reported by every_fixture_matches_its_expected_output
        }
        let expected = parse(&read(&expected_path), &expected_path);
        for (index, event) in expected.as_array().into_iter().flatten().enumerate() {
            let Some(entity) = event["details"].get("entity") else { continue };
            if event["details"]["command"] == "DELETE" && is_bare_identity(entity) {
                // A DELETE without a mappable old image carries only the identity to delete, not
                // a resource: Encounter, Observation, Condition have required elements it lacks.
                let id = entity["id"].as_str().unwrap_or_default();
                assert!(fhir_pipes_mappings::is_valid_fhir_id(id), "{}/{}: bad id {id}", case.resource, case.name);
                checked += 1;
                continue;
            }
            let violations = r4_violations(entity);
            assert!(
                violations.is_empty(),
                "{}/{} event {index}: invalid FHIR R4:\n{}",
                case.resource,
                case.name,
                violations.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} entities checked");
}

fn is_bare_identity(entity: &serde_json::Value) -> bool {
    entity.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("resourceType") && o.contains_key("id"))
}

#[test]
fn the_schema_check_catches_invalid_resources() {
    // Guards the guard: if the schema were not applied, these would pass.
    let invalid = [
        serde_json::json!({"resourceType": "Patient", "birthDate": "1990-13-45"}),
        serde_json::json!({"resourceType": "Patient", "gender": "M"}),
        serde_json::json!({"resourceType": "Patient", "id": "PATIENT#1"}),
        serde_json::json!({"resourceType": "Patient", "firstName": "x"}),
        serde_json::json!({"resourceType": "Patient", "name": [{"given": "not-an-array"}]}),
    ];
    for resource in invalid {
        assert!(!r4_violations(&resource).is_empty(), "accepted {resource}");
    }
    assert!(
        r4_violations(&serde_json::json!({"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-02"}))
            .is_empty()
    );
}

#[test]
fn every_event_keeps_its_record_correlation_and_order() {
    let mut checked = 0;
    for case in fixture_cases() {
        let input = parse(&case.input_text(), &case.input);
        let Some(events) = enrich_case(&case).as_array().cloned() else { continue };
        let records = input.as_array().unwrap();
        let ids: Vec<&str> = records.iter().filter_map(|r| r["eventID"].as_str()).collect();
        // Only a record without an eventID may give an event without a correlationId.
        let uncorrelated = events.iter().filter(|e| !e["correlationId"].is_string()).count();
        assert!(
            uncorrelated <= records.len() - ids.len(),
            "{}/{}: {uncorrelated} events lost their record's eventID",
            case.resource,
            case.name
        );
        let mut position = 0;
        for event in &events {
            let Some(id) = event["correlationId"].as_str() else { continue };
            let found = ids[position..].iter().position(|candidate| *candidate == id);
            assert!(found.is_some(), "{}/{}: event {id} out of order or unknown", case.resource, case.name);
            position += found.unwrap() + 1;
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} events checked: the fixtures should give more");
}
