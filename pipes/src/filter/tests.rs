//! Behaviour tables: each pattern with events that must match and events that must not, and
//! invalid patterns with the error kind and path they must produce.

use serde_json::{Value, json};

use super::*;

/// Asserts every event in `yes` matches and every event in `no` does not.
fn check_with(dialect: Dialect, pattern: &Value, yes: &[Value], no: &[Value]) {
    let compiled =
        Pattern::parse_with(pattern, dialect).unwrap_or_else(|e| panic!("pattern {pattern} should compile: {e}"));
    for event in yes {
        assert!(compiled.matches(event), "pattern {pattern}\n  should match {event}");
    }
    for event in no {
        assert!(!compiled.matches(event), "pattern {pattern}\n  should NOT match {event}");
    }
}

/// Runs a table of `(pattern, matching events, non-matching events)` in one dialect.
fn table(dialect: Dialect, cases: Vec<(Value, Vec<Value>, Vec<Value>)>) {
    for (pattern, yes, no) in &cases {
        check_with(dialect, pattern, yes, no);
    }
}

/// A DynamoDB stream record as a Pipe sees it.
fn record(event_name: &str, entity_type: &str) -> Value {
    json!({
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": 1678831218,
            "Keys": {"pk": {"S": "PATIENT#1"}},
            "NewImage": {
                "pk": {"S": "PATIENT#1"},
                "entityType": {"S": entity_type},
                "age": {"N": "42"}
            },
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

#[test]
fn exact_values_are_type_strict() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"eventName": ["INSERT", "MODIFY"]}),
                vec![json!({"eventName": "INSERT"}), json!({"eventName": "MODIFY"})],
                vec![
                    json!({"eventName": "REMOVE"}),
                    json!({"eventName": "insert"}),
                    json!({}),
                    json!({"eventName": {"S": "INSERT"}}),
                ],
            ),
            (
                json!({"n": [300]}),
                vec![json!({"n": 300}), json!({"n": 300.0}), json!({"n": 3e2})],
                vec![json!({"n": "300"}), json!({"n": 301}), json!({"n": 300.5})],
            ),
            (
                // Beyond f64 precision: compared as integers, like an AWS account id.
                json!({"acct": [123_456_789_012_345_678_u64]}),
                vec![json!({"acct": 123_456_789_012_345_678_u64})],
                vec![json!({"acct": 123_456_789_012_345_679_u64})],
            ),
            (json!({"s": ["5"]}), vec![json!({"s": "5"})], vec![json!({"s": 5}), json!({"s": "05"})]),
            (
                json!({"b": [true]}),
                vec![json!({"b": true})],
                vec![json!({"b": "true"}), json!({"b": false}), json!({})],
            ),
            (json!({"x": [null]}), vec![json!({"x": null})], vec![json!({}), json!({"x": ""}), json!({"x": "null"})]),
            (json!({"x": [""]}), vec![json!({"x": ""})], vec![json!({"x": null}), json!({})]),
            (
                // IP literals compare as addresses.
                json!({"ip": ["2001:db8::1"]}),
                vec![json!({"ip": "2001:db8::1"}), json!({"ip": "2001:DB8:0:0:0:0:0:1"})],
                vec![json!({"ip": "2001:db8::2"})],
            ),
        ],
    );
}

#[test]
fn nested_dynamodb_fields() {
    let pattern = json!({"dynamodb": {"NewImage": {"entityType": {"S": ["PATIENT"]}}}});
    check_with(
        Dialect::Pipes,
        &pattern,
        &[record("INSERT", "PATIENT"), record("REMOVE", "PATIENT")],
        &[
            record("INSERT", "ORDER"),
            json!({"dynamodb": {"Keys": {"pk": {"S": "PATIENT#1"}}}}),
            json!({"dynamodb": {"NewImage": {"entityType": {"N": "1"}}}}),
            json!({"dynamodb": {"NewImage": {"entityType": "PATIENT"}}}),
            json!({"dynamodb": "PATIENT"}),
            json!({"entityType": {"S": "PATIENT"}}),
        ],
    );
}

#[test]
fn default_pipe_filter_on_event_name_and_entity_type() {
    let filters = FilterSet::parse(&[
        r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"entityType": {"S": ["PATIENT"]}}}}"#,
    ])
    .unwrap();
    assert!(filters.matches(&record("INSERT", "PATIENT")));
    assert!(filters.matches(&record("MODIFY", "PATIENT")));
    assert!(!filters.matches(&record("REMOVE", "PATIENT")));
    assert!(!filters.matches(&record("INSERT", "ORDER")));
}

