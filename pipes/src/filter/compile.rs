//! Pattern JSON → validated matcher tree, with the JSON path of every rejection.
//!
//! Validation rules follow the EventBridge user guide ("Content filtering in Amazon
//! EventBridge event patterns", "Comparison operators for use in event patterns") and, where
//! the guide is silent, the reference engine Event Ruler (`JsonRuleCompiler`, `CIDR`,
//! `WildcardParser`).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Dialect;
use super::error::FilterError;
use super::eval::{
    AnythingBut, Cidr, Field, Literal, Matcher, NUMERIC_LIMIT, Node, NumericRange, Wildcard, comparable, fold, ip_bits,
    parse_ip,
};

/// The key that introduces alternatives at an object level.
const OR: &str = "$or";

/// Names EventBridge refuses as field names inside `$or`, where they are almost certainly
/// a misplaced operator (Event Ruler's `RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP`).
const RESERVED_IN_OR: &[&str] = &[
    "equals",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
];

/// Compiles a whole pattern.
pub(crate) fn compile(pattern: &Value, dialect: Dialect) -> Result<Node, FilterError> {
    let mut c = Compiler { dialect, path: Vec::new() };
    match pattern {
        Value::Object(obj) => c.node(obj, false),
        _ => Err(FilterError::NotAnObject { path: c.path() }),
    }
}

/// One step of the location being compiled.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

struct Compiler<'a> {
    dialect: Dialect,
    path: Vec<Seg<'a>>,
}

impl<'a> Compiler<'a> {
    /// Renders the current location, e.g. `$.dynamodb.NewImage["entity-type"].S[0]`.
    fn path(&self) -> String {
        let mut out = String::from("$");
        for seg in &self.path {
            match seg {
                Seg::Key(k) if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    out.push('.');
                    out.push_str(k);
                }
                // Quoted so that keys with dots, spaces or `$` stay unambiguous.
                Seg::Key(k) => {
                    let _ = write!(out, "[{}]", Value::String((*k).to_owned()));
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    /// Runs `f` with `seg` pushed onto the path.
    fn at<T>(&mut self, seg: Seg<'a>, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    fn node(&mut self, obj: &'a Map<String, Value>, in_or: bool) -> Result<Node, FilterError> {
        if obj.is_empty() {
            return Err(FilterError::EmptyObject { path: self.path() });
        }
        let mut node = Node::default();
        for (key, value) in obj {
            self.at(Seg::Key(key), |c| {
                if key == OR {
                    node.ors.push(c.or(value)?);
                    return Ok(());
                }
                if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
                    return Err(FilterError::Or {
                        path: c.path(),
                        reason: format!("`{key}` is an operator name and cannot be a field name inside $or"),
                    });
                }
                let field = match value {
                    Value::Object(inner) => Field::Nested(c.node(inner, in_or)?),
                    Value::Array(items) => Field::Leaf(c.leaf(items)?),
                    _ => return Err(FilterError::NotAnArray { path: c.path() }),
                };
                node.fields.push((key.as_str().into(), field));
                Ok(())
            })?;
        }
        Ok(node)
    }

    /// `"$or": [ {..}, {..}, .. ]`.
    fn or(&mut self, value: &'a Value) -> Result<Vec<Node>, FilterError> {
        let Value::Array(branches) = value else {
            return Err(FilterError::Or { path: self.path(), reason: "must be an array of objects".into() });
        };
        if branches.len() < 2 {
            return Err(FilterError::Or {
                path: self.path(),
                reason: format!("needs at least 2 alternatives, found {}", branches.len()),
            });
        }
        let mut out = Vec::with_capacity(branches.len());
        for (i, branch) in branches.iter().enumerate() {
            out.push(self.at(Seg::Index(i), |c| match branch {
                Value::Object(obj) => c.node(obj, true),
                _ => Err(FilterError::NotAnObject { path: c.path() }),
            })?);
        }
        Ok(out)
    }

    fn leaf(&mut self, items: &'a [Value]) -> Result<Vec<Matcher>, FilterError> {
        if items.is_empty() {
            return Err(FilterError::EmptyArray { path: self.path() });
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.at(Seg::Index(i), |c| c.matcher(item))?);
        }
        Ok(out)
    }

    fn matcher(&mut self, item: &'a Value) -> Result<Matcher, FilterError> {
        Ok(match item {
            Value::String(s) => Matcher::Exact(Literal::String { text: s.as_str().into(), ip: parse_ip(s) }),
            Value::Number(n) => Matcher::Exact(Literal::Number(n.clone())),
            Value::Bool(b) => Matcher::Exact(Literal::Bool(*b)),
            Value::Null => Matcher::Exact(Literal::Null),
            Value::Array(_) => return Err(FilterError::InvalidMatcher { path: self.path() }),
            Value::Object(obj) => {
                let mut entries = obj.iter();
                let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
                    return Err(FilterError::OperatorKeys { path: self.path(), found: obj.len() });
                };
                self.operator(op, arg)?
            }
        })
    }

