//! The EventBridge pattern compiler and matcher (`fhir_pipes::filter`). The input is a sequence
//! of JSON values: the first is the pattern, each one after it an event to match against it.
//! Never a panic; a pattern that does not compile is fine.

#![no_main]

use fhir_pipes::filter::{Dialect, FilterSet, Pattern};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let Some(Ok(pattern)) = values.next() else { return };
    let pattern_text = &text[..values.byte_offset()];
    let events: Vec<Value> = values.map_while(Result::ok).collect();

    // The same pattern through each entry point: text (with the length limit) and parsed, in
    // both dialects.
    let from_text = FilterSet::parse(&[pattern_text]);
    let from_value = FilterSet::from_values(std::slice::from_ref(&pattern));
    let pipes = Pattern::parse_with(&pattern, Dialect::Pipes);
    let bus = Pattern::parse_with(&pattern, Dialect::EventBus);
    if pipes.is_ok() {
        assert!(bus.is_ok(), "a Pipes pattern is also an event-bus pattern");
    }
    for event in &events {
        let verdicts = [
            from_text.as_ref().ok().map(|set| set.matches(event)),
            from_value.as_ref().ok().map(|set| set.matches(event)),
            pipes.as_ref().ok().map(|p| p.matches(event)),
        ];
        // Whatever compiled decides alike.
        let mut decided = verdicts.iter().flatten();
        if let Some(first) = decided.next() {
            assert!(decided.all(|v| v == first), "entry points disagree: {verdicts:?}");
        }
        if let (Ok(p), Ok(b)) = (&pipes, &bus) {
            assert_eq!(p.matches(event), b.matches(event), "a Pipes pattern matches alike in both dialects");
        }
        if let Ok(b) = &bus {
            let _ = b.matches(event);
        }
    }
});
