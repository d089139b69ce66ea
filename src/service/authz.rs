//! Authorization of FHIR interactions: what a caller's scopes let it reach.
//!
//! Rules (documented in README.md, "Access control"):
//! - No scope granting the interaction's permission on the type → 403,
//!   naming the permission that is missing.
//! - `patient/` scopes reach the token's patient's compartment (R4 Patient
//!   CompartmentDefinition) and every resource of a type outside that
//!   compartment (Practitioner, Organization, Medication, ...). A read of a
//!   resource outside the reach answers 404, as if it did not exist, so a
//!   token cannot probe other patients' ids. Searches return only what is
//!   in reach, `_include`/`_revinclude` included.
//! - v2 constraints (`patient/Observation.rs?category=laboratory`) narrow
//!   reads and searches; a constrained grant does not allow writes.
//! - Writes under a limited reach must leave the resource in reach (a
//!   patient-scoped app cannot create an Observation about someone else).
//! - Conditional writes, type and system history need an unlimited grant.

use serde_json::Value;

use super::search::compartment_filter;
use super::Fhir;
use crate::auth::access::{Limit, Reach};
use crate::auth::scopes::Perm;
use crate::auth::Access;
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::search::parse::parse_filter;
use crate::search::registry::registry;
use crate::store::query::Filter;

/// 403 naming what is missing.
pub fn forbidden(perm: Perm, rtype: &str) -> FhirError {
    FhirError::new(
        403,
        IssueType::Forbidden,
        format!(
            "the access token does not allow {} of {rtype} (a scope such as user/{rtype}.{} or patient/{rtype}.{} is needed)",
            match perm {
                Perm::Create => "create",
                Perm::Read => "read",
                Perm::Update => "update",
                Perm::Delete => "delete",
                Perm::Search => "search",
            },
            letter(perm),
            letter(perm)
        ),
    )
}

fn letter(perm: Perm) -> char {
    match perm {
        Perm::Create => 'c',
        Perm::Read => 'r',
        Perm::Update => 'u',
        Perm::Delete => 'd',
        Perm::Search => 's',
    }
}

/// Whether `resource` (of `rtype`) is in the compartment of Patient `pid`.
pub fn in_patient_compartment(rtype: &str, resource: &Value, pid: &str, base_url: &str) -> bool {
    compartment_patients(rtype, resource, base_url)
        .iter()
        .any(|p| p == pid)
}

/// Ids of the patients whose compartment holds `resource` (for a Patient,
/// its own id), evaluating only the compartment's parameters.
pub fn compartment_patients(rtype: &str, resource: &Value, base_url: &str) -> Vec<String> {
    if rtype == "Patient" {
        return resource
            .get("id")
            .and_then(Value::as_str)
            .map(|id| vec![id.to_string()])
            .unwrap_or_default();
    }
    let params = super::search::compartment_params("Patient", rtype);
    if params.is_empty() {
        return Vec::new();
    }
    let rows =
        crate::search::extract::index_rows_for(registry(), rtype, resource, base_url, &params);
    patients_in_rows(rtype, &rows)
}

/// The patients named by the Patient-compartment parameters among `rows`
/// (the index rows of an `rtype`).
pub fn patients_in_rows(rtype: &str, rows: &crate::store::IndexRows) -> Vec<String> {
    let params = super::search::compartment_params("Patient", rtype);
    let pids: Vec<i64> = params
        .iter()
        .filter_map(|code| registry().get(rtype, code).map(|p| p.pid))
        .collect();
    let mut patients: Vec<String> = rows
        .references
        .iter()
        .filter(|r| pids.contains(&r.pid) && r.ttype == "Patient")
        .map(|r| r.tid.clone())
        .collect();
    patients.sort();
    patients.dedup();
    patients
}

impl Fhir {
    /// The reach of `access` for `perm` on `rtype`, or 403.
    pub fn permit(&self, access: &Access, perm: Perm, rtype: &str) -> FhirResult<Reach> {
        let reach = access
            .reach(perm, rtype)
            .ok_or_else(|| forbidden(perm, rtype))?;
        // Writes cannot be checked against search constraints before they
        // are stored: constrained grants do not allow writes.
        if matches!(perm, Perm::Create | Perm::Update | Perm::Delete) {
            if let Reach::Some(limits) = &reach {
                let usable: Vec<Limit> = limits
                    .iter()
                    .filter(|l| l.constraints.is_empty())
                    .cloned()
                    .collect();
                if usable.is_empty() {
                    return Err(forbidden(perm, rtype));
                }
                return Ok(Reach::Some(usable));
            }
        }
        Ok(reach)
    }

    /// Like `permit`, but only an unlimited grant will do (conditional
    /// writes, type history).
    pub fn permit_all(
        &self,
        access: &Access,
        perm: Perm,
        rtype: &str,
        what: &str,
    ) -> FhirResult<()> {
        match self.permit(access, perm, rtype)? {
            Reach::All => Ok(()),
            Reach::Some(_) => Err(FhirError::new(
                403,
                IssueType::Forbidden,
                format!("{what} needs a scope without patient or search limits on {rtype}"),
            )),
        }
    }

