//! The compiled matcher tree and its evaluation against one event.
//!
//! Evaluation borrows the event and allocates nothing: lookups go through the event's own
//! `serde_json::Map`, arrays are walked in place, and case-insensitive comparisons fold
//! characters on the fly.

use std::net::IpAddr;

use serde_json::{Map, Number, Value};

/// Largest magnitude `numeric` works with. Event Ruler (the engine behind EventBridge) maps
/// numbers onto fixed-point integers in `-5.0e9..=5.0e9` with six decimal places; outside
/// that range a number has no comparable form and numeric matchers never match it.
pub(crate) const NUMERIC_LIMIT: f64 = 5.0e9;

/// The fixed-point form Event Ruler compares numbers in (`ComparableNumber`): six decimal
/// places, truncated, offset so that the value is never negative. Reproduced exactly so that
/// boundary and rounding behaviour are the same as in AWS.
pub(crate) fn comparable(x: f64) -> Option<i64> {
    if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&x) {
        return None;
    }
    // Truncating cast is intended: Ruler does `(long) (1e6 * (5e9 + x))`.
    Some((1e6 * (NUMERIC_LIMIT + x)) as i64)
}

/// How a (sub)pattern matched an event (sub)object.
///
/// `Absent` means it matched only through `exists: false`, without selecting any event value.
/// The distinction matters under arrays: EventBridge matches arrays "array-consistently"
/// (all fields that matched must come from the same element), and a field absent in one
/// element but present in another is present, so an absence-only match must hold in every
/// element while a selecting match needs one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    NoMatch,
    Absent,
    Selected,
}

/// One object level of a pattern: all `fields` AND every `$or` group must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub(crate) fields: Vec<(Box<str>, Field)>,
    /// Each entry is one `$or` array; one branch of each must match.
    pub(crate) ors: Vec<Vec<Node>>,
}

/// What a pattern field holds.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    /// An array of matchers: any one matching any event value at this path suffices.
    Leaf(Vec<Matcher>),
    /// A nested object walking into the event's nested field.
    Nested(Node),
}

impl Node {
    /// Matches this level against an event object (`None` when the event has no object here).
    pub(crate) fn eval(&self, obj: Option<&Map<String, Value>>) -> Outcome {
        let mut out = Outcome::Absent;
        for (key, field) in &self.fields {
            let value = obj.and_then(|o| o.get(&**key));
            let r = match field {
                Field::Leaf(matchers) => eval_leaf(matchers, value),
                Field::Nested(node) => node.eval_value(value),
            };
            if r == Outcome::NoMatch {
                return Outcome::NoMatch;
            }
            out = out.max(r);
        }
        for branches in &self.ors {
            let mut best = Outcome::NoMatch;
            for branch in branches {
                best = best.max(branch.eval(obj));
                if best == Outcome::Selected {
                    break;
                }
            }
            if best == Outcome::NoMatch {
                return Outcome::NoMatch;
            }
            out = out.max(best);
        }
        out
    }

    /// Matches this level against whatever the event holds at its key.
    fn eval_value(&self, value: Option<&Value>) -> Outcome {
        match value {
            Some(Value::Object(obj)) => self.eval(Some(obj)),
            Some(Value::Array(items)) => {
                let mut saw_object = false;
                let mut all_absent = true;
                if self.any_element_selects(items, &mut saw_object, &mut all_absent) {
                    Outcome::Selected
                } else if !saw_object {
                    // Only scalars (or nothing): no field exists below this path.
                    self.eval(None)
                } else if all_absent {
                    Outcome::Absent
                } else {
                    Outcome::NoMatch
                }
            }
            // A scalar or a missing field has no fields below it.
            _ => self.eval(None),
        }
    }

