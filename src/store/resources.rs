//! SQL for resource versions: current and versioned reads, writing a new
//! version with its index rows, and matching conditional criteria.

use super::codec;
use super::db::{Conn, Dialect, Param, Query, SqlBuilder};
use super::{StoreError, StoredVersion};

/// The locked current row of a resource.
#[derive(Debug, Clone)]
pub struct CurrentMeta {
    pub rid: i64,
    pub version: i64,
    pub deleted: bool,
    pub last_updated: i64,
}

/// A token index row (`system|code`) of one search parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub param: &'static str,
    /// Empty when the value has no system.
    pub system: String,
    pub code: String,
}

/// A version about to be written.
pub struct NewVersion<'a> {
    pub rtype: &'a str,
    pub id: &'a str,
    pub version: i64,
    pub last_updated: i64,
    /// POST, PUT, PATCH or DELETE.
    pub method: &'static str,
    /// Canonical JSON; None for a delete.
    pub body: Option<&'a [u8]>,
    /// Index rows of this version (replacing the previous ones).
    pub tokens: &'a [TokenRow],
}

/// One alternative of a token parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenMatch {
    /// `code`: any system.
    Code(String),
    /// `system|code`.
    SystemCode(String, String),
    /// `|code`: no system.
    NoSystem(String),
    /// `system|`: any code of the system.
    System(String),
}

/// Typed conditional criteria: every entry must match (AND); inside one entry
/// any alternative may match (OR, from comma-separated values).
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    pub ids: Vec<Vec<String>>,
    pub tokens: Vec<(&'static str, Vec<TokenMatch>)>,
}

fn decode_body(bytes: Option<Vec<u8>>) -> Result<Option<bytes::Bytes>, StoreError> {
    bytes.map(codec::decode).transpose()
}

pub async fn read_current(
    conn: &mut Conn<'_>,
    tenant: i64,
    rtype: &str,
    id: &str,
) -> Result<Option<StoredVersion>, StoreError> {
    let q = Query::new(
        "SELECT r.version, r.last_updated, r.deleted, v.body \
         FROM resources r JOIN resource_versions v ON v.rid = r.rid AND v.version = r.version \
         WHERE r.tenant = $1 AND r.type = $2 AND r.id = $3",
    )
    .int(tenant)
    .text(rtype)
    .text(id);
    let Some(row) = conn.fetch_optional(&q).await? else {
        return Ok(None);
    };
    Ok(Some(StoredVersion {
        version: row.int(0)?,
        last_updated: row.int(1)?,
        deleted: row.int(2)? != 0,
        body: decode_body(row.opt_bytes(3)?)?,
    }))
}

pub async fn read_version(
    conn: &mut Conn<'_>,
    tenant: i64,
    rtype: &str,
    id: &str,
    version: i64,
) -> Result<Option<StoredVersion>, StoreError> {
    let q = Query::new(
        "SELECT v.version, v.last_updated, v.method, v.body \
         FROM resources r JOIN resource_versions v ON v.rid = r.rid \
         WHERE r.tenant = $1 AND r.type = $2 AND r.id = $3 AND v.version = $4",
    )
    .int(tenant)
    .text(rtype)
    .text(id)
    .int(version);
    let Some(row) = conn.fetch_optional(&q).await? else {
        return Ok(None);
    };
    Ok(Some(StoredVersion {
        version: row.int(0)?,
        last_updated: row.int(1)?,
        deleted: row.text(2)? == "DELETE",
        body: decode_body(row.opt_bytes(3)?)?,
    }))
}

