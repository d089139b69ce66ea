//! Rebuilding the search index: when the set of search parameters differs
//! from the one the index was built with (an upgrade of Charaka, or
//! `$reindex`), every live resource's index rows are recomputed in the
//! background, in batches, each batch one transaction that re-reads (and on
//! PostgreSQL locks) the resources it indexes, so a concurrent write is
//! never overwritten by older rows. Progress is visible through
//! `GET [base]/$reindex` and `/health/ready`.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::{format_instant, now_micros};
use crate::search::extract::index_rows;
use crate::search::registry::Registry;

/// Resources indexed per transaction.
const BATCH: i64 = 250;

/// Bumped whenever the extraction rules change the rows a resource gets.
const EXTRACTOR_VERSION: &str = "5";

/// The state of one reindex job.
#[derive(Debug, Clone, Default)]
pub struct ReindexProgress {
    /// Numbered from 1 per server start.
    pub id: u64,
    pub running: bool,
    pub processed: i64,
    pub total: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub error: Option<String>,
    /// The resource types reindexed; None for every type.
    pub types: Option<Vec<String>>,
    /// Why the job runs (`requested`, `definitions changed`, `search parameters changed`).
    pub reason: String,
}

/// Jobs kept for `GET [base]/$reindex` besides the current one.
const HISTORY: usize = 10;

#[derive(Debug, Default)]
struct Jobs {
    /// The running job, or the last one.
    current: ReindexProgress,
    /// What the next job reindexes once the current one ends: None when
    /// nothing is queued, `Some(None)` for every type.
    queued: Option<Option<BTreeSet<String>>>,
    /// Custom parameters (type, code) whose existing resources are not
    /// indexed yet.
    pending: BTreeSet<(String, String)>,
    history: VecDeque<ReindexProgress>,
}

/// The reindex jobs of this server: one runs at a time; requests made
/// while it runs are queued and merged into the next.
#[derive(Debug, Default)]
pub struct ReindexJob {
    jobs: Mutex<Jobs>,
}

impl ReindexJob {
    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().expect("not poisoned")
    }

    /// The running job, or the last one.
    pub fn progress(&self) -> ReindexProgress {
        self.lock().current.clone()
    }

    /// Whether existing resources of `rtype` are still being indexed for
    /// the custom parameter `code`.
    pub fn is_pending(&self, rtype: &str, code: &str) -> bool {
        let jobs = self.lock();
        !jobs.pending.is_empty()
            && jobs
                .pending
                .contains(&(rtype.to_string(), code.to_string()))
    }

    /// Starts a job over `types` (None: every type) after which the
    /// custom parameters `pending` are complete; false when one runs.
    fn start(
        &self,
        total: i64,
        types: Option<Vec<String>>,
        reason: &str,
        pending: Vec<(String, String)>,
    ) -> bool {
        let mut jobs = self.lock();
        if jobs.current.running {
            return false;
        }
        jobs.pending.extend(pending);
        jobs.begin(total, types, reason);
        true
    }

    /// Asks for the resources of `types` to be indexed again because the
    /// custom parameters `changed` (type, code) are new or changed: starts
    /// a job (true) or queues the types for the next one (false).
    fn request(&self, types: BTreeSet<String>, changed: Vec<(String, String)>) -> bool {
        let mut jobs = self.lock();
        jobs.pending.extend(changed);
        if jobs.current.running {
            match &mut jobs.queued {
                Some(None) => {}
                Some(Some(queued)) => queued.extend(types),
                None => jobs.queued = Some(Some(types)),
            }
            return false;
        }
        jobs.begin(
            0,
            Some(types.into_iter().collect()),
            "search parameters changed",
        );
        true
    }

    /// Ends a pass that succeeded: its types' pending parameters are done
    /// (unless queued again); a queued request becomes the next job, whose
    /// types are returned.
    fn next(&self) -> Option<Option<Vec<String>>> {
        let mut jobs = self.lock();
        let done = jobs.current.types.clone();
        let queued = jobs.queued.take();
        let still: BTreeSet<String> = match &queued {
            Some(Some(types)) => types.clone(),
            _ => BTreeSet::new(),
        };
        let everything = matches!(queued, Some(None));
        if !everything {
            jobs.pending.retain(|(t, _)| {
                still.contains(t) || done.as_ref().is_some_and(|d| !d.contains(t))
            });
        }
        let queued = queued?;
        jobs.current.running = false;
        jobs.current.finished = Some(now_micros());
        let types = queued.map(|t| t.into_iter().collect::<Vec<_>>());
        jobs.begin(0, types.clone(), "search parameters changed");
        Some(types)
    }

    fn update(&self, f: impl FnOnce(&mut ReindexProgress)) {
        f(&mut self.lock().current);
    }

    /// Every job kept, newest first, and the pending parameters.
    fn snapshot(&self) -> (Vec<ReindexProgress>, Vec<(String, String)>) {
        let jobs = self.lock();
        let mut all = vec![jobs.current.clone()];
        all.extend(jobs.history.iter().cloned());
        all.retain(|j| j.id > 0);
        (all, jobs.pending.iter().cloned().collect())
    }
}

