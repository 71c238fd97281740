//! Runs a real Lambda binary (e.g. `patient-enricher`, the artifact that is deployed) behind a
//! local Lambda Runtime API on 127.0.0.1: the binary polls `/invocation/next` for a batch and
//! posts its answer to `/response` or `/error`, as on AWS.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    process::{Child, Command},
    sync::{Notify, mpsc, oneshot},
};

const PREFIX: &str = "/2018-06-01/runtime";

/// Why the Lambda binary cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum LambdaApiError {
    /// The local Runtime API cannot listen.
    #[error("cannot start the local Lambda Runtime API on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    /// The binary cannot be started.
    #[error("cannot start the enricher binary {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How one invocation ended, short of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeFailure {
    /// The function reported an error (`/error`).
    Function(FunctionError),
    /// The process failed to initialise, exited or timed out (worth retrying: it is restarted).
    Runtime(String),
}

/// An error a function reported (`/error`, `/init/error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType`: a kind, safe to log.
    pub error_type: String,
    /// `errorMessage`: the function's own words, which the runtime cannot vouch for (a panic
    /// of a user's mapping may quote a value), so kept out of logs.
    pub message: String,
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

/// What the function answered.
type Answer = Result<Bytes, FunctionError>;

struct Invocation {
    request_id: String,
    payload: Bytes,
    deadline_ms: u128,
    reply: oneshot::Sender<Answer>,
}

struct ApiState {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<FunctionError>>,
    init_failed: Notify,
}

/// A Lambda binary running behind a local Runtime API.
pub struct LocalLambda {
    binary: PathBuf,
    environment: BTreeMap<String, String>,
    function_name: String,
    address: String,
    timeout: Duration,
    state: Arc<ApiState>,
    invocations: mpsc::Sender<Invocation>,
    child: Option<Child>,
    next_request: u64,
    /// Where the binary's stdout and stderr go; `None`: stdout discarded, stderr inherited.
    log_file: Option<PathBuf>,
}

impl std::fmt::Debug for LocalLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLambda").field("binary", &self.binary).field("address", &self.address).finish()
    }
}

impl LocalLambda {
    /// Starts the Runtime API and the binary with exactly `environment` (plus `PATH`, the
    /// `AWS_LAMBDA_*` variables the runtime reads and a default `AWS_REGION`): the caller's own
    /// settings do not leak in.
    pub async fn start(
        binary: &Path,
        function_name: &str,
        environment: BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, LambdaApiError> {
        Self::start_logging_to(binary, function_name, environment, timeout, None).await
    }

    /// [`LocalLambda::start`], with the binary's stdout and stderr (its logs, as CloudWatch
    /// would get them) appended to `log_file` when given.
    pub async fn start_logging_to(
        binary: &Path,
        function_name: &str,
        environment: BTreeMap<String, String>,
        timeout: Duration,
        log_file: Option<&Path>,
    ) -> Result<Self, LambdaApiError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(LambdaApiError::Listen)?;
        let address = listener.local_addr().map_err(LambdaApiError::Listen)?.to_string();
        let (invocations, queue) = mpsc::channel(1);
        let state = Arc::new(ApiState {
            function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{function_name}",
                crate::template::LOCAL_REGION,
                crate::template::LOCAL_ACCOUNT_ID
            ),
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            init_failed: Notify::new(),
        });
        let server_state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&server_state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| serve(Arc::clone(&state), request));
                    // A connection error only ends that connection; the binary reconnects.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        let mut lambda = Self {
            binary: binary.to_owned(),
            environment,
            function_name: function_name.to_owned(),
            address,
            timeout,
            state,
            invocations,
            child: None,
            next_request: 0,
            log_file: log_file.map(Path::to_owned),
        };
        lambda.spawn()?;
        Ok(lambda)
    }

    fn spawn(&mut self) -> Result<(), LambdaApiError> {
        *self.state.init_error.lock().expect("not poisoned") = None;
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            // Defaults the function's environment may override (`RunConfig` passes the run's AWS
            // settings in it); no instance metadata service to wait for on this machine.
            .env("AWS_REGION", crate::template::LOCAL_REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(&self.environment)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.function_name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .kill_on_drop(true);
        match &self.log_file {
            Some(path) => {
                let spawn_error = |source| LambdaApiError::Spawn {
                    binary: format!("{} (log {})", self.binary.display(), path.display()),
                    source,
                };
                let log = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(spawn_error)?;
                command.stdout(log.try_clone().map_err(spawn_error)?).stderr(log);
            }
            // Its JSON logs and EMF lines are for CloudWatch; locally they would mix with events.
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::inherit());
            }
        }
        let child = command
            .spawn()
            .map_err(|source| LambdaApiError::Spawn { binary: self.binary.display().to_string(), source })?;
        self.child = Some(child);
        Ok(())
    }

    /// Invokes the function with `payload` and waits for its answer, its exit or the timeout.
    /// After a runtime failure the binary is restarted for the next invocation.
    pub async fn invoke(&mut self, payload: Bytes) -> Result<Bytes, InvokeFailure> {
        if self.child.is_none() {
            self.spawn().map_err(|e| InvokeFailure::Runtime(e.to_string()))?;
        }
        self.next_request += 1;
        let request_id = format!("local-{:08}", self.next_request);
        let (reply, answer) = oneshot::channel();
        let deadline_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() + self.timeout.as_millis();
        let invocation = Invocation { request_id, payload, deadline_ms, reply };
        let state = Arc::clone(&self.state);
        let timeout = self.timeout;
        let child = self.child.as_mut().expect("spawned above");
        let outcome = tokio::select! {
            sent = self.invocations.send(invocation) => match sent {
                Ok(()) => tokio::select! {
                    answer = answer => match answer {
                        Ok(Ok(body)) => Ok(body),
                        Ok(Err(error)) => Err(InvokeFailure::Function(error)),
                        Err(_) => Err(InvokeFailure::Runtime("the invocation was dropped".to_owned())),
                    },
                    status = child.wait() => Err(exited(status)),
                    () = state.init_failed.notified() => Err(init_failure(&state)),
                    () = tokio::time::sleep(timeout) => {
                        Err(InvokeFailure::Runtime(format!("timed out after {} s", timeout.as_secs_f64())))
                    }
                },
                Err(_) => Err(InvokeFailure::Runtime("the local Runtime API stopped".to_owned())),
            },
            status = child.wait() => Err(exited(status)),
            () = tokio::time::sleep(timeout) => {
                Err(InvokeFailure::Runtime(format!("did not ask for work within {} s", timeout.as_secs_f64())))
            }
        };
        if matches!(outcome, Err(InvokeFailure::Runtime(_))) {
            // A crashed or hung process is replaced, as Lambda does; the batch is retried by the caller.
            if let Some(mut child) = self.child.take() {
                let _ = child.kill().await;
            }
            self.state.in_flight.lock().expect("not poisoned").clear();
            // Forget an invocation the dead process never took.
            let _ = self.state.queue.lock().await.try_recv();
        }
        outcome
    }

    /// Stops the binary.
    pub async fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

