//! The de-duplication table: which idempotency keys were published already. The [`DedupTable`]
//! trait, and its DynamoDB implementation: partition key `idempotencyKey` (S), TTL attribute
//! `expiresAt` (N, epoch seconds; turn TTL on for it), `recordedAt` (N, epoch seconds).

use std::{collections::HashMap, future::Future};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use crate::aws::{CallError, call_error};

/// The table's partition key (S).
pub const KEY_ATTRIBUTE: &str = "idempotencyKey";
/// The table's TTL attribute (N, epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// When the key was recorded (N, epoch seconds).
pub const RECORDED_AT_ATTRIBUTE: &str = "recordedAt";
/// BatchGetItem takes at most this many keys per call.
pub const MAX_KEYS_PER_CHECK: usize = 100;

/// The answer to one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The keys found: published already.
    pub recorded: Vec<String>,
    /// The keys the table did not get to (BatchGetItem's `UnprocessedKeys`): ask again.
    pub unprocessed: Vec<String>,
}

/// The record of published idempotency keys.
pub trait DedupTable: Send + Sync {
    /// Which of `keys` (at most [`MAX_KEYS_PER_CHECK`], distinct) are recorded.
    fn recorded(&self, keys: &[String]) -> impl Future<Output = Result<Lookup, CallError>> + Send;

    /// Records `key` as published, kept until `expires_at` (epoch seconds); a key recorded
    /// already is fine.
    fn record(&self, key: &str, expires_at: i64) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// The DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbDedupTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbDedupTable {
    /// The table `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<String> {
    item.get(KEY_ATTRIBUTE).and_then(|value| value.as_s().ok()).cloned()
}

impl DedupTable for DynamoDbDedupTable {
    async fn recorded(&self, keys: &[String]) -> Result<Lookup, CallError> {
        if keys.is_empty() {
            return Ok(Lookup::default());
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(
                keys.iter()
                    .map(|key| HashMap::from([(KEY_ATTRIBUTE.to_owned(), AttributeValue::S(key.clone()))]))
                    .collect(),
            ))
            // A key recorded a moment ago (a retried batch) must be seen.
            .consistent_read(true)
            .projection_expression("#k")
            .expression_attribute_names("#k", KEY_ATTRIBUTE)
            .build()
            .map_err(|_| CallError::new("request_not_built", false))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(|error| call_error(&error))?;
        let recorded = output
            .responses()
            .and_then(|responses| responses.get(&self.table))
            .map(|items| items.iter().filter_map(key_of).collect())
            .unwrap_or_default();
        let unprocessed = output
            .unprocessed_keys()
            .and_then(|unprocessed| unprocessed.get(&self.table))
            .map(|keys| keys.keys().iter().filter_map(key_of).collect())
            .unwrap_or_default();
        Ok(Lookup { recorded, unprocessed })
    }

    async fn record(&self, key: &str, expires_at: i64) -> Result<(), CallError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()))
            .item(RECORDED_AT_ATTRIBUTE, AttributeValue::N(now.to_string()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY_ATTRIBUTE)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Recorded already (a duplicate published before, or a concurrent invocation): fine.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(error) => Err(call_error(&error)),
        }
    }
}