#[test]
fn template_yaml_stream_event_name_filters() {
    // The patterns pipes/template.yaml renders for its two `StreamEventNames` choices.
    let all = FilterSet::parse(&[r#"{"eventName":["INSERT","MODIFY","REMOVE"]}"#]).unwrap();
    let no_remove = FilterSet::parse(&[r#"{"eventName":["INSERT","MODIFY"]}"#]).unwrap();
    for name in ["INSERT", "MODIFY", "REMOVE"] {
        assert!(all.matches(&record(name, "PATIENT")), "{name}");
        assert_eq!(no_remove.matches(&record(name, "PATIENT")), name != "REMOVE", "{name}");
    }
}

#[test]
fn arrays_in_events() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"resources": ["arn:1"]}),
                vec![
                    json!({"resources": ["arn:0", "arn:1"]}),
                    json!({"resources": [["arn:1"]]}),
                    json!({"resources": "arn:1"}),
                ],
                vec![
                    json!({"resources": ["arn:2"]}),
                    json!({"resources": []}),
                    json!({"resources": [{"id": "arn:1"}]}),
                ],
            ),
            (
                // An array of objects: the nested pattern applies per element.
                json!({"employees": {"firstName": ["Anna"]}}),
                vec![json!({"employees": [{"firstName": "John"}, {"firstName": "Anna"}]})],
                vec![json!({"employees": [{"firstName": "John"}]}), json!({"employees": []})],
            ),
            (
                // Array-consistent: both fields must come from the same element.
                json!({"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}),
                vec![json!({"employees": [{"firstName": "Peter"}, {"firstName": "Anna", "lastName": "Jones"}]})],
                vec![json!({"employees": [
                    {"firstName": "Anna", "lastName": "Smith"},
                    {"firstName": "Peter", "lastName": "Jones"}
                ]})],
            ),
            (
                // A DynamoDB list of maps.
                json!({"dynamodb": {"NewImage": {"ids": {"L": {"M": {"system": {"S": ["mrn"]}}}}}}}),
                vec![json!({"dynamodb": {"NewImage": {"ids": {"L": [
                    {"M": {"system": {"S": "ssn"}}},
                    {"M": {"system": {"S": "mrn"}}}
                ]}}}})],
                vec![json!({"dynamodb": {"NewImage": {"ids": {"L": [
                    {"M": {"system": {"S": "ssn"}}}
                ]}}}})],
            ),
        ],
    );
}

#[test]
fn prefix_and_suffix() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"time": [{"prefix": "2017-10-02"}]}),
                vec![json!({"time": "2017-10-02T18:43:48Z"}), json!({"time": ["x", "2017-10-02"]})],
                vec![json!({"time": "2017-10-03T00:00:00Z"}), json!({"time": 20171002}), json!({})],
            ),
            (
                json!({"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}),
                vec![json!({"service": "eventbridge"}), json!({"service": "EVENTBRIDGE"})],
                vec![json!({"service": "event"}), json!({"service": "xeventb"})],
            ),
            (
                json!({"FileName": [{"suffix": ".png"}]}),
                vec![json!({"FileName": "a.png"}), json!({"FileName": ".png"})],
                vec![json!({"FileName": "a.PNG"}), json!({"FileName": "png"}), json!({"FileName": 1})],
            ),
            (
                json!({"FileName": [{"suffix": {"equals-ignore-case": ".PNG"}}]}),
                vec![json!({"FileName": "a.png"}), json!({"FileName": "B.Png"})],
                vec![json!({"FileName": "a.jpg"}), json!({"FileName": "pn"})],
            ),
            (
                // `İ` lower-cases to two chars (`i` + U+0307); folding from the end must keep their order.
                json!({"city": [{"suffix": {"equals-ignore-case": "-İ"}}]}),
                vec![json!({"city": "X-İ"}), json!({"city": "x-i\u{307}"})],
                vec![json!({"city": "x-i"})],
            ),
        ],
    );
}

