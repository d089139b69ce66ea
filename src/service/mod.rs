//! The FHIR interactions, one module each, over the store. Every entry point
//! (REST today; HL7 v2 and the CLI later) goes through here, so rules such as
//! "versions are stamped by the server" or "If-Match is honoured" live in one
//! place. Knows nothing of HTTP: results are typed values or FHIR JSON.

pub mod audit;
pub mod authz;
pub mod bundle;
pub mod capabilities;
pub mod coding_check;
pub mod conditional;
pub mod create;
pub mod delete;
pub mod erase;
pub mod everything;
pub mod group_commit;
pub mod history;
pub mod import;
pub mod input;
pub mod messages;
pub mod operations;
pub mod patch;
pub mod prepared;
pub mod profiles;
pub mod read;
pub mod references;
pub mod reindex;
pub mod search;
pub mod search_codes;
pub mod search_contained;
pub mod search_params;
pub mod terminology;
pub mod terminology_cli;
pub mod transaction;
pub mod update;

use bytes::Bytes;

use crate::config::Config;
use crate::error::{FhirError, FhirResult};
use crate::fhir::schema::schema;
use crate::store::{CurrentMeta, Store, WriteTx};

/// How many times a write that lost a race with a concurrent writer is
/// retried before the client is told to retry.
const WRITE_ATTEMPTS: usize = 5;

/// The FHIR service: the store plus the settings interactions need.
pub struct Fhir {
    pub store: Store,
    pub base_url: String,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub max_conditional_delete: u32,
    pub max_bundle_entries: usize,
    /// Most resources one search page adds through includes.
    pub max_included: u32,
    pub tenant: i64,
    /// The search index rebuild job of this server.
    pub reindex_job: reindex::ReindexJob,
    /// The search parameters in use: built-in plus custom.
    pub search_params: search_params::SearchParams,
    /// The `Arc` this service lives in (set by `attach`), for background
    /// jobs it starts itself.
    this: std::sync::OnceLock<std::sync::Weak<Fhir>>,
    /// Code systems in memory (ICD-10-CM).
    pub terminology: std::sync::Arc<crate::terminology::Terminology>,
    /// How ICD-10-CM codings are checked on write.
    pub coding_policy: coding_check::CodingPolicy,
    /// Whether interactions are recorded as AuditEvents.
    pub audit: bool,
    /// The HL7 v2 processing ids (MSH-11.1) applied; others get AR.
    pub hl7v2_processing_ids: Vec<String>,
    /// The largest HL7 v2 message accepted over HTTP, in bytes (MLLP frames
    /// have the same limit, `mllp_max_message_bytes`, in the listener).
    pub hl7v2_max_message_bytes: usize,
    /// Inbound messages committing together (`messages.rs`).
    message_commits: std::sync::Arc<
        group_commit::GroupCommit<messages::MessageJob, FhirResult<messages::Applied>>,
    >,
}

/// One version of a resource, as returned to a client.
#[derive(Debug, Clone)]
pub struct VersionOut {
    pub rtype: String,
    pub id: String,
    pub version: i64,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    /// Canonical JSON; None for a deletion.
    pub body: Option<Bytes>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    /// A new resource (201).
    Created,
    /// A new version of an existing resource (200).
    Updated,
    /// Nothing written: a conditional create matched an existing resource,
    /// or a delete found nothing to delete (200).
    Unchanged,
}

