//! Search index rows: the typed values of a resource's search parameters,
//! written with each version (replacing the previous version's rows) and
//! read by the search queries in `query.rs`.
//!
//! Every row names its parameter by `pid`, a stable number derived from the
//! resource type and the parameter code (see `search::registry`), and
//! carries `grp`: 0, or for the components of a composite parameter the
//! number n of the item they were taken from (the first component n, the
//! others -n), so that `code-value-quantity` can ask for a code and a value
//! of the same component. The value indexes hold the rows with `grp >= 0`.

/// Table names, in the order rows are written.
pub const TABLES: [&str; 8] = [
    "sp_string",
    "sp_token",
    "sp_date",
    "sp_number",
    "sp_quantity",
    "sp_reference",
    "sp_uri",
    "sp_position",
];

/// The index of `sp_position` in `TABLES`: only Locations have rows there,
/// so its INSERT is left out of writes without any.
const POSITION: usize = 7;

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
/// A point on the earth (`near`): degrees, and the unit vector for the
/// great-circle test.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionRow {
    pub pid: i64,
    pub grp: i64,
    pub lat: f64,
    pub lon: f64,
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl PositionRow {
    pub fn new(pid: i64, grp: i64, lat: f64, lon: f64) -> PositionRow {
        let (phi, lambda) = (lat.to_radians(), lon.to_radians());
        PositionRow {
            pid,
            grp,
            lat,
            lon,
            x: phi.cos() * lambda.cos(),
            y: phi.cos() * lambda.sin(),
            z: phi.sin(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexRows {
    pub strings: Vec<StringRow>,
    pub tokens: Vec<TokenRow>,
    pub dates: Vec<DateRow>,
    pub numbers: Vec<NumberRow>,
    pub quantities: Vec<QuantityRow>,
    pub references: Vec<ReferenceRow>,
    pub uris: Vec<UriRow>,
    pub positions: Vec<PositionRow>,
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
            + self.positions.len()
    }

    /// The length of each table's rows, to go back to with `truncate`.
    pub fn mark(&self) -> [usize; 8] {
        [
            self.strings.len(),
            self.tokens.len(),
            self.dates.len(),
            self.numbers.len(),
            self.quantities.len(),
            self.references.len(),
            self.uris.len(),
            self.positions.len(),
        ]
    }

    /// Drops the rows added since `mark` was taken.
    pub fn truncate(&mut self, mark: [usize; 8]) {
        self.strings.truncate(mark[0]);
        self.tokens.truncate(mark[1]);
        self.dates.truncate(mark[2]);
        self.numbers.truncate(mark[3]);
        self.quantities.truncate(mark[4]);
        self.references.truncate(mark[5]);
        self.uris.truncate(mark[6]);
        self.positions.truncate(mark[7]);
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
        dedup_by(&mut self.positions, |r| {
            (r.pid, r.grp, r.lat.to_bits(), r.lon.to_bits())
        });
    }
}

use serde_json::{json, Value};

use super::db::{Conn, Dialect, Param, SqlBuilder};
use super::StoreError;

/// How a JSON value is read into a column.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Text,
}

/// The value columns of each table (after `rid, tenant`), in `TABLES` order.
const COLUMNS: [&[(&str, Kind)]; 8] = [
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("norm", Kind::Text),
        ("exact", Kind::Text),
    ],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("system", Kind::Text),
        ("code", Kind::Text),
    ],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("lo", Kind::Int),
        ("hi", Kind::Int),
    ],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("lo", Kind::Float),
        ("hi", Kind::Float),
    ],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("system", Kind::Text),
        ("code", Kind::Text),
        ("lo", Kind::Float),
        ("hi", Kind::Float),
        ("canon_unit", Kind::Text),
        ("canon_lo", Kind::Float),
        ("canon_hi", Kind::Float),
    ],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("ttype", Kind::Text),
        ("tid", Kind::Text),
        ("tversion", Kind::Text),
        ("url", Kind::Text),
    ],
    &[("pid", Kind::Int), ("grp", Kind::Int), ("uri", Kind::Text)],
    &[
        ("pid", Kind::Int),
        ("grp", Kind::Int),
        ("lat", Kind::Float),
        ("lon", Kind::Float),
        ("x", Kind::Float),
        ("y", Kind::Float),
        ("z", Kind::Float),
    ],
];

