//! The hash chain over AuditEvents: record n's hash is
//! SHA-256(hash of record n-1 ‖ n as 8 bytes big-endian ‖ event id ‖ 0x00 ‖
//! the event's stored JSON), with 32 zero bytes before record 1. Changing
//! an event, or removing, inserting or reordering a record, breaks every
//! hash from that record on; signed checkpoints pin the chain so that it
//! cannot be recomputed wholesale without the server's signing key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash of a link.
pub fn link_hash(previous: &[u8], seq: i64, event_id: &str, body: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(seq.to_be_bytes());
    h.update(event_id.as_bytes());
    h.update([0u8]);
    h.update(body);
    h.finalize().to_vec()
}

/// What a checkpoint signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointClaims {
    /// Always `audit-checkpoint`, so no other JWT of the server passes.
    pub typ: String,
    pub tenant: i64,
    pub seq: i64,
    /// The link's hash, base64url.
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub iat: i64,
}

pub const CHECKPOINT_TYP: &str = "audit-checkpoint";

/// One problem `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The record (sequence number) where it shows; 0 when not tied to one.
    pub seq: i64,
    pub message: String,
}

/// The result of verifying a tenant's chain.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub records: i64,
    pub checkpoints: usize,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn problem(&mut self, seq: i64, message: String) {
        self.problems.push(Problem { seq, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_hash() {
        let base = link_hash(&[0; 32], 1, "a", b"{}");
        assert_ne!(base, link_hash(&[1; 32], 1, "a", b"{}"));
        assert_ne!(base, link_hash(&[0; 32], 2, "a", b"{}"));
        assert_ne!(base, link_hash(&[0; 32], 1, "b", b"{}"));
        assert_ne!(base, link_hash(&[0; 32], 1, "a", b"{ }"));
        // The separator keeps id and body apart.
        assert_ne!(
            link_hash(&[0; 32], 1, "ab", b"c"),
            link_hash(&[0; 32], 1, "a", b"bc")
        );
    }
}
