//! Parsing a search request (http://hl7.org/fhir/R4/search.html) into a
//! typed plan: every parameter is looked up in the registry, every value
//! parsed into typed alternatives, once. Errors name the parameter.

use super::codes::{CodeSet, CodeSource};
use super::contained;
use super::extract::{derived_pid, parse_reference};
use super::normalize::normalize;
use super::registry::{ParamType, Registry, SearchParam};
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::range_micros;
use crate::fhir::schema::schema;
use crate::store::index::PositionRow;
use crate::store::query::{Cmp, Cond, Filter, NearArea, QtyUnit, SortBy, SortKey, Table, UriMode};

/// Parameters that shape the result rather than select resources.
pub const RESULT_PARAMETERS: &[&str] = &[
    "_sort",
    "_count",
    "_total",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_contained",
    "_containedType",
    "_format",
    "_pretty",
    "_cursor",
    "_type",
];

/// Deepest chain (`a.b.c.d`) or `_has` nesting accepted.
pub const MAX_CHAIN_DEPTH: usize = 4;

/// `_include` / `_revinclude`.
#[derive(Debug, Clone, PartialEq)]
pub struct IncludeSpec {
    /// The type whose references are followed (`Observation` in
    /// `Observation:subject`).
    pub source_type: String,
    /// The reference parameters (every one of the type for `*`).
    pub pids: Vec<i64>,
    /// Restricts the target type (`Observation:subject:Patient`).
    pub target_type: Option<String>,
    pub iterate: bool,
    /// As written, for the self link.
    pub text: String,
}

/// Table of a parameter type's index rows.
pub fn table_of(ptype: ParamType) -> Option<Table> {
    Some(match ptype {
        ParamType::String => Table::String,
        ParamType::Token => Table::Token,
        ParamType::Date => Table::Date,
        ParamType::Number => Table::Number,
        ParamType::Quantity => Table::Quantity,
        ParamType::Reference => Table::Reference,
        ParamType::Uri => Table::Uri,
        ParamType::Composite | ParamType::Special => return None,
    })
}

