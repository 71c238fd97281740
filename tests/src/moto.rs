//! A moto server (PyPI `moto[server]`, pinned in `tests/requirements.txt` and installed at first
//! use by [`crate::tools`]) started by the test that needs it, on a free 127.0.0.1 port, and SDK
//! clients pointed at it. One server emulates every AWS service the tests use (DynamoDB and its
//! streams, CloudWatch Logs, EventBridge, SQS); its state lives in memory, so a restart forgets
//! every table, log group, bus and queue.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;

/// The region every test client uses.
pub const REGION: &str = "us-east-1";

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
    /// Starts a server on a free 127.0.0.1 port and waits until it answers. Panics when moto
    /// cannot be installed or does not come up: a test that needs it never skips.
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
        let python = crate::tools::python("moto server");
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("moto server: cannot run {}: {e}", python.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                let status = status.expect("wait for moto server");
                let output = std::fs::read_to_string(&self.log).unwrap_or_default();
                self.child = None;
                panic!("moto server: `{} -m moto.server` exited with {status}:\n{output}", python.display());
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

    /// Creates a table keyed by `id` (a string), with a NEW_AND_OLD_IMAGES stream when
    /// `with_stream`; returns the stream ARN (empty without a stream).
    pub async fn create_patient_table(&self, table: &str, with_stream: bool) -> String {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
            StreamViewType,
        };
        let id = AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build();
        let key = KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build();
        let mut request = self
            .dynamodb()
            .await
            .create_table()
            .table_name(table)
            .attribute_definitions(id.expect("attribute definition"))
            .key_schema(key.expect("key schema"))
            .billing_mode(BillingMode::PayPerRequest);
        if with_stream {
            let stream = StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream specification");
            request = request.stream_specification(stream);
        }
        let created = request.send().await.expect("CreateTable");
        created.table_description().and_then(|t| t.latest_stream_arn()).unwrap_or_default().to_owned()
    }

    /// Puts a Patient item the Patient mapping accepts (made-up values).
    pub async fn put_patient(&self, table: &str, id: &str, last_name: &str) {
        let s = |value: &str| AttributeValue::S(value.to_owned());
        self.dynamodb()
            .await
            .put_item()
            .table_name(table)
            .item("id", s(id))
            .item("firstName", s("Test"))
            .item("lastName", s(last_name))
            .item("birthDate", s("1980-01-02"))
            .item("gender", s("F"))
            .send()
            .await
            .expect("PutItem");
    }

    /// Sets the `lastName` of an item.
    pub async fn update_last_name(&self, table: &str, id: &str, last_name: &str) {
        self.set_string(table, id, "lastName", last_name).await;
    }

    /// Sets an attribute no mapping reads: a MODIFY whose FHIR resource is unchanged.
    pub async fn update_unmapped_note(&self, table: &str, id: &str, note: &str) {
        self.set_string(table, id, "internalNote", note).await;
    }

    /// Sets the string attribute `name` of the item keyed `id` (UpdateItem).
    async fn set_string(&self, table: &str, id: &str, name: &str, value: &str) {
        self.dynamodb()
            .await
            .update_item()
            .table_name(table)
            .key("id", AttributeValue::S(id.to_owned()))
            .update_expression("SET #n = :v")
            .expression_attribute_names("#n", name)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .send()
            .await
            .expect("UpdateItem");
    }

    /// Every item of a table (Scan, all pages), in the stream records' JSON form
    /// (`{"id": {"S": "p1"}, …}`).
    pub async fn scan_items(&self, table: &str) -> Vec<serde_json::Value> {
        let pages = self.dynamodb().await.scan().table_name(table).into_paginator().items().send();
        let items: Vec<_> = pages.collect::<Result<_, _>>().await.expect("Scan");
        items
            .iter()
            .map(|item| serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect()))
            .collect()
    }

    /// Deletes an item.
    pub async fn delete_patient(&self, table: &str, id: &str) {
        let key = AttributeValue::S(id.to_owned());
        self.dynamodb().await.delete_item().table_name(table).key("id", key).send().await.expect("DeleteItem");
    }

    /// Every message of a log stream, oldest first (GetLogEvents, all pages).
    pub async fn log_messages(&self, log_group: &str, log_stream: &str) -> Vec<String> {
        let client = self.cloudwatch_logs().await;
        let mut messages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .get_log_events()
                .log_group_name(log_group)
                .log_stream_name(log_stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await
                .expect("GetLogEvents");
            messages.extend(page.events().iter().filter_map(|e| e.message().map(str::to_owned)));
            let next = page.next_forward_token().map(str::to_owned);
            if page.events().is_empty() || next == token {
                return messages;
            }
            token = next;
        }
    }

    /// Creates an event bus with a rule matching `source` and `detail_type` whose target is a
    /// new SQS queue; returns the queue URL.
    pub async fn bus_to_queue(&self, bus: &str, source: &str, detail_type: &str) -> String {
        self.bus_rule_to_queue(bus, &serde_json::json!({"source": [source], "detail-type": [detail_type]})).await
    }

    /// Creates an event bus with a rule of `pattern` whose target is a new SQS queue
    /// (`<bus>-events`); returns the queue URL.
    pub async fn bus_rule_to_queue(&self, bus: &str, pattern: &serde_json::Value) -> String {
        let queue_url = self.create_queue(&format!("{bus}-events"), &[]).await;
        let queue_arn = self.queue_arn(&queue_url).await;
        let events = self.eventbridge().await;
        events.create_event_bus().name(bus).send().await.expect("CreateEventBus");
        let rule = format!("{bus}-to-queue");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(bus)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("PutRule");
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(queue_arn).build().expect("target");
        events.put_targets().rule(&rule).event_bus_name(bus).targets(target).send().await.expect("PutTargets");
        queue_url
    }

    /// Creates the queue `name` with `attributes`; returns its URL.
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &[(aws_sdk_sqs::types::QueueAttributeName, String)],
    ) -> String {
        let mut request = self.sqs().await.create_queue().queue_name(name);
        for (attribute, value) in attributes {
            request = request.attributes(attribute.clone(), value);
        }
        request.send().await.expect("CreateQueue").queue_url().expect("a queue URL").to_owned()
    }

    /// Creates `dead_letter` and the queue `name` redriving to it after `max_receive_count`
    /// receives, with `visibility_timeout` seconds; returns the queue's URL.
    pub async fn create_queue_with_dead_letter(
        &self,
        name: &str,
        dead_letter: &str,
        visibility_timeout: u32,
        max_receive_count: u32,
    ) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let dead_letter_url = self.create_queue(dead_letter, &[]).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": self.queue_arn(&dead_letter_url).await,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let attributes = [
            (QueueAttributeName::VisibilityTimeout, visibility_timeout.to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ];
        self.create_queue(name, &attributes).await
    }

    /// The ARN of the queue at `queue_url`.
    pub async fn queue_arn(&self, queue_url: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let attributes = self
            .sqs()
            .await
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes");
        attributes.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).expect("QueueArn").clone()
    }

    /// Creates the change publisher's de-duplication table `name` (key `idempotencyKey`, TTL on
    /// `expiresAt`), as the template does.
    pub async fn create_dedup_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
        };
        let dynamodb = self.dynamodb().await;
        let key = AttributeDefinition::builder()
            .attribute_name("idempotencyKey")
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("an attribute");
        let schema = KeySchemaElement::builder()
            .attribute_name("idempotencyKey")
            .key_type(KeyType::Hash)
            .build()
            .expect("a key");
        dynamodb
            .create_table()
            .table_name(name)
            .attribute_definitions(key)
            .key_schema(schema)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("CreateTable");
        let ttl = TimeToLiveSpecification::builder().attribute_name("expiresAt").enabled(true).build().expect("a TTL");
        dynamodb.update_time_to_live().table_name(name).time_to_live_specification(ttl).send().await.expect("TTL");
    }

    /// Receives (and deletes) messages until the queue is empty; every body parsed as JSON.
    pub async fn drain_queue(&self, queue_url: &str) -> Vec<serde_json::Value> {
        let sqs = self.sqs().await;
        let mut bodies = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            if received.messages().is_empty() {
                return bodies;
            }
            for message in received.messages() {
                let body = message.body().expect("a message body");
                bodies.push(serde_json::from_str(body).expect("a JSON message body"));
                let handle = message.receipt_handle().expect("a receipt handle");
                sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.expect("DeleteMessage");
            }
        }
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

/// One attribute value in the JSON form of DynamoDB (`{"S": "x"}`, `{"N": "1"}`, `{"M": {…}}`, …).
fn attribute_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::json;
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(set) => json!({ "SS": set }),
        AttributeValue::Ns(set) => json!({ "NS": set }),
        AttributeValue::L(list) => json!({ "L": list.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(map) => {
            let map: serde_json::Map<String, serde_json::Value> =
                map.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect();
            json!({ "M": map })
        }
        other => panic!("attribute type not used by the tests: {other:?}"),
    }
}
