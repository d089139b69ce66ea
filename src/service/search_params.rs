//! Custom search parameters: SearchParameter resources written through the
//! API. The registry the server searches and indexes with is the built-in
//! R4 parameters plus the tenant's SearchParameter resources whose
//! `status` is `active` (drafts and retired ones are stored, not used; one
//! whose `url` is a built-in parameter's stays the built-in one). It is
//! read from the database at start and, after every commit that wrote a
//! SearchParameter, read again and swapped whole (`RwLock<Arc<Registry>>`:
//! a search holds one snapshot from start to end).
//!
//! New writes index with the registry of the moment. Resources written
//! before a parameter was added or changed are indexed again by a reindex
//! job over the parameter's base types (`service::reindex`); until it ends
//! the parameter is `pending` and searches on it carry a warning that
//! results may be incomplete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::search::registry::{registry, Registry};

/// The registry in use, swapped whole when SearchParameters change.
pub struct SearchParams {
    current: RwLock<Arc<Registry>>,
    /// Serialises reloads, so the last one to run installs the newest
    /// state of the database.
    reload: tokio::sync::Mutex<()>,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            current: RwLock::new(Arc::new(registry().clone())),
            reload: tokio::sync::Mutex::new(()),
        }
    }
}

/// Whether a SearchParameter resource takes part in search.
fn in_use(definition: &Value) -> bool {
    definition.get("status").and_then(Value::as_str) == Some("active")
        && !definition
            .get("url")
            .and_then(Value::as_str)
            .is_some_and(|url| registry().defines_url(url))
}

impl Fhir {
    /// The search parameters of this server's tenant, as they are now.
    pub fn search_registry(&self) -> Arc<Registry> {
        self.search_params
            .current
            .read()
            .expect("not poisoned")
            .clone()
    }

    /// Whether existing `rtype` resources are still being indexed for the
    /// custom parameter `code`.
    pub fn reindex_pending(&self, rtype: &str, code: &str) -> bool {
        self.reindex_job.is_pending(rtype, code)
    }

    /// Checks an active SearchParameter about to be written (id as stored,
    /// None on create): 400 naming the element when the expression is not
    /// FHIRPath, the type or a base is unknown, components do not fit, or
    /// the code is taken on a base by a built-in parameter or another
    /// SearchParameter. Drafts and retired definitions, which the server
    /// does not use, are stored as they are (the official R4 examples
    /// include drafts of `_id`, `_filter` and expression-less parameters);
    /// a draft made active is checked then.
    pub fn check_search_parameter(&self, resource: &Value) -> FhirResult<()> {
        let url = resource.get("url").and_then(Value::as_str);
        if url.is_some_and(|u| registry().defines_url(u)) {
            // A copy of a built-in definition: stored, the built-in stays.
            return Ok(());
        }
        let id = resource.get("id").and_then(Value::as_str);
        let active = resource.get("status").and_then(Value::as_str) == Some("active");
        if !active {
            return Ok(());
        }
        self.search_registry()
            .check_definition(id, resource, active)
            .map_err(|e| {
                FhirError::invalid_issues(vec![Issue::new(
                    Severity::Error,
                    IssueType::Invalid,
                    format!("SearchParameter: {} {}", e.element, e.message),
                )
                .at(e.element)])
            })
    }

    /// Reads the tenant's SearchParameter resources and installs the
    /// registry they make; returns the (type, code) of custom parameters
    /// added, changed or removed.
    pub async fn load_search_parameters(&self) -> FhirResult<Vec<(String, String)>> {
        let _guard = self.search_params.reload.lock().await;
        let types = ["SearchParameter".to_string()];
        let mut definitions = Vec::new();
        let mut after = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let batch = tx.live_batch(self.tenant, Some(&types), after, 500).await;
            let _ = tx.rollback().await;
            let batch = batch?;
            let Some(last) = batch.last() else { break };
            after = last.rid;
            for r in &batch {
                let value: Value = serde_json::from_slice(&r.body)
                    .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
                if in_use(&value) {
                    let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
                    definitions.push((id.to_string(), value));
                }
            }
        }
        let (next, errors) = registry().with_custom(&definitions);
        for (id, e) in errors {
            tracing::warn!(
                id = %id,
                element = e.element,
                error = %e.message,
                "SearchParameter left out of search"
            );
        }
        let next = Arc::new(next);
        let previous = std::mem::replace(
            &mut *self.search_params.current.write().expect("not poisoned"),
            next.clone(),
        );
        Ok(changed(&previous, &next))
    }

    /// After a commit that wrote SearchParameters: the registry read again,
    /// and the types of changed parameters reindexed in the background.
    pub async fn search_parameters_written(&self) {
        match self.load_search_parameters().await {
            Ok(changed) => {
                let reg = self.search_registry();
                let types: BTreeSet<String> = changed.iter().map(|(t, _)| t.clone()).collect();
                // Removed parameters need no reindex to be unknown, but
                // their rows are dropped by it.
                let now: Vec<(String, String)> = changed
                    .into_iter()
                    .filter(|(t, c)| reg.get(t, c).is_some())
                    .collect();
                self.request_reindex(types, now);
            }
            Err(err) => {
                tracing::error!(error = %err, "search parameters could not be read again")
            }
        }
    }
}

/// The (type, code) of custom parameters that differ between two registries.
fn changed(old: &Registry, new: &Registry) -> Vec<(String, String)> {
    let sigs = |r: &Registry| -> BTreeMap<(String, String), String> {
        r.custom_params()
            .into_iter()
            .map(|p| ((p.rtype.clone(), p.code.clone()), p.signature()))
            .collect()
    };
    let (a, b) = (sigs(old), sigs(new));
    let keys: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
