//! Index rows of a resource: every search parameter of its type evaluated
//! (FHIRPath over the JSON) and each value turned into typed rows, following
//! the rules of http://hl7.org/fhir/R4/search.html for each parameter type
//! and data type.

use std::collections::HashMap;

use serde_json::Value;

use super::contained;
use super::normalize::{normalize, truncate};
use super::pid;
use super::registry::{ParamType, Registry, SearchParam};
use crate::fhir::datetime::range_micros;
use crate::fhirpath::{self, Context, Node};
use crate::store::index::*;

/// Index rows of `resource` (of type `rtype`); `base_url` turns absolute
/// references to this server into local ones.
/// Rows of the resources in its `contained` follow (see
/// `search::contained`), and local references (`#id`) give rows for
/// chains into them.
pub fn index_rows(reg: &Registry, rtype: &str, resource: &Value, base_url: &str) -> IndexRows {
    let locals = contained::locals(resource);
    let mut rows = rows_of(reg, rtype, resource, base_url, None, Some(&locals));
    if let Some(Value::Array(items)) = resource.get("contained") {
        let mut maps: HashMap<&str, HashMap<i64, i64>> = HashMap::new();
        for (k, c) in items.iter().enumerate() {
            let (Some(ct), Some(id)) = (
                c.get("resourceType").and_then(Value::as_str),
                c.get("id").and_then(Value::as_str),
            ) else {
                continue;
            };
            if !crate::fhir::schema::schema().is_resource_type(ct) {
                continue;
            }
            // A contained resource contains none (dom-2): one level.
            let inner = rows_of(reg, ct, c, base_url, None, None);
            let map = maps
                .entry(ct)
                .or_insert_with(|| contained::pid_map(reg, ct));
            contained::append_rows(&mut rows, map, ct, k as i64, id, inner);
        }
        rows.dedup();
    }
    rows
}

/// Index rows of the parameters named in `codes` only.
pub fn index_rows_for(
    reg: &Registry,
    rtype: &str,
    resource: &Value,
    base_url: &str,
    codes: &[String],
) -> IndexRows {
    rows_of(reg, rtype, resource, base_url, Some(codes), None)
}

fn rows_of(
    reg: &Registry,
    rtype: &str,
    resource: &Value,
    base_url: &str,
    codes: Option<&[String]>,
    locals: Option<&HashMap<String, (i64, String)>>,
) -> IndexRows {
    static CTX: std::sync::LazyLock<Context> = std::sync::LazyLock::new(Context::default);
    let mut rows = IndexRows::default();
    let mut x = Extractor {
        base_url,
        rows: &mut rows,
        locals,
    };
    for param in reg.params(rtype) {
        if param.is_column() || codes.is_some_and(|c| !c.contains(&param.code)) {
            continue;
        }
        if param.code == "_text" {
            x.narrative(param, resource);
            continue;
        }
        let Some(expr) = &param.expression else {
            continue;
        };
        let Ok(nodes) = fhirpath::evaluate(expr, resource, &CTX) else {
            // An expression that fails on this resource indexes nothing.
            continue;
        };
        if param.ptype == ParamType::Composite {
            for (n, node) in nodes.into_iter().enumerate() {
                let grp = n as i64 + 1;
                // A composite value has every component: an item missing
                // one can match no composite search, so its rows are
                // dropped (an Observation with a valueQuantity indexes
                // code-value-quantity, not code-value-concept and the
                // other code-value-* parameters with its code alone).
                let start = x.rows.mark();
                let mut complete = true;
                for (i, c) in param.components.iter().enumerate() {
                    // The first component's rows carry the item's number,
                    // the others its negation: only the first are in the
                    // value indexes (store/query.rs joins the others by
                    // rid), which saves an index entry per later
                    // component value.
                    let grp = if i == 0 { grp } else { -grp };
                    let before = x.rows.len();
                    if let Ok(values) =
                        fhirpath::evaluate_on(&c.expression, resource, vec![node.clone()], &CTX)
                    {
                        for v in &values {
                            let v = extension_value(v).unwrap_or_else(|| v.clone());
                            x.value(c.ptype, c.pid, param, grp, &v);
                        }
                    }
                    if x.rows.len() == before {
                        complete = false;
                        break;
                    }
                }
                if !complete {
                    x.rows.truncate(start);
                }
            }
            continue;
        }
        for node in &nodes {
            let node = extension_value(node).unwrap_or_else(|| node.clone());
            x.value(param.ptype, param.pid, param, 0, &node);
        }
    }
    rows.dedup();
    rows
}

