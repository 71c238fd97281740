//! SDK settings shared by the AWS sources and targets of the local runtime.

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// Whether the SDK retries a failed call itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkRetries {
    /// The SDK's standard retries (sources: a read may simply be tried again).
    Standard,
    /// One attempt per call: the runtime's own backoff loop retries deliveries.
    Disabled,
}

/// Loads the SDK settings: the default credential and region chain, an `endpoint_url` (e.g. a moto
/// server) and a `region` when given. With an endpoint URL and no credentials in the environment,
/// static test credentials are used so that nothing needs an AWS account.
pub async fn sdk_config(endpoint_url: Option<&str>, region: Option<&str>, retries: SdkRetries) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if retries == SdkRetries::Disabled {
        loader = loader.retry_config(RetryConfig::disabled());
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(endpoint_url) = endpoint_url {
        loader = loader.endpoint_url(endpoint_url);
        if !credentials_configured() {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "fhir-pipes-local",
            ));
        }
        if region.is_none()
            && std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            // The region local names (ARNs of the resolved template) use.
            loader = loader.region(Region::new(crate::template::LOCAL_REGION));
        }
    }
    loader.load().await
}

/// The AWS settings a local Lambda binary gets in place of a function's region and role, as
/// [`sdk_config`] resolves them for this run: its region, its endpoint, and the credentials
/// themselves (as Lambda hands a role's keys to a function; a profile, SSO or a web identity
/// are resolved here, once: session credentials are not refreshed for the binary).
pub async fn lambda_environment(endpoint_url: Option<&str>, region: Option<&str>) -> Vec<(String, String)> {
    let sdk = sdk_config(endpoint_url, region, SdkRetries::Standard).await;
    let mut environment = Vec::new();
    if let Some(region) = sdk.region() {
        environment.push(("AWS_REGION".to_owned(), region.to_string()));
    }
    if let Some(endpoint_url) = endpoint_url {
        environment.push(("AWS_ENDPOINT_URL".to_owned(), endpoint_url.to_owned()));
    }
    let credentials = match sdk.credentials_provider() {
        Some(provider) => provider.provide_credentials().await.map_err(|e| e.to_string()),
        None => Err("no credentials provider".to_owned()),
    };
    match credentials {
        Ok(credentials) => {
            environment.push(("AWS_ACCESS_KEY_ID".to_owned(), credentials.access_key_id().to_owned()));
            environment.push(("AWS_SECRET_ACCESS_KEY".to_owned(), credentials.secret_access_key().to_owned()));
            if let Some(token) = credentials.session_token() {
                environment.push(("AWS_SESSION_TOKEN".to_owned(), token.to_owned()));
            }
        }
        Err(error) => tracing::warn!(%error, "no AWS credentials for the enricher binary: its AWS calls will fail"),
    }
    environment
}

/// True when the environment names credentials (keys, a profile or a web identity); a shared
/// credentials file alone is not looked at.
fn credentials_configured() -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
}

/// What the runtime needs to know about a failed SDK call, without any request content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// Throttling, a 5xx, a timeout or a connection error: worth retrying.
    pub retryable: bool,
    /// The credentials were refused (HTTP 401/403, an access-denied or bad-token code): no
    /// request of this run can pass until someone fixes them.
    pub denied: bool,
    /// The error code and HTTP status, or the kind of transport failure.
    pub summary: String,
}

/// Classifies a failed SDK call. The summary holds the AWS error code and HTTP status, never the
/// service's message (it may quote request content).
pub fn classify<E: ProvideErrorMetadata>(operation: &str, error: &SdkError<E, HttpResponse>) -> CallFailure {
    let mut denied = false;
    let (retryable, what) = match error {
        SdkError::TimeoutError(_) => (true, "timed out".to_owned()),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_io() {
                "connection error"
            } else if failure.is_timeout() {
                "timed out"
            } else {
                "dispatch failure"
            };
            (true, kind.to_owned())
        }
        SdkError::ResponseError(_) => (true, "unreadable response".to_owned()),
        SdkError::ConstructionFailure(_) => (false, "request could not be built".to_owned()),
        _ => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            let code = error.code();
            let retryable = status.is_some_and(|s| s >= 500 || s == 429)
                || code.is_some_and(|c| THROTTLING_CODES.contains(&c) || c.contains("Throttl"));
            denied = status.is_some_and(|s| s == 401 || s == 403) || code.is_some_and(|c| DENIED_CODES.contains(&c));
            let status = status.map_or_else(|| "no status".to_owned(), |s| format!("HTTP {s}"));
            (retryable, format!("{} ({status})", code.unwrap_or("unknown error")))
        }
    };
    CallFailure { retryable, denied, summary: format!("{operation}: {what}") }
}

/// Error codes AWS uses for refused credentials (many come with HTTP 400).
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "NotAuthorized",
];

/// Error codes AWS uses for throttling and transient faults.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalException",
    "InternalServerError",
];

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::{error::ErrorMetadata, operation::send_message::SendMessageError};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service_error(status: u16, code: &str) -> SdkError<SendMessageError, HttpResponse> {
        let error = SendMessageError::generic(ErrorMetadata::builder().code(code).message("quoted content").build());
        SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()))
    }

    #[test]
    fn throttling_and_5xx_are_retryable_other_4xx_are_not() {
        assert!(classify("SendMessage", &service_error(503, "ServiceUnavailable")).retryable);
        assert!(classify("SendMessage", &service_error(500, "Whatever")).retryable);
        assert!(classify("SendMessage", &service_error(400, "ThrottlingException")).retryable);
        assert!(classify("SendMessage", &service_error(429, "TooManyRequests")).retryable);
        assert!(!classify("SendMessage", &service_error(400, "InvalidParameterValue")).retryable);
        assert!(!classify("SendMessage", &service_error(404, "QueueDoesNotExist")).retryable);
        let denied = classify("SendMessage", &service_error(403, "AccessDenied"));
        assert!(!denied.retryable);
        assert_eq!(denied.summary, "SendMessage: AccessDenied (HTTP 403)");
    }

    #[test]
    fn refused_credentials_are_denied_whatever_the_status() {
        for (status, code) in [(403, "AccessDenied"), (401, "Whatever"), (400, "UnrecognizedClientException")] {
            let failure = classify("PutEvents", &service_error(status, code));
            assert!(failure.denied && !failure.retryable, "{status} {code}");
        }
        for (status, code) in [(400, "ValidationException"), (404, "ResourceNotFoundException"), (503, "Whatever")] {
            assert!(!classify("PutEvents", &service_error(status, code)).denied, "{status} {code}");
        }
    }

    #[test]
    fn the_summary_never_quotes_the_service_message() {
        let failure = classify("SendMessage", &service_error(400, "InvalidParameterValue"));
        assert!(!failure.summary.contains("quoted content"), "{}", failure.summary);
    }
}
