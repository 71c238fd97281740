//! Settings of the HealthLake target, from the Lambda's environment or the local runtime.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use fhir_pipes_core::Backoff;
use serde::Deserialize;

use crate::{client::FhirStoreClient, signer::Signer, writer::HealthLakeWriter};

/// Environment variable: the datastore's FHIR base URL (required).
pub const ENV_ENDPOINT: &str = "FHIR_PIPES_HEALTHLAKE_ENDPOINT";
/// Environment variable: the signing region (default: from the endpoint's host, else `AWS_REGION`).
pub const ENV_REGION: &str = "FHIR_PIPES_HEALTHLAKE_REGION";
/// Environment variable: most requests in flight at once (default 10).
pub const ENV_MAX_CONCURRENCY: &str = "FHIR_PIPES_HEALTHLAKE_MAX_CONCURRENCY";
/// Environment variable: longest wait for one answer, in milliseconds (default 10000).
pub const ENV_REQUEST_TIMEOUT_MS: &str = "FHIR_PIPES_HEALTHLAKE_REQUEST_TIMEOUT_MS";

/// Settings of the HealthLake target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthLakeConfig {
    /// The datastore's FHIR base URL: `https://healthlake.<region>.amazonaws.com/datastore/<id>/r4/`
    /// on AWS; any base URL locally. A missing final `/` is added.
    pub endpoint: String,
    /// The SigV4 signing region; default: the region in a HealthLake endpoint's host, else the
    /// SDK's region chain (`AWS_REGION`).
    pub region: Option<String>,
    /// Most requests in flight at once; they are for different resources (changes to one
    /// resource go one after the other, in batch order).
    pub max_concurrency: usize,
    /// Longest wait for one answer, in milliseconds (capped by the time left).
    pub request_timeout_ms: u64,
    /// Longest sleep before the first retry, in milliseconds (full jitter, doubling per retry).
    pub backoff_base_ms: u64,
    /// Longest sleep before any retry, in milliseconds.
    pub backoff_cap_ms: u64,
    /// Time kept back from the invocation's deadline to answer, in milliseconds.
    pub deadline_margin_ms: u64,
}

impl Default for HealthLakeConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: None,
            max_concurrency: 10,
            request_timeout_ms: 10_000,
            backoff_base_ms: 100,
            backoff_cap_ms: 5_000,
            deadline_margin_ms: 1_000,
        }
    }
}

/// Unusable settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No endpoint.
    #[error("the HealthLake datastore endpoint is not set ({ENV_ENDPOINT})")]
    MissingEndpoint,
    /// The endpoint is not an http(s) URL.
    #[error("the HealthLake datastore endpoint `{0}` is not an http(s) URL with a host")]
    InvalidEndpoint(String),
    /// No region to sign for.
    #[error("no signing region: set {ENV_REGION} or AWS_REGION")]
    NoRegion,
    /// A number that is not one.
    #[error("{name} must be a positive integer")]
    InvalidNumber {
        /// The setting.
        name: &'static str,
    },
    /// The credential chain has no provider.
    #[error("no AWS credential provider could be set up")]
    NoCredentials,
    /// The system's root certificates cannot be read.
    #[error("cannot load the TLS root certificates: {0}")]
    Tls(std::io::Error),
}