#[test]
fn equals_ignore_case() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"name": [{"equals-ignore-case": "alice"}]}),
                vec![json!({"name": "Alice"}), json!({"name": "ALICE"}), json!({"name": "alice"})],
                vec![json!({"name": "alice2"}), json!({"name": "alic"}), json!({"name": null})],
            ),
            (
                json!({"city": [{"equals-ignore-case": "ÉCOLE"}]}),
                vec![json!({"city": "école"})],
                vec![json!({"city": "ecole"})],
            ),
        ],
    );
}

#[test]
fn anything_but_supported_by_pipes() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"state": [{"anything-but": "initializing"}]}),
                // Values of another type are never excluded (Event Ruler behaviour).
                vec![json!({"state": "running"}), json!({"state": 5}), json!({"state": null})],
                // A missing field has no value to be "anything but".
                vec![json!({"state": "initializing"}), json!({})],
            ),
            (
                json!({"state": [{"anything-but": ["stopped", "overloaded"]}]}),
                vec![json!({"state": "running"}), json!({"state": ["stopped", "running"]})],
                vec![json!({"state": "stopped"}), json!({"state": ["stopped", "overloaded"]})],
            ),
            (
                json!({"x": [{"anything-but": [100, 200]}]}),
                vec![json!({"x": 150}), json!({"x": "100"})],
                vec![json!({"x": 100}), json!({"x": 100.0}), json!({"x": 2e2})],
            ),
            (
                json!({"eventName": [{"anything-but": "REMOVE"}]}),
                vec![record("INSERT", "PATIENT"), record("MODIFY", "PATIENT")],
                vec![record("REMOVE", "PATIENT")],
            ),
        ],
    );
}

#[test]
fn anything_but_event_bus_variants() {
    table(
        Dialect::EventBus,
        vec![
            (
                json!({"state": [{"anything-but": {"prefix": "init"}}]}),
                vec![json!({"state": "running"}), json!({"state": 1})],
                vec![json!({"state": "initializing"}), json!({})],
            ),
            (
                json!({"f": [{"anything-but": {"suffix": ".png"}}]}),
                vec![json!({"f": "a.jpg"})],
                vec![json!({"f": "a.png"}), json!({})],
            ),
            (
                json!({"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "Overloaded"]}}]}),
                vec![json!({"state": "running"})],
                vec![json!({"state": "STOPPED"}), json!({"state": "overloaded"})],
            ),
            (
                json!({"path": [{"anything-but": {"wildcard": "*/lib/*"}}]}),
                vec![json!({"path": "/usr/bin/x"})],
                vec![json!({"path": "/usr/lib/x"}), json!({})],
            ),
        ],
    );
}

#[test]
fn numeric_ranges() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"c": [{"numeric": [">", 0, "<=", 5]}]}),
                vec![json!({"c": 5}), json!({"c": 0.1}), json!({"c": 3}), json!({"c": [9, 2]})],
                vec![json!({"c": 0}), json!({"c": 5.000001}), json!({"c": -1}), json!({"c": "3"}), json!({})],
            ),
            (
                json!({"d": [{"numeric": ["<", 10]}]}),
                vec![json!({"d": -1}), json!({"d": 9.999})],
                vec![json!({"d": 10}), json!({"d": 11})],
            ),
            (
                json!({"d": [{"numeric": [">=", 10]}]}),
                vec![json!({"d": 10}), json!({"d": 1e3})],
                vec![json!({"d": 9.999999})],
            ),
            (json!({"x": [{"numeric": ["=", 3.018e2]}]}), vec![json!({"x": 301.8})], vec![json!({"x": 301.9})]),
            (
                // Stream timestamps (> 1e9) are within the engine's +-5e9 range.
                json!({"dynamodb": {"ApproximateCreationDateTime": [{"numeric": [">=", 1678831218]}]}}),
                vec![record("INSERT", "PATIENT")],
                vec![json!({"dynamodb": {"ApproximateCreationDateTime": 1678831217.5}})],
            ),
            (
                // Numbers outside +-5e9 have no comparable form and never match.
                json!({"x": [{"numeric": [">", 0]}]}),
                vec![json!({"x": 5e9})],
                vec![json!({"x": 6e9})],
            ),
        ],
    );
}

