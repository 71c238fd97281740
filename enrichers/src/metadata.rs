//! `metadata` of a stream change's envelope: where the change came from.

use serde::Serialize;

/// The stream record's identity, in every event made from it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamMetadata<'a> {
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_creation_date_time: Option<&'a serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_table: Option<&'a str>,
    /// Set when DynamoDB's time-to-live deleted the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_delete: Option<bool>,
}