impl Jobs {
    fn begin(&mut self, total: i64, types: Option<Vec<String>>, reason: &str) {
        let id = self.current.id + 1;
        let previous = std::mem::replace(
            &mut self.current,
            ReindexProgress {
                id,
                running: true,
                total,
                started: Some(now_micros()),
                types,
                reason: reason.to_string(),
                ..Default::default()
            },
        );
        if previous.id > 0 {
            self.history.push_front(previous);
            self.history.truncate(HISTORY);
        }
    }
}

/// Identifies the parameter definitions (built-in and custom) and the
/// extraction rules.
pub fn fingerprint(reg: &Registry) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let defs = include_str!("../../conformance/search-parameters.json");
    let custom = reg.custom_signature();
    for b in EXTRACTOR_VERSION
        .bytes()
        .chain(defs.bytes())
        .chain(custom.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("v{EXTRACTOR_VERSION}-{h:016x}")
}

impl ReindexProgress {
    fn status(&self) -> &'static str {
        if self.running {
            "running"
        } else if self.error.is_some() {
            "failed"
        } else if self.finished.is_some() {
            "completed"
        } else {
            "idle"
        }
    }

    /// The job as `Parameters.parameter` entries.
    fn parameters(&self) -> Vec<Value> {
        let mut parameter = vec![
            json!({"name": "status", "valueCode": self.status()}),
            json!({"name": "processed", "valueInteger": self.processed}),
            json!({"name": "total", "valueInteger": self.total}),
        ];
        if let Some(t) = self.started {
            parameter.push(json!({"name": "started", "valueInstant": format_instant(t)}));
        }
        if let Some(t) = self.finished {
            parameter.push(json!({"name": "finished", "valueInstant": format_instant(t)}));
        }
        if let Some(e) = &self.error {
            parameter.push(json!({"name": "error", "valueString": e}));
        }
        if self.id > 0 {
            parameter.push(json!({"name": "id", "valueInteger": self.id}));
            parameter.push(json!({"name": "reason", "valueString": self.reason}));
            for t in self.types.iter().flatten() {
                parameter.push(json!({"name": "type", "valueCode": t}));
            }
        }
        parameter
    }

    /// As a `Parameters` resource (the answer of `POST [base]/$reindex`).
    pub fn to_parameters(&self) -> Value {
        json!({"resourceType": "Parameters", "parameter": self.parameters()})
    }
}

