//! What the audit record of the current request needs, gathered while the
//! request runs. The HTTP layer opens an [`AuditSlot`] per request and runs
//! the handler inside [`scope`]; deeper layers (the token check, handlers,
//! the service's commit point) add what they learn through [`current`],
//! without the slot being threaded through every signature.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::auth::Access;

tokio::task_local! {
    static SLOT: Arc<AuditSlot>;
}

/// Facts about the request known when it arrives.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub method: String,
    /// The path below the FHIR base, e.g. `/Patient/1`.
    pub path: String,
    pub query: Option<String>,
    pub source: Option<IpAddr>,
    pub request_id: Option<String>,
}

#[derive(Debug, Default)]
struct Learned {
    access: Option<Arc<Access>>,
    patients: Vec<String>,
    entities: Vec<String>,
    subtype: Option<&'static str>,
    recorded: bool,
}

/// The audit facts of one request.
#[derive(Debug, Default)]
pub struct AuditSlot {
    pub request: RequestFacts,
    learned: Mutex<Learned>,
}

impl AuditSlot {
    pub fn new(request: RequestFacts) -> AuditSlot {
        AuditSlot {
            request,
            learned: Mutex::default(),
        }
    }

    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.learned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The authenticated caller.
    pub fn set_access(&self, access: Arc<Access>) {
        self.learned().access = Some(access);
    }

    pub fn access(&self) -> Option<Arc<Access>> {
        self.learned().access.clone()
    }

    /// Patients whose data the request touched.
    pub fn add_patients(&self, patients: impl IntoIterator<Item = String>) {
        let mut l = self.learned();
        for p in patients {
            if !l.patients.contains(&p) {
                l.patients.push(p);
            }
        }
    }

    pub fn patients(&self) -> Vec<String> {
        self.learned().patients.clone()
    }

    /// A resource the request touched (`Type/id` or `Type/id/_history/v`).
    pub fn add_entity(&self, reference: String) {
        self.learned().entities.push(reference);
    }

    pub fn entities(&self) -> Vec<String> {
        self.learned().entities.clone()
    }

    /// A more precise interaction than the method and path tell (for
    /// example `batch` or `transaction` for a Bundle posted to the base).
    pub fn set_subtype(&self, code: &'static str) {
        self.learned().subtype = Some(code);
    }

    pub fn subtype(&self) -> Option<&'static str> {
        self.learned().subtype
    }

    /// The request's audit record was written in the transaction of its
    /// write, so the HTTP layer writes none.
    pub fn mark_recorded(&self) {
        self.learned().recorded = true;
    }

    pub fn is_recorded(&self) -> bool {
        self.learned().recorded
    }
}

/// Runs `f` with `slot` as the current request's slot.
pub async fn scope<F: std::future::Future>(slot: Arc<AuditSlot>, f: F) -> F::Output {
    SLOT.scope(slot, f).await
}

/// The current request's slot, if the code runs inside one.
pub fn current() -> Option<Arc<AuditSlot>> {
    SLOT.try_with(Arc::clone).ok()
}
