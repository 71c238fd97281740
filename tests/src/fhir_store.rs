//! A local HealthLake stand-in (`tests/fhir-store/server.mjs`: Medplum's in-memory FHIR R4 engine
//! behind an HTTP server that checks AWS SigV4 signatures and pages searches with opaque `page`
//! tokens) started by the test that needs it, on a free 127.0.0.1 port, plus its unsigned
//! `/_admin/` API: fault injection, the log of every request, the stored resources, and the
//! change signals (EventBridge events, CloudTrail-shaped or FHIR Subscription notifications, to
//! an NDJSON file and/or an SQS queue) every write emits. Needs Node 20.19+ and npm; the npm dependencies (pinned in
//! `tests/fhir-store/package-lock.json`) are installed at first use.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The access key id the stand-in accepts.
pub const ACCESS_KEY_ID: &str = "AKIAFHIRSTORETEST";
/// The secret access key the stand-in checks signatures with.
pub const SECRET_ACCESS_KEY: &str = "fhir-store-test-secret-access-key";
/// The region the signatures must name.
pub const REGION: &str = "us-east-1";
/// The datastore id of the base URL (HealthLake ids are 32 hex digits).
pub const DATASTORE_ID: &str = "0123456789abcdef0123456789abcdef";
/// The SigV4 service name HealthLake requires.
pub const SERVICE: &str = "healthlake";

/// What to do when the stand-in cannot be started.
const INSTALL_HINT: &str = "the HealthLake stand-in needs Node 20.19+ and npm (run `npm ci` in tests/fhir-store)";

/// How long a starting server (or a waiting `npm ci`) may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The ready line's prefix (`fhir-store listening on http://127.0.0.1:<port>`).
const READY_PREFIX: &str = "fhir-store listening on http://127.0.0.1:";

/// One request the stand-in saw under `/datastore`, in arrival order (`GET /_admin/requests`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The first path segment after `/r4/`, when any.
    pub resource_type: Option<String>,
    /// The second path segment after `/r4/`, when any.
    pub id: Option<String>,
    /// The answered status; `None` while in flight.
    pub status: Option<u16>,
    /// Whether the SigV4 signature was valid.
    pub signed: bool,
    /// Which SigV4 check failed, when one did.
    pub auth_error: Option<String>,
    /// The request body's `meta.versionId`, when it had one.
    pub body_version: Option<String>,
    /// The query as sent (still percent-encoded, without `?`), when there was one.
    #[serde(default)]
    pub query: Option<String>,
    /// The `x-amz-fhir-history-consistency-level` header (`strong`), when sent.
    #[serde(default)]
    pub consistency_level: Option<String>,
    /// Arrival, in monotonic milliseconds of the server.
    pub started_at: f64,
    /// Answer, in monotonic milliseconds of the server; `None` while in flight.
    pub ended_at: Option<f64>,
}

/// The header asking HealthLake for resources whose index update is still pending.
pub const CONSISTENCY_HEADER: &str = "x-amz-fhir-history-consistency-level";

/// `source` of the CloudTrail-shaped signals (`AWS API Call via CloudTrail`).
pub const CLOUDTRAIL_SOURCE: &str = "aws.healthlake";
/// `detail-type` of the CloudTrail-shaped signals.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// `source` of the FHIR Subscription notification signals (chosen: AWS does not document it).
pub const SUBSCRIPTION_SOURCE: &str = "aws.healthlake";
/// `detail-type` of the FHIR Subscription notification signals (chosen: AWS does not document it).
pub const SUBSCRIPTION_DETAIL_TYPE: &str = "HealthLake FHIR Subscription Notification";
/// What CloudTrail may show instead of a resource id.
pub const HIDDEN_RESOURCE_ID: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";
/// The account id of the signals unless [`Signals::account`] says otherwise (moto's default).
pub const SIGNAL_ACCOUNT: &str = "123456789012";

/// How `detail.additionalEventData.resourceId` of a CloudTrail signal looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceIdVisibility {
    /// The written resource's id.
    Shown,
    /// [`HIDDEN_RESOURCE_ID`].
    Hidden,
    /// No `additionalEventData` at all.
    Absent,
}

