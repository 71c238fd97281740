//! CloudFormation intrinsic functions, evaluated locally: YAML short tags become their long
//! `Fn::` forms, then values are resolved against parameters, pseudo parameters, conditions
//! and the template's own resources (whose ARNs are synthesised for the local account).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::error::TemplateError;

/// Local values of the pseudo parameters.
pub const LOCAL_REGION: &str = "us-east-1";
/// The account id used for synthesised ARNs (clearly not a real account).
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// The stack name used locally.
pub const LOCAL_STACK_NAME: &str = "fhir-pipes-local";

/// Converts a YAML document into JSON, short tags into their long forms (`!Ref X` →
/// `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": "A.B"}`, `!Sub ..` → `{"Fn::Sub": ..}`).
pub fn yaml_to_json(value: serde_yaml_ng::Value, path: &str) -> Result<Value, TemplateError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).map_err(|e| TemplateError::invalid(path, e.to_string()))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(TemplateError::invalid(path, "mapping keys must be strings")),
                };
                let child = yaml_to_json(value, &join(path, &key))?;
                object.insert(key, child);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = match name {
                "Ref" | "Condition" => name.to_owned(),
                "Sub" | "GetAtt" | "If" | "Equals" | "Not" | "And" | "Or" | "Join" | "Split" | "Select"
                | "FindInMap" | "Base64" | "ImportValue" | "GetAZs" | "Cidr" | "Transform" | "Length"
                | "ToJsonString" => format!("Fn::{name}"),
                _ => return Err(TemplateError::UnsupportedTag { path: path.to_owned(), tag }),
            };
            let inner = yaml_to_json(tagged.value, &join(path, &tag))?;
            Value::Object(Map::from_iter([(long, inner)]))
        }
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Everything a value may refer to.
pub struct Scope<'t> {
    /// The whole template (JSON form).
    pub template: &'t Value,
    /// Parameter values after defaults, overrides and placeholders.
    pub parameters: BTreeMap<String, Value>,
    conditions: Mutex<HashMap<String, bool>>,
}

impl<'t> Scope<'t> {
    /// A scope over `template` with the given parameter values.
    pub fn new(template: &'t Value, parameters: BTreeMap<String, Value>) -> Self {
        Self { template, parameters, conditions: Mutex::new(HashMap::new()) }
    }