/// The pid of a key derived from a parameter: `code:text` (token text),
/// `code:of-type` (identifier type and value), `code:identifier`
/// (reference by identifier).
pub fn derived_pid(param: &SearchParam, suffix: &str) -> i64 {
    pid(&param.key_type, &format!("{}:{suffix}", param.code))
}

struct Extractor<'r> {
    base_url: &'r str,
    rows: &'r mut IndexRows,
    /// The container's contained resources by local id, for rows of its
    /// local references (None inside a contained resource).
    locals: Option<&'r HashMap<String, (i64, String)>>,
}

/// An Extension's `value[x]` as a node of its type, so that parameters
/// whose expression selects extensions (`Patient.extension('url')`, as
/// custom parameters often do) index the value.
fn extension_value<'n>(node: &Node<'n>) -> Option<Node<'n>> {
    let Node::Json(j) = node else { return None };
    if j.ty != Some("Extension") {
        return None;
    }
    let object = j.value?.as_object()?;
    // The R4 schema names `value[x]`'s JSON names and their types.
    let extension = crate::fhir::schema::schema().type_def("Extension")?;
    object.iter().find_map(|(key, value)| {
        if !key.starts_with("value") {
            return None;
        }
        let (_, ty) = extension.property(key)?;
        Some(Node::json(value, Some(ty)))
    })
}

/// The JSON of a node and its FHIR type name.
fn json<'n>(node: &'n Node<'_>) -> Option<(&'n Value, &'n str)> {
    match node {
        Node::Json(j) => Some((j.value?, j.ty.unwrap_or(""))),
        _ => None,
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn num_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    match v.get(key) {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(other) => vec![other],
        None => vec![],
    }
    .into_iter()
}

