//! Counts of an invocation, and their CloudWatch embedded-metric-format (EMF) line.

use serde_json::json;

/// CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "FhirPipes";

/// What happened to the records of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records received.
    pub records: usize,
    /// PUT events emitted.
    pub puts: usize,
    /// DELETE events emitted.
    pub deletes: usize,
    /// MODIFYs that did not change the FHIR resource (no event).
    pub skipped: usize,
    /// Records that could not be mapped (error events).
    pub failed: usize,
    /// Size of the response in bytes.
    pub response_bytes: usize,
}

impl Counts {
    /// Records that became a PUT or DELETE.
    pub fn mapped(&self) -> usize {
        self.puts + self.deletes
    }

    /// One EMF JSON line (no trailing newline); CloudWatch turns it into metrics when the
    /// Lambda prints it to stdout.
    pub fn emf_line(&self, resource_type: &str, timestamp_ms: u128, duration_ms: f64) -> String {
        let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});
        json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Resource"]],
                    "Metrics": [
                        metric("Records", "Count"),
                        metric("Mapped", "Count"),
                        metric("Skipped", "Count"),
                        metric("Failed", "Count"),
                        metric("ResponseBytes", "Bytes"),
                        metric("EnrichDuration", "Milliseconds"),
                    ],
                }],
            },
            "Resource": resource_type,
            "Records": self.records,
            "Mapped": self.mapped(),
            "Skipped": self.skipped,
            "Failed": self.failed,
            "ResponseBytes": self.response_bytes,
            "EnrichDuration": duration_ms,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_metric_it_carries() {
        let counts = Counts { records: 5, puts: 2, deletes: 1, skipped: 1, failed: 1, response_bytes: 10 };
        let line: serde_json::Value = serde_json::from_str(&counts.emf_line("Patient", 1, 2.5)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(line["Resource"], "Patient");
        assert_eq!((line["Records"].as_u64(), line["Mapped"].as_u64()), (Some(5), Some(3)));
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name} declared but not set");
        }
    }
}