fn init_failure(state: &ApiState) -> InvokeFailure {
    // Nothing of a record is known at initialisation: its message (e.g. a setting) is shown.
    match state.init_error.lock().expect("not poisoned").clone() {
        Some(error) => InvokeFailure::Runtime(format!("initialisation failed: {error}")),
        None => InvokeFailure::Runtime("initialisation failed".to_owned()),
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> InvokeFailure {
    match status {
        Ok(status) => InvokeFailure::Runtime(format!("the enricher process exited ({status})")),
        Err(error) => InvokeFailure::Runtime(format!("cannot wait for the enricher process: {error}")),
    }
}

/// `errorType` and `errorMessage` of a Lambda error body, without anything else of it.
fn function_error(body: &[u8]) -> FunctionError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(rename = "errorMessage", default)]
        error_message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => FunctionError { error_type: error.error_type, message: error.error_message },
        Err(_) => FunctionError {
            error_type: "(unreadable)".to_owned(),
            message: "an error body that is not JSON".to_owned(),
        },
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(body.into()))
        .expect("a valid response")
}

async fn serve(state: Arc<ApiState>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().strip_prefix(PREFIX).unwrap_or_default().trim_matches('/').to_owned();
    let parts: Vec<&str> = path.split('/').collect();
    let method = request.method().clone();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, r#"{"errorMessage":"unreadable body"}"#)),
    };
    Ok(match (method, parts.as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            let next = state.queue.lock().await.recv().await;
            let Some(invocation) = next else {
                return Ok(reply(StatusCode::GONE, r#"{"errorMessage":"shutting down"}"#));
            };
            state.in_flight.lock().expect("not poisoned").insert(invocation.request_id.clone(), invocation.reply);
            Response::builder()
                .status(StatusCode::OK)
                .header("Content-Type", "application/json")
                .header("Lambda-Runtime-Aws-Request-Id", &invocation.request_id)
                .header("Lambda-Runtime-Deadline-Ms", invocation.deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", &state.function_arn)
                .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(invocation.payload))
                .expect("a valid response")
        }
        (Method::POST, ["invocation", request_id, outcome @ ("response" | "error")]) => {
            let waiting = state.in_flight.lock().expect("not poisoned").remove(*request_id);
            match waiting {
                Some(sender) => {
                    let answer = if *outcome == "response" { Ok(body) } else { Err(function_error(&body)) };
                    let _ = sender.send(answer);
                    reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
                }
                None => reply(StatusCode::BAD_REQUEST, r#"{"errorMessage":"unknown request id"}"#),
            }
        }
        (Method::POST, ["init", "error"]) => {
            *state.init_error.lock().expect("not poisoned") = Some(function_error(&body));
            // A stored permit: the invocation may start waiting after the report.
            state.init_failed.notify_one();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#),
    })
}