pub async fn current_meta(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    tenant: i64,
    rtype: &str,
    id: &str,
) -> Result<Option<CurrentMeta>, StoreError> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT rid, version, deleted, last_updated FROM resources \
             WHERE tenant = $1 AND type = $2 AND id = $3"
        }
        Dialect::Postgres => {
            "SELECT rid, version, deleted, last_updated FROM resources \
             WHERE tenant = $1 AND type = $2 AND id = $3 FOR UPDATE"
        }
    };
    let q = Query::new(sql).int(tenant).text(rtype).text(id);
    let Some(row) = conn.fetch_optional(&q).await? else {
        return Ok(None);
    };
    Ok(Some(CurrentMeta {
        rid: row.int(0)?,
        version: row.int(1)?,
        deleted: row.int(2)? != 0,
        last_updated: row.int(3)?,
    }))
}

pub async fn write_version(
    conn: &mut Conn<'_>,
    tenant: i64,
    previous: Option<&CurrentMeta>,
    v: &NewVersion<'_>,
) -> Result<bool, StoreError> {
    if matches!(conn, Conn::Sqlite(_)) {
        return write_version_sqlite(conn, tenant, previous, v).await;
    }
    let deleted = i64::from(v.body.is_none());
    let rid = match previous {
        Some(prev) => {
            let q = Query::new(
                "UPDATE resources SET version = $1, deleted = $2, last_updated = $3 WHERE rid = $4",
            )
            .int(v.version)
            .int(deleted)
            .int(v.last_updated)
            .int(prev.rid);
            conn.execute(&q).await?;
            let q = Query::new("DELETE FROM search_token WHERE rid = $1").int(prev.rid);
            conn.execute(&q).await?;
            prev.rid
        }
        None => {
            let q = Query::new(
                "INSERT INTO resources (tenant, type, id, version, deleted, last_updated) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant, type, id) DO NOTHING RETURNING rid",
            )
            .int(tenant)
            .text(v.rtype)
            .text(v.id)
            .int(v.version)
            .int(deleted)
            .int(v.last_updated);
            match conn.fetch_optional(&q).await? {
                Some(row) => row.int(0)?,
                None => return Ok(false),
            }
        }
    };
    // A delete stores no body (SQL NULL).
    let sql = if v.body.is_some() {
        "INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    } else {
        "INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL)"
    };
    let mut q = Query::new(sql)
        .int(rid)
        .int(tenant)
        .text(v.rtype)
        .int(v.version)
        .int(v.last_updated)
        .text(v.method);
    if let Some(body) = v.body {
        q = q.bytes(codec::encode(body));
    }
    conn.execute(&q).await?;
    if !v.tokens.is_empty() {
        let mut b = SqlBuilder::new("");
        let rid = b.bind(Param::Int(rid));
        push_token_insert(&mut b, &rid, tenant, v);
        conn.execute(&b.build()).await?;
    }
    Ok(true)
}

/// `INSERT INTO search_token ...` for the version's tokens; `rid` is the SQL
/// expression (a placeholder or a subquery) of the resource's key.
fn push_token_insert(b: &mut SqlBuilder, rid: &str, tenant: i64, v: &NewVersion<'_>) {
    b.push("INSERT INTO search_token (rid, tenant, type, param, system, code) VALUES ");
    for (i, t) in v.tokens.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        let values = [
            rid.to_string(),
            b.bind(Param::Int(tenant)),
            b.bind(Param::Text(v.rtype.to_string())),
            b.bind(Param::Text(t.param.to_string())),
            b.bind(Param::Text(t.system.clone())),
            b.bind(Param::Text(t.code.clone())),
        ];
        b.push("(").push(&values.join(", ")).push(")");
    }
}

