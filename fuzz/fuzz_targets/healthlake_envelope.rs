//! The HealthLake target's readers: an enriched event through `TargetEvent::parse` and the
//! envelope reader `Envelope::from_json` (as the target reads it, and fully typed), and the
//! same bytes as an error body through the OperationOutcome reader. Never a panic; `Err` is fine.

#![no_main]

use fhir_pipes_core::{Envelope, envelope};
use fhir_pipes_healthlake::{event::TargetEvent, outcome::Outcome};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, value::RawValue};

fuzz_target!(|data: &[u8]| {
    if let Some(outcome) = Outcome::parse(data) {
        let _ = outcome.codes();
        let _ = outcome.text();
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let raw_read = Envelope::<&RawValue, serde::de::IgnoredAny>::from_json(text);
    let typed = Envelope::<Value, Value>::from_json(text);
    if let Ok(typed) = &typed {
        // What reads fully typed reads as the target does, and writes back out.
        assert!(raw_read.is_ok(), "typed read ok but raw read failed: {:?}", raw_read.err());
        let written = serde_json::to_string(typed).expect("an envelope serializes");
        assert!(Envelope::<Value, Value>::from_json(&written).is_ok(), "a written envelope reads back");
    }
    let _ = envelope::correlation_id(text);
    if let Ok(raw) = serde_json::from_str::<&RawValue>(text) {
        let event = TargetEvent::parse(raw);
        if let Ok(action) = &event.action {
            let _ = format!("{action:?}");
        }
    }
});