/// Splits on unescaped `sep`, removing the escape of `sep` only
/// (`\,` in a comma split); other escapes stay for the next split.
pub fn split_escaped(value: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) if next == sep => parts.last_mut().unwrap().push(next),
                Some(next) => {
                    parts.last_mut().unwrap().push('\\');
                    parts.last_mut().unwrap().push(next);
                }
                None => parts.last_mut().unwrap().push('\\'),
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Removes the remaining escapes (`\,` `\|` `\$` `\\`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn bad(name: &str, message: impl std::fmt::Display) -> FhirError {
    FhirError::invalid(format!("search parameter `{name}`: {message}"))
}

/// Parses the criteria of one parameter (`name` with its modifier and
/// chain, e.g. `subject:Patient.name:exact`) on resources of `rtype`.
pub fn parse_filter(
    reg: &Registry,
    rtype: &str,
    name: &str,
    value: &str,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    // Each `.` is one chain link and each `_has:` one reverse link; the
    // check on the whole name names the parameter as the client wrote it.
    let links = name.matches('.').count() + name.matches("_has:").count();
    if depth > MAX_CHAIN_DEPTH || (depth == 0 && links > MAX_CHAIN_DEPTH) {
        return Err(bad(
            name,
            format!("chains and _has nest at most {MAX_CHAIN_DEPTH} deep (this is {links} deep)"),
        ));
    }
    if let Some(rest) = name.strip_prefix("_has:") {
        return parse_has(reg, rtype, name, rest, value, base_url, depth);
    }
    // `param[:modifier][.chain]`: the chain starts at the first dot after
    // the parameter code.
    let (head, chain) = match name.split_once('.') {
        Some((h, c)) => (h, Some(c)),
        None => (name, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    if value.is_empty() {
        return Err(bad(name, "has no value"));
    }
    match code {
        "_id" => {
            if let Some(m) = modifier {
                return Err(bad(
                    name,
                    format!("modifier `:{m}` is not supported on _id"),
                ));
            }
            let ids: Vec<String> = split_escaped(value, ',')
                .iter()
                .map(|v| unescape(v))
                .collect();
            if ids.iter().any(String::is_empty) {
                return Err(bad(name, "has an empty value"));
            }
            return Ok(Filter::Ids(ids));
        }
        "_lastUpdated" => {
            if let Some(m) = modifier {
                return Err(bad(
                    name,
                    format!("modifier `:{m}` is not supported on _lastUpdated"),
                ));
            }
            let mut alts = Vec::new();
            for v in split_escaped(value, ',') {
                let (cmp, rest) = prefix(&v);
                let (lo, hi) = range_micros(rest).ok_or_else(|| {
                    bad(name, format!("`{v}` is not a date, dateTime or instant"))
                })?;
                alts.push((cmp, lo, hi));
            }
            return Ok(Filter::LastUpdated(alts));
        }
        "_list" => {
            return Ok(Filter::List {
                list_pid: super::pid("List", "item"),
                list_id: unescape(value),
            })
        }
        // Text searches: words anywhere in the narrative (`_text`) or in
        // any string value of the resource (`_content`).
        "_text" | "_content" => {
            if let Some(m) = modifier {
                return Err(bad(
                    name,
                    format!("modifier `:{m}` is not supported on {code}"),
                ));
            }
            let pids = if code == "_text" {
                vec![super::pid("Resource", "_text")]
            } else {
                Vec::new()
            };
            let alts = split_escaped(value, ',')
                .iter()
                .map(|v| Cond::StrContains(normalize(&unescape(v))))
                .collect();
            return Ok(Filter::Index {
                table: Table::String,
                pids,
                alts,
                negate: false,
            });
        }
        "_filter" => {
            if let Some(m) = modifier {
                return Err(bad(
                    name,
                    format!("modifier `:{m}` is not supported on _filter"),
                ));
            }
            return super::filter::to_filter(reg, rtype, value, base_url, depth);
        }
        "_query" => {
            return Err(FhirError::not_supported(format!(
                "search parameter `{code}` is not supported"
            )))
        }
        _ => {}
    }
    let param = reg.get(rtype, code).ok_or_else(|| {
        FhirError::invalid(format!("unknown search parameter `{code}` for {rtype}"))
    })?;
    if let Some(chain) = chain {
        return parse_chain(reg, param, name, modifier, chain, value, base_url, depth);
    }
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(name, "`:missing` takes true or false")),
        };
        return Ok(match (param.ptype, table_of(param.ptype)) {
            (_, Some(table)) => Filter::Missing {
                table,
                pids: vec![param.pid],
                missing,
            },
            (ParamType::Composite, _) => {
                let c = &param.components[0];
                Filter::Missing {
                    table: table_of(c.ptype).unwrap_or(Table::Token),
                    pids: vec![c.pid],
                    missing,
                }
            }
            _ => return Err(bad(name, "`:missing` is not supported here")),
        });
    }
    let alternatives = split_escaped(value, ',');
    if alternatives.iter().any(String::is_empty) {
        return Err(bad(name, "has an empty value"));
    }
    match param.ptype {
        ParamType::String => string_filter(param, name, modifier, &alternatives),
        ParamType::Token => token_filter(param, name, modifier, &alternatives),
        ParamType::Date => {
            no_modifier(name, modifier)?;
            let alts = alternatives
                .iter()
                .map(|v| date_cond(name, v))
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Date, param.pid, alts))
        }
        ParamType::Number => {
            no_modifier(name, modifier)?;
            let alts = alternatives
                .iter()
                .map(|v| {
                    let (cmp, rest) = prefix(v);
                    let (value, lo, hi) = number(name, rest)?;
                    Ok(Cond::Number { cmp, value, lo, hi })
                })
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Number, param.pid, alts))
        }
        ParamType::Quantity => {
            no_modifier(name, modifier)?;
            let alts = alternatives
                .iter()
                .map(|v| quantity_cond(name, v))
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Quantity, param.pid, alts))
        }
        ParamType::Reference => reference_filter(param, name, modifier, &alternatives, base_url),
        ParamType::Uri => {
            let mode = match modifier {
                None => UriMode::Eq,
                Some("below") => UriMode::Below,
                Some("above") => UriMode::Above,
                Some(m) => {
                    return Err(bad(
                        name,
                        format!("modifier `:{m}` is not supported on uri parameters"),
                    ))
                }
            };
            let alts = alternatives
                .iter()
                .map(|v| Cond::Uri {
                    value: unescape(v),
                    mode,
                })
                .collect();
            Ok(index(Table::Uri, param.pid, alts))
        }
        ParamType::Composite => {
            no_modifier(name, modifier)?;
            composite_filter(param, name, &alternatives, base_url)
        }
        ParamType::Special if param.code == "near" && param.rtype == "Location" => {
            no_modifier(name, modifier)?;
            let alts = alternatives
                .iter()
                .map(|v| near_cond(name, v))
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Position, param.pid, alts))
        }
        ParamType::Special => Err(FhirError::not_supported(format!(
            "search parameter `{code}` ({}) is not supported",
            param.url
        ))),
    }
}

/// The mean earth radius (km) of the great-circle distances of `near`.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The distance `near` uses when the search gives none (km).
pub const NEAR_DEFAULT_KM: f64 = 10.0;

/// `near=latitude|longitude|distance|units`
/// (http://hl7.org/fhir/R4/location.html#positional): degrees (WGS84);
/// the distance in `units` (UCUM, a length; `km` when absent), or
/// `NEAR_DEFAULT_KM` when absent.
fn near_cond(name: &str, v: &str) -> FhirResult<Cond> {
    let parts: Vec<String> = split_escaped(v, '|').iter().map(|p| unescape(p)).collect();
    if parts.len() < 2 || parts.len() > 4 {
        return Err(bad(
            name,
            format!("`{v}` is not latitude|longitude|distance|units"),
        ));
    }
    let degrees = |s: &str, what: &str, limit: f64| -> FhirResult<f64> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && d.abs() <= limit)
            .ok_or_else(|| {
                bad(
                    name,
                    format!("`{s}` is not a {what} (−{limit} to {limit} degrees)"),
                )
            })
    };
    let lat = degrees(&parts[0], "latitude", 90.0)?;
    let lon = degrees(&parts[1], "longitude", 180.0)?;
    // The unit names the distance asked for and the distances reported;
    // without a distance the default radius applies, in whatever unit.
    let mut unit = km_unit();
    let metres = match parts.get(3).map(|u| u.trim()).filter(|u| !u.is_empty()) {
        None => 1000.0,
        Some(u) => match crate::ucum::canonical(u) {
            Some(c) if c.unit == "m" => {
                unit = (u.to_string(), c.factor);
                c.factor
            }
            _ => {
                return Err(bad(
                    name,
                    format!("`{u}` is not a UCUM unit of length (km, m, [mi_i], ...)"),
                ))
            }
        },
    };
    let distance = match parts.get(2).map(|d| d.trim()).filter(|d| !d.is_empty()) {
        None => NEAR_DEFAULT_KM,
        Some(d) => {
            let (cmp, d) = prefix(d);
            if !matches!(cmp, Cmp::Eq | Cmp::Le | Cmp::Lt) {
                return Err(bad(name, "the distance takes no prefix but le"));
            }
            let value = d
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| bad(name, format!("`{d}` is not a distance")))?;
            value * metres / 1000.0
        }
    };
    let mut area = near_area(lat, lon, distance);
    area.unit = unit;
    Ok(Cond::Near(Box::new(area)))
}

