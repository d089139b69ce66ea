//! Resource operations: `$validate` (http://hl7.org/fhir/R4/resource-operation-validate.html)
//! and `$meta`, `$meta-add`, `$meta-delete`
//! (http://hl7.org/fhir/R4/resource-operation-meta.html).

use serde_json::{json, Map, Value};

use super::{check_type, input, Fhir};
use crate::auth::Access;
use crate::error::{FhirError, FhirResult};
use crate::fhir::invariants;
use crate::fhir::outcome::{operation_outcome, Issue, IssueType, Severity};
use crate::fhir::primitive::is_id;
use crate::fhir::validate::validate_resource;

/// Operations on resource types and instances, by name (with the `$`).
pub const RESOURCE_OPERATIONS: &[&str] = &["$validate", "$meta", "$meta-add", "$meta-delete"];

/// A named parameter of a `Parameters` body.
fn parameter<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    params
        .get("parameter")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
}

impl Fhir {
    /// `$validate`: the answer is an OperationOutcome listing every problem
    /// (200 even when the resource is invalid); errors of the request itself
    /// are `FhirError`s. `mode` and `profile` come from the Parameters body
    /// or the query; stored resources the resource refers to are read (for
    /// `targetProfile`s) as `access` allows.
    pub async fn validate_operation(
        &self,
        rtype: &str,
        id: Option<&str>,
        body: Value,
        query: &[(String, String)],
        access: &Access,
    ) -> FhirResult<Value> {
        check_type(rtype)?;
        let Value::Object(body) = body else {
            return Err(FhirError::invalid(
                "$validate takes a resource or a Parameters resource",
            ));
        };
        let is_parameters = body.get("resourceType").and_then(Value::as_str) == Some("Parameters")
            && rtype != "Parameters";
        let (resource, mode, profile) = if is_parameters {
            let resource = parameter(&body, "resource")
                .and_then(|p| p.get("resource"))
                .cloned();
            let mode = parameter(&body, "mode")
                .and_then(|p| p.get("valueCode"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let profile = parameter(&body, "profile")
                .and_then(|p| p.get("valueUri").or_else(|| p.get("valueCanonical")))
                .and_then(Value::as_str)
                .map(str::to_string);
            (resource, mode, profile)
        } else {
            (Some(Value::Object(body)), None, None)
        };
        let from_query = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mode = mode.or_else(|| from_query("mode"));
        let profile = profile.or_else(|| from_query("profile"));
        // An unknown profile is an error of the request, found before any work.
        let named = match &profile {
            Some(url) => Some(self.find_profile(url).await?.ok_or_else(|| {
                FhirError::new(
                    400,
                    IssueType::NotFound,
                    format!("profile {url} is not known to this server (neither shipped in profiles/ nor a stored StructureDefinition)"),
                )
            })?),
            None => None,
        };
        let mut issues: Vec<Issue> = Vec::new();
        match mode.as_deref() {
            None | Some("create") | Some("update") | Some("delete") => {}
            Some(other) => {
                return Err(FhirError::invalid(format!(
                    "mode must be create, update or delete, not `{other}`"
                )))
            }
        }
        if mode.as_deref() == Some("delete") {
            let Some(id) = id else {
                return Err(FhirError::invalid(
                    "mode=delete needs an instance: POST [type]/[id]/$validate",
                ));
            };
            if self
                .store
                .read(self.tenant, rtype, id)
                .await?
                .is_none_or(|v| v.deleted)
            {
                issues.push(Issue::new(
                    Severity::Error,
                    IssueType::NotFound,
                    format!("{rtype}/{id} does not exist; it cannot be deleted"),
                ));
            }
        } else {
            let Some(resource) = resource else {
                return Err(FhirError::bad_request(
                    IssueType::Required,
                    "no resource to validate",
                ));
            };
            if resource.get("resourceType").and_then(Value::as_str) != Some(rtype) {
                issues.push(
                    Issue::new(
                        Severity::Error,
                        IssueType::Invalid,
                        format!("the resource is not a {rtype}"),
                    )
                    .at(rtype.to_string()),
                );
            }
            let structural = validate_resource(&resource);
            let sound = !structural
                .iter()
                .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal));
            issues.extend(structural);
            // Invariants and profiles need a structurally sound resource.
            if sound {
                issues.extend(invariants::check(&resource));
                if let Some(found) = &named {
                    let p = found.profile();
                    issues.extend(self.validate_against(p, &resource, access).await);
                }
                let declared = self.declared_profiles(&resource, profile.as_deref(), access);
                issues.extend(declared.await);
            }
            // ICD-10-CM codings, as a write would check them.
            match self.check_codings(rtype, &resource) {
                Ok(warnings) => issues.extend(warnings),
                Err(rejected) => issues.extend(rejected.issues),
            }
            if mode.as_deref() == Some("update") {
                let body_id = resource.get("id").and_then(Value::as_str);
                match (id, body_id) {
                    (Some(url_id), Some(b)) if url_id != b => issues.push(
                        Issue::new(
                            Severity::Error,
                            IssueType::Invalid,
                            format!("the resource id `{b}` does not match `{url_id}`"),
                        )
                        .at(format!("{rtype}.id")),
                    ),
                    (_, None) => issues.push(
                        Issue::new(
                            Severity::Error,
                            IssueType::Required,
                            "an update needs the resource id",
                        )
                        .at(format!("{rtype}.id")),
                    ),
                    _ => {}
                }
            }
        }
        if !issues
            .iter()
            .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        {
            issues.insert(
                0,
                Issue::new(
                    Severity::Information,
                    IssueType::Informational,
                    "validation found no errors",
                ),
            );
        }
        Ok(operation_outcome(&issues))
    }

