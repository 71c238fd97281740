//! The deployable Pipe definition passes cfn-lint (errors and warnings fail). cfn-lint comes from
//! `tests/requirements.txt`, installed at first use (`fhir_pipes_e2e::tools`); when it cannot be,
//! this test fails, it never skips.

use std::process::Command;

use fhir_pipes_e2e::{template_path, workspace_root};

#[test]
fn pipe_templates_pass_cfn_lint() {
    let output = Command::new("bash")
        .arg(workspace_root().join("pipes/lint-template.sh"))
        .env("CFN_LINT", fhir_pipes_e2e::tools::cfn_lint())
        .current_dir(workspace_root())
        .output()
        .expect("cannot run pipes/lint-template.sh");
    assert!(
        output.status.success(),
        "cfn-lint rejected the templates:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_template_uses_only_real_pipe_properties() {
    // Regression for the Go seed, whose pipe had a `lambdaParameters` field Pipes does not have.
    let template = std::fs::read_to_string(template_path()).unwrap();
    assert!(!template.to_ascii_lowercase().contains("lambdaparameters:"));
    assert!(template.contains("AWS::Pipes::Pipe"));
    assert!(template.contains("AUTOMATIC_BISECT"));
}

#[test]
fn every_registered_resource_has_its_pipe_and_function() {
    let template = std::fs::read_to_string(template_path()).unwrap();
    for resource in fhir_pipes_enrichers::resources::RESOURCES {
        let r = resource.resource_type;
        for expected in [
            format!("\n  {r}Pipe:\n    Type: AWS::Pipes::Pipe\n"),
            format!("\n  {r}EnricherFunction:\n    Type: AWS::Serverless::Function\n"),
            format!("      CodeUri: ../target/lambda/{}/\n", resource.binary),
            format!("\n  {r}EntityType:\n"),
            format!("      - Label: {{default: {r}}}\n"),
        ] {
            assert_eq!(template.matches(&expected).count(), 1, "pipes/template.yaml: {expected:?} for {r}");
        }
    }
}
