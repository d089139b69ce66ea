//! The codes of terminology-backed token searches (`:in`, `:not-in`,
//! `:below`, `:above`, see `search::codes`): every code set of a plan is
//! resolved here, through the terminology service, before the plan reaches
//! the store. A value or code the server cannot resolve, or a set of more
//! than `MAX_CODES` codes, is a 400 naming the parameter.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::search::codes::{code_sets_mut, CodeSet, CodeSource, MAX_CODES};
use crate::store::query::Filter;
use crate::terminology::codesystem::CodeSystem;
use crate::terminology::valueset;

fn bad(set: &CodeSet, message: impl std::fmt::Display) -> FhirError {
    FhirError::invalid(format!("search parameter `{}`: {message}", set.param))
}

/// A client-side failure of the terminology service, restated for the
/// search parameter; server failures stay as they are.
fn restated(set: &CodeSet, what: String, e: FhirError) -> FhirError {
    if e.status >= 500 {
        return e;
    }
    let why: Vec<&str> = e.issues.iter().map(|i| i.diagnostics.as_str()).collect();
    bad(set, format!("{what}: {}", why.join("; ")))
}

fn too_many(set: &CodeSet, what: &str, n: usize) -> FhirError {
    FhirError::bad_request(
        IssueType::TooCostly,
        format!(
            "search parameter `{}`: {what} has {n} codes, more than the {MAX_CODES} a search can use; name a narrower value set or code",
            set.param
        ),
    )
}

/// The `(system, code)` pairs of an expansion's `contains`, nested ones
/// included.
fn expansion_codes(contains: &Value, out: &mut Vec<(String, String)>) {
    for c in contains.as_array().into_iter().flatten() {
        if let (Some(system), Some(code)) = (
            c.get("system").and_then(Value::as_str),
            c.get("code").and_then(Value::as_str),
        ) {
            out.push((system.to_string(), code.to_string()));
        }
        if let Some(nested) = c.get("contains") {
            expansion_codes(nested, out);
        }
    }
}

impl Fhir {
    /// Fills in the codes of every code set in `filters`.
    pub async fn resolve_code_sets(&self, filters: &mut [Filter]) -> FhirResult<()> {
        for set in code_sets_mut(filters) {
            if set.codes.is_none() {
                // Boxed: reading a stored ValueSet is itself a search.
                let codes = Box::pin(self.codes_of(set)).await?;
                set.codes = Some(codes);
            }
        }
        Ok(())
    }

    async fn codes_of(&self, set: &CodeSet) -> FhirResult<Vec<(String, String)>> {
        match &set.source {
            CodeSource::ValueSet(reference) => {
                let vs = self.search_value_set(set, reference).await?;
                if vs.get("compose").is_none() {
                    if let Some(contains) = vs.pointer("/expansion/contains") {
                        // Stored already expanded.
                        let mut codes = Vec::new();
                        expansion_codes(contains, &mut codes);
                        if codes.len() > MAX_CODES {
                            return Err(too_many(
                                set,
                                &format!("value set `{reference}`"),
                                codes.len(),
                            ));
                        }
                        return Ok(codes);
                    }
                }
                let members = self.members(&vs, 0).await.map_err(|e| {
                    restated(
                        set,
                        format!("value set `{reference}` cannot be expanded"),
                        e,
                    )
                })?;
                let n = members.len();
                if n > MAX_CODES {
                    return Err(too_many(set, &format!("value set `{reference}`"), n));
                }
                let mut codes = Vec::with_capacity(n);
                for part in &members.parts {
                    let cs = &part.cs;
                    let mut push =
                        |id: u32| codes.push((cs.url.clone(), cs.get(id).code.to_string()));
                    match &part.ids {
                        Some(ids) => ids.iter().copied().for_each(&mut push),
                        None => cs.order.iter().copied().for_each(&mut push),
                    }
                }
                codes.extend(
                    members
                        .listed
                        .iter()
                        .map(|l| (l.system.clone(), l.code.clone())),
                );
                Ok(codes)
            }
            CodeSource::Below { system, code } => {
                let (cs, id) = self.search_concept(set, system, code).await?;
                let below = cs.descendants(id);
                if below.len() + 1 > MAX_CODES {
                    return Err(too_many(
                        set,
                        &format!("`{code}` with its descendants"),
                        below.len() + 1,
                    ));
                }
                Ok(std::iter::once(id)
                    .chain(below.iter().copied())
                    .map(|i| (cs.url.clone(), cs.get(i).code.to_string()))
                    .collect())
            }
            CodeSource::Above { system, code } => {
                let (cs, id) = self.search_concept(set, system, code).await?;
                let mut codes = Vec::new();
                let mut at = Some(id);
                while let Some(i) = at {
                    let c = cs.get(i);
                    codes.push((cs.url.clone(), c.code.to_string()));
                    at = c.parent;
                }
                Ok(codes)
            }
        }
    }

    /// The ValueSet a `:in` value names: an implicit value set URL, a
    /// reference `ValueSet/{id}` (relative or on this server), or a
    /// canonical URL with an optional `|version`.
    async fn search_value_set(&self, set: &CodeSet, reference: &str) -> FhirResult<Value> {
        if let Some(compose) = valueset::implicit_compose(reference) {
            return Ok(json!({"resourceType": "ValueSet", "url": reference, "compose": compose}));
        }
        let local = reference
            .strip_prefix(self.base_url.trim_end_matches('/'))
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(reference);
        if let Some(id) = local
            .strip_prefix("ValueSet/")
            .filter(|id| !id.contains('/'))
        {
            return self
                .stored_by_id("ValueSet", id)
                .await
                .map_err(|e| match e.status {
                    404 | 410 => bad(
                        set,
                        format!("value set `{reference}` is not known to this server"),
                    ),
                    _ => e,
                });
        }
        let (url, version) = match reference.split_once('|') {
            Some((u, v)) => (u, Some(v)),
            None => (reference, None),
        };
        self.stored_by_url("ValueSet", url, version)
            .await?
            .ok_or_else(|| {
                bad(
                    set,
                    format!("value set `{reference}` is not known to this server"),
                )
            })
    }

    /// The code system and concept a `:below`/`:above` value names.
    async fn search_concept(
        &self,
        set: &CodeSet,
        system: &str,
        code: &str,
    ) -> FhirResult<(Arc<CodeSystem>, u32)> {
        let cs = self
            .code_system(system, None)
            .await
            .map_err(|e| restated(set, format!("code system `{system}` cannot be read"), e))?
            .ok_or_else(|| {
                bad(
                    set,
                    format!("code system `{system}` is not known to this server (ICD-10-CM and stored CodeSystems with their concepts are)"),
                )
            })?;
        if cs.content != "complete" {
            return Err(bad(
                set,
                format!(
                    "code system `{system}` has content `{}`; `:below` and `:above` need a complete code system",
                    cs.content
                ),
            ));
        }
        let id = cs
            .id_of(code)
            .ok_or_else(|| bad(set, format!("`{code}` is not a code of {system}")))?;
        Ok((cs, id))
    }
}
