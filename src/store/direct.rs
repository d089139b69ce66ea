//! SQLite's one writer connection, driven on the caller's thread (rusqlite)
//! rather than through sqlx's connection thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every
//! statement and every row across threads and back. A write transaction
//! runs a dozen or more short statements (an HL7 v2 ADT^A01: 26, most of
//! them under 20 µs), and each hand-over cost more than the statement once
//! the machine was busy: about 70 µs of waiting to be scheduled on each side.
//! SQLite's one writer waits for nothing else, so every one of those waits
//! was a wait for every other writer too. Here a statement runs where it is
//! called, in microseconds; only the commit, which waits for the disk, is
//! announced to the runtime as blocking.
//!
//! The lookups a write plans with (`Readers`) run the same way on
//! read-only connections. Searches stay on sqlx's pool: they run side by
//! side and can take milliseconds, which would hold up a runtime worker.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::db::{Param, Query};
use super::StoreError;

/// How long a caller waits for the writer before giving up (busy).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Busy
            }
            _ => StoreError::Database(err.to_string()),
        }
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Float(v) => ToSqlOutput::Owned(Value::Real(*v)),
            Param::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Param::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Param::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// The writer connection, shared by the store; one holder at a time.
#[derive(Clone)]
pub struct Writer {
    conn: Arc<Mutex<Option<Connection>>>,
    closed: Arc<AtomicBool>,
}

/// The writer, held: statements run through `conn`.
pub struct WriterGuard(OwnedMutexGuard<Option<Connection>>);

impl WriterGuard {
    pub fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        self.0
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))
    }
}

impl Writer {
    /// Opens the database file at `path` for writing, with the settings of
    /// every other connection (`sqlite::connect`), and never checkpointing
    /// on its own (`sqlite::checkpointer` does).
    pub fn open(path: &Path, synchronous: &str) -> anyhow::Result<Writer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let synchronous = if synchronous == "normal" {
            "NORMAL"
        } else {
            "FULL"
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; \
             PRAGMA temp_store = memory; PRAGMA wal_autocheckpoint = 0;"
        ))?;
        conn.set_prepared_statement_cache_capacity(256);
        Ok(Writer {
            conn: Arc::new(Mutex::new(Some(conn))),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Waits for the writer (up to `ACQUIRE_TIMEOUT`).
    pub async fn acquire(&self) -> Result<WriterGuard, StoreError> {
        let guard = tokio::time::timeout(ACQUIRE_TIMEOUT, self.conn.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Busy)?;
        let mut guard = WriterGuard(guard);
        guard.conn()?;
        Ok(guard)
    }

    /// Starts a write transaction, taking SQLite's write lock at once. The
    /// lock is normally free (this is the process's one writer); when
    /// another process holds it, the wait (up to the busy timeout) is
    /// announced to the runtime as blocking.
    pub async fn begin(&self) -> Result<DirectTx, StoreError> {
        let mut guard = self.acquire().await?;
        let conn = guard.conn()?;
        if !conn.is_autocommit() {
            // A transaction whose ROLLBACK failed: end it before the next.
            conn.execute_batch("ROLLBACK")?;
        }
        conn.busy_timeout(Duration::ZERO)?;
        let first = conn.execute_batch("BEGIN IMMEDIATE");
        conn.busy_timeout(BUSY_TIMEOUT)?;
        match first {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                blocking(|| conn.execute_batch("BEGIN IMMEDIATE"))?;
            }
            other => other?,
        }
        Ok(DirectTx { guard })
    }

    /// Closes the connection once its holder (if any) lets it go.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(conn) = self.conn.lock().await.take() {
            if let Err((_, err)) = conn.close() {
                tracing::warn!(error = %err, "closing the SQLite writer failed");
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A write transaction on the writer; rolled back when dropped unfinished.
pub struct DirectTx {
    guard: WriterGuard,
}

impl DirectTx {
    pub fn conn(&mut self) -> &mut Connection {
        self.guard
            .0
            .as_mut()
            .expect("a transaction holds an open connection")
    }

    /// Commits. The commit waits for the disk (`synchronous = FULL`), so the
    /// runtime is told the thread blocks. A COMMIT that fails leaves the
    /// transaction open; dropping `self` then rolls it back.
    pub fn commit(mut self) -> Result<(), StoreError> {
        Ok(blocking(|| self.conn().execute_batch("COMMIT"))?)
    }

    pub fn rollback(mut self) -> Result<(), StoreError> {
        Ok(self.conn().execute_batch("ROLLBACK")?)
    }
}

impl Drop for DirectTx {
    /// Rolls back whatever is still open: a transaction dropped unfinished,
    /// or one whose COMMIT or ROLLBACK failed (`Writer::begin` tries once
    /// more if this fails too).
    fn drop(&mut self) {
        let conn = self.conn();
        if !conn.is_autocommit() {
            if let Err(err) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %err, "rolling back an abandoned write failed");
            }
        }
    }
}