/// JSON has no infinities: open ranges are stored as the largest finite
/// values, which compare the same way.
fn finite(v: f64) -> f64 {
    v.clamp(f64::MIN, f64::MAX)
}

/// Each table's rows as column values (after `rid` and `tenant`), in
/// `TABLES` order.
fn row_params(rows: &IndexRows) -> [Vec<Vec<Param>>; 8] {
    fn arr<T>(rows: &[T], f: impl Fn(&T) -> Vec<Param>) -> Vec<Vec<Param>> {
        rows.iter().map(f).collect()
    }
    let int = Param::Int;
    let float = |v: f64| Param::Float(finite(v));
    let text = |v: &String| Param::Text(v.clone());
    [
        arr(&rows.strings, |r| {
            vec![int(r.pid), int(r.grp), text(&r.norm), text(&r.exact)]
        }),
        arr(&rows.tokens, |r| {
            vec![int(r.pid), int(r.grp), text(&r.system), text(&r.code)]
        }),
        arr(&rows.dates, |r| {
            vec![int(r.pid), int(r.grp), int(r.lo), int(r.hi)]
        }),
        arr(&rows.numbers, |r| {
            vec![int(r.pid), int(r.grp), float(r.lo), float(r.hi)]
        }),
        arr(&rows.quantities, |r| {
            vec![
                int(r.pid),
                int(r.grp),
                text(&r.system),
                text(&r.code),
                float(r.lo),
                float(r.hi),
                text(&r.canon_unit),
                float(r.canon_lo),
                float(r.canon_hi),
            ]
        }),
        arr(&rows.references, |r| {
            vec![
                int(r.pid),
                int(r.grp),
                text(&r.ttype),
                text(&r.tid),
                text(&r.tversion),
                text(&r.url),
            ]
        }),
        arr(&rows.uris, |r| vec![int(r.pid), int(r.grp), text(&r.uri)]),
        arr(&rows.positions, |r| {
            vec![
                int(r.pid),
                int(r.grp),
                float(r.lat),
                float(r.lon),
                float(r.x),
                float(r.y),
                float(r.z),
            ]
        }),
    ]
}

/// Each table's rows as JSON arrays of column values, in `TABLES` order.
fn row_values(rows: &IndexRows) -> [Vec<Value>; 8] {
    row_params(rows).map(|table| {
        table
            .into_iter()
            .map(|row| Value::Array(row.into_iter().map(param_json).collect()))
            .collect()
    })
}

fn param_json(p: Param) -> Value {
    match p {
        Param::Int(v) => json!(v),
        Param::Float(v) => json!(v),
        Param::Text(v) => Value::String(v),
        Param::Bytes(_) | Param::Null => Value::Null,
    }
}

/// SQLite's writer (`Conn::Direct`): the index rows of several resources
/// (each with its `rid`), one prepared INSERT per table run once per row.
/// Each row binds its values directly; building and parsing one JSON array
/// per table cost more than the inserts themselves saved in round trips,
/// which the writer no longer makes.
pub async fn insert_each(
    conn: &mut Conn<'_>,
    tenant: i64,
    resources: &[(i64, &IndexRows)],
) -> Result<(), StoreError> {
    let mut tables: [Vec<Vec<Param>>; 8] = Default::default();
    for (rid, rows) in resources {
        for (i, table) in row_params(rows).into_iter().enumerate() {
            tables[i].extend(table.into_iter().map(|mut row| {
                row.splice(0..0, [Param::Int(*rid), Param::Int(tenant)]);
                row
            }));
        }
    }
    for (i, rows) in tables.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        conn.execute_each(&insert_each_sql()[i], rows).await?;
    }
    Ok(())
}

/// Each table's one-row INSERT (`insert_each`), built once.
fn insert_each_sql() -> &'static [String; 8] {
    static SQL: std::sync::OnceLock<[String; 8]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        std::array::from_fn(|i| {
            let names: Vec<&str> = COLUMNS[i].iter().map(|(n, _)| *n).collect();
            let placeholders: Vec<String> =
                (1..=names.len() + 2).map(|n| format!("${n}")).collect();
            format!(
                "INSERT OR IGNORE INTO {} (rid, tenant, {}) VALUES ({})",
                TABLES[i],
                names.join(", "),
                placeholders.join(", ")
            )
        })
    })
}

/// SQL that removes the index rows of the resource `rid` (an SQL
/// expression), one statement per table.
pub fn deletes(rid: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| format!("DELETE FROM {t} WHERE rid = {rid}"))
        .collect()
}

