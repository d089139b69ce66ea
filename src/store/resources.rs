//! SQL for resource versions: current and versioned reads, writing a new
//! version with its index rows, and matching conditional criteria.

use super::codec::{Aad, Codec};
use super::db::{Conn, Dialect, Param, Query, SqlBuilder};
use super::index::{self, IndexRows, RidFrom};
use super::{StoreError, StoredVersion};

/// The locked current row of a resource.
#[derive(Debug, Clone)]
pub struct CurrentMeta {
    pub rid: i64,
    pub version: i64,
    pub deleted: bool,
    pub last_updated: i64,
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
    pub index: &'a IndexRows,
}

fn decode_body(
    codec: &Codec,
    bytes: Option<Vec<u8>>,
    aad: &Aad,
) -> Result<Option<bytes::Bytes>, StoreError> {
    bytes.map(|b| codec.decode(b, aad)).transpose()
}

fn version_aad<'a>(tenant: i64, rtype: &'a str, id: &'a str, version: i64) -> Aad<'a> {
    Aad::Version {
        tenant,
        rtype,
        id,
        version,
    }
}

pub async fn read_current(
    conn: &mut Conn<'_>,
    codec: &Codec,
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
    let version = row.int(0)?;
    Ok(Some(StoredVersion {
        version,
        last_updated: row.int(1)?,
        deleted: row.int(2)? != 0,
        body: decode_body(
            codec,
            row.opt_bytes(3)?,
            &version_aad(tenant, rtype, id, version),
        )?,
    }))
}

pub async fn read_version(
    conn: &mut Conn<'_>,
    codec: &Codec,
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
        body: decode_body(
            codec,
            row.opt_bytes(3)?,
            &version_aad(tenant, rtype, id, version),
        )?,
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
    codec: &Codec,
    tenant: i64,
    previous: Option<&CurrentMeta>,
    v: &NewVersion<'_>,
) -> Result<bool, StoreError> {
    if conn.is_sqlite() {
        return write_version_sqlite(conn, codec, tenant, previous, v).await;
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
        q = q.bytes(codec.encode(body, &version_aad(tenant, v.rtype, v.id, v.version)));
    }
    conn.execute(&q).await?;
    write_index_pg(conn, rid, tenant, previous.is_some(), v.index).await?;
    Ok(true)
}

/// Versions per multi-row INSERT into `resource_versions` (7 parameters
/// each, well inside both databases' limits).
const VERSIONS_PER_INSERT: usize = 400;

