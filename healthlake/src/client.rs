//! A FHIR store client: one signed request per call, no retries (the writer retries).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::{event::ResourceKey, signer::Signer};

/// The FHIR JSON media type.
const FHIR_JSON: &str = "application/fhir+json";

/// The store's answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (a resource or an OperationOutcome).
    pub body: Bytes,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<Duration>,
}

/// A request that got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No connection could be made, or it broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// No answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] crate::signer::SignError),
}

/// Sends signed requests to one datastore.
pub struct FhirStoreClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    /// The `Host` header, signed as sent: the one hyper would derive from the base URL.
    host: Option<HeaderValue>,
    signer: Signer,
}

impl std::fmt::Debug for FhirStoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirStoreClient").field("base", &self.base).field("signer", &self.signer).finish()
    }
}

impl FhirStoreClient {
    /// A client of the datastore at `base` (ending with `/`), signing with `signer`.
    pub(crate) fn new(base: String, signer: Signer) -> std::io::Result<Self> {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(https);
        let host = base
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.authority().and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()));
        Ok(Self { http, base, host, signer })
    }

    /// `PUT {base}{type}/{id}` with `body`.
    pub async fn put(&self, key: &ResourceKey, body: Bytes, timeout: Duration) -> Result<Response, RequestError> {
        self.send(Method::PUT, key, body, timeout).await
    }

    /// `DELETE {base}{type}/{id}`.
    pub async fn delete(&self, key: &ResourceKey, timeout: Duration) -> Result<Response, RequestError> {
        self.send(Method::DELETE, key, Bytes::new(), timeout).await
    }

    /// `GET {base}{type}/{id}`.
    pub async fn read(&self, resource_type: &str, id: &str, timeout: Duration) -> Result<Response, RequestError> {
        let uri = format!("{}{resource_type}/{id}", self.base);
        self.send_to(Method::GET, uri, Bytes::new(), &[], timeout).await
    }

    /// `GET` of a search: `{base}{type}?{query}` (`query` already percent-encoded), or a page's
    /// `next` link (absolute, as the store gave it: its query is percent-encoded again, as
    /// HealthLake's signature check needs). With the strong consistency header, so resources
    /// whose index update is pending are found too.
    pub async fn search(&self, url: &str, timeout: Duration) -> Result<Response, RequestError> {
        let url = encode_query(url);
        self.send_to(Method::GET, url, Bytes::new(), &[(CONSISTENCY_HEADER, "strong")], timeout).await
    }

    /// The datastore's FHIR base URL (ends with `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        key: &ResourceKey,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, RequestError> {
        let uri = format!("{}{}/{}", self.base, key.resource_type, key.id);
        self.send_to(method, uri, body, &[], timeout).await
    }

    async fn send_to(
        &self,
        method: Method,
        uri: String,
        body: Bytes,
        extra_headers: &[(&'static str, &'static str)],
        timeout: Duration,
    ) -> Result<Response, RequestError> {
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::ACCEPT, FHIR_JSON)
            .body(body)
            .map_err(|e| RequestError::Connection(format!("invalid request: {e}")))?;
        for (name, value) in extra_headers {
            request.headers_mut().insert(*name, HeaderValue::from_static(value));
        }
        if !request.body().is_empty() {
            request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        }
        if let Some(host) = &self.host {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        self.signer.sign(&mut request, &uri).await?;
        let request = request.map(Full::new);
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| RequestError::Connection(describe(&e)))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| RequestError::Connection(format!("reading the response: {e}")))?
                .to_bytes();
            Ok(Response { status, body, retry_after })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| RequestError::Timeout(timeout))?
    }
}

/// The header that makes HealthLake's search also return resources whose index update is pending.
pub const CONSISTENCY_HEADER: &str = "x-amz-fhir-history-consistency-level";

/// `url` with every query character outside RFC 3986's unreserved set percent-encoded, keeping
/// existing `%XX` escapes: a `next` link's opaque `page` token may hold `+`, `/` or `=` as is,
/// and SigV4 signs the encoded form.
pub(crate) fn encode_query(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else { return url.to_owned() };
    let mut encoded = String::with_capacity(url.len() + 16);
    encoded.push_str(path);
    for (n, parameter) in query.split('&').enumerate() {
        encoded.push(if n == 0 { '?' } else { '&' });
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        percent_encode_into(&mut encoded, name);
        if parameter.contains('=') {
            encoded.push('=');
            percent_encode_into(&mut encoded, value);
        }
    }
    encoded
}

fn percent_encode_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = byte == b'%' && bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') || escape {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// The error and its causes, one line (hyper's own message is just "client error (Connect)").
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::encode_query;

    #[test]
    fn a_next_links_page_token_is_percent_encoded_once() {
        assert_eq!(
            encode_query("http://h/datastore/d/r4/Patient?_count=100&page=ab+c/d=="),
            "http://h/datastore/d/r4/Patient?_count=100&page=ab%2Bc%2Fd%3D%3D"
        );
        let once = encode_query("http://h/r4/Patient?_lastUpdated=ge2026-12-06T18:07:16.000Z&page=a%2Bb");
        assert_eq!(once, "http://h/r4/Patient?_lastUpdated=ge2026-12-06T18%3A07%3A16.000Z&page=a%2Bb");
        assert_eq!(encode_query(&once), once, "encoding is idempotent");
        assert_eq!(encode_query("http://h/r4/metadata"), "http://h/r4/metadata");
    }
}