    fn resources(&self) -> Option<&'t Map<String, Value>> {
        self.template.get("Resources").and_then(Value::as_object)
    }

    /// Resolves every intrinsic in `value`. `None` is `AWS::NoValue` (the property is absent).
    pub fn resolve(&self, value: &Value, path: &str) -> Result<Option<Value>, TemplateError> {
        self.resolve_depth(value, path, 0)
    }

    /// Resolves `value`, which must not be `AWS::NoValue`.
    pub fn resolve_present(&self, value: &Value, path: &str) -> Result<Value, TemplateError> {
        self.resolve(value, path)?.ok_or_else(|| TemplateError::invalid(path, "AWS::NoValue is not allowed here"))
    }

    fn resolve_depth(&self, value: &Value, path: &str, depth: usize) -> Result<Option<Value>, TemplateError> {
        if depth > 64 {
            return Err(TemplateError::invalid(path, "references nest too deeply (a cycle?)"));
        }
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(item) = self.resolve_depth(item, &format!("{path}[{i}]"), depth + 1)? {
                        out.push(item);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(object) if object.len() == 1 => {
                let (key, arg) = object.iter().next().expect("one entry");
                let here = join(path, key);
                if key == "Ref" || key.starts_with("Fn::") {
                    return self.function(key, arg, &here, depth);
                }
                self.resolve_object(object, path, depth)
            }
            Value::Object(object) => self.resolve_object(object, path, depth),
            other => Ok(Some(other.clone())),
        }
    }

    fn resolve_object(
        &self,
        object: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Option<Value>, TemplateError> {
        let mut out = Map::new();
        for (key, value) in object {
            if let Some(value) = self.resolve_depth(value, &join(path, key), depth + 1)? {
                out.insert(key.clone(), value);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn function(&self, name: &str, arg: &Value, path: &str, depth: usize) -> Result<Option<Value>, TemplateError> {
        let resolve = |value: &Value, at: &str| self.resolve_depth(value, at, depth + 1);
        let present = |value: &Value, at: &str| {
            resolve(value, at)?.ok_or_else(|| TemplateError::invalid(at, "AWS::NoValue is not allowed here"))
        };
        let args = |count: usize| -> Result<&Vec<Value>, TemplateError> {
            match arg.as_array() {
                Some(items) if items.len() == count => Ok(items),
                _ => Err(TemplateError::invalid(path, format!("`{name}` takes a list of {count} arguments"))),
            }
        };
        match name {
            "Ref" => {
                let target = arg.as_str().ok_or_else(|| TemplateError::invalid(path, "`Ref` takes a name"))?;
                self.reference(target, path, depth)
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match arg {
                    Value::String(text) => text
                        .split_once('.')
                        .map(|(r, a)| (r.to_owned(), a.to_owned()))
                        .ok_or_else(|| TemplateError::invalid(path, "`Fn::GetAtt` takes Resource.Attribute"))?,
                    Value::Array(items) if items.len() == 2 => {
                        let attribute = present(&items[1], &format!("{path}[1]"))?;
                        match (items[0].as_str(), attribute.as_str()) {
                            (Some(r), Some(a)) => (r.to_owned(), a.to_owned()),
                            _ => return Err(TemplateError::invalid(path, "`Fn::GetAtt` takes [Resource, Attribute]")),
                        }
                    }
                    _ => return Err(TemplateError::invalid(path, "`Fn::GetAtt` takes Resource.Attribute")),
                };
                self.attribute(&resource, &attribute, path, depth).map(|v| Some(Value::String(v)))
            }
            "Fn::If" => {
                let items = args(3)?;
                let condition = items[0]
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(path, "`Fn::If` takes a condition name first"))?;
                let branch = if self.condition(condition, path, depth)? { 1 } else { 2 };
                resolve(&items[branch], &format!("{path}[{branch}]"))
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut wrapper = Map::new();
                wrapper.insert(name.to_owned(), arg.clone());
                self.evaluate(&Value::Object(wrapper), path, depth).map(|b| Some(Value::Bool(b)))
            }
            "Fn::Join" => {
                let items = args(2)?;
                let delimiter = items[0]
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(path, "`Fn::Join` takes a delimiter string"))?;
                let list = present(&items[1], &format!("{path}[1]"))?;
                let parts = list
                    .as_array()
                    .ok_or_else(|| TemplateError::invalid(path, "`Fn::Join` takes a list to join"))?
                    .iter()
                    .map(|part| scalar_text(part, path))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Value::String(parts.join(delimiter))))
            }
            "Fn::Split" => {
                let items = args(2)?;
                let delimiter = items[0]
                    .as_str()
                    .ok_or_else(|| TemplateError::invalid(path, "`Fn::Split` takes a delimiter string"))?;
                let text = scalar_text(&present(&items[1], &format!("{path}[1]"))?, path)?;
                Ok(Some(Value::Array(text.split(delimiter).map(|s| Value::String(s.to_owned())).collect())))
            }
            "Fn::Select" => {
                let items = args(2)?;
                let index = scalar_text(&present(&items[0], &format!("{path}[0]"))?, path)?
                    .parse::<usize>()
                    .map_err(|_| TemplateError::invalid(path, "`Fn::Select` takes a non-negative index"))?;
                let list = present(&items[1], &format!("{path}[1]"))?;
                let list = list.as_array().ok_or_else(|| TemplateError::invalid(path, "`Fn::Select` takes a list"))?;
                list.get(index)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| TemplateError::invalid(path, format!("index {index} is out of range")))
            }
            "Fn::Sub" => {
                let (text, variables) = match arg {
                    Value::String(text) => (text.as_str(), Map::new()),
                    Value::Array(items) if items.len() == 2 => {
                        let text = items[0]
                            .as_str()
                            .ok_or_else(|| TemplateError::invalid(path, "`Fn::Sub` takes a string first"))?;
                        let variables = match present(&items[1], &format!("{path}[1]"))? {
                            Value::Object(map) => map,
                            _ => return Err(TemplateError::invalid(path, "`Fn::Sub` takes a map of variables second")),
                        };
                        (text, variables)
                    }
                    _ => return Err(TemplateError::invalid(path, "`Fn::Sub` takes a string or [string, {variables}]")),
                };
                self.substitute(text, &variables, path, depth).map(|s| Some(Value::String(s)))
            }
            "Fn::FindInMap" => {
                let items = args(3)?;
                let keys = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar_text(&present(item, &format!("{path}[{i}]"))?, path))
                    .collect::<Result<Vec<_>, _>>()?;
                let found = self
                    .template
                    .get("Mappings")
                    .and_then(|m| m.get(&keys[0]))
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .ok_or_else(|| TemplateError::invalid(path, format!("no mapping {}", keys.join("."))))?;
                resolve(found, path)
            }
            _ => Err(TemplateError::UnsupportedFunction { path: path.to_owned(), function: name.to_owned() }),
        }
    }

    fn reference(&self, name: &str, path: &str, depth: usize) -> Result<Option<Value>, TemplateError> {
        match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => return Ok(Some(LOCAL_REGION.into())),
            "AWS::AccountId" => return Ok(Some(LOCAL_ACCOUNT_ID.into())),
            "AWS::StackName" => return Ok(Some(LOCAL_STACK_NAME.into())),
            "AWS::StackId" => {
                return Ok(Some(
                    format!("arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{LOCAL_STACK_NAME}/local")
                        .into(),
                ));
            }
            "AWS::Partition" => return Ok(Some("aws".into())),
            "AWS::URLSuffix" => return Ok(Some("amazonaws.com".into())),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            _ => {}
        }
        if let Some(value) = self.parameters.get(name) {
            return Ok(Some(value.clone()));
        }
        let resource = self.resource(name, path, depth)?;
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or_default();
        let property = |key: &str| -> Result<Option<String>, TemplateError> {
            let properties_path = format!("Resources.{name}.Properties.{key}");
            match resource.get("Properties").and_then(|p| p.get(key)) {
                Some(value) => self
                    .resolve_depth(value, &properties_path, depth + 1)?
                    .map(|v| scalar_text(&v, &properties_path))
                    .transpose(),
                None => Ok(None),
            }
        };
        // What `Ref` returns for the resource types a pipe refers to; others get their logical id.
        let physical = match kind {
            "AWS::Logs::LogGroup" => property("LogGroupName")?.unwrap_or_else(|| format!("{LOCAL_STACK_NAME}-{name}")),
            "AWS::Events::EventBus" => property("Name")?.unwrap_or_else(|| format!("{LOCAL_STACK_NAME}-{name}")),
            "AWS::SQS::Queue" => format!("https://sqs.{LOCAL_REGION}.amazonaws.com/{LOCAL_ACCOUNT_ID}/{name}"),
            _ => name.to_owned(),
        };
        Ok(Some(Value::String(physical)))
    }

    /// The resource `name`, which must exist with these parameters (its `Condition` holds).
    fn resource(&self, name: &str, path: &str, depth: usize) -> Result<&'t Value, TemplateError> {
        let resource = self
            .resources()
            .and_then(|r| r.get(name))
            .ok_or_else(|| TemplateError::invalid(path, format!("`{name}` is neither a parameter nor a resource")))?;
        if let Some(condition) = resource.get("Condition").and_then(Value::as_str)
            && !self.condition(condition, path, depth + 1)?
        {
            return Err(TemplateError::invalid(
                path,
                format!("`{name}` is not created with these parameters (its Condition {condition} is false)"),
            ));
        }
        Ok(resource)
    }

    /// The synthesised value of `Fn::GetAtt resource.attribute` (ARNs in the local account).
    fn attribute(&self, name: &str, attribute: &str, path: &str, depth: usize) -> Result<String, TemplateError> {
        let resource = self.resource(name, path, depth)?;
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or_default();
        let physical = || -> Result<String, TemplateError> {
            let value = self.reference(name, path, depth + 1)?.unwrap_or_default();
            scalar_text(&value, path)
        };
        let (region, account) = (LOCAL_REGION, LOCAL_ACCOUNT_ID);
        Ok(match (kind, attribute) {
            ("AWS::Logs::LogGroup", "Arn") => format!("arn:aws:logs:{region}:{account}:log-group:{}:*", physical()?),
            ("AWS::Events::EventBus", "Arn") => format!("arn:aws:events:{region}:{account}:event-bus/{}", physical()?),
            ("AWS::Events::EventBus", "Name") => physical()?,
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{region}:{account}:{name}"),
            ("AWS::SQS::Queue", "QueueName") => name.to_owned(),
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{region}:{account}:function:{name}")
            }
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{account}:role/{name}"),
            ("AWS::Pipes::Pipe", "Arn") => format!("arn:aws:pipes:{region}:{account}:pipe/{name}"),
            (_, "Arn") => format!("arn:aws:local:{region}:{account}:{name}"),
            _ => {
                return Err(TemplateError::UnsupportedFunction {
                    path: path.to_owned(),
                    function: format!("Fn::GetAtt {name}.{attribute}"),
                });
            }
        })
    }

    /// Whether the named condition of the `Conditions` section holds (memoised).
    pub fn condition(&self, name: &str, path: &str, depth: usize) -> Result<bool, TemplateError> {
        if let Some(known) = self.conditions.lock().expect("not poisoned").get(name) {
            return Ok(*known);
        }
        let definition = self
            .template
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| TemplateError::invalid(path, format!("no condition named `{name}`")))?;
        let value = self.evaluate(definition, &format!("Conditions.{name}"), depth + 1)?;
        self.conditions.lock().expect("not poisoned").insert(name.to_owned(), value);
        Ok(value)
    }

    fn evaluate(&self, expression: &Value, path: &str, depth: usize) -> Result<bool, TemplateError> {
        if depth > 64 {
            return Err(TemplateError::invalid(path, "conditions nest too deeply (a cycle?)"));
        }
        let Some((name, arg)) = expression.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return match expression {
                Value::Bool(b) => Ok(*b),
                _ => Err(TemplateError::invalid(path, "a condition must be Fn::Equals/Not/And/Or or Condition")),
            };
        };
        let here = join(path, name);
        let list = || arg.as_array().ok_or_else(|| TemplateError::invalid(&here, format!("`{name}` takes a list")));
        match name.as_str() {
            "Condition" => {
                let other =
                    arg.as_str().ok_or_else(|| TemplateError::invalid(&here, "`Condition` takes a condition name"))?;
                self.condition(other, &here, depth + 1)
            }
            "Fn::Equals" => {
                let items = list()?;
                if items.len() != 2 {
                    return Err(TemplateError::invalid(&here, "`Fn::Equals` takes two values"));
                }
                let left = self.resolve_depth(&items[0], &format!("{here}[0]"), depth + 1)?;
                let right = self.resolve_depth(&items[1], &format!("{here}[1]"), depth + 1)?;
                // CloudFormation compares the string forms (`!Ref BatchSize` against `100`).
                let text = |v: Option<Value>| v.map(|v| scalar_text(&v, &here)).transpose();
                Ok(text(left)? == text(right)?)
            }
            "Fn::Not" => {
                let items = list()?;
                if items.len() != 1 {
                    return Err(TemplateError::invalid(&here, "`Fn::Not` takes one condition"));
                }
                Ok(!self.evaluate(&items[0], &format!("{here}[0]"), depth + 1)?)
            }
            "Fn::And" | "Fn::Or" => {
                let items = list()?;
                let mut results = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    results.push(self.evaluate(item, &format!("{here}[{i}]"), depth + 1)?);
                }
                Ok(if name == "Fn::And" { results.iter().all(|b| *b) } else { results.iter().any(|b| *b) })
            }
            _ => Err(TemplateError::UnsupportedFunction { path: here, function: name.clone() }),
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| TemplateError::invalid(path, "unclosed `${` in Fn::Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                // `${!Literal}` writes `${Literal}`.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar_text(value, path)?);
            } else if let Some((resource, attribute)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&self.attribute(resource, attribute, path, depth + 1)?);
            } else {
                let value = self
                    .reference(name, path, depth + 1)?
                    .ok_or_else(|| TemplateError::invalid(path, "AWS::NoValue cannot be substituted"))?;
                out.push_str(&scalar_text(&value, path)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The text of a scalar as CloudFormation would pass it (numbers and booleans as strings).
pub fn scalar_text(value: &Value, path: &str) -> Result<String, TemplateError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(TemplateError::invalid(path, "expected a string, number or boolean")),
    }
}