impl VersionOut {
    pub fn stored(rtype: &str, id: &str, v: crate::store::StoredVersion) -> Self {
        VersionOut {
            rtype: rtype.to_string(),
            id: id.to_string(),
            version: v.version,
            last_updated: v.last_updated,
            body: v.body,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub status: WriteStatus,
    /// The version written or matched; None when nothing exists.
    pub version: Option<VersionOut>,
    /// Warnings about what was accepted (e.g. an ICD-10-CM display that is
    /// not the code's), for `Prefer: return=OperationOutcome` and a
    /// transaction entry's `response.outcome`.
    pub warnings: Vec<crate::fhir::outcome::Issue>,
}

impl Fhir {
    pub fn new(store: Store, config: &Config) -> Self {
        Fhir {
            store,
            base_url: config.base_url(),
            default_page_size: config.default_page_size,
            max_page_size: config.max_page_size,
            max_conditional_delete: config.max_conditional_delete,
            max_bundle_entries: config.max_bundle_entries,
            max_included: config.max_included,
            tenant: crate::store::DEFAULT_TENANT,
            reindex_job: reindex::ReindexJob::default(),
            search_params: Default::default(),
            this: std::sync::OnceLock::new(),
            terminology: Default::default(),
            coding_policy: coding_check::CodingPolicy::parse(&config.icd10cm_validation)
                .unwrap_or(coding_check::CodingPolicy::Strict),
            audit: config.audit_enabled(),
            hl7v2_processing_ids: config.hl7v2_processing_ids.clone(),
            hl7v2_max_message_bytes: config.mllp_max_message_bytes,
            message_commits: Default::default(),
        }
    }

    /// Puts the service in its `Arc`, so that it can start background jobs
    /// (the reindex after a SearchParameter changes, group commits).
    pub fn attach(self) -> std::sync::Arc<Fhir> {
        let fhir = std::sync::Arc::new(self);
        let _ = fhir.this.set(std::sync::Arc::downgrade(&fhir));
        fhir
    }

    /// A `_count` value: a whole number ≥ 0, capped at the largest page.
    pub fn page_size(&self, value: &str) -> FhirResult<i64> {
        let count = value
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(|| {
                FhirError::invalid(format!("_count must be a whole number ≥ 0, not `{value}`"))
            })?;
        Ok(count.min(i64::from(self.max_page_size)))
    }

    /// Ends one attempt of a write: commits on success, rolls back on
    /// failure. Returns None when the attempt lost a race with a concurrent
    /// writer and should run again; callers loop:
    ///
    /// ```text
    /// let mut attempt = 0;
    /// loop {
    ///     let mut tx = self.store.begin().await?;
    ///     let result = self.create_in(&mut tx, ...).await;
    ///     if let Some(done) = self.finish(tx, result, &mut attempt).await {
    ///         return done;
    ///     }
    /// }
    /// ```
    pub async fn finish<T>(
        &self,
        mut tx: WriteTx,
        result: FhirResult<T>,
        attempt: &mut usize,
    ) -> Option<FhirResult<T>> {
        *attempt += 1;
        // The audit record of the writes joins their transaction.
        let result = match result {
            Ok(value) => self.audit_writes_in(&mut tx).await.map(|a| (value, a)),
            Err(err) => Err(err),
        };
        let wrote_params = tx.touched.iter().any(|t| t.rtype == "SearchParameter");
        let err = match result {
            Ok((value, audited)) => match tx.commit().await {
                Ok(()) => {
                    if wrote_params {
                        self.search_parameters_written().await;
                    }
                    if audited {
                        if let Some(slot) = crate::audit::current() {
                            slot.mark_recorded();
                        }
                    }
                    return Some(Ok(value));
                }
                Err(err) => FhirError::from(err),
            },
            Err(err) => {
                // A failed rollback leaves nothing behind either: the
                // connection discards the transaction.
                let _ = tx.rollback().await;
                err
            }
        };
        if err.retryable && *attempt < WRITE_ATTEMPTS {
            None
        } else {
            Some(Err(err))
        }
    }
}

/// AuditEvents are recorded by the server alone: the API cannot create,
/// change or delete them (405).
pub fn check_writable(rtype: &str) -> FhirResult<()> {
    if rtype == "AuditEvent" {
        Err(FhirError::new(
            405,
            crate::fhir::outcome::IssueType::NotSupported,
            "AuditEvents are recorded by the server; they cannot be created, changed or deleted through the API",
        ))
    } else {
        Ok(())
    }
}

/// Checks that `rtype` names an R4 resource type.
pub fn check_type(rtype: &str) -> FhirResult<()> {
    if schema().is_resource_type(rtype) {
        Ok(())
    } else {
        Err(FhirError::not_found(format!(
            "`{rtype}` is not a FHIR R4 resource type"
        )))
    }
}

/// Parses a version id from a path or an ETag value.
pub fn parse_version(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|v| *v >= 1)
}

/// Reads a version from an ETag (`W/"3"`, `"3"` or `3`).
pub fn parse_etag(value: &str) -> Option<i64> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    parse_version(v.trim_matches('"'))
}

/// The timestamp for a new version: now, but always after the previous one.
fn next_timestamp(previous: Option<&CurrentMeta>) -> i64 {
    let now = crate::fhir::datetime::now_micros();
    match previous {
        Some(p) if p.last_updated >= now => p.last_updated + 1,
        _ => now,
    }
}

/// The If-Match check shared by update, patch and delete.
fn check_if_match(
    if_match: Option<i64>,
    current: Option<&CurrentMeta>,
    rtype: &str,
    id: &str,
) -> FhirResult<()> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    match current {
        Some(c) if c.version == expected && !c.deleted => Ok(()),
        Some(c) => Err(FhirError::precondition_failed(format!(
            "If-Match expected version {expected} of {rtype}/{id}, but the current version is {}{}",
            c.version,
            if c.deleted { " (deleted)" } else { "" }
        ))),
        None => Err(FhirError::precondition_failed(format!(
            "If-Match expected version {expected} of {rtype}/{id}, which does not exist"
        ))),
    }
}
