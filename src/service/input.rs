//! Turning a request body into a resource ready to store: the JSON must be an
//! object of the expected type and pass structural validation.

use serde_json::{Map, Value};

use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::fhir::validate::validate_resource;

/// Checks the type, validates, and returns the resource's JSON object.
pub fn prepare(rtype: &str, body: Value) -> FhirResult<Map<String, Value>> {
    let Value::Object(obj) = body else {
        return Err(FhirError::bad_request(
            IssueType::Structure,
            "the body must be a FHIR resource (a JSON object)",
        ));
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rtype => {}
        Some(t) => {
            return Err(FhirError::invalid(format!(
                "the body is a {t}, but the URL names {rtype}"
            )))
        }
        None => {
            return Err(FhirError::bad_request(
                IssueType::Required,
                "the body has no resourceType",
            ))
        }
    }
    let obj = Value::Object(obj);
    let issues = validate_resource(&obj);
    if !issues.is_empty() {
        return Err(FhirError::invalid_issues(issues));
    }
    match obj {
        Value::Object(map) => Ok(map),
        _ => unreachable!("checked above"),
    }
}

/// Parses a JSON body. Numbers keep their exact decimal text.
pub fn parse_json(body: &[u8]) -> FhirResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        FhirError::bad_request(
            IssueType::Structure,
            format!("the body is not valid JSON: {e}"),
        )
    })
}