impl Extractor<'_> {
    /// Rows for one value of `param` (or of one of its components: `ptype`
    /// and `pid` are then the component's).
    fn value(
        &mut self,
        ptype: ParamType,
        pid: i64,
        param: &SearchParam,
        grp: i64,
        node: &Node<'_>,
    ) {
        match ptype {
            ParamType::String => self.string(pid, grp, node),
            ParamType::Token => self.token(pid, param, grp, node),
            ParamType::Date => self.date(pid, grp, node),
            ParamType::Number => self.number(pid, grp, node),
            ParamType::Quantity => self.quantity(pid, grp, node),
            ParamType::Reference => self.reference(pid, param, grp, node),
            ParamType::Uri => self.uri(pid, grp, node),
            ParamType::Special if param.code == "near" => self.position(pid, grp, node),
            ParamType::Special => {}
            ParamType::Composite => {}
        }
    }

    /// `near`: a `Location.position` (latitude and longitude in degrees).
    fn position(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let Some((v, _)) = json(node) else { return };
        let (Some(lat), Some(lon)) = (num_of(v, "latitude"), num_of(v, "longitude")) else {
            return;
        };
        if lat.abs() <= 90.0 && lon.abs() <= 180.0 {
            self.rows
                .positions
                .push(PositionRow::new(pid, grp, lat, lon));
        }
    }

    fn push_string(&mut self, pid: i64, grp: i64, s: &str) {
        let norm = truncate(normalize(s));
        if norm.is_empty() {
            return;
        }
        self.rows.strings.push(StringRow {
            pid,
            grp,
            norm,
            exact: s
                .chars()
                .take(super::normalize::MAX_INDEXED_CHARS)
                .collect(),
        });
    }

    fn string(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            if let Some(s) = node.as_str() {
                self.push_string(pid, grp, &s);
            }
            return;
        };
        match ty {
            "HumanName" => {
                for key in ["text", "family"] {
                    if let Some(s) = str_of(v, key) {
                        self.push_string(pid, grp, s);
                    }
                }
                for key in ["given", "prefix", "suffix"] {
                    for s in items(v, key).filter_map(Value::as_str) {
                        self.push_string(pid, grp, s);
                    }
                }
            }
            "Address" => {
                for key in ["text", "city", "district", "state", "postalCode", "country"] {
                    if let Some(s) = str_of(v, key) {
                        self.push_string(pid, grp, s);
                    }
                }
                for s in items(v, "line").filter_map(Value::as_str) {
                    self.push_string(pid, grp, s);
                }
            }
            _ => {
                if let Some(s) = v.as_str() {
                    self.push_string(pid, grp, s);
                }
            }
        }
    }

    fn push_token(&mut self, pid: i64, grp: i64, system: &str, code: &str) {
        self.rows.tokens.push(TokenRow {
            pid,
            grp,
            system: system.to_string(),
            code: code.to_string(),
        });
    }

    /// The text of a token (`:text` modifier) as a string row of `code:text`.
    /// Derived rows (`:text`, `:of-type`, `:identifier`) are kept for plain
    /// parameters only (`grp` 0): components of a composite take no
    /// modifiers.
    fn token_text(&mut self, param: &SearchParam, grp: i64, text: Option<&str>) {
        if grp != 0 {
            return;
        }
        if let Some(text) = text {
            let pid = derived_pid(param, "text");
            self.push_string(pid, grp, text);
        }
    }

    fn coding(&mut self, pid: i64, param: &SearchParam, grp: i64, coding: &Value) {
        if let Some(c) = str_of(coding, "code") {
            self.push_token(pid, grp, str_of(coding, "system").unwrap_or(""), c);
        }
        self.token_text(param, grp, str_of(coding, "display"));
    }

    fn token(&mut self, pid: i64, param: &SearchParam, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            if let Some(s) = node.as_str() {
                self.push_token(pid, grp, "", &s);
            }
            return;
        };
        match ty {
            "Coding" => self.coding(pid, param, grp, v),
            "CodeableConcept" => {
                for coding in items(v, "coding") {
                    self.coding(pid, param, grp, coding);
                }
                self.token_text(param, grp, str_of(v, "text"));
            }
            "Identifier" => {
                let Some(value) = str_of(v, "value") else {
                    return;
                };
                self.push_token(pid, grp, str_of(v, "system").unwrap_or(""), value);
                if let Some(t) = v.get("type").filter(|_| grp == 0) {
                    let of_type = derived_pid(param, "of-type");
                    for coding in items(t, "coding") {
                        if let Some(tc) = str_of(coding, "code") {
                            let system = str_of(coding, "system").unwrap_or("");
                            self.push_token(of_type, grp, system, &format!("{tc}|{value}"));
                        }
                    }
                    self.token_text(param, grp, str_of(t, "text"));
                }
            }
            "ContactPoint" => {
                if let Some(value) = str_of(v, "value") {
                    self.push_token(pid, grp, str_of(v, "system").unwrap_or(""), value);
                }
            }
            "boolean" => {
                if let Some(b) = v.as_bool() {
                    self.push_token(pid, grp, "", if b { "true" } else { "false" });
                }
            }
            _ => match v {
                Value::String(s) => self.push_token(pid, grp, "", s),
                Value::Number(n) => self.push_token(pid, grp, "", &n.to_string()),
                _ => {}
            },
        }
    }

    fn push_date(&mut self, pid: i64, grp: i64, lo: i64, hi: i64) {
        self.rows.dates.push(DateRow { pid, grp, lo, hi });
    }

    fn date(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            return;
        };
        let range = |s: Option<&str>| s.and_then(range_micros);
        match ty {
            "Period" => {
                let lo = range(str_of(v, "start")).map_or(i64::MIN, |r| r.0);
                let hi = range(str_of(v, "end")).map_or(i64::MAX, |r| r.1);
                if v.get("start").is_some() || v.get("end").is_some() {
                    self.push_date(pid, grp, lo, hi);
                }
            }
            "Timing" => {
                let events: Vec<(i64, i64)> = items(v, "event")
                    .filter_map(|e| range(e.as_str()))
                    .collect();
                if let (Some(lo), Some(hi)) = (
                    events.iter().map(|r| r.0).min(),
                    events.iter().map(|r| r.1).max(),
                ) {
                    self.push_date(pid, grp, lo, hi);
                }
                if let Some(bounds) = v.get("repeat").and_then(|r| r.get("boundsPeriod")) {
                    let lo = range(str_of(bounds, "start")).map_or(i64::MIN, |r| r.0);
                    let hi = range(str_of(bounds, "end")).map_or(i64::MAX, |r| r.1);
                    self.push_date(pid, grp, lo, hi);
                }
            }
            _ => {
                if let Some((lo, hi)) = range(v.as_str()) {
                    self.push_date(pid, grp, lo, hi);
                }
            }
        }
    }

    fn number(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            return;
        };
        let (lo, hi) = match ty {
            "Range" => (
                v.get("low")
                    .and_then(|q| num_of(q, "value"))
                    .unwrap_or(f64::NEG_INFINITY),
                v.get("high")
                    .and_then(|q| num_of(q, "value"))
                    .unwrap_or(f64::INFINITY),
            ),
            _ => match v.as_f64() {
                Some(n) => (n, n),
                None => return,
            },
        };
        self.rows.numbers.push(NumberRow { pid, grp, lo, hi });
    }

    fn quantity(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            return;
        };
        match ty {
            "Range" => {
                let low = v.get("low");
                let high = v.get("high");
                let unit_of = low.or(high);
                let Some(unit_of) = unit_of else {
                    return;
                };
                let lo = low
                    .and_then(|q| num_of(q, "value"))
                    .unwrap_or(f64::NEG_INFINITY);
                let hi = high
                    .and_then(|q| num_of(q, "value"))
                    .unwrap_or(f64::INFINITY);
                self.push_quantity(pid, grp, unit_of, lo, hi);
            }
            "Money" => {
                if let Some(value) = num_of(v, "value") {
                    self.rows.quantities.push(QuantityRow {
                        pid,
                        grp,
                        system: "urn:iso:std:iso:4217".to_string(),
                        code: str_of(v, "currency").unwrap_or("").to_string(),
                        lo: value,
                        hi: value,
                        canon_unit: String::new(),
                        canon_lo: value,
                        canon_hi: value,
                    });
                }
            }
            _ => {
                if let Some(value) = num_of(v, "value") {
                    self.push_quantity(pid, grp, v, value, value);
                }
            }
        }
    }

    fn push_quantity(&mut self, pid: i64, grp: i64, q: &Value, lo: f64, hi: f64) {
        let system = str_of(q, "system").unwrap_or("");
        let code = str_of(q, "code")
            .or_else(|| str_of(q, "unit"))
            .unwrap_or("");
        let (canon_unit, canon_lo, canon_hi) = match super::units::canonical(system, code) {
            Some((unit, factor)) => (unit, lo * factor, hi * factor),
            None => (String::new(), lo, hi),
        };
        self.rows.quantities.push(QuantityRow {
            pid,
            grp,
            system: system.to_string(),
            code: code.to_string(),
            lo,
            hi,
            canon_unit,
            canon_lo,
            canon_hi,
        });
    }

    fn reference(&mut self, pid: i64, param: &SearchParam, grp: i64, node: &Node<'_>) {
        let Some((v, ty)) = json(node) else {
            return;
        };
        match ty {
            "Reference" => {
                if let Some(r) = str_of(v, "reference") {
                    if let Some(row) = parse_reference(r, self.base_url) {
                        self.push_reference(pid, grp, row);
                    } else if let Some(local) = r.strip_prefix('#').filter(|_| grp == 0) {
                        self.local_reference(param, local);
                    }
                }
                if let Some(identifier) = v.get("identifier").filter(|_| grp == 0) {
                    if let Some(value) = str_of(identifier, "value") {
                        let key = derived_pid(param, "identifier");
                        let system = str_of(identifier, "system").unwrap_or("");
                        self.push_token(key, grp, system, value);
                    }
                }
            }
            "canonical" | "uri" | "url" => {
                if let Some(s) = v.as_str() {
                    let (url, version) = s.split_once('|').unwrap_or((s, ""));
                    match parse_reference(url, self.base_url) {
                        Some(mut row) if !row.tid.is_empty() => {
                            row.tversion = version.to_string();
                            self.push_reference(pid, grp, row);
                        }
                        _ => self.push_reference(
                            pid,
                            grp,
                            ReferenceRow {
                                pid,
                                grp,
                                ttype: String::new(),
                                tid: String::new(),
                                tversion: version.to_string(),
                                url: url.to_string(),
                            },
                        ),
                    }
                }
            }
            _ => {}
        }
    }

    /// A reference to a contained resource (`#id`): a row of
    /// `code:contained` with the target's position as `grp`, its type, and
    /// `#id` as `tid` (no resource id has a `#`, so no ordinary reference
    /// condition, include or `$everything` join meets it).
    fn local_reference(&mut self, param: &SearchParam, local: &str) {
        let Some((position, ttype)) = self.locals.and_then(|l| l.get(local)) else {
            return;
        };
        self.rows.references.push(ReferenceRow {
            pid: derived_pid(param, contained::LOCAL_SUFFIX),
            grp: *position,
            ttype: ttype.clone(),
            tid: format!("#{local}"),
            tversion: String::new(),
            url: String::new(),
        });
    }

    fn push_reference(&mut self, pid: i64, grp: i64, mut row: ReferenceRow) {
        row.pid = pid;
        row.grp = grp;
        self.rows.references.push(row);
    }

    fn uri(&mut self, pid: i64, grp: i64, node: &Node<'_>) {
        let s = match json(node) {
            Some((v, _)) => v.as_str().map(str::to_string),
            None => node.as_str(),
        };
        if let Some(uri) = s {
            self.rows.uris.push(UriRow { pid, grp, uri });
        }
    }

    /// `_text`: the narrative's text content.
    fn narrative(&mut self, param: &SearchParam, resource: &Value) {
        let Some(div) = resource
            .get("text")
            .and_then(|t| t.get("div"))
            .and_then(Value::as_str)
        else {
            return;
        };
        let text = strip_tags(div);
        let norm = truncate(normalize(&text));
        if !norm.is_empty() {
            self.rows.strings.push(StringRow {
                pid: param.pid,
                grp: 0,
                norm,
                exact: String::new(),
            });
        }
    }
}