/// The CloudTrail-shaped signal (`AWS API Call via CloudTrail` on the default bus).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailSignals {
    /// How the resource id shows.
    pub resource_id: ResourceIdVisibility,
    /// Also an event for a refused (4xx) write, with its status as `responseElements.statusCode`.
    pub refused_writes: bool,
}

/// A FHIR Subscription's payload content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionPayload {
    /// Only the status Parameters, whose `notification-event` names the `focus`.
    IdOnly,
    /// Also an entry with the written resource (without `resource` for a delete).
    FullResource,
}

/// The FHIR Subscription notification signal (R4 backport notification Bundle as `detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionSignals {
    /// The payload content.
    pub payload: SubscriptionPayload,
}

/// What the store emits for each write (`POST /_admin/signals`); the default emits nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signals {
    /// CloudTrail-shaped events.
    pub cloud_trail: Option<CloudTrailSignals>,
    /// FHIR Subscription notifications.
    pub subscription: Option<SubscriptionSignals>,
    /// Appends each event as one NDJSON line to this (absolute) file.
    pub file: Option<PathBuf>,
    /// Sends each event as the body of an SQS message to this queue (a moto queue URL).
    pub sqs_queue_url: Option<String>,
    /// The events' account id; [`SIGNAL_ACCOUNT`] when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Signals {
    /// CloudTrail events with the resource id `resource_id`, refused writes not signalled.
    pub fn cloud_trail(resource_id: ResourceIdVisibility) -> Self {
        Self { cloud_trail: Some(CloudTrailSignals { resource_id, refused_writes: false }), ..Self::default() }
    }

    /// Subscription notifications with `payload`.
    pub fn subscription(payload: SubscriptionPayload) -> Self {
        Self { subscription: Some(SubscriptionSignals { payload }), ..Self::default() }
    }

    /// The same, appended to `file` too.
    pub fn to_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The same, sent to the SQS queue `queue_url` too.
    pub fn to_queue(mut self, queue_url: impl Into<String>) -> Self {
        self.sqs_queue_url = Some(queue_url.into());
        self
    }
}

/// What `GET /_admin/signals` answers: every event emitted since the last reset, in write order,
/// and the failed deliveries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignalLog {
    /// Every event (also those whose delivery failed).
    pub events: Vec<Value>,
    /// Failed deliveries: `{"target": "file"|"sqs", "error": …}`.
    pub errors: Vec<Value>,
}

/// The events of a signal file, one per NDJSON line (none when the file does not exist).
pub fn read_signal_file(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: not an NDJSON line: {e}", path.display()))
        })
        .collect()
}

/// A stored resource without what the store adds to it (`meta`), to compare with what was sent.
pub fn without_meta(mut resource: Value) -> Value {
    resource.as_object_mut().expect("a resource object").remove("meta");
    resource
}

/// The most requests that were in flight at the same time.
pub fn max_in_flight(requests: &[RecordedRequest]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for request in requests {
        edges.push((request.started_at, 1));
        edges.push((request.ended_at.unwrap_or(f64::INFINITY), -1));
    }
    // Ends sort before starts at the same instant: back-to-back requests do not overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut current, mut max) = (0, 0);
    for (_, delta) in edges {
        current += delta;
        max = max.max(current);
    }
    max as usize
}

/// An HTTP answer of the stand-in: status and JSON body (`Null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body parsed as JSON.
    pub body: Value,
}

