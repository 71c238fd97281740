//! Lookups: the related records mappings declare ([`Mapping::lookups`]) fetched for a whole
//! batch at once, never one call per record. Keys are de-duplicated across the batch, sent in
//! calls of at most [`MAX_KEYS_PER_CALL`] (DynamoDB `BatchGetItem`'s limit), unprocessed keys are
//! retried with exponential backoff and full jitter, and the results are kept for the invocation
//! in [`Fetched`]. A key whose fetch failed fails only the records that need it.
//!
//! [`Mapping::lookups`]: fhir_pipes_mappings::Mapping::lookups

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    future::Future,
    time::Duration,
};

use serde::Deserialize;
use tracing::{debug, warn};

use fhir_pipes_mappings::{Image, ItemKey, KeyValue, LookupKey, Lookups};

use crate::{Backoff, RecordError};

/// Most keys one `BatchGetItem` call accepts.
pub const MAX_KEYS_PER_CALL: usize = 100;

/// Why keys could not be fetched. Messages name error kinds and counts, never key values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The call failed as a whole (network, throttling after the SDK's retries, permissions…).
    #[error("BatchGetItem failed: {0}")]
    Call(String),
    /// The service kept returning the key as unprocessed.
    #[error("BatchGetItem still returned the key as unprocessed after {0} attempts")]
    Unprocessed(u32),
    /// This enrichment has no lookup client (`fhir-pipes enrich`, or `run` without AWS or an endpoint).
    #[error("lookups need a client: this enrichment runs without one (see FHIR_PIPES_PRACTITIONER_TABLE)")]
    NoClient,
}

/// The answer to one `BatchGetItem` call.
#[derive(Debug, Default)]
pub struct BatchGetOutput {
    /// The items found, with their table.
    pub items: Vec<(String, Image<'static>)>,
    /// The keys the service did not process this time (`UnprocessedKeys`).
    pub unprocessed: Vec<ItemKey>,
}

/// One `BatchGetItem` call: the DynamoDB client, or a fake in tests.
pub trait LookupClient: Send + Sync {
    /// Gets the items of `keys` (at most [`MAX_KEYS_PER_CALL`], distinct, possibly of several
    /// tables) in one call. Keys that do not exist are in neither list of the output.
    fn batch_get(&self, keys: &[ItemKey]) -> impl Future<Output = Result<BatchGetOutput, LookupError>> + Send;
}

/// How lookups are fetched.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LookupConfig {
    /// Calls per chunk of keys, the first included, while keys come back unprocessed.
    pub max_attempts: u32,
    /// The backoff before the first retry, in milliseconds; it doubles each retry (full jitter).
    pub base_delay_ms: u64,
    /// The longest backoff, in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay_ms: 50, max_delay_ms: 2_000 }
    }
}

impl LookupConfig {
    /// A fetcher of these settings over `client`.
    pub fn build<C: LookupClient>(&self, client: C) -> Fetcher<C> {
        let backoff =
            Backoff { base: Duration::from_millis(self.base_delay_ms), cap: Duration::from_millis(self.max_delay_ms) };
        Fetcher { client, max_attempts: self.max_attempts, backoff }
    }
}

/// Fetches the keys of a batch through a [`LookupClient`].
#[derive(Debug)]
pub struct Fetcher<C> {
    client: C,
    max_attempts: u32,
    /// Full jitter: a random delay up to `base · 2^(attempt-1)`, capped.
    backoff: Backoff,
}

impl<C: LookupClient> Fetcher<C> {
    /// The client (tests read counters of a wrapping client through it).
    pub fn client(&self) -> &C {
        &self.client
    }

    /// Fetches every distinct key once, in calls of at most [`MAX_KEYS_PER_CALL`] keys.
    pub async fn fetch(&self, keys: impl IntoIterator<Item = ItemKey>) -> Fetched {
        // Sorted by table first, so a chunk holds few tables.
        let distinct: BTreeSet<ItemKey> = keys.into_iter().collect();
        let distinct: Vec<ItemKey> = distinct.into_iter().collect();
        let mut fetched = Fetched { items: HashMap::with_capacity(distinct.len()), unavailable: None };
        for chunk in distinct.chunks(MAX_KEYS_PER_CALL) {
            self.fetch_chunk(chunk, &mut fetched.items).await;
        }
        let found = fetched.items.values().filter(|fetch| matches!(fetch, Fetch::Found(_))).count();
        let failed = fetched.items.values().filter(|fetch| matches!(fetch, Fetch::Failed(_))).count();
        debug!(keys = distinct.len(), found, failed, "lookups fetched");
        fetched
    }