#[test]
fn numeric_never_matches_dynamodb_n_strings() {
    // DynamoDB puts numbers in `N` as JSON strings; AWS's numeric filter does not coerce them.
    let pattern = json!({"dynamodb": {"NewImage": {"age": {"N": [{"numeric": [">", 0]}]}}}});
    check_with(Dialect::Pipes, &pattern, &[], &[record("INSERT", "PATIENT")]);
    let exact = json!({"dynamodb": {"NewImage": {"age": {"N": ["42"]}}}});
    check_with(Dialect::Pipes, &exact, &[record("INSERT", "PATIENT")], &[]);
}

#[test]
fn exists_true_and_false() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"detail": {"c-count": [{"exists": true}]}}),
                vec![
                    json!({"detail": {"c-count": 5}}),
                    json!({"detail": {"c-count": null}}),
                    json!({"detail": {"c-count": [1]}}),
                ],
                vec![
                    json!({"detail": {}}),
                    json!({}),
                    // Only leaves exist: an object or an empty array is not a value.
                    json!({"detail": {"c-count": {"c1": 100}}}),
                    json!({"detail": {"c-count": []}}),
                ],
            ),
            (
                json!({"detail": {"c-count": [{"exists": false}]}}),
                vec![
                    json!({"detail": {"state": "running"}}),
                    json!({}),
                    json!({"detail": "scalar"}),
                    json!({"detail": {"c-count": {"c1": 100}}}),
                    json!({"detail": {"c-count": []}}),
                ],
                vec![json!({"detail": {"c-count": 5}}), json!({"detail": {"c-count": null}})],
            ),
            (
                // Nested attribute absence: an INSERT has no OldImage.
                json!({"dynamodb": {"OldImage": {"pk": {"S": [{"exists": false}]}}}}),
                vec![record("INSERT", "PATIENT")],
                vec![json!({"dynamodb": {"OldImage": {"pk": {"S": "PATIENT#1"}}}})],
            ),
            (
                // `exists` only sees leaves, so an object-valued OldImage does not "exist".
                json!({"dynamodb": {"OldImage": [{"exists": false}]}}),
                vec![record("INSERT", "PATIENT"), json!({"dynamodb": {"OldImage": {"pk": {"S": "PATIENT#1"}}}})],
                vec![json!({"dynamodb": {"OldImage": "x"}})],
            ),
            (
                // Absence under an array must hold in every element.
                json!({"items": {"code": [{"exists": false}]}}),
                vec![json!({"items": [{"x": 1}, {"y": 2}]}), json!({"items": []}), json!({"items": [1, 2]})],
                vec![json!({"items": [{"x": 1}, {"code": "a"}]}), json!({"items": [1, {"code": "a"}]})],
            ),
            (
                // ...unless another field picks the element.
                json!({"items": {"code": ["a"], "flag": [{"exists": false}]}}),
                vec![json!({"items": [{"code": "a"}, {"code": "b", "flag": true}]})],
                vec![json!({"items": [{"code": "a", "flag": 1}, {"code": "b"}]})],
            ),
            (
                // A value OR absence.
                json!({"status": ["final", {"exists": false}]}),
                vec![json!({"status": "final"}), json!({})],
                vec![json!({"status": "draft"})],
            ),
        ],
    );
}

#[test]
fn wildcard_with_escapes() {
    table(
        Dialect::EventBus,
        vec![
            (
                json!({"f": [{"wildcard": "dir/*.png"}]}),
                vec![json!({"f": "dir/a.png"}), json!({"f": "dir/.png"}), json!({"f": "dir/x/y.png"})],
                vec![json!({"f": "dir/a.jpg"}), json!({"f": "other/a.png"}), json!({"f": "dir.png"})],
            ),
            (
                json!({"f": [{"wildcard": "*a*b*"}]}),
                vec![json!({"f": "xxaxxbxx"}), json!({"f": "ab"})],
                vec![json!({"f": "bxa"}), json!({"f": 1})],
            ),
            (
                // Prefix and suffix must not overlap.
                json!({"f": [{"wildcard": "ab*ba"}]}),
                vec![json!({"f": "abba"}), json!({"f": "abxba"})],
                vec![json!({"f": "aba"})],
            ),
            (
                // `\*` is a literal star.
                json!({"f": [{"wildcard": "a\\*b*"}]}),
                vec![json!({"f": "a*b"}), json!({"f": "a*bc"})],
                vec![json!({"f": "axbc"}), json!({"f": "ab"})],
            ),
            (
                // `\\` is a literal backslash.
                json!({"f": [{"wildcard": "C:\\\\*"}]}),
                vec![json!({"f": "C:\\Windows"})],
                vec![json!({"f": "C:/Windows"})],
            ),
            (json!({"f": [{"wildcard": "exact"}]}), vec![json!({"f": "exact"})], vec![json!({"f": "exactly"})]),
            (
                json!({"f": [{"wildcard": "é*ü"}]}),
                vec![json!({"f": "éxü"}), json!({"f": "éü"})],
                vec![json!({"f": "éx"})],
            ),
        ],
    );
}