/// Writes the first versions of resources that do not exist yet, all in a
/// few statements whatever their number: one INSERT into `resources` (its
/// `RETURNING` gives each row's rid), multi-row INSERTs into
/// `resource_versions`, and one INSERT per index table. For writes that
/// come in groups (AuditEvents, the creates of a transaction). Returns
/// false, having written only part of the group, when one of the resources
/// exists already (created concurrently): the caller rolls back.
pub async fn insert_new_versions(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    versions: &[NewVersion<'_>],
) -> Result<bool, StoreError> {
    if versions.is_empty() {
        return Ok(true);
    }
    let dialect = if conn.is_sqlite() {
        Dialect::Sqlite
    } else {
        Dialect::Postgres
    };
    if dialect == Dialect::Postgres && versions.len() <= VERSIONS_PER_INSERT {
        return insert_new_versions_pg(conn, codec, tenant, versions).await;
    }
    let mut b = SqlBuilder::new("");
    let (t, json) = bind_listed(&mut b, tenant, versions);
    b.push(&match dialect {
        Dialect::Sqlite => format!(
            "INSERT INTO resources (tenant, type, id, version, deleted, last_updated) \
             SELECT {t}, j.value ->> 0, j.value ->> 1, j.value ->> 2, 0, j.value ->> 3 \
             FROM json_each({json}) j WHERE true \
             ON CONFLICT (tenant, type, id) DO NOTHING RETURNING rid, type, id"
        ),
        Dialect::Postgres => format!(
            "INSERT INTO resources (tenant, type, id, version, deleted, last_updated) \
             SELECT {t}, j ->> 0, j ->> 1, (j ->> 2)::bigint, 0, (j ->> 3)::bigint \
             FROM jsonb_array_elements({json}::jsonb) j \
             ON CONFLICT (tenant, type, id) DO NOTHING RETURNING rid, type, id"
        ),
    });
    let mut rids = std::collections::HashMap::with_capacity(versions.len());
    for row in conn.fetch_all(&b.build()).await? {
        rids.insert((row.text(1)?, row.text(2)?), row.int(0)?);
    }
    if rids.len() < versions.len() {
        return Ok(false);
    }
    let rid_of = |v: &NewVersion<'_>| {
        rids.get(&(v.rtype.to_string(), v.id.to_string()))
            .copied()
            .ok_or_else(|| StoreError::Database(format!("no rid returned for {}", v.id)))
    };
    for chunk in versions.chunks(VERSIONS_PER_INSERT) {
        let mut b = SqlBuilder::new(
            "INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) VALUES ",
        );
        for (n, v) in chunk.iter().enumerate() {
            let body = v
                .body
                .map(|body| codec.encode(body, &version_aad(tenant, v.rtype, v.id, v.version)));
            let values = [
                b.bind(Param::Int(rid_of(v)?)),
                b.bind(Param::Int(tenant)),
                b.bind(Param::Text(v.rtype.to_string())),
                b.bind(Param::Int(v.version)),
                b.bind(Param::Int(v.last_updated)),
                b.bind(Param::Text(v.method.to_string())),
                body.map_or_else(|| "NULL".to_string(), |body| b.bind(Param::Bytes(body))),
            ];
            if n > 0 {
                b.push(", ");
            }
            b.push(&format!("({})", values.join(", ")));
        }
        conn.execute(&b.build()).await?;
    }
    let indexed: Vec<(i64, &IndexRows)> = versions
        .iter()
        .map(|v| Ok((rid_of(v)?, v.index)))
        .collect::<Result<_, StoreError>>()?;
    if matches!(conn, Conn::Direct(_)) {
        index::insert_each(conn, tenant, &indexed).await?;
        return Ok(true);
    }
    let mut b = SqlBuilder::new("");
    let statements = index::inserts_many(&mut b, dialect, tenant, &indexed, RidFrom::First);
    if statements.is_empty() {
        return Ok(true);
    }
    let q = match dialect {
        Dialect::Sqlite => {
            for statement in &statements {
                b.push(statement).push("; ");
            }
            b.build()
        }
        Dialect::Postgres => cte(b, &statements),
    };
    conn.execute(&q).await?;
    Ok(true)
}