fn km_unit() -> (String, f64) {
    ("km".to_string(), 1000.0)
}

/// The great-circle distance (km) between two points given as unit
/// vectors (`PositionRow`'s x, y, z), on the sphere `near` searches.
pub fn great_circle_km(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let dot = a.0 * b.0 + a.1 * b.1 + a.2 * b.2;
    let cross = (a.1 * b.2 - a.2 * b.1)
        .hypot(a.2 * b.0 - a.0 * b.2)
        .hypot(a.0 * b.1 - a.1 * b.0);
    // atan2 stays accurate for near and antipodal points alike.
    cross.atan2(dot) * EARTH_RADIUS_KM
}

/// The area within `km` of (`lat`, `lon`) (the distance returned in km).
pub fn near_area(lat: f64, lon: f64, km: f64) -> NearArea {
    let angle = (km / EARTH_RADIUS_KM).min(std::f64::consts::PI);
    let degrees = angle.to_degrees();
    let lat_range = ((lat - degrees).max(-90.0), (lat + degrees).min(90.0));
    // Longitudes: the box widens towards the poles; when it reaches a pole
    // (or spans half the earth) every longitude is in.
    let lon_ranges = if lat_range.0 <= -90.0 || lat_range.1 >= 90.0 || degrees >= 90.0 {
        Vec::new()
    } else {
        let half = (angle.sin() / lat.to_radians().cos())
            .min(1.0)
            .asin()
            .to_degrees();
        let (lo, hi) = (lon - half, lon + half);
        if lo < -180.0 {
            vec![(lo + 360.0, 180.0), (-180.0, hi)]
        } else if hi > 180.0 {
            vec![(lo, 180.0), (-180.0, hi - 360.0)]
        } else {
            vec![(lo, hi)]
        }
    };
    let p = PositionRow::new(0, 0, lat, lon);
    NearArea {
        lat: lat_range,
        lon: lon_ranges,
        point: (p.x, p.y, p.z),
        // A hair of slack for rounding: a point at exactly the distance is in.
        min_dot: angle.cos() - 1e-12,
        unit: km_unit(),
    }
}

fn index(table: Table, pid: i64, alts: Vec<Cond>) -> Filter {
    Filter::Index {
        table,
        pids: vec![pid],
        alts,
        negate: false,
    }
}

fn no_modifier(name: &str, modifier: Option<&str>) -> FhirResult<()> {
    match modifier {
        None => Ok(()),
        Some(m) => Err(bad(
            name,
            format!("modifier `:{m}` is not supported for this parameter type"),
        )),
    }
}

/// A comparison prefix and the rest of the value.
pub fn prefix(v: &str) -> (Cmp, &str) {
    let cmp = match v.get(..2) {
        Some("eq") => Cmp::Eq,
        Some("ne") => Cmp::Ne,
        Some("gt") => Cmp::Gt,
        Some("lt") => Cmp::Lt,
        Some("ge") => Cmp::Ge,
        Some("le") => Cmp::Le,
        Some("sa") => Cmp::Sa,
        Some("eb") => Cmp::Eb,
        Some("ap") => Cmp::Ap,
        _ => return (Cmp::Eq, v),
    };
    (cmp, &v[2..])
}

fn date_cond(name: &str, v: &str) -> FhirResult<Cond> {
    let (cmp, rest) = prefix(v);
    let (lo, hi) = range_micros(rest)
        .ok_or_else(|| bad(name, format!("`{v}` is not a date, dateTime or instant")))?;
    Ok(Cond::Date { cmp, lo, hi })
}

/// A number with the range its precision implies (`100` → 99.5..100.5,
/// `1.50` → 1.495..1.505, `1e2` → 50..150).
fn number(name: &str, s: &str) -> FhirResult<(f64, f64, f64)> {
    let numeric = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    let value: f64 = s
        .parse()
        .ok()
        .filter(|v: &f64| numeric && v.is_finite())
        .ok_or_else(|| bad(name, format!("`{s}` is not a number")))?;
    let lower = s.to_ascii_lowercase();
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (lower.as_str(), 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len() as i32);
    let half = 0.5 * 10f64.powi(exponent - decimals);
    Ok((value, value - half, value + half))
}

