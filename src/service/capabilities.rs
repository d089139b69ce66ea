//! The CapabilityStatement (`GET [base]/metadata`), generated from the
//! registries the server runs on: the R4 schema's resource types and the
//! interaction table below, which the router implements one for one
//! (`http::routes`). Nothing here is written by hand per resource.

use serde_json::{json, Value};

use crate::fhir::schema::schema;

/// Interactions supported on every resource type.
pub const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

/// Interactions supported at system level.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch", "history-system"];

/// Formats the server reads and writes.
pub const FORMATS: &[&str] = &[
    "application/fhir+json",
    "application/fhir+xml",
    "json",
    "xml",
];

/// Patch formats accepted by PATCH.
pub const PATCH_FORMATS: &[&str] = &["application/json-patch+json"];

/// Parameters accepted in conditional criteria until full search lands.
fn conditional_params(rtype: &str) -> Vec<Value> {
    let mut params = vec![json!({
        "name": "_id",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
        "type": "token",
        "documentation": "Logical id; supported in conditional create, update, patch and delete criteria"
    })];
    let has_identifier = schema()
        .type_def(rtype)
        .and_then(|d| d.property("identifier"))
        .is_some();
    if has_identifier {
        params.push(json!({
            "name": "identifier",
            "type": "token",
            "documentation": "The resource's top-level identifier (system|value); supported in conditional create, update, patch and delete criteria"
        }));
    }
    params
}

pub fn capability_statement(base_url: &str) -> Value {
    let resources: Vec<Value> = schema()
        .resource_types()
        .iter()
        .map(|rtype| {
            json!({
                "type": rtype,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{rtype}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "full-support",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchParam": conditional_params(rtype),
                "operation": crate::service::operations::RESOURCE_OPERATIONS.iter().map(|op| {
                    let name = op.trim_start_matches('$');
                    json!({"name": name, "definition": format!("http://hl7.org/fhir/OperationDefinition/Resource-{name}")})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "publisher": "Charaka",
        "kind": "instance",
        "software": {
            "name": "Charaka",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "implementation": {
            "description": "Charaka FHIR R4 server",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": FORMATS,
        "patchFormat": PATCH_FORMATS,
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_resource_type_and_validates() {
        let cs = capability_statement("http://localhost/fhir");
        assert_eq!(cs["rest"][0]["resource"].as_array().unwrap().len(), 146);
        let issues = crate::fhir::validate::validate_resource(&cs);
        assert!(issues.is_empty(), "{issues:?}");
    }
}