    async fn fetch_chunk(&self, chunk: &[ItemKey], results: &mut HashMap<ItemKey, Fetch>) {
        let mut pending: Vec<ItemKey> = chunk.to_vec();
        for attempt in 1..=self.max_attempts.max(1) {
            let output = match self.client.batch_get(&pending).await {
                Ok(output) => output,
                Err(error) => {
                    warn!(keys = pending.len(), error = %error, "lookup call failed");
                    results.extend(pending.into_iter().map(|key| (key, Fetch::Failed(error.clone()))));
                    return;
                }
            };
            let asked: HashSet<&ItemKey> = pending.iter().collect();
            let mut found: HashMap<ItemKey, Image<'static>> = HashMap::new();
            for (table, item) in output.items {
                // The item's own key attributes tell which key it answers.
                let Some(shape) = pending.iter().find(|key| key.table == table) else { continue };
                if let Some(key) = key_of(&table, &item, shape)
                    && asked.contains(&key)
                {
                    found.insert(key, item);
                }
            }
            let unprocessed: HashSet<ItemKey> = output.unprocessed.into_iter().filter(|k| asked.contains(k)).collect();
            let mut retry = Vec::new();
            for key in pending {
                if let Some(item) = found.remove(&key) {
                    results.insert(key, Fetch::Found(item));
                } else if unprocessed.contains(&key) {
                    retry.push(key);
                } else {
                    results.insert(key, Fetch::Missing);
                }
            }
            pending = retry;
            if pending.is_empty() {
                return;
            }
            if attempt < self.max_attempts {
                let delay = self.backoff.delay(attempt);
                debug!(keys = pending.len(), attempt, delay_ms = delay.as_millis() as u64, "retrying unprocessed keys");
                tokio::time::sleep(delay).await;
            }
        }
        warn!(keys = pending.len(), attempts = self.max_attempts, "lookup keys left unprocessed");
        let error = LookupError::Unprocessed(self.max_attempts);
        results.extend(pending.into_iter().map(|key| (key, Fetch::Failed(error.clone()))));
    }
}

