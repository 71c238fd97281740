//! Property: whatever the stream records hold, enrichment never panics, never fails the batch
//! (under the default error policy) and yields exactly one event per record, in order, except
//! the documented skip: a MODIFY whose FHIR resource did not change.

use fhir_pipes_enrichers::{EnrichConfig, Enricher};
use fhir_pipes_mappings::PatientMapping;
use proptest::prelude::*;
use serde_json::{Value, json};

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{2}-[0-9]{2}-[0-9]{4}",
        "(M|F|O|U|male|female|other|unknown|x)",
        "[A-Za-z0-9#\\-. ]{0,20}",
        "\\PC{0,10}",
        Just("  ".to_owned()),
    ]
}

fn attribute(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        string_value().prop_map(|s| json!({"S": s})),
        "-?[0-9]{1,6}(\\.[0-9]{1,3})?".prop_map(|n| json!({"N": n})),
        any::<bool>().prop_map(|b| json!({"BOOL": b})),
        Just(json!({"NULL": true})),
        Just(json!({"SS": ["a", "b"]})),
        Just(json!({"L": [{"S": "x"}]})),
        Just(json!({"B": "AAE="})),
        junk().prop_map(|j| json!({"S": j})),
        junk(),
    ];
    if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![4 => leaf, 1 => image(depth - 1).prop_map(|m| json!({"M": m}))].boxed()
    }
}

const KNOWN: &[&str] = &[
    "id",
    "firstName",
    "middleName",
    "lastName",
    "birthDate",
    "gender",
    "phone",
    "email",
    "mrn",
    "active",
    "address",
    "address1",
    "address2",
    "city",
    "state",
    "zip",
    "country",
];

fn image(depth: u32) -> BoxedStrategy<Value> {
    let key = prop_oneof![4 => proptest::sample::select(KNOWN).prop_map(str::to_owned), 1 => "[a-z]{1,6}"];
    proptest::collection::btree_map(key, attribute(depth), 0..12)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

fn record() -> impl Strategy<Value = Value> {
    let event_name = prop_oneof![
        3 => proptest::sample::select(&["INSERT", "MODIFY", "REMOVE"][..]).prop_map(Value::from),
        1 => junk(),
    ];
    let maybe_image = || prop_oneof![3 => image(2).prop_map(Some), 1 => Just(None), 1 => junk().prop_map(Some)];
    let well_formed = (
        prop_oneof![5 => "[0-9a-f]{8}".prop_map(Value::from), 1 => junk()],
        event_name,
        maybe_image(),
        maybe_image(),
        maybe_image(),
    )
        .prop_map(|(id, name, new_image, old_image, keys)| {
            let mut dynamodb = serde_json::Map::new();
            for (field, value) in [("NewImage", new_image), ("OldImage", old_image), ("Keys", keys)] {
                if let Some(value) = value {
                    dynamodb.insert(field.to_owned(), value);
                }
            }
            json!({"eventID": id, "eventName": name, "dynamodb": dynamodb})
        });
    prop_oneof![6 => well_formed, 1 => junk()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_event_per_record_or_a_documented_skip(records in proptest::collection::vec(record(), 0..12)) {
        let batch = serde_json::to_string(&records).unwrap();
        let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
        let enriched = enricher.enrich(&batch).expect("the default policy never fails a batch");
        let counts = enriched.counts;
        prop_assert_eq!(enriched.events.len() + counts.skipped, records.len());
        prop_assert_eq!(counts.puts + counts.deletes + counts.failed + counts.skipped, records.len());

        // Walk the records in order: each is either the next event (same correlationId) or an
        // unchanged MODIFY.
        let events: Vec<Value> = enriched.events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect();
        let mut next = events.iter().peekable();
        for record in &records {
            let event = next.peek().copied();
            let matches = event.is_some_and(|e| e["details"]["command"] == "ERROR" && e["details"]["record"] == *record
                || record["eventID"].is_string() && e["correlationId"] == record["eventID"]);
            if matches {
                next.next();
            } else {
                prop_assert_eq!(&record["eventName"], "MODIFY", "only an unchanged MODIFY may be skipped: {}", record);
            }
        }
        prop_assert!(next.next().is_none(), "more events than records");
    }
}