impl ReindexJob {
    /// The answer of `GET [base]/$reindex`: the running (or last) job's
    /// parameters at the top level; each custom parameter whose existing
    /// resources are not indexed yet as `pending` (`Type.code`); and every
    /// job kept, newest first, as a `job` with the same parameters as parts.
    pub fn to_parameters(&self) -> Value {
        let (jobs, pending) = self.snapshot();
        let current = jobs.first().cloned().unwrap_or_default();
        let mut parameter = current.parameters();
        for (t, code) in pending {
            parameter.push(json!({"name": "pending", "valueString": format!("{t}.{code}")}));
        }
        for job in &jobs {
            parameter.push(json!({"name": "job", "part": job.parameters()}));
        }
        json!({"resourceType": "Parameters", "parameter": parameter})
    }
}

impl Fhir {
    /// Whether the index was built with other search parameters than this
    /// server's (so a reindex is due). An empty database is simply marked
    /// current.
    pub async fn index_is_stale(&self) -> FhirResult<bool> {
        let current = fingerprint(&self.search_registry());
        if self.store.index_fingerprint(self.tenant).await?.as_deref() == Some(current.as_str()) {
            return Ok(false);
        }
        if self.store.live_count(self.tenant, None).await? == 0 {
            self.store
                .set_index_fingerprint(self.tenant, &current)
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Rebuilds every live resource's index rows: `begin_reindex`, then
    /// `run_reindex`. Fails at once when a reindex already runs.
    pub async fn reindex(&self) -> FhirResult<()> {
        self.begin_reindex_for("definitions changed").await?;
        self.run_reindex().await
    }

    /// Marks a reindex of every resource as running (409 when a job
    /// already is).
    pub async fn begin_reindex(&self) -> FhirResult<()> {
        self.begin_reindex_for("requested").await
    }

    async fn begin_reindex_for(&self, reason: &str) -> FhirResult<()> {
        let total = self.store.live_count(self.tenant, None).await?;
        // Custom parameters are complete again only when the job ends.
        let custom: Vec<(String, String)> = self
            .search_registry()
            .custom_params()
            .iter()
            .map(|p| (p.rtype.clone(), p.code.clone()))
            .collect();
        if !self.reindex_job.start(total, None, reason, custom) {
            return Err(FhirError::conflict(
                "a reindex is already running (GET [base]/$reindex shows its progress)",
            ));
        }
        tracing::info!(total, "search index rebuild started");
        Ok(())
    }

    /// Reindexes the resources of `types` because the custom parameters
    /// `changed` are new or changed: in a background task, or after the
    /// job that runs now. Needs the server's `Arc<Fhir>` (`attach`).
    pub(super) fn request_reindex(&self, types: BTreeSet<String>, changed: Vec<(String, String)>) {
        if types.is_empty() {
            return;
        }
        if !self.reindex_job.request(types, changed) {
            return;
        }
        match self.this.get().and_then(std::sync::Weak::upgrade) {
            Some(fhir) => {
                tokio::spawn(async move {
                    let _ = fhir.run_reindex().await;
                });
            }
            None => self.reindex_job.update(|p| {
                p.running = false;
                p.error = Some(
                    "no background job can run here (the server is stopping, or this is a command-line run); the next server start rebuilds the index".into(),
                );
            }),
        }
    }

    /// Runs the job `begin_reindex` (or a change of search parameters)
    /// started, then any queued after it.
    pub async fn run_reindex(&self) -> FhirResult<()> {
        let result = loop {
            let types = self.reindex_job.progress().types;
            if types.is_some() {
                let total = self.store.live_count(self.tenant, types.as_deref()).await;
                let total = match total {
                    Ok(t) => t,
                    Err(e) => break Err(e.into()),
                };
                self.reindex_job.update(|p| p.total = total);
            }
            tracing::info!(types = ?types, "search index rebuild started");
            if let Err(e) = self.reindex_all(types.as_deref()).await {
                break Err(e);
            }
            if self.reindex_job.next().is_none() {
                break self
                    .store
                    .set_index_fingerprint(self.tenant, &fingerprint(&self.search_registry()))
                    .await
                    .map_err(FhirError::from);
            }
        };
        let processed = self.reindex_job.progress().processed;
        match &result {
            Ok(()) => {
                tracing::info!(processed, "search index rebuild finished");
            }
            Err(err) => tracing::error!(error = %err, processed, "search index rebuild failed"),
        }
        self.reindex_job.update(|p| {
            p.running = false;
            p.finished = Some(now_micros());
            p.error = result.as_ref().err().map(ToString::to_string);
        });
        result
    }

    async fn reindex_all(&self, types: Option<&[String]>) -> FhirResult<()> {
        let mut after = 0;
        loop {
            let mut attempt = 0;
            let last = loop {
                let mut tx = self.store.begin().await?;
                let result = self.reindex_batch(&mut tx, types, after).await;
                if let Some(done) = self.finish(tx, result, &mut attempt).await {
                    break done?;
                }
            };
            match last {
                Some((rid, n)) => {
                    after = rid;
                    self.reindex_job.update(|p| p.processed += n);
                    if self.reindex_job.progress().processed % 10_000 < n {
                        let p = self.reindex_job.progress();
                        tracing::info!(
                            processed = p.processed,
                            total = p.total,
                            "search index rebuild"
                        );
                    }
                }
                None => break,
            }
        }
        Ok(())
    }

    /// One batch: the last rid done and how many, None when nothing is left.
    async fn reindex_batch(
        &self,
        tx: &mut crate::store::WriteTx,
        types: Option<&[String]>,
        after: i64,
    ) -> FhirResult<Option<(i64, i64)>> {
        let batch = tx.live_batch(self.tenant, types, after, BATCH).await?;
        let Some(last) = batch.last().map(|r| r.rid) else {
            return Ok(None);
        };
        // The parameters as they are now: a change during the job queues
        // another pass over its types.
        let reg = self.search_registry();
        for r in &batch {
            let value: Value = serde_json::from_slice(&r.body)
                .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
            let rows = index_rows(&reg, &r.rtype, &value, &self.base_url);
            tx.replace_index(self.tenant, r.rid, &rows).await?;
        }
        Ok(Some((last, batch.len() as i64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(types: &[&str]) -> BTreeSet<String> {
        types.iter().map(|t| t.to_string()).collect()
    }

    fn param(t: &str, c: &str) -> (String, String) {
        (t.to_string(), c.to_string())
    }

    #[test]
    fn changes_while_a_job_runs_are_queued_and_stay_pending() {
        let job = ReindexJob::default();
        assert!(job.request(set(&["Patient"]), vec![param("Patient", "a")]));
        assert!(job.is_pending("Patient", "a"));
        // A second change while the first job runs: queued, not started.
        assert!(!job.request(
            set(&["Patient", "Observation"]),
            vec![param("Observation", "b")]
        ));
        // The first pass ends: Patient is queued again, so `a` stays
        // pending; the queued job starts over both types.
        let next = job.next().expect("a queued job");
        assert_eq!(
            next,
            Some(vec!["Observation".to_string(), "Patient".to_string()])
        );
        assert!(job.is_pending("Patient", "a"));
        assert!(job.is_pending("Observation", "b"));
        assert_eq!(job.progress().id, 2);
        // The second pass ends with nothing queued: nothing pending.
        assert!(job.next().is_none());
        assert!(!job.is_pending("Patient", "a"));
        assert!(!job.is_pending("Observation", "b"));
        let answer = job.to_parameters().to_string();
        assert!(answer.contains("\"job\""), "{answer}");
    }

    #[test]
    fn a_full_reindex_refuses_to_start_twice() {
        let job = ReindexJob::default();
        assert!(job.start(10, None, "requested", vec![param("Encounter", "c")]));
        assert!(job.is_pending("Encounter", "c"));
        assert!(!job.start(10, None, "requested", vec![]));
        // A change during a full reindex waits for it.
        assert!(!job.request(set(&["Patient"]), vec![param("Patient", "a")]));
        assert_eq!(job.next(), Some(Some(vec!["Patient".to_string()])));
        // The full pass covered Encounter.
        assert!(!job.is_pending("Encounter", "c"));
        assert!(job.is_pending("Patient", "a"));
    }
}
