//! Settings of the publisher, read once from the Lambda's environment.

use std::time::Duration;

use aws_config::SdkConfig;
use fhir_pipes_core::Backoff;

use crate::{
    Publisher,
    bus::{EventBridgeBus, EventBus},
    dedup::{DedupTable, DynamoDbDedupTable},
};

/// Environment variable: the custom bus's name or ARN (required).
pub const ENV_EVENT_BUS: &str = "FHIR_PIPES_PUBLISHER_EVENT_BUS";
/// Environment variable: the events' `Source` (default [`DEFAULT_EVENT_SOURCE`]).
pub const ENV_SOURCE: &str = "FHIR_PIPES_PUBLISHER_SOURCE";
/// Environment variable: the de-duplication table's name (required).
pub const ENV_DEDUP_TABLE: &str = "FHIR_PIPES_PUBLISHER_DEDUP_TABLE";
/// Environment variable: days a published key is remembered (default 7).
pub const ENV_DEDUP_TTL_DAYS: &str = "FHIR_PIPES_PUBLISHER_DEDUP_TTL_DAYS";

/// `Source` of the events unless configured otherwise.
pub const DEFAULT_EVENT_SOURCE: &str = "fhir-pipes.healthlake";
/// Longest TTL accepted, in days (ten years).
const MAX_TTL_DAYS: u32 = 3650;

/// Settings of the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// The custom bus's name or ARN.
    pub event_bus: String,
    /// `Source` of every event (1–256 characters, not `aws.`-prefixed).
    pub source: String,
    /// The de-duplication table (partition key `idempotencyKey` S, TTL on `expiresAt`).
    pub dedup_table: String,
    /// Days a published key is remembered: a change signalled again later than this is
    /// published again. Longer than the SQS queue's retention, so a retried message stays
    /// de-duplicated.
    pub dedup_ttl_days: u32,
    /// Most tries of one entry (or one table call) within an invocation.
    pub max_attempts: u32,
    /// Longest sleep before the first retry, in milliseconds (full jitter, doubling per retry).
    pub backoff_base_ms: u64,
    /// Longest sleep before any retry, in milliseconds.
    pub backoff_cap_ms: u64,
    /// Time kept back from the invocation's deadline to answer, in milliseconds.
    pub deadline_margin_ms: u64,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            event_bus: String::new(),
            source: DEFAULT_EVENT_SOURCE.to_owned(),
            dedup_table: String::new(),
            dedup_ttl_days: 7,
            max_attempts: 8,
            backoff_base_ms: 100,
            backoff_cap_ms: 5_000,
            deadline_margin_ms: 1_000,
        }
    }
}

/// Unusable settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No bus.
    #[error("the event bus is not set ({ENV_EVENT_BUS})")]
    MissingEventBus,
    /// No table.
    #[error("the de-duplication table is not set ({ENV_DEDUP_TABLE})")]
    MissingDedupTable,
    /// A `Source` EventBridge refuses.
    #[error("the event source ({ENV_SOURCE}) must be 1 to 256 characters and not start with `aws.`")]
    InvalidSource,
    /// A number that is not one.
    #[error("{name} must be a positive integer (at most {max})")]
    InvalidNumber {
        /// The setting.
        name: &'static str,
        /// Its largest value.
        max: u64,
    },
}