/// A running HealthLake stand-in, killed when dropped.
#[derive(Debug)]
pub struct FhirStore {
    port: u16,
    child: Child,
    stderr_path: PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl FhirStore {
    /// Installs the npm dependencies when missing, starts the server on a free 127.0.0.1 port
    /// and waits for its ready line. Panics when Node or the dependencies are missing: a test
    /// that needs the store never skips.
    pub fn start() -> Self {
        let dir = store_dir();
        ensure_npm_dependencies(&dir);
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let stderr_path = std::env::temp_dir().join(format!(
            "fhir-pipes-fhir-store-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr =
            File::create(&stderr_path).unwrap_or_else(|e| panic!("cannot create {}: {e}", stderr_path.display()));
        let mut child = Command::new("node")
            .arg("server.mjs")
            .args(["--port", "0", "--datastore", DATASTORE_ID, "--region", REGION])
            .args(["--access-key-id", ACCESS_KEY_ID, "--secret-access-key", SECRET_ACCESS_KEY])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} (cannot run node: {e})"));

        // The ready line comes through a thread, so a silent server cannot block past the timeout;
        // the thread then drains stdout until the server exits.
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_sender, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = ready_sender.send(line);
            }
            lines.for_each(drop);
        });
        let port = match ready.recv_timeout(START_TIMEOUT) {
            Ok(line) => line.strip_prefix(READY_PREFIX).and_then(|port| port.trim().parse::<u16>().ok()),
            Err(_) => None,
        };
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let _ = std::fs::remove_file(&stderr_path);
            panic!(
                "{INSTALL_HINT}: node server.mjs did not print its ready line within {START_TIMEOUT:?} \
                 (exit: {status}); stderr:\n{stderr}"
            );
        };
        // No pooled connections: Node closes one idle for 5 s, and a test that waits longer (a
        // CLI run while cargo builds) would get that closed connection for its next request.
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        Self { port, child, stderr_path, client }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The FHIR base URL, HealthLake's layout: `http://127.0.0.1:PORT/datastore/<id>/r4/`.
    pub fn base_url(&self) -> String {
        format!("{}/datastore/{DATASTORE_ID}/r4/", self.endpoint())
    }

    /// Makes the next `count` signed requests matching `method` and `resource` (type, id) answer
    /// `status` with an OperationOutcome, without touching the store. Rules queue in order.
    pub async fn inject(&self, status: u16, count: u32, method: Option<&str>, resource: Option<(&str, &str)>) {
        let mut rule = json!({"status": status, "count": count});
        if let Some(method) = method {
            rule["method"] = json!(method);
        }
        if let Some((resource_type, id)) = resource {
            rule["resourceType"] = json!(resource_type);
            rule["id"] = json!(id);
        }
        self.admin(Method::POST, "faults", Some(rule)).await;
    }

    /// Every request seen under `/datastore`, in arrival order.
    pub async fn requests(&self) -> Vec<RecordedRequest> {
        let log = self.admin(Method::GET, "requests", None).await;
        serde_json::from_value(log).unwrap_or_else(|e| panic!("unexpected /_admin/requests answer: {e}"))
    }

    /// Every stored (not deleted) resource of a type.
    pub async fn resources(&self, resource_type: &str) -> Vec<Value> {
        match self.admin(Method::GET, &format!("resources/{resource_type}"), None).await {
            Value::Array(resources) => resources,
            other => panic!("unexpected /_admin/resources answer: {other}"),
        }
    }

    /// One stored resource, `None` when absent or deleted.
    pub async fn resource(&self, resource_type: &str, id: &str) -> Option<Value> {
        let response = self.send(Method::GET, &format!("/_admin/resources/{resource_type}/{id}"), None).await;
        match response.status {
            200 => Some(response.body),
            404 => None,
            status => panic!("GET /_admin/resources/{resource_type}/{id} answered {status}: {}", response.body),
        }
    }

    /// Empties the store, the fault rules and the request log, and removes the delay.
    pub async fn reset(&self) {
        self.admin(Method::POST, "reset", None).await;
    }

    /// Sets what each write emits (replacing the earlier settings; events already emitted stay).
    pub async fn configure_signals(&self, signals: &Signals) {
        let body = serde_json::to_value(signals).expect("serialize the signal settings");
        self.admin(Method::POST, "signals", Some(body)).await;
    }

    /// Every signal emitted since the last reset, in write order, and the failed deliveries.
    pub async fn signals(&self) -> SignalLog {
        let log = self.admin(Method::GET, "signals", None).await;
        serde_json::from_value(log).unwrap_or_else(|e| panic!("unexpected /_admin/signals answer: {e}"))
    }

    /// Delays every `/datastore` answer by `ms` milliseconds (to observe concurrent requests).
    pub async fn set_delay(&self, ms: u64) {
        self.admin(Method::POST, "delay", Some(json!({"ms": ms}))).await;
    }

    /// Sends a request to `{base_url}{path}` signed like HealthLake clients do (SigV4, service
    /// `healthlake`, [`REGION`], [`ACCESS_KEY_ID`]) with `secret_access_key`.
    pub async fn signed_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        secret_access_key: &str,
    ) -> StoreResponse {
        let url = format!("{}{path}", self.base_url());
        self.signed_request_to(method, &url, &[], body, secret_access_key).await
    }

    /// Sends a request to the absolute `url` (e.g. a `next` link, sent exactly as given) with the
    /// extra `headers`, signed like [`FhirStore::signed_request`] (the extra headers are signed).
    pub async fn signed_request_to(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        secret_access_key: &str,
    ) -> StoreResponse {
        use aws_sigv4::{
            http_request::{SignableBody, SignableRequest, SigningSettings, sign},
            sign::v4,
        };

        let body = body.map(|b| serde_json::to_vec(b).expect("serialize body")).unwrap_or_default();
        let mut builder = Request::builder().method(method).uri(url).header("content-type", "application/fhir+json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(Full::new(Bytes::from(body.clone()))).expect("a valid request");
        let credentials = aws_credential_types::Credentials::new(ACCESS_KEY_ID, secret_access_key, None, None, "test");
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let headers = request.headers().iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap()));
        let signable =
            SignableRequest::new(method, url, headers, SignableBody::Bytes(&body)).expect("signable request");
        let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        self.exchange(request).await
    }

    /// Sends an unsigned request to `{base_url}{path}`.
    pub async fn unsigned_request(&self, method: &str, path: &str, body: Option<&Value>) -> StoreResponse {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let path = format!("/datastore/{DATASTORE_ID}/r4/{path}");
        self.send(method, &path, body.cloned()).await
    }

    async fn admin(&self, method: Method, route: &str, body: Option<Value>) -> Value {
        let response = self.send(method.clone(), &format!("/_admin/{route}"), body).await;
        assert_eq!(response.status, 200, "{method} /_admin/{route} failed: {}", response.body);
        response.body
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> StoreResponse {
        let body = body.map(|b| Bytes::from(serde_json::to_vec(&b).expect("serialize body"))).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint()))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("a valid request");
        self.exchange(request).await
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> StoreResponse {
        let target = format!("{} {}", request.method(), request.uri().path());
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{target}: the fhir-store did not answer: {e}"));
        let status: StatusCode = response.status();
        let bytes = response.into_body().collect().await.unwrap_or_else(|e| panic!("{target}: body: {e}")).to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{target}: the answer is not JSON: {e}"))
        };
        StoreResponse { status: status.as_u16(), body }
    }
}

