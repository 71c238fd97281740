//! Settings of the hydrator, from the Lambda's environment or the local runtime.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;

use super::Hydrator;
use crate::{ConfigError, HealthLakeConfig};

/// Environment variable: the events' `source` (default `HealthLake`).
pub const ENV_SOURCE: &str = "FHIR_PIPES_HYDRATOR_SOURCE";
/// Environment variable: most search pages read per resource type and batch (default 100).
pub const ENV_MAX_PAGES: &str = "FHIR_PIPES_HYDRATOR_MAX_PAGES";
/// Environment variable: how far before the earliest signal a search starts, in seconds
/// (default 30).
pub const ENV_SEARCH_MARGIN_SECONDS: &str = "FHIR_PIPES_HYDRATOR_SEARCH_MARGIN_SECONDS";

/// Pipes' limit on an enrichment's answer.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// EventBridge's limit on one entry (the event's detail plus its source and detail-type).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Settings of the hydrator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HydratorConfig {
    /// The datastore and how to talk to it: the HealthLake target's settings (endpoint,
    /// region, concurrency, timeouts, backoff).
    pub store: HealthLakeConfig,
    /// The events' `source`.
    pub source: String,
    /// Most pages one search may read (of `page_size` resources each); a search with more fails
    /// the batch, so nothing is skipped.
    pub max_pages: u32,
    /// `_count` of a search page (HealthLake's client caps it at 100).
    pub page_size: u32,
    /// How far before the earliest hidden-id signal of a type the search starts: CloudTrail's
    /// times are whole seconds and the clocks of the two services are not the same.
    pub search_margin_seconds: u64,
    /// The answer's size limit; past it, events carry references instead of resources.
    pub max_response_bytes: usize,
    /// One event's size limit (what fits a bus entry, with room for source and detail-type);
    /// a larger resource is carried by reference.
    pub max_event_bytes: usize,
}

impl Default for HydratorConfig {
    fn default() -> Self {
        Self {
            store: HealthLakeConfig::default(),
            source: fhir_pipes_cdc::event::DEFAULT_SOURCE.to_owned(),
            max_pages: 100,
            page_size: 100,
            search_margin_seconds: 30,
            // Room for the array's brackets and commas, counted exactly, and a margin.
            max_response_bytes: MAX_RESPONSE_BYTES - 64 * 1024,
            max_event_bytes: MAX_ENTRY_BYTES - 1024,
        }
    }
}

impl HydratorConfig {
    /// Reads the settings through `var` (the environment, or a map): the HealthLake target's
    /// variables for the store, and the hydrator's own. Unset variables keep their defaults.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self { store: HealthLakeConfig::from_env(&var)?, ..Self::default() };
        if let Some(source) = var(ENV_SOURCE).filter(|s| !s.trim().is_empty()) {
            config.source = source;
        }
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or(ConfigError::InvalidNumber { name }))
                .transpose()
        };
        if let Some(pages) = number(ENV_MAX_PAGES)? {
            config.max_pages = u32::try_from(pages).map_err(|_| ConfigError::InvalidNumber { name: ENV_MAX_PAGES })?;
        }
        if let Some(seconds) = number(ENV_SEARCH_MARGIN_SECONDS)? {
            config.search_margin_seconds = seconds;
        }
        Ok(config)
    }

    /// Builds the hydrator with the standard AWS credential chain.
    pub async fn build(self) -> Result<Hydrator, ConfigError> {
        let (credentials, region) = self.store.credentials_and_region().await?;
        self.build_with(credentials, region)
    }

    /// Builds the hydrator with these credentials and this signing region.
    pub fn build_with(self, credentials: SharedCredentialsProvider, region: String) -> Result<Hydrator, ConfigError> {
        Ok(Hydrator {
            client: self.store.client_with(credentials, region)?,
            datastore_id: self.store.datastore_id(),
            max_concurrency: self.store.max_concurrency.max(1),
            request_timeout: self.store.request_timeout(),
            backoff: self.store.backoff(),
            deadline_margin: Duration::from_millis(self.store.deadline_margin_ms),
            source: self.source,
            max_pages: self.max_pages.max(1),
            page_size: self.page_size.clamp(1, 100),
            search_margin: Duration::from_secs(self.search_margin_seconds),
            max_response_bytes: self.max_response_bytes,
            max_event_bytes: self.max_event_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stores_and_its_own_settings() {
        let vars = [
            ("FHIR_PIPES_HEALTHLAKE_ENDPOINT", "https://healthlake.us-east-1.amazonaws.com/datastore/abc123/r4/"),
            (ENV_MAX_PAGES, "7"),
            (ENV_SOURCE, "ClinicalStore"),
        ];
        let var = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        let config = HydratorConfig::from_env(var).unwrap();
        assert_eq!((config.max_pages, config.source.as_str(), config.search_margin_seconds), (7, "ClinicalStore", 30));
        assert_eq!(config.store.datastore_id().as_deref(), Some("abc123"));
        let bad = |name: &str| if name == ENV_SEARCH_MARGIN_SECONDS { Some("soon".to_owned()) } else { var(name) };
        assert!(matches!(
            HydratorConfig::from_env(bad),
            Err(ConfigError::InvalidNumber { name: ENV_SEARCH_MARGIN_SECONDS })
        ));
    }
}
