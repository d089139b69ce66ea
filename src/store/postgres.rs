//! Opening PostgreSQL: a connection pool and the embedded migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .context("running PostgreSQL migrations")?;
    Ok(pool)
}
