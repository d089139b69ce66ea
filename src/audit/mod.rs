//! The audit trail: an AuditEvent (IHE Basic Audit Log Patterns) for every
//! interaction, kept in a tamper-evident hash chain.
//!
//! - `context`: the per-request slot where layers note what the record needs;
//! - `event`: building AuditEvents (REST, HL7 v2, authentication);
//! - `chain`: the hash of a link, checkpoint claims, verification reports;
//! - `writer`: the group-committing writer for records outside a write
//!   transaction (reads, searches, failures, sign-ins);
//! - `verify`: `charaka audit verify`.
//!
//! Writes are recorded in their own transaction (`service::audit`); every
//! other interaction is recorded before its response is sent, so an
//! answered request always has its record on disk.

pub mod chain;
pub mod checkpoint;
pub mod cli;
pub mod context;
pub mod event;
pub mod verify;
pub mod writer;

pub use context::{current, AuditSlot, RequestFacts};
