//! Persistence: resource versions, their index rows and history, on SQLite or
//! PostgreSQL. Knows nothing of HTTP; the FHIR rules (preconditions, meta,
//! conditional logic) live in `service`, which drives a `WriteTx`.
//!
//! Invariants:
//! - every version of every resource is kept in `resource_versions`;
//!   `resources` points at the current one;
//! - a version, the `resources` row and the index rows of one write commit
//!   together or not at all (one database transaction);
//! - on SQLite there is exactly one writer connection, so writes are serial;
//!   on PostgreSQL the `resources` row is locked (`FOR UPDATE`) before a new
//!   version is written, so version numbers never repeat or skip.

pub mod audit;
pub mod auth;
mod blind;
mod cache;
pub mod codec;
mod commits;
pub mod contained;
pub mod db;
mod direct;
mod encryption;
pub mod everything;
mod history;
pub mod index;
pub mod keyring;
pub mod messages;
mod postgres;
pub mod query;
pub mod reencrypt;
mod resources;
mod sqlite;
mod terminology;

use std::sync::Arc;

use bytes::Bytes;

use blind::BlindIndex;
use cache::VersionCache;
use codec::Codec;

pub use db::Dialect;
use db::{PooledConn, Tx};
pub use encryption::default_key_file;
pub use history::{HistoryEntry, HistoryQuery, HistoryScope};
pub use index::IndexRows;
pub use query::{Filter, Hit, Included, SearchQuery};
pub use resources::{CurrentMeta, LiveResource, NewVersion};

use crate::config::Config;

/// The tenant (hospital) every request belongs to until multi-tenancy lands.
pub const DEFAULT_TENANT: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database busy")]
    Busy,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLITE_BUSY (5), SQLITE_LOCKED (6); PostgreSQL serialization
                // failure and deadlock.
                if matches!(code.as_ref(), "5" | "6" | "517" | "40001" | "40P01") {
                    StoreError::Busy
                } else {
                    StoreError::Database(err.to_string())
                }
            }
            _ => StoreError::Database(err.to_string()),
        }
    }
}

/// A version as read back: its number, time, and body (None when deleted).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub version: i64,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub deleted: bool,
    pub body: Option<Bytes>,
}

enum Backend {
    Sqlite {
        reader: sqlx::SqlitePool,
        writer: direct::Writer,
        lookups: direct::Readers,
    },
    Postgres {
        pool: sqlx::PgPool,
    },
}

/// The database, opened and migrated.
pub struct Store {
    backend: Backend,
    cache: Option<Arc<VersionCache>>,
    /// Seals and opens stored bodies (encryption at rest).
    codec: Codec,
    /// Keyed hashes of configured identifier systems in the token index.
    blind: Option<Arc<BlindIndex>>,
    /// This process's write commits (`commits`).
    commits: commits::Commits,
}

/// Current versions cached by default on SQLite, where this process is the
/// only writer.
const DEFAULT_SQLITE_CACHE: usize = 100_000;