    fn operator(&mut self, op: &str, arg: &'a Value) -> Result<Matcher, FilterError> {
        Ok(match op {
            "prefix" => {
                let (text, ignore_case) = self.affix("prefix", arg)?;
                Matcher::Prefix { text, ignore_case }
            }
            "suffix" => {
                let (text, ignore_case) = self.affix("suffix", arg)?;
                Matcher::Suffix { text, ignore_case }
            }
            "equals-ignore-case" => Matcher::EqualsIgnoreCase(fold(self.string("equals-ignore-case", arg)?)),
            "wildcard" => {
                self.require_event_bus("wildcard")?;
                Matcher::Wildcard(self.wildcard(self.string("wildcard", arg)?)?)
            }
            "anything-but" => Matcher::AnythingBut(self.anything_but(arg)?),
            "numeric" => Matcher::Numeric(self.numeric(arg)?),
            "exists" => match arg {
                Value::Bool(b) => Matcher::Exists(*b),
                _ => return Err(self.operand("exists", "true or false")),
            },
            "cidr" => Matcher::Cidr(self.cidr(self.string("cidr", arg)?)?),
            _ => {
                return Err(FilterError::UnknownOperator { path: self.path(), operator: op.to_owned() });
            }
        })
    }

    fn operand(&self, operator: &'static str, expected: &'static str) -> FilterError {
        FilterError::InvalidOperand { path: self.path(), operator, expected }
    }

