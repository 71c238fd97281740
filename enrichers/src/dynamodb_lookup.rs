//! The [`LookupClient`] of the Lambdas: DynamoDB `BatchGetItem`. Only the binaries whose mapping
//! declares lookups reach this code (`lambda::serve_with_lookups`).

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::{AttributeValue as DynamoValue, KeysAndAttributes},
};

use fhir_pipes_mappings::{AttributeValue, Image, ItemKey, KeyValue};

use crate::lookup::{BatchGetOutput, LookupClient, LookupError};

/// `BatchGetItem` through an SDK client.
#[derive(Debug, Clone)]
pub struct DynamoDbLookup {
    client: Client,
}

impl DynamoDbLookup {
    /// Over an existing client (tests point one at moto).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client of the Lambda's environment (region, credentials of its role).
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config))
    }
}

impl LookupClient for DynamoDbLookup {
    async fn batch_get(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, LookupError> {
        let mut by_table: HashMap<&str, Vec<HashMap<String, DynamoValue>>> = HashMap::new();
        for key in keys {
            let attributes = key.key.iter().map(|(name, value)| (name.clone(), to_dynamo(value))).collect();
            by_table.entry(key.table.as_str()).or_default().push(attributes);
        }
        let mut request = self.client.batch_get_item();
        for (table, keys) in by_table {
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|_| LookupError::Call("invalid request (no keys)".into()))?;
            request = request.request_items(table, keys);
        }
        let output = request.send().await.map_err(|error| LookupError::Call(describe(&error)))?;
        let mut fetched = BatchGetOutput::default();
        for (table, items) in output.responses.unwrap_or_default() {
            fetched.items.extend(items.into_iter().map(|item| (table.clone(), to_image(item))));
        }
        for (table, unprocessed) in output.unprocessed_keys.unwrap_or_default() {
            for key in unprocessed.keys {
                let mut key: Vec<(String, KeyValue)> =
                    key.into_iter().filter_map(|(name, value)| Some((name, from_dynamo_key(value)?))).collect();
                key.sort();
                fetched.unprocessed.push(ItemKey { table: table.clone(), key });
            }
        }
        Ok(fetched)
    }
}

/// The error's kind and service code only: messages may quote request values.
fn describe<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ConstructionFailure(_) => "request construction failed".into(),
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => "dispatch failure (the service could not be reached)".into(),
        SdkError::ResponseError(_) => "unreadable response".into(),
        SdkError::ServiceError(service) => {
            format!("service error {}", service.err().code().unwrap_or("(no code)"))
        }
        _ => "unknown SDK error".into(),
    }
}

fn to_dynamo(value: &KeyValue) -> DynamoValue {
    match value {
        KeyValue::S(value) => DynamoValue::S(value.clone()),
        KeyValue::N(value) => DynamoValue::N(value.clone()),
    }
}

fn from_dynamo_key(value: DynamoValue) -> Option<KeyValue> {
    match value {
        DynamoValue::S(value) => Some(KeyValue::S(value)),
        DynamoValue::N(value) => Some(KeyValue::N(value)),
        _ => None,
    }
}

fn to_image(item: HashMap<String, DynamoValue>) -> Image<'static> {
    Image::from_attributes(item.into_iter().map(|(name, value)| (name.into(), to_value(value))).collect())
}

fn to_value(value: DynamoValue) -> AttributeValue<'static> {
    match value {
        DynamoValue::S(value) => AttributeValue::S(value.into()),
        DynamoValue::N(value) => AttributeValue::N(value.into()),
        DynamoValue::Bool(value) => AttributeValue::Bool(value),
        DynamoValue::Null(_) => AttributeValue::Null,
        DynamoValue::M(map) => AttributeValue::M(to_image(map)),
        DynamoValue::L(values) => AttributeValue::L(values.into_iter().map(to_value).collect()),
        DynamoValue::Ss(_) => AttributeValue::Other("SS"),
        DynamoValue::Ns(_) => AttributeValue::Other("NS"),
        DynamoValue::Bs(_) => AttributeValue::Other("BS"),
        DynamoValue::B(_) => AttributeValue::Other("B"),
        _ => AttributeValue::Other("unknown"),
    }
}
