//! A count of this process's write commits, read as a sequence lock: work
//! planned from a snapshot (a transaction's lookups, run before its write
//! transaction opens) can be used as it is when no commit started or ended
//! since the planning began.
//!
//! Every commit of a write transaction adds one before it runs and one after
//! it ends (also when it fails), so the count is odd
//! while a commit is under way. A reading taken before the lookups began is
//! `None` when a commit was under way then: its writes may or may not be in
//! the lookups' snapshot. An equal, even reading taken later under the write
//! lock means no commit happened in between, so the database holds exactly
//! what the lookups saw (on SQLite, where this process is the only writer,
//! as the version cache already assumes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Commits(Arc<AtomicU64>);

impl Commits {
    /// The count, or None while a commit is under way.
    pub fn reading(&self) -> Option<u64> {
        let n = self.0.load(Ordering::SeqCst);
        (n % 2 == 0).then_some(n)
    }

    /// Marks a commit under way until the guard is dropped.
    pub fn start(&self) -> CommitGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        CommitGuard(self.0.clone())
    }
}

pub struct CommitGuard(Arc<AtomicU64>);

impl Drop for CommitGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_changes_with_every_commit_and_is_none_during_one() {
        let commits = Commits::default();
        let before = commits.reading().expect("no commit under way");
        let guard = commits.start();
        assert_eq!(commits.reading(), None);
        drop(guard);
        let after = commits.reading().expect("the commit ended");
        assert_ne!(before, after);
        assert_eq!(commits.reading(), Some(after));
    }
}