    fn string(&self, operator: &'static str, arg: &'a Value) -> Result<&'a str, FilterError> {
        arg.as_str().ok_or_else(|| self.operand(operator, "a string"))
    }

    fn require_event_bus(&self, operator: &'static str) -> Result<(), FilterError> {
        match self.dialect {
            Dialect::EventBus => Ok(()),
            Dialect::Pipes => Err(FilterError::UnsupportedInPipes { path: self.path(), operator }),
        }
    }

    /// `prefix`/`suffix` take a string or `{"equals-ignore-case": string}`.
    fn affix(&self, operator: &'static str, arg: &'a Value) -> Result<(Box<str>, bool), FilterError> {
        const EXPECTED: &str = "a string or {\"equals-ignore-case\": string}";
        match arg {
            Value::String(s) => Ok((s.as_str().into(), false)),
            Value::Object(obj) if obj.len() == 1 => match obj.get("equals-ignore-case") {
                Some(Value::String(s)) => Ok((fold(s), true)),
                _ => Err(self.operand(operator, EXPECTED)),
            },
            _ => Err(self.operand(operator, EXPECTED)),
        }
    }

    fn wildcard(&self, s: &str) -> Result<Wildcard, FilterError> {
        let err = |reason: String| FilterError::Wildcard { path: self.path(), reason };
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut prev_star = false;
        let mut chars = s.char_indices();
        while let Some((pos, ch)) = chars.next() {
            match ch {
                '*' if prev_star => {
                    return Err(err(format!("consecutive `*` at position {pos} are not allowed")));
                }
                '*' => {
                    segments.push(std::mem::take(&mut current).into_boxed_str());
                    prev_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, esc @ ('*' | '\\'))) => current.push(esc),
                    _ => {
                        return Err(err(format!("`\\` at position {pos} must be followed by `*` or `\\`")));
                    }
                },
                other => current.push(other),
            }
            prev_star = false;
        }
        segments.push(current.into_boxed_str());
        Ok(Wildcard { segments })
    }

    fn cidr(&self, s: &str) -> Result<Cidr, FilterError> {
        let err =
            |reason: &str| FilterError::Cidr { path: self.path(), value: s.to_owned(), reason: reason.to_owned() };
        let Some((addr, bits)) = s.split_once('/') else {
            return Err(err("expected address/prefix-length, e.g. 10.0.0.0/24"));
        };
        let bits: u32 = bits.parse().map_err(|_| err("prefix length must be a non-negative integer"))?;
        let ip = parse_ip(addr).ok_or_else(|| err("not an IPv4 or IPv6 address"))?;
        let (v6, x) = ip_bits(ip);
        let width = if v6 { 128 } else { 32 };
        // EventBridge rejects full-length prefixes; a single host is matched with a plain
        // string value instead, which it compares as an IP address.
        if bits >= width {
            return Err(err(if v6 {
                "IPv6 prefix length must be below 128 (match one host with a plain \"address\" value)"
            } else {
                "IPv4 prefix length must be below 32 (match one host with a plain \"address\" value)"
            }));
        }
        // `::/0` spans all 128 bits, where a plain shift would overflow.
        let host = 1u128.checked_shl(width - bits).map_or(u128::MAX, |b| b - 1);
        // Host bits are ignored, as Event Ruler does: 10.0.0.5/24 is 10.0.0.0/24.
        let lo = x & !host;
        Ok(Cidr { v6, lo, hi: lo | host })
    }

    fn number(&self, context: &str, v: &Value) -> Result<i64, String> {
        let Value::Number(n) = v else {
            return Err(format!("{context} must be a JSON number, got {v}"));
        };
        let x = n.as_f64().unwrap_or(f64::INFINITY);
        comparable(x).ok_or_else(|| {
            format!("{context} {n} is outside the supported range -{NUMERIC_LIMIT:e}..={NUMERIC_LIMIT:e}")
        })
    }

    /// `["=", x]`, `["<" | "<=", x]`, `[">" | ">=", x]` or `[">" | ">=", x, "<" | "<=", y]`
    /// with `x < y`: the only shapes EventBridge accepts.
    fn numeric(&self, arg: &Value) -> Result<NumericRange, FilterError> {
        let err = |reason: String| FilterError::Numeric { path: self.path(), reason };
        let Value::Array(items) = arg else {
            return Err(err("expects an array such as [\">\", 0, \"<=\", 5]".into()));
        };
        let op_at = |i: usize| -> Result<&str, FilterError> {
            match items.get(i) {
                Some(Value::String(op)) => Ok(op.as_str()),
                Some(other) => Err(err(format!("expected an operator at index {i}, got {other}"))),
                None => Err(err(format!("expected an operator at index {i}"))),
            }
        };
        let value_at = |i: usize, op: &str| -> Result<i64, FilterError> {
            let v = items.get(i).ok_or_else(|| err(format!("`{op}` needs a value")))?;
            self.number(&format!("value of `{op}`"), v).map_err(err)
        };
        let no_more = |from: usize| -> Result<(), FilterError> {
            if items.len() > from {
                Err(err(format!("unexpected element(s) after index {}", from - 1)))
            } else {
                Ok(())
            }
        };

        let op = op_at(0)?;
        let inclusive = match op {
            "=" => {
                let x = value_at(1, op)?;
                no_more(2)?;
                return Ok(NumericRange { lower: Some((x, true)), upper: Some((x, true)) });
            }
            "<" | "<=" => {
                let x = value_at(1, op)?;
                no_more(2)?;
                return Ok(NumericRange { lower: None, upper: Some((x, op == "<=")) });
            }
            ">" => false,
            ">=" => true,
            other => {
                return Err(err(format!("unknown operator `{other}`; expected =, <, <=, > or >=")));
            }
        };
        let lower = Some((value_at(1, op)?, inclusive));
        if items.len() == 2 {
            return Ok(NumericRange { lower, upper: None });
        }
        let top_op = op_at(2)?;
        if top_op != "<" && top_op != "<=" {
            return Err(err(format!("after a lower bound only `<` or `<=` may follow, got `{top_op}`")));
        }
        let upper = Some((value_at(3, top_op)?, top_op == "<="));
        no_more(4)?;
        if lower.map(|l| l.0) >= upper.map(|u| u.0) {
            return Err(err("the lower bound must be less than the upper bound".into()));
        }
        Ok(NumericRange { lower, upper })
    }

    fn anything_but(&self, arg: &'a Value) -> Result<AnythingBut, FilterError> {
        let err = |reason: String| FilterError::AnythingBut { path: self.path(), reason };
        match arg {
            Value::String(s) => Ok(AnythingBut::Strings(vec![s.as_str().into()])),
            Value::Number(_) => Ok(AnythingBut::Numbers(vec![self.number("value", arg).map_err(err)?])),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(err("the list must not be empty".into()));
                }
                if items.iter().all(Value::is_string) {
                    Ok(AnythingBut::Strings(items.iter().filter_map(Value::as_str).map(Into::into).collect()))
                } else if items.iter().all(Value::is_number) {
                    let nums = items.iter().map(|v| self.number("value", v)).collect::<Result<_, _>>();
                    Ok(AnythingBut::Numbers(nums.map_err(err)?))
                } else {
                    Err(err("the list must hold only strings or only numbers".into()))
                }
            }
            Value::Object(obj) => {
                let mut entries = obj.iter();
                let (Some((op, inner)), None) = (entries.next(), entries.next()) else {
                    return Err(err(format!("an operator object must have exactly one key, found {}", obj.len())));
                };
                let strings = |operator: &str| -> Result<Vec<&'a str>, FilterError> {
                    let list: Vec<&str> = match inner {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(items) if !items.is_empty() => items
                            .iter()
                            .map(Value::as_str)
                            .collect::<Option<_>>()
                            .ok_or_else(|| err(format!("`{operator}` list must hold only strings")))?,
                        _ => {
                            return Err(err(format!("`{operator}` expects a string or a non-empty list of strings")));
                        }
                    };
                    Ok(list)
                };
                let single = |operator: &str| -> Result<Box<str>, FilterError> {
                    match inner {
                        Value::String(s) if !s.is_empty() => Ok(s.as_str().into()),
                        _ => Err(err(format!("`{operator}` expects a non-empty string"))),
                    }
                };
                match op.as_str() {
                    "prefix" => {
                        self.require_event_bus("anything-but/prefix")?;
                        Ok(AnythingBut::Prefix(single("prefix")?))
                    }
                    "suffix" => {
                        self.require_event_bus("anything-but/suffix")?;
                        Ok(AnythingBut::Suffix(single("suffix")?))
                    }
                    "equals-ignore-case" => {
                        self.require_event_bus("anything-but/equals-ignore-case")?;
                        Ok(AnythingBut::EqualsIgnoreCase(
                            strings("equals-ignore-case")?.into_iter().map(fold).collect(),
                        ))
                    }
                    "wildcard" => {
                        self.require_event_bus("anything-but/wildcard")?;
                        let list = strings("wildcard")?;
                        Ok(AnythingBut::Wildcards(
                            list.into_iter().map(|s| self.wildcard(s)).collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(err(format!(
                        "`{other}` cannot be used inside anything-but; expected prefix, suffix, equals-ignore-case or wildcard"
                    ))),
                }
            }
            Value::Bool(_) | Value::Null => {
                Err(err("expects a string, a number, a list of either, or an operator object".into()))
            }
        }
    }
}
