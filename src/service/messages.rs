//! Inbound messages (the HL7 v2 bridge): a message's transaction Bundle and
//! its log row commit together, so a message is applied once or not at all,
//! and its ACK is only sent after that commit.
//!
//! Duplicate delivery (the same sender and control id) is detected inside
//! the same write transaction, under a lock on the pair (PostgreSQL advisory
//! lock; SQLite's single writer), so two concurrent deliveries of one
//! message cannot both apply it.

use serde_json::Value;

use super::audit::AuditRecord;
use super::transaction::PreparedBundle;
use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::store::audit::Touched;
use crate::store::messages::{NewMessage, StoredMessage};
use crate::store::WriteTx;

/// A received message, as logged.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub sender: &'a str,
    pub control_id: Option<&'a str>,
    pub message_type: &'a str,
    /// Microseconds since the Unix epoch.
    pub received: i64,
    pub raw: &'a [u8],
    /// The names of the mutual-TLS client certificate it came with
    /// (`hl7v2::peer::ClientIdentity::summary`); None otherwise.
    pub peer_identity: Option<&'a str>,
    /// The network peer it came from; None for a replay.
    pub peer_address: Option<std::net::IpAddr>,
    /// Over HTTP, the OAuth client whose token sent it.
    pub client_id: Option<&'a str>,
}

/// One attempt: the log id, the resources written and the message's audit
/// record (appended with the batch's), or a prior ACK.
type Attempt = Result<(i64, Vec<String>, Option<AuditRecord>), Vec<u8>>;

/// What applying a message did.
#[derive(Debug)]
pub enum Applied {
    /// Committed with its log row; `resources` lists `Type/id` written.
    Committed { id: i64, resources: Vec<String> },
    /// Seen before: the ACK it was answered with.
    Duplicate { ack: Vec<u8> },
    /// The transaction failed; nothing was written.
    Failed(FhirError),
}

/// What recording a message that was not applied did.
#[derive(Debug)]
pub enum Recorded {
    Stored(i64),
    Duplicate { ack: Vec<u8> },
}

fn lock_key(tenant: i64, m: &Inbound<'_>) -> Option<String> {
    m.control_id
        .map(|c| format!("hl7v2/{tenant}/{}/{c}", m.sender))
}

/// `Type/id` of each entry of a transaction-response Bundle.
fn written(response: &[u8]) -> Vec<String> {
    let Ok(bundle) = serde_json::from_slice::<Value>(response) else {
        return Vec::new();
    };
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["response"]["location"].as_str())
                .map(|l| l.split("/_history").next().unwrap_or(l).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The AuditEvent of a message that wrote `touched`, recorded now; its
/// entities and patients sorted, so that the record made with a plan and
/// the one made in the batch are alike.
fn message_event(m: &Inbound<'_>, ack_code: &str, touched: &[Touched]) -> Value {
    let mut patients: Vec<String> = touched.iter().flat_map(|t| t.patients.clone()).collect();
    patients.sort();
    patients.dedup();
    let mut entities: Vec<String> = touched
        .iter()
        .map(|t| format!("{}/{}/_history/{}", t.rtype, t.id, t.version))
        .collect();
    entities.sort();
    crate::audit::event::message_event(&crate::audit::event::MessageFacts {
        sender: m.sender,
        message_type: m.message_type,
        control_id: m.control_id,
        recorded: crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
        ack_code,
        entities: &entities,
        patients: &patients,
        peer_address: m.peer_address,
        certificate: m.peer_identity,
        client_id: m.client_id,
    })
}

/// A message waiting to commit with others (`Fhir::apply_message`).
pub struct MessageJob {
    sender: String,
    control_id: Option<String>,
    message_type: String,
    received: i64,
    raw: Vec<u8>,
    peer_identity: Option<String>,
    peer_address: Option<std::net::IpAddr>,
    client_id: Option<String>,
    prepared: PreparedBundle,
    ack: Vec<u8>,
    replay_of: Option<i64>,
    audit: Option<PlannedAudit>,
}

/// A message's audit record checked and indexed when the message was
/// planned, for the writes the plan expects (`PreparedBundle::planned_writes`):
/// used when the transaction wrote exactly those from the plan's own content
/// (`transaction_within` says so), so that the writer only
/// stamps it (indexing an AuditEvent was a tenth of the writer's time for
/// HL7 v2 ADT^A01 messages).
struct PlannedAudit {
    /// `(type, id, version)` of the expected writes, sorted.
    writes: Vec<(String, String, i64)>,
    event: super::prepared::Prepared,
}

impl MessageJob {
    fn inbound(&self) -> Inbound<'_> {
        Inbound {
            sender: &self.sender,
            control_id: self.control_id.as_deref(),
            message_type: &self.message_type,
            received: self.received,
            raw: &self.raw,
            peer_identity: self.peer_identity.as_deref(),
            peer_address: self.peer_address,
            client_id: self.client_id.as_deref(),
        }
    }
}

