//! Why a filter pattern was rejected, and where in the pattern.

/// A filter pattern that EventBridge Pipes would refuse, caught before any event is seen.
///
/// Every variant that concerns the inside of a pattern carries `path`, a JSONPath-like
/// location such as `$.dynamodb.NewImage.entityType.S[0]` (the matcher at index 0 of that
/// field's array), so a config error can be fixed without guessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The pattern string is not JSON at all.
    #[error("pattern is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// The pattern, or a `$or` branch, is not a JSON object.
    #[error("{path}: a pattern must be a JSON object")]
    NotAnObject {
        /// Where in the pattern.
        path: String,
    },

    /// `{}` anywhere in the pattern; it would constrain nothing.
    #[error("{path}: empty objects are not allowed")]
    EmptyObject {
        /// Where in the pattern.
        path: String,
    },

    /// A field value that is neither a nested object nor an array of matchers, e.g. `"S": "x"`.
    #[error("{path}: a field must map to a nested object or to an array of matchers, e.g. [\"value\"]")]
    NotAnArray {
        /// Where in the pattern.
        path: String,
    },

    /// `[]` as a field's matchers; it could never match.
    #[error("{path}: empty arrays are not allowed")]
    EmptyArray {
        /// Where in the pattern.
        path: String,
    },

    /// A matcher that is an array (`[["a"]]`).
    #[error("{path}: a matcher must be a string, number, boolean, null or an operator object")]
    InvalidMatcher {
        /// Where in the pattern.
        path: String,
    },

    /// An operator object without exactly one key, e.g. `{"prefix": "a", "suffix": "b"}`.
    #[error("{path}: an operator object must have exactly one key, found {found}")]
    OperatorKeys {
        /// Where in the pattern.
        path: String,
        /// How many keys the object had.
        found: usize,
    },

    /// An operator EventBridge does not define, e.g. `{"contains": "x"}`.
    #[error("{path}: unknown operator `{operator}`")]
    UnknownOperator {
        /// Where in the pattern.
        path: String,
        /// The key that was not recognised.
        operator: String,
    },

    /// An operator given a value of the wrong type, e.g. `{"exists": "yes"}`.
    #[error("{path}: `{operator}` expects {expected}")]
    InvalidOperand {
        /// Where in the pattern.
        path: String,
        /// The operator, e.g. `exists` or `prefix/equals-ignore-case`.
        operator: &'static str,
        /// What it accepts.
        expected: &'static str,
    },

    /// A malformed `numeric` expression: unknown or misplaced operator, non-number or
    /// out-of-range value, empty range.
    #[error("{path}: numeric: {reason}")]
    Numeric {
        /// Where in the pattern.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A malformed `anything-but`: empty or mixed-type list, unsupported inner operator.
    #[error("{path}: anything-but: {reason}")]
    AnythingBut {
        /// Where in the pattern.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A malformed `wildcard`: consecutive `*`, or a `\` escaping something other than `*` or `\`.
    #[error("{path}: wildcard: {reason}")]
    Wildcard {
        /// Where in the pattern.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A malformed `cidr` block.
    #[error("{path}: cidr {value:?}: {reason}")]
    Cidr {
        /// Where in the pattern.
        path: String,
        /// The block as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A malformed `$or`: not an array of at least two objects, or an operator name used as a
    /// field name inside it.
    #[error("{path}: $or: {reason}")]
    Or {
        /// Where in the pattern.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// An operator that EventBridge supports on event buses but not in Pipes filters.
    #[error("{path}: `{operator}` is not supported by EventBridge Pipes filtering (event buses only)")]
    UnsupportedInPipes {
        /// Where in the pattern.
        path: String,
        /// The operator, e.g. `wildcard` or `anything-but/prefix`.
        operator: &'static str,
    },

    /// More patterns than a Pipe's `FilterCriteria` may hold.
    #[error("at most {max} filter patterns are allowed, got {count}")]
    TooManyPatterns {
        /// Patterns given.
        count: usize,
        /// The limit (5).
        max: usize,
    },

    /// A pattern longer than a Pipe's `Filter.Pattern` may be.
    #[error("pattern is {len} characters long; the maximum is {max}")]
    PatternTooLong {
        /// Characters in the pattern.
        len: usize,
        /// The limit (4096).
        max: usize,
    },

    /// Wraps the error of one pattern of a [`FilterSet`](super::FilterSet) with its position.
    #[error("filter pattern #{index}: {source}")]
    InFilter {
        /// Zero-based position in the filter list.
        index: usize,
        /// The pattern's own error.
        #[source]
        source: Box<FilterError>,
    },
}
