//! Recording AuditEvents in the store: each event is an ordinary AuditEvent
//! resource plus a link of the hash chain (`crate::audit::chain`). Writes
//! are recorded inside their own transaction, at the commit point
//! (`Fhir::finish`), so a write and its record commit together or not at
//! all.

use serde_json::Value;

use super::Fhir;
use crate::audit::chain::link_hash;
use crate::audit::event::{self, Interaction, RestFacts};
use crate::error::{FhirError, FhirResult};
use crate::store::audit::ChainRow;
use crate::store::{IndexRows, NewVersion, WriteTx};

/// An AuditEvent ready to append: its id and stamped body (made where the
/// event happened, so the audit writer's one task only writes SQL) and its
/// index rows.
pub struct AuditRecord {
    pub id: String,
    pub last_updated: i64,
    pub body: Vec<u8>,
    pub index: IndexRows,
}

impl Fhir {
    /// Validates an AuditEvent, extracts its index rows and stamps its id
    /// and meta (outside any transaction).
    pub fn prepare_audit(&self, event: Value) -> FhirResult<AuditRecord> {
        let Value::Object(map) = event else {
            return Err(FhirError::internal("an AuditEvent must be a JSON object"));
        };
        Ok(self.audit_record(self.prepare_write("AuditEvent", map)?))
    }

    /// A checked AuditEvent given its id, `meta.lastUpdated` now, and its
    /// body.
    pub fn audit_record(&self, prepared: super::prepared::Prepared) -> AuditRecord {
        let id = crate::fhir::meta::new_id();
        let last_updated = super::next_timestamp(None);
        let body = crate::fhir::meta::stamp(prepared.resource, &id, 1, last_updated);
        AuditRecord {
            id,
            last_updated,
            body,
            index: prepared.index,
        }
    }

    /// Stores a prepared AuditEvent and appends it to the chain.
    pub async fn append_audit(&self, tx: &mut WriteTx, event: &AuditRecord) -> FhirResult<()> {
        self.append_audits(tx, &[event]).await
    }

    /// Stores prepared AuditEvents (in a few statements, whatever their
    /// number) and appends them to the chain in order, locking the chain's
    /// head once.
    pub async fn append_audits(&self, tx: &mut WriteTx, events: &[&AuditRecord]) -> FhirResult<()> {
        let versions: Vec<NewVersion<'_>> = events
            .iter()
            .map(|event| NewVersion {
                rtype: "AuditEvent",
                id: &event.id,
                version: 1,
                last_updated: event.last_updated,
                method: "POST",
                body: Some(&event.body),
                index: &event.index,
            })
            .collect();
        if !tx
            .insert_new_versions(self.tenant, &versions, false)
            .await?
        {
            return Err(FhirError::lost_race("an AuditEvent id was taken"));
        }
        let (mut seq, mut previous) = tx.lock_audit_head(self.tenant).await?;
        let mut links = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let hash = link_hash(&previous, seq, &event.id, &event.body);
            previous.clone_from(&hash);
            links.push(ChainRow {
                seq,
                event_id: event.id.clone(),
                recorded: event.last_updated,
                hash,
            });
        }
        tx.append_audit(self.tenant, &links).await?;
        Ok(())
    }

    /// Records the current request's writes in `tx` (the transaction that
    /// made them). False when there is nothing to record here: no writes,
    /// no request context (server-internal work) or auditing is off.
    pub(super) async fn audit_writes_in(&self, tx: &mut WriteTx) -> FhirResult<bool> {
        if !self.audit || tx.touched.is_empty() {
            return Ok(false);
        }
        let Some(slot) = crate::audit::current() else {
            return Ok(false);
        };
        let request = &slot.request;
        let mut interaction =
            event::classify(&request.method, &request.path).unwrap_or(Interaction {
                code: "operation",
                action: "E",
                target: None,
                query: false,
                patient: None,
            });
        if let Some(code) = slot.subtype() {
            interaction.code = code;
        }
        // The written versions name what was done; no query entity.
        interaction.query = false;
        let access = slot.access();
        let mut patients = slot.patients();
        patients.extend(interaction.patient.clone());
        patients.extend(access.as_ref().and_then(|a| a.patient.clone()));
        let mut entities = Vec::with_capacity(tx.touched.len());
        for t in &tx.touched {
            patients.extend(t.patients.iter().cloned());
            entities.push(format!("{}/{}/_history/{}", t.rtype, t.id, t.version));
        }
        patients.sort();
        patients.dedup();
        let event = event::rest_event(&RestFacts {
            request,
            interaction: &interaction,
            access: access.as_deref(),
            status: 200,
            recorded: crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
            entities: &entities,
            patients: &patients,
        });
        let prepared = self.prepare_audit(event)?;
        self.append_audit(tx, &prepared).await?;
        Ok(true)
    }

    /// Notes, for the current request's audit record, the version read and
    /// the patients whose compartment holds it.
    pub fn note_read(&self, v: &super::VersionOut) {
        if !self.audit {
            return;
        }
        let Some(slot) = crate::audit::current() else {
            return;
        };
        slot.add_entity(format!("{}/{}/_history/{}", v.rtype, v.id, v.version));
        if v.rtype == "Patient" {
            slot.add_patients([v.id.clone()]);
            return;
        }
        if super::search::compartment_params("Patient", &v.rtype).is_empty() {
            return;
        }
        if let Some(Ok(value)) = v.body.as_ref().map(|b| serde_json::from_slice::<Value>(b)) {
            slot.add_patients(super::authz::compartment_patients(
                &v.rtype,
                &value,
                &self.base_url,
            ));
        }
    }

    /// Stores a batch of prepared AuditEvents in one transaction (the audit
    /// writer's group commit), retrying when the database is busy.
    pub async fn append_audit_batch(&self, events: &[&AuditRecord]) -> FhirResult<()> {
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self.append_audits(&mut tx, events).await;
            // `finish` would record these writes again: commit directly.
            attempt += 1;
            let err = match result {
                Ok(()) => match tx.commit().await {
                    Ok(()) => return Ok(()),
                    Err(e) => FhirError::from(e),
                },
                Err(e) => {
                    let _ = tx.rollback().await;
                    e
                }
            };
            if !(err.retryable && attempt < super::WRITE_ATTEMPTS) {
                return Err(err);
            }
        }
    }
}
