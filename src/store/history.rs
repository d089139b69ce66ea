//! History at instance, type and system level, newest first, paged by a
//! cursor on the global write sequence (`seq`), so pages stay stable while
//! new versions are written (new versions always get a larger `seq`).

use bytes::Bytes;

use super::codec::{Aad, Codec};
use super::db::{Conn, Param, SqlBuilder};
use super::StoreError;

#[derive(Debug, Clone)]
pub enum HistoryScope {
    Instance { rtype: String, id: String },
    Type { rtype: String },
    System,
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Only versions written at or after this instant (µs).
    pub since: Option<i64>,
    /// Only versions current at some time in `[start, end]` (µs).
    pub at: Option<(i64, i64)>,
    /// Only versions older than this cursor (`seq`).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub seq: i64,
    pub rtype: String,
    pub id: String,
    pub version: i64,
    pub last_updated: i64,
    pub method: String,
    pub body: Option<Bytes>,
}

pub async fn fetch(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    q: &HistoryQuery,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut b = SqlBuilder::new(
        "SELECT v.seq, r.type, r.id, v.version, v.last_updated, v.method, v.body \
         FROM resource_versions v JOIN resources r ON r.rid = v.rid WHERE ",
    );
    let t = b.bind(Param::Int(tenant));
    match &q.scope {
        HistoryScope::Instance { rtype, id } => {
            let ty = b.bind(Param::Text(rtype.clone()));
            let id = b.bind(Param::Text(id.clone()));
            b.push(&format!("r.tenant = {t} AND r.type = {ty} AND r.id = {id}"));
        }
        HistoryScope::Type { rtype } => {
            let ty = b.bind(Param::Text(rtype.clone()));
            b.push(&format!("v.tenant = {t} AND v.type = {ty}"));
        }
        HistoryScope::System => {
            // The audit trail has its own history (`AuditEvent/_history`);
            // in the system's, every poll would list the records of the
            // polls before it.
            b.push(&format!("v.tenant = {t} AND v.type <> 'AuditEvent'"));
        }
    }
    if let Some(since) = q.since {
        let p = b.bind(Param::Int(since));
        b.push(&format!(" AND v.last_updated >= {p}"));
    }
    if let Some((start, end)) = q.at {
        // Current at some moment of [start, end]: written no later than `end`,
        // and not superseded by a version written before `start`.
        let e = b.bind(Param::Int(end));
        let s = b.bind(Param::Int(start));
        b.push(&format!(
            " AND v.last_updated <= {e} AND NOT EXISTS (SELECT 1 FROM resource_versions n \
             WHERE n.rid = v.rid AND n.version = v.version + 1 AND n.last_updated <= {s})"
        ));
    }
    if let Some(before) = q.before {
        let p = b.bind(Param::Int(before));
        b.push(&format!(" AND v.seq < {p}"));
    }
    let l = b.bind(Param::Int(q.limit));
    b.push(&format!(" ORDER BY v.seq DESC LIMIT {l}"));
    let rows = conn.fetch_all(&b.build()).await?;
    rows.into_iter()
        .map(|row| {
            let (rtype, id, version) = (row.text(1)?, row.text(2)?, row.int(3)?);
            let aad = Aad::Version {
                tenant,
                rtype: &rtype,
                id: &id,
                version,
            };
            let body = row
                .opt_bytes(6)?
                .map(|b| codec.decode(b, &aad))
                .transpose()?;
            Ok(HistoryEntry {
                seq: row.int(0)?,
                rtype,
                id,
                version,
                last_updated: row.int(4)?,
                method: row.text(5)?,
                body,
            })
        })
        .collect()
}
