//! Rebuilding the search index: when the set of search parameters differs
//! from the one the index was built with (an upgrade of Charaka, or
//! `$reindex`), every live resource's index rows are recomputed in the
//! background, in batches, each batch one transaction that re-reads (and on
//! PostgreSQL locks) the resources it indexes, so a concurrent write is
//! never overwritten by older rows. Progress is visible through
//! `GET [base]/$reindex` and `/health/ready`.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::{format_instant, now_micros};
use crate::search::extract::index_rows;

/// Resources indexed per transaction.
const BATCH: i64 = 250;

/// Bumped whenever the extraction rules change the rows a resource gets.
const EXTRACTOR_VERSION: &str = "2";

/// The state of the reindex job.
#[derive(Debug, Clone, Default)]
pub struct ReindexProgress {
    pub running: bool,
    pub processed: i64,
    pub total: i64,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub error: Option<String>,
}

/// Shared progress of this server's reindex job.
#[derive(Debug, Default)]
pub struct ReindexJob {
    progress: Mutex<ReindexProgress>,
}

impl ReindexJob {
    pub fn progress(&self) -> ReindexProgress {
        self.progress.lock().expect("not poisoned").clone()
    }

    /// Marks the job as started; false when it already runs.
    fn start(&self, total: i64) -> bool {
        let mut p = self.progress.lock().expect("not poisoned");
        if p.running {
            return false;
        }
        *p = ReindexProgress {
            running: true,
            total,
            started: Some(now_micros()),
            ..Default::default()
        };
        true
    }

    fn update(&self, f: impl FnOnce(&mut ReindexProgress)) {
        f(&mut self.progress.lock().expect("not poisoned"));
    }
}

/// Identifies the parameter definitions and extraction rules.
pub fn fingerprint() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let defs = include_str!("../../conformance/search-parameters.json");
    for b in EXTRACTOR_VERSION.bytes().chain(defs.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("v{EXTRACTOR_VERSION}-{h:016x}")
}

impl ReindexProgress {
    /// As a `Parameters` resource (the `$reindex` answer).
    pub fn to_parameters(&self) -> Value {
        let status = if self.running {
            "running"
        } else if self.error.is_some() {
            "failed"
        } else if self.finished.is_some() {
            "completed"
        } else {
            "idle"
        };
        let mut parameter = vec![
            json!({"name": "status", "valueCode": status}),
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
        json!({"resourceType": "Parameters", "parameter": parameter})
    }
}

impl Fhir {
    /// Whether the index was built with other search parameters than this
    /// server's (so a reindex is due). An empty database is simply marked
    /// current.
    pub async fn index_is_stale(&self) -> FhirResult<bool> {
        let current = fingerprint();
        if self.store.index_fingerprint(self.tenant).await?.as_deref() == Some(current.as_str()) {
            return Ok(false);
        }
        if self.store.live_count(self.tenant).await? == 0 {
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
        self.begin_reindex().await?;
        self.run_reindex().await
    }

    /// Marks the reindex job as running (409 when it already is).
    pub async fn begin_reindex(&self) -> FhirResult<()> {
        let total = self.store.live_count(self.tenant).await?;
        if !self.reindex_job.start(total) {
            return Err(FhirError::conflict("a reindex is already running"));
        }
        tracing::info!(total, "search index rebuild started");
        Ok(())
    }

    /// Runs the job `begin_reindex` started.
    pub async fn run_reindex(&self) -> FhirResult<()> {
        let result = self.reindex_all().await;
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

    async fn reindex_all(&self) -> FhirResult<()> {
        let mut after = 0;
        loop {
            let mut attempt = 0;
            let last = loop {
                let mut tx = self.store.begin().await?;
                let result = self.reindex_batch(&mut tx, after).await;
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
        self.store
            .set_index_fingerprint(self.tenant, &fingerprint())
            .await?;
        Ok(())
    }

    /// One batch: the last rid done and how many, None when nothing is left.
    async fn reindex_batch(
        &self,
        tx: &mut crate::store::WriteTx,
        after: i64,
    ) -> FhirResult<Option<(i64, i64)>> {
        let batch = tx.live_batch(self.tenant, after, BATCH).await?;
        let Some(last) = batch.last().map(|r| r.rid) else {
            return Ok(None);
        };
        for r in &batch {
            let value: Value = serde_json::from_slice(&r.body)
                .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
            let rows = index_rows(&r.rtype, &value, &self.base_url);
            tx.replace_index(self.tenant, r.rid, &rows).await?;
        }
        Ok(Some((last, batch.len() as i64)))
    }
}