impl Store {
    /// Opens the database named by `config.database_url` and runs pending
    /// migrations.
    pub async fn connect(config: &Config) -> Result<Store, anyhow::Error> {
        let url = config.database_url.as_str();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = postgres::connect(url, config.db_max_connections).await?;
            Backend::Postgres { pool }
        } else if url.starts_with("sqlite:") {
            let (reader, writer, lookups) =
                sqlite::connect(url, config.db_max_connections, &config.sqlite_synchronous).await?;
            Backend::Sqlite {
                reader,
                writer,
                lookups,
            }
        } else {
            anyhow::bail!("unsupported database URL `{url}`: use sqlite://PATH or postgres://...");
        };
        let entries = config.read_cache_entries.unwrap_or(match backend {
            Backend::Sqlite { .. } => DEFAULT_SQLITE_CACHE,
            Backend::Postgres { .. } => 0,
        });
        let mut store = Store {
            backend,
            cache: VersionCache::new(entries).map(Arc::new),
            codec: Codec::plain(),
            blind: None,
            commits: commits::Commits::default(),
        };
        store.codec = encryption::open(&store, config).await?;
        if !config.blind_index_systems.is_empty() {
            let ring = store.codec.ring().ok_or_else(|| {
                anyhow::anyhow!(
                    "blind_index_systems needs the index_key of a data key file \
                     (data_keys_file or CHARAKA_DATA_KEYS)"
                )
            })?;
            store.blind = BlindIndex::new(ring, &config.blind_index_systems).map(Arc::new);
        }
        Ok(store)
    }

    /// A reading of this process's write commits to take before lookups
    /// whose results a write transaction may reuse (`WriteTx::unchanged_since`);
    /// None while a commit is under way.
    pub fn commits_reading(&self) -> Option<u64> {
        self.commits.reading()
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite {
                reader,
                writer,
                lookups,
            } => {
                lookups.close();
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }

    async fn read_conn(&self) -> Result<PooledConn, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite { reader, .. } => PooledConn::Sqlite(reader.acquire().await?),
            Backend::Postgres { pool } => PooledConn::Postgres(pool.acquire().await?),
        })
    }

    /// Checks that the database answers (for `/health/ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.read_conn().await?;
        conn.conn().execute(&db::Query::new("SELECT 1")).await?;
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load. PostgreSQL:
    /// `ANALYZE`; until autovacuum gets to it, plans over a freshly loaded
    /// index misjudge it by orders of magnitude. SQLite: `ANALYZE` from a
    /// sample of each index (`sqlite::analyze`); without statistics its
    /// planner scanned every Observation for a `_revinclude` at 1,000,000
    /// resources.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres { pool } => {
                sqlx::query("ANALYZE").execute(pool).await?;
            }
            Backend::Sqlite { writer, .. } => sqlite::analyze(writer).await?,
        }
        Ok(())
    }

    /// The current version number of a resource as the read cache knows
    /// it, a deletion's included (None: not cached, or no cache).
    pub fn cached_version(&self, tenant: i64, rtype: &str, id: &str) -> Option<i64> {
        Some(self.cache.as_ref()?.get(tenant, rtype, id)?.version)
    }

    /// The current version of a resource, if it was ever written.
    pub async fn read(
        &self,
        tenant: i64,
        rtype: &str,
        id: &str,
    ) -> Result<Option<StoredVersion>, StoreError> {
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(tenant, rtype, id)) {
            return Ok(Some(hit));
        }
        let mut conn = self.read_conn().await?;
        let found =
            resources::read_current(&mut conn.conn(), &self.codec, tenant, rtype, id).await?;
        if let (Some(cache), Some(v)) = (&self.cache, &found) {
            cache.publish(tenant, rtype, id, v.clone());
        }
        Ok(found)
    }

    /// One given version of a resource.
    pub async fn vread(
        &self,
        tenant: i64,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let mut conn = self.read_conn().await?;
        resources::read_version(&mut conn.conn(), &self.codec, tenant, rtype, id, version).await
    }

    /// A page of history, newest first.
    pub async fn history(
        &self,
        tenant: i64,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut conn = self.read_conn().await?;
        history::fetch(&mut conn.conn(), &self.codec, tenant, query).await
    }

    /// One page of a search.
    pub async fn search(&self, tenant: i64, q: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
        let blinded = self.blind.as_ref().map(|b| b.query(q));
        let q = blinded.as_ref().unwrap_or(q);
        let mut conn = self.read_conn().await?;
        query::search(&mut conn.conn(), &self.codec, tenant, q).await
    }

    /// One page of `Patient/$everything`.
    pub async fn everything(
        &self,
        tenant: i64,
        q: &everything::EverythingQuery,
    ) -> Result<Vec<Hit>, StoreError> {
        let blinded = self.blind.as_ref().map(|b| everything::EverythingQuery {
            filters: b.filters(&q.filters),
            ..q.clone()
        });
        let q = blinded.as_ref().unwrap_or(q);
        let mut conn = self.read_conn().await?;
        everything::everything(&mut conn.conn(), &self.codec, tenant, q).await
    }

    /// A contained search with its token conditions blinded as stored.
    fn blind_contained(&self, q: &contained::ContainedQuery) -> Option<contained::ContainedQuery> {
        self.blind.as_ref().map(|b| b.contained_query(q))
    }

    /// How many resources a search matches.
    pub async fn count(&self, tenant: i64, q: &SearchQuery) -> Result<i64, StoreError> {
        let blinded = self.blind.as_ref().map(|b| b.query(q));
        let q = blinded.as_ref().unwrap_or(q);
        let mut conn = self.read_conn().await?;
        query::count(&mut conn.conn(), tenant, q).await
    }

    /// Resources referred to by `rids` through `pids` (`_include`).
    pub async fn include(
        &self,
        tenant: i64,
        rids: &[i64],
        pids: &[i64],
        types: &[String],
        limit: i64,
    ) -> Result<Vec<Included>, StoreError> {
        let mut conn = self.read_conn().await?;
        query::include(
            &mut conn.conn(),
            &self.codec,
            tenant,
            rids,
            pids,
            types,
            limit,
        )
        .await
    }

    /// Resources referring to `targets` through `pids` (`_revinclude`).
    pub async fn revinclude(
        &self,
        tenant: i64,
        targets: &[(String, String)],
        source_type: Option<&str>,
        pids: &[i64],
        limit: i64,
    ) -> Result<Vec<Included>, StoreError> {
        let mut conn = self.read_conn().await?;
        query::revinclude(
            &mut conn.conn(),
            &self.codec,
            tenant,
            targets,
            source_type,
            pids,
            limit,
        )
        .await
    }

    /// The fingerprint of the search parameters the index was built with.
    pub async fn index_fingerprint(&self, tenant: i64) -> Result<Option<String>, StoreError> {
        let mut conn = self.read_conn().await?;
        let q = db::Query::new("SELECT fingerprint FROM search_index_state WHERE tenant = $1")
            .int(tenant);
        let stored = conn
            .conn()
            .fetch_optional(&q)
            .await?
            .map(|r| r.text(0))
            .transpose()?;
        // The blinded systems are part of what the index reflects: an index
        // built with other ones reads as another fingerprint.
        let suffix = self.blind_suffix();
        Ok(stored.map(|s| match s.strip_suffix(suffix) {
            Some(base) if !suffix.is_empty() => base.to_string(),
            _ if !suffix.is_empty() => format!("{s}+unblinded"),
            _ => s,
        }))
    }

    fn blind_suffix(&self) -> &str {
        self.blind
            .as_ref()
            .map_or("", |b| b.fingerprint_suffix.as_str())
    }

    /// Records the fingerprint of the search parameters the index now
    /// reflects.
    pub async fn set_index_fingerprint(
        &self,
        tenant: i64,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let q = db::Query::new(
            "INSERT INTO search_index_state (tenant, fingerprint) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET fingerprint = excluded.fingerprint",
        )
        .int(tenant)
        .text(format!("{fingerprint}{}", self.blind_suffix()));
        tx.tx.conn().execute(&q).await?;
        tx.commit().await
    }

    /// How many live resources the tenant has, of `types` when given
    /// (reindex progress).
    pub async fn live_count(
        &self,
        tenant: i64,
        types: Option<&[String]>,
    ) -> Result<i64, StoreError> {
        let mut conn = self.read_conn().await?;
        let mut sql =
            String::from("SELECT COUNT(*) FROM resources r WHERE r.tenant = $1 AND r.deleted = 0");
        if let Some(types) = types {
            sql.push_str(&resources::type_list(types.len(), 2));
        }
        let mut q = db::Query::dynamic(sql).int(tenant);
        for t in types.unwrap_or_default() {
            q = q.text(t.clone());
        }
        conn.conn()
            .fetch_optional(&q)
            .await?
            .map_or(Ok(0), |r| r.int(0))
    }

    async fn write_conn(&self) -> Result<PooledConn, StoreError> {
        Ok(match &self.backend {
            Backend::Sqlite { writer, .. } => PooledConn::Direct(writer.acquire().await?),
            Backend::Postgres { pool } => PooledConn::Postgres(pool.acquire().await?),
        })
    }

    /// Runs one statement on its own (small tables such as the
    /// authorization server's); returns the rows changed.
    pub(crate) async fn write(&self, q: &db::Query) -> Result<u64, StoreError> {
        self.write_conn().await?.conn().execute(q).await
    }

    /// A read through the writer connection, which sees every committed write.
    pub(crate) async fn write_fetch_opt(
        &self,
        q: &db::Query,
    ) -> Result<Option<db::Row>, StoreError> {
        self.write_conn().await?.conn().fetch_optional(q).await
    }

    /// Rows read through the writer connection.
    pub(crate) async fn write_fetch_all(&self, q: &db::Query) -> Result<Vec<db::Row>, StoreError> {
        self.write_conn().await?.conn().fetch_all(q).await
    }

    pub(crate) async fn fetch_rows(&self, q: &db::Query) -> Result<Vec<db::Row>, StoreError> {
        self.read_conn().await?.conn().fetch_all(q).await
    }

    pub(crate) async fn fetch_opt_row(&self, q: &db::Query) -> Result<Option<db::Row>, StoreError> {
        self.read_conn().await?.conn().fetch_optional(q).await
    }

    pub(crate) async fn fetch_one_row(&self, q: &db::Query) -> Result<db::Row, StoreError> {
        self.fetch_opt_row(q)
            .await?
            .ok_or_else(|| StoreError::Database("query returned no row".into()))
    }

    /// Received HL7 v2 messages, newest first (optionally of one status).
    pub async fn list_messages(
        &self,
        tenant: i64,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<messages::StoredMessage>, StoreError> {
        let mut conn = self.read_conn().await?;
        messages::list(&mut conn.conn(), &self.codec, tenant, status, limit).await
    }

    /// One received HL7 v2 message with its raw bytes.
    pub async fn get_message(
        &self,
        tenant: i64,
        id: i64,
    ) -> Result<Option<messages::StoredMessage>, StoreError> {
        let mut conn = self.read_conn().await?;
        messages::get(&mut conn.conn(), &self.codec, tenant, id).await
    }

    /// Starts a write transaction. On SQLite this waits for the single writer
    /// connection.
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        let tx = match &self.backend {
            Backend::Sqlite { writer, .. } => Tx::Direct(writer.begin().await?),
            Backend::Postgres { pool } => Tx::Postgres(pool.begin().await?),
        };
        Ok(self.write_tx(tx, false))
    }

    /// A transaction for lookups only, on a reader connection (SQLite) or
    /// a pool connection (PostgreSQL): work planned before the write
    /// transaction opens (`service::transaction`) runs the same queries a
    /// `WriteTx` would, without holding SQLite's one writer. It writes
    /// nothing; roll it back when done.
    pub async fn begin_lookups(&self) -> Result<WriteTx, StoreError> {
        let tx = match &self.backend {
            Backend::Sqlite { lookups, .. } => Tx::Lookups(lookups.begin()?),
            Backend::Postgres { pool } => Tx::Postgres(pool.begin().await?),
        };
        Ok(self.write_tx(tx, true))
    }

    fn write_tx(&self, tx: Tx, lookups_only: bool) -> WriteTx {
        WriteTx {
            tx,
            dialect: self.dialect(),
            cache: self.cache.clone(),
            codec: self.codec.clone(),
            blind: self.blind.clone(),
            written: Vec::new(),
            touched: Vec::new(),
            erased: Vec::new(),
            lookups_only,
            commits: self.commits.clone(),
        }
    }

    /// Up to `limit` audit chain links after `after_seq`.
    pub async fn audit_chain(
        &self,
        tenant: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<audit::ChainRow>, StoreError> {
        let mut conn = self.read_conn().await?;
        audit::page(&mut conn.conn(), tenant, after_seq, limit).await
    }

    /// The audit chain's head (sequence number and hash).
    pub async fn audit_head(&self, tenant: i64) -> Result<(i64, Vec<u8>), StoreError> {
        let mut conn = self.read_conn().await?;
        audit::head(&mut conn.conn(), tenant).await
    }

    /// Stored AuditEvents that are not in the chain.
    pub async fn unchained_audit_events(
        &self,
        tenant: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.read_conn().await?;
        audit::unchained_events(&mut conn.conn(), tenant, limit).await
    }

    /// Records a signed checkpoint of the audit chain.
    pub async fn insert_audit_checkpoint(
        &self,
        tenant: i64,
        checkpoint: &audit::Checkpoint,
    ) -> Result<(), StoreError> {
        let mut conn = self.write_conn().await?;
        audit::insert_checkpoint(&mut conn.conn(), tenant, checkpoint).await
    }

    /// The audit chain's checkpoints, oldest first.
    pub async fn audit_checkpoints(
        &self,
        tenant: i64,
    ) -> Result<Vec<audit::Checkpoint>, StoreError> {
        let mut conn = self.read_conn().await?;
        audit::checkpoints(&mut conn.conn(), tenant).await
    }
}