impl Fhir {
    /// Applies a message's Bundle and logs the message as `applied` with
    /// `ack`, in one commit. `replay_of` names the stored message being
    /// replayed (its row is updated; no duplicate check).
    ///
    /// On SQLite, messages arriving while others commit join the next
    /// commit (`group_commit`); one that fails leaves the others' writes in
    /// (`apply_batch`), and all are answered only after the commit that
    /// holds them.
    pub async fn apply_message(
        &self,
        m: &Inbound<'_>,
        bundle: &Value,
        ack: &[u8],
        replay_of: Option<i64>,
    ) -> FhirResult<Applied> {
        // Validated, read and planned before the write transaction opens, so
        // that messages wait on each other only for their writes.
        let prepared = match self.prepare_transaction(bundle.clone()).await {
            Ok(prepared) => prepared,
            Err(err) if err.status >= 500 => return Err(err),
            Err(err) => return Ok(Applied::Failed(err)),
        };
        let audit = self.plan_message_audit(m, &prepared);
        let job = MessageJob {
            sender: m.sender.to_string(),
            control_id: m.control_id.map(str::to_string),
            message_type: m.message_type.to_string(),
            received: m.received,
            raw: m.raw.to_vec(),
            peer_identity: m.peer_identity.map(str::to_string),
            peer_address: m.peer_address,
            client_id: m.client_id.map(str::to_string),
            prepared,
            ack: ack.to_vec(),
            replay_of,
            audit,
        };
        // PostgreSQL runs write transactions side by side and combines
        // their flushes itself; one batch at a time there only queued
        // messages behind each other's round trips (4 connections: ADT^A01
        // 165 -> 94/s). Not in its `Arc` (a command-line replay): no one to
        // batch with.
        let this = self.this.get().and_then(std::sync::Weak::upgrade);
        let this = this.filter(|_| self.store.dialect() == crate::store::Dialect::Sqlite);
        let Some(this) = this else {
            return self.apply_batch(vec![job]).await.pop().expect("one result");
        };
        self.message_commits
            .submit(job, move |jobs| {
                let this = this.clone();
                Box::pin(async move { this.apply_batch(jobs).await })
            })
            .await
            .unwrap_or_else(|| Err(FhirError::internal("the message's commit did not finish")))
    }

