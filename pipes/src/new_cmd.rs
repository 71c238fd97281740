//! `fhir-pipes new mapping <Resource>`: scaffolds a new mapping (see [`crate::scaffold`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::scaffold::{self, Part};

/// Arguments of `fhir-pipes new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    what: New,
}

#[derive(Debug, Subcommand)]
enum New {
    /// A mapping from a domain table to a FHIR R4 resource: the mapping module, a fixture folder
    /// with a sample input and expected output, the Lambda binary, the registry entry and the
    /// Pipe blocks of pipes/template.yaml. Refuses to overwrite anything.
    Mapping {
        /// The FHIR R4 resource type, CamelCase (e.g. `Device`, `MedicationRequest`).
        resource: String,
        /// The repository root.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Generate only these parts (repeatable); all by default.
        #[arg(long, value_enum)]
        only: Vec<Part>,
    },
}

impl NewArgs {
    /// Runs the command.
    pub fn run(&self) -> anyhow::Result<()> {
        let New::Mapping { resource, dir, only } = &self.what;
        let parts = if only.is_empty() { Part::ALL.to_vec() } else { only.clone() };
        let written = scaffold::new_mapping(dir, resource, &parts)?;
        for path in &written {
            println!("wrote {}", path.strip_prefix(dir).unwrap_or(path).display());
        }
        let names = scaffold::Names::new(resource)?;
        println!(
            "next: edit mappings/src/{}.rs, then `cargo test -p fhir-pipes-mappings {}` and \
             `BLESS=1 cargo test -p fhir-pipes-e2e --test golden` (review fixtures/{}/)",
            names.module, names.module, names.name
        );
        Ok(())
    }
}