/// Where the reads of a search go: the pool, or an open write transaction
/// (whose own uncommitted writes they then see).
pub enum Reader<'a> {
    Pool(&'a Store),
    Tx(&'a mut WriteTx),
}

impl Reader<'_> {
    /// One page of a `_containedType=contained` search.
    pub async fn search_contained(
        &mut self,
        tenant: i64,
        q: &contained::ContainedQuery,
    ) -> Result<Vec<contained::ContainedHit>, StoreError> {
        match self {
            Reader::Pool(store) => {
                let blinded = store.blind_contained(q);
                let q = blinded.as_ref().unwrap_or(q);
                let mut conn = store.read_conn().await?;
                contained::search(&mut conn.conn(), &store.codec, tenant, q).await
            }
            Reader::Tx(tx) => {
                let blinded = tx.blind.as_ref().map(|b| b.contained_query(q));
                let q = blinded.as_ref().unwrap_or(q);
                contained::search(&mut tx.tx.conn(), &tx.codec, tenant, q).await
            }
        }
    }

    /// How many matches a `_containedType=contained` search has.
    pub async fn count_contained(
        &mut self,
        tenant: i64,
        q: &contained::ContainedQuery,
    ) -> Result<i64, StoreError> {
        match self {
            Reader::Pool(store) => {
                let blinded = store.blind_contained(q);
                let q = blinded.as_ref().unwrap_or(q);
                let mut conn = store.read_conn().await?;
                contained::count(&mut conn.conn(), tenant, q).await
            }
            Reader::Tx(tx) => {
                let blinded = tx.blind.as_ref().map(|b| b.contained_query(q));
                let q = blinded.as_ref().unwrap_or(q);
                contained::count(&mut tx.tx.conn(), tenant, q).await
            }
        }
    }

    pub async fn search(&mut self, tenant: i64, q: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
        match self {
            Reader::Pool(store) => store.search(tenant, q).await,
            Reader::Tx(tx) => tx.search(tenant, q).await,
        }
    }

    pub async fn count(&mut self, tenant: i64, q: &SearchQuery) -> Result<i64, StoreError> {
        match self {
            Reader::Pool(store) => store.count(tenant, q).await,
            Reader::Tx(tx) => tx.count(tenant, q).await,
        }
    }

    /// `_include`: see `Store::include`.
    pub async fn include(
        &mut self,
        tenant: i64,
        rids: &[i64],
        pids: &[i64],
        types: &[String],
        limit: i64,
    ) -> Result<Vec<Included>, StoreError> {
        match self {
            Reader::Pool(store) => store.include(tenant, rids, pids, types, limit).await,
            Reader::Tx(tx) => {
                query::include(
                    &mut tx.tx.conn(),
                    &tx.codec,
                    tenant,
                    rids,
                    pids,
                    types,
                    limit,
                )
                .await
            }
        }
    }

    /// `_revinclude`: see `Store::revinclude`.
    pub async fn revinclude(
        &mut self,
        tenant: i64,
        targets: &[(String, String)],
        source_type: Option<&str>,
        pids: &[i64],
        limit: i64,
    ) -> Result<Vec<Included>, StoreError> {
        match self {
            Reader::Pool(store) => {
                store
                    .revinclude(tenant, targets, source_type, pids, limit)
                    .await
            }
            Reader::Tx(tx) => {
                query::revinclude(
                    &mut tx.tx.conn(),
                    &tx.codec,
                    tenant,
                    targets,
                    source_type,
                    pids,
                    limit,
                )
                .await
            }
        }
    }
}