    /// True as soon as one object element (nested arrays flattened) matches by selection;
    /// meanwhile records whether any object was seen and whether all matched by absence.
    fn any_element_selects(&self, items: &[Value], saw_object: &mut bool, all_absent: &mut bool) -> bool {
        for item in items {
            match item {
                Value::Object(obj) => {
                    *saw_object = true;
                    match self.eval(Some(obj)) {
                        Outcome::Selected => return true,
                        Outcome::Absent => {}
                        Outcome::NoMatch => *all_absent = false,
                    }
                }
                Value::Array(inner) if self.any_element_selects(inner, saw_object, all_absent) => {
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

/// Calls `f` on each leaf (non-object, non-array) value, arrays flattened; stops at the first `true`.
fn any_scalar(value: &Value, f: &impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| any_scalar(v, f)),
        Value::Object(_) => false,
        leaf => f(leaf),
    }
}

/// Matches a field's matcher array against the event value at that field.
fn eval_leaf(matchers: &[Matcher], value: Option<&Value>) -> Outcome {
    // A field "exists" only if it has a leaf value (null counts; an object or `[]` does not),
    // which is how EventBridge documents `exists` ("only works on leaf nodes").
    let present = value.is_some_and(|v| any_scalar(v, &|_| true));
    let mut absent_ok = false;
    for matcher in matchers {
        match matcher {
            Matcher::Exists(true) => {
                if present {
                    return Outcome::Selected;
                }
            }
            Matcher::Exists(false) => absent_ok |= !present,
            other => {
                if present && value.is_some_and(|v| any_scalar(v, &|leaf| other.matches(leaf))) {
                    return Outcome::Selected;
                }
            }
        }
    }
    if absent_ok { Outcome::Absent } else { Outcome::NoMatch }
}

/// One entry of a field's matcher array.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// A plain JSON value: `"x"`, `5`, `true`, `null`.
    Exact(Literal),
    /// `{"prefix": ..}`; when `ignore_case`, `text` is already lower-cased.
    Prefix { text: Box<str>, ignore_case: bool },
    /// `{"suffix": ..}`; when `ignore_case`, `text` is already lower-cased.
    Suffix { text: Box<str>, ignore_case: bool },
    /// `{"equals-ignore-case": ..}`, lower-cased.
    EqualsIgnoreCase(Box<str>),
    /// `{"wildcard": ..}`.
    Wildcard(Wildcard),
    /// `{"numeric": [..]}`.
    Numeric(NumericRange),
    /// `{"cidr": ..}`.
    Cidr(Cidr),
    /// `{"exists": ..}`; handled by [`eval_leaf`], never by [`Matcher::matches`].
    Exists(bool),
    /// `{"anything-but": ..}`.
    AnythingBut(AnythingBut),
}

impl Matcher {
    /// Whether one leaf event value satisfies this matcher.
    fn matches(&self, value: &Value) -> bool {
        match self {
            Matcher::Exact(literal) => literal.matches(value),
            Matcher::Prefix { text, ignore_case } => value
                .as_str()
                .is_some_and(|s| if *ignore_case { starts_with_folded(s, text) } else { s.starts_with(&**text) }),
            Matcher::Suffix { text, ignore_case } => value
                .as_str()
                .is_some_and(|s| if *ignore_case { ends_with_folded(s, text) } else { s.ends_with(&**text) }),
            Matcher::EqualsIgnoreCase(text) => value.as_str().is_some_and(|s| eq_folded(s, text)),
            Matcher::Wildcard(w) => value.as_str().is_some_and(|s| w.matches(s)),
            Matcher::Numeric(range) => match value {
                Value::Number(n) => n.as_f64().and_then(comparable).is_some_and(|c| range.contains(c)),
                _ => false,
            },
            Matcher::Cidr(cidr) => value.as_str().and_then(parse_ip).is_some_and(|ip| cidr.contains(ip)),
            Matcher::Exists(_) => false,
            Matcher::AnythingBut(ab) => ab.matches(value),
        }
    }
}

/// A plain JSON value in a matcher array.
#[derive(Debug, Clone)]
pub(crate) enum Literal {
    /// A string; `ip` is set when it is an IP address literal, which EventBridge compares as
    /// an address (so `"2001:db8::1"` matches `"2001:DB8:0:0:0:0:0:1"`).
    String {
        text: Box<str>,
        ip: Option<IpAddr>,
    },
    Number(Number),
    Bool(bool),
    Null,
}

impl Literal {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::String { text, ip }, Value::String(s)) => {
                **text == **s || ip.is_some_and(|ip| parse_ip(s) == Some(ip))
            }
            (Literal::Number(p), Value::Number(e)) => numbers_equal(p, e),
            (Literal::Bool(p), Value::Bool(e)) => p == e,
            (Literal::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// Number equality as EventBridge does it: exact for integers (account ids exceed f64
/// precision), otherwise by comparable form, so `300`, `300.0` and `3e2` are equal.
fn numbers_equal(p: &Number, e: &Number) -> bool {
    if let (Some(a), Some(b)) = (p.as_i64(), e.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (p.as_u64(), e.as_u64()) {
        return a == b;
    }
    match (p.as_f64(), e.as_f64()) {
        (Some(a), Some(b)) => match (comparable(a), comparable(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

/// A numeric interval over comparable forms; `None` bounds are open-ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumericRange {
    /// `(value, inclusive)`.
    pub(crate) lower: Option<(i64, bool)>,
    /// `(value, inclusive)`.
    pub(crate) upper: Option<(i64, bool)>,
}

impl NumericRange {
    fn contains(&self, c: i64) -> bool {
        let above = match self.lower {
            None => true,
            Some((b, true)) => c >= b,
            Some((b, false)) => c > b,
        };
        let below = match self.upper {
            None => true,
            Some((t, true)) => c <= t,
            Some((t, false)) => c < t,
        };
        above && below
    }
}

/// A CIDR block as an inclusive address range of one family.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr {
    pub(crate) v6: bool,
    pub(crate) lo: u128,
    pub(crate) hi: u128,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let (v6, x) = ip_bits(ip);
        v6 == self.v6 && (self.lo..=self.hi).contains(&x)
    }
}

pub(crate) fn ip_bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// Parses an IP literal the way Event Ruler recognises one: a dotted quad of digits, or
/// hex digits and colons only (so no zone ids and no embedded IPv4 in IPv6).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let v4_shape =
        s.split('.').count() == 4 && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let v6_shape = s.contains(':') && s.bytes().all(|b| b == b':' || b.is_ascii_hexdigit());
    if v4_shape || v6_shape { s.parse().ok() } else { None }
}

/// `anything-but`: matches any present leaf value except the listed ones. A value of another
/// type than the list (a number against a string list, `null`, ...) is never excluded, as in
/// Event Ruler.
#[derive(Debug, Clone)]
pub(crate) enum AnythingBut {
    Strings(Vec<Box<str>>),
    /// Comparable forms.
    Numbers(Vec<i64>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// Lower-cased.
    EqualsIgnoreCase(Vec<Box<str>>),
    Wildcards(Vec<Wildcard>),
}

impl AnythingBut {
    fn matches(&self, value: &Value) -> bool {
        if let Value::Number(n) = value {
            return match self {
                AnythingBut::Numbers(set) => n.as_f64().and_then(comparable).is_none_or(|c| !set.contains(&c)),
                _ => true,
            };
        }
        let Some(s) = value.as_str() else { return true };
        match self {
            AnythingBut::Strings(set) => !set.iter().any(|t| **t == *s),
            AnythingBut::Numbers(_) => true,
            AnythingBut::Prefix(p) => !s.starts_with(&**p),
            AnythingBut::Suffix(p) => !s.ends_with(&**p),
            AnythingBut::EqualsIgnoreCase(set) => !set.iter().any(|t| eq_folded(s, t)),
            AnythingBut::Wildcards(set) => !set.iter().any(|w| w.matches(s)),
        }
    }
}

/// A wildcard pattern split at its unescaped `*`s into literal segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    /// `n` stars give `n + 1` segments; the first is anchored at the start, the last at the
    /// end. Consecutive stars are rejected at parse time, so inner segments are non-empty.
    pub(crate) segments: Vec<Box<str>>,
}

impl Wildcard {
    pub(crate) fn matches(&self, s: &str) -> bool {
        let segs = &self.segments;
        let (first, last) = (&*segs[0], &*segs[segs.len() - 1]);
        if segs.len() == 1 {
            return s == first;
        }
        if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
            return false;
        }
        // Both slicing points are char boundaries: starts_with/ends_with just proved it.
        let mut rest = &s[first.len()..s.len() - last.len()];
        // Leftmost placement of each inner segment is optimal for star-only globs.
        for seg in &segs[1..segs.len() - 1] {
            match rest.find(&**seg) {
                Some(i) => rest = &rest[i + seg.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Per-character lower-casing, applied identically to pattern and event so the two sides
/// fold the same way (and without allocating on the event side).
pub(crate) fn fold(s: &str) -> Box<str> {
    s.chars().flat_map(char::to_lowercase).collect::<String>().into_boxed_str()
}

fn eq_folded(event: &str, folded: &str) -> bool {
    event.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

fn starts_with_folded(event: &str, folded_prefix: &str) -> bool {
    let mut ev = event.chars().flat_map(char::to_lowercase);
    folded_prefix.chars().all(|p| ev.next() == Some(p))
}

fn ends_with_folded(event: &str, folded_suffix: &str) -> bool {
    let mut ev = event.chars().rev().flat_map(|c| c.to_lowercase().rev());
    folded_suffix.chars().rev().all(|p| ev.next() == Some(p))
}
