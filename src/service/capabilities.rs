//! The CapabilityStatement (`GET [base]/metadata`), generated from the
//! registries the server runs on: the R4 schema's resource types and the
//! interaction table below, which the router implements one for one
//! (`http::routes`). Nothing here is written by hand per resource.

use serde_json::{json, Value};

use crate::fhir::schema::schema;
use std::borrow::Cow;

use crate::search::registry::Registry;
use crate::search::{registry, ParamType};

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
    "search-type",
];

/// Interactions supported at system level.
pub const SYSTEM_INTERACTIONS: &[&str] =
    &["transaction", "batch", "history-system", "search-system"];

/// Formats the server reads and writes.
pub const FORMATS: &[&str] = &[
    "application/fhir+json",
    "application/fhir+xml",
    "json",
    "xml",
];

/// Patch formats accepted by PATCH.
pub const PATCH_FORMATS: &[&str] = &[
    "application/json-patch+json",
    "application/fhir+json",
    "application/fhir+xml",
];

/// The search parameters of a type: every R4 parameter the search engine
/// implements (all but `_query`), and `_filter`.
fn search_params(rtype: &str) -> Vec<Value> {
    let mut params: Vec<Value> = registry()
        .params(rtype)
        .filter(|p| {
            p.ptype != ParamType::Special
                || matches!(p.code.as_str(), "_text" | "_content")
                || (p.rtype == "Location" && p.code == "near")
        })
        .map(|p| {
            json!({
                "name": p.code,
                "definition": p.url,
                "type": p.ptype.as_str(),
            })
        })
        .collect();
    params.push(json!({
        "name": "_filter",
        "type": "special",
        "documentation": "http://hl7.org/fhir/R4/search_filter.html: and, or, not (left to right); \
            eq ne co sw ew gt lt ge le sa eb ap po pr in ni ss sb re by parameter type; \
            chains and _has; no filters inside paths",
    }));
    params
}

/// `_include` values: `Type:param` for each reference parameter, and `*`.
fn search_includes(rtype: &str) -> Vec<String> {
    let mut out: Vec<String> = registry()
        .params(rtype)
        .filter(|p| p.ptype == ParamType::Reference)
        .map(|p| format!("{rtype}:{}", p.code))
        .collect();
    out.push("*".to_string());
    out
}

/// `_revinclude` values: every reference parameter that can point at `rtype`.
fn search_revincludes(rtype: &str) -> Vec<String> {
    let mut out = Vec::new();
    for source in schema().resource_types() {
        for p in registry().params(source) {
            let targets = p.ptype == ParamType::Reference
                && (p.targets.is_empty()
                    || p.targets.iter().any(|t| t == rtype || t == "Resource"));
            if targets && p.key_type != "Resource" {
                out.push(format!("{source}:{}", p.code));
            }
        }
    }
    out
}

/// The statement with the custom search parameters of `reg` (from
/// SearchParameter resources) added under their types: `searchParam` with
/// the definition's canonical URL, and `searchInclude` for references.
/// Borrowed as it is when there are none.
pub fn with_custom<'s>(statement: &'s Value, reg: &Registry) -> Cow<'s, Value> {
    let custom = reg.custom_params();
    if custom.is_empty() {
        return Cow::Borrowed(statement);
    }
    let mut out = statement.clone();
    let Some(resources) = out["rest"][0]["resource"].as_array_mut() else {
        return Cow::Owned(out);
    };
    for p in custom {
        let Some(entry) = resources
            .iter_mut()
            .find(|r| r["type"].as_str() == Some(p.rtype.as_str()))
        else {
            continue;
        };
        if let Some(params) = entry["searchParam"].as_array_mut() {
            params.push(json!({
                "name": p.code,
                "definition": p.url,
                "type": p.ptype.as_str(),
            }));
        }
        if p.ptype == ParamType::Reference {
            if let Some(includes) = entry["searchInclude"].as_array_mut() {
                includes.push(json!(format!("{}:{}", p.rtype, p.code)));
            }
        }
    }
    Cow::Owned(out)
}

pub fn capability_statement(base_url: &str) -> Value {
    let resources: Vec<Value> = schema()
        .resource_types()
        .iter()
        .map(|rtype| {
            // AuditEvents are recorded by the server only.
            let interactions: Vec<Value> = TYPE_INTERACTIONS
                .iter()
                .filter(|c| {
                    *rtype != "AuditEvent"
                        || matches!(**c, "read" | "vread" | "search-type" | "history-instance" | "history-type")
                })
                .map(|c| json!({"code": c}))
                .collect();
            let mut operations: Vec<Value> = crate::service::operations::RESOURCE_OPERATIONS.iter().map(|op| {
                let name = op.trim_start_matches('$');
                json!({"name": name, "definition": format!("http://hl7.org/fhir/OperationDefinition/Resource-{name}")})
            }).collect();
            let terminology: &[&str] = match rtype.as_str() {
                "CodeSystem" => &["lookup", "validate-code", "subsumes"],
                "ValueSet" => &["expand", "validate-code"],
                _ => &[],
            };
            for name in terminology {
                operations.push(json!({
                    "name": name,
                    "definition": format!("http://hl7.org/fhir/OperationDefinition/{rtype}-{name}"),
                }));
            }
            if *rtype == "Encounter" {
                operations.push(json!({
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Encounter-everything",
                    "documentation": "The encounter's record: the Encounter, its compartment (without AuditEvents) and the Patients, Practitioners, PractitionerRoles, Organizations, Locations, Medications and Devices it refers to; _since, _type, _count."
                }));
            }
            if *rtype == "Patient" {
                operations.push(json!({
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    "documentation": "The patient's record: the Patient, its compartment (without AuditEvents) and the Practitioners, PractitionerRoles, Organizations, Locations, Medications and Devices it refers to; _since, _type, _count, start and end (care dates). Patient/$everything gathers every patient the caller may search."
                }));
                operations.push(json!({
                    "name": "erase",
                    "definition": "http://charaka.dev/fhir/OperationDefinition/Patient-erase",
                    "documentation": "Administrators only: removes the patient and every resource of their compartment for good (all versions and index rows), blanks the HL7 v2 messages that wrote them, and keeps an AuditEvent of the erasure."
                }));
            }
            json!({
                "type": rtype,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{rtype}"),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "full-support",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchInclude": search_includes(rtype),
                "searchRevInclude": search_revincludes(rtype),
                "searchParam": search_params(rtype),
                "operation": operations,
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
            "security": crate::auth::discovery::capability_security(
                &format!("{}/auth", crate::auth::origin_of(base_url)),
                true,
            ),
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
            "searchParam": search_params("Patient")
                .into_iter()
                .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with('_')))
                .collect::<Vec<_>>(),
            "operation": [{
                "name": "reindex",
                "definition": "http://charaka.dev/fhir/OperationDefinition/reindex",
                "documentation": "POST rebuilds the search index in the background; GET shows its progress (Parameters: status, processed, total)"
            }],
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