/// The key `item` answers, read with the attribute names of `shape` (a key of the same table).
fn key_of(table: &str, item: &Image<'_>, shape: &ItemKey) -> Option<ItemKey> {
    use fhir_pipes_mappings::AttributeValue;
    let key = shape
        .key
        .iter()
        .map(|(name, _)| match item.get(name)? {
            AttributeValue::S(value) => Some((name.clone(), KeyValue::S(value.to_string()))),
            AttributeValue::N(value) => Some((name.clone(), KeyValue::N(value.to_string()))),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ItemKey { table: table.to_owned(), key })
}

#[derive(Debug)]
enum Fetch {
    Found(Image<'static>),
    Missing,
    Failed(LookupError),
}

/// The lookups of one invocation: every fetched key's item, absence or failure.
#[derive(Debug, Default)]
pub struct Fetched {
    items: HashMap<ItemKey, Fetch>,
    /// Set when nothing could be fetched at all: every key fails with it.
    unavailable: Option<LookupError>,
}

impl Fetched {
    /// No client: every lookup fails with [`LookupError::NoClient`].
    pub fn unavailable() -> Self {
        Self { items: HashMap::new(), unavailable: Some(LookupError::NoClient) }
    }

    /// The items of one record's `keys`, or the error of its first lookup that failed, or
    /// that is required and has no item (field `lookup.<name>`).
    pub fn resolve(&self, keys: &[LookupKey]) -> Result<Lookups<'_>, RecordError> {
        let mut lookups = Lookups::none();
        for key in keys {
            let field = || format!("lookup.{}", key.name);
            match self.items.get(&key.item) {
                Some(Fetch::Found(item)) => lookups.insert(key.name, item),
                Some(Fetch::Missing) if !key.required => {}
                Some(Fetch::Missing) => {
                    let message = format!("no item with this key in table {}", key.item.table);
                    return Err(RecordError::new(field(), "lookup_not_found", message));
                }
                Some(Fetch::Failed(error)) => {
                    return Err(RecordError::new(field(), "lookup_failed", error.to_string()));
                }
                None => {
                    let error = self.unavailable.clone().unwrap_or(LookupError::Call("the key was not fetched".into()));
                    return Err(RecordError::new(field(), "lookup_failed", error.to_string()));
                }
            }
        }
        Ok(lookups)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A table of practitioners `p0`…: answers from memory, records each call's keys, and
    /// returns the first `unprocessed_calls` calls' last key as unprocessed.
    struct FakeClient {
        existing: usize,
        calls: Mutex<Vec<Vec<ItemKey>>>,
        unprocessed_calls: usize,
        fail: bool,
    }

    impl FakeClient {
        fn new(existing: usize) -> Self {
            Self { existing, calls: Mutex::default(), unprocessed_calls: 0, fail: false }
        }
    }

    impl LookupClient for FakeClient {
        async fn batch_get(&self, keys: &[ItemKey]) -> Result<BatchGetOutput, LookupError> {
            assert!(keys.len() <= MAX_KEYS_PER_CALL, "{} keys in one call", keys.len());
            let call = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(keys.to_vec());
                calls.len()
            };
            if self.fail {
                return Err(LookupError::Call("dispatch failure".into()));
            }
            let mut output = BatchGetOutput::default();
            let (answered, unprocessed) = match keys.split_last() {
                Some((last, rest)) if call <= self.unprocessed_calls => (rest, vec![last.clone()]),
                _ => (keys, Vec::new()),
            };
            output.unprocessed = unprocessed;
            for key in answered {
                let KeyValue::S(id) = &key.key[0].1 else { unreachable!() };
                let number: usize = id[1..].parse().unwrap();
                if number < self.existing {
                    let item = format!(r#"{{"id":{{"S":"{id}"}},"lastName":{{"S":"L{number}"}}}}"#);
                    output.items.push((key.table.clone(), Image::from_json(&item).unwrap().into_owned()));
                }
            }
            Ok(output)
        }
    }

    fn key(number: usize) -> LookupKey {
        LookupKey::by_string("practitioner", "Practitioners", "id", &format!("p{number}"))
    }

    fn fast() -> LookupConfig {
        LookupConfig { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 2 }
    }

    fn last_name(fetched: &Fetched, number: usize) -> Result<String, RecordError> {
        let lookups = fetched.resolve(&[key(number)])?;
        Ok(lookups.get("practitioner").unwrap().string("lastName", "lastName").unwrap().unwrap().to_owned())
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_chunked_to_a_hundred_per_call() {
        let fetcher = fast().build(FakeClient::new(1_000));
        // 250 distinct keys, each wanted twice.
        let fetched = fetcher.fetch((0..500).map(|n| key(n % 250).item)).await;
        let calls = fetcher.client().calls.lock().unwrap().clone();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        let distinct: HashSet<&ItemKey> = calls.iter().flatten().collect();
        assert_eq!(distinct.len(), 250);
        for number in [0, 99, 100, 249] {
            assert_eq!(last_name(&fetched, number).unwrap(), format!("L{number}"));
        }
    }

    #[tokio::test]
    async fn unprocessed_keys_are_retried_until_answered() {
        let fetcher = fast().build(FakeClient { unprocessed_calls: 2, ..FakeClient::new(10) });
        let fetched = fetcher.fetch((0..5).map(|n| key(n).item)).await;
        let calls = fetcher.client().calls.lock().unwrap().clone();
        // The first call's last key comes back, then the retry's only key comes back again.
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 1, 1]);
        assert_eq!(calls[1], vec![key(4).item]);
        assert_eq!(last_name(&fetched, 4).unwrap(), "L4");
    }

    #[tokio::test]
    async fn keys_still_unprocessed_after_the_last_attempt_fail_alone() {
        let fetcher = fast().build(FakeClient { unprocessed_calls: 10, ..FakeClient::new(10) });
        let fetched = fetcher.fetch((0..5).map(|n| key(n).item)).await;
        assert_eq!(fetcher.client().calls.lock().unwrap().len(), 3);
        let error = last_name(&fetched, 4).unwrap_err();
        assert_eq!((error.field.as_ref(), error.kind), ("lookup.practitioner", "lookup_failed"));
        assert!(error.message.contains("unprocessed after 3 attempts"), "{}", error.message);
        assert_eq!(last_name(&fetched, 3).unwrap(), "L3");
    }

    #[tokio::test]
    async fn a_missing_item_fails_only_when_required() {
        let fetcher = fast().build(FakeClient::new(2));
        let fetched = fetcher.fetch([key(1).item, key(7).item]).await;
        let error = last_name(&fetched, 7).unwrap_err();
        assert_eq!((error.field.as_ref(), error.kind), ("lookup.practitioner", "lookup_not_found"));
        let optional = LookupKey { required: false, ..key(7) };
        assert!(fetched.resolve(&[optional]).unwrap().get("practitioner").is_none());
        assert_eq!(last_name(&fetched, 1).unwrap(), "L1");
    }

    #[tokio::test]
    async fn a_failed_call_fails_its_keys_and_no_client_fails_every_key() {
        let fetcher = fast().build(FakeClient { fail: true, ..FakeClient::new(10) });
        let fetched = fetcher.fetch([key(1).item, key(2).item]).await;
        for number in [1, 2] {
            let error = last_name(&fetched, number).unwrap_err();
            assert_eq!(error.kind, "lookup_failed");
            assert!(error.message.contains("dispatch failure"));
        }
        // A record without lookups resolves even so.
        assert!(fetched.resolve(&[]).is_ok());
        for number in [1, 2] {
            let error = last_name(&Fetched::unavailable(), number).unwrap_err();
            assert!(error.message.contains("need a client"), "{}", error.message);
        }
    }

    #[test]
    fn the_settings_become_the_fetchers_backoff() {
        // How a Backoff grows and is capped is tested in backoff.rs.
        let fetcher = LookupConfig { max_attempts: 10, base_delay_ms: 10, max_delay_ms: 50 }.build(FakeClient::new(0));
        assert_eq!(fetcher.backoff, Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(50) });
        assert_eq!(fetcher.max_attempts, 10);
    }
}
