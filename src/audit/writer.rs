//! The audit writer: records of interactions that write nothing (reads,
//! searches, refused requests, sign-ins) are appended by one task that
//! commits them in groups. A request waits for its record's commit before
//! its response leaves, so an answered request is always on record; the
//! group commit keeps that cheap (one transaction for every record that
//! arrived while the previous one committed).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::{FhirError, FhirResult};
use crate::service::audit::AuditRecord;
use crate::service::Fhir;

/// Records per group commit at most.
const GROUP: usize = 512;
/// Records waiting for the writer at most (then callers wait to enqueue).
const QUEUE: usize = 8192;

struct Job {
    event: AuditRecord,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle on the audit writer task.
#[derive(Clone)]
pub struct AuditWriter {
    fhir: Arc<Fhir>,
    sender: Option<mpsc::Sender<Job>>,
}

impl AuditWriter {
    /// Starts the writer task (nothing when auditing is off).
    pub fn start(fhir: Arc<Fhir>) -> AuditWriter {
        if !fhir.audit {
            return AuditWriter { fhir, sender: None };
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(fhir.clone(), receiver));
        AuditWriter {
            fhir,
            sender: Some(sender),
        }
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Records `event` and returns once it is committed.
    pub async fn record(&self, event: Value) -> FhirResult<()> {
        let Some(sender) = &self.sender else {
            return Ok(());
        };
        let event = self.fhir.prepare_audit(event)?;
        let (done, wait) = oneshot::channel();
        sender
            .send(Job { event, done })
            .await
            .map_err(|_| unavailable("the audit writer has stopped"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(unavailable(&why)),
            Err(_) => Err(unavailable("the audit writer has stopped")),
        }
    }
}

fn unavailable(why: &str) -> FhirError {
    FhirError::new(
        503,
        crate::fhir::outcome::IssueType::Transient,
        format!("the audit trail could not record this request ({why}); nothing was returned"),
    )
}

async fn run(fhir: Arc<Fhir>, mut receiver: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(GROUP);
    while let Some(job) = receiver.recv().await {
        batch.push(job);
        while batch.len() < GROUP {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&AuditRecord> = batch.iter().map(|j| &j.event).collect();
        let result = fhir
            .append_audit_batch(&events)
            .await
            .map_err(|e| e.to_string());
        if let Err(why) = &result {
            tracing::error!(records = batch.len(), error = %why, "audit records could not be committed");
        }
        for job in batch.drain(..) {
            let _ = job.done.send(result.clone());
        }
    }
}