/// Read-only connections for the lookups a write plans with
/// (`Store::begin_lookups`), run on the caller's thread like the writer's
/// statements. A message's plan runs a dozen indexed lookups of a few
/// microseconds each; through sqlx's connection thread each one waited to
/// be handed over and back. Conditional criteria can be any search a
/// client sends: `WriteTx::find_each` tells the runtime the thread is busy
/// while one runs (`blocking_future`). Searches stay on sqlx's pool. Each
/// connection's page cache is at most 8 MiB.
#[derive(Clone)]
pub struct Readers(Arc<ReadersInner>);

struct ReadersInner {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

/// Idle lookup connections kept open; more are opened when needed and
/// closed when done.
const IDLE_READERS: usize = 8;

impl Readers {
    pub fn new(path: &Path) -> Readers {
        Readers(Arc::new(ReadersInner {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }))
    }

    /// A read transaction on an idle connection, or on a new one. Its
    /// snapshot is taken by its first statement.
    pub fn begin(&self) -> Result<DirectRead, StoreError> {
        if self.0.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        let idle = self.0.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        conn.execute_batch("BEGIN")?;
        Ok(DirectRead {
            conn: Some(conn),
            readers: self.clone(),
        })
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.0.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA cache_size = -8192; PRAGMA temp_store = memory;")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Closes the idle connections; those in use close when let go.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        if let Ok(mut idle) = self.0.idle.lock() {
            idle.clear();
        }
    }
}

/// A read transaction of `Readers`: ended (rolled back) when dropped, its
/// connection kept for the next.
pub struct DirectRead {
    conn: Option<Connection>,
    readers: Readers,
}

impl DirectRead {
    pub fn conn(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for DirectRead {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A connection whose transaction will not end is closed instead.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let inner = &self.readers.0;
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut idle) = inner.idle.lock() {
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// Runs `f`, which may wait for the disk, letting a multi-threaded runtime
/// move its other tasks off this thread meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Drives `fut`, whose statements run on this thread (`Conn::Direct`), with
/// the runtime told the thread blocks (`blocking`); awaited as it is
/// elsewhere (a current-thread runtime, such as the batch thread's).
pub async fn blocking_future<F: std::future::Future>(fut: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(fut))
        }
        _ => fut.await,
    }
}

/// A row read through the writer: its values by column.
pub type DirectRow = Vec<Value>;

/// Runs `q` (one statement or several separated by `;`, sharing the `$n`
/// parameters, as sqlx runs them); returns the rows of all its statements
/// and the number of rows its writing statements changed. Outside a
/// transaction each statement is a commit of its own, which waits for the
/// disk: the runtime is told the thread blocks.
///
/// Unlike sqlx, a `$n` with no value is an error (not NULL), and `?`
/// placeholders count within each statement. The statements are split at
/// `;` outside quotes and comments (`statements`), so a trigger body cannot
/// be run here (migrations run through sqlx).
pub fn run(conn: &Connection, q: &Query) -> Result<(Vec<DirectRow>, u64), StoreError> {
    if conn.is_autocommit() {
        blocking(|| run_in(conn, q))
    } else {
        run_in(conn, q)
    }
}

fn run_in(conn: &Connection, q: &Query) -> Result<(Vec<DirectRow>, u64), StoreError> {
    let mut rows = Vec::new();
    let mut changed = 0;
    for sql in statements(&q.sql) {
        let mut stmt = conn.prepare_cached(sql)?;
        for i in 1..=stmt.parameter_count() {
            let n = stmt
                .parameter_name(i)
                .and_then(|name| name.strip_prefix(['$', '?']))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(i);
            let param = q.params.get(n - 1).ok_or_else(|| {
                StoreError::Database(format!("no value for parameter {n} of `{sql}`"))
            })?;
            stmt.raw_bind_parameter(i, param)?;
        }
        let columns = stmt.column_count();
        let readonly = stmt.readonly();
        let mut result = stmt.raw_query();
        while let Some(row) = result.next()? {
            let mut values = Vec::with_capacity(columns);
            for c in 0..columns {
                values.push(Value::from(row.get_ref(c)?));
            }
            rows.push(values);
        }
        drop(result);
        if !readonly {
            changed += conn.changes();
        }
    }
    Ok((rows, changed))
}