#[test]
fn cidr_v4_and_v6() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
                vec![json!({"ip": "10.0.0.0"}), json!({"ip": "10.0.0.33"}), json!({"ip": "10.0.0.255"})],
                vec![
                    json!({"ip": "10.0.1.0"}),
                    json!({"ip": "9.255.255.255"}),
                    json!({"ip": "::1"}),
                    json!({"ip": "not an ip"}),
                    json!({"ip": 10}),
                ],
            ),
            (
                json!({"ip": [{"cidr": "2001:db8::/32"}]}),
                vec![json!({"ip": "2001:db8::1"}), json!({"ip": "2001:DB8:ffff::1"})],
                vec![json!({"ip": "2001:db9::1"}), json!({"ip": "10.0.0.1"})],
            ),
            (
                // Host bits are ignored: this is 10.0.0.0/24.
                json!({"ip": [{"cidr": "10.0.0.5/24"}]}),
                vec![json!({"ip": "10.0.0.1"})],
                vec![json!({"ip": "10.0.1.1"})],
            ),
            (
                json!({"ip": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]}),
                vec![json!({"ip": "255.255.255.255"}), json!({"ip": "ffff::"})],
                vec![json!({"ip": "localhost"})],
            ),
        ],
    );
}

#[test]
fn or_at_any_level() {
    table(
        Dialect::Pipes,
        vec![
            (
                json!({
                    "source": ["aws.cloudwatch"],
                    "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]
                }),
                vec![
                    json!({"source": "aws.cloudwatch", "metricName": "CPUUtilization"}),
                    json!({"source": "aws.cloudwatch", "namespace": "AWS/EC2"}),
                ],
                vec![json!({"source": "aws.ec2", "metricName": "CPUUtilization"}), json!({"source": "aws.cloudwatch"})],
            ),
            (
                // REMOVE records carry only an OldImage.
                json!({"dynamodb": {"$or": [
                    {"NewImage": {"entityType": {"S": ["PATIENT"]}}},
                    {"OldImage": {"entityType": {"S": ["PATIENT"]}}}
                ]}}),
                vec![
                    record("INSERT", "PATIENT"),
                    json!({"eventName": "REMOVE", "dynamodb": {"OldImage": {"entityType": {"S": "PATIENT"}}}}),
                ],
                vec![record("INSERT", "ORDER")],
            ),
            (
                // Nested $or, with an AND inside one branch.
                json!({"$or": [
                    {"a": ["1"]},
                    {"b": ["2"], "$or": [{"c": ["3"]}, {"d": ["4"]}]}
                ]}),
                vec![json!({"a": "1"}), json!({"b": "2", "d": "4"})],
                vec![json!({"b": "2"}), json!({"c": "3", "d": "4"})],
            ),
        ],
    );
}

