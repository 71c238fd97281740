//! Whatever a message holds, parsing gives `Ok` or a typed error naming the message: never a
//! panic. Arbitrary bodies, arbitrary JSON, and the fixtures with one value replaced or removed.

use std::{fs, path::PathBuf};

use fhir_pipes_cdc::{SignalError, parse_message};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json, value::RawValue};

const MESSAGE_ID: &str = "0b6e4c8a-1f0d-4f5e-9a3b-00000000ffff";

/// Parses a message whose body is `body`; an error must name the message.
fn parse_body(body: &str) -> Result<(), SignalError> {
    let message = json!({"messageId": MESSAGE_ID, "body": body, "eventSource": "aws:sqs", "awsRegion": "us-east-1"});
    let message = RawValue::from_string(message.to_string()).unwrap();
    match parse_message(&message) {
        Ok(_) => Ok(()),
        Err(error) => {
            assert_eq!(error.message_id.as_deref(), Some(MESSAGE_ID), "{error}");
            assert!(!error.field.is_empty());
            Err(error)
        }
    }
}

/// The bodies of every fixture message, as JSON values (the not-JSON one is skipped).
fn fixture_bodies() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/healthlake-signals");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    names.sort();
    let mut bodies = Vec::new();
    for path in names {
        let messages: Vec<Value> = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        for message in messages {
            if let Some(body) = message["body"].as_str().and_then(|body| serde_json::from_str(body).ok()) {
                bodies.push(body);
            }
        }
    }
    bodies
}

/// Every JSON pointer in `value` (the root excluded).
fn pointers(value: &Value, prefix: String, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let pointer = format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1"));
                into.push(pointer.clone());
                pointers(child, pointer, into);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let pointer = format!("{prefix}/{index}");
                into.push(pointer.clone());
                pointers(child, pointer, into);
            }
        }
        _ => {}
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |number| number.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Bundle"),
            Just("Parameters"),
            Just("SubscriptionStatus"),
            Just("history"),
            Just("event-notification"),
            Just("handshake"),
            Just("aws.healthlake"),
            Just("AWS API Call via CloudTrail"),
            Just("Data Store Active"),
            Just("healthlake.amazonaws.com"),
            Just("CreateResource"),
            Just("DeleteResource"),
            Just("Patient/1"),
            Just("Patient/1/_history/2"),
            Just("https://x/Patient/1"),
            Just("2022-11-29T18:07:16Z"),
            Just("HIDDEN_DUE_TO_SECURITY_REASONS"),
        ]
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,6}",
                    Just("resourceType".to_owned()),
                    Just("type".to_owned()),
                    Just("entry".to_owned()),
                    Just("resource".to_owned()),
                    Just("parameter".to_owned()),
                    Just("name".to_owned()),
                    Just("part".to_owned()),
                    Just("detail".to_owned()),
                    Just("source".to_owned()),
                    Just("detail-type".to_owned()),
                    Just("id".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[test]
fn every_truncated_fixture_body_gives_ok_or_a_typed_error() {
    for body in fixture_bodies() {
        let text = body.to_string();
        for end in (0..text.len()).filter(|end| text.is_char_boundary(*end)) {
            let _ = parse_body(&text[..end]);
        }
    }
}

#[test]
fn every_fixture_body_without_one_of_its_fields_gives_ok_or_a_typed_error() {
    for body in fixture_bodies() {
        let mut all = Vec::new();
        pointers(&body, String::new(), &mut all);
        for pointer in all {
            let mut changed = body.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match changed.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    items.remove(key.parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            }
            let _ = parse_body(&changed.to_string());
        }
    }
}

#[test]
fn a_message_that_is_not_an_object_names_no_message() {
    for text in ["[]", "null", "\"text\"", "12", "{\"messageId\": 12}", "{\"messageId\": \"a\", \"messageId\": \"b\"}"]
    {
        let message = RawValue::from_string(text.to_owned()).unwrap();
        let error = parse_message(&message).unwrap_err();
        assert_eq!(error.message_id, None, "{text}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_as_body_give_ok_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_body(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_json_as_body_gives_ok_or_a_typed_error(body in any_json()) {
        let _ = parse_body(&body.to_string());
    }

    #[test]
    fn any_json_as_message_gives_ok_or_a_typed_error(message in any_json()) {
        let message = RawValue::from_string(message.to_string()).unwrap();
        let _ = parse_message(&message);
    }

    #[test]
    fn a_fixture_body_with_one_value_replaced_gives_ok_or_a_typed_error(
        which in any::<Index>(),
        at in any::<Index>(),
        replacement in any_json(),
    ) {
        let bodies = fixture_bodies();
        let mut body = which.get(&bodies).clone();
        let mut all = Vec::new();
        pointers(&body, String::new(), &mut all);
        let pointer = at.get(&all);
        *body.pointer_mut(pointer).unwrap() = replacement;
        let _ = parse_body(&body.to_string());
    }
}