    /// One write transaction for `jobs`, one result per job.
    async fn apply_batch(&self, jobs: Vec<MessageJob>) -> Vec<FhirResult<Applied>> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        // Messages of a batch first run one after another with no
        // savepoints: nearly all apply, and a savepoint costs its two
        // statements and a copy of every page the message changes. The
        // first failure sends the batch back to run isolated.
        let mut isolated = false;
        loop {
            attempt += 1;
            let mut tx = match self.store.begin().await {
                Ok(tx) => tx,
                Err(err) => {
                    let err = FhirError::from(err);
                    return jobs.iter().map(|_| Err(err.clone())).collect();
                }
            };
            let mut results = Vec::with_capacity(jobs.len());
            let mut audits = Vec::new();
            if let [job] = jobs.as_slice() {
                // Alone: no savepoint (two statements fewer; PostgreSQL
                // always, SQLite when no other message waits). When the
                // message is not applied, the transaction holds nothing
                // to keep.
                let (result, audit) = self.apply_alone(&mut tx, job, true).await;
                if !matches!(result, Ok(Applied::Committed { .. })) {
                    let _ = tx.rollback().await;
                    match result {
                        Err(err) if err.retryable && attempt < super::WRITE_ATTEMPTS => continue,
                        // Out of attempts: a refusal like any other, as in
                        // a batch (logged and answered AE).
                        Err(err) if err.status < 500 => return vec![Ok(Applied::Failed(err))],
                        result => return vec![result],
                    }
                }
                results.push(result);
                audits.extend(audit);
            } else {
                let mut unisolated_failure = false;
                for job in &jobs {
                    // Resources written by the batch's earlier messages make
                    // this one's planned lookups stale.
                    let clean = !results
                        .iter()
                        .any(|r| matches!(r, Ok(Applied::Committed { .. })));
                    let (result, audit) = if isolated {
                        self.apply_in_batch(&mut tx, job, clean).await
                    } else {
                        self.apply_alone(&mut tx, job, clean).await
                    };
                    if !isolated
                        && !matches!(
                            result,
                            Ok(Applied::Committed { .. } | Applied::Duplicate { .. })
                        )
                    {
                        unisolated_failure = true;
                        break;
                    }
                    results.push(result);
                    audits.extend(audit);
                }
                if unisolated_failure {
                    // Its partial writes are in the transaction: the batch
                    // runs again, each message in a savepoint of its own.
                    let _ = tx.rollback().await;
                    isolated = true;
                    attempt -= 1;
                    continue;
                }
            }
            // The batch's audit records go in together, in order: a few
            // statements and one lock of the chain's head, whatever their
            // number.
            let failed = match results.iter().find_map(|r| r.as_ref().err()) {
                Some(err) if err.status >= 500 => Some(err.clone()),
                _ if audits.is_empty() => None,
                _ => self
                    .append_audits(&mut tx, &audits.iter().collect::<Vec<_>>())
                    .await
                    .err(),
            };
            let err = if let Some(err) = failed {
                // The transaction may be broken: nothing of the batch is kept.
                let _ = tx.rollback().await;
                err
            } else {
                let work = started.elapsed();
                match tx.commit().await {
                    Ok(()) => {
                        tracing::debug!(
                            messages = jobs.len(),
                            work_us = work.as_micros() as u64,
                            commit_us = (started.elapsed() - work).as_micros() as u64,
                            "message batch committed"
                        );
                        return results;
                    }
                    Err(err) => FhirError::from(err),
                }
            };
            if !(err.retryable && attempt < super::WRITE_ATTEMPTS) {
                return jobs.iter().map(|_| Err(err.clone())).collect();
            }
        }
    }

    /// A message applied without a savepoint (alone in its transaction, or
    /// in a batch not yet isolated): a failure leaves its partial writes,
    /// and the caller rolls the transaction back. A retryable error is
    /// returned as it is: the caller retries the whole transaction.
    async fn apply_alone(
        &self,
        tx: &mut WriteTx,
        job: &MessageJob,
        clean: bool,
    ) -> (FhirResult<Applied>, Option<AuditRecord>) {
        match self.apply_one(tx, job, clean).await {
            Ok(Ok((id, resources, audit))) => (Ok(Applied::Committed { id, resources }), audit),
            Ok(Err(prior_ack)) => (Ok(Applied::Duplicate { ack: prior_ack }), None),
            Err(err) if err.retryable || err.status >= 500 => (Err(err), None),
            Err(err) => (Ok(Applied::Failed(err)), None),
        }
    }

    /// One message inside a batch's transaction, in a savepoint: undone on
    /// its own when it fails or is a duplicate. Returns its audit record
    /// when it was applied.
    async fn apply_in_batch(
        &self,
        tx: &mut WriteTx,
        job: &MessageJob,
        clean: bool,
    ) -> (FhirResult<Applied>, Option<AuditRecord>) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let point = match tx.savepoint().await {
                Ok(point) => point,
                Err(err) => return (Err(err.into()), None),
            };
            let outcome = self.apply_one(tx, job, clean).await;
            let kept = matches!(outcome, Ok(Ok(_)));
            let ended = if kept {
                tx.release(point).await
            } else {
                tx.rollback_to(point).await
            };
            if let Err(err) = ended {
                return (Err(err.into()), None);
            }
            match outcome {
                Ok(Ok((id, resources, audit))) => {
                    return (Ok(Applied::Committed { id, resources }), audit)
                }
                Ok(Err(prior_ack)) => return (Ok(Applied::Duplicate { ack: prior_ack }), None),
                Err(err) if err.retryable && attempt < super::WRITE_ATTEMPTS => continue,
                Err(err) if err.status >= 500 => return (Err(err), None),
                Err(err) => return (Ok(Applied::Failed(err)), None),
            }
        }
    }

    /// A message's writes: the duplicate check, its Bundle, its log row and
    /// audit record. `clean`: no resource written in `tx` before it.
    async fn apply_one(
        &self,
        tx: &mut WriteTx,
        job: &MessageJob,
        clean: bool,
    ) -> FhirResult<Attempt> {
        let m = job.inbound();
        if job.replay_of.is_none() {
            if let (Some(key), Some(control)) = (lock_key(self.tenant, &m), m.control_id) {
                tx.lock_key(&key).await?;
                if let Some(prior) = tx.prior_message(self.tenant, m.sender, control).await? {
                    return Ok(Err(prior.ack));
                }
            }
        }
        let (response, as_planned) = self.transaction_within(tx, &job.prepared, clean).await?;
        let resources = written(&response);
        let list = resources.join(" ");
        let id = match job.replay_of {
            Some(id) => {
                tx.update_message(
                    self.tenant,
                    id,
                    "applied",
                    "AA",
                    &job.ack,
                    None,
                    Some(&list),
                )
                .await?;
                id
            }
            None => {
                tx.insert_message(
                    self.tenant,
                    &NewMessage {
                        sender: m.sender,
                        control_id: m.control_id,
                        message_type: m.message_type,
                        received: m.received,
                        status: "applied",
                        ack_code: "AA",
                        ack: &job.ack,
                        error: None,
                        resources: Some(&list),
                        raw: m.raw,
                        peer_identity: m.peer_identity,
                    },
                )
                .await?
            }
        };
        let planned_audit = job.audit.as_ref().filter(|_| as_planned);
        let audit = self.message_audit(tx, &m, "AA", planned_audit)?;
        Ok(Ok((id, resources, audit)))
    }

    /// Logs a message that was not applied (`failed` or `rejected`) with the
    /// ACK sent; a duplicate returns the earlier ACK instead.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_message(
        &self,
        m: &Inbound<'_>,
        status: &str,
        ack_code: &str,
        ack: &[u8],
        error: &str,
        replay_of: Option<i64>,
    ) -> FhirResult<Recorded> {
        let mut tx = self.store.begin().await?;
        if let Some(id) = replay_of {
            tx.update_message(self.tenant, id, status, ack_code, ack, Some(error), None)
                .await?;
            tx.commit().await?;
            return Ok(Recorded::Stored(id));
        }
        if let (Some(key), Some(control)) = (lock_key(self.tenant, m), m.control_id) {
            tx.lock_key(&key).await?;
            if let Some(prior) = tx.prior_message(self.tenant, m.sender, control).await? {
                let _ = tx.rollback().await;
                return Ok(Recorded::Duplicate { ack: prior.ack });
            }
        }
        let id = tx
            .insert_message(
                self.tenant,
                &NewMessage {
                    sender: m.sender,
                    control_id: m.control_id,
                    message_type: m.message_type,
                    received: m.received,
                    status,
                    ack_code,
                    ack,
                    error: Some(error),
                    resources: None,
                    raw: m.raw,
                    peer_identity: m.peer_identity,
                },
            )
            .await?;
        self.audit_message_in(&mut tx, m, ack_code).await?;
        tx.commit().await?;
        Ok(Recorded::Stored(id))
    }

    /// Records the message in the audit trail inside `tx`, naming what the
    /// transaction wrote (which then needs no REST record of its own).
    async fn audit_message_in(
        &self,
        tx: &mut crate::store::WriteTx,
        m: &Inbound<'_>,
        ack_code: &str,
    ) -> FhirResult<()> {
        if let Some(record) = self.message_audit(tx, m, ack_code, None)? {
            self.append_audit(tx, &record).await?;
        }
        Ok(())
    }

    /// The audit record of a message, naming what the transaction wrote
    /// since the last record (taken from `tx.touched`); None when the audit
    /// trail is off.
    ///
    /// `planned`: the record made with the plan, used when the transaction
    /// wrote what it expected.
    fn message_audit(
        &self,
        tx: &mut crate::store::WriteTx,
        m: &Inbound<'_>,
        ack_code: &str,
        planned: Option<&PlannedAudit>,
    ) -> FhirResult<Option<AuditRecord>> {
        if !self.audit {
            return Ok(None);
        }
        let touched = std::mem::take(&mut tx.touched);
        if let Some(planned) = planned.filter(|_| ack_code == "AA") {
            let mut wrote: Vec<(&str, &str, i64)> = touched
                .iter()
                .map(|t| (t.rtype.as_str(), t.id.as_str(), t.version))
                .collect();
            wrote.sort_unstable();
            let expected = planned
                .writes
                .iter()
                .map(|(rtype, id, version)| (rtype.as_str(), id.as_str(), *version));
            if wrote.iter().copied().eq(expected) {
                return Ok(Some(self.audit_record(planned.event.clone())));
            }
        }
        self.prepare_audit(message_event(m, ack_code, &touched))
            .map(Some)
    }

    /// The audit record of an applied message, made from its plan
    /// (`planned_writes`); None when the audit trail is off or the message
    /// has no plan to make it from.
    fn plan_message_audit(
        &self,
        m: &Inbound<'_>,
        prepared: &super::transaction::PreparedBundle,
    ) -> Option<PlannedAudit> {
        if !self.audit {
            return None;
        }
        let writes = prepared
            .planned_writes(|rtype, id| self.store.cached_version(self.tenant, rtype, id))?;
        // As `note_touched` records them: AuditEvents are not named.
        let touched: Vec<_> = writes
            .into_iter()
            .filter(|(rtype, ..)| *rtype != "AuditEvent")
            .map(|(rtype, id, version, p)| super::update::touched(rtype, id, version, p))
            .collect();
        // `recorded` is the time the message is planned, a batch's wait
        // before its commit (the records of REST reads, appended by the
        // audit writer, also carry a time before their commit);
        // `meta.lastUpdated` is set in the batch, in commit order.
        let Value::Object(event) = message_event(m, "AA", &touched) else {
            return None;
        };
        let event = self.prepare_write("AuditEvent", event).ok()?;
        let mut writes: Vec<(String, String, i64)> = touched
            .into_iter()
            .map(|t| (t.rtype, t.id, t.version))
            .collect();
        writes.sort_unstable();
        Some(PlannedAudit { writes, event })
    }

    /// The earlier ACK of a message with this sender and control id.
    pub async fn prior_ack(&self, sender: &str, control_id: &str) -> FhirResult<Option<Vec<u8>>> {
        let mut tx = self.store.begin().await?;
        let prior = tx.prior_message(self.tenant, sender, control_id).await?;
        let _ = tx.rollback().await;
        Ok(prior.map(|p| p.ack))
    }

    /// The live Patient with this identifier: id, version and body.
    pub async fn patient_by_identifier(
        &self,
        system: &str,
        value: &str,
    ) -> FhirResult<Option<(String, i64, Value)>> {
        let query = crate::hl7v2::map::identifier_query(system, value);
        let criteria = super::conditional::parse(&self.base_url, "Patient", &query)?;
        let mut tx = self.store.begin().await?;
        let ids = tx
            .find(self.tenant, "Patient", &criteria.filters, 2)
            .await?;
        let found = match ids.first() {
            Some(id) => tx.read(self.tenant, "Patient", id).await?,
            None => None,
        };
        let _ = tx.rollback().await;
        match (ids.first(), found) {
            (Some(id), Some(v)) => {
                let body = v
                    .body
                    .ok_or_else(|| FhirError::internal("a live resource has no body"))?;
                let value: Value = serde_json::from_slice(&body)
                    .map_err(|e| FhirError::internal(format!("stored body: {e}")))?;
                Ok(Some((id.clone(), v.version, value)))
            }
            _ => Ok(None),
        }
    }

    /// Logged messages, newest first (`status`: applied, failed, rejected).
    pub async fn list_messages(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> FhirResult<Vec<StoredMessage>> {
        Ok(self.store.list_messages(self.tenant, status, limit).await?)
    }

    /// One logged message with its raw bytes.
    pub async fn get_message(&self, id: i64) -> FhirResult<Option<StoredMessage>> {
        Ok(self.store.get_message(self.tenant, id).await?)
    }
}
