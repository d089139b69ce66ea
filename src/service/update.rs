//! update, update-as-create and conditional update
//! (http://hl7.org/fhir/R4/http.html#update, #cond-update).

use serde_json::Value;

use super::prepared::Prepared;

use super::{check_if_match, check_type, input, Fhir, VersionOut, WriteOutcome, WriteStatus};
use crate::error::{FhirError, FhirResult};
use crate::fhir::primitive::is_id;
use crate::store::audit::Touched;
use crate::store::{CurrentMeta, NewVersion, WriteTx};

impl Fhir {
    /// Writes a new version of `rtype/id`, creating it if it does not exist.
    pub async fn update(
        &self,
        rtype: &str,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        check_id(id)?;
        let resource = self.prepare_write(rtype, input::prepare(rtype, body)?)?;
        match resource.resource.get("id").and_then(Value::as_str) {
            Some(body_id) if body_id == id => {}
            Some(body_id) => {
                return Err(FhirError::invalid(format!(
                    "the body's id `{body_id}` does not match the id `{id}` in the URL"
                )))
            }
            None => {
                return Err(FhirError::invalid(
                    "the body must have an id equal to the id in the URL",
                ))
            }
        }
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self
                .update_in(&mut tx, rtype, id, &resource, if_match)
                .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    /// The update interaction inside an open write transaction.
    pub async fn update_in(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        id: &str,
        resource: &Prepared,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        let current = tx.current(self.tenant, rtype, id).await?;
        check_if_match(if_match, current.as_ref(), rtype, id)?;
        let status = match &current {
            Some(c) if !c.deleted => WriteStatus::Updated,
            _ => WriteStatus::Created,
        };
        // Tags and security labels of the version replaced stay unless
        // `$meta-delete` removes them (R4 resource.html#tag-updates).
        let carried = match &current {
            Some(c) if !c.deleted => match tx.read_locked(self.tenant, rtype, id, c.version).await?
            {
                Some(stored) => self.carry_meta(rtype, resource, &stored)?,
                None => None,
            },
            _ => None,
        };
        let resource = carried.as_ref().unwrap_or(resource);
        let version = self
            .write_resource(tx, rtype, id, current.as_ref(), resource, "PUT")
            .await?;
        Ok(WriteOutcome {
            status,
            version: Some(version),
            warnings: resource.warnings.clone(),
        })
    }

    /// `PUT [type]?criteria`: no match creates, one match updates it, more
    /// than one is 412.
    pub async fn conditional_update(
        &self,
        rtype: &str,
        query: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let criteria = self.criteria(rtype, query)?;
        let resource = self.prepare_write(rtype, input::prepare(rtype, body)?)?;
        let body_id = resource
            .resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self
                .conditional_update_in(
                    &mut tx,
                    rtype,
                    &criteria,
                    &resource,
                    body_id.as_deref(),
                    if_match,
                )
                .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    async fn conditional_update_in(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        criteria: &super::conditional::Criteria,
        resource: &Prepared,
        body_id: Option<&str>,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        {
            match self.match_one(tx, rtype, criteria).await? {
                Some(found) => {
                    if body_id.is_some_and(|b| b != found) {
                        return Err(FhirError::invalid(format!(
                            "the criteria match {rtype}/{found}, but the body's id is `{}`",
                            body_id.unwrap_or_default()
                        )));
                    }
                    self.update_in(tx, rtype, &found, resource, if_match).await
                }
                None => match body_id {
                    Some(id) => self.update_in(tx, rtype, id, resource, if_match).await,
                    None => self.create_in(tx, rtype, resource, None).await,
                },
            }
        }
    }

    /// Stamps and stores a new version with its prepared index rows. `previous` is
    /// the locked current row, None for a resource never written.
    pub(super) async fn write_resource(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        id: &str,
        previous: Option<&CurrentMeta>,
        prepared: &Prepared,
        method: &'static str,
    ) -> FhirResult<VersionOut> {
        let version = previous.map_or(1, |p| p.version + 1);
        let last_updated = super::next_timestamp(previous);
        let body = crate::fhir::meta::stamp(prepared.resource.clone(), id, version, last_updated);
        let written = tx
            .write_version(
                self.tenant,
                previous,
                &NewVersion {
                    rtype,
                    id,
                    version,
                    last_updated,
                    method,
                    body: Some(&body),
                    index: &prepared.index,
                },
            )
            .await?;
        if !written {
            return Err(FhirError::lost_race(format!(
                "{rtype}/{id} was created concurrently"
            )));
        }
        self.note_touched(tx, rtype, id, version, prepared);
        Ok(VersionOut {
            rtype: rtype.to_string(),
            id: id.to_string(),
            version,
            last_updated,
            body: Some(body.into()),
        })
    }

    /// Creates new resources `(type, id, prepared, method)` in a few
    /// statements whatever their number (the creates of a transaction), each
    /// as `write_resource` would create it alone.
    pub(super) async fn create_many(
        &self,
        tx: &mut WriteTx,
        items: &[(&str, &str, &Prepared, &'static str)],
    ) -> FhirResult<Vec<VersionOut>> {
        let last_updated = super::next_timestamp(None);
        let bodies: Vec<Vec<u8>> = items
            .iter()
            .map(|(_, id, p, _)| crate::fhir::meta::stamp(p.resource.clone(), id, 1, last_updated))
            .collect();
        let versions: Vec<NewVersion<'_>> = items
            .iter()
            .zip(&bodies)
            .map(|((rtype, id, p, method), body)| NewVersion {
                rtype,
                id,
                version: 1,
                last_updated,
                method,
                body: Some(body),
                index: &p.index,
            })
            .collect();
        if !tx.insert_new_versions(self.tenant, &versions, true).await? {
            return Err(FhirError::lost_race(
                "a resource the transaction creates was created concurrently",
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for ((rtype, id, p, _), body) in items.iter().zip(bodies) {
            self.note_touched(tx, rtype, id, 1, p);
            out.push(VersionOut {
                rtype: rtype.to_string(),
                id: id.to_string(),
                version: 1,
                last_updated,
                body: Some(body.into()),
            });
        }
        Ok(out)
    }

    /// Notes a written version for the request's audit record (nothing to
    /// note when the audit trail is off).
    fn note_touched(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        id: &str,
        version: i64,
        prepared: &Prepared,
    ) {
        if self.audit && rtype != "AuditEvent" {
            tx.touched.push(touched(rtype, id, version, prepared));
        }
    }
}

/// What an audit record names of a written version: it, and the patients
/// whose compartment holds it.
pub fn touched(rtype: &str, id: &str, version: i64, prepared: &Prepared) -> Touched {
    let mut patients = super::authz::patients_in_rows(rtype, &prepared.index);
    if rtype == "Patient" {
        patients.push(id.to_string());
    }
    Touched {
        rtype: rtype.to_string(),
        id: id.to_string(),
        version,
        patients,
    }
}

/// Rejects ids that are not FHIR ids.
pub fn check_id(id: &str) -> FhirResult<()> {
    if is_id(id) {
        Ok(())
    } else {
        Err(FhirError::invalid(format!(
            "`{id}` is not a valid id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')"
        )))
    }
}
