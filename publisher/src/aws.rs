//! What the EventBridge and DynamoDB implementations share: turning an SDK error into a
//! PHI-free [`CallError`] (the service's error code or the transport failure, never a message).

use aws_sdk_eventbridge::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
};

/// Error codes of throttling and server faults, worth another try.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "InternalServerError",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// A call that failed as a whole: its kind (an AWS error code like `ThrottlingException`, or
/// `connection`, `timeout`, …) and whether another try may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (retryable: {retryable})")]
pub struct CallError {
    /// PHI-free: an error code or a transport failure kind.
    pub kind: String,
    /// Throttling, a server fault or a connection failure.
    pub retryable: bool,
}

impl CallError {
    /// A failure of `kind`.
    pub fn new(kind: impl Into<String>, retryable: bool) -> Self {
        Self { kind: kind.into(), retryable }
    }
}

/// Whether an AWS error code is a throttling or server fault.
pub fn retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// An error code fit for a log line: AWS codes are short identifiers; anything else is replaced.
pub fn loggable_code(code: Option<&str>) -> String {
    match code {
        Some(code)
            if !code.is_empty()
                && code.len() <= 64
                && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')) =>
        {
            code.to_owned()
        }
        _ => "unknown_error_code".to_owned(),
    }
}

/// The [`CallError`] of an SDK call: a service error's code (retryable when throttling, a
/// server fault or HTTP 429/5xx), or the transport failure (retryable).
pub fn call_error<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> CallError {
    match error {
        SdkError::ServiceError(context) => {
            let code = loggable_code(context.err().code());
            let status = context.raw().status().as_u16();
            let retryable = status == 429 || status >= 500 || retryable_code(&code);
            CallError::new(code, retryable)
        }
        SdkError::TimeoutError(_) => CallError::new("timeout", true),
        SdkError::DispatchFailure(_) => CallError::new("connection", true),
        SdkError::ResponseError(_) => CallError::new("unreadable_response", true),
        _ => CallError::new("request_not_built", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_logged_only_when_they_look_like_codes() {
        assert_eq!(loggable_code(Some("ThrottlingException")), "ThrottlingException");
        assert_eq!(loggable_code(Some("Jane Doe, 1970-01-01")), "unknown_error_code");
        assert_eq!(loggable_code(None), "unknown_error_code");
        assert!(retryable_code("InternalFailure") && !retryable_code("MalformedDetail"));
    }
}