/// Binds the tenant and the new resources' rows of `resources` (a JSON
/// array of `[type, id, version, last_updated]`); returns both placeholders.
fn bind_listed(b: &mut SqlBuilder, tenant: i64, versions: &[NewVersion<'_>]) -> (String, String) {
    let listed: Vec<serde_json::Value> = versions
        .iter()
        .map(|v| serde_json::json!([v.rtype, v.id, v.version, v.last_updated]))
        .collect();
    let t = b.bind(Param::Int(tenant));
    let json = b.bind(Param::Text(serde_json::Value::Array(listed).to_string()));
    (t, json)
}

/// `insert_new_versions` on PostgreSQL in one statement (one round trip,
/// where three were made): data-modifying CTEs insert the `resources` rows,
/// then the versions and index rows of those inserted, by the rid each
/// got; `rids` pairs each rid with its version's ordinal in `versions`.
async fn insert_new_versions_pg(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    versions: &[NewVersion<'_>],
) -> Result<bool, StoreError> {
    // The same resource twice: one of them cannot be new (the other
    // databases' path finds so when the second row is refused).
    let mut seen = std::collections::HashSet::with_capacity(versions.len());
    if !versions.iter().all(|v| seen.insert((v.rtype, v.id))) {
        return Ok(false);
    }
    let mut b = SqlBuilder::new("");
    let (t, json) = bind_listed(&mut b, tenant, versions);
    let mut items = vec![
        format!(
            "inserted AS (INSERT INTO resources (tenant, type, id, version, deleted, last_updated) \
             SELECT {t}, j ->> 0, j ->> 1, (j ->> 2)::bigint, 0, (j ->> 3)::bigint \
             FROM jsonb_array_elements({json}::jsonb) j \
             ON CONFLICT (tenant, type, id) DO NOTHING RETURNING rid, type, id)"
        ),
        format!(
            "rids AS (SELECT i.rid, l.ord FROM inserted i \
             JOIN jsonb_array_elements({json}::jsonb) WITH ORDINALITY l(j, ord) \
             ON i.type = l.j ->> 0 AND i.id = l.j ->> 1)"
        ),
    ];
    let mut rows = Vec::with_capacity(versions.len());
    for (n, v) in versions.iter().enumerate() {
        let body = v
            .body
            .map(|body| codec.encode(body, &version_aad(tenant, v.rtype, v.id, v.version)));
        let ord = b.bind(Param::Int(n as i64 + 1));
        let rtype = b.bind(Param::Text(v.rtype.to_string()));
        let version = b.bind(Param::Int(v.version));
        let last_updated = b.bind(Param::Int(v.last_updated));
        let method = b.bind(Param::Text(v.method.to_string()));
        let body = body.map_or_else(|| "NULL".to_string(), |body| b.bind(Param::Bytes(body)));
        rows.push(format!(
            "({ord}::bigint, {rtype}::text, {version}::bigint, {last_updated}::bigint, {method}::text, {body}::bytea)"
        ));
    }
    items.push(format!(
        "versions AS (INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) \
         SELECT rids.rid, {t}, x.type, x.version, x.last_updated, x.method, x.body \
         FROM (VALUES {}) x(ord, type, version, last_updated, method, body) \
         JOIN rids ON rids.ord = x.ord ORDER BY x.ord)",
        rows.join(", ")
    ));
    let indexed: Vec<(i64, &IndexRows)> = versions
        .iter()
        .enumerate()
        .map(|(n, v)| (n as i64 + 1, v.index))
        .collect();
    let index = index::inserts_many(
        &mut b,
        Dialect::Postgres,
        tenant,
        &indexed,
        RidFrom::Ordinal("rids"),
    );
    items.extend(
        index
            .into_iter()
            .enumerate()
            .map(|(i, statement)| format!("s{i} AS ({statement})")),
    );
    b.push("WITH ")
        .push(&items.join(", "))
        .push(" SELECT COUNT(*) FROM inserted");
    let inserted = conn
        .fetch_optional(&b.build())
        .await?
        .map_or(Ok(0), |row| row.int(0))?;
    Ok(usize::try_from(inserted).ok() == Some(versions.len()))
}

/// PostgreSQL: the old rows go and the new rows come in one statement
/// (data-modifying CTEs see the same snapshot, so the deletes cannot touch
/// the new rows), split only when a resource has very many rows.
async fn write_index_pg(
    conn: &mut Conn<'_>,
    rid: i64,
    tenant: i64,
    replace: bool,
    rows: &IndexRows,
) -> Result<(), StoreError> {
    if !replace && rows.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new("");
    let rid_ph = b.bind(Param::Int(rid));
    let mut items = if replace {
        index::deletes(&rid_ph)
    } else {
        Vec::new()
    };
    items.extend(index::inserts(
        &mut b,
        Dialect::Postgres,
        &rid_ph,
        tenant,
        rows,
    ));
    conn.execute(&cte(b, &items)).await?;
    Ok(())
}

/// Replaces the index rows of the resource `rid` (reindexing).
pub async fn replace_index(
    conn: &mut Conn<'_>,
    rid: i64,
    tenant: i64,
    rows: &IndexRows,
) -> Result<(), StoreError> {
    if !conn.is_sqlite() {
        return write_index_pg(conn, rid, tenant, true, rows).await;
    }
    let mut b = SqlBuilder::new("");
    let rid_ph = b.bind(Param::Int(rid));
    for d in index::deletes(&rid_ph) {
        b.push(&d).push("; ");
    }
    for statement in index::inserts(&mut b, Dialect::Sqlite, &rid_ph, tenant, rows) {
        b.push(&statement).push("; ");
    }
    conn.execute(&b.build()).await?;
    Ok(())
}

/// A live resource's current body, for reindexing.
pub struct LiveResource {
    pub rid: i64,
    pub rtype: String,
    pub body: bytes::Bytes,
}

/// Up to `limit` live resources after `after_rid`, in rid order; locked on
/// PostgreSQL so that no writer changes them before their rows are replaced.
pub async fn live_batch(
    conn: &mut Conn<'_>,
    codec: &Codec,
    dialect: Dialect,
    tenant: i64,
    types: Option<&[String]>,
    after_rid: i64,
    limit: i64,
) -> Result<Vec<LiveResource>, StoreError> {
    let mut sql = String::from(
        "SELECT r.rid, r.type, v.body, r.id, r.version FROM resources r \
         JOIN resource_versions v ON v.rid = r.rid AND v.version = r.version \
         WHERE r.tenant = $1 AND r.rid > $2 AND r.deleted = 0",
    );
    if let Some(types) = types {
        sql.push_str(&type_list(types.len(), 4));
    }
    sql.push_str(" ORDER BY r.rid LIMIT $3");
    if dialect == Dialect::Postgres {
        sql.push_str(" FOR UPDATE OF r");
    }
    let mut q = Query::dynamic(sql).int(tenant).int(after_rid).int(limit);
    for t in types.unwrap_or_default() {
        q = q.text(t.clone());
    }
    let rows = conn.fetch_all(&q).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (rtype, id, version) = (row.text(1)?, row.text(3)?, row.int(4)?);
        let body = decode_body(
            codec,
            row.opt_bytes(2)?,
            &version_aad(tenant, &rtype, &id, version),
        )?
        .ok_or_else(|| StoreError::Corrupt("a live resource without a body".into()))?;
        out.push(LiveResource {
            rid: row.int(0)?,
            rtype,
            body,
        });
    }
    Ok(out)
}

/// ` AND r.type IN ($first, ...)`: one placeholder per type (never the
/// types themselves).
pub fn type_list(n: usize, first: usize) -> String {
    if n == 0 {
        return " AND 1 = 0".to_string();
    }
    let marks: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!(" AND r.type IN ({})", marks.join(", "))
}

/// The statements as one: `WITH s0 AS (...), s1 AS (...) SELECT 1`.
fn cte(mut b: SqlBuilder, statements: &[String]) -> Query {
    let items: Vec<String> = statements
        .iter()
        .enumerate()
        .map(|(i, s)| format!("s{i} AS ({s})"))
        .collect();
    b.push("WITH ").push(&items.join(", ")).push(" SELECT 1");
    b.build()
}

/// SQLite: the whole write in one round trip to the connection's worker
/// thread (several statements in one call). A concurrent creator cannot
/// exist: SQLite has one writer, and `previous` was read inside this
/// transaction.
async fn write_version_sqlite(
    conn: &mut Conn<'_>,
    codec: &Codec,
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
                "UPDATE resources SET version = {version}, deleted = {del}, last_updated = {lu} WHERE rid = {rid}; "
            ));
            for d in index::deletes(&rid) {
                b.push(&d).push("; ");
            }
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
        Some(body) => b.bind(Param::Bytes(
            codec.encode(body, &version_aad(tenant, v.rtype, v.id, v.version)),
        )),
        None => "NULL".to_string(),
    };
    b.push(&format!(
        "INSERT INTO resource_versions (rid, tenant, type, version, last_updated, method, body) \
         VALUES ({rid}, {t}, {ty}, {version}, {lu}, {method}, {body}); "
    ));
    if !v.index.is_empty() {
        for statement in index::inserts(&mut b, Dialect::Sqlite, &rid, tenant, v.index) {
            b.push(&statement).push("; ");
        }
    }
    conn.execute(&b.build()).await?;
    Ok(true)
}

