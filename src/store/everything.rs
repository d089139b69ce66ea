//! `Patient/$everything` and `Encounter/$everything` in one statement: the
//! compartments found through the reference index (the rows of the
//! compartment's parameters that point at its owners: the patients, or the
//! encounter), the resources those refer to of a few types (one level),
//! then one page of them by `rid`.
//!
//! The statement gathers and orders `rid`s only (index rows and the
//! `resources` table); bodies are read for the page alone, after it is cut. Pages continue after the
//! last `rid` served, so they neither repeat nor skip resources that stay
//! in the answer.

use super::codec::Codec;
use super::db::Conn;
use super::query::{hit_row, Filter, Hit, PageAt, Planner};
use super::StoreError;

/// What `$everything` gathers.
#[derive(Debug, Clone)]
pub struct EverythingQuery {
    /// The compartment's type (`Patient`, `Encounter`).
    pub compartment: String,
    /// The ids of the compartments' owners whose records are gathered
    /// (resources of type `compartment`); None: every one.
    pub owners: Option<Vec<String>>,
    /// The parameters (`pid`s) linking a resource to the compartment
    /// (every type's, per the R4 CompartmentDefinition).
    pub compartment_pids: Vec<i64>,
    /// Types of the resources the compartment refers to that are added.
    pub referenced_types: Vec<String>,
    /// Conditions every resource gathered meets (reach, `_since`, care
    /// dates); referenced resources are those of the members that meet them.
    pub filters: Vec<Filter>,
    /// The types of the answer (`_type`); empty: every type.
    pub types: Vec<String>,
    /// Types never gathered (nor followed) whatever else is asked.
    pub excluded_types: Vec<String>,
    /// Where the page is: the first, after or before a `rid` (sort values
    /// unused: the order is by `rid` alone), or the last.
    pub page: PageAt,
    /// Page size; one more row is read to tell whether a page follows
    /// (going forward) or precedes (going backward).
    pub count: i64,
}

/// One page of the answer in `rid` order (at most `count + 1` rows; going
/// backward, the extra row is the first).
pub async fn everything(
    conn: &mut Conn<'_>,
    codec: &Codec,
    tenant: i64,
    q: &EverythingQuery,
) -> Result<Vec<Hit>, StoreError> {
    if q.owners.as_ref().is_some_and(|o| o.is_empty()) || q.compartment_pids.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Planner::new(tenant);
    let t = p.tenant.clone();
    let owner = p.text(&q.compartment);
    let (own, referring) = match &q.owners {
        Some(ids) => {
            let ids = p.list(ids);
            (
                format!(" AND r0.id IN ({ids})"),
                format!(" AND x.tid IN ({ids})"),
            )
        }
        None => (String::new(), String::new()),
    };
    let cpids = p.pids("x", &q.compartment_pids);
    let excluded = |p: &mut Planner, alias: &str| {
        if q.excluded_types.is_empty() {
            String::new()
        } else {
            format!(" AND {alias}.type NOT IN ({})", p.list(&q.excluded_types))
        }
    };
    let excluded_c = excluded(&mut p, "r");
    let filters_c = p.filters(&q.filters, "r");
    let referenced = if q.referenced_types.is_empty() {
        String::new()
    } else {
        let types_t = p.list(&q.referenced_types);
        let types_y = p.list(&q.referenced_types);
        let filters_t = p.filters(&q.filters, "t");
        format!(
            " UNION SELECT t.rid FROM resources t WHERE t.tenant = {t} AND t.deleted = 0 \
             AND t.type IN ({types_t}) AND (t.type, t.id) IN \
             (SELECT y.ttype, y.tid FROM sp_reference y WHERE y.rid IN (SELECT rid FROM c) \
             AND y.ttype IN ({types_y}) AND y.tid <> '') AND {filters_t}"
        )
    };
    let mut last = String::new();
    if !q.types.is_empty() {
        last.push_str(&format!(" AND r.type IN ({})", p.list(&q.types)));
    }
    let order = match &q.page {
        PageAt::First => "",
        PageAt::Last => " DESC",
        PageAt::After(_, rid) => {
            last.push_str(&format!(" AND r.rid > {}", p.int(*rid)));
            ""
        }
        PageAt::Before(_, rid) => {
            last.push_str(&format!(" AND r.rid < {}", p.int(*rid)));
            " DESC"
        }
    };
    let limit = p.int(q.count + 1);
    let sql = format!(
        "WITH c0(rid) AS (\
           SELECT r0.rid FROM resources r0 WHERE r0.tenant = {t} AND r0.type = {owner}{own} \
           UNION SELECT x.rid FROM sp_reference x WHERE x.tenant = {t} AND {cpids} \
           AND x.ttype = {owner}{referring}), \
         c(rid) AS (SELECT r.rid FROM c0 JOIN resources r ON r.rid = c0.rid \
           WHERE r.deleted = 0{excluded_c} AND {filters_c}), \
         m(rid) AS (SELECT rid FROM c{referenced}), \
         page(rid) AS (SELECT r.rid FROM m JOIN resources r ON r.rid = m.rid \
           WHERE r.deleted = 0{last} ORDER BY r.rid{order} LIMIT {limit}) \
         SELECT r.rid, r.type, r.id, r.version, r.last_updated, v.body \
         FROM page JOIN resources r ON r.rid = page.rid \
         JOIN resource_versions v ON v.rid = r.rid AND v.version = r.version \
         ORDER BY r.rid"
    );
    let mut b = p.b;
    b.push(&sql);
    let rows = conn.fetch_all(&b.build()).await?;
    let mut hits = Vec::with_capacity(rows.len());
    for row in &rows {
        hits.push(hit_row(codec, tenant, row, Vec::new())?);
    }
    Ok(hits)
}
