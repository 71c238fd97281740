//! Support for the lookup tests: a [`LookupClient`] wrapper that counts calls, Practitioners
//! items in moto, and Encounter stream batches that reference them (made-up values).

use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use fhir_pipes_enrichers::lookup::{BatchGetOutput, LookupClient, LookupError};
use fhir_pipes_mappings::ItemKey;

use crate::moto::MotoServer;

/// Wraps a client and records the keys of every call made through it.
#[derive(Debug)]
pub struct CountingLookup<C> {
    inner: C,
    calls: Mutex<Vec<Vec<ItemKey>>>,
}

impl<C> CountingLookup<C> {
    /// Counts the calls made to `inner`.
    pub fn new(inner: C) -> Self {
        Self { inner, calls: Mutex::default() }
    }

    /// The keys of each call so far, in call order.
    pub fn calls(&self) -> Vec<Vec<ItemKey>> {
        self.calls.lock().expect("calls lock").clone()
    }
}

impl<C: LookupClient> LookupClient for CountingLookup<C> {
    async fn batch_get(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, LookupError> {
        self.calls.lock().expect("calls lock").push(keys.to_vec());
        self.inner.batch_get(keys).await
    }
}

/// The name parts of made-up practitioner `number`: `Dr. First<n> Last<n>`.
pub fn practitioner_display(number: usize) -> String {
    format!("Dr. First{number} Last{number}")
}

/// Puts practitioners `pr-<n>` for every `n` in `numbers` into `table` (keyed by `id`),
/// 25 per BatchWriteItem.
pub async fn put_practitioners(moto: &MotoServer, table: &str, numbers: impl IntoIterator<Item = usize>) {
    let client = moto.dynamodb().await;
    let s = |value: String| AttributeValue::S(value);
    let requests: Vec<WriteRequest> = numbers
        .into_iter()
        .map(|number| {
            let item = PutRequest::builder()
                .item("id", s(format!("pr-{number}")))
                .item("prefix", s("Dr.".into()))
                .item("firstName", s(format!("First{number}")))
                .item("lastName", s(format!("Last{number}")))
                .build()
                .expect("put request");
            WriteRequest::builder().put_request(item).build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        client.batch_write_item().request_items(table, chunk.to_vec()).send().await.expect("BatchWriteItem");
    }
}

/// A JSON array of Encounter INSERT records, one per entry, with eventID `enc-<index>` and the
/// entry as `practitionerId` (none when `None`).
pub fn encounter_batch(practitioner_ids: &[Option<String>]) -> String {
    let records: Vec<serde_json::Value> = practitioner_ids
        .iter()
        .enumerate()
        .map(|(index, practitioner_id)| {
            let mut image = serde_json::json!({
                "id": {"S": format!("enc-{index}")}, "status": {"S": "finished"}, "class": {"S": "AMB"},
                "patientId": {"S": format!("pat-{index}")},
            });
            if let Some(practitioner_id) = practitioner_id {
                image["practitionerId"] = serde_json::json!({"S": practitioner_id});
            }
            serde_json::json!({
                "eventID": format!("enc-{index}"), "eventName": "INSERT", "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {"id": {"S": format!("enc-{index}")}}, "NewImage": image, "SizeBytes": 100},
            })
        })
        .collect();
    serde_json::Value::Array(records).to_string()
}
