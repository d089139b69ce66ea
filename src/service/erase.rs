//! `POST Patient/[id]/$erase`: the right to erasure (GDPR Art. 17, DPDP Act
//! §12). Removes the patient and every resource in their compartment for
//! good — all versions and index rows, including resources deleted earlier
//! (found by the body they had before deletion) — and blanks the raw HL7 v2 messages
//! that wrote any of them, in one transaction whose AuditEvent (naming
//! only the ids erased) commits with it. AuditEvents themselves are kept:
//! the record of who saw the data, and of the erasure, must outlive it.

use serde_json::{json, Value};

use super::search::{compartment_filter, compartment_types};
use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::store::audit::Touched;
use crate::store::WriteTx;

/// Resources erased per round of the compartment search.
const ROUND: i64 = 1000;

impl Fhir {
    /// Erases Patient `id` and its compartment; returns a Parameters
    /// resource with the counts per type.
    pub async fn erase_patient(&self, id: &str) -> FhirResult<Value> {
        super::update::check_id(id)?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self.erase_in(&mut tx, id).await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    async fn erase_in(&self, tx: &mut WriteTx, id: &str) -> FhirResult<Value> {
        if tx.current(self.tenant, "Patient", id).await?.is_none() {
            return Err(FhirError::not_found(format!("Patient/{id} does not exist")));
        }
        let mut counts: Vec<(String, i64)> = Vec::new();
        let mut erased: Vec<String> = Vec::new();
        let mut types = compartment_types("Patient");
        types.retain(|t| t != "AuditEvent" && t != "Patient");
        types.sort();
        for rtype in types {
            let filter = compartment_filter("Patient", id, &rtype)?;
            let mut n = 0;
            loop {
                let ids = tx
                    .find(self.tenant, &rtype, std::slice::from_ref(&filter), ROUND)
                    .await?;
                if ids.is_empty() {
                    break;
                }
                let mut purged_any = false;
                for rid in ids {
                    if self.purge_one(tx, &rtype, &rid, id, &mut erased).await? {
                        purged_any = true;
                        n += 1;
                    }
                }
                if !purged_any {
                    break;
                }
            }
            // Deleted resources have no index rows: their last body tells
            // whose they were.
            for (rid, body) in tx.deleted_last_bodies(self.tenant, &rtype).await? {
                let Ok(value) = serde_json::from_slice::<Value>(&body) else {
                    continue;
                };
                let patients = super::authz::compartment_patients(&rtype, &value, &self.base_url);
                if !patients.iter().any(|p| p == id) {
                    continue;
                }
                if self.purge_one(tx, &rtype, &rid, id, &mut erased).await? {
                    n += 1;
                }
            }
            if n > 0 {
                counts.push((rtype, n));
            }
        }
        if self.purge_one(tx, "Patient", id, id, &mut erased).await? {
            counts.push(("Patient".into(), 1));
        }
        let messages = tx.erase_messages(self.tenant, &erased).await?;
        let mut parameter = vec![json!({"name": "erased", "valueInteger": erased.len()})];
        for (rtype, n) in counts {
            parameter.push(json!({
                "name": "type",
                "part": [
                    {"name": "type", "valueCode": rtype},
                    {"name": "count", "valueInteger": n}
                ]
            }));
        }
        parameter.push(json!({"name": "hl7v2Messages", "valueInteger": messages}));
        Ok(json!({"resourceType": "Parameters", "parameter": parameter}))
    }

    /// Purges `rtype/rid`, notes it for the erasure's AuditEvent and in
    /// `erased`; false when there was nothing to purge.
    async fn purge_one(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        rid: &str,
        patient: &str,
        erased: &mut Vec<String>,
    ) -> FhirResult<bool> {
        let Some(version) = tx.purge(self.tenant, rtype, rid).await? else {
            return Ok(false);
        };
        erased.push(format!("{rtype}/{rid}"));
        tx.touched.push(Touched {
            rtype: rtype.to_string(),
            id: rid.to_string(),
            version,
            patients: vec![patient.to_string()],
        });
        Ok(true)
    }
}