/// The text of an XHTML fragment: tags dropped, the common entities decoded.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Splits a reference into type, id and version when it names a resource
/// (relative, or absolute under `base_url`); other absolute references and
/// URNs are kept as a URL. Contained references (`#id`) give None.
pub fn parse_reference(reference: &str, base_url: &str) -> Option<ReferenceRow> {
    if reference.is_empty() || reference.starts_with('#') {
        return None;
    }
    let local = reference
        .strip_prefix(base_url)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(reference);
    let absolute = local.contains("://") || local.starts_with("urn:");
    if !absolute {
        let parts: Vec<&str> = local.split('/').collect();
        let (ttype, tid, version) = match parts.as_slice() {
            [t, id] => (*t, *id, ""),
            [t, id, "_history", v] => (*t, *id, *v),
            _ => ("", "", ""),
        };
        if !ttype.is_empty() && crate::fhir::schema::schema().is_resource_type(ttype) {
            return Some(ReferenceRow {
                pid: 0,
                grp: 0,
                ttype: ttype.to_string(),
                tid: tid.to_string(),
                tversion: version.to_string(),
                url: String::new(),
            });
        }
    }
    Some(ReferenceRow {
        pid: 0,
        grp: 0,
        ttype: String::new(),
        tid: String::new(),
        tversion: String::new(),
        url: reference.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::registry;
    use serde_json::json;

    const BASE: &str = "http://localhost:8080/fhir";

    #[test]
    fn patient_rows() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:mrn", "value": "42",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
            "name": [{"family": "Müller", "given": ["Zoë", "Anne"]}],
            "gender": "female", "birthDate": "1970-03",
            "active": true,
            "telecom": [{"system": "phone", "value": "555-1234"}],
            "generalPractitioner": [{"reference": "Practitioner/dr1"},
                {"reference": "http://localhost:8080/fhir/Organization/o1"},
                {"reference": "http://elsewhere.org/fhir/Practitioner/x"}],
            "meta": {"tag": [{"system": "urn:t", "code": "demo"}]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Zoë &amp; co</div>"}
        });
        let rows = index_rows(registry(), "Patient", &p, BASE);
        let name = pid("Patient", "name");
        let names: Vec<&str> = rows
            .strings
            .iter()
            .filter(|r| r.pid == name)
            .map(|r| r.norm.as_str())
            .collect();
        assert_eq!(names, vec!["muller", "zoe", "anne"]);
        let tokens_of = |rtype: &str, code: &str| -> Vec<(String, String)> {
            let key = pid(rtype, code);
            rows.tokens
                .iter()
                .filter(|r| r.pid == key)
                .map(|r| (r.system.clone(), r.code.clone()))
                .collect()
        };
        let tokens = |code: &str| tokens_of("Patient", code);
        assert_eq!(tokens("identifier"), vec![("urn:mrn".into(), "42".into())]);
        assert_eq!(
            tokens("identifier:of-type"),
            vec![(
                "http://terminology.hl7.org/CodeSystem/v2-0203".into(),
                "MR|42".into()
            )]
        );
        assert_eq!(tokens("gender"), vec![("".into(), "female".into())]);
        assert_eq!(tokens("active"), vec![("".into(), "true".into())]);
        assert_eq!(tokens("phone"), vec![("phone".into(), "555-1234".into())]);
        assert_eq!(
            tokens_of("Resource", "_tag"),
            vec![("urn:t".into(), "demo".into())]
        );
        let bd = pid("Patient", "birthdate");
        let date = rows.dates.iter().find(|r| r.pid == bd).unwrap();
        assert_eq!(date.lo, range_micros("1970-03-01").unwrap().0);
        assert_eq!(date.hi, range_micros("1970-03-31").unwrap().1);
        let gp = pid("Patient", "general-practitioner");
        let refs: Vec<(&str, &str, &str)> = rows
            .references
            .iter()
            .filter(|r| r.pid == gp)
            .map(|r| (r.ttype.as_str(), r.tid.as_str(), r.url.as_str()))
            .collect();
        assert_eq!(
            refs,
            vec![
                ("Practitioner", "dr1", ""),
                ("Organization", "o1", ""),
                ("", "", "http://elsewhere.org/fhir/Practitioner/x")
            ]
        );
        let text = pid("Resource", "_text");
        assert!(rows
            .strings
            .iter()
            .any(|r| r.pid == text && r.norm == "zoe & co"));
    }

    #[test]
    fn observation_composites_and_quantities() {
        let o = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}], "text": "BP"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2024-01-01T10:00:00+01:00"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]});
        let rows = index_rows(registry(), "Observation", &o, BASE);
        let code_text = pid("Observation", "code:text");
        let texts: Vec<&str> = rows
            .strings
            .iter()
            .filter(|r| r.pid == code_text)
            .map(|r| r.norm.as_str())
            .collect();
        assert_eq!(texts, vec!["blood pressure", "bp"]);
        let c0 = pid("Observation", "component-code-value-quantity$0");
        let c1 = pid("Observation", "component-code-value-quantity$1");
        let codes: Vec<(i64, &str)> = rows
            .tokens
            .iter()
            .filter(|r| r.pid == c0)
            .map(|r| (r.grp, r.code.as_str()))
            .collect();
        assert_eq!(codes, vec![(1, "8480-6"), (2, "8462-4")]);
        let values: Vec<(i64, f64)> = rows
            .quantities
            .iter()
            .filter(|r| r.pid == c1)
            .map(|r| (r.grp, r.lo))
            .collect();
        assert_eq!(values, vec![(-1, 120.0), (-2, 80.0)]);
        let date = pid("Observation", "date");
        let d = rows.dates.iter().find(|r| r.pid == date).unwrap();
        assert_eq!(d.hi, i64::MAX);
        let patient = pid("Observation", "patient");
        assert!(rows
            .references
            .iter()
            .any(|r| r.pid == patient && r.tid == "p1"));
    }

    #[test]
    fn composites_index_only_items_with_every_component() {
        let o = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "valueQuantity": {"value": 105, "system": "http://unitsofmeasure.org", "code": "mg/dL"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}
        ]});
        let rows = index_rows(registry(), "Observation", &o, BASE);
        let tokens_of = |key: &str| {
            let p = pid("Observation", key);
            rows.tokens.iter().filter(|r| r.pid == p).count()
        };
        // Code and quantity both present: indexed.
        assert_eq!(tokens_of("code-value-quantity$0"), 1);
        let q = pid("Observation", "code-value-quantity$1");
        assert_eq!(rows.quantities.iter().filter(|r| r.pid == q).count(), 1);
        // No value of these types: the code alone is not indexed again.
        assert_eq!(tokens_of("code-value-concept$0"), 0);
        assert_eq!(tokens_of("code-value-string$0"), 0);
        assert_eq!(tokens_of("code-value-date$0"), 0);
        // A component with a code and no value.
        assert_eq!(tokens_of("component-code-value-quantity$0"), 0);
        // The plain parameters keep every value.
        assert_eq!(tokens_of("code"), 1);
        assert_eq!(tokens_of("component-code"), 1);
    }

    #[test]
    fn contained_resources_get_rows_of_their_own() {
        use crate::search::contained::contained_pid;
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1-1"}]},
            "contained": [
                {"resourceType": "Patient", "id": "p1", "name": [{"family": "Taylor"}]},
                {"resourceType": "Observation", "id": "o2", "status": "final",
                 "code": {"coding": [{"system": "http://loinc.org", "code": "2-2"}]},
                 "valueQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "mg"}}],
            "subject": {"reference": "#p1"}, "hasMember": [{"reference": "#o2"}]});
        let rows = index_rows(registry(), "Observation", &o, BASE);
        // The container's own code only under the ordinary key.
        let code = pid("Observation", "code");
        let codes: Vec<&str> = rows
            .tokens
            .iter()
            .filter(|r| r.pid == code)
            .map(|r| r.code.as_str())
            .collect();
        assert_eq!(codes, vec!["1-1"]);
        // The contained Observation's under `#Observation`, position 1.
        let inner = contained_pid("Observation", "code");
        let inner: Vec<(i64, &str)> = rows
            .tokens
            .iter()
            .filter(|r| r.pid == inner)
            .map(|r| (r.grp, r.code.as_str()))
            .collect();
        assert_eq!(inner, vec![(1, "2-2")]);
        let name = contained_pid("Patient", "name");
        assert!(rows
            .strings
            .iter()
            .any(|r| r.pid == name && r.grp == 0 && r.norm == "taylor"));
        let ids: Vec<(i64, &str)> = rows
            .tokens
            .iter()
            .filter(|r| {
                r.pid == contained_pid("Patient", "_id")
                    || r.pid == contained_pid("Observation", "_id")
            })
            .map(|r| (r.grp, r.code.as_str()))
            .collect();
        assert_eq!(ids, vec![(0, "p1"), (1, "o2")]);
        // No composite rows for contained resources.
        let cvq = contained_pid("Observation", "code-value-quantity$0");
        assert!(rows.tokens.iter().all(|r| r.pid != cvq));
        // Local references: the target's position and type, `#id`.
        let subject = pid("Observation", "subject:contained");
        let local: Vec<(i64, &str, &str)> = rows
            .references
            .iter()
            .filter(|r| r.pid == subject)
            .map(|r| (r.grp, r.ttype.as_str(), r.tid.as_str()))
            .collect();
        assert_eq!(local, vec![(0, "Patient", "#p1")]);
        assert!(rows
            .references
            .iter()
            .all(|r| r.pid != pid("Observation", "subject")));
    }

    /// How many index rows contained resources add to the Synthea sample
    /// (printed; README "Contained resources" quotes it).
    #[test]
    fn synthea_contained_rows() {
        let Some(dir) = std::env::var_os("CHARAKA_SHARED") else {
            eprintln!("CHARAKA_SHARED not set: the Synthea sample was not indexed");
            return;
        };
        let dir = std::path::Path::new(&dir).join("data/synthea-sample");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("CHARAKA_SHARED names {}: {e}", dir.display()));
        let (mut all, mut without, mut containers) = (0, 0, 0);
        for entry in entries {
            let bundle: Value =
                serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
            for e in bundle["entry"].as_array().unwrap() {
                let mut r = e["resource"].clone();
                let rtype = r["resourceType"].as_str().unwrap().to_string();
                all += index_rows(registry(), &rtype, &r, BASE).len();
                if r.as_object_mut().unwrap().remove("contained").is_some() {
                    containers += 1;
                }
                without += index_rows(registry(), &rtype, &r, BASE).len();
            }
        }
        eprintln!(
            "Synthea sample: {all} index rows, {} from contained resources of {containers} containers",
            all - without
        );
        // The sample's ExplanationOfBenefits contain their ServiceRequest
        // and Coverage: those must be indexed.
        assert!(containers > 0, "the sample has containers");
        assert!(all > without, "contained resources add index rows");
    }

    #[test]
    fn every_example_indexes_without_panicking() {
        let Some(dir) = std::env::var_os("CHARAKA_R4_EXAMPLES") else {
            eprintln!("CHARAKA_R4_EXAMPLES not set: the R4 examples were not indexed");
            return;
        };
        let mut total = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()) else {
                continue;
            };
            let Some(rtype) = v.get("resourceType").and_then(Value::as_str) else {
                continue;
            };
            total += index_rows(registry(), rtype, &v, BASE).len();
        }
        assert!(total > 10_000, "{total} rows");
    }
}
