//! `_containedType=contained` (R4 search.html, "Contained Resources"):
//! searches whose matches are contained resources themselves, each a pair
//! (container `rid`, position in its `contained`), with `_contained=both`
//! the ordinary matches too (position -1). One statement; pages by keyset
//! on (rid, position). The container is read whole; the service cuts the
//! contained resource out of it.

use super::db::Conn;
use super::query::{hit_row, Filter, Hit, PageAt, Planner, SortValue};
use super::StoreError;

/// A search of contained resources of `rtype`.
#[derive(Debug, Clone)]
pub struct ContainedQuery {
    pub rtype: String,
    /// Conditions on each contained resource (its `#Type` pids).
    pub filters: Vec<Filter>,
    /// `_contained=both`: ordinary resources of `rtype` matching these
    /// filters are matches too.
    pub plain: Option<Vec<Filter>>,
    /// Conditions on the resource returned or containing the match (what
    /// the caller may see).
    pub outer: Vec<Filter>,
    pub count: i64,
    /// A cursor's values are `[position]`.
    pub page: PageAt,
}

/// A match: the resource read (the container, or the ordinary match), and
/// the position of the contained match in it (None for an ordinary one).
#[derive(Debug, Clone)]
pub struct ContainedHit {
    pub hit: Hit,
    pub position: Option<i64>,
}

impl ContainedQuery {
    /// The CTE `m(rid, pos)` of every match.
    fn matches(&self, p: &mut Planner) -> String {
        let conds = p.contained_conds(&self.rtype, &self.filters, "k");
        let mut sql = format!(
            "m(rid, pos) AS (SELECT k.rid, CAST(k.grp AS BIGINT) FROM sp_token k WHERE k.tenant = {} AND {conds}",
            p.tenant
        );
        if let Some(plain) = &self.plain {
            let ty = p.text(&self.rtype);
            let w = p.filters(plain, "o");
            sql.push_str(&format!(
                " UNION ALL SELECT o.rid, CAST(-1 AS BIGINT) FROM resources o WHERE o.tenant = {} \
                 AND o.type = {ty} AND o.deleted = 0 AND {w}",
                p.tenant
            ));
        }
        sql.push(')');
        sql
    }
}

/// One page of matches; one more than `count` to tell whether another
/// page follows (the caller trims it, as for `query::search`).
pub async fn search(
    conn: &mut Conn<'_>,
    codec: &super::codec::Codec,
    tenant: i64,
    q: &ContainedQuery,
) -> Result<Vec<ContainedHit>, StoreError> {
    let mut p = Planner::new(tenant);
    p.set_dialect(conn);
    let with = q.matches(&mut p);
    let outer = p.filters(&q.outer, "r");
    let forward = !matches!(q.page, PageAt::Before(..) | PageAt::Last);
    let mut w = format!("r.deleted = 0 AND {outer}");
    let cursor = |values: &[SortValue]| match values.first() {
        Some(SortValue::Int(pos)) => *pos,
        _ => -1,
    };
    match &q.page {
        PageAt::After(values, rid) | PageAt::Before(values, rid) => {
            let (rid, pos) = (p.int(*rid), p.int(cursor(values)));
            let op = if forward { ">" } else { "<" };
            w.push_str(&format!(
                " AND (m.rid {op} {rid} OR (m.rid = {rid} AND m.pos {op} {pos}))"
            ));
        }
        PageAt::First | PageAt::Last => {}
    }
    let dir = if forward { "ASC" } else { "DESC" };
    let limit = p.int(q.count + 1);
    let sql = format!(
        "WITH {with} SELECT r.rid, r.type, r.id, r.version, r.last_updated, v.body, m.pos \
         FROM m JOIN resources r ON r.rid = m.rid \
         JOIN resource_versions v ON v.rid = r.rid AND v.version = r.version \
         WHERE {w} ORDER BY m.rid {dir}, m.pos {dir} LIMIT {limit}"
    );
    let mut b = p.b;
    b.push(&sql);
    let rows = conn.fetch_all(&b.build()).await?;
    let mut hits = Vec::with_capacity(rows.len());
    for row in &rows {
        let pos = row.int(6)?;
        hits.push(ContainedHit {
            hit: hit_row(codec, tenant, row, vec![SortValue::Int(pos)])?,
            position: (pos >= 0).then_some(pos),
        });
    }
    if !forward {
        hits.reverse();
    }
    Ok(hits)
}

/// How many matches (`_total=accurate`).
pub async fn count(
    conn: &mut Conn<'_>,
    tenant: i64,
    q: &ContainedQuery,
) -> Result<i64, StoreError> {
    let mut p = Planner::new(tenant);
    p.set_dialect(conn);
    let with = q.matches(&mut p);
    let outer = p.filters(&q.outer, "r");
    let mut b = p.b;
    b.push(&format!(
        "WITH {with} SELECT COUNT(*) FROM m JOIN resources r ON r.rid = m.rid \
         WHERE r.deleted = 0 AND {outer}"
    ));
    let row = conn.fetch_optional(&b.build()).await?;
    row.map_or(Ok(0), |r| r.int(0))
}
