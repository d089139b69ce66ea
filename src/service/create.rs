//! create and conditional create (http://hl7.org/fhir/R4/http.html#create).

use serde_json::Value;

use super::prepared::Prepared;
use super::{check_type, input, Fhir, WriteOutcome, WriteStatus};
use crate::error::{FhirError, FhirResult};
use crate::store::query::Lookup;
use crate::store::WriteTx;

use super::conditional::Criteria;

impl Fhir {
    /// Creates a resource with a server-assigned id. With `If-None-Exist`
    /// criteria, an existing match is returned instead (200), and more than
    /// one match is 412.
    pub async fn create(
        &self,
        rtype: &str,
        body: Value,
        if_none_exist: Option<&str>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let resource = self.prepare_write(rtype, input::prepare(rtype, body)?)?;
        let criteria = if_none_exist.map(|q| self.criteria(rtype, q)).transpose()?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self
                .create_in(&mut tx, rtype, &resource, criteria.as_ref())
                .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    /// The create interaction inside an open write transaction.
    pub async fn create_in(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        resource: &Prepared,
        criteria: Option<&Criteria>,
    ) -> FhirResult<WriteOutcome> {
        if let Some(criteria) = criteria {
            if let Some(existing) = self.match_one(tx, rtype, criteria).await? {
                let found = tx.read(self.tenant, rtype, &existing).await?;
                return Ok(WriteOutcome {
                    status: WriteStatus::Unchanged,
                    version: found.map(|v| super::VersionOut::stored(rtype, &existing, v)),
                    warnings: Vec::new(),
                });
            }
        }
        let id = crate::fhir::meta::new_id();
        let version = self
            .write_resource(tx, rtype, &id, None, resource, "POST")
            .await?;
        Ok(WriteOutcome {
            status: WriteStatus::Created,
            version: Some(version),
            warnings: resource.warnings.clone(),
        })
    }

    /// Evaluates conditional criteria under a lock on them: the id of the one
    /// match, None for no match, 412 for several.
    pub(super) async fn match_one(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        criteria: &Criteria,
    ) -> FhirResult<Option<String>> {
        let lookup = Lookup {
            rtype,
            filters: &criteria.filters,
            limit: 2,
        };
        let key = criteria.lock_key(self.tenant, rtype);
        let mut found = tx
            .find_each_locked(self.tenant, &[lookup], &[Some(key)])
            .await?;
        only_match(found.pop().unwrap_or_default(), rtype)
    }
}

/// The one resource conditional criteria matched (None: none), or the
/// error of several (a lookup of at most 2).
pub(super) fn only_match(mut found: Vec<String>, rtype: &str) -> FhirResult<Option<String>> {
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(FhirError::multiple_matches(format!(
            "the criteria match more than one {rtype}"
        ))),
    }
}