/// SQLite: the whole write in one round trip to the connection's worker
/// thread (several statements in one call). A concurrent creator cannot
/// exist: SQLite has one writer, and `previous` was read inside this
/// transaction.
async fn write_version_sqlite(
    conn: &mut Conn<'_>,
    tenant: i64,
    previous: Option<&CurrentMeta>,
    v: &NewVersion<'_>,
) -> Result<bool, StoreError> {
    let deleted = i64::from(v.body.is_none());
    let mut b = SqlBuilder::new("");
    let rid = match previous {
        Some(prev) => {
            let rid = b.bind(Param::Int(prev.rid));
            let version = b.bind(Param::Int(v.version));
            let del = b.bind(Param::Int(deleted));
            let lu = b.bind(Param::Int(v.last_updated));
            b.push(&format!(
                "UPDATE resources SET version = {version}, deleted = {del}, last_updated = {lu} WHERE rid = {rid}; \
                 DELETE FROM search_token WHERE rid = {rid}; "
            ));
            rid
        }
        None => {
            let t = b.bind(Param::Int(tenant));
            let ty = b.bind(Param::Text(v.rtype.to_string()));
            let id = b.bind(Param::Text(v.id.to_string()));
            let version = b.bind(Param::Int(v.version));
            let del = b.bind(Param::Int(deleted));
            let lu = b.bind(Param::Int(v.last_updated));
            b.push(&format!(
                "INSERT INTO resources (tenant, type, id, version, deleted, last_updated) \
                 VALUES ({t}, {ty}, {id}, {version}, {del}, {lu}); "
            ));
            format!("(SELECT rid FROM resources WHERE tenant = {t} AND type = {ty} AND id = {id})")
        }
    };
    let t = b.bind(Param::Int(tenant));
    let ty = b.bind(Param::Text(v.rtype.to_string()));
    let version = b.bind(Param::Int(v.version));
    let lu = b.bind(Param::Int(v.last_updated));
    let method = b.bind(Param::Text(v.method.to_string()));
    let body = match v.body {
        Some(body) => b.bind(Param::Bytes(codec::encode(body))),
        None => "NULL".to_string(),
    };
    b.push(&format!(
        "INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) \
         VALUES ({rid}, {t}, {ty}, {version}, {lu}, {method}, {body}); "
    ));
    if !v.tokens.is_empty() {
        push_token_insert(&mut b, &rid, tenant, v);
    }
    conn.execute(&b.build()).await?;
    Ok(true)
}

pub async fn find(
    conn: &mut Conn<'_>,
    tenant: i64,
    rtype: &str,
    criteria: &Criteria,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut b = SqlBuilder::new("SELECT r.id FROM resources r WHERE r.tenant = ");
    let p = b.bind(Param::Int(tenant));
    b.push(&p).push(" AND r.type = ");
    let p = b.bind(Param::Text(rtype.to_string()));
    b.push(&p).push(" AND r.deleted = 0");
    for ids in &criteria.ids {
        let placeholders: Vec<String> = ids
            .iter()
            .map(|id| b.bind(Param::Text(id.clone())))
            .collect();
        b.push(" AND r.id IN (")
            .push(&placeholders.join(", "))
            .push(")");
    }
    for (param, alternatives) in &criteria.tokens {
        b.push(" AND EXISTS (SELECT 1 FROM search_token t WHERE t.rid = r.rid AND t.param = ");
        let p = b.bind(Param::Text((*param).to_string()));
        b.push(&p).push(" AND (");
        for (i, alt) in alternatives.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            let clause = match alt {
                TokenMatch::Code(code) => format!("t.code = {}", b.bind(Param::Text(code.clone()))),
                TokenMatch::SystemCode(system, code) => {
                    let s = b.bind(Param::Text(system.clone()));
                    let c = b.bind(Param::Text(code.clone()));
                    format!("(t.system = {s} AND t.code = {c})")
                }
                TokenMatch::NoSystem(code) => {
                    let c = b.bind(Param::Text(code.clone()));
                    format!("(t.system = '' AND t.code = {c})")
                }
                TokenMatch::System(system) => {
                    format!("t.system = {}", b.bind(Param::Text(system.clone())))
                }
            };
            b.push(&clause);
        }
        b.push("))");
    }
    let p = b.bind(Param::Int(limit));
    b.push(" ORDER BY r.rid LIMIT ").push(&p);
    let rows = conn.fetch_all(&b.build()).await?;
    rows.iter().map(|r| r.text(0)).collect()
}