/// A write transaction: everything done through it commits together.
/// A point inside a write transaction (`WriteTx::savepoint`).
#[must_use]
pub struct Savepoint {
    written: usize,
    touched: usize,
    erased: usize,
}

pub struct WriteTx {
    tx: Tx,
    dialect: Dialect,
    cache: Option<Arc<VersionCache>>,
    codec: Codec,
    blind: Option<Arc<BlindIndex>>,
    /// Versions to publish to the cache once the transaction commits.
    written: Vec<(i64, String, String, StoredVersion)>,
    /// What this transaction wrote, for its audit record.
    pub touched: Vec<audit::Touched>,
    /// Resources erased, to forget in the cache once committed.
    erased: Vec<(i64, String, String)>,
    /// Opened by `Store::begin_lookups`: takes no locks.
    lookups_only: bool,
    commits: commits::Commits,
}

impl WriteTx {
    /// Marks a point this transaction can go back to (`rollback_to`) or
    /// keep (`release`); one at a time.
    pub async fn savepoint(&mut self) -> Result<Savepoint, StoreError> {
        self.tx
            .conn()
            .execute(&db::Query::new("SAVEPOINT charaka_item"))
            .await?;
        Ok(Savepoint {
            written: self.written.len(),
            touched: self.touched.len(),
            erased: self.erased.len(),
        })
    }

