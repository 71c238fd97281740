//! `fhir-pipes enrich`: the Lambda's enrichment from the command line (JSON array in, JSON
//! array out), with the same settings and environment variables as the Lambda.

use std::{
    io::{self, IsTerminal, Read, Write},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use fhir_pipes_enrichers::{ErrorPolicy, lambda, resources, sample};
use fhir_pipes_mappings::patient::DEFAULT_MRN_SYSTEM;

/// The demo batch used when no input is given: every kind of change, one bad record.
pub const DEMO_PATIENT_BATCH: &str = include_str!("../../fixtures/patient/demo.input.json");

/// Resources whose sample tables `fhir-pipes sample` can imitate.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resource {
    /// The reference `Patients` table mapping.
    Patient,
}

/// A mapping of the registry (`enrichers/src/resources.rs`), by name, FHIR type or binary.
fn registered(name: &str) -> Result<&'static resources::Resource, String> {
    resources::find(name).ok_or_else(|| format!("no mapping `{name}`; known: {}", resources::names().join(", ")))
}

/// Arguments of `fhir-pipes enrich`.
#[derive(Debug, Args)]
pub struct EnrichArgs {
    /// Which mapping to run: a name of the registry (patient, practitioner, organization,
    /// encounter, observation, condition, or one added with `fhir-pipes new mapping`).
    #[arg(value_parser = registered)]
    pub resource: &'static resources::Resource,
    /// A JSON array of stream records; `-` for stdin. Without it: stdin when piped, else the embedded demo batch.
    pub input: Option<PathBuf>,
    /// Write the events here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The envelope's `source`.
    #[arg(long, env = lambda::ENV_SOURCE)]
    pub source: Option<String>,
    /// `identifier.system` of the Patient MRN.
    #[arg(long, env = lambda::ENV_MRN_SYSTEM, default_value = DEFAULT_MRN_SYSTEM)]
    pub mrn_system: String,
    /// Drop MODIFYs that leave the FHIR resource unchanged.
    #[arg(long, env = lambda::ENV_SKIP_UNCHANGED, default_value = "true", action = clap::ArgAction::Set)]
    pub skip_unchanged: bool,
    /// What a record that cannot be mapped becomes: `emit-error-event` or `fail-batch`.
    #[arg(long, env = lambda::ENV_ERROR_POLICY, default_value = "emit-error-event")]
    pub error_policy: ErrorPolicy,
}

impl EnrichArgs {
    /// Runs the command.
    pub fn run(&self) -> anyhow::Result<()> {
        let batch = self.read_input()?;
        self.enrich(&batch)
    }

    /// The Lambda environment variable `name` as these arguments set it.
    fn setting(&self, name: &str) -> Option<String> {
        match name {
            lambda::ENV_SOURCE => self.source.clone(),
            lambda::ENV_MRN_SYSTEM => Some(self.mrn_system.clone()),
            lambda::ENV_SKIP_UNCHANGED => Some(self.skip_unchanged.to_string()),
            lambda::ENV_ERROR_POLICY => Some(self.error_policy.to_string()),
            _ => None,
        }
    }

    fn read_input(&self) -> anyhow::Result<String> {
        let mut batch = String::new();
        match &self.input {
            Some(path) if path.as_os_str() != "-" => {
                return std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()));
            }
            None if io::stdin().is_terminal() => {
                anyhow::ensure!(
                    self.resource.name == "patient",
                    "no input given: pass a file of {} stream records or pipe one in",
                    self.resource.resource_type
                );
                eprintln!("fhir-pipes: no input given, enriching the embedded demo batch (pass a file or pipe one in)");
                return Ok(DEMO_PATIENT_BATCH.to_owned());
            }
            _ => io::stdin().read_to_string(&mut batch).context("cannot read stdin")?,
        };
        anyhow::ensure!(
            !batch.trim().is_empty(),
            "no input on stdin: pipe in a JSON array of stream records, or pass a file"
        );
        Ok(batch)
    }

    fn enrich(&self, batch: &str) -> anyhow::Result<()> {
        let enricher = (self.resource.build)(&|name| self.setting(name)).map_err(anyhow::Error::msg)?;
        let enriched = enricher.enrich(batch)?;
        let mut out: Box<dyn Write> = match &self.output {
            Some(path) => Box::new(io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => Box::new(io::BufWriter::new(io::stdout().lock())),
        };
        // One event per line keeps the array valid JSON and easy to read or grep.
        out.write_all(b"[")?;
        for (index, event) in enriched.events.iter().enumerate() {
            out.write_all(if index == 0 { b"\n" } else { b",\n" })?;
            out.write_all(event.get().as_bytes())?;
        }
        out.write_all(if enriched.events.is_empty() { b"]\n" } else { b"\n]\n" })?;
        out.flush()?;
        let counts = enriched.counts;
        eprintln!(
            "fhir-pipes: {} records: {} mapped ({} PUT, {} DELETE), {} unchanged skipped, {} failed",
            counts.records,
            counts.mapped(),
            counts.puts,
            counts.deletes,
            counts.skipped,
            counts.failed
        );
        Ok(())
    }
}

/// Arguments of `fhir-pipes sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Which resource's table to imitate.
    pub resource: Resource,
    /// How many records (Pipes sends at most 10,000 per batch; 5,000 is about 5.4 MB).
    #[arg(long, default_value_t = 5_000)]
    pub records: usize,
}

impl SampleArgs {
    /// Prints the batch to stdout.
    pub fn run(&self) -> anyhow::Result<()> {
        let batch = match self.resource {
            Resource::Patient => sample::patient_batch(self.records),
        };
        let mut out = io::stdout().lock();
        out.write_all(batch.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_come_from_the_registry() {
        assert_eq!(registered("Encounter").unwrap().binary, "encounter-enricher");
        assert_eq!(registered("observation-enricher").unwrap().resource_type, "Observation");
        assert!(registered("device").unwrap_err().contains("patient, practitioner"));
    }

    #[test]
    fn arguments_become_the_lambda_settings() {
        let args = EnrichArgs {
            resource: registered("condition").unwrap(),
            input: None,
            output: None,
            source: Some("ClinicConditions".to_owned()),
            mrn_system: DEFAULT_MRN_SYSTEM.to_owned(),
            skip_unchanged: false,
            error_policy: ErrorPolicy::FailBatch,
        };
        let enricher = (args.resource.build)(&|name| args.setting(name)).unwrap();
        let batch = r#"[{"eventID":"e1","eventName":"REMOVE","dynamodb":{"Keys":{"id":{"S":"c1"}}}}]"#;
        let event = String::from_utf8(enricher.enrich(batch).unwrap().to_json()).unwrap();
        assert!(event.contains(r#""source":"ClinicConditions""#), "{event}");
        assert!(event.contains(r#""entity":{"resourceType":"Condition","id":"c1"}"#), "{event}");
        assert_eq!(args.setting(lambda::ENV_ERROR_POLICY).as_deref(), Some("fail-batch"));
        assert_eq!(args.setting(lambda::ENV_SKIP_UNCHANGED).as_deref(), Some("false"));
    }
}