    /// Administration of the server (`$reindex`, system history).
    pub fn permit_admin(&self, access: &Access, what: &str) -> FhirResult<()> {
        if access.is_administrator() {
            Ok(())
        } else {
            Err(FhirError::new(
                403,
                IssueType::Forbidden,
                format!("{what} needs an administrator (system/*.cruds)"),
            ))
        }
    }

    /// Feeding messages that write many resource types (HL7 v2 over HTTP):
    /// create and update on every type without limits (`system/*.cu` or
    /// wider).
    pub fn permit_feed(&self, access: &Access) -> FhirResult<()> {
        let ok = access.unrestricted
            || access.scopes.resources.iter().any(|r| {
                r.rtype.is_none()
                    && r.constraints.is_empty()
                    && r.context == crate::auth::scopes::Context::System
                    && r.perms.has(Perm::Create)
                    && r.perms.has(Perm::Update)
            });
        if ok {
            Ok(())
        } else {
            Err(FhirError::new(
                403,
                IssueType::Forbidden,
                "sending HL7 v2 messages needs a system/*.cu (or wider) scope",
            ))
        }
    }

    /// Whether a resource is within `reach`. `id` and `resource` are the
    /// stored resource's (constraints are checked against the index).
    pub async fn within_reach(
        &self,
        reach: &Reach,
        rtype: &str,
        id: &str,
        resource: &Value,
    ) -> FhirResult<bool> {
        let mut reader = crate::store::Reader::Pool(&self.store);
        self.within_reach_in(&mut reader, reach, rtype, id, resource)
            .await
    }