fn quantity_cond(name: &str, v: &str) -> FhirResult<Cond> {
    let parts = split_escaped(v, '|');
    let (cmp, num) = prefix(&parts[0]);
    let (value, lo, hi) = number(name, num)?;
    let unit = match parts.as_slice() {
        [_] => QtyUnit::Any,
        [_, system, code] => {
            let (system, code) = (unescape(system), unescape(code));
            match super::units::canonical(&system, &code) {
                Some((canonical, factor)) => {
                    return Ok(Cond::Quantity {
                        cmp,
                        value: value * factor,
                        lo: lo * factor,
                        hi: hi * factor,
                        unit: QtyUnit::Canonical(canonical),
                    })
                }
                None if code.is_empty() => QtyUnit::Any,
                None => QtyUnit::Code {
                    system: (!system.is_empty()).then_some(system),
                    code,
                },
            }
        }
        _ => {
            return Err(bad(
                name,
                format!("`{v}` is not a quantity (number|system|code)"),
            ))
        }
    };
    Ok(Cond::Quantity {
        cmp,
        value,
        lo,
        hi,
        unit,
    })
}

fn string_filter(
    param: &SearchParam,
    name: &str,
    modifier: Option<&str>,
    alts: &[String],
) -> FhirResult<Filter> {
    let make: fn(String) -> Cond = match modifier {
        None => |v| Cond::StrPrefix(normalize(&v)),
        Some("exact") => |v| Cond::StrExact {
            norm: normalize(&v),
            exact: v,
        },
        Some("contains") => |v| Cond::StrContains(normalize(&v)),
        Some(m) => {
            return Err(bad(
                name,
                format!("modifier `:{m}` is not supported on string parameters"),
            ))
        }
    };
    Ok(index(
        Table::String,
        param.pid,
        alts.iter().map(|v| make(unescape(v))).collect(),
    ))
}

fn token_cond(v: &str) -> Cond {
    let parts = split_escaped(v, '|');
    match parts.as_slice() {
        [code] => Cond::Token {
            system: None,
            code: Some(unescape(code)),
        },
        [system, code] => Cond::Token {
            system: Some(unescape(system)),
            code: (!code.is_empty()).then(|| unescape(code)),
        },
        _ => Cond::Token {
            system: Some(unescape(&parts[0])),
            code: Some(
                parts[1..]
                    .iter()
                    .map(|p| unescape(p))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
        },
    }
}

fn token_filter(
    param: &SearchParam,
    name: &str,
    modifier: Option<&str>,
    alts: &[String],
) -> FhirResult<Filter> {
    match modifier {
        None | Some("not") => Ok(Filter::Index {
            table: Table::Token,
            pids: vec![param.pid],
            alts: alts.iter().map(|v| token_cond(v)).collect(),
            negate: modifier.is_some(),
        }),
        Some("text") => Ok(index(
            Table::String,
            derived_pid(param, "text"),
            alts.iter()
                .map(|v| Cond::StrPrefix(normalize(&unescape(v))))
                .collect(),
        )),
        Some("of-type") => {
            let conds = alts
                .iter()
                .map(|v| {
                    let parts = split_escaped(v, '|');
                    match parts.as_slice() {
                        [system, code, value] if !code.is_empty() && !value.is_empty() => {
                            Ok(Cond::Token {
                                system: (!system.is_empty()).then(|| unescape(system)),
                                code: Some(format!("{}|{}", unescape(code), unescape(value))),
                            })
                        }
                        _ => Err(bad(name, format!("`{v}` is not system|code|value"))),
                    }
                })
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Token, derived_pid(param, "of-type"), conds))
        }
        Some(m @ ("in" | "not-in")) => Ok(Filter::Index {
            table: Table::Token,
            pids: vec![param.pid],
            alts: alts
                .iter()
                .map(|v| Cond::Codes(CodeSet::new(name, CodeSource::ValueSet(unescape(v)))))
                .collect(),
            negate: m == "not-in",
        }),
        Some(m @ ("above" | "below")) => {
            let conds = alts
                .iter()
                .map(|v| {
                    let parts = split_escaped(v, '|');
                    match parts.as_slice() {
                        [system, code] if !system.is_empty() && !code.is_empty() => {
                            let (system, code) = (unescape(system), unescape(code));
                            Ok(Cond::Codes(CodeSet::new(name, if m == "below" {
                                CodeSource::Below { system, code }
                            } else {
                                CodeSource::Above { system, code }
                            })))
                        }
                        _ => Err(bad(
                            name,
                            format!("`:{m}` takes system|code (the code system decides what is {m} the code), not `{v}`"),
                        )),
                    }
                })
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Token, param.pid, conds))
        }
        Some(m) => Err(bad(
            name,
            format!("modifier `:{m}` is not supported on token parameters"),
        )),
    }
}

/// Resource types a reference parameter can point at (every type when the
/// definition names none, e.g. `Resource`).
pub(super) fn targets_of(param: &SearchParam) -> Vec<String> {
    if param.targets.is_empty() || param.targets.iter().any(|t| t == "Resource") {
        schema().resource_types().to_vec()
    } else {
        param.targets.clone()
    }
}

