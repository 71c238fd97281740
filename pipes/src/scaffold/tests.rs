use super::*;

/// A scratch copy of the files the scaffold edits (removed with the temporary directory).
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for file in [LIB, REGISTRY, TEMPLATE] {
            let target = root.path().join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(workspace.join(file), target).unwrap();
        }
        Scratch(root)
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.root().join(file)).unwrap()
    }
}

#[test]
fn names_of_one_and_several_words() {
    let names = Names::new("MedicationRequest").unwrap();
    assert_eq!(
        (names.name.as_str(), names.module.as_str(), names.table.as_str()),
        ("medication-request", "medication_request", "MedicationRequests")
    );
    assert_eq!(Names::new("Device").unwrap().name, "device");
    for bad in ["device", "Gadget", "Device!", "", "../Device"] {
        assert!(matches!(Names::new(bad), Err(ScaffoldError::UnknownResource(_))), "{bad}");
    }
}

#[test]
fn generates_every_file_and_edit() {
    let scratch = Scratch::new();
    let written = new_mapping(scratch.root(), "MedicationRequest", &Part::ALL).unwrap();
    assert_eq!(written.len(), 8, "{written:?}");

    let mapping = scratch.read("mappings/src/medication_request.rs");
    assert!(mapping.contains("pub struct MedicationRequestMapping;"));
    assert!(mapping.contains("const RESOURCE_TYPE: &'static str = \"MedicationRequest\";"));
    assert!(mapping.contains("use fhir_sdk::r4b::resources::MedicationRequest;"));
    assert!(!mapping.contains("{{"), "unrendered placeholder");

    let lib = scratch.read(LIB);
    let position = |line: &str| lib.lines().position(|l| l == line).unwrap_or_else(|| panic!("no {line}"));
    assert!(position("pub mod id;") < position("pub mod medication_request;"));
    assert!(position("pub mod medication_request;") < position("pub mod observation;"));
    assert!(
        position("pub use medication_request::MedicationRequestMapping;")
            < position("pub use observation::ObservationMapping;")
    );

    let registry = scratch.read(REGISTRY);
    let entry = registry.find("name: \"medication-request\",").unwrap();
    assert!(entry < registry.find(REGISTRY_MARKER).unwrap());
    assert!(registry.contains("binary: \"medication-request-enricher\","));
    assert!(registry.contains("build: |settings| boxed(MedicationRequestMapping, settings),"));
    let import = &registry[registry.find("use fhir_pipes_mappings::{").unwrap()..];
    let import = &import[..import.find("};").unwrap()];
    assert!(import.contains("Mapping, MedicationRequestMapping, ObservationMapping"), "{import}");
    assert!(import.lines().all(|line| line.len() <= 120), "wrapped as rustfmt does: {import}");

    let binary = scratch.read("enrichers/src/bin/medication-request-enricher.rs");
    assert!(binary.contains("lambda::serve(MedicationRequestMapping).await"));

    let input: serde_json::Value =
        serde_json::from_str(&scratch.read("fixtures/medication-request/sample.input.json")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&scratch.read("fixtures/medication-request/sample.expected.json")).unwrap();
    assert_eq!(input[0]["eventID"], expected[0]["correlationId"]);
    assert_eq!(input[1]["eventID"], expected[1]["correlationId"]);
    assert_ne!(input[0]["eventID"], input[1]["eventID"]);
    assert_eq!(
        expected[0]["details"]["entity"],
        serde_json::json!({"resourceType":"MedicationRequest","id":"medication-request-0001"})
    );
    assert_eq!(expected[1]["details"]["command"], "DELETE");

    let template = scratch.read(TEMPLATE);
    for expected in [
        "      - Label: {default: MedicationRequest}\n",
        "\n  MedicationRequestTableStreamArn:\n",
        "\n  MedicationRequestTableHasKmsKey: ",
        "\n  MedicationRequestEnricherFunction:\n",
        "      CodeUri: ../target/lambda/medication-request-enricher/\n",
        "\n  MedicationRequestPipe:\n",
        "\n  MedicationRequestPipeArn:\n",
        "\n  MedicationRequestEnabled: !Not [!Equals [!Ref MedicationRequestTableStreamArn, '']]\n",
    ] {
        assert_eq!(template.matches(expected).count(), 1, "{expected:?}");
    }
    // Deployed only when its stream ARN is given: 5 resources and 4 outputs carry the condition.
    assert_eq!(template.matches("    Condition: MedicationRequestEnabled\n").count(), 9);
    // Each block lands in its own section.
    let section = |name: &str| template.find(&format!("\n{name}:\n")).unwrap();
    let at = |text: &str| template.find(text).unwrap();
    assert!(at("{default: MedicationRequest}") < section("Parameters"));
    assert!((section("Parameters")..section("Conditions")).contains(&at("MedicationRequestTableStreamArn:")));
    assert!((section("Conditions")..section("Globals")).contains(&at("MedicationRequestTableHasKmsKey:")));
    assert!((section("Resources")..section("Outputs")).contains(&at("MedicationRequestPipe:")));
    assert!(at("MedicationRequestPipeArn:") > section("Outputs"));
}

#[test]
fn refuses_to_overwrite_and_writes_nothing() {
    let scratch = Scratch::new();
    new_mapping(scratch.root(), "Device", &[Part::Template]).unwrap();
    let template = scratch.read(TEMPLATE);
    let error = new_mapping(scratch.root(), "Device", &Part::ALL).unwrap_err();
    let ScaffoldError::AlreadyExists(present) = &error else { panic!("{error}") };
    assert_eq!(present, &["pipes/template.yaml (DevicePipe)".to_owned()]);
    assert!(!scratch.root().join("mappings/src/device.rs").exists(), "nothing is written when anything is in the way");
    assert_eq!(scratch.read(TEMPLATE), template);
    assert!(error.to_string().contains("refusing to overwrite"));

    std::fs::write(scratch.root().join("mappings/src/device.rs"), "// mine").unwrap();
    let ScaffoldError::AlreadyExists(present) = new_mapping(scratch.root(), "Device", &[Part::Mapping]).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(present, &["mappings/src/device.rs".to_owned()]);
    assert_eq!(scratch.read("mappings/src/device.rs"), "// mine");
}

#[test]
fn shipped_resources_are_refused() {
    let scratch = Scratch::new();
    let error = new_mapping(scratch.root(), "Patient", &[Part::Mapping, Part::Registry]).unwrap_err();
    let ScaffoldError::AlreadyExists(present) = error else { panic!() };
    assert_eq!(present.len(), 2, "the pub mod line and the registry entry: {present:?}");
}

#[test]
fn a_directory_that_is_not_the_repository_is_named() {
    let error = new_mapping(Path::new("/nonexistent"), "Device", &Part::ALL).unwrap_err();
    assert!(matches!(error, ScaffoldError::NotTheRepository(_, LIB)), "{error}");
}