    /// `within_reach`, reading through `reader`.
    pub async fn within_reach_in(
        &self,
        reader: &mut crate::store::Reader<'_>,
        reach: &Reach,
        rtype: &str,
        id: &str,
        resource: &Value,
    ) -> FhirResult<bool> {
        let Reach::Some(limits) = reach else {
            return Ok(true);
        };
        for limit in limits {
            if let Some(pid) = &limit.patient {
                if !in_patient_compartment(rtype, resource, pid, &self.base_url) {
                    continue;
                }
            }
            if limit.constraints.is_empty() {
                return Ok(true);
            }
            let mut filters = vec![Filter::Ids(vec![id.to_string()])];
            let reg = self.search_registry();
            for (k, v) in &limit.constraints {
                filters.push(parse_filter(&reg, rtype, k, v, &self.base_url, 0)?);
            }
            self.resolve_code_sets(&mut filters).await?;
            let q = crate::store::SearchQuery {
                types: vec![rtype.to_string()],
                filters,
                sort: Vec::new(),
                count: 1,
                page: crate::store::query::PageAt::First,
                counted_by_index: false,
            };
            if reader.count(self.tenant, &q).await? > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks that a resource a write would touch (the new content, or the
    /// stored version it replaces) is in reach; 403 otherwise.
    pub fn check_write_reach(
        &self,
        reach: &Reach,
        rtype: &str,
        resource: &Value,
        perm: Perm,
    ) -> FhirResult<()> {
        let Reach::Some(limits) = reach else {
            return Ok(());
        };
        // Only unconstrained limits remain for writes (see `permit`).
        let ok = limits.iter().any(|l| {
            l.patient
                .as_deref()
                .is_none_or(|pid| in_patient_compartment(rtype, resource, pid, &self.base_url))
        });
        if ok {
            Ok(())
        } else {
            Err(FhirError::new(
                403,
                IssueType::Forbidden,
                format!(
                    "the access token does not allow {} of this {rtype}: it is not in the patient's compartment",
                    perm.describe()
                ),
            ))
        }
    }

    /// The search filter that keeps results of `types` (all types when
    /// empty) within reach; None when the reach is unlimited. 403 when an
    /// explicitly searched type is not searchable at all.
    pub fn search_reach_filter(
        &self,
        access: &Access,
        types: &[String],
    ) -> FhirResult<Option<Filter>> {
        if access.unrestricted {
            return Ok(None);
        }
        let explicit = !types.is_empty();
        let all_types: Vec<String>;
        let considered: &[String] = if explicit {
            types
        } else {
            all_types = crate::fhir::schema::schema().resource_types().to_vec();
            &all_types
        };
        let mut groups = Vec::new();
        let mut limited = false;
        for t in considered {
            match access.reach(Perm::Search, t) {
                None if explicit => return Err(forbidden(Perm::Search, t)),
                None => limited = true,
                Some(Reach::All) => groups.push(vec![Filter::Types(vec![t.clone()])]),
                Some(Reach::Some(limits)) => {
                    limited = true;
                    for l in limits {
                        let mut group = vec![Filter::Types(vec![t.clone()])];
                        if let Some(pid) = &l.patient {
                            group.push(compartment_filter("Patient", pid, t)?);
                        }
                        for (k, v) in &l.constraints {
                            group.push(parse_filter(
                                &self.search_registry(),
                                t,
                                k,
                                v,
                                &self.base_url,
                                0,
                            )?);
                        }
                        groups.push(group);
                    }
                }
            }
        }
        if !limited {
            return Ok(None);
        }
        if groups.is_empty() {
            return Err(FhirError::new(
                403,
                IssueType::Forbidden,
                "the access token does not allow searching any resource type",
            ));
        }
        Ok(Some(Filter::Or(groups)))
    }
}

impl Fhir {
    /// Read (and vread) under `access`: 403 without the permission, 404 for
    /// a resource outside the reach.
    pub async fn ensure_visible(&self, access: &Access, v: &super::VersionOut) -> FhirResult<()> {
        let reach = self.permit(access, Perm::Read, &v.rtype)?;
        if reach == Reach::All {
            return Ok(());
        }
        let visible = match &v.body {
            Some(body) => {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
                self.within_reach(&reach, &v.rtype, &v.id, &value).await?
            }
            None => false,
        };
        if visible {
            Ok(())
        } else {
            Err(FhirError::not_found(format!(
                "{}/{} is not known",
                v.rtype, v.id
            )))
        }
    }

    /// A write of `perm` on `rtype/id` under `access`: the new content (if
    /// any) and the stored current version (if any) must be in reach.
    pub async fn permit_write(
        &self,
        access: &Access,
        perm: Perm,
        rtype: &str,
        id: Option<&str>,
        new: Option<&Value>,
    ) -> FhirResult<()> {
        let reach = self.permit(access, perm, rtype)?;
        if reach == Reach::All {
            return Ok(());
        }
        if let Some(new) = new {
            self.check_write_reach(&reach, rtype, new, perm)?;
        }
        if let Some(id) = id {
            if let Ok(current) = self.read(rtype, id).await {
                if let Some(body) = &current.body {
                    let value: Value = serde_json::from_slice(body).map_err(|e| {
                        FhirError::internal(format!("stored JSON is unreadable: {e}"))
                    })?;
                    self.check_write_reach(&reach, rtype, &value, perm)?;
                }
            }
        }
        Ok(())
    }

    /// A JSON Patch under `access`: the resource before and after the patch
    /// must be in reach.
    pub async fn permit_patch(
        &self,
        access: &Access,
        rtype: &str,
        id: &str,
        patch: &super::patch::Patch,
    ) -> FhirResult<()> {
        let reach = self.permit(access, Perm::Update, rtype)?;
        if reach == Reach::All {
            return Ok(());
        }
        let Ok(current) = self.read(rtype, id).await else {
            // Nothing to patch: the patch itself answers 404.
            return Ok(());
        };
        let Some(body) = &current.body else {
            return Ok(());
        };
        let mut value: Value = serde_json::from_slice(body)
            .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
        self.check_write_reach(&reach, rtype, &value, Perm::Update)?;
        if patch.apply(&mut value).is_ok() {
            self.check_write_reach(&reach, rtype, &value, Perm::Update)?;
        }
        Ok(())
    }

    /// History of every type (`GET [base]/_history`): an unlimited grant on
    /// all types.
    pub fn permit_system_history(&self, access: &Access) -> FhirResult<()> {
        let ok = access.unrestricted
            || access.scopes.resources.iter().any(|r| {
                r.rtype.is_none()
                    && r.perms.has(Perm::Read)
                    && r.constraints.is_empty()
                    && r.context != crate::auth::scopes::Context::Patient
                    && access.role.as_deref() != Some("patient")
            });
        if ok {
            Ok(())
        } else {
            Err(FhirError::new(
                403,
                IssueType::Forbidden,
                "the history of the whole server needs a user/*.r or system/*.r scope",
            ))
        }
    }

    /// Drops included resources the caller may not read.
    pub async fn visible_includes(
        &self,
        reader: &mut crate::store::Reader<'_>,
        access: &Access,
        included: Vec<crate::store::Included>,
    ) -> FhirResult<Vec<crate::store::Included>> {
        if access.unrestricted {
            return Ok(included);
        }
        let mut out = Vec::with_capacity(included.len());
        for i in included {
            let keep = match access.reach(Perm::Read, &i.rtype) {
                None => false,
                Some(Reach::All) => true,
                Some(reach) => {
                    let value: Value = serde_json::from_slice(&i.body).map_err(|e| {
                        FhirError::internal(format!("stored JSON is unreadable: {e}"))
                    })?;
                    self.within_reach_in(reader, &reach, &i.rtype, &i.id, &value)
                        .await?
                }
            };
            if keep {
                out.push(i);
            }
        }
        Ok(out)
    }
}
