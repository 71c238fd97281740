use serde_json::json;

use super::*;

fn real() -> Template {
    Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap()
}

#[test]
fn the_real_template_with_a_log_group_target() {
    let pipe = real().pipe(None, &[]).unwrap();
    assert_eq!(pipe.logical_id, "PatientPipe");
    assert_eq!(pipe.placeholders, ["PatientTableStreamArn"]);
    assert!(pipe.source_arn.starts_with("arn:aws:dynamodb:") && pipe.source_arn.contains("local-placeholder"));
    assert_eq!(
        pipe.stream,
        StreamParameters {
            starting_position: StartingPosition::Latest,
            batch_size: 100,
            maximum_batching_window: Duration::from_secs(1),
            maximum_retry_attempts: 10,
            maximum_record_age_seconds: -1,
            bisect_on_failure: true,
            dead_letter_arn: Some(format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:PatientDeadLetterQueue")),
        }
    );
    assert_eq!(pipe.filter_patterns, [r#"{"eventName":["INSERT","MODIFY","REMOVE"]}"#]);
    assert!(pipe.filters.matches(&json!({"eventName": "REMOVE"})));
    let enrichment = pipe.enrichment.unwrap();
    assert_eq!((enrichment.binary.as_str(), enrichment.resource_name), ("patient-enricher", Some("patient")));
    assert_eq!(enrichment.timeout, Duration::from_secs(30));
    let env: Vec<(&str, &str)> = enrichment.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        env,
        [
            ("FHIR_PIPES_ERROR_POLICY", "emit-error-event"),
            ("FHIR_PIPES_MRN_SYSTEM", "urn:fhir-pipes:mrn"),
            ("FHIR_PIPES_SKIP_UNCHANGED", "true"),
            ("FHIR_PIPES_SOURCE", "PatientTable"),
            ("RUST_LOG", "info"),
        ]
    );
    assert_eq!(pipe.target.kind, TargetKind::LogGroup { name: format!("/fhir-pipes/{LOCAL_STACK_NAME}/events") });
}

#[test]
fn the_real_template_with_an_event_bus_target_and_overrides() {
    let parameters = [
        "TargetType=EventBus",
        "StreamEventNames=INSERT,MODIFY",
        "BatchSize=7",
        "MaximumRetryAttempts=-1",
        "ErrorPolicy=fail-batch",
        "PatientTableStreamArn=arn:aws:dynamodb:eu-west-1:123456789012:table/P/stream/1",
    ]
    .map(String::from);
    let pipe = real().pipe(Some("PatientPipe"), &parameters).unwrap();
    assert!(pipe.placeholders.is_empty());
    assert_eq!(pipe.source_arn, "arn:aws:dynamodb:eu-west-1:123456789012:table/P/stream/1");
    assert_eq!(pipe.stream.batch_size, 7);
    assert_eq!(pipe.stream.local_retry_attempts(), LOCAL_MAX_RETRY_ATTEMPTS);
    assert!(!pipe.filters.matches(&json!({"eventName": "REMOVE"})));
    assert_eq!(pipe.enrichment.unwrap().environment["FHIR_PIPES_ERROR_POLICY"], "fail-batch");
    assert_eq!(
        pipe.target.kind,
        TargetKind::EventBus {
            name: format!("{LOCAL_STACK_NAME}-fhir"),
            detail_type: Some("FHIR Patient".into()),
            source: Some("fhir-pipes".into()),
        }
    );
    // A given bus ARN is used as is.
    let bus = "arn:aws:events:us-east-1:123456789012:event-bus/clinic";
    let parameters = ["TargetType=EventBus".to_owned(), format!("EventBusArn={bus}")];
    let pipe = real().pipe(None, &parameters).unwrap();
    assert_eq!(pipe.target.arn, bus);
}

#[test]
fn the_real_template_with_a_healthlake_target() {
    let endpoint = "http://127.0.0.1:8080/datastore/0123456789abcdef0123456789abcdef/r4/";
    let parameters = ["TargetType=HealthLake".to_owned(), format!("HealthLakeDatastoreEndpoint={endpoint}")];
    for pipe in ["PatientPipe", "EncounterPipe"] {
        let mut parameters = parameters.to_vec();
        parameters.push("EncounterTableStreamArn=arn:aws:dynamodb:us-east-1:123456789012:table/E/stream/1".to_owned());
        let pipe = real().pipe(Some(pipe), &parameters).unwrap();
        let TargetKind::HealthLake(function) = &pipe.target.kind else {
            panic!("{}: target {:?} is not the HealthLake target", pipe.logical_id, pipe.target)
        };
        assert_eq!(
            (function.logical_id.as_str(), function.binary.as_str()),
            ("HealthLakeTargetFunction", "healthlake-target")
        );
        assert_eq!(function.timeout, Duration::from_secs(60));
        assert_eq!(function.environment["FHIR_PIPES_HEALTHLAKE_ENDPOINT"], endpoint);
        assert_eq!(function.environment["FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY"], "10");
    }
    let without_endpoint = real().pipe(None, &["TargetType=HealthLake".to_owned()]).unwrap();
    let TargetKind::HealthLake(function) = without_endpoint.target.kind else { panic!("not the HealthLake target") };
    assert_eq!(function.environment["FHIR_PIPES_HEALTHLAKE_ENDPOINT"], "", "the run then fails naming the setting");
}

#[test]
fn parameter_mistakes_are_named() {
    let error = real().pipe(None, &["Nope=1".to_owned()]).unwrap_err();
    assert!(matches!(&error, TemplateError::UnknownParameter { name, .. } if name == "Nope"), "{error}");
    let error = real().pipe(None, &["TargetType=Kinesis".to_owned()]).unwrap_err();
    assert!(error.to_string().contains("Parameters.TargetType"), "{error}");
    assert!(matches!(real().pipe(None, &["BatchSize".to_owned()]), Err(TemplateError::ParameterSyntax(_))));
    let error = real().pipe(Some("AllergyPipe"), &[]).unwrap_err();
    assert!(error.to_string().contains("PatientPipe"), "{error}");
    let error = real().pipe(Some("EncounterPipe"), &[]).unwrap_err();
    assert!(error.to_string().contains("EncounterEnabled is false"), "{error}");
    let stream = "EncounterTableStreamArn=arn:aws:dynamodb:us-east-1:111122223333:table/Encounters/stream/1";
    let encounter = real().pipe(Some("EncounterPipe"), &[stream.to_owned()]).unwrap();
    assert_eq!(encounter.enrichment.unwrap().binary, "encounter-enricher");
}

const SMALL: &str = r#"
Parameters:
  Stage: {Type: String, Default: dev}
  Names: {Type: CommaDelimitedList, Default: "a,b,c"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition NotProd, !Or [!Equals [x, y], !Equals [!Select [1, !Ref Names], b]]]
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      CodeUri: target/lambda/patient-enricher
      Environment: {Variables: {FHIR_PIPES_SOURCE: !Sub "${Stage}-${AWS::Region}-${!Literal}"}}
  Pipe:
    Type: AWS::Pipes::Pipe
    Properties:
      Source: !Sub
        - "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}/stream/1"
        - T: !Join ["-", [!Ref Stage, !Select [2, !Ref Names]]]
      SourceParameters:
        DynamoDBStreamParameters:
          BatchSize: 3
          StartingPosition: TRIM_HORIZON
        FilterCriteria:
          Filters:
            - Pattern: !If [Both, '{"eventName":["INSERT"]}', '{"eventName":["REMOVE"]}']
      Enrichment: {"Fn::GetAtt": [Fn, Arn]}
      Target: !Sub "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:/x/${AWS::StackName}:*"
      Description: !If [IsProd, prod, !Ref AWS::NoValue]
"#;

#[test]
fn short_and_long_intrinsics_resolve() {
    let pipe = Template::parse(SMALL).unwrap().pipe(None, &[]).unwrap();
    assert_eq!(pipe.source_arn, format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/dev-c/stream/1"));
    assert_eq!(pipe.stream.batch_size, 3);
    assert_eq!(pipe.stream.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(pipe.stream.maximum_retry_attempts, -1);
    assert_eq!(pipe.filter_patterns, [r#"{"eventName":["INSERT"]}"#]);
    let enrichment = pipe.enrichment.unwrap();
    assert_eq!(enrichment.environment["FHIR_PIPES_SOURCE"], format!("dev-{LOCAL_REGION}-${{Literal}}"));
    assert_eq!(enrichment.timeout, Duration::from_secs(3));
    assert_eq!(pipe.target.kind, TargetKind::LogGroup { name: format!("/x/{LOCAL_STACK_NAME}") });
    let prod = Template::parse(SMALL).unwrap().pipe(None, &["Stage=prod".into()]).unwrap();
    assert_eq!(prod.filter_patterns, [r#"{"eventName":["REMOVE"]}"#]);
}

#[test]
fn unsupported_constructs_name_their_path() {
    let text = SMALL.replace("BatchSize: 3", "BatchSize: !ImportValue shared-batch-size");
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, TemplateError::UnsupportedFunction { .. }), "{message}");
    assert!(
        message.contains("Resources.Pipe.Properties.SourceParameters.DynamoDBStreamParameters.BatchSize"),
        "{message}"
    );
    let error = Template::parse(&SMALL.replace("BatchSize: 3", "BatchSize: !Magic 3")).unwrap_err();
    assert!(matches!(&error, TemplateError::UnsupportedTag { tag, .. } if tag == "!Magic"), "{error}");
    let error = Template::parse(&SMALL.replace("BatchSize: 3", "BatchSize: 0")).unwrap().pipe(None, &[]).unwrap_err();
    assert!(error.to_string().contains("BatchSize: must be 1-10000"), "{error}");
    let error =
        Template::parse(&SMALL.replace("!Ref Stage, prod", "!Ref Nowhere, prod")).unwrap().pipe(None, &[]).unwrap_err();
    assert!(error.to_string().contains("Nowhere"), "{error}");
}

#[test]
fn invalid_patterns_and_unknown_binaries_are_rejected_up_front() {
    let text = SMALL.replace(r#"'{"eventName":["INSERT"]}'"#, r#"'{"eventName":"INSERT"}'"#);
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    assert!(matches!(error, TemplateError::Filter { .. }), "{error}");
    assert!(error.to_string().contains("FilterCriteria.Filters"), "{error}");
    let text = SMALL.replace("lambda/patient-enricher", "lambda/allergy-enricher");
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    assert!(matches!(&error, TemplateError::UnknownEnricher { binary, .. } if binary == "allergy-enricher"));
    assert!(matches!(Template::parse("Resources: {}").unwrap().pipe(None, &[]), Err(TemplateError::NoPipe)));
}

#[test]
fn resources_and_pipes_whose_condition_is_false_do_not_exist() {
    let text = SMALL.replace(
        "  Fn:\n    Type: AWS::Lambda::Function\n",
        "  Fn:\n    Type: AWS::Lambda::Function\n    Condition: IsProd\n",
    );
    assert!(text.contains("Condition: IsProd"));
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    assert!(error.to_string().contains("`Fn` is not created"), "{error}");
    assert!(Template::parse(&text).unwrap().pipe(None, &["Stage=prod".into()]).is_ok());
    let text = SMALL.replace(
        "  Pipe:\n    Type: AWS::Pipes::Pipe\n",
        "  Pipe:\n    Type: AWS::Pipes::Pipe\n    Condition: IsProd\n",
    );
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    assert!(matches!(&error, TemplateError::NoPipeCreated { pipes } if pipes == "Pipe"), "{error}");
    let error = Template::parse(&text).unwrap().pipe(Some("Pipe"), &[]).unwrap_err();
    assert!(error.to_string().contains("Resources.Pipe.Condition"), "{error}");
}

/// Regression: a condition that refers to a resource guarded by that same condition recursed
/// without bound (the resource's condition was evaluated at depth 0) and overflowed the stack.
#[test]
fn regression_a_condition_guarding_the_resource_it_refers_to_is_an_error_not_a_stack_overflow() {
    let text = SMALL.replace("  IsProd: !Equals [!Ref Stage, prod]", "  IsProd: !Equals [!Ref Fn, prod]").replace(
        "  Fn:\n    Type: AWS::Lambda::Function\n",
        "  Fn:\n    Type: AWS::Lambda::Function\n    Condition: IsProd\n",
    );
    assert!(text.contains("!Ref Fn, prod") && text.contains("Condition: IsProd"));
    let error = Template::parse(&text).unwrap().pipe(None, &[]).unwrap_err();
    assert!(error.to_string().contains("too deeply"), "{error}");
}

#[test]
fn the_healthlake_change_pipe_reads_its_queue_and_runs_the_hydrator_and_the_publisher() {
    let endpoint = "https://healthlake.us-east-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r4/";
    assert!(
        real().pipe(Some("HealthLakeChangePipe"), &[]).unwrap_err().to_string().contains("CaptureHealthLakeChanges")
    );
    let parameters = [
        "HealthLakeChangeCapture=Enabled".to_owned(),
        format!("HealthLakeDatastoreEndpoint={endpoint}"),
        "ChangeCaptureBatchSize=25".to_owned(),
        "ChangeCaptureMaxReceiveCount=3".to_owned(),
        "ChangeCaptureFunctionTimeout=120".to_owned(),
    ];
    let pipe = real().pipe(Some("HealthLakeChangePipe"), &parameters).unwrap();
    assert_eq!(pipe.source_arn, format!("arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:ChangeCaptureQueue"));
    let PipeSource::SqsQueue(queue) = &pipe.source else { panic!("not an SQS pipe: {:?}", pipe.source) };
    assert_eq!((queue.batch_size, queue.maximum_batching_window), (25, Duration::from_secs(1)));
    assert_eq!(
        queue.queue,
        Some(QueueDefinition {
            logical_id: "ChangeCaptureQueue".to_owned(),
            visibility_timeout_seconds: 720,
            max_receive_count: Some(3),
            dead_letter_queue: Some("ChangeCaptureDeadLetterQueue".to_owned()),
        })
    );
    assert_eq!(
        (pipe.stream.batch_size, pipe.stream.maximum_retry_attempts, pipe.stream.bisect_on_failure),
        (25, 2, false)
    );
    assert!(pipe.filters.is_empty());
    let enrichment = pipe.enrichment.unwrap();
    assert_eq!((enrichment.binary.as_str(), enrichment.resource_name), ("healthlake-hydrator", None));
    assert_eq!(enrichment.timeout, Duration::from_secs(120));
    assert_eq!(enrichment.environment["FHIR_PIPES_HEALTHLAKE_ENDPOINT"], endpoint);
    assert_eq!(enrichment.environment["FHIR_PIPES_HYDRATOR_SOURCE"], "HealthLake");
    assert_eq!(enrichment.environment["FHIR_PIPES_HYDRATOR_MAX_PAGES"], "10");
    assert_eq!(enrichment.environment["FHIR_PIPES_HYDRATOR_SEARCH_MARGIN_SECONDS"], "5");
    let TargetKind::Lambda(publisher) = &pipe.target.kind else { panic!("{:?}", pipe.target.kind) };
    assert_eq!(publisher.binary, "healthlake-publisher");
    assert_eq!(
        publisher.environment["FHIR_PIPES_PUBLISHER_EVENT_BUS"],
        format!("{LOCAL_STACK_NAME}-healthlake-changes")
    );
    assert_eq!(publisher.environment["FHIR_PIPES_PUBLISHER_SOURCE"], "fhir-pipes.healthlake");
    assert_eq!(publisher.environment["FHIR_PIPES_PUBLISHER_DEDUP_TABLE"], "ChangeCaptureDedupTable");
    assert_eq!(publisher.environment["FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS"], "7");
    let existing_bus = [parameters.as_slice(), &["ChangeCaptureEventBusName=cdc".to_owned()]].concat();
    let pipe = real().pipe(Some("HealthLakeChangePipe"), &existing_bus).unwrap();
    let TargetKind::Lambda(publisher) = &pipe.target.kind else { panic!() };
    assert_eq!(publisher.environment["FHIR_PIPES_PUBLISHER_EVENT_BUS"], "cdc");
}