fn reference_cond(
    param: &SearchParam,
    name: &str,
    v: &str,
    only: Option<&str>,
    base_url: &str,
) -> FhirResult<Cond> {
    let v = unescape(v);
    if let Some(t) = only {
        if v.contains('/') {
            return Err(bad(
                name,
                format!("with `:{t}`, the value is an id, not `{v}`"),
            ));
        }
        return Ok(Cond::Reference {
            types: vec![t.to_string()],
            id: v,
            version: None,
        });
    }
    let (url, canonical_version) = match v.split_once('|') {
        Some((u, ver)) => (u, Some(ver.to_string())),
        None => (v.as_str(), None),
    };
    let parsed = parse_reference(url, base_url)
        .ok_or_else(|| bad(name, format!("`{v}` is not a reference")))?;
    if !parsed.tid.is_empty() {
        if !targets_of(param).contains(&parsed.ttype) {
            return Err(bad(
                name,
                format!("{} cannot refer to {}", param.code, parsed.ttype),
            ));
        }
        return Ok(Cond::Reference {
            types: vec![parsed.ttype],
            id: parsed.tid,
            version: (!parsed.tversion.is_empty()).then_some(parsed.tversion),
        });
    }
    if url.contains(':') {
        return Ok(Cond::RefUrl {
            url: url.to_string(),
            version: canonical_version,
        });
    }
    // A bare id: any allowed type.
    if !crate::fhir::primitive::is_id(url) {
        return Err(bad(name, format!("`{v}` is not a reference")));
    }
    Ok(Cond::Reference {
        types: Vec::new(),
        id: url.to_string(),
        version: None,
    })
}

fn reference_filter(
    param: &SearchParam,
    name: &str,
    modifier: Option<&str>,
    alts: &[String],
    base_url: &str,
) -> FhirResult<Filter> {
    match modifier {
        Some("identifier") => Ok(index(
            Table::Token,
            derived_pid(param, "identifier"),
            alts.iter().map(|v| token_cond(v)).collect(),
        )),
        Some(m @ ("above" | "below")) => Err(FhirError::not_supported(format!(
            "search parameter `{name}`: modifier `:{m}` is not supported on references"
        ))),
        Some(t) if schema().is_resource_type(t) => {
            if !targets_of(param).iter().any(|x| x == t) {
                return Err(bad(name, format!("{} cannot refer to {t}", param.code)));
            }
            let alts = alts
                .iter()
                .map(|v| reference_cond(param, name, v, Some(t), base_url))
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Reference, param.pid, alts))
        }
        Some(m) => Err(bad(
            name,
            format!("modifier `:{m}` is not supported on reference parameters"),
        )),
        None => {
            let alts = alts
                .iter()
                .map(|v| reference_cond(param, name, v, None, base_url))
                .collect::<FhirResult<_>>()?;
            Ok(index(Table::Reference, param.pid, alts))
        }
    }
}

/// `subject:Patient.name=x`, `patient.general-practitioner.name=x`.
#[allow(clippy::too_many_arguments)]
fn parse_chain(
    reg: &Registry,
    param: &SearchParam,
    name: &str,
    modifier: Option<&str>,
    chain: &str,
    value: &str,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    if param.ptype != ParamType::Reference {
        return Err(bad(
            name,
            format!(
                "`{}` is not a reference parameter, so it cannot be chained",
                param.code
            ),
        ));
    }
    let next_code = chain.split(['.', ':']).next().unwrap_or_default();
    let candidates: Vec<String> = match modifier {
        Some(t) if schema().is_resource_type(t) => vec![t.to_string()],
        Some(m) => return Err(bad(name, format!("modifier `:{m}` cannot be chained"))),
        None => targets_of(param),
    };
    let mut types = Vec::new();
    let mut filters_by_type = Vec::new();
    for t in &candidates {
        let known = next_code.starts_with('_') || reg.get(t, next_code).is_some();
        if !known {
            continue;
        }
        filters_by_type.push((
            t.clone(),
            parse_filter(reg, t, chain, value, base_url, depth + 1)?,
        ));
        types.push(t.clone());
    }
    if types.is_empty() {
        return Err(bad(
            name,
            format!(
                "no type that `{}` can refer to has a parameter `{next_code}`",
                param.code
            ),
        ));
    }
    // One chain condition per target type (their parameters differ), and
    // one per type through local references (`#id`) into the resource's
    // own contained resources (R4 search.html: "chained parameters will
    // be evaluated inside contained resources"), for the criteria a
    // contained resource is indexed for.
    let local_pid = derived_pid(param, contained::LOCAL_SUFFIX);
    let mut alts = Vec::new();
    let mut local = Vec::new();
    for (t, f) in filters_by_type {
        if let Ok(inner) = contained::to_contained(&f, &t, &contained::pid_map(reg, &t)) {
            local.push(Cond::LocalChain {
                pid: local_pid,
                types: vec![t.clone()],
                filters: vec![inner],
            });
        }
        alts.push(Cond::Chain {
            types: vec![t],
            filters: vec![f],
        });
    }
    let ordinary = index(Table::Reference, param.pid, alts);
    if local.is_empty() {
        return Ok(ordinary);
    }
    // Two filters, so that the ordinary chain keeps its plan (its index
    // probes by target id) beside the local one.
    Ok(Filter::Either(vec![
        ordinary,
        index(Table::Reference, local_pid, local),
    ]))
}

/// `_has:Observation:patient:code=1234` (after `_has:`).
fn parse_has(
    reg: &Registry,
    rtype: &str,
    name: &str,
    rest: &str,
    value: &str,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    let mut parts = rest.splitn(3, ':');
    let (Some(source), Some(link), Some(inner)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(
            name,
            "_has takes the form _has:Type:reference:parameter",
        ));
    };
    if !schema().is_resource_type(source) {
        return Err(bad(name, format!("`{source}` is not a resource type")));
    }
    let link_param = reg
        .get(source, link)
        .filter(|p| p.ptype == ParamType::Reference)
        .ok_or_else(|| {
            bad(
                name,
                format!("{source} has no reference parameter `{link}`"),
            )
        })?;
    if !targets_of(link_param).iter().any(|t| t == rtype) {
        return Err(bad(
            name,
            format!("{source}.{link} cannot refer to {rtype}"),
        ));
    }
    let inner = parse_filter(reg, source, inner, value, base_url, depth + 1)?;
    Ok(Filter::Has {
        rtype: source.to_string(),
        pids: vec![link_param.pid],
        filters: vec![inner],
    })
}