impl Drop for FhirStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// `tests/fhir-store/`.
fn store_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-store")
}

/// Runs `npm ci` in `dir` when its dependencies are missing. Test binaries run in parallel: an
/// exclusively created lock file lets one install while the others wait for it to go away.
fn ensure_npm_dependencies(dir: &Path) {
    let installed = || dir.join("node_modules/@medplum/fhir-router/package.json").exists();
    let lock_dir = crate::workspace_root().join(".cache");
    std::fs::create_dir_all(&lock_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_dir.display()));
    let lock = lock_dir.join("fhir-store-npm-ci.lock");
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    loop {
        let installing = lock.exists();
        if installed() && !installing {
            return;
        }
        if !installing && OpenOptions::new().write(true).create_new(true).open(&lock).is_ok() {
            break;
        }
        // A lock older than the install timeout was left by a killed test run.
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().unwrap_or_default() > INSTALL_TIMEOUT);
        if stale {
            let _ = std::fs::remove_file(&lock);
        }
        assert!(Instant::now() < deadline, "waited {INSTALL_TIMEOUT:?} for `npm ci` ({} exists)", lock.display());
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = if installed() {
        Ok(())
    } else {
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!("{}\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
                }
            })
    };
    let _ = std::fs::remove_file(&lock);
    if let Err(error) = result {
        panic!("{INSTALL_HINT}: `npm ci --no-audit --no-fund` in {} failed: {error}", dir.display());
    }
}