#[test]
fn filter_set_ors_patterns_and_caps_at_five() {
    let set = FilterSet::parse(&[
        r#"{"eventName": ["INSERT"]}"#,
        r#"{"dynamodb": {"NewImage": {"entityType": {"S": ["ORDER"]}}}}"#,
    ])
    .unwrap();
    assert!(set.matches(&record("INSERT", "PATIENT")));
    assert!(set.matches(&record("MODIFY", "ORDER")));
    assert!(!set.matches(&record("MODIFY", "PATIENT")));

    let empty = FilterSet::parse::<&str>(&[]).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches(&json!({"anything": 1})), "no filters means no filtering");

    let five = vec![r#"{"a": ["x"]}"#; 5];
    assert_eq!(FilterSet::parse(&five).unwrap().patterns().len(), 5);
    let six = vec![r#"{"a": ["x"]}"#; 6];
    assert!(matches!(FilterSet::parse(&six), Err(FilterError::TooManyPatterns { count: 6, max: 5 })));
    let values = vec![json!({"a": ["x"]}); 6];
    assert!(matches!(FilterSet::from_values(&values), Err(FilterError::TooManyPatterns { .. })));
}

#[test]
fn filter_set_reports_which_pattern_failed() {
    let err = FilterSet::parse(&[r#"{"a": ["x"]}"#, r#"{"a": "x"}"#]).unwrap_err();
    match &err {
        FilterError::InFilter { index: 1, source } => {
            assert!(matches!(**source, FilterError::NotAnArray { ref path } if path == "$.a"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "filter pattern #1: $.a: a field must map to a nested object or to an array of matchers, e.g. [\"value\"]"
    );

    let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(4096));
    let err = FilterSet::parse(&[long]).unwrap_err();
    assert!(matches!(
        err,
        FilterError::InFilter { index: 0, ref source }
            if matches!(**source, FilterError::PatternTooLong { max: 4096, .. })
    ));

    let err = FilterSet::parse(&["{not json"]).unwrap_err();
    assert!(matches!(err, FilterError::InFilter { ref source, .. } if matches!(**source, FilterError::Json(_))));
}

#[test]
fn filter_set_from_values() {
    let set = FilterSet::from_values(&[json!({"eventName": ["MODIFY"]})]).unwrap();
    assert!(set.matches(&record("MODIFY", "PATIENT")));
    assert!(!set.matches(&record("INSERT", "PATIENT")));
}

#[test]
fn config_builds_and_rejects_unknown_fields() {
    let config: FilterConfig = serde_json::from_value(json!({
        "patterns": [r#"{"eventName": ["INSERT", "MODIFY"]}"#]
    }))
    .unwrap();
    assert_eq!(config.dialect, Dialect::Pipes);
    let set = config.build().unwrap();
    assert!(set.matches(&record("MODIFY", "PATIENT")));
    assert!(!set.matches(&record("REMOVE", "PATIENT")));

    let unknown = serde_json::from_value::<FilterConfig>(json!({"patterns": [], "pattern": []}));
    assert!(unknown.is_err(), "unknown fields must be rejected");

    let wildcard = r#"{"f": [{"wildcard": "*.png"}]}"#.to_owned();
    let pipes = FilterConfig { patterns: vec![wildcard.clone()], dialect: Dialect::Pipes };
    let err = pipes.build().unwrap_err();
    assert!(matches!(
        err,
        FilterError::InFilter { ref source, .. }
            if matches!(**source, FilterError::UnsupportedInPipes { operator: "wildcard", .. })
    ));
    let bus: FilterConfig = serde_json::from_value(json!({"patterns": [wildcard], "dialect": "event-bus"})).unwrap();
    assert!(bus.build().unwrap().matches(&json!({"f": "a.png"})));
}

#[test]
fn pipes_dialect_accepts_its_operators() {
    for pattern in [
        json!({"a": [{"prefix": {"equals-ignore-case": "x"}}]}),
        json!({"a": [{"suffix": {"equals-ignore-case": "x"}}]}),
        json!({"a": [{"equals-ignore-case": "x"}]}),
        json!({"a": [{"anything-but": ["x", "y"]}]}),
        json!({"a": [{"numeric": [">", 0]}]}),
        json!({"a": [{"exists": true}]}),
        json!({"a": [{"cidr": "10.0.0.0/8"}]}),
        json!({"$or": [{"a": ["x"]}, {"b": ["y"]}]}),
    ] {
        assert!(Pattern::parse(&pattern).is_ok(), "{pattern} should be valid for Pipes");
    }
}

/// The variant name, so the invalid-pattern table can assert the kind of error.
fn kind(err: &FilterError) -> &'static str {
    match err {
        FilterError::Json(_) => "Json",
        FilterError::NotAnObject { .. } => "NotAnObject",
        FilterError::EmptyObject { .. } => "EmptyObject",
        FilterError::NotAnArray { .. } => "NotAnArray",
        FilterError::EmptyArray { .. } => "EmptyArray",
        FilterError::InvalidMatcher { .. } => "InvalidMatcher",
        FilterError::OperatorKeys { .. } => "OperatorKeys",
        FilterError::UnknownOperator { .. } => "UnknownOperator",
        FilterError::InvalidOperand { .. } => "InvalidOperand",
        FilterError::Numeric { .. } => "Numeric",
        FilterError::AnythingBut { .. } => "AnythingBut",
        FilterError::Wildcard { .. } => "Wildcard",
        FilterError::Cidr { .. } => "Cidr",
        FilterError::Or { .. } => "Or",
        FilterError::UnsupportedInPipes { .. } => "UnsupportedInPipes",
        FilterError::TooManyPatterns { .. } => "TooManyPatterns",
        FilterError::PatternTooLong { .. } => "PatternTooLong",
        FilterError::InFilter { .. } => "InFilter",
    }
}

fn path(err: &FilterError) -> Option<&str> {
    match err {
        FilterError::NotAnObject { path }
        | FilterError::EmptyObject { path }
        | FilterError::NotAnArray { path }
        | FilterError::EmptyArray { path }
        | FilterError::InvalidMatcher { path }
        | FilterError::OperatorKeys { path, .. }
        | FilterError::UnknownOperator { path, .. }
        | FilterError::InvalidOperand { path, .. }
        | FilterError::Numeric { path, .. }
        | FilterError::AnythingBut { path, .. }
        | FilterError::Wildcard { path, .. }
        | FilterError::Cidr { path, .. }
        | FilterError::Or { path, .. }
        | FilterError::UnsupportedInPipes { path, .. } => Some(path),
        _ => None,
    }
}

#[test]
fn invalid_patterns_are_rejected_with_kind_and_path() {
    use Dialect::{EventBus, Pipes};
    let cases: Vec<(Value, Dialect, &str, &str)> = vec![
        // Structure.
        (json!([]), Pipes, "NotAnObject", "$"),
        (json!("eventName"), Pipes, "NotAnObject", "$"),
        (json!({}), Pipes, "EmptyObject", "$"),
        (json!({"dynamodb": {}}), Pipes, "EmptyObject", "$.dynamodb"),
        (json!({"eventName": "INSERT"}), Pipes, "NotAnArray", "$.eventName"),
        (json!({"a": 5}), Pipes, "NotAnArray", "$.a"),
        (json!({"a": null}), Pipes, "NotAnArray", "$.a"),
        (json!({"a": []}), Pipes, "EmptyArray", "$.a"),
        (json!({"a": [["x"]]}), Pipes, "InvalidMatcher", "$.a[0]"),
        (json!({"a": ["x", {}]}), Pipes, "OperatorKeys", "$.a[1]"),
        (json!({"a": [{"prefix": "x", "suffix": "y"}]}), Pipes, "OperatorKeys", "$.a[0]"),
        (json!({"a": [{"contains": "x"}]}), Pipes, "UnknownOperator", "$.a[0]"),
        (
            json!({"dynamodb": {"NewImage": {"entityType": {"S": [{"prefix": 1}]}}}}),
            Pipes,
            "InvalidOperand",
            "$.dynamodb.NewImage.entityType.S[0]",
        ),
        // Operand types.
        (json!({"a": [{"prefix": {"equals-ignore-case": 5}}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"a": [{"prefix": {"other": "x"}}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"a": [{"suffix": ["x"]}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"a": [{"equals-ignore-case": ["x"]}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"detail": {"c-count": [{"exists": "true"}]}}), Pipes, "InvalidOperand", "$.detail[\"c-count\"][0]"),
        (json!({"a": [{"exists": 1}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"a": [{"cidr": 10}]}), Pipes, "InvalidOperand", "$.a[0]"),
        (json!({"a": [{"wildcard": 5}]}), EventBus, "InvalidOperand", "$.a[0]"),
        // Numeric.
        (json!({"n": [{"numeric": "> 5"}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": []}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [5]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["!=", 5]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["<"]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["=", "5"]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["=", 1, 2]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["<", 5, ">", 0]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">", 0, ">", 5]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">", 5, "<", 5]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">=", 10, "<=", 5]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">", 0, "<=", 5, "<", 6]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">", 0, "<="]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": [">", 6e9]}]}), Pipes, "Numeric", "$.n[0]"),
        (json!({"n": [{"numeric": ["<", -5.000001e9]}]}), Pipes, "Numeric", "$.n[0]"),
        // anything-but.
        (json!({"a": [{"anything-but": []}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": ["x", 1]}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": [true]}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": true}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": null}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": 6e9}]}), Pipes, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"contains": "x"}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"prefix": ""}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"suffix": 1}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"equals-ignore-case": [1]}}]}), EventBus, "AnythingBut", "$.a[0]"),
        (json!({"a": [{"anything-but": {"wildcard": "a**"}}]}), EventBus, "Wildcard", "$.a[0]"),
        // Wildcard.
        (json!({"a": [{"wildcard": "a**b"}]}), EventBus, "Wildcard", "$.a[0]"),
        (json!({"a": [{"wildcard": "a\\b"}]}), EventBus, "Wildcard", "$.a[0]"),
        (json!({"a": [{"wildcard": "abc\\"}]}), EventBus, "Wildcard", "$.a[0]"),
        // CIDR.
        (json!({"ip": [{"cidr": "10.0.0.0"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "10.0.0.0/33"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "10.0.0.1/32"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "2001:db8::1/128"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "10.0.0.0/-1"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "10.0.0.0/x"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "10.0.0.0/8/8"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "300.0.0.0/8"}]}), Pipes, "Cidr", "$.ip[0]"),
        (json!({"ip": [{"cidr": "example.com/8"}]}), Pipes, "Cidr", "$.ip[0]"),
        // $or.
        (json!({"$or": {"a": ["x"]}}), Pipes, "Or", "$[\"$or\"]"),
        (json!({"$or": [{"a": ["x"]}]}), Pipes, "Or", "$[\"$or\"]"),
        (json!({"$or": []}), Pipes, "Or", "$[\"$or\"]"),
        (json!({"$or": [{"a": ["x"]}, "b"]}), Pipes, "NotAnObject", "$[\"$or\"][1]"),
        (json!({"$or": [{"a": ["x"]}, {}]}), Pipes, "EmptyObject", "$[\"$or\"][1]"),
        (json!({"$or": [{"numeric": [">", 1]}, {"b": ["y"]}]}), Pipes, "Or", "$[\"$or\"][0].numeric"),
        (json!({"d": {"$or": [{"a": {"prefix": ["x"]}}, {"b": ["y"]}]}}), Pipes, "Or", "$.d[\"$or\"][0].a.prefix"),
        // Event-bus-only operators in a Pipe.
        (json!({"a": [{"wildcard": "*.png"}]}), Pipes, "UnsupportedInPipes", "$.a[0]"),
        (json!({"a": [{"anything-but": {"prefix": "x"}}]}), Pipes, "UnsupportedInPipes", "$.a[0]"),
        (json!({"a": [{"anything-but": {"suffix": "x"}}]}), Pipes, "UnsupportedInPipes", "$.a[0]"),
        (json!({"a": [{"anything-but": {"equals-ignore-case": "x"}}]}), Pipes, "UnsupportedInPipes", "$.a[0]"),
        (json!({"a": [{"anything-but": {"wildcard": "x*"}}]}), Pipes, "UnsupportedInPipes", "$.a[0]"),
    ];
    for (pattern, dialect, want_kind, want_path) in cases {
        let err = match Pattern::parse_with(&pattern, dialect) {
            Ok(_) => panic!("{pattern} should be rejected ({dialect:?})"),
            Err(e) => e,
        };
        assert_eq!(kind(&err), want_kind, "{pattern}: {err}");
        assert_eq!(path(&err), Some(want_path), "{pattern}: {err}");
        assert!(err.to_string().starts_with(want_path), "message should lead with the path: {err}");
    }

    assert!(matches!(Pattern::from_json_str("{\"a\": [\"x\""), Err(FilterError::Json(_))));
}

#[test]
fn error_messages_name_the_problem() {
    let msg = |p: Value, d: Dialect| Pattern::parse_with(&p, d).unwrap_err().to_string();
    assert_eq!(
        msg(json!({"a": [{"wildcard": "a**b"}]}), Dialect::EventBus),
        "$.a[0]: wildcard: consecutive `*` at position 2 are not allowed"
    );
    assert_eq!(msg(json!({"a": [{"exists": "yes"}]}), Dialect::Pipes), "$.a[0]: `exists` expects true or false");
    assert_eq!(
        msg(json!({"a": [{"wildcard": "*"}]}), Dialect::Pipes),
        "$.a[0]: `wildcard` is not supported by EventBridge Pipes filtering (event buses only)"
    );
    assert!(msg(json!({"n": [{"numeric": [">", 6e9]}]}), Dialect::Pipes).contains("outside the supported range"));
    assert!(msg(json!({"n": [{"numeric": [">", 5, "<", 1]}]}), Dialect::Pipes).contains("lower bound must be less"));
}