/// Removes a resource for good: every version, its index rows and its
/// `resources` row. Returns its last version, None when there is none.
pub async fn purge(
    conn: &mut Conn<'_>,
    tenant: i64,
    rtype: &str,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let q = Query::new(
        "SELECT rid, version FROM resources WHERE tenant = $1 AND type = $2 AND id = $3",
    )
    .int(tenant)
    .text(rtype)
    .text(id);
    let Some(row) = conn.fetch_optional(&q).await? else {
        return Ok(None);
    };
    let (rid, version) = (row.int(0)?, row.int(1)?);
    for table in index::TABLES {
        let sql = format!("DELETE FROM {table} WHERE rid = $1");
        conn.execute(&Query::dynamic(sql).int(rid)).await?;
    }
    conn.execute(&Query::new("DELETE FROM resource_versions WHERE rid = $1").int(rid))
        .await?;
    conn.execute(&Query::new("DELETE FROM resources WHERE rid = $1").int(rid))
        .await?;
    Ok(Some(version))
}

/// Deleted resources of `rtype`, each with the stored body of its last
/// version before the deletion (to find what a deleted resource was about).
pub async fn deleted_last_bodies(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    rtype: &str,
) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
    let q = Query::new(
        "SELECT r.id, v.body, v.version FROM resources r JOIN resource_versions v ON v.rid = r.rid \
         WHERE r.tenant = $1 AND r.type = $2 AND r.deleted = 1 AND v.version = r.version - 1",
    )
    .int(tenant)
    .text(rtype);
    let mut out = Vec::new();
    for row in conn.fetch_all(&q).await? {
        if let Some(body) = row.opt_bytes(1)? {
            let id = row.text(0)?;
            let aad = version_aad(tenant, rtype, &id, row.int(2)?);
            let body = codec.decode(body, &aad)?;
            out.push((id, body));
        }
    }
    Ok(out)
}
