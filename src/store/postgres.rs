//! Opening PostgreSQL: a connection pool and the embedded migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // No JIT compilation: search statements are large, and
                // their cost estimates pass `jit_above_cost` though they
                // run in milliseconds (a page of a two-level chain at
                // 1,000,000 resources: 81 ms with JIT, 55 of them
                // compiling; 7 ms without). A server without JIT refuses
                // the setting, which then changes nothing.
                if let Err(e) = conn.execute("SET jit = off").await {
                    tracing::debug!(error = %e, "PostgreSQL: jit not set");
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .context("running PostgreSQL migrations")?;
    Ok(pool)
}
