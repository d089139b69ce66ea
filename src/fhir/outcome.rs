//! OperationOutcome: the shape of every error and informational answer.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The R4 IssueType value set (http://hl7.org/fhir/R4/valueset-issue-type.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Unknown,
    Expired,
    Forbidden,
    Suppressed,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    Extension,
    TooCostly,
    BusinessRule,
    Conflict,
    Transient,
    LockError,
    NoStore,
    Exception,
    Timeout,
    Incomplete,
    Throttled,
    Informational,
}

impl IssueType {
    pub fn as_str(self) -> &'static str {
        use IssueType::*;
        match self {
            Invalid => "invalid",
            Structure => "structure",
            Required => "required",
            Value => "value",
            Invariant => "invariant",
            Security => "security",
            Login => "login",
            Unknown => "unknown",
            Expired => "expired",
            Forbidden => "forbidden",
            Suppressed => "suppressed",
            Processing => "processing",
            NotSupported => "not-supported",
            Duplicate => "duplicate",
            MultipleMatches => "multiple-matches",
            NotFound => "not-found",
            Deleted => "deleted",
            TooLong => "too-long",
            CodeInvalid => "code-invalid",
            Extension => "extension",
            TooCostly => "too-costly",
            BusinessRule => "business-rule",
            Conflict => "conflict",
            Transient => "transient",
            LockError => "lock-error",
            NoStore => "no-store",
            Exception => "exception",
            Timeout => "timeout",
            Incomplete => "incomplete",
            Throttled => "throttled",
            Informational => "informational",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub diagnostics: String,
    /// FHIRPath expression of the element concerned, e.g. `Patient.name[0].given[1]`.
    pub expression: Option<String>,
}

impl Issue {
    pub fn new(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut issue = json!({
            "severity": self.severity.as_str(),
            "code": self.code.as_str(),
            "diagnostics": self.diagnostics,
        });
        if let Some(expression) = &self.expression {
            issue["expression"] = json!([expression]);
        }
        issue
    }
}

/// Builds an OperationOutcome resource from issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": issues.iter().map(Issue::to_json).collect::<Vec<_>>(),
    })
}

/// An OperationOutcome with a single informational issue (e.g. after a delete).
pub fn information(diagnostics: impl Into<String>) -> Value {
    operation_outcome(&[Issue::new(
        Severity::Information,
        IssueType::Informational,
        diagnostics,
    )])
}