fn composite_filter(
    param: &SearchParam,
    name: &str,
    alts: &[String],
    base_url: &str,
) -> FhirResult<Filter> {
    let mut out = Vec::new();
    for v in alts {
        let values = split_escaped(v, '$');
        if values.len() != param.components.len() {
            return Err(bad(
                name,
                format!(
                    "`{v}` needs {} values separated by `$`",
                    param.components.len()
                ),
            ));
        }
        let mut parts = Vec::new();
        for (c, value) in param.components.iter().zip(&values) {
            let cond = match c.ptype {
                ParamType::Token => token_cond(value),
                ParamType::Quantity => quantity_cond(name, value)?,
                ParamType::Date => date_cond(name, value)?,
                ParamType::String => Cond::StrPrefix(normalize(&unescape(value))),
                ParamType::Number => {
                    let (cmp, rest) = prefix(value);
                    let (value, lo, hi) = number(name, rest)?;
                    Cond::Number { cmp, value, lo, hi }
                }
                ParamType::Reference => reference_cond(param, name, value, None, base_url)?,
                ParamType::Uri => Cond::Uri {
                    value: unescape(value),
                    mode: UriMode::Eq,
                },
                ParamType::Composite | ParamType::Special => {
                    return Err(bad(name, "unsupported composite component"))
                }
            };
            let table = table_of(c.ptype).unwrap_or(Table::Token);
            parts.push((table, c.pid, cond));
        }
        out.push(parts);
    }
    Ok(Filter::Composite(out))
}

/// `_sort=a,-b` for resources of `types`.
pub fn parse_sort(reg: &Registry, types: &[String], value: &str) -> FhirResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for item in value.split(',') {
        let (descending, code) = match item.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, item),
        };
        let by = match code {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            "" => return Err(bad("_sort", "has an empty key")),
            _ => {
                let mut pids = Vec::new();
                let mut table = None;
                let all;
                let types: &[String] = if types.is_empty() {
                    all = schema().resource_types().to_vec();
                    &all
                } else {
                    types
                };
                for t in types {
                    if let Some(p) = reg.get(t, code) {
                        let tb = table_of(p.ptype)
                            .ok_or_else(|| bad("_sort", format!("`{code}` is not sortable")))?;
                        if table.is_some_and(|x| x != tb) {
                            return Err(bad(
                                "_sort",
                                format!("`{code}` has different types across the types searched"),
                            ));
                        }
                        table = Some(tb);
                        if !pids.contains(&p.pid) {
                            pids.push(p.pid);
                        }
                    }
                }
                let table =
                    table.ok_or_else(|| bad("_sort", format!("unknown parameter `{code}`")))?;
                SortBy::Index { table, pids }
            }
        };
        keys.push(SortKey { by, descending });
    }
    Ok(keys)
}

/// The first `near` filter: its parameter ids and its areas (several
/// when `near` has alternatives).
fn near_filter(filters: &[Filter]) -> Option<(&[i64], Vec<&NearArea>)> {
    filters.iter().find_map(|f| match f {
        Filter::Index {
            table: Table::Position,
            pids,
            alts,
            negate: false,
        } => {
            let areas: Vec<&NearArea> = alts
                .iter()
                .filter_map(|c| match c {
                    Cond::Near(area) => Some(area.as_ref()),
                    _ => None,
                })
                .collect();
            (!areas.is_empty()).then_some((pids.as_slice(), areas))
        }
        _ => None,
    })
}

/// The order of a search with `near` and no `_sort`: nearest first (the
/// closest of the searched points when `near` has several), then as
/// created. None without a `near` filter.
pub fn nearest_first(filters: &[Filter]) -> Option<SortKey> {
    let (pids, areas) = near_filter(filters)?;
    Some(SortKey {
        by: SortBy::Closeness {
            pids: pids.to_vec(),
            points: areas.iter().map(|a| a.point).collect(),
        },
        descending: true,
    })
}

/// The distance a `near` search returns with each match (the
/// `location-distance` extension): from the searched point (the closest
/// one when `near` has several, as the sort uses), in the unit the search
/// gave with that point.
#[derive(Debug, Clone, PartialEq)]
pub struct NearDistance {
    /// Each searched point: its unit vector, unit code, metres per unit.
    points: Vec<((f64, f64, f64), String, f64)>,
}

impl NearDistance {
    /// None without a `near` filter.
    pub fn of(filters: &[Filter]) -> Option<NearDistance> {
        let (_, areas) = near_filter(filters)?;
        Some(NearDistance {
            points: areas
                .iter()
                .map(|a| (a.point, a.unit.0.clone(), a.unit.1))
                .collect(),
        })
    }

    /// The distance to a position (degrees) and its UCUM unit.
    pub fn to(&self, lat: f64, lon: f64) -> (f64, &str) {
        let p = PositionRow::new(0, 0, lat, lon);
        self.points
            .iter()
            .map(|(point, code, metres)| {
                let km = great_circle_km(*point, (p.x, p.y, p.z));
                (km, km * 1000.0 / metres, code.as_str())
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, value, code)| (value, code))
            .expect("a near filter has a point")
    }
}

