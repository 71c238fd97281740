//! Related records a mapping needs (an Encounter's practitioner name, …): the mapping names
//! them per image with [`LookupKey`]s, the enrichment core fetches every key of a batch at once
//! and hands the found items back through [`Lookups`]. No AWS code here: a key is a table name
//! and key attribute values.

use crate::Image;

/// A key attribute value (DynamoDB keys are S, N or B; the shipped mappings use S and N).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// `S`.
    S(String),
    /// `N`, its decimal digits as DynamoDB sends them.
    N(String),
}

/// One item of another table a mapping needs for one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LookupKey {
    /// Short label, used in error events as the field `lookup.<name>` (e.g. `practitioner`).
    pub name: &'static str,
    /// The item: two records needing the same one share one fetch.
    pub item: ItemKey,
    /// When true, an item that does not exist fails the record; otherwise the mapping sees no item.
    pub required: bool,
}

impl LookupKey {
    /// A required lookup of the item whose string key attribute `attribute` is `value`.
    pub fn by_string(name: &'static str, table: &str, attribute: &str, value: &str) -> Self {
        let item = ItemKey::new(table, vec![(attribute.to_owned(), KeyValue::S(value.to_owned()))]);
        Self { name, item, required: true }
    }
}

/// Which item: a table and its key attributes sorted by name (so equal keys compare equal).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    /// The table.
    pub table: String,
    /// Key attributes (partition key, and sort key if any), sorted by name.
    pub key: Vec<(String, KeyValue)>,
}

impl ItemKey {
    /// The item of `table` with the key attributes `key`, given in any order.
    pub fn new(table: &str, mut key: Vec<(String, KeyValue)>) -> Self {
        key.sort();
        Self { table: table.to_owned(), key }
    }
}

/// The items fetched for one record, by lookup name. A name without an item means the lookup
/// was not required and the item does not exist.
#[derive(Debug, Default)]
pub struct Lookups<'l> {
    found: Vec<(&'static str, &'l Image<'static>)>,
}

impl<'l> Lookups<'l> {
    /// No items (a mapping without lookups, or none needed for this record).
    pub fn none() -> Self {
        Self::default()
    }

    /// Records the item found for lookup `name`.
    pub fn insert(&mut self, name: &'static str, item: &'l Image<'static>) {
        self.found.push((name, item));
    }

    /// The item of lookup `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&'l Image<'static>> {
        self.found.iter().find(|(found, _)| *found == name).map(|(_, item)| *item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_ignore_the_attribute_order() {
        let key = vec![("pk".into(), KeyValue::S("1".into())), ("sk".into(), KeyValue::N("2".into()))];
        let a = ItemKey::new("T", key.clone());
        assert_eq!(a, ItemKey::new("T", key.iter().rev().cloned().collect()));
        assert_eq!(a.key[0].0, "pk");
        assert_ne!(a, ItemKey::new("U", key));
    }
}
