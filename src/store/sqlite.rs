//! Opening SQLite: WAL mode, a busy timeout, one writer connection and a pool
//! of readers, and the embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub async fn connect(
    url: &str,
    max_readers: u32,
    synchronous: &str,
) -> anyhow::Result<(SqlitePool, SqlitePool)> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL `{url}`"))?;
    let path = options.get_filename().to_path_buf();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating database directory {}", dir.display()))?;
        }
    }
    let synchronous = match synchronous {
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

    // One writer: SQLite allows a single writer at a time, and funnelling all
    // writes through one connection avoids SQLITE_BUSY between writers.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .with_context(|| format!("opening SQLite database {}", display(&path)))?;
    sqlx::migrate!("migrations/sqlite")
        .run(&writer)
        .await
        .context("running SQLite migrations")?;

    let reader = SqlitePoolOptions::new()
        .max_connections(max_readers)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await
        .with_context(|| format!("opening SQLite database {} for reading", display(&path)))?;
    Ok((reader, writer))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
