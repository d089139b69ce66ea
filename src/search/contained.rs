//! Contained resources in the search index (R4 search.html, "Contained
//! Resources"): the rows of each resource in a container's `contained`,
//! stored against the container's `rid` under parameter ids of their own,
//! and the translation of search filters to those ids.
//!
//! A contained resource of type `T` at position `k` (0-based) of
//! `contained` gets the rows its own parameters would give it as a
//! resource, each renumbered from `pid(T-or-Resource, key)` to
//! `pid("#T", key)` (common parameters too: `#T/_tag`, so the type of the
//! contained resource is always in the key) and with `grp = k`, plus a
//! token row `#T/_id` holding its local id, which enumerates the contained
//! resources of a type. Ordinary searches never name a `#T` pid, so these
//! rows match no ordinary search. `grp` is the position, so several
//! conditions must hold in the same contained resource (`grp >= 0`
//! throughout: every row is in the value indexes). Composite parameters
//! of contained resources are not indexed (their `grp` numbering would
//! collide with the position).
//!
//! A local reference of the container (`subject` = `#p1`) is a reference
//! row under `pid(key_type, "subject:contained")` with `ttype` the
//! contained resource's type, `tid` = `#p1` (never a resource id) and
//! `grp` its position: chains through it (`subject.name=Taylor`) look for
//! the target's `#T` rows of the same container and position.

use std::collections::HashMap;

use serde_json::Value;

use super::pid;
use super::registry::{ParamType, Registry};
use crate::store::index::IndexRows;
use crate::store::query::{Cond, Filter, Table};

/// The key suffix of a reference parameter's local (`#id`) references.
pub const LOCAL_SUFFIX: &str = "contained";

/// The pid of `key` (a parameter code or a derived key such as
/// `code:text`) for resources of `rtype` contained in another.
pub fn contained_pid(rtype: &str, key: &str) -> i64 {
    pid(&format!("#{rtype}"), key)
}

/// For the resources of `rtype`: each pid its own rows use (plain
/// parameters and their derived keys) → the pid of the same key for a
/// contained `rtype`. Keys left out (composites and their components)
/// have no contained rows.
pub fn pid_map(reg: &Registry, rtype: &str) -> HashMap<i64, i64> {
    let mut map = HashMap::new();
    for p in reg.params(rtype) {
        if p.ptype == ParamType::Composite || p.is_column() {
            continue;
        }
        map.insert(p.pid, contained_pid(rtype, &p.code));
        for suffix in ["text", "of-type", "identifier", LOCAL_SUFFIX] {
            let key = format!("{}:{suffix}", p.code);
            map.insert(pid(&p.key_type, &key), contained_pid(rtype, &key));
        }
    }
    map
}

/// A resource's contained resources: local id → (position, type). Entries
/// without an id or a known type are left out.
pub fn locals(resource: &Value) -> HashMap<String, (i64, String)> {
    let mut out = HashMap::new();
    let Some(Value::Array(contained)) = resource.get("contained") else {
        return out;
    };
    for (k, c) in contained.iter().enumerate() {
        if let (Some(id), Some(t)) = (
            c.get("id").and_then(Value::as_str),
            c.get("resourceType").and_then(Value::as_str),
        ) {
            if crate::fhir::schema::schema().is_resource_type(t) {
                out.entry(id.to_string())
                    .or_insert((k as i64, t.to_string()));
            }
        }
    }
    out
}

/// Moves the rows of a contained resource (extracted as if it stood
/// alone, with `rows_of` below) into `out`: renumbered to `#T` pids and
/// its position as `grp`; composite rows (`grp` ≠ 0) dropped.
pub fn append_rows(
    out: &mut IndexRows,
    map: &HashMap<i64, i64>,
    rtype: &str,
    position: i64,
    local_id: &str,
    rows: IndexRows,
) {
    fn moved<T>(
        rows: Vec<T>,
        map: &HashMap<i64, i64>,
        pos: i64,
        key: impl Fn(&mut T) -> (&mut i64, &mut i64),
    ) -> Vec<T> {
        rows.into_iter()
            .filter_map(|mut r| {
                let (pid, grp) = key(&mut r);
                if *grp != 0 {
                    return None;
                }
                *pid = *map.get(pid)?;
                *grp = pos;
                Some(r)
            })
            .collect()
    }
    let p = position;
    out.strings
        .extend(moved(rows.strings, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.tokens
        .extend(moved(rows.tokens, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.dates
        .extend(moved(rows.dates, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.numbers
        .extend(moved(rows.numbers, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.quantities
        .extend(moved(rows.quantities, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.references
        .extend(moved(rows.references, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.uris
        .extend(moved(rows.uris, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.positions
        .extend(moved(rows.positions, map, p, |r| (&mut r.pid, &mut r.grp)));
    out.tokens.push(crate::store::index::TokenRow {
        pid: contained_pid(rtype, "_id"),
        grp: position,
        system: String::new(),
        code: local_id.to_string(),
    });
}

/// Why a filter cannot be evaluated inside contained resources (named in
/// the error the caller returns), or the filter on `rtype`'s contained
/// rows (`map` from `pid_map`).
pub fn to_contained(
    f: &Filter,
    rtype: &str,
    map: &HashMap<i64, i64>,
) -> Result<Filter, &'static str> {
    let remap = |pids: &[i64]| -> Result<Vec<i64>, &'static str> {
        pids.iter()
            .map(|p| map.get(p).copied().ok_or("its parameter"))
            .collect()
    };
    Ok(match f {
        Filter::Ids(ids) => Filter::Index {
            table: Table::Token,
            pids: vec![contained_pid(rtype, "_id")],
            alts: ids
                .iter()
                .map(|id| Cond::Token {
                    system: None,
                    code: Some(id.clone()),
                })
                .collect(),
            negate: false,
        },
        Filter::Index {
            table,
            pids,
            alts,
            negate,
        } => {
            if pids.is_empty() {
                return Err("_content");
            }
            Filter::Index {
                table: *table,
                pids: remap(pids)?,
                alts: alts.clone(),
                negate: *negate,
            }
        }
        Filter::Missing {
            table,
            pids,
            missing,
        } => Filter::Missing {
            table: *table,
            pids: remap(pids)?,
            missing: *missing,
        },
        Filter::Or(groups) => Filter::Or(
            groups
                .iter()
                .map(|g| g.iter().map(|f| to_contained(f, rtype, map)).collect())
                .collect::<Result<_, _>>()?,
        ),
        Filter::Either(parts) => Filter::Either(
            parts
                .iter()
                .map(|f| to_contained(f, rtype, map))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Nothing => Filter::Nothing,
        Filter::Composite(_) => return Err("composite parameters"),
        Filter::Has { .. } => return Err("_has"),
        Filter::List { .. } => return Err("_list"),
        Filter::LastUpdated(_) => return Err("_lastUpdated"),
        Filter::Types(_) | Filter::NotTypes(_) => return Err("_type"),
        Filter::Contained { .. } => return Err("_contained"),
    })
}