    /// Keeps what was done since the savepoint.
    pub async fn release(&mut self, _point: Savepoint) -> Result<(), StoreError> {
        self.tx
            .conn()
            .execute(&db::Query::new("RELEASE SAVEPOINT charaka_item"))
            .await?;
        Ok(())
    }

    /// Undoes everything since the savepoint, in the database and in what
    /// the transaction will publish and audit once committed.
    pub async fn rollback_to(&mut self, point: Savepoint) -> Result<(), StoreError> {
        let mut conn = self.tx.conn();
        conn.execute(&db::Query::new("ROLLBACK TO SAVEPOINT charaka_item"))
            .await?;
        conn.execute(&db::Query::new("RELEASE SAVEPOINT charaka_item"))
            .await?;
        self.written.truncate(point.written);
        self.touched.truncate(point.touched);
        self.erased.truncate(point.erased);
        Ok(())
    }

    /// Locks the audit chain's head until commit; returns it.
    pub async fn lock_audit_head(&mut self, tenant: i64) -> Result<(i64, Vec<u8>), StoreError> {
        audit::lock_head(&mut self.tx.conn(), tenant).await
    }

    /// Appends links to the (locked) audit chain, in order.
    pub async fn append_audit(
        &mut self,
        tenant: i64,
        links: &[audit::ChainRow],
    ) -> Result<(), StoreError> {
        audit::append(&mut self.tx.conn(), tenant, links).await
    }

    /// Serialises transactions that evaluate the same conditional criteria,
    /// so two conditional creates cannot both see "no match" (PostgreSQL; on
    /// SQLite writes are already serial). Lookups-only transactions take no
    /// lock: what they find is checked again in the write transaction.
    /// Returns whether a lock was taken (a lookup made before it must then
    /// be made again).
    pub async fn lock_key(&mut self, key: &str) -> Result<bool, StoreError> {
        self.lock_keys(&[key.to_string()]).await
    }

    /// `lock_key` of each key, in one statement, in sorted order (so two
    /// transactions locking the same keys cannot deadlock).
    pub async fn lock_keys(&mut self, keys: &[String]) -> Result<bool, StoreError> {
        if self.dialect != Dialect::Postgres || self.lookups_only || keys.is_empty() {
            return Ok(false);
        }
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        // One row; its target list is evaluated left to right.
        let mut b = db::SqlBuilder::new("SELECT ");
        let locks: Vec<String> = keys
            .iter()
            .map(|k| {
                let k = b.bind(db::Param::Text(k.to_string()));
                format!("pg_advisory_xact_lock(hashtextextended({k}, 0))")
            })
            .collect();
        b.push(&locks.join(", "));
        self.tx.conn().execute(&b.build()).await?;
        Ok(true)
    }