impl PublisherConfig {
    /// Reads the settings through `var` (the environment, or a map); unset variables keep
    /// their defaults. `AWS_ENDPOINT_URL`, `AWS_REGION` and credentials are the SDK's own.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut config = Self {
            event_bus: set(ENV_EVENT_BUS).ok_or(ConfigError::MissingEventBus)?,
            dedup_table: set(ENV_DEDUP_TABLE).ok_or(ConfigError::MissingDedupTable)?,
            ..Self::default()
        };
        if let Some(source) = set(ENV_SOURCE) {
            config.source = source;
        }
        if let Some(days) = set(ENV_DEDUP_TTL_DAYS) {
            let invalid = ConfigError::InvalidNumber { name: ENV_DEDUP_TTL_DAYS, max: MAX_TTL_DAYS.into() };
            config.dedup_ttl_days = days.parse::<u32>().map_err(|_| invalid.clone())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.event_bus.trim().is_empty() {
            return Err(ConfigError::MissingEventBus);
        }
        if self.dedup_table.trim().is_empty() {
            return Err(ConfigError::MissingDedupTable);
        }
        let source_len = self.source.chars().count();
        if source_len == 0 || source_len > 256 || self.source.starts_with("aws.") {
            return Err(ConfigError::InvalidSource);
        }
        if self.dedup_ttl_days == 0 || self.dedup_ttl_days > MAX_TTL_DAYS {
            return Err(ConfigError::InvalidNumber { name: ENV_DEDUP_TTL_DAYS, max: MAX_TTL_DAYS.into() });
        }
        Ok(())
    }

    /// Builds the publisher on the SDK's default chain (region, credentials, and
    /// `AWS_ENDPOINT_URL` for local runs; on Lambda, the function's role).
    pub async fn build(self) -> Result<Publisher, ConfigError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        self.build_with_sdk(&sdk)
    }

    /// Builds the publisher with these SDK settings.
    pub fn build_with_sdk(self, sdk: &SdkConfig) -> Result<Publisher, ConfigError> {
        let bus = EventBridgeBus::new(aws_sdk_eventbridge::Client::new(sdk), self.event_bus.clone());
        let table = DynamoDbDedupTable::new(aws_sdk_dynamodb::Client::new(sdk), self.dedup_table.clone());
        self.build_with(bus, table)
    }

    /// Builds the publisher over this bus and table.
    pub fn build_with<B: EventBus, T: DedupTable>(self, bus: B, table: T) -> Result<Publisher<B, T>, ConfigError> {
        self.validate()?;
        Ok(Publisher {
            bus,
            table,
            source: self.source,
            ttl: Duration::from_secs(u64::from(self.dedup_ttl_days) * 86_400),
            max_attempts: self.max_attempts.max(1),
            backoff: Backoff {
                base: Duration::from_millis(self.backoff_base_ms),
                cap: Duration::from_millis(self.backoff_cap_ms),
            },
            deadline_margin: Duration::from_millis(self.deadline_margin_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn reads_the_environment_with_defaults_and_checks_it() {
        assert_eq!(PublisherConfig::from_env(env(&[])), Err(ConfigError::MissingEventBus));
        assert_eq!(PublisherConfig::from_env(env(&[(ENV_EVENT_BUS, "b")])), Err(ConfigError::MissingDedupTable));
        let config = PublisherConfig::from_env(env(&[(ENV_EVENT_BUS, "bus"), (ENV_DEDUP_TABLE, " table ")])).unwrap();
        assert_eq!(
            (config.event_bus.as_str(), config.dedup_table.as_str(), config.source.as_str(), config.dedup_ttl_days),
            ("bus", "table", DEFAULT_EVENT_SOURCE, 7)
        );
        let config = PublisherConfig::from_env(env(&[
            (ENV_EVENT_BUS, "arn:aws:events:us-east-1:123456789012:event-bus/cdc"),
            (ENV_DEDUP_TABLE, "t"),
            (ENV_SOURCE, "my.healthlake"),
            (ENV_DEDUP_TTL_DAYS, "14"),
        ]))
        .unwrap();
        assert_eq!((config.source.as_str(), config.dedup_ttl_days), ("my.healthlake", 14));
        let base = [(ENV_EVENT_BUS, "b"), (ENV_DEDUP_TABLE, "t")];
        for days in ["0", "-1", "seven", "3651"] {
            let error = PublisherConfig::from_env(env(&[base[0], base[1], (ENV_DEDUP_TTL_DAYS, days)])).unwrap_err();
            assert!(matches!(error, ConfigError::InvalidNumber { name: ENV_DEDUP_TTL_DAYS, .. }), "{days}");
        }
        let error = PublisherConfig::from_env(env(&[base[0], base[1], (ENV_SOURCE, "aws.healthlake")])).unwrap_err();
        assert_eq!(error, ConfigError::InvalidSource);
    }
}
