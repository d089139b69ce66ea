//! Search index rows: the typed values of a resource's search parameters,
//! written with each version (replacing the previous version's rows) and
//! read by the search queries in `query.rs`.
//!
//! Every row names its parameter by `pid`, a stable number derived from the
//! resource type and the parameter code (see `search::registry`), and
//! carries `grp`: 0, or for the components of a composite parameter the
//! number of the item they were taken from, so that `code-value-quantity`
//! can ask for a code and a value of the same component.

/// Table names, in the order rows are written.
pub const TABLES: [&str; 7] = [
    "sp_string",
    "sp_token",
    "sp_date",
    "sp_number",
    "sp_quantity",
    "sp_reference",
    "sp_uri",
];

#[derive(Debug, Clone, PartialEq)]
pub struct StringRow {
    pub pid: i64,
    pub grp: i64,
    /// Lower-cased, accents removed, whitespace collapsed.
    pub norm: String,
    pub exact: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRow {
    pub pid: i64,
    pub grp: i64,
    /// Empty when the value has no system.
    pub system: String,
    pub code: String,
}

/// A date, dateTime, instant or Period as the first and last microsecond it
/// covers (i64::MIN / i64::MAX for an open end).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateRow {
    pub pid: i64,
    pub grp: i64,
    pub lo: i64,
    pub hi: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumberRow {
    pub pid: i64,
    pub grp: i64,
    pub lo: f64,
    pub hi: f64,
}

/// A Quantity (or Range, Money): the value as given, and in UCUM canonical
/// units when the unit is UCUM and convertible.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityRow {
    pub pid: i64,
    pub grp: i64,
    pub system: String,
    /// The coded unit, or the unit text when there is no code.
    pub code: String,
    pub lo: f64,
    pub hi: f64,
    /// Canonical unit and bounds; empty unit when not convertible.
    pub canon_unit: String,
    pub canon_lo: f64,
    pub canon_hi: f64,
}

/// A reference: to a resource of this server (`ttype`/`tid`, and a version
/// when the reference names one), or by absolute URL / canonical (`url`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceRow {
    pub pid: i64,
    pub grp: i64,
    pub ttype: String,
    pub tid: String,
    pub tversion: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriRow {
    pub pid: i64,
    pub grp: i64,
    pub uri: String,
}

/// All index rows of one resource version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexRows {
    pub strings: Vec<StringRow>,
    pub tokens: Vec<TokenRow>,
    pub dates: Vec<DateRow>,
    pub numbers: Vec<NumberRow>,
    pub quantities: Vec<QuantityRow>,
    pub references: Vec<ReferenceRow>,
    pub uris: Vec<UriRow>,
}

impl IndexRows {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.strings.len()
            + self.tokens.len()
            + self.dates.len()
            + self.numbers.len()
            + self.quantities.len()
            + self.references.len()
            + self.uris.len()
    }

    /// Removes repeated rows (a code listed twice gives one row).
    pub fn dedup(&mut self) {
        fn dedup_by<T: Clone, K: Eq + std::hash::Hash>(rows: &mut Vec<T>, key: impl Fn(&T) -> K) {
            let mut seen = std::collections::HashSet::new();
            rows.retain(|r| seen.insert(key(r)));
        }
        dedup_by(&mut self.strings, |r| (r.pid, r.grp, r.exact.clone()));
        dedup_by(&mut self.tokens, |r| r.clone());
        dedup_by(&mut self.dates, |r| r.clone());
        dedup_by(&mut self.numbers, |r| {
            (r.pid, r.grp, r.lo.to_bits(), r.hi.to_bits())
        });
        dedup_by(&mut self.quantities, |r| {
            (
                r.pid,
                r.grp,
                r.system.clone(),
                r.code.clone(),
                r.lo.to_bits(),
                r.hi.to_bits(),
            )
        });
        dedup_by(&mut self.references, |r| r.clone());
        dedup_by(&mut self.uris, |r| r.clone());
    }
}

use super::db::{Param, SqlBuilder};

/// One table's rows as SQL parameters.
struct TableRows {
    table: &'static str,
    columns: &'static str,
    rows: Vec<Vec<Param>>,
}

fn text(s: &str) -> Param {
    Param::Text(s.to_string())
}

fn table_rows(rows: &IndexRows) -> Vec<TableRows> {
    let mut out = vec![
        TableRows {
            table: "sp_string",
            columns: "pid, grp, norm, exact",
            rows: rows
                .strings
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        text(&r.norm),
                        text(&r.exact),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_token",
            columns: "pid, grp, system, code",
            rows: rows
                .tokens
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        text(&r.system),
                        text(&r.code),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_date",
            columns: "pid, grp, lo, hi",
            rows: rows
                .dates
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        Param::Int(r.lo),
                        Param::Int(r.hi),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_number",
            columns: "pid, grp, lo, hi",
            rows: rows
                .numbers
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        Param::Float(r.lo),
                        Param::Float(r.hi),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_quantity",
            columns: "pid, grp, system, code, lo, hi, canon_unit, canon_lo, canon_hi",
            rows: rows
                .quantities
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        text(&r.system),
                        text(&r.code),
                        Param::Float(r.lo),
                        Param::Float(r.hi),
                        text(&r.canon_unit),
                        Param::Float(r.canon_lo),
                        Param::Float(r.canon_hi),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_reference",
            columns: "pid, grp, ttype, tid, tversion, url",
            rows: rows
                .references
                .iter()
                .map(|r| {
                    vec![
                        Param::Int(r.pid),
                        Param::Int(r.grp),
                        text(&r.ttype),
                        text(&r.tid),
                        text(&r.tversion),
                        text(&r.url),
                    ]
                })
                .collect(),
        },
        TableRows {
            table: "sp_uri",
            columns: "pid, grp, uri",
            rows: rows
                .uris
                .iter()
                .map(|r| vec![Param::Int(r.pid), Param::Int(r.grp), text(&r.uri)])
                .collect(),
        },
    ];
    out.retain(|t| !t.rows.is_empty());
    out
}

/// Rows per INSERT statement, so that no statement nears the databases'
/// parameter limits (32,766 on SQLite, 65,535 on PostgreSQL).
const ROWS_PER_INSERT: usize = 1000;

/// SQL that removes the index rows of the resource `rid` (an SQL
/// expression), as `;`-terminated statements (SQLite) or as CTE items.
pub fn deletes(rid: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| format!("DELETE FROM {t} WHERE rid = {rid}"))
        .collect()
}

/// INSERT statements for `rows` of the resource `rid` (an SQL expression:
/// a placeholder or a subquery), binding every value in `b`.
pub fn inserts(b: &mut SqlBuilder, rid: &str, tenant: i64, rows: &IndexRows) -> Vec<String> {
    let tenant = b.bind(Param::Int(tenant));
    let mut statements = Vec::new();
    for t in table_rows(rows) {
        for chunk in t.rows.chunks(ROWS_PER_INSERT) {
            let mut sql = format!(
                "INSERT INTO {} (rid, tenant, {}) VALUES ",
                t.table, t.columns
            );
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                sql.push_str(rid);
                sql.push_str(", ");
                sql.push_str(&tenant);
                for p in row {
                    sql.push_str(", ");
                    sql.push_str(&b.bind(p.clone()));
                }
                sql.push(')');
            }
            statements.push(sql);
        }
    }
    statements
}
