//! Group commit: writes that arrive while another batch is committing
//! wait for it and then commit together, in one transaction and one flush
//! to disk.
//!
//! Leader and followers are symmetric. Each caller queues its job and waits
//! for its result or the batch lock, whichever comes first; whoever takes
//! the lock takes every queued job (up to `MAX_BATCH`) and starts their
//! batch, then waits for its own job's result. A caller whose job an
//! earlier holder took gets its result without waiting for the lock. The
//! batch runs in a task of its own that
//! holds the lock, so a caller that goes away (a closed connection) never
//! cuts a batch short for the others.
//!
//! A lone writer pays nothing: its batch is its own job, started at once.
//!
//! Batches run on a thread of their own (`batch_thread`), not on the
//! runtime's workers. SQLite's writer runs its statements on the thread
//! that calls it (`store::direct`), so a batch keeps its thread busy for
//! milliseconds; on a worker it held up the connections and message
//! parsing queued there, and waited behind them between its own steps
//! (HL7 v2 ADT^A01 over MLLP, 4 connections: 588 -> 703 messages/s).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// The runtime of the thread batches run on, started on first use and
/// shared by every `GroupCommit` of the process; None when the thread
/// could not be started (batches then run on the caller's runtime).
fn batch_thread() -> Option<&'static tokio::runtime::Handle> {
    static THREAD: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("charaka-batches".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => {
                            let _ = sender.send(Some(runtime.handle().clone()));
                            runtime.block_on(std::future::pending::<()>());
                        }
                        Err(_) => {
                            let _ = sender.send(None);
                        }
                    }
                })
                .ok()?;
            receiver.recv().ok().flatten()
        })
        .as_ref()
}

/// Most jobs one batch takes; the rest wait for the next.
pub const MAX_BATCH: usize = 64;

/// A batch's work: the jobs in, one result per job out, in order.
pub type BatchFuture<R> = Pin<Box<dyn Future<Output = Vec<R>> + Send>>;

type Queued<J, R> = (J, oneshot::Sender<R>);

pub struct GroupCommit<J, R> {
    queue: Mutex<Vec<Queued<J, R>>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<J, R> Default for GroupCommit<J, R> {
    fn default() -> Self {
        GroupCommit {
            queue: Mutex::new(Vec::new()),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> GroupCommit<J, R> {
    /// Queues `job` and returns its result once its batch has run. `run`
    /// starts a batch of queued jobs (this one's, others', or both). None
    /// when the job's batch ended without an answer for it (its task
    /// panicked).
    ///
    /// The task that runs a batch runs the next one too, while jobs are
    /// queued: the writer goes from one batch to the next without waiting
    /// for a caller to be scheduled and take the lock (HL7 v2 ADT^A01 over
    /// MLLP, 16 connections: the batch thread was idle a fifth of the time
    /// between batches).
    pub async fn submit<F>(self: &Arc<Self>, job: J, run: F) -> Option<R>
    where
        F: Fn(Vec<J>) -> BatchFuture<R> + Send + 'static,
    {
        let (sender, mut receiver) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job, sender));
        // A job taken by a batch that is still running is answered before
        // its caller's turn at the lock comes.
        let guard = tokio::select! {
            biased;
            answered = &mut receiver => return answered.ok(),
            guard = self.lock.clone().lock_owned() => guard,
        };
        let taken = self.take();
        if taken.is_empty() {
            drop(guard);
        } else {
            let this = self.clone();
            let task = async move {
                let mut taken = taken;
                while !taken.is_empty() {
                    let (jobs, senders): (Vec<J>, Vec<oneshot::Sender<R>>) =
                        taken.into_iter().unzip();
                    let results = run(jobs).await;
                    // The lock is held until every result is out: the next
                    // batch sees this one committed.
                    for (sender, result) in senders.into_iter().zip(results) {
                        let _ = sender.send(result);
                    }
                    taken = this.take();
                }
                drop(guard);
            };
            match batch_thread() {
                Some(thread) => thread.spawn(task),
                None => tokio::spawn(task),
            };
        }
        receiver.await.ok()
    }

    /// Up to `MAX_BATCH` queued jobs, oldest first.
    fn take(&self) -> Vec<Queued<J, R>> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn doubling(
        batches: Arc<AtomicUsize>,
    ) -> impl Fn(Vec<u32>) -> BatchFuture<u32> + Send + 'static {
        move |jobs| {
            let batches = batches.clone();
            Box::pin(async move {
                batches.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                jobs.into_iter().map(|j| j * 2).collect()
            })
        }
    }

    #[tokio::test]
    async fn a_lone_job_runs_as_its_own_batch() {
        let group = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        assert_eq!(group.submit(21, doubling(batches.clone())).await, Some(42));
        assert_eq!(batches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn jobs_queued_during_a_batch_commit_together_and_each_gets_its_result() {
        let group = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for n in 0..10u32 {
            let group = group.clone();
            let batches = batches.clone();
            tasks.push(tokio::spawn(async move {
                group.submit(n, doubling(batches)).await
            }));
        }
        for (n, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), Some(n as u32 * 2));
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (1..10).contains(&batches),
            "10 concurrent jobs ran in {batches} batches"
        );
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_batch() {
        let group = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let first = {
            let group = group.clone();
            let batches = batches.clone();
            tokio::spawn(async move { group.submit(1, doubling(batches)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        first.abort();
        let second = group.submit(2, doubling(batches.clone())).await;
        assert_eq!(second, Some(4));
    }
}
