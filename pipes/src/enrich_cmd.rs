//! `fhir-pipes enrich`: the Lambda's enrichment from the command line (JSON array in, JSON
//! array out), with the same settings and environment variables as the Lambda.

use std::{
    io::{self, IsTerminal, Read, Write},
    path::PathBuf,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use fhir_pipes_enrichers::{EnrichConfig, Enricher, ErrorPolicy, lambda, sample};
use fhir_pipes_mappings::{Mapping, PatientMapping, patient::DEFAULT_MRN_SYSTEM};

/// The demo batch used when no input is given: every kind of change, one bad record.
pub const DEMO_PATIENT_BATCH: &str = include_str!("../../fixtures/patient/demo.input.json");

/// Resources with a shipped mapping.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resource {
    /// The reference `Patients` table mapping.
    Patient,
}

/// Arguments of `fhir-pipes enrich`.
#[derive(Debug, Args)]
pub struct EnrichArgs {
    /// Which mapping to run.
    pub resource: Resource,
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
        match self.resource {
            Resource::Patient => {
                let mapping = PatientMapping { mrn_system: self.mrn_system.clone() };
                self.enrich(mapping, &batch)
            }
        }
    }

    fn read_input(&self) -> anyhow::Result<String> {
        let mut batch = String::new();
        match &self.input {
            Some(path) if path.as_os_str() != "-" => {
                return std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()));
            }
            None if io::stdin().is_terminal() => {
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

    fn enrich<M: Mapping>(&self, mapping: M, batch: &str) -> anyhow::Result<()> {
        let mut config = EnrichConfig::for_resource(M::RESOURCE_TYPE);
        if let Some(source) = &self.source {
            config.source.clone_from(source);
        }
        config.skip_unchanged = self.skip_unchanged;
        config.error_policy = self.error_policy;
        let enriched = Enricher::new(mapping, config).enrich(batch)?;
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
