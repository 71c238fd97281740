//! Single-table design: one table holds every entity type (keys like `PATIENT#123`), and each
//! resource's Pipe keeps only its own records with the filter of `pipes/template.yaml` when
//! `EntityTypeAttribute` is set. The patterns are read from the template itself, so this test
//! checks what is deployed. `fixtures/single-table/stream.json` is the table's stream.

use fhir_pipes::filter::FilterSet;
use fhir_pipes_e2e::{fixtures_dir, parse, read, template_path};
use fhir_pipes_enrichers::resources::{self, RESOURCES};
use serde_json::Value;

const ENTITY_TYPE_ATTRIBUTE: &str = "entityType";
const EVENT_NAMES: &str = r#"INSERT","MODIFY","REMOVE"#;

/// The single-table filter patterns of `resource_type`'s pipe, with the template parameters
/// substituted as CloudFormation would (`EntityTypeAttribute=entityType`, the default event
/// names, `<Resource>EntityType=<Resource>`).
fn single_table_filters(template: &str, resource_type: &str) -> FilterSet {
    let pipe = template.find(&format!("\n  {resource_type}Pipe:\n")).expect("the resource's pipe");
    let block = &template[pipe..];
    let block = &block[..block[1..].find("\n\n").map_or(block.len(), |end| end + 1)];
    let after = &block[block.find("- IsSingleTable").expect("a single-table branch")..];
    let patterns: Vec<String> = after
        .lines()
        .filter_map(|line| line.split_once("'{").map(|(_, rest)| format!("{{{}", rest.trim_end_matches('\''))))
        .take(2)
        .map(|pattern| {
            pattern
                .replace("${EventNames}", EVENT_NAMES)
                .replace("${EntityTypeAttribute}", ENTITY_TYPE_ATTRIBUTE)
                .replace(&format!("${{{resource_type}EntityType}}"), resource_type)
        })
        .collect();
    assert_eq!(patterns.len(), 2, "{resource_type}: the NewImage and the OldImage (REMOVE) patterns");
    assert!(patterns.iter().all(|p| !p.contains("${")), "unsubstituted: {patterns:?}");
    FilterSet::parse(&patterns).unwrap_or_else(|e| panic!("{resource_type}: {e}"))
}

fn stream() -> Vec<Value> {
    let path = fixtures_dir().join("single-table/stream.json");
    parse(&read(&path), &path).as_array().unwrap().clone()
}

fn entity_type(record: &Value) -> Option<&str> {
    let dynamodb = &record["dynamodb"];
    let image = if record["eventName"] == "REMOVE" { &dynamodb["OldImage"] } else { &dynamodb["NewImage"] };
    image[ENTITY_TYPE_ATTRIBUTE]["S"].as_str()
}

#[test]
fn each_record_goes_to_the_pipe_of_its_entity_type_only() {
    let template = read(&template_path());
    let filters: Vec<(&str, FilterSet)> =
        RESOURCES.iter().map(|r| (r.resource_type, single_table_filters(&template, r.resource_type))).collect();
    let mut routed = 0;
    for record in stream() {
        let matched: Vec<&str> = filters.iter().filter(|(_, f)| f.matches(&record)).map(|(r, _)| *r).collect();
        let expected: Vec<&str> = entity_type(&record).filter(|t| resources::find(t).is_some()).into_iter().collect();
        assert_eq!(matched, expected, "record {}", record["eventID"]);
        routed += matched.len();
    }
    assert_eq!(routed, 8, "6 INSERTs, a MODIFY and a REMOVE of known types; the Invoice records go nowhere");
}

#[test]
fn the_routed_records_map_and_their_references_resolve() {
    let template = read(&template_path());
    let records = stream();
    let mut ids = std::collections::HashMap::new();
    let mut references = Vec::new();
    for resource in RESOURCES {
        let filters = single_table_filters(&template, resource.resource_type);
        let batch: Vec<&Value> = records.iter().filter(|r| filters.matches(r)).collect();
        let enricher = (resource.build)(&|_| None).unwrap();
        let enriched = enricher.enrich(&serde_json::to_string(&batch).unwrap()).unwrap();
        assert_eq!(enriched.counts.failed, 0, "{}: every routed record maps", resource.resource_type);
        assert_eq!(enriched.events.len(), batch.len());
        for event in &enriched.events {
            let event: Value = serde_json::from_str(event.get()).unwrap();
            let entity = &event["details"]["entity"];
            assert_eq!(entity["resourceType"], resource.resource_type);
            let domain_id = batch.iter().find(|r| r["eventID"] == event["correlationId"]).and_then(|r| {
                let image =
                    if r["eventName"] == "REMOVE" { &r["dynamodb"]["OldImage"] } else { &r["dynamodb"]["NewImage"] };
                image["id"]["S"].as_str()
            });
            ids.insert(
                format!("{}/{}", resource.resource_type, domain_id.unwrap()),
                entity["id"].as_str().unwrap().to_owned(),
            );
            for pointer in [
                "/subject/reference",
                "/encounter/reference",
                "/serviceProvider/reference",
                "/participant/0/individual/reference",
            ] {
                if let Some(reference) = entity.pointer(pointer).and_then(Value::as_str) {
                    references.push(reference.to_owned());
                }
            }
        }
    }
    // Keys like PATIENT#123 are not FHIR ids: every id is a UUIDv5, and each reference is the
    // id the referenced record got from its own pipe.
    assert_eq!(ids["Patient/PATIENT#123"], fhir_pipes_mappings::fhir_id("Patient", "PATIENT#123"));
    assert!(references.len() >= 8, "{references:?}");
    for reference in &references {
        let (resource_type, id) = reference.split_once('/').unwrap();
        assert!(
            ids.iter().any(|(key, mapped)| key.starts_with(&format!("{resource_type}/")) && mapped == id),
            "{reference} does not resolve to a record of the table"
        );
    }
}
