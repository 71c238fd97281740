//! The `fhir-pipes` command line.

use clap::{Parser, Subcommand};

use fhir_pipes::{
    enrich_cmd::{EnrichArgs, SampleArgs},
    new_cmd::NewArgs,
    run_cmd::{FilterArgs, INVALID_PATTERN_EXIT_CODE, RunArgs},
};

/// DynamoDB stream changes to FHIR R4 events, locally.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrich a batch of stream records into FHIR event envelopes, as the Lambda does.
    Enrich(EnrichArgs),
    /// Run a pipe of the template locally: records or a DynamoDB stream -> filter -> enrichment -> target.
    Run(Box<RunArgs>),
    /// Print the records an event pattern matches (NDJSON), like `aws events test-event-pattern`.
    Filter(FilterArgs),
    /// Print a generated batch of fake stream records (for benchmarks and load tests).
    Sample(SampleArgs),
    /// Generate the files of something new, e.g. `new mapping Device`.
    New(NewArgs),
}

fn main() -> anyhow::Result<()> {
    fhir_pipes_core::logging::init_cli_logging();
    match Cli::parse().command {
        Command::Enrich(args) => args.run(),
        Command::Sample(args) => args.run(),
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(args.run())
        }
        Command::Filter(args) => match args.run()? {
            Ok(()) => Ok(()),
            Err(message) => {
                eprintln!("fhir-pipes filter: {message}");
                std::process::exit(INVALID_PATTERN_EXIT_CODE);
            }
        },
        Command::New(args) => args.run(),
    }
}