/// `_include` / `_revinclude` values: `Type:param[:target]` or `Type:*`.
pub fn parse_include(
    reg: &Registry,
    name: &str,
    value: &str,
    iterate: bool,
) -> FhirResult<IncludeSpec> {
    let parts: Vec<&str> = value.split(':').collect();
    let (source, code, target) = match parts.as_slice() {
        [s, c] => (*s, *c, None),
        [s, c, t] => (*s, *c, Some(*t)),
        _ => {
            return Err(bad(
                name,
                format!("`{value}` is not Type:parameter[:targetType]"),
            ))
        }
    };
    if !schema().is_resource_type(source) {
        return Err(bad(name, format!("`{source}` is not a resource type")));
    }
    if let Some(t) = target {
        if !schema().is_resource_type(t) {
            return Err(bad(name, format!("`{t}` is not a resource type")));
        }
    }
    let pids = if code == "*" {
        reg.params(source)
            .filter(|p| p.ptype == ParamType::Reference)
            .map(|p| p.pid)
            .collect()
    } else {
        let p = reg
            .get(source, code)
            .filter(|p| p.ptype == ParamType::Reference)
            .ok_or_else(|| {
                bad(
                    name,
                    format!("{source} has no reference parameter `{code}`"),
                )
            })?;
        vec![p.pid]
    };
    Ok(IncludeSpec {
        source_type: source.to_string(),
        pids,
        target_type: target.map(str::to_string),
        iterate,
        text: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::registry;

    const BASE: &str = "http://localhost/fhir";

    fn f(rtype: &str, name: &str, value: &str) -> FhirResult<Filter> {
        parse_filter(registry(), rtype, name, value, BASE, 0)
    }

    #[test]
    fn tokens_and_strings() {
        let Filter::Index { alts, .. } =
            f("Patient", "identifier", "urn:x|1,|2,3,urn:s|,a\\,b").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            alts,
            vec![
                Cond::Token {
                    system: Some("urn:x".into()),
                    code: Some("1".into())
                },
                Cond::Token {
                    system: Some("".into()),
                    code: Some("2".into())
                },
                Cond::Token {
                    system: None,
                    code: Some("3".into())
                },
                Cond::Token {
                    system: Some("urn:s".into()),
                    code: None
                },
                Cond::Token {
                    system: None,
                    code: Some("a,b".into())
                },
            ]
        );
        let Filter::Index { table, alts, .. } = f("Patient", "name", "Zoë").unwrap() else {
            panic!()
        };
        assert_eq!(
            (table, alts),
            (Table::String, vec![Cond::StrPrefix("zoe".into())])
        );
        assert!(f("Patient", "name:below", "x").is_err());
        assert_eq!(f("Patient", "nonsense", "x").unwrap_err().status, 400);
        assert_eq!(f("Patient", "name", "").unwrap_err().status, 400);
    }

    #[test]
    fn prefixes_and_numbers() {
        assert_eq!(prefix("ge2020"), (Cmp::Ge, "2020"));
        assert_eq!(prefix("2020"), (Cmp::Eq, "2020"));
        let (v, lo, hi) = number("x", "100").unwrap();
        assert_eq!((v, lo, hi), (100.0, 99.5, 100.5));
        let (_, lo, hi) = number("x", "1.50").unwrap();
        assert!((lo - 1.495).abs() < 1e-9 && (hi - 1.505).abs() < 1e-9);
        assert!(number("x", "abc").is_err());
        assert!(f("Observation", "date", "ge2024-13").is_err());
        let Filter::Index { alts, .. } = f(
            "Observation",
            "value-quantity",
            "gt5.4|http://unitsofmeasure.org|mg",
        )
        .unwrap() else {
            panic!()
        };
        let Cond::Quantity { cmp, unit, .. } = &alts[0] else {
            panic!()
        };
        assert_eq!(*cmp, Cmp::Gt);
        assert!(matches!(unit, QtyUnit::Canonical(_)));
    }

    #[test]
    fn references_chains_and_has() {
        let Filter::Index { alts, .. } = f(
            "Observation",
            "subject",
            "Patient/1,http://localhost/fhir/Patient/2,3",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            alts[1],
            Cond::Reference {
                types: vec!["Patient".into()],
                id: "2".into(),
                version: None
            }
        );
        assert_eq!(
            alts[2],
            Cond::Reference {
                types: vec![],
                id: "3".into(),
                version: None
            }
        );
        assert!(f("Observation", "subject", "Claim/1").is_err());
        // A chain whose target can be contained: the stored targets, or
        // (`Filter::Either`) the contained ones through local references.
        let chain = f("Observation", "subject:Patient.name", "x").unwrap();
        let Filter::Either(parts) = &chain else {
            panic!("{chain:?}")
        };
        let Filter::Index { alts, .. } = &parts[0] else {
            panic!("{chain:?}")
        };
        assert!(
            matches!(&alts[0], Cond::Chain { types, .. } if types == &vec!["Patient".to_string()])
        );
        assert!(
            format!("{:?}", parts[1]).contains("LocalChain"),
            "{chain:?}"
        );
        let two = f("Observation", "patient.general-practitioner.name", "x").unwrap();
        assert!(format!("{two:?}").matches("Chain").count() >= 2);
        let Filter::Has { rtype, .. } =
            f("Patient", "_has:Observation:patient:code", "1234").unwrap()
        else {
            panic!()
        };
        assert_eq!(rtype, "Observation");
        assert!(f("Patient", "_has:Observation:code:code", "1").is_err());
        let deep = "a.".repeat(10);
        assert!(f("Observation", &format!("subject.{deep}name"), "x").is_err());
    }

    #[test]
    fn near_boxes_hold_every_point_within_the_distance() {
        let dist = |a: (f64, f64), b: (f64, f64)| {
            let (p, q) = (
                PositionRow::new(0, 0, a.0, a.1),
                PositionRow::new(0, 0, b.0, b.1),
            );
            (p.x * q.x + p.y * q.y + p.z * q.z).clamp(-1.0, 1.0).acos() * EARTH_RADIUS_KM
        };
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..2000 {
            let centre = (next() * 178.0 - 89.0, next() * 360.0 - 180.0);
            let km = next() * 3000.0;
            let area = near_area(centre.0, centre.1, km);
            let point = (
                (centre.0 + (next() - 0.5) * 60.0).clamp(-90.0, 90.0),
                ((centre.1 + (next() - 0.5) * 120.0 + 540.0) % 360.0) - 180.0,
            );
            if dist(centre, point) <= km * 0.999 {
                assert!(
                    point.0 >= area.lat.0 && point.0 <= area.lat.1,
                    "{centre:?} {km} {point:?}"
                );
                assert!(
                    area.lon.is_empty()
                        || area
                            .lon
                            .iter()
                            .any(|(lo, hi)| point.1 >= *lo && point.1 <= *hi),
                    "{centre:?} {km} {point:?} {:?}",
                    area.lon
                );
            }
        }
    }

    #[test]
    fn near_sorts_nearest_first() {
        let near = parse_filter(
            registry(),
            "Location",
            "near",
            "18.5|73.8|10|km,19|72.8",
            BASE,
            0,
        )
        .unwrap();
        let key = nearest_first(&[Filter::Ids(vec!["a".into()]), near]).unwrap();
        assert!(key.descending);
        let SortBy::Closeness { points, pids } = key.by else {
            panic!("{:?}", key.by)
        };
        assert_eq!(points.len(), 2);
        assert_eq!(pids.len(), 1);
        let (x, y, z) = points[0];
        assert!(((x * x + y * y + z * z) - 1.0).abs() < 1e-12);
        let name = parse_filter(registry(), "Location", "name", "x", BASE, 0).unwrap();
        assert!(nearest_first(&[name]).is_none());
    }

    #[test]
    fn near_distance_in_the_units_asked() {
        // One degree of latitude on the mean sphere.
        let degree = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
        let unit = |lat: f64, lon: f64| {
            let p = PositionRow::new(0, 0, lat, lon);
            (p.x, p.y, p.z)
        };
        assert!((great_circle_km(unit(10.0, 20.0), unit(11.0, 20.0)) - degree).abs() < 1e-9);
        assert_eq!(great_circle_km(unit(10.0, 20.0), unit(10.0, 20.0)), 0.0);
        let antipodes = great_circle_km(unit(10.0, 20.0), unit(-10.0, -160.0));
        assert!((antipodes - 180.0 * degree).abs() < 1e-6);
        let of = |value: &str, lat: f64, lon: f64| {
            let near = parse_filter(registry(), "Location", "near", value, BASE, 0).unwrap();
            let distance = NearDistance::of(&[near]).unwrap();
            let (value, code) = distance.to(lat, lon);
            (value, code.to_string())
        };
        let (km, code) = of("0|0|500", 1.0, 0.0);
        assert_eq!(code, "km");
        assert!((km - degree).abs() < 1e-9);
        let (m, code) = of("0|0|500|m", 1.0, 0.0);
        assert_eq!(code, "m");
        assert!((m - degree * 1000.0).abs() < 1e-6);
        let (mi, code) = of("0|0|500|[mi_i]", 1.0, 0.0);
        assert_eq!(code, "[mi_i]");
        assert!((mi - degree / 1.609344).abs() < 1e-9);
        // A unit without a distance: the default radius, reported in it.
        let (mi, code) = of("0|0||[mi_i]", 0.5, 0.0);
        assert_eq!(code, "[mi_i]");
        assert!((mi - degree / 2.0 / 1.609344).abs() < 1e-9);
        assert!(parse_filter(registry(), "Location", "near", "0|0||kg", BASE, 0).is_err());
        // Several points: the closest, in its own unit.
        let (m, code) = of("0|0|500|km,0|3|500|m", 0.0, 2.0);
        assert_eq!(code, "m");
        assert!((m - degree * 1000.0).abs() < 1e-6);
        let name = parse_filter(registry(), "Location", "name", "x", BASE, 0).unwrap();
        assert!(NearDistance::of(&[name]).is_none());
    }

    #[test]
    fn sort_and_include() {
        let keys = parse_sort(registry(), &["Observation".into()], "-date,_id").unwrap();
        assert!(
            keys[0].descending
                && matches!(
                    keys[0].by,
                    SortBy::Index {
                        table: Table::Date,
                        ..
                    }
                )
        );
        assert!(parse_sort(registry(), &["Observation".into()], "nope").is_err());
        let inc =
            parse_include(registry(), "_include", "Observation:subject:Patient", false).unwrap();
        assert_eq!(inc.target_type.as_deref(), Some("Patient"));
        assert!(parse_include(registry(), "_include", "Observation:code", false).is_err());
        assert!(
            parse_include(registry(), "_include", "Observation:*", true)
                .unwrap()
                .pids
                .len()
                > 3
        );
    }
}
