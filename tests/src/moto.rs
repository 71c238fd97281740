//! A moto server (PyPI `moto[server]`, pinned in `tests/requirements.txt`) started by the test that
//! needs it, on a free 127.0.0.1 port, and SDK clients pointed at it. One server emulates every
//! AWS service the tests use (DynamoDB and its streams, CloudWatch Logs, EventBridge, SQS); its
//! state lives in memory, so a restart forgets every table, log group, bus and queue.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The region every test client uses.
pub const REGION: &str = "us-east-1";

/// What to do when moto cannot be started.
const INSTALL_HINT: &str = "moto server not installed: pip install -r tests/requirements.txt";

/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server, killed when dropped.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl MotoServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers. Panics when moto is
    /// not installed or does not come up: a test that needs it never skips.
    pub fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("fhir-pipes-moto-{port}.log"));
        let mut server = Self { port, child: None, log };
        server.spawn();
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (kept across [`MotoServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (connections are then refused) until [`MotoServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The port is free again once nothing accepts on it.
        let deadline = Instant::now() + START_TIMEOUT;
        while answers(self.port) {
            assert!(Instant::now() < deadline, "moto server on port {} did not stop", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port, with empty state.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = File::create(&self.log).unwrap_or_else(|e| panic!("cannot create {}: {e}", self.log.display()));
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} (cannot run python3: {e})"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                let status = status.expect("wait for moto server");
                let output = std::fs::read_to_string(&self.log).unwrap_or_default();
                self.child = None;
                panic!("{INSTALL_HINT} (python3 -m moto.server exited with {status}):\n{output}");
            }
            if answers(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not answer on port {} within {START_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SDK settings for this server: its endpoint, [`REGION`] and static test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// A DynamoDB client for this server.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    /// A DynamoDB Streams client for this server.
    pub async fn dynamodb_streams(&self) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.sdk_config().await)
    }

    /// A CloudWatch Logs client for this server.
    pub async fn cloudwatch_logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config().await)
    }

    /// An EventBridge client for this server.
    pub async fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config().await)
    }

    /// An SQS client for this server.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nothing listens on now (the OS picks it; moto binds it right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}
