//! EventBridge event-pattern matching, as used by EventBridge Pipes content filtering.
//!
//! A Pipe's `FilterCriteria` holds up to five patterns; a source record goes on to enrichment
//! only if one of them matches. This module reproduces that decision locally so a pipe can be
//! run and tested without AWS, and so bad patterns are reported at config time with the JSON
//! path of the mistake instead of at `CreatePipe`.
//!
//! ```
//! use fhir_pipes::filter::FilterSet;
//! use serde_json::json;
//!
//! let filters = FilterSet::parse(&[
//!     r#"{"eventName": ["INSERT", "MODIFY"],
//!         "dynamodb": {"NewImage": {"entityType": {"S": ["PATIENT"]}}}}"#,
//! ])?;
//! let record = json!({
//!     "eventName": "INSERT",
//!     "dynamodb": {"NewImage": {"entityType": {"S": "PATIENT"}, "age": {"N": "42"}}}
//! });
//! assert!(filters.matches(&record));
//! # Ok::<(), fhir_pipes::filter::FilterError>(())
//! ```
//!
//! # Semantics
//! - Fields of a pattern object are AND-ed; the matchers in a field's array are OR-ed; a nested
//!   object walks into the event's nested object; `"$or": [{..}, {..}]` at any level matches if
//!   one alternative does.
//! - When the event holds an array, a field matches if any element does, and fields under the
//!   same array must match within the same element ("array-consistent", as EventBridge).
//! - Type-strict: `"5"` matches only the string, `5` matches numbers (`5.0`, `5e0` too), and
//!   `numeric` only JSON numbers. DynamoDB `N` attributes are JSON strings, so
//!   `{"N": [{"numeric": [">", 0]}]}` never matches, exactly as in AWS.
//! - `exists` looks at leaf values only: `null` exists, an object or `[]` does not.
//!
//! Pipes accept a subset of the event-bus operators; [`Dialect`] selects which set is
//! accepted, and everything here defaults to [`Dialect::Pipes`].

mod compile;
mod error;
mod eval;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::FilterError;

/// Which EventBridge operator set a pattern may use.
///
/// The EventBridge user guide ("Comparison operators for use in event patterns") lists
/// `wildcard` and the `anything-but` forms `prefix`, `suffix`, `equals-ignore-case` and
/// `wildcard` as supported on event buses but not in Pipes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// What a Pipe's `FilterCriteria` accepts (the default).
    #[default]
    Pipes,
    /// Everything an event-bus rule accepts.
    EventBus,
}

/// A compiled, validated event pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: eval::Node,
}

impl Pattern {
    /// Compiles a pattern for Pipes ([`Dialect::Pipes`]).
    pub fn parse(pattern: &Value) -> Result<Self, FilterError> {
        Self::parse_with(pattern, Dialect::Pipes)
    }

    /// Compiles a pattern accepting the operators of `dialect`.
    pub fn parse_with(pattern: &Value, dialect: Dialect) -> Result<Self, FilterError> {
        Ok(Self { root: compile::compile(pattern, dialect)? })
    }

    /// Parses and compiles a pattern given as JSON text, as in `Filter.Pattern` ([`Dialect::Pipes`]).
    pub fn from_json_str(pattern: &str) -> Result<Self, FilterError> {
        Self::from_json_str_with(pattern, Dialect::Pipes)
    }

    /// Parses and compiles a pattern given as JSON text, accepting the operators of `dialect`.
    pub fn from_json_str_with(pattern: &str, dialect: Dialect) -> Result<Self, FilterError> {
        Self::parse_with(&serde_json::from_str(pattern)?, dialect)
    }

    /// Whether `event` matches. Allocation-free.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.eval(event.as_object()) != eval::Outcome::NoMatch
    }
}

/// The patterns of one Pipe's `FilterCriteria`: an event passes if any pattern matches.
///
/// An empty set passes every event, as a Pipe without filters does.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    patterns: Vec<Pattern>,
}

impl FilterSet {
    /// Most filters a `FilterCriteria` may hold (Pipes API reference, `FilterCriteria.Filters`).
    pub const MAX_PATTERNS: usize = 5;
    /// Longest `Filter.Pattern` string, in characters (Pipes API reference, `Filter.Pattern`).
    pub const MAX_PATTERN_LEN: usize = 4096;

    /// Compiles pattern strings for Pipes ([`Dialect::Pipes`]).
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, FilterError> {
        Self::parse_with(patterns, Dialect::Pipes)
    }

    /// Compiles pattern strings accepting the operators of `dialect`.
    pub fn parse_with<S: AsRef<str>>(patterns: &[S], dialect: Dialect) -> Result<Self, FilterError> {
        Self::build(patterns, |text| {
            check_len(text.as_ref().chars().count())?;
            Pattern::from_json_str_with(text.as_ref(), dialect)
        })
    }

    /// Compiles already-parsed patterns for Pipes ([`Dialect::Pipes`]); the length limit is
    /// checked on their compact JSON form.
    pub fn from_values(patterns: &[Value]) -> Result<Self, FilterError> {
        Self::build(patterns, |value| {
            check_len(value.to_string().chars().count())?;
            Pattern::parse(value)
        })
    }

    fn build<T>(items: &[T], compile: impl Fn(&T) -> Result<Pattern, FilterError>) -> Result<Self, FilterError> {
        if items.len() > Self::MAX_PATTERNS {
            return Err(FilterError::TooManyPatterns { count: items.len(), max: Self::MAX_PATTERNS });
        }
        let patterns = items
            .iter()
            .enumerate()
            .map(|(index, item)| compile(item).map_err(|e| FilterError::InFilter { index, source: Box::new(e) }))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether `event` passes: no patterns, or any pattern matches. Allocation-free.
    pub fn matches(&self, event: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(event))
    }

    /// The compiled patterns, in configuration order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when there are no patterns, i.e. nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn check_len(len: usize) -> Result<(), FilterError> {
    if len > FilterSet::MAX_PATTERN_LEN {
        Err(FilterError::PatternTooLong { len, max: FilterSet::MAX_PATTERN_LEN })
    } else {
        Ok(())
    }
}

/// Configuration of a Pipe's filter step (its `FilterCriteria`).
///
/// ```
/// use fhir_pipes::filter::FilterConfig;
///
/// let config: FilterConfig = serde_json::from_str(
///     r#"{"patterns": ["{\"eventName\": [\"INSERT\", \"MODIFY\"]}"]}"#,
/// ).unwrap();
/// let filters = config.build().unwrap();
/// assert!(filters.matches(&serde_json::json!({"eventName": "MODIFY"})));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Event patterns as JSON strings, exactly as in `FilterCriteria.Filters[].Pattern`. An
    /// event passes if any one matches; an empty list passes everything. At most 5, each at
    /// most 4096 characters.
    #[serde(default)]
    pub patterns: Vec<String>,

    /// Operator set the patterns may use: `pipes` (default; what AWS accepts for a Pipe) or
    /// `event-bus` (adds `wildcard` and the `anything-but` prefix/suffix/equals-ignore-case/
    /// wildcard forms, which AWS would reject on a Pipe).
    #[serde(default)]
    pub dialect: Dialect,
}

impl FilterConfig {
    /// Validates and compiles the patterns.
    pub fn build(&self) -> Result<FilterSet, FilterError> {
        FilterSet::parse_with(&self.patterns, self.dialect)
    }
}
