//! Validation on write of ICD-10-CM codings: every Coding with the ICD-10-CM
//! system anywhere in a resource must name a real code; in `Claim.diagnosis`
//! it must be billable. Policy `strict` rejects (422, the path and the
//! nearest valid codes), `warn` accepts and logs the problem without
//! content, `off` checks nothing. A display that is not the code's is never
//! rejected.

use serde_json::Value;

use crate::error::FhirError;
use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::terminology::codesystem::CodeSystem;
use crate::terminology::icd10cm::SYSTEM as ICD10CM;

/// How codings are checked on write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodingPolicy {
    Strict,
    Warn,
    Off,
}

impl CodingPolicy {
    pub fn parse(s: &str) -> Option<CodingPolicy> {
        match s {
            "strict" => Some(CodingPolicy::Strict),
            "warn" => Some(CodingPolicy::Warn),
            "off" => Some(CodingPolicy::Off),
            _ => None,
        }
    }
}

/// Every ICD-10-CM Coding of a resource: (FHIRPath-like path, coding).
fn codings<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            if map.get("system").and_then(Value::as_str) == Some(ICD10CM)
                && map.contains_key("code")
            {
                out.push((path.clone(), value));
            }
            for (k, v) in map {
                codings(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                codings(v, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether any string of the resource is the ICD-10-CM system (a walk
/// without allocations, so resources without ICD-10-CM cost little).
fn mentions_icd10cm(value: &Value) -> bool {
    match value {
        Value::String(s) => s == ICD10CM,
        Value::Object(map) => map.values().any(mentions_icd10cm),
        Value::Array(items) => items.iter().any(mentions_icd10cm),
        _ => false,
    }
}

/// The problems of a resource's ICD-10-CM codings: errors and warnings.
pub fn check(rtype: &str, resource: &Value, cs: &CodeSystem) -> Vec<Issue> {
    if !mentions_icd10cm(resource) {
        return Vec::new();
    }
    let mut found = Vec::new();
    codings(resource, rtype.to_string(), &mut found);
    let mut issues = Vec::new();
    for (path, coding) in found {
        let code = coding
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(id) = cs.id_of(code) else {
            let near: Vec<String> = cs
                .suggestions(code, 5)
                .into_iter()
                .map(|i| cs.get(i).code.to_string())
                .collect();
            let mut message = format!("`{code}` is not an ICD-10-CM code");
            if !near.is_empty() {
                message.push_str(&format!("; nearest valid codes: {}", near.join(", ")));
            }
            issues.push(Issue::new(Severity::Error, IssueType::CodeInvalid, message).at(path));
            continue;
        };
        let concept = cs.get(id);
        if path.starts_with("Claim.diagnosis") && !cs.is_billable(concept) {
            // The most general reportable codes first.
            let mut children: Vec<String> = cs
                .descendants(id)
                .iter()
                .filter(|&&d| cs.is_billable(cs.get(d)))
                .map(|&d| cs.get(d).code.to_string())
                .collect();
            children.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
            children.truncate(20);
            issues.push(
                Issue::new(
                    Severity::Error,
                    IssueType::CodeInvalid,
                    format!(
                        "`{code}` is not billable: a claim needs one of its codes: {}",
                        children.join(", ")
                    ),
                )
                .at(path.clone()),
            );
        }
        if let Some(display) = coding.get("display").and_then(Value::as_str) {
            if !super::terminology::display_matches(cs, id, display) {
                issues.push(
                    Issue::new(
                        Severity::Warning,
                        IssueType::CodeInvalid,
                        format!("the display of `{code}` is `{}`", concept.display),
                    )
                    .at(format!("{path}.display")),
                );
            }
        }
    }
    issues
}

impl super::Fhir {
    /// The write hook: rejects a resource whose ICD-10-CM codings are
    /// wrong under the `strict` policy; returns the warnings of an accepted
    /// one (displays that are not the code's, and under `warn` the
    /// problems that `strict` would reject).
    pub fn check_codings(&self, rtype: &str, resource: &Value) -> Result<Vec<Issue>, FhirError> {
        if self.coding_policy == CodingPolicy::Off {
            return Ok(Vec::new());
        }
        let Some(cs) = self.terminology.icd10cm(None) else {
            return Ok(Vec::new());
        };
        let mut issues = check(rtype, resource, &cs);
        let errors = issues
            .iter()
            .filter(|i| i.severity == Severity::Error)
            .count();
        if errors == 0 {
            return Ok(issues);
        }
        if self.coding_policy == CodingPolicy::Warn {
            tracing::warn!(
                rtype,
                problems = errors,
                "ICD-10-CM codings not valid; accepted (policy warn)"
            );
            for issue in &mut issues {
                issue.severity = Severity::Warning;
            }
            return Ok(issues);
        }
        let mut err = FhirError::invalid_issues(issues);
        err.status = 422;
        Err(err)
    }
}