    /// Validation against each profile of `meta.profile` (but `skip`, the
    /// one named by the request); an unknown one is a warning.
    async fn declared_profiles(
        &self,
        resource: &Value,
        skip: Option<&str>,
        access: &Access,
    ) -> Vec<Issue> {
        let mut issues = Vec::new();
        let declared: Vec<&str> = resource
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|p| Some(*p) != skip)
            .collect();
        let rtype = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for url in declared {
            match self.find_profile(url).await {
                Ok(Some(found)) => {
                    issues.extend(self.validate_against(found.profile(), resource, access).await)
                }
                Ok(None) => issues.push(
                    Issue::new(
                        Severity::Warning,
                        IssueType::NotFound,
                        format!("meta.profile {url} is not known to this server; the resource was not checked against it"),
                    )
                    .at(format!("{rtype}.meta.profile")),
                ),
                Err(e) => issues.push(Issue::new(
                    Severity::Warning,
                    IssueType::NotSupported,
                    format!("meta.profile {url} cannot be used: {}", e.issues.first().map(|i| i.diagnostics.as_str()).unwrap_or("")),
                )),
            }
        }
        issues
    }

    /// `$meta`: the current `meta` of an instance as Parameters.
    pub async fn meta_operation(&self, rtype: &str, id: &str) -> FhirResult<Value> {
        let current = self.read(rtype, id).await?;
        let resource: Value =
            serde_json::from_slice(current.body.as_deref().unwrap_or_default())
                .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
        Ok(meta_parameters(
            resource.get("meta").cloned().unwrap_or_else(|| json!({})),
        ))
    }

    /// `$meta-add` / `$meta-delete`: adds or removes profiles, tags and
    /// security labels; the change is written as a new version.
    pub async fn meta_change_operation(
        &self,
        rtype: &str,
        id: &str,
        body: Value,
        add: bool,
    ) -> FhirResult<Value> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        if !is_id(id) {
            return Err(FhirError::not_found(format!("`{id}` is not a valid id")));
        }
        let change = body
            .as_object()
            .filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Parameters"))
            .and_then(|b| parameter(b, "meta"))
            .and_then(|p| p.get("valueMeta"))
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| {
                FhirError::invalid(
                    "the body must be Parameters with a `meta` parameter (valueMeta)",
                )
            })?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = async {
                let current = tx.current(self.tenant, rtype, id).await?;
                let Some(meta_row) = current.as_ref() else {
                    return Err(FhirError::not_found(format!("{rtype}/{id} is not known")));
                };
                if meta_row.deleted {
                    return Err(FhirError::gone(
                        format!("{rtype}/{id} was deleted"),
                        meta_row.version,
                    ));
                }
                let stored = tx
                    .read(self.tenant, rtype, id)
                    .await?
                    .and_then(|v| v.body)
                    .unwrap_or_default();
                let Value::Object(mut resource) = serde_json::from_slice::<Value>(&stored)
                    .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?
                else {
                    return Err(FhirError::internal("stored resource is not an object"));
                };
                let meta = resource.entry("meta").or_insert_with(|| json!({}));
                let Value::Object(meta) = meta else {
                    return Err(FhirError::internal("stored meta is not an object"));
                };
                for key in ["profile", "tag", "security"] {
                    let items: Vec<Value> = change
                        .get(key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let mut list: Vec<Value> = meta
                        .get(key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for item in items {
                        let same = |x: &Value| match key {
                            "profile" => x == &item,
                            _ => {
                                x.get("system") == item.get("system")
                                    && x.get("code") == item.get("code")
                            }
                        };
                        if add {
                            if !list.iter().any(same) {
                                list.push(item);
                            }
                        } else {
                            list.retain(|x| !same(x));
                        }
                    }
                    if list.is_empty() {
                        meta.remove(key);
                    } else {
                        meta.insert(key.to_string(), Value::Array(list));
                    }
                }
                let result_meta = meta.clone();
                let prepared =
                    self.prepare_write(rtype, input::prepare(rtype, Value::Object(resource))?)?;
                let written = self
                    .write_resource(&mut tx, rtype, id, current.as_ref(), &prepared, "PUT")
                    .await?;
                let mut result_meta = result_meta;
                result_meta.insert("versionId".into(), json!(written.version.to_string()));
                result_meta.insert(
                    "lastUpdated".into(),
                    json!(crate::fhir::datetime::format_instant(written.last_updated)),
                );
                Ok(meta_parameters(Value::Object(result_meta)))
            }
            .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }
}

fn meta_parameters(meta: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]})
}