    /// The current version row of a resource, locked against concurrent
    /// writers until the transaction ends.
    pub async fn current(
        &mut self,
        tenant: i64,
        rtype: &str,
        id: &str,
    ) -> Result<Option<CurrentMeta>, StoreError> {
        resources::current_meta(&mut self.tx.conn(), self.dialect, tenant, rtype, id).await
    }

    /// Full current version (with body) as seen inside this transaction.
    pub async fn read(
        &mut self,
        tenant: i64,
        rtype: &str,
        id: &str,
    ) -> Result<Option<StoredVersion>, StoreError> {
        resources::read_current(&mut self.tx.conn(), &self.codec, tenant, rtype, id).await
    }

    /// The body of `version`, the current version this transaction holds
    /// locked: from the read cache when it has that version, else read.
    pub async fn read_locked(
        &mut self,
        tenant: i64,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<Bytes>, StoreError> {
        if let Some(hit) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(tenant, rtype, id))
            .filter(|v| v.version == version)
        {
            return Ok(hit.body);
        }
        Ok(self
            .read(tenant, rtype, id)
            .await?
            .filter(|v| v.version == version)
            .and_then(|v| v.body))
    }

    /// One version as seen inside this transaction.
    pub async fn vread(
        &mut self,
        tenant: i64,
        rtype: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        resources::read_version(&mut self.tx.conn(), &self.codec, tenant, rtype, id, version).await
    }

