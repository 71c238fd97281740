//! A Pipes batch (the JSON array of DynamoDB stream records) through every shipped enricher,
//! built with default settings: decode, map, envelope. Never a panic; `Err` is fine; a batch
//! that enriches gives a response body that is a JSON array of exactly its events.

#![no_main]

use std::sync::OnceLock;

use fhir_pipes_enrichers::{BatchEnricher, RESOURCES};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fn enrichers() -> &'static [Box<dyn BatchEnricher>] {
    static ENRICHERS: OnceLock<Vec<Box<dyn BatchEnricher>>> = OnceLock::new();
    ENRICHERS.get_or_init(|| {
        RESOURCES
            .iter()
            .map(|r| (r.build)(&|_| None).unwrap_or_else(|e| panic!("{} with default settings: {e}", r.name)))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = std::str::from_utf8(data) else { return };
    for enricher in enrichers() {
        let Ok(enriched) = enricher.enrich(batch) else { continue };
        let body = enriched.to_json();
        let events: Vec<&RawValue> = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{}: the response body is not a JSON array: {e}", enricher.resource_type()));
        assert_eq!(events.len(), enriched.events.len(), "{}: events in the body", enricher.resource_type());
    }
});
