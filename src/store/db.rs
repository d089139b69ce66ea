//! A thin layer over sqlx that lets the storage code be written once for both
//! databases: SQL text with `$n` placeholders (which SQLite accepts too), typed
//! parameters, and rows read by column index. Dialect differences are small
//! and live in `Dialect`.

use std::borrow::Cow;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{PgConnection, Postgres, Row as _, Sqlite, SqliteConnection};

use super::direct::{self, DirectRead, DirectRow, DirectTx, WriterGuard};
use super::StoreError;

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// SQL NULL (of a text column).
    Null,
}

/// SQL text plus its parameters, built with `$n` placeholders.
#[derive(Debug, Default)]
pub struct Query {
    pub sql: Cow<'static, str>,
    pub params: Vec<Param>,
}

impl Query {
    pub fn new(sql: &'static str) -> Self {
        Query {
            sql: Cow::Borrowed(sql),
            params: Vec::new(),
        }
    }

    pub fn dynamic(sql: String) -> Self {
        Query {
            sql: Cow::Owned(sql),
            params: Vec::new(),
        }
    }

    pub fn int(mut self, v: i64) -> Self {
        self.params.push(Param::Int(v));
        self
    }

    pub fn text(mut self, v: impl Into<String>) -> Self {
        self.params.push(Param::Text(v.into()));
        self
    }

    pub fn bytes(mut self, v: Vec<u8>) -> Self {
        self.params.push(Param::Bytes(v));
        self
    }

    pub fn null(mut self) -> Self {
        self.params.push(Param::Null);
        self
    }
}

/// Builds dynamic SQL; `bind` adds a parameter and returns its placeholder,
/// so values never enter the SQL text.
#[derive(Debug, Default)]
pub struct SqlBuilder {
    pub sql: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    /// How many values are bound so far.
    pub fn bound(&self) -> usize {
        self.params.len()
    }

    pub fn new(start: &str) -> Self {
        SqlBuilder {
            sql: start.to_string(),
            params: Vec::new(),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Adds a parameter and returns its placeholder (`$1`, `$2`, ...).
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// How many parameters are bound so far.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    pub fn build(self) -> Query {
        Query {
            sql: Cow::Owned(self.sql),
            params: self.params,
        }
    }
}

/// A result row of either database.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
    /// Read through SQLite's writer (`direct`).
    Direct(DirectRow),
}

impl Row {
    /// Column `i` of a `Direct` row. Its accessors read a NULL as sqlx's
    /// SQLite driver does (0, the empty string); `is_null` tells it apart.
    fn value(row: &DirectRow, i: usize) -> Result<&rusqlite::types::Value, StoreError> {
        row.get(i)
            .ok_or_else(|| StoreError::Database(format!("no column {i} in the row")))
    }

    fn mismatch(i: usize, want: &str, got: &rusqlite::types::Value) -> StoreError {
        StoreError::Database(format!(
            "column {i}: expected {want}, found {:?}",
            got.data_type()
        ))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        use rusqlite::types::Value;
        match self {
            Row::Sqlite(r) => r.try_get::<i64, _>(i),
            Row::Postgres(r) => r.try_get::<i64, _>(i),
            Row::Direct(r) => {
                return match Row::value(r, i)? {
                    Value::Integer(v) => Ok(*v),
                    Value::Null => Ok(0),
                    other => Err(Row::mismatch(i, "an integer", other)),
                }
            }
        }
        .map_err(StoreError::from)
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        use rusqlite::types::Value;
        match self {
            Row::Sqlite(r) => r.try_get::<String, _>(i),
            Row::Postgres(r) => r.try_get::<String, _>(i),
            Row::Direct(r) => {
                return match Row::value(r, i)? {
                    Value::Text(v) => Ok(v.clone()),
                    Value::Null => Ok(String::new()),
                    Value::Blob(v) => String::from_utf8(v.clone())
                        .map_err(|e| StoreError::Database(format!("column {i}: {e}"))),
                    other => Err(Row::mismatch(i, "text", other)),
                }
            }
        }
        .map_err(StoreError::from)
    }

    pub fn float(&self, i: usize) -> Result<f64, StoreError> {
        use rusqlite::types::Value;
        match self {
            Row::Sqlite(r) => r.try_get::<f64, _>(i),
            Row::Postgres(r) => r.try_get::<f64, _>(i),
            Row::Direct(r) => {
                return match Row::value(r, i)? {
                    Value::Real(v) => Ok(*v),
                    Value::Integer(v) => Ok(*v as f64),
                    Value::Null => Ok(0.0),
                    other => Err(Row::mismatch(i, "a number", other)),
                }
            }
        }
        .map_err(StoreError::from)
    }

    pub fn is_null(&self, i: usize) -> Result<bool, StoreError> {
        use sqlx::ValueRef as _;
        Ok(match self {
            Row::Sqlite(r) => r.try_get_raw(i)?.is_null(),
            Row::Postgres(r) => r.try_get_raw(i)?.is_null(),
            Row::Direct(r) => matches!(Row::value(r, i)?, rusqlite::types::Value::Null),
        })
    }

