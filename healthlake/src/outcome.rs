//! The store's OperationOutcome, read from an error response.
//!
//! Two renderings: [`Outcome::codes`] (severity, code and FHIRPath of each issue: safe for logs)
//! and [`Outcome::text`] (with the diagnostics, which may quote submitted values: for reports and
//! dead letters, never for logs).

use std::fmt::Write as _;

use serde::Deserialize;

/// The issues of an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The issues, as the store listed them.
    pub issues: Vec<Issue>,
    /// A non-FHIR error body's `message` (HealthLake answers some errors with `{"message": …}`).
    pub message: Option<String>,
}

/// One issue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// `fatal`, `error`, `warning`, `information`.
    #[serde(default)]
    pub severity: String,
    /// The issue type (`invalid`, `structure`, `required`, …).
    #[serde(default)]
    pub code: String,
    /// FHIRPath expressions of the elements at fault (`Patient.gender`).
    #[serde(default)]
    pub expression: Vec<String>,
    /// Older form of `expression`.
    #[serde(default)]
    pub location: Vec<String>,
    /// The store's explanation (may quote values).
    #[serde(default)]
    pub diagnostics: Option<String>,
    /// `details.text`, another explanation.
    #[serde(default)]
    pub details: Option<IssueDetails>,
}

/// `issue.details`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueDetails {
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    #[serde(default)]
    issue: Vec<Issue>,
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

impl Outcome {
    /// Reads an error body; `None` when it is neither an OperationOutcome nor `{"message": …}`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let body: Body = serde_json::from_slice(body).ok()?;
        match body.resource_type.as_deref() {
            Some("OperationOutcome") => Some(Self { issues: body.issue, message: None }),
            None if body.message.is_some() => Some(Self { issues: Vec::new(), message: body.message }),
            _ => None,
        }
    }

    /// `error invalid at Patient.gender; …`: no diagnostics, so safe to log.
    pub fn codes(&self) -> String {
        self.render(false)
    }

    /// [`Outcome::codes`] with each issue's diagnostics: for reports, not logs.
    pub fn text(&self) -> String {
        self.render(true)
    }

    fn render(&self, with_diagnostics: bool) -> String {
        let mut out = String::new();
        for (index, issue) in self.issues.iter().enumerate() {
            if index > 0 {
                out.push_str("; ");
            }
            let _ = write!(out, "{} {}", issue.severity, issue.code);
            let paths = if issue.expression.is_empty() { &issue.location } else { &issue.expression };
            if !paths.is_empty() {
                // A FHIRPath may hold literals (`….where(value='…')`, `[…]`): logs get only the
                // element path before them.
                let paths: Vec<&str> = paths
                    .iter()
                    .map(|p| if with_diagnostics { p.as_str() } else { p.split(['(', '[']).next().unwrap_or_default() })
                    .collect();
                let _ = write!(out, " at {}", paths.join(", "));
            }
            let explanation = issue.diagnostics.as_deref().or(issue.details.as_ref().and_then(|d| d.text.as_deref()));
            if let (true, Some(explanation)) = (with_diagnostics, explanation) {
                let _ = write!(out, ": {explanation}");
            }
        }
        if let (true, Some(message)) = (with_diagnostics, &self.message) {
            out.push_str(message);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_leave_out_the_diagnostics_that_text_keeps() {
        let body = br#"{"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"value","expression":["Patient.gender"],"diagnostics":"Invalid value 'robot'"},
            {"severity":"error","code":"required","location":["Patient.id"],"details":{"text":"id is required"}}]}"#;
        let outcome = Outcome::parse(body).unwrap();
        assert_eq!(outcome.codes(), "error value at Patient.gender; error required at Patient.id");
        assert_eq!(
            outcome.text(),
            "error value at Patient.gender: Invalid value 'robot'; error required at Patient.id: id is required"
        );
        let literal = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"value",
            "expression":["Patient.identifier.where(value='MRN-123').system","Patient.name[0]"]}]}"#;
        let outcome = Outcome::parse(literal).unwrap();
        assert_eq!(outcome.codes(), "error value at Patient.identifier.where, Patient.name", "no literal in logs");
        assert!(outcome.text().contains("MRN-123"), "the report keeps the whole path");
    }

    #[test]
    fn reads_a_plain_message_body_and_ignores_other_json() {
        let outcome = Outcome::parse(br#"{"message":"User is not authorized"}"#).unwrap();
        assert_eq!(outcome.codes(), "");
        assert_eq!(outcome.text(), "User is not authorized");
        assert_eq!(Outcome::parse(br#"{"resourceType":"Patient","id":"x"}"#), None);
        assert_eq!(Outcome::parse(b"<html>bad gateway</html>"), None);
    }
}
