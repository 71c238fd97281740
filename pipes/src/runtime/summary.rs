//! What a run did, for a person (stderr) and for tests (`--summary-json`).

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Summary {
    /// Source batches read.
    pub batches: usize,
    /// Records read from the source.
    pub read: usize,
    /// Records no filter pattern matched.
    pub filtered_out: usize,
    /// Events the enrichment produced (change events and mapping-error events).
    pub enriched: usize,
    /// Unchanged MODIFYs that produced no event.
    pub skipped: usize,
    /// Records that could not be mapped (error events, or dead-lettered at enrichment).
    pub failed: usize,
    /// Events the target accepted.
    pub delivered: usize,
    /// Retries: re-deliveries, re-invocations and bisections.
    pub retried: usize,
    /// Records written to the dead-letter file.
    pub dead_lettered: usize,
    /// SQS messages that failed and were left in the queue, to come back after its visibility
    /// timeout (or go to its dead-letter queue by its redrive policy).
    #[serde(default)]
    pub returned_to_queue: usize,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_seconds: f64,
    /// Records read per second.
    pub records_per_second: f64,
    /// Where dead letters were written, when there were any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dead_letter_file: Option<String>,
}

impl Summary {
    pub(crate) fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed_seconds = elapsed.as_secs_f64();
        self.records_per_second =
            if self.elapsed_seconds > 0.0 { self.read as f64 / self.elapsed_seconds } else { 0.0 };
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} read, {} filtered out, {} enriched, {} skipped, {} failed, {} delivered, {} retried, \
             {} dead-lettered in {:.2} s ({:.0} records/s)",
            self.read,
            self.filtered_out,
            self.enriched,
            self.skipped,
            self.failed,
            self.delivered,
            self.retried,
            self.dead_lettered,
            self.elapsed_seconds,
            self.records_per_second
        )?;
        if self.returned_to_queue > 0 {
            write!(f, "; {} left in the queue for redelivery", self.returned_to_queue)?;
        }
        if let Some(file) = &self.dead_letter_file {
            write!(f, "; dead letters in {file}")?;
        }
        Ok(())
    }
}
