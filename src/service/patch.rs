//! patch (http://hl7.org/fhir/R4/http.html#patch) with JSON Patch or
//! FHIRPath Patch (a Parameters resource, `fhirpath::patch`). The patch is
//! applied to the current version under its lock; the result must still be a
//! valid resource of the same type and id.

use serde_json::Value;

use super::{check_if_match, check_type, input, Fhir, WriteOutcome, WriteStatus};
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::fhirpath::patch::{self as fhirpath_patch, Operation, PatchError};
use crate::store::WriteTx;

/// A patch document.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 6902 (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// FHIRPath Patch: the operations of a Parameters resource.
    FhirPath(Vec<Operation>),
}

impl Patch {
    /// Applies the patch to a resource's JSON; on error the JSON is to be
    /// discarded.
    pub fn apply(&self, doc: &mut Value) -> FhirResult<()> {
        match self {
            Patch::Json(p) => json_patch::patch(doc, p).map_err(|e| {
                FhirError::new(
                    422,
                    IssueType::Processing,
                    format!("the patch could not be applied: {e}"),
                )
            }),
            Patch::FhirPath(ops) => fhirpath_patch::apply(doc, ops).map_err(patch_error),
        }
    }
}

fn patch_error(e: PatchError) -> FhirError {
    let code = if e.status == 400 {
        IssueType::Invalid
    } else {
        IssueType::Processing
    };
    FhirError::new(e.status, code, format!("FHIRPath Patch: {}", e.message))
}

/// Reads a FHIRPath Patch from a Parameters resource (JSON; XML bodies are
/// converted first).
pub fn parse_fhirpath_patch(parameters: &Value) -> FhirResult<Patch> {
    fhirpath_patch::parse(parameters)
        .map(Patch::FhirPath)
        .map_err(patch_error)
}

/// Parses an `application/json-patch+json` body.
pub fn parse_json_patch(body: &[u8]) -> FhirResult<Patch> {
    serde_json::from_slice(body).map(Patch::Json).map_err(|e| {
        FhirError::bad_request(
            IssueType::Structure,
            format!("the body is not a JSON Patch document (RFC 6902): {e}"),
        )
    })
}

impl Fhir {
    pub async fn patch(
        &self,
        rtype: &str,
        id: &str,
        patch: &Patch,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = self.patch_in(&mut tx, rtype, id, patch, if_match).await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    /// `PATCH [type]?criteria`: exactly one match is patched.
    pub async fn conditional_patch(
        &self,
        rtype: &str,
        query: &str,
        patch: &Patch,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        check_type(rtype)?;
        super::check_writable(rtype)?;
        let criteria = self.criteria(rtype, query)?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = async {
                match self.match_one(&mut tx, rtype, &criteria).await? {
                    Some(id) => self.patch_in(&mut tx, rtype, &id, patch, if_match).await,
                    None => Err(FhirError::not_found(format!(
                        "no {rtype} matches the criteria"
                    ))),
                }
            }
            .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                return done;
            }
        }
    }

    pub async fn patch_in(
        &self,
        tx: &mut WriteTx,
        rtype: &str,
        id: &str,
        patch: &Patch,
        if_match: Option<i64>,
    ) -> FhirResult<WriteOutcome> {
        let current = tx.current(self.tenant, rtype, id).await?;
        let Some(meta) = current.as_ref() else {
            return Err(FhirError::not_found(format!("{rtype}/{id} is not known")));
        };
        if meta.deleted {
            return Err(FhirError::gone(
                format!("{rtype}/{id} was deleted"),
                meta.version,
            ));
        }
        check_if_match(if_match, current.as_ref(), rtype, id)?;
        let stored = tx
            .read(self.tenant, rtype, id)
            .await?
            .and_then(|v| v.body)
            .ok_or_else(|| FhirError::internal("the current version has no body"))?;
        let mut doc: Value = serde_json::from_slice(&stored)
            .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
        patch.apply(&mut doc)?;
        if doc.get("id").and_then(Value::as_str) != Some(id) {
            return Err(FhirError::new(
                422,
                IssueType::Processing,
                "a patch must not change or remove the resource id",
            ));
        }
        let resource = input::prepare(rtype, doc).map_err(|mut e| {
            // The request was well formed; the result it produces is not.
            e.status = 422;
            e
        })?;
        let prepared = self.prepare_write(rtype, resource)?;
        let version = self
            .write_resource(tx, rtype, id, current.as_ref(), &prepared, "PATCH")
            .await?;
        Ok(WriteOutcome {
            status: WriteStatus::Updated,
            version: Some(version),
            warnings: prepared.warnings,
        })
    }
}
