//! Profiles for `$validate`: found by canonical URL (`url` or
//! `url|version`) among those shipped in `profiles/` or the
//! StructureDefinitions stored on the server; a resource validated against
//! one (`fhir::profile`), with the bindings the walker could not check
//! itself checked against value sets the terminology service can expand.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Fhir;
use crate::auth::Access;
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::fhir::profile::{self, BindingCheck, Lookup, Profile};
use crate::terminology::valueset::{self, Members};

/// A profile found: shipped (static) or read from a stored
/// StructureDefinition.
pub enum Found {
    Shipped(&'static Profile),
    Stored(Arc<Profile>),
}

impl Found {
    pub fn profile(&self) -> &Profile {
        match self {
            Found::Shipped(p) => p,
            Found::Stored(p) => p,
        }
    }
}

/// How many profiles one validation may look up (`type.profile`s,
/// `targetProfile`s).
const MAX_NEEDED: usize = 32;

/// How many stored resources one validation may read to check the
/// `targetProfile`s of references.
const MAX_REFERENCED: usize = 32;

/// `url|version` → (url, version).
fn split_canonical(canonical: &str) -> (&str, Option<&str>) {
    match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    }
}

impl Fhir {
    /// The profile with a canonical URL: Ok(None) when neither shipped nor
    /// stored; Err when a stored one cannot be used (no snapshot).
    pub async fn find_profile(&self, canonical: &str) -> FhirResult<Option<Found>> {
        let (url, version) = split_canonical(canonical);
        if let Some(p) = profile::shipped(url, version) {
            return Ok(Some(Found::Shipped(p)));
        }
        let Some(sd) = self
            .stored_by_url("StructureDefinition", url, version)
            .await?
        else {
            return Ok(None);
        };
        Profile::from_resource(&sd)
            .map(|p| Some(Found::Stored(Arc::new(p))))
            .map_err(|e| FhirError::new(422, IssueType::Processing, e))
    }

    /// The profiles `p` names (`type.profile`, `targetProfile`), and theirs
    /// in turn (at most [`MAX_NEEDED`]), by the canonical URL they are
    /// named by: shipped or stored; an unknown or unusable one is left out
    /// (what it would check is then reported as not checked).
    async fn needed_profiles(&self, p: &Profile) -> HashMap<String, Found> {
        let mut found: HashMap<String, Found> = HashMap::new();
        let mut queue = p.needed_profiles();
        let mut seen = 0;
        while let Some(url) = queue.pop() {
            if found.contains_key(&url) || seen >= MAX_NEEDED {
                continue;
            }
            seen += 1;
            if let Ok(Some(f)) = self.find_profile(&url).await {
                queue.extend(f.profile().needed_profiles());
                found.insert(url, f);
            }
        }
        found
    }

    /// The stored resources a validation against `p` may need to check
    /// `targetProfile`s: those the resource refers to (`Type/id`, at most
    /// [`MAX_REFERENCED`]) when `p` or a profile it names constrains a
    /// reference to a profile; those the caller may not read are left out.
    async fn referenced_resources(
        &self,
        p: &Profile,
        others: &HashMap<String, Found>,
        resource: &Value,
        access: &Access,
    ) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        let wanted =
            p.has_target_profiles() || others.values().any(|f| f.profile().has_target_profiles());
        if !wanted {
            return out;
        }
        for reference in profile::relative_references(resource, MAX_REFERENCED) {
            let Some((rtype, id)) = reference.split_once('/') else {
                continue;
            };
            let Ok(found) = self.read(rtype, id).await else {
                continue;
            };
            if self.ensure_visible(access, &found).await.is_err() {
                continue;
            }
            // The validation's findings may quote it: the request's audit
            // record names it as a read would.
            self.note_read(&found);
            let body = found.body.as_deref().unwrap_or_default();
            if let Ok(value) = serde_json::from_slice(body) {
                out.insert(reference, value);
            }
        }
        out
    }

    /// Validates a resource against a profile, bindings included; the
    /// resources it refers to are read as `access` allows.
    pub async fn validate_against(
        &self,
        p: &Profile,
        resource: &Value,
        access: &Access,
    ) -> Vec<Issue> {
        let others = self.needed_profiles(p).await;
        let stored = self
            .referenced_resources(p, &others, resource, access)
            .await;
        // The lookup (not Send) ends before the next await.
        let outcome = {
            let profiles = |url: &str| {
                others
                    .get(url)
                    .map(Found::profile)
                    .or_else(|| profile::shipped(url, None))
            };
            let resources = |reference: &str| stored.get(reference);
            let lookup = Lookup {
                profiles: &profiles,
                resources: Some(&resources),
            };
            p.validate_with(resource, &lookup)
        };
        let mut issues = outcome.issues;
        let mut sets: HashMap<String, Result<Members, String>> = HashMap::new();
        for check in outcome.bindings {
            if !sets.contains_key(&check.value_set) {
                let members = self.binding_members(&check.value_set).await;
                if let Err(why) = &members {
                    issues.push(
                        Issue::new(
                            Severity::Warning,
                            IssueType::NotSupported,
                            format!(
                                "the {} binding of {} to {} was not checked: {why}",
                                check.strength, check.location, check.value_set
                            ),
                        )
                        .at(check.location.clone()),
                    );
                }
                sets.insert(check.value_set.clone(), members);
            }
            if let Some(Ok(members)) = sets.get(&check.value_set) {
                if !binding_met(members, &check) {
                    issues.push(binding_issue(&check));
                }
            }
        }
        issues
    }

    /// The members of a bound value set, or why they cannot be had.
    async fn binding_members(&self, canonical: &str) -> Result<Members, String> {
        let (url, version) = split_canonical(canonical);
        let vs = match valueset::implicit_compose(url) {
            Some(compose) => serde_json::json!({"compose": compose}),
            None => match self.stored_by_url("ValueSet", url, version).await {
                Ok(Some(vs)) => vs,
                Ok(None) => return Err("the value set is not known to this server".into()),
                Err(e) => return Err(e.to_string()),
            },
        };
        self.members(&vs, 0).await.map_err(|e| e.to_string())
    }
}

/// Whether one of the codings is in the value set (a code without a system
/// matches a concept of any of its code systems).
fn binding_met(members: &Members, check: &BindingCheck) -> bool {
    check.codings.iter().any(|(system, code)| match system {
        Some(s) => members.find(s, code).is_some() || members.find_listed(s, code).is_some(),
        None => {
            members
                .parts
                .iter()
                .any(|p| members.find(&p.cs.url, code).is_some())
                || members.listed.iter().any(|l| &l.code == code)
        }
    })
}

fn binding_issue(check: &BindingCheck) -> Issue {
    let codes: Vec<String> = check
        .codings
        .iter()
        .map(|(s, c)| match s {
            Some(s) => format!("{s}#{c}"),
            None => c.clone(),
        })
        .collect();
    let severity = if check.strength == "required" {
        Severity::Error
    } else {
        Severity::Warning
    };
    Issue::new(
        severity,
        IssueType::CodeInvalid,
        format!(
            "{}: {} is not in the value set {} ({} binding)",
            check.location,
            codes.join(", "),
            check.value_set,
            check.strength
        ),
    )
    .at(check.location.clone())
}
