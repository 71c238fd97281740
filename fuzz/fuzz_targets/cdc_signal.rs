//! `fhir_pipes_cdc::parse_message`: bytes as one SQS message (the JSON a Pipe with an SQS source
//! hands its enrichment). Never a panic; `Err` is fine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<&RawValue>(data) else { return };
    match fhir_pipes_cdc::parse_message(message) {
        Ok(parsed) => {
            let _ = format!("{parsed:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