/// One INSERT per table of the resource `rid` (an SQL expression: a
/// placeholder or a subquery), each reading its rows from one bound JSON
/// array. The SQL text depends only on the placeholders, so the databases
/// prepare it once and reuse it, whatever the number of rows; a resource
/// with 100,000 index rows binds three parameters per table like any other.
pub fn inserts(
    b: &mut SqlBuilder,
    dialect: Dialect,
    rid: &str,
    tenant: i64,
    rows: &IndexRows,
) -> Vec<String> {
    let tenant = b.bind(Param::Int(tenant));
    row_values(rows)
        .into_iter()
        .enumerate()
        .filter(|(i, rows)| *i != POSITION || !rows.is_empty())
        .map(|(i, rows)| {
            let json = b.bind(Param::Text(Value::Array(rows).to_string()));
            insert_sql(dialect, i, RidFrom::Expr(rid), &tenant, &json)
        })
        .collect()
}

/// Where the index rows of `inserts_many` take their rid from.
#[derive(Clone, Copy)]
pub enum RidFrom<'a> {
    /// An SQL expression (one resource).
    Expr(&'a str),
    /// The first value of each row.
    First,
    /// The relation named (a CTE with columns `ord` and `rid`), through
    /// the ordinal that is each row's first value.
    Ordinal(&'a str),
}

/// The index rows of several resources (each with its `rid`, or with its
/// ordinal for `RidFrom::Ordinal`), one INSERT per table that has rows:
/// each element of a table's bound JSON array is `[rid, columns...]`.
pub fn inserts_many(
    b: &mut SqlBuilder,
    dialect: Dialect,
    tenant: i64,
    resources: &[(i64, &IndexRows)],
    rid_from: RidFrom<'_>,
) -> Vec<String> {
    let mut data: [Vec<Value>; 8] = Default::default();
    for (rid, rows) in resources {
        for (i, table) in row_values(rows).into_iter().enumerate() {
            data[i].extend(table.into_iter().map(|mut row| {
                if let Value::Array(cols) = &mut row {
                    cols.insert(0, json!(rid));
                }
                row
            }));
        }
    }
    let tenant = b.bind(Param::Int(tenant));
    data.into_iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(i, rows)| {
            let json = b.bind(Param::Text(Value::Array(rows).to_string()));
            insert_sql(dialect, i, rid_from, &tenant, &json)
        })
        .collect()
}

/// The INSERT of table `TABLES[i]` from the JSON array `json`.
fn insert_sql(dialect: Dialect, i: usize, rid: RidFrom<'_>, tenant: &str, json: &str) -> String {
    let column = |n: usize, kind: Kind| match dialect {
        Dialect::Sqlite => format!("j.value ->> {n}"),
        Dialect::Postgres => match kind {
            Kind::Int => format!("(j ->> {n})::bigint"),
            Kind::Float => format!("(j ->> {n})::float8"),
            Kind::Text => format!("(j ->> {n})"),
        },
    };
    let (rid_sql, first) = match rid {
        RidFrom::Expr(rid) => (rid.to_string(), 0),
        RidFrom::First => (column(0, Kind::Int), 1),
        RidFrom::Ordinal(cte) => (format!("{cte}.rid"), 1),
    };
    let names: Vec<&str> = COLUMNS[i].iter().map(|(n, _)| *n).collect();
    let values: Vec<String> = COLUMNS[i]
        .iter()
        .enumerate()
        .map(|(n, (_, kind))| column(first + n, *kind))
        .collect();
    let mut source = match dialect {
        Dialect::Sqlite => format!("json_each({json}) j"),
        Dialect::Postgres => format!("jsonb_array_elements({json}::jsonb) j"),
    };
    if let RidFrom::Ordinal(cte) = rid {
        let ord = column(0, Kind::Int);
        source.push_str(&format!(" JOIN {cte} ON {cte}.ord = {ord}"));
    }
    // SQLite's tables are keyed on every column; a repeated row is one.
    let insert = match dialect {
        Dialect::Sqlite => "INSERT OR IGNORE",
        Dialect::Postgres => "INSERT",
    };
    format!(
        "{insert} INTO {} (rid, tenant, {}) SELECT {rid_sql}, {tenant}, {} FROM {source}",
        TABLES[i],
        names.join(", "),
        values.join(", ")
    )
}