/// Runs the one statement `sql` once per row of `rows`, binding each row's
/// values to `$1`, `$2`, ... in order; returns the rows changed.
pub fn run_each(conn: &Connection, sql: &str, rows: &[Vec<Param>]) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut changed = 0;
    for row in rows {
        for (i, param) in row.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, param)?;
        }
        changed += stmt.raw_execute()? as u64;
    }
    Ok(changed)
}

/// The statements of `sql`, split at the `;` outside quotes (`'`, `"`,
/// `` ` ``, `[...]`) and comments (`--`, `/* */`); pieces that hold only
/// whitespace and comments are left out.
fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i, mut code) = (0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            open @ (b'\'' | b'"' | b'`' | b'[') => {
                let close = if open == b'[' { b']' } else { open };
                code = true;
                i += 1;
                while i < bytes.len() && bytes[i] != close {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                if code {
                    parts.push(&sql[start..i]);
                }
                start = i + 1;
                code = false;
            }
            c if !c.is_ascii_whitespace() => code = true,
            _ => {}
        }
        i += 1;
    }
    if code {
        parts.push(&sql[start.min(sql.len())..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let sql = "INSERT INTO t VALUES ('a;b'); -- note; it's here\nSELECT \"x;y\", [p;q], `r;s` \
                   FROM t /* a; 'b */ WHERE 1;  ; -- only a comment; \n /* and; another */ ";
        assert_eq!(
            statements(sql),
            vec![
                "INSERT INTO t VALUES ('a;b')",
                " -- note; it's here\nSELECT \"x;y\", [p;q], `r;s` \
                 FROM t /* a; 'b */ WHERE 1"
            ]
        );
        assert!(statements("  ").is_empty());
        assert_eq!(statements("SELECT 1"), vec!["SELECT 1"]);
    }

    #[test]
    fn numbered_parameters_are_shared_by_the_statements_of_a_query() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .unwrap();
        let q = Query::new(
            "INSERT INTO t VALUES ($2, $1); INSERT INTO t VALUES ($2 + 1, $1 || 'x'); \
             SELECT a, b FROM t WHERE b LIKE $1 || '%' ORDER BY a",
        )
        .text("k")
        .int(7);
        let (rows, changed) = run(&conn, &q).unwrap();
        assert_eq!(changed, 2);
        assert_eq!(
            rows,
            vec![
                vec![Value::Integer(7), Value::Text("k".into())],
                vec![Value::Integer(8), Value::Text("kx".into())],
            ]
        );
        let each = vec![
            vec![Param::Int(9), Param::Text("e".into())],
            vec![Param::Int(10), Param::Null],
        ];
        assert_eq!(
            run_each(&conn, "INSERT INTO t VALUES ($1, $2)", &each).unwrap(),
            2
        );
        let (rows, _) = run(&conn, &Query::new("SELECT count(*) FROM t WHERE a >= 9")).unwrap();
        assert_eq!(rows, vec![vec![Value::Integer(2)]]);
        let missing = run(&conn, &Query::new("SELECT $1")).unwrap_err();
        assert!(matches!(missing, StoreError::Database(_)), "{missing:?}");
    }

    #[tokio::test]
    async fn an_abandoned_transaction_is_rolled_back() {
        let dir = std::env::temp_dir().join(format!("charaka-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let writer = Writer::open(&dir.join("w.db"), "full").unwrap();
        let mut tx = writer.begin().await.unwrap();
        tx.conn().execute_batch("CREATE TABLE t (a)").unwrap();
        tx.commit().unwrap();
        let mut tx = writer.begin().await.unwrap();
        tx.conn().execute_batch("INSERT INTO t VALUES (1)").unwrap();
        drop(tx);
        let mut guard = writer.acquire().await.unwrap();
        let (rows, _) = run(guard.conn().unwrap(), &Query::new("SELECT count(*) FROM t")).unwrap();
        assert_eq!(rows, vec![vec![Value::Integer(0)]]);
        drop(guard);
        writer.close().await;
        assert!(writer.acquire().await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Another process holding SQLite's write lock makes `begin` wait for
    /// it rather than fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn begin_waits_for_a_write_lock_held_elsewhere() {
        let dir = std::env::temp_dir().join(format!("charaka-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let writer = Writer::open(&path, "full").unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            other.execute_batch("COMMIT").unwrap();
        });
        let started = std::time::Instant::now();
        let tx = writer.begin().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        tx.commit().unwrap();
        holder.join().unwrap();
        writer.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