impl HealthLakeConfig {
    /// Reads the settings through `var` (the environment, or a map); unset variables keep
    /// their defaults.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self {
            endpoint: var(ENV_ENDPOINT).filter(|e| !e.trim().is_empty()).ok_or(ConfigError::MissingEndpoint)?,
            region: var(ENV_REGION).filter(|r| !r.trim().is_empty()),
            ..Self::default()
        };
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or(ConfigError::InvalidNumber { name }))
                .transpose()
        };
        if let Some(n) = number(ENV_MAX_CONCURRENCY)? {
            config.max_concurrency = n as usize;
        }
        if let Some(ms) = number(ENV_REQUEST_TIMEOUT_MS)? {
            config.request_timeout_ms = ms;
        }
        Ok(config)
    }

    /// The base URL, checked, ending with `/`.
    fn base_url(&self) -> Result<String, ConfigError> {
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return Err(ConfigError::MissingEndpoint);
        }
        let uri: http::Uri = endpoint.parse().map_err(|_| ConfigError::InvalidEndpoint(endpoint.to_owned()))?;
        let valid = matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() && uri.query().is_none();
        if !valid {
            return Err(ConfigError::InvalidEndpoint(endpoint.to_owned()));
        }
        Ok(if endpoint.ends_with('/') { endpoint.to_owned() } else { format!("{endpoint}/") })
    }

    /// The signing region: the setting, else the one in a `healthlake.<region>.amazonaws.com`
    /// host, else `fallback` (the SDK's chain).
    pub fn signing_region(&self, fallback: Option<&str>) -> Result<String, ConfigError> {
        if let Some(region) = &self.region {
            return Ok(region.clone());
        }
        let from_host = self
            .base_url()?
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_owned))
            .and_then(|host| Some(host.strip_prefix("healthlake.")?.split_once('.')?.0.to_owned()));
        from_host.or_else(|| fallback.map(str::to_owned)).ok_or(ConfigError::NoRegion)
    }

    /// Builds the writer with the standard AWS credential chain (environment, profile, web
    /// identity, container and instance roles; on Lambda, the function's role).
    pub async fn build(self) -> Result<HealthLakeWriter, ConfigError> {
        let (credentials, region) = self.credentials_and_region().await?;
        self.build_with(credentials, region)
    }

    /// Builds the writer with these credentials and this signing region.
    pub fn build_with(
        self,
        credentials: SharedCredentialsProvider,
        region: String,
    ) -> Result<HealthLakeWriter, ConfigError> {
        Ok(HealthLakeWriter {
            client: self.client_with(credentials, region)?,
            max_concurrency: self.max_concurrency.max(1),
            request_timeout: self.request_timeout(),
            backoff: self.backoff(),
            deadline_margin: Duration::from_millis(self.deadline_margin_ms),
        })
    }

    /// The standard credential chain and the signing region.
    pub(crate) async fn credentials_and_region(&self) -> Result<(SharedCredentialsProvider, String), ConfigError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let credentials = sdk.credentials_provider().ok_or(ConfigError::NoCredentials)?;
        let region = self.signing_region(sdk.region().map(|r| r.as_ref()))?;
        Ok((credentials, region))
    }

    /// A client of the datastore, signing with `credentials` for `region`.
    pub(crate) fn client_with(
        &self,
        credentials: SharedCredentialsProvider,
        region: String,
    ) -> Result<FhirStoreClient, ConfigError> {
        FhirStoreClient::new(self.base_url()?, Signer::new(credentials, region)).map_err(ConfigError::Tls)
    }

    /// The datastore id in a HealthLake endpoint (`…/datastore/<id>/r4/`), if it has one.
    pub fn datastore_id(&self) -> Option<String> {
        let path = self.endpoint.trim().split_once("/datastore/")?.1;
        let id = path.split('/').next().filter(|id| !id.is_empty())?;
        Some(id.to_owned())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff { base: Duration::from_millis(self.backoff_base_ms), cap: Duration::from_millis(self.backoff_cap_ms) }
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
    fn reads_the_environment_and_checks_numbers() {
        assert!(matches!(HealthLakeConfig::from_env(env(&[])), Err(ConfigError::MissingEndpoint)));
        let config = HealthLakeConfig::from_env(env(&[
            (ENV_ENDPOINT, "http://127.0.0.1:9/datastore/d1/r4"),
            (ENV_MAX_CONCURRENCY, "4"),
            (ENV_REQUEST_TIMEOUT_MS, "2500"),
        ]))
        .unwrap();
        assert_eq!((config.max_concurrency, config.request_timeout_ms), (4, 2500));
        assert_eq!(config.base_url().unwrap(), "http://127.0.0.1:9/datastore/d1/r4/");
        let error = HealthLakeConfig::from_env(env(&[(ENV_ENDPOINT, "http://x/"), (ENV_MAX_CONCURRENCY, "0")]));
        assert!(matches!(error, Err(ConfigError::InvalidNumber { name: ENV_MAX_CONCURRENCY })));
    }

    #[test]
    fn rejects_endpoints_that_are_not_http_urls() {
        for endpoint in ["healthlake.us-east-1.amazonaws.com/datastore/x/r4/", "ftp://host/r4/", "http://h/r4/?a=b"] {
            let config = HealthLakeConfig { endpoint: endpoint.to_owned(), ..HealthLakeConfig::default() };
            assert!(matches!(config.base_url(), Err(ConfigError::InvalidEndpoint(_))), "{endpoint}");
        }
    }

    #[test]
    fn signing_region_comes_from_the_setting_the_host_or_the_chain() {
        let aws = HealthLakeConfig {
            endpoint: "https://healthlake.eu-west-2.amazonaws.com/datastore/abc/r4/".to_owned(),
            ..HealthLakeConfig::default()
        };
        assert_eq!(aws.signing_region(Some("us-east-1")).unwrap(), "eu-west-2");
        let local = HealthLakeConfig { endpoint: "http://127.0.0.1:8080/datastore/abc/r4/".to_owned(), ..aws.clone() };
        assert_eq!(local.signing_region(Some("us-west-2")).unwrap(), "us-west-2");
        assert!(matches!(local.signing_region(None), Err(ConfigError::NoRegion)));
        let explicit = HealthLakeConfig { region: Some("ap-south-1".to_owned()), ..aws };
        assert_eq!(explicit.signing_region(None).unwrap(), "ap-south-1");
    }
}
