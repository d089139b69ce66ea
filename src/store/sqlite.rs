//! Opening SQLite: WAL mode, a busy timeout, one writer connection, a pool
//! of readers, a connection that checkpoints the log beside the writer, and
//! the embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::db::Query;
use super::direct::{self, Writer};
use super::StoreError;

pub async fn connect(
    url: &str,
    max_readers: u32,
    synchronous_setting: &str,
) -> anyhow::Result<(SqlitePool, Writer, direct::Readers)> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL `{url}`"))?;
    if url.contains(":memory:") || url.contains("mode=memory") {
        anyhow::bail!(
            "an in-memory SQLite database (`{url}`) is not supported: \
             give a file, such as sqlite://data/charaka.db"
        );
    }
    let path = options.get_filename().to_path_buf();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating database directory {}", dir.display()))?;
        }
    }
    let synchronous = match synchronous_setting {
        "normal" => SqliteSynchronous::Normal,
        _ => SqliteSynchronous::Full,
    };
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory")
        .statement_cache_capacity(256);

    // Migrations and the check of the library's build on a connection of
    // their own, closed before the writer opens.
    let setup = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .with_context(|| format!("opening SQLite database {}", display(&path)))?;
    sqlx::migrate!("migrations/sqlite")
        .run(&setup)
        .await
        .context("running SQLite migrations")?;
    match shared_page_cache(&setup).await {
        Ok(Some(option)) => tracing::warn!(
            option,
            "SQLite was compiled without the flags in .cargo/config.toml: \
             its connections share one page cache behind one lock, and \
             concurrent searches are slower"
        ),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "SQLite's compile options unread"),
    }
    setup.close().await;

    // One writer: SQLite allows a single writer at a time, and funnelling all
    // writes through one connection avoids SQLITE_BUSY between writers.
    // It never checkpoints: a checkpoint inside a commit would stall every
    // writer waiting behind it (about a quarter of the writer's time under
    // load, profiled); `checkpointer` does it beside the writer instead.
    let writer = Writer::open(&path, synchronous_setting)
        .with_context(|| format!("opening SQLite database {}", display(&path)))?;

    let reader = SqlitePoolOptions::new()
        .max_connections(max_readers)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone().read_only(true))
        .await
        .with_context(|| format!("opening SQLite database {} for reading", display(&path)))?;
    let checkpoints = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("opening SQLite database {}", display(&path)))?;
    tokio::spawn(checkpointer(checkpoints, writer.clone()));
    Ok((reader, writer, direct::Readers::new(&path)))
}

/// The compile option that makes SQLite's connections share one page cache
/// behind one process-wide lock, if the library has it (see
/// `.cargo/config.toml`).
async fn shared_page_cache(pool: &SqlitePool) -> anyhow::Result<Option<String>> {
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(pool)
        .await
        .context("reading SQLite's compile options")?;
    Ok(options
        .into_iter()
        .find(|o| o == "ENABLE_MEMORY_MANAGEMENT"))
}

/// How often the write-ahead log is copied back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the write-ahead log into the database file on its own connection,
/// concurrently with the writer (PASSIVE: it never waits for readers or the
/// writer, and copies what it can), until the writer's pool closes; then
/// once more in full, leaving an empty log.
async fn checkpointer(pool: SqlitePool, writer: Writer) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        if writer.is_closed() {
            break;
        }
        if ticks % OPTIMIZE_EVERY_TICKS == 0 {
            optimize(&writer).await;
        }
        ticks += 1;
        match checkpoint(&pool, "PRAGMA wal_checkpoint(PASSIVE)").await {
            // Readers that come and go without pause (a bulk import's
            // lookups, searches under load) each hold a snapshot, so the
            // log, though copied back, is never started again from its
            // beginning and grows without end (10 GB within minutes of an
            // import). Past a bound, RESTART waits for the readers of the
            // old log to finish so that the next write starts the log
            // over. It runs on the writer's own connection, between two
            // write transactions: run anywhere else it would hold the write
            // lock, and a write transaction that had begun by reading
            // could not take it (SQLite answers busy at once there).
            Ok(frames) if frames > RESTART_AFTER_FRAMES => {
                if let Err(err) = on_writer(&writer, "PRAGMA wal_checkpoint(RESTART)").await {
                    tracing::warn!(error = %err, "SQLite checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "SQLite checkpoint failed"),
        }
    }
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await;
    pool.close().await;
}

/// Frames in the write-ahead log (4 KiB pages) past which the checkpointer
/// makes the next writer start the log over: 256 MiB.
const RESTART_AFTER_FRAMES: i64 = 65_536;

/// The planner's statistics are checked at start and then every 10
/// minutes (in checkpointer ticks).
const OPTIMIZE_EVERY_TICKS: u64 = 1_200;

/// Refreshes the statistics of the tables that have none or whose size
/// changed tenfold since (`PRAGMA optimize`, every table considered: mask
/// 0x10002), from a sample of each index. On the writer's connection, between
/// two write transactions, since it writes `sqlite_stat1`. SQLite's planner
/// without statistics takes any index on the type for the best one: at
/// 1,000,000 resources a `_revinclude` scanned every Observation (537 ms;
/// 7 ms with statistics).
async fn optimize(writer: &Writer) {
    if let Err(err) = on_writer(writer, "PRAGMA optimize=0x10002").await {
        tracing::warn!(error = %err, "SQLite statistics refresh failed");
    }
}

/// `ANALYZE` of every table from a sample of each index (a few
/// milliseconds at 1,000,000 resources), after a bulk load.
pub async fn analyze(writer: &Writer) -> Result<(), StoreError> {
    on_writer(writer, "PRAGMA analysis_limit=1000; ANALYZE").await?;
    Ok(())
}

/// Runs `sql` on the writer, between two write transactions; its rows.
async fn on_writer(
    writer: &Writer,
    sql: &'static str,
) -> Result<Vec<direct::DirectRow>, StoreError> {
    let mut guard = writer.acquire().await?;
    Ok(direct::run(guard.conn()?, &Query::new(sql))?.0)
}

/// Runs a checkpoint; returns how many frames the log holds.
async fn checkpoint(pool: &SqlitePool, sql: &'static str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(sql).fetch_one(pool).await?;
    row.try_get::<i64, _>(1)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    /// The library is built with `.cargo/config.toml`'s flags: a page cache
    /// per connection, no allocation statistics.
    #[tokio::test]
    async fn sqlite_is_compiled_for_concurrent_readers() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        assert_eq!(super::shared_page_cache(&pool).await.unwrap(), None);
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }
}