    pub fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::types::Value;
        match self {
            Row::Sqlite(r) => r.try_get::<Option<Vec<u8>>, _>(i),
            Row::Postgres(r) => r.try_get::<Option<Vec<u8>>, _>(i),
            Row::Direct(r) => {
                return match Row::value(r, i)? {
                    Value::Null => Ok(None),
                    Value::Blob(v) => Ok(Some(v.clone())),
                    Value::Text(v) => Ok(Some(v.clone().into_bytes())),
                    other => Err(Row::mismatch(i, "bytes", other)),
                }
            }
        }
        .map_err(StoreError::from)
    }
}

/// A borrowed connection (plain or inside a transaction) of either database.
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
    /// SQLite's writer (`direct`): statements run on the calling thread.
    Direct(&'a mut rusqlite::Connection),
}

fn sqlite_query<'q>(q: &'q Query) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut query = sqlx::query(&q.sql);
    for p in &q.params {
        query = match p {
            Param::Int(v) => query.bind(*v),
            Param::Float(v) => query.bind(*v),
            Param::Text(v) => query.bind(v.as_str()),
            Param::Bytes(v) => query.bind(v.as_slice()),
            Param::Null => query.bind(None::<String>),
        };
    }
    query
}

fn pg_query(q: &Query) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut query = sqlx::query(&q.sql);
    for p in &q.params {
        query = match p {
            Param::Int(v) => query.bind(*v),
            Param::Float(v) => query.bind(*v),
            Param::Text(v) => query.bind(v.as_str()),
            Param::Bytes(v) => query.bind(v.as_slice()),
            Param::Null => query.bind(None::<String>),
        };
    }
    query
}

impl Conn<'_> {
    /// True on SQLite (either way of reaching it).
    pub fn is_sqlite(&self) -> bool {
        !matches!(self, Conn::Postgres(_))
    }

    pub async fn fetch_optional(&mut self, q: &Query) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Conn::Direct(c) => direct::run(c, q)?.0.into_iter().next().map(Row::Direct),
            Conn::Sqlite(c) => sqlite_query(q)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Sqlite),
            Conn::Postgres(c) => pg_query(q)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Postgres),
        })
    }

    pub async fn fetch_all(&mut self, q: &Query) -> Result<Vec<Row>, StoreError> {
        Ok(match self {
            Conn::Direct(c) => direct::run(c, q)?.0.into_iter().map(Row::Direct).collect(),
            Conn::Sqlite(c) => sqlite_query(q)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Postgres(c) => pg_query(q)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    /// Runs one statement once per row of parameters (prepared once on
    /// SQLite's writer); returns the number of rows changed.
    pub async fn execute_each(
        &mut self,
        sql: &str,
        rows: &[Vec<Param>],
    ) -> Result<u64, StoreError> {
        if let Conn::Direct(c) = self {
            return direct::run_each(c, sql, rows);
        }
        let mut changed = 0;
        for row in rows {
            let q = Query {
                sql: Cow::Owned(sql.to_string()),
                params: row.clone(),
            };
            changed += self.execute(&q).await?;
        }
        Ok(changed)
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, q: &Query) -> Result<u64, StoreError> {
        Ok(match self {
            Conn::Direct(c) => direct::run(c, q)?.1,
            Conn::Sqlite(c) => sqlite_query(q).execute(&mut **c).await?.rows_affected(),
            Conn::Postgres(c) => pg_query(q).execute(&mut **c).await?.rows_affected(),
        })
    }
}

/// A pooled connection used for reads.
pub enum PooledConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    /// SQLite's writer, held.
    Direct(WriterGuard),
}

impl PooledConn {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Sqlite(c) => Conn::Sqlite(&mut *c),
            PooledConn::Postgres(c) => Conn::Postgres(&mut *c),
            PooledConn::Direct(g) => Conn::Direct(g.conn().expect("held open by acquire")),
        }
    }
}

/// An open database transaction.
pub enum Tx {
    /// A lookups-only transaction on SQLite (`direct::Readers`).
    Lookups(DirectRead),
    Postgres(sqlx::Transaction<'static, Postgres>),
    /// On SQLite's writer (`direct`).
    Direct(DirectTx),
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Lookups(t) => Conn::Direct(t.conn()),
            Tx::Postgres(t) => Conn::Postgres(&mut *t),
            Tx::Direct(t) => Conn::Direct(t.conn()),
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Lookups(t) => drop(t),
            Tx::Postgres(t) => t.commit().await?,
            Tx::Direct(t) => t.commit()?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Lookups(t) => drop(t),
            Tx::Postgres(t) => t.rollback().await?,
            Tx::Direct(t) => t.rollback()?,
        }
        Ok(())
    }
}
