//! SigV4 signing (service `healthlake`) with credentials from a provider of the standard chain,
//! kept until shortly before they expire.

use std::time::{Duration, SystemTime};

use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use bytes::Bytes;

/// The SigV4 service name of HealthLake.
const SERVICE: &str = "healthlake";

/// Credentials this close to their expiry are fetched anew.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Why a request could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignError {
    /// The credential chain gave nothing.
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// The signer refused the request.
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// Signs requests for one region.
pub(crate) struct Signer {
    provider: SharedCredentialsProvider,
    region: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("region", &self.region).finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(provider: SharedCredentialsProvider, region: String) -> Self {
        Self { provider, region, cached: tokio::sync::Mutex::new(None) }
    }

    async fn credentials(&self) -> Result<Credentials, SignError> {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| c.expiry().is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
        if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let credentials =
            self.provider.provide_credentials().await.map_err(|e| SignError::Credentials(e.to_string()))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// Adds the `Authorization`, `x-amz-date` (and `x-amz-security-token`) headers to `request`,
    /// whose URI is `uri`.
    pub(crate) async fn sign(&self, request: &mut http::Request<Bytes>, uri: &str) -> Result<(), SignError> {
        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError::Signing(e.to_string()))?
            .into();
        let headers = request.headers().iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable =
            SignableRequest::new(request.method().as_str(), uri, headers, SignableBody::Bytes(request.body()))
                .map_err(|e| SignError::Signing(e.to_string()))?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| SignError::Signing(e.to_string()))?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}
