//! A resource made ready for writing before the write transaction opens.
//!
//! Coding validation and index extraction are the costly, pure parts of a
//! write. Doing them first keeps the transaction short: on SQLite it holds
//! the database's one writer, so every millisecond spent inside it is a
//! millisecond every other writer waits.

use serde_json::{Map, Value};

use super::Fhir;
use crate::error::FhirResult;
use crate::fhir::outcome::Issue;
use crate::search::extract::index_rows;
use crate::store::IndexRows;

/// A validated resource with its search index rows.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The resource as the client sent it (normalised by `input::prepare`),
    /// before the server stamps `id` and `meta`.
    pub resource: Map<String, Value>,
    /// Its index rows; none of them depend on the stamped id or meta.
    pub index: IndexRows,
    /// Warnings of the coding check (the write goes ahead).
    pub warnings: Vec<Issue>,
}

impl Fhir {
    /// Checks the resource's codings and extracts its index rows.
    pub fn prepare_write(&self, rtype: &str, resource: Map<String, Value>) -> FhirResult<Prepared> {
        let resource = Value::Object(resource);
        let warnings = self.check_codings(rtype, &resource)?;
        if rtype == "SearchParameter" {
            self.check_search_parameter(&resource)?;
        }
        let index = index_rows(&self.search_registry(), rtype, &resource, &self.base_url);
        let Value::Object(resource) = resource else {
            unreachable!("wrapped above")
        };
        Ok(Prepared {
            resource,
            index,
            warnings,
        })
    }

    /// `prepared` with the tags and security labels of the stored version
    /// it replaces carried over (`fhir::meta::carry_tags_and_labels`) and
    /// its index rows extracted again; None when it has them all already.
    pub(super) fn carry_meta(
        &self,
        rtype: &str,
        prepared: &Prepared,
        stored: &[u8],
    ) -> FhirResult<Option<Prepared>> {
        let stored: Value = serde_json::from_slice(stored).map_err(|e| {
            crate::error::FhirError::internal(format!("stored JSON is unreadable: {e}"))
        })?;
        let mut resource = prepared.resource.clone();
        if !crate::fhir::meta::carry_tags_and_labels(&mut resource, &stored) {
            return Ok(None);
        }
        let resource = Value::Object(resource);
        let index = index_rows(&self.search_registry(), rtype, &resource, &self.base_url);
        let Value::Object(resource) = resource else {
            unreachable!("wrapped above")
        };
        Ok(Some(Prepared {
            resource,
            index,
            warnings: prepared.warnings.clone(),
        }))
    }
}
