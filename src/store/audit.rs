//! SQL for the audit hash chain (`audit_chain`, `audit_head`,
//! `audit_checkpoints`). The AuditEvent resources themselves are ordinary
//! resources; this module only keeps their order and hashes. What a hash
//! covers is the service's business (`crate::audit::chain`).

use super::db::{Conn, Param, Query, Row, SqlBuilder};
use super::StoreError;

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub seq: i64,
    pub event_id: String,
    pub recorded: i64,
    pub hash: Vec<u8>,
}

/// A signed statement about the chain's head at some point.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub created: i64,
    pub signature: String,
}

fn chain_row(row: &Row) -> Result<ChainRow, StoreError> {
    Ok(ChainRow {
        seq: row.int(0)?,
        event_id: row.text(1)?,
        recorded: row.int(2)?,
        hash: row.opt_bytes(3)?.unwrap_or_default(),
    })
}

/// The head of `tenant`'s chain (sequence number and hash; 0 and 32 zero
/// bytes for an empty chain), locked until the transaction ends so that
/// appenders take turns.
pub async fn lock_head(conn: &mut Conn<'_>, tenant: i64) -> Result<(i64, Vec<u8>), StoreError> {
    let sql = if conn.is_sqlite() {
        "SELECT seq, hash FROM audit_head WHERE tenant = $1"
    } else {
        "SELECT seq, hash FROM audit_head WHERE tenant = $1 FOR UPDATE"
    };
    if let Some(row) = conn.fetch_optional(&Query::new(sql).int(tenant)).await? {
        return Ok((row.int(0)?, row.opt_bytes(1)?.unwrap_or_default()));
    }
    // The tenant's first record: make its head (a concurrent first
    // appender may have made it already), then lock it.
    let seed = Query::new(
        "INSERT INTO audit_head (tenant, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (tenant) DO NOTHING",
    )
    .int(tenant)
    .bytes(vec![0; 32]);
    conn.execute(&seed).await?;
    let row = conn
        .fetch_optional(&Query::new(sql).int(tenant))
        .await?
        .ok_or_else(|| StoreError::Database("audit_head row missing".into()))?;
    Ok((row.int(0)?, row.opt_bytes(1)?.unwrap_or_default()))
}

/// Links appended per INSERT statement at most.
const LINKS_PER_INSERT: usize = 200;

/// Appends links (in order, following the locked head) and moves the head
/// to the last one.
pub async fn append(
    conn: &mut Conn<'_>,
    tenant: i64,
    links: &[ChainRow],
) -> Result<(), StoreError> {
    let Some(last) = links.last() else {
        return Ok(());
    };
    let chunks: Vec<&[ChainRow]> = links.chunks(LINKS_PER_INSERT).collect();
    // PostgreSQL: the last INSERT and the head's move are one statement (a
    // data-modifying CTE), one round trip less while the head is locked.
    let with_head = !conn.is_sqlite();
    for (i, chunk) in chunks.iter().enumerate() {
        let last_chunk = i + 1 == chunks.len();
        let insert = "INSERT INTO audit_chain (tenant, seq, event_id, recorded, hash) VALUES ";
        let mut b = if with_head && last_chunk {
            SqlBuilder::new(&format!("WITH c AS ({insert}"))
        } else {
            SqlBuilder::new(insert)
        };
        for (n, link) in chunk.iter().enumerate() {
            let values = [
                b.bind(Param::Int(tenant)),
                b.bind(Param::Int(link.seq)),
                b.bind(Param::Text(link.event_id.clone())),
                b.bind(Param::Int(link.recorded)),
                b.bind(Param::Bytes(link.hash.clone())),
            ];
            if n > 0 {
                b.push(", ");
            }
            b.push(&format!("({})", values.join(", ")));
        }
        if with_head && last_chunk {
            let t = b.bind(Param::Int(tenant));
            let seq = b.bind(Param::Int(last.seq));
            let hash = b.bind(Param::Bytes(last.hash.clone()));
            b.push(&format!(
                ") UPDATE audit_head SET seq = {seq}, hash = {hash} WHERE tenant = {t}"
            ));
        }
        conn.execute(&b.build()).await?;
    }
    if !with_head {
        let head = Query::new("UPDATE audit_head SET seq = $2, hash = $3 WHERE tenant = $1")
            .int(tenant)
            .int(last.seq)
            .bytes(last.hash.clone());
        conn.execute(&head).await?;
    }
    Ok(())
}

/// The head without locking it.
pub async fn head(conn: &mut Conn<'_>, tenant: i64) -> Result<(i64, Vec<u8>), StoreError> {
    let q = Query::new("SELECT seq, hash FROM audit_head WHERE tenant = $1").int(tenant);
    match conn.fetch_optional(&q).await? {
        Some(row) => Ok((row.int(0)?, row.opt_bytes(1)?.unwrap_or_default())),
        None => Ok((0, vec![0; 32])),
    }
}

/// Up to `limit` links after `after_seq`, in order.
pub async fn page(
    conn: &mut Conn<'_>,
    tenant: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<ChainRow>, StoreError> {
    let q = Query::new(
        "SELECT seq, event_id, recorded, hash FROM audit_chain \
         WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .int(tenant)
    .int(after_seq)
    .int(limit);
    conn.fetch_all(&q).await?.iter().map(chain_row).collect()
}

/// Ids of stored AuditEvents that no link names (inserted behind the
/// chain's back), at most `limit`.
pub async fn unchained_events(
    conn: &mut Conn<'_>,
    tenant: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let q = Query::new(
        "SELECT r.id FROM resources r WHERE r.tenant = $1 AND r.type = 'AuditEvent' \
         AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.tenant = r.tenant \
         AND c.event_id = r.id) ORDER BY r.id LIMIT $2",
    )
    .int(tenant)
    .int(limit);
    conn.fetch_all(&q)
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect()
}

/// Records a checkpoint (a second one for the same record is ignored).
pub async fn insert_checkpoint(
    conn: &mut Conn<'_>,
    tenant: i64,
    c: &Checkpoint,
) -> Result<(), StoreError> {
    let q = Query::new(
        "INSERT INTO audit_checkpoints (tenant, seq, hash, created, signature) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, seq) DO NOTHING",
    )
    .int(tenant)
    .int(c.seq)
    .bytes(c.hash.clone())
    .int(c.created)
    .text(c.signature.clone());
    conn.execute(&q).await?;
    Ok(())
}

/// Every checkpoint of `tenant`, oldest first.
pub async fn checkpoints(conn: &mut Conn<'_>, tenant: i64) -> Result<Vec<Checkpoint>, StoreError> {
    let q = Query::new(
        "SELECT seq, hash, created, signature FROM audit_checkpoints \
         WHERE tenant = $1 ORDER BY seq",
    )
    .int(tenant);
    conn.fetch_all(&q)
        .await?
        .iter()
        .map(|row| {
            Ok(Checkpoint {
                seq: row.int(0)?,
                hash: row.opt_bytes(1)?.unwrap_or_default(),
                created: row.int(2)?,
                signature: row.text(3)?,
            })
        })
        .collect()
}

/// A resource version written by a transaction, noted for the audit record
/// of the interaction that wrote it.
#[derive(Debug, Clone)]
pub struct Touched {
    pub rtype: String,
    pub id: String,
    pub version: i64,
    /// Patients whose compartment holds the resource.
    pub patients: Vec<String>,
}