    /// Which of the `(type, id)` pairs exist as resources (live or
    /// deleted): one statement for up to 500 pairs, whatever their types (a
    /// `UNION ALL` of one seek per type on the (tenant, type, id) index;
    /// given only the tenant and the ids, SQLite scanned the tenant's rows
    /// of that index instead).
    pub async fn existing(
        &mut self,
        tenant: i64,
        pairs: &[(String, String)],
    ) -> Result<std::collections::HashSet<(String, String)>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in pairs.chunks(500) {
            let mut by_type: Vec<(&str, Vec<&str>)> = Vec::new();
            for (rtype, id) in chunk {
                match by_type.iter_mut().find(|(t, _)| t == rtype) {
                    Some((_, ids)) => ids.push(id),
                    None => by_type.push((rtype, vec![id])),
                }
            }
            let mut b = db::SqlBuilder::new("");
            let t = b.bind(db::Param::Int(tenant));
            let selects: Vec<String> = by_type
                .iter()
                .map(|(rtype, ids)| {
                    let ty = b.bind(db::Param::Text(rtype.to_string()));
                    let ids: Vec<String> = ids
                        .iter()
                        .map(|id| b.bind(db::Param::Text(id.to_string())))
                        .collect();
                    format!(
                        "SELECT type, id FROM resources WHERE tenant = {t} AND type = {ty} AND id IN ({})",
                        ids.join(", ")
                    )
                })
                .collect();
            b.push(&selects.join(" UNION ALL "));
            for row in self.tx.conn().fetch_all(&b.build()).await? {
                found.insert((row.text(0)?, row.text(1)?));
            }
        }
        Ok(found)
    }

    /// The types of the live resources with this id (at most 2 reported).
    pub async fn types_with_id(
        &mut self,
        tenant: i64,
        id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let q = db::Query::new(
            "SELECT type FROM resources WHERE tenant = $1 AND id = $2 AND deleted = 0 LIMIT 2",
        )
        .int(tenant)
        .text(id);
        let rows = self.tx.conn().fetch_all(&q).await?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// One page of a search, as seen inside this transaction (search
    /// entries of a transaction Bundle see its writes).
    pub async fn search(&mut self, tenant: i64, q: &SearchQuery) -> Result<Vec<Hit>, StoreError> {
        let blinded = self.blind.as_ref().map(|b| b.query(q));
        let q = blinded.as_ref().unwrap_or(q);
        query::search(&mut self.tx.conn(), &self.codec, tenant, q).await
    }

    /// How many resources a search matches, inside this transaction.
    pub async fn count(&mut self, tenant: i64, q: &SearchQuery) -> Result<i64, StoreError> {
        let blinded = self.blind.as_ref().map(|b| b.query(q));
        let q = blinded.as_ref().unwrap_or(q);
        query::count(&mut self.tx.conn(), tenant, q).await
    }

    /// Ids of live resources of `rtype` matching `filters`, at most `limit`.
    pub async fn find(
        &mut self,
        tenant: i64,
        rtype: &str,
        filters: &[Filter],
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let lookup = query::Lookup {
            rtype,
            filters,
            limit,
        };
        let mut found = self.find_each(tenant, &[lookup]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    /// `find` of each lookup, all in one statement.
    pub async fn find_each(
        &mut self,
        tenant: i64,
        lookups: &[query::Lookup<'_>],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let blinded: Option<Vec<Vec<Filter>>> = self
            .blind
            .as_ref()
            .map(|b| lookups.iter().map(|l| b.filters(l.filters)).collect());
        let lookups: Vec<query::Lookup<'_>> = match &blinded {
            Some(filters) => lookups
                .iter()
                .zip(filters)
                .map(|(l, filters)| query::Lookup { filters, ..*l })
                .collect(),
            None => lookups.to_vec(),
        };
        // On SQLite the search runs on this thread, and criteria can be any
        // search a client sends (`ifNoneExist`, conditional updates and
        // references): but for exact codes and ids (an identifier, as HL7 v2
        // messages are matched by), which are a seek or two, the runtime is
        // told the thread is busy while it runs. Telling it costs a hand-over
        // of the thread's other tasks (HL7 v2 ADT^A01, 16 connections:
        // 1,257 -> 1,107 messages/s when every lookup did).
        let on_this_thread = matches!(self.tx, Tx::Direct(_) | Tx::Lookups(_));
        let point = lookups
            .iter()
            .all(|l| l.filters.iter().all(query::Filter::is_exact));
        let mut conn = self.tx.conn();
        let find = query::find_ids(&mut conn, tenant, &lookups);
        if on_this_thread && !point {
            direct::blocking_future(find).await
        } else {
            find.await
        }
    }

    /// `find_each` for conditional writes: a match found without a lock
    /// stands (the common case: a shared Practitioner or Location named by
    /// every message), but "no match" is only trusted under the lock of the
    /// criteria (`keys[i]`, None for lookups no write depends on), so the
    /// lookups with a key that found nothing are locked together and made
    /// again: two creators cannot both see "no match".
    pub async fn find_each_locked(
        &mut self,
        tenant: i64,
        lookups: &[query::Lookup<'_>],
        keys: &[Option<String>],
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let mut found = self.find_each(tenant, lookups).await?;
        let unmatched: Vec<usize> = (0..lookups.len())
            .filter(|&i| keys.get(i).is_some_and(Option::is_some) && found[i].is_empty())
            .collect();
        let locks: Vec<String> = unmatched.iter().filter_map(|&i| keys[i].clone()).collect();
        if self.lock_keys(&locks).await? {
            let again: Vec<query::Lookup<'_>> = unmatched.iter().map(|&i| lookups[i]).collect();
            let refound = self.find_each(tenant, &again).await?;
            for (&i, ids) in unmatched.iter().zip(refound) {
                found[i] = ids;
            }
        }
        Ok(found)
    }

    /// Writes a new version. `previous` is the locked current row (None for a
    /// resource never written). Returns false when a concurrent writer created
    /// the same resource first; the caller retries.
    pub async fn write_version(
        &mut self,
        tenant: i64,
        previous: Option<&CurrentMeta>,
        version: &NewVersion<'_>,
    ) -> Result<bool, StoreError> {
        let blinded = self.blind.as_ref().and_then(|b| b.rows(version.index));
        let stored = NewVersion {
            index: blinded.as_ref().unwrap_or(version.index),
            ..*version
        };
        let written =
            resources::write_version(&mut self.tx.conn(), &self.codec, tenant, previous, &stored)
                .await?;
        if written && self.cache.is_some() {
            self.note_written(tenant, version);
        }
        Ok(written)
    }

    /// Keeps a written version to publish to the cache after commit.
    fn note_written(&mut self, tenant: i64, version: &NewVersion<'_>) {
        self.written.push((
            tenant,
            version.rtype.to_string(),
            version.id.to_string(),
            StoredVersion {
                version: version.version,
                last_updated: version.last_updated,
                deleted: version.body.is_none(),
                body: version.body.map(Bytes::copy_from_slice),
            },
        ));
    }

    /// Writes the first versions of new resources in a few statements
    /// (`resources::insert_new_versions`); false when one of them exists
    /// already (the caller rolls back). `publish` puts them in the version
    /// cache once committed, as `write_version` does; AuditEvents, written
    /// often and read seldom, stay out of it so as not to push out the
    /// resources clients read.
    pub async fn insert_new_versions(
        &mut self,
        tenant: i64,
        versions: &[NewVersion<'_>],
        publish: bool,
    ) -> Result<bool, StoreError> {
        let blinded: Vec<Option<IndexRows>> = versions
            .iter()
            .map(|v| self.blind.as_ref().and_then(|b| b.rows(v.index)))
            .collect();
        let stored: Vec<NewVersion<'_>> = versions
            .iter()
            .zip(&blinded)
            .map(|(v, blind)| NewVersion {
                index: blind.as_ref().unwrap_or(v.index),
                ..*v
            })
            .collect();
        let written =
            resources::insert_new_versions(&mut self.tx.conn(), &self.codec, tenant, &stored)
                .await?;
        if written && publish && self.cache.is_some() {
            for v in versions {
                self.note_written(tenant, v);
            }
        }
        Ok(written)
    }

    /// Live resources (of `types` when given) after `after_rid`
    /// (reindexing), locked until commit.
    pub async fn live_batch(
        &mut self,
        tenant: i64,
        types: Option<&[String]>,
        after_rid: i64,
        limit: i64,
    ) -> Result<Vec<LiveResource>, StoreError> {
        resources::live_batch(
            &mut self.tx.conn(),
            &self.codec,
            self.dialect,
            tenant,
            types,
            after_rid,
            limit,
        )
        .await
    }

    /// Replaces a resource's index rows (reindexing).
    pub async fn replace_index(
        &mut self,
        tenant: i64,
        rid: i64,
        rows: &IndexRows,
    ) -> Result<(), StoreError> {
        let blinded = self.blind.as_ref().and_then(|b| b.rows(rows));
        let rows = blinded.as_ref().unwrap_or(rows);
        resources::replace_index(&mut self.tx.conn(), rid, tenant, rows).await
    }

    /// The earlier answer to an HL7 v2 message with this sender and control
    /// id (duplicate detection).
    pub async fn prior_message(
        &mut self,
        tenant: i64,
        sender: &str,
        control_id: &str,
    ) -> Result<Option<messages::PriorAck>, StoreError> {
        messages::find_prior(&mut self.tx.conn(), &self.codec, tenant, sender, control_id).await
    }

    /// Records a received HL7 v2 message with its outcome.
    pub async fn insert_message(
        &mut self,
        tenant: i64,
        message: &messages::NewMessage<'_>,
    ) -> Result<i64, StoreError> {
        messages::insert(&mut self.tx.conn(), &self.codec, tenant, message).await
    }

    /// Records the outcome of replaying a stored HL7 v2 message.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_message(
        &mut self,
        tenant: i64,
        id: i64,
        status: &str,
        ack_code: &str,
        ack: &[u8],
        error: Option<&str>,
        resources: Option<&str>,
    ) -> Result<(), StoreError> {
        messages::update_outcome(
            &mut self.tx.conn(),
            &self.codec,
            tenant,
            id,
            status,
            ack_code,
            ack,
            error,
            resources,
        )
        .await
    }

    /// True when no write transaction of this process committed since
    /// `reading` (`Store::commits_reading`) was taken: what lookups found
    /// after that reading is what this transaction would find, as long as
    /// it has not written itself.
    pub fn unchanged_since(&self, reading: Option<u64>) -> bool {
        reading.is_some() && self.commits.reading() == reading
    }

    /// Commits, and then publishes the written versions to the cache. It
    /// runs to its end in a task of its own even when the caller's future
    /// is dropped (a client that disconnects): a COMMIT handed to the
    /// connection's thread completes anyway, and the count of commits
    /// (`commits.rs`) and the version cache must follow it.
    pub async fn commit(self) -> Result<(), StoreError> {
        tokio::spawn(self.commit_to_end())
            .await
            .map_err(|err| StoreError::Unavailable(format!("the commit did not finish: {err}")))?
    }

    async fn commit_to_end(self) -> Result<(), StoreError> {
        let under_way = (!self.lookups_only).then(|| self.commits.start());
        self.tx.commit().await?;
        drop(under_way);
        if let Some(cache) = &self.cache {
            for (tenant, rtype, id, version) in self.written {
                cache.publish(tenant, &rtype, &id, version);
            }
            for (tenant, rtype, id) in self.erased {
                cache.erase(tenant, &rtype, &id);
            }
        }
        Ok(())
    }

    /// Removes a resource for good (every version and index row); its last
    /// version, None when it does not exist.
    pub async fn purge(
        &mut self,
        tenant: i64,
        rtype: &str,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let purged = resources::purge(&mut self.tx.conn(), tenant, rtype, id).await?;
        if purged.is_some() {
            self.erased
                .push((tenant, rtype.to_string(), id.to_string()));
        }
        Ok(purged)
    }

    /// Deleted resources of `rtype` with the body they had before deletion.
    pub async fn deleted_last_bodies(
        &mut self,
        tenant: i64,
        rtype: &str,
    ) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
        resources::deleted_last_bodies(&mut self.tx.conn(), &self.codec, tenant, rtype).await
    }

    /// Blanks the raw message and ACK of the HL7 v2 messages that wrote
    /// any of `resources` (`Type/id`); returns how many.
    pub async fn erase_messages(
        &mut self,
        tenant: i64,
        resources: &[String],
    ) -> Result<u64, StoreError> {
        messages::erase(&mut self.tx.conn(), tenant, resources).await
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await
    }
}
