//! delete and conditional delete (http://hl7.org/fhir/R4/http.html#delete).
//! Deletion is logical: a new version marks the resource deleted; history
//! keeps every earlier version.

use super::{check_if_match, check_type, Fhir, VersionOut, WriteOutcome, WriteStatus};
use crate::error::{FhirError, FhirResult};
use crate::store::{NewVersion, WriteTx};

impl Fhir {
    /// Deletes `rtype/id`. Deleting what does not exist, or is already
    /// deleted, succeeds without writing anything.
    pub async fn delete(
        &self,
        rtype: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self.delete_in(&mut tx, rtype, id, if_match).await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    /// `DELETE [type]?criteria`: deletes every match (up to the configured
    /// maximum; more matches than that is 412). Returns how many were deleted.
    pub async fn conditional_delete(&self, rtype: &str, query: &str) -> FhirResult<usize> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let criteria = self.criteria(rtype, query)?;
        let max = i64::from(self.max_conditional_delete);
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = async {
                tx.lock_key(&criteria.lock_key(self.tenant, rtype)).await?;
                let ids = tx
                    .find(self.tenant, rtype, &criteria.filters, max + 1)
                    .await?;
                if ids.len() as i64 > max {
                    return Err(FhirError::multiple_matches(format!(
                        "the criteria match more than {max} {rtype} resources; narrow them"
                    )));
                }
                for id in &ids {
                    self.delete_in(&mut tx, rtype, id, None).await?;
                }
                Ok(ids.len())
            }
            .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    pub async fn delete_in(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        let current = tx.current(self.tenant, rtype, id).await?;
        check_if_match(if_match, current.as_ref(), rtype, id)?;
        let Some(previous) = current.as_ref().filter(|c| !c.deleted) else {
            return Ok(WriteOutcome {
                status: WriteStatus::Unchanged,
                version: None,
                warnings: Vec::new(),
            });
        };
        let version = previous.version + 1;
        let last_updated = super::next_timestamp(Some(previous));
        tx.write_version(
            self.tenant,
            Some(previous),
            &NewVersion {
                rtype,
                id,
                version,
                last_updated,
                method: "DELETE",
                body: None,
                index: &crate::store::IndexRows::default(),
            },
        )
        .await?;
        tx.touched.push(crate::store::audit::Touched {
            rtype: rtype.to_string(),
            id: id.to_string(),
            version,
            patients: if rtype == "Patient" {
                vec![id.to_string()]
            } else {
                Vec::new()
            },
        });
        Ok(WriteOutcome {
            status: WriteStatus::Updated,
            version: Some(VersionOut {
                rtype: rtype.to_string(),
                id: id.to_string(),
                version,
                last_updated,
                body: None,
            }),
            warnings: Vec::new(),
        })
    }
}
