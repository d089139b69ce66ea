//! The search interaction (http://hl7.org/fhir/R4/search.html): type,
//! system and compartment searches, with paging, sorting, totals and
//! includes, answered as a `searchset` Bundle.
//!
//! Parameters are parsed once (`search::parse`) into filters that
//! `store::query` runs as one SQL statement. Under `Prefer:
//! handling=strict` an unknown parameter is a 400; by default (lenient) it
//! is ignored, left out of the `self` link, and reported in an
//! OperationOutcome entry (`search.mode = outcome`).

use std::collections::HashSet;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::bundle::{self, EntryOut};
use super::search_contained::{ContainedMode, Matches};
use super::{check_type, Fhir};
use crate::error::{FhirError, FhirResult};
use crate::fhir::summary::{apply_elements, apply_summary, Summary};
use crate::search::parse::{
    parse_filter, parse_include, parse_sort, IncludeSpec, RESULT_PARAMETERS,
};
use crate::search::registry::{registry, Registry};
use crate::store::query::{Cond, PageAt, SortValue, Table};
use crate::store::{Filter, Hit, Included, Reader, SearchQuery};

/// The page cursor parameter of paging links.
pub const CURSOR_PARAM: &str = "_cursor";

/// Rounds of `:iterate` includes.
const MAX_ITERATE: usize = 3;

/// What is searched.
#[derive(Debug, Clone)]
pub enum SearchScope {
    /// `GET [base]/[type]`
    Type(String),
    /// `GET [base]?` (with `_type` optionally).
    System,
    /// `GET [base]/[Compartment]/[id]/[type]`
    Compartment {
        compartment: String,
        id: String,
        rtype: String,
    },
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Total {
    Default,
    None,
    Accurate,
}

static COMPARTMENTS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("../../conformance/compartments.json"))
        .expect("conformance/compartments.json is valid")
});

/// The parameters linking `rtype` to `compartment` (R4
/// CompartmentDefinitions); empty when the type is not in it.
pub fn compartment_params(compartment: &str, rtype: &str) -> Vec<String> {
    COMPARTMENTS
        .get(compartment)
        .and_then(|c| c.get(rtype))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource types of a compartment (R4 CompartmentDefinitions).
pub fn compartment_types(compartment: &str) -> Vec<String> {
    COMPARTMENTS
        .get(compartment)
        .and_then(Value::as_object)
        .map(|types| types.keys().cloned().collect())
        .unwrap_or_default()
}

/// The filter "in the compartment of `compartment`/`id`" for `rtype`.
pub fn compartment_filter(compartment: &str, id: &str, rtype: &str) -> FhirResult<Filter> {
    let params = compartment_params(compartment, rtype);
    if params.is_empty() {
        return Err(FhirError::invalid(format!(
            "{rtype} is not in the {compartment} compartment"
        )));
    }
    let mut groups = Vec::new();
    // The compartment's own resource is in it (Patient/1 is in the
    // compartment of Patient/1).
    if rtype == compartment {
        groups.push(vec![Filter::Ids(vec![id.to_string()])]);
    }
    for code in params {
        if code == "{def}" {
            groups.push(vec![Filter::Ids(vec![id.to_string()])]);
            continue;
        }
        let Some(p) = registry().get(rtype, &code) else {
            continue;
        };
        groups.push(vec![Filter::Index {
            table: Table::Reference,
            pids: vec![p.pid],
            alts: vec![Cond::Reference {
                types: vec![compartment.to_string()],
                id: id.to_string(),
                version: None,
            }],
            negate: false,
        }]);
    }
    Ok(Filter::Or(groups))
}

pub(super) fn encode_cursor(forward: bool, values: &[SortValue], rid: i64) -> String {
    let json = serde_json::to_vec(&json!([if forward { "a" } else { "b" }, values, rid]))
        .expect("cursor serialises");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub(super) fn decode_cursor(s: &str) -> FhirResult<PageAt> {
    if s == "last" {
        return Ok(PageAt::Last);
    }
    let bad = || FhirError::invalid(format!("`{s}` is not a valid page cursor"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    // Read as plain JSON: serde's untagged enums cannot read numbers under
    // serde_json's arbitrary_precision feature.
    let (dir, raw, rid): (String, Vec<Value>, i64) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let values = raw
        .iter()
        .map(|v| match v {
            Value::Null => Some(SortValue::Null),
            Value::String(t) => Some(SortValue::Text(t.clone())),
            Value::Number(n) => n
                .as_i64()
                .map(SortValue::Int)
                .or_else(|| n.as_f64().map(SortValue::Float)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    match dir.as_str() {
        "a" => Ok(PageAt::After(values, rid)),
        "b" => Ok(PageAt::Before(values, rid)),
        _ => Err(bad()),
    }
}

/// The page without the extra row fetched to know whether another page
/// follows (the last going forwards, the first going backwards), and
/// whether there was one.
fn trim_page<T>(mut hits: Vec<T>, count: i64, page: &PageAt) -> (Vec<T>, bool) {
    let more = hits.len() as i64 > count;
    if more {
        if matches!(page, PageAt::Before(..) | PageAt::Last) {
            hits.remove(0);
        } else {
            hits.truncate(count as usize);
        }
    }
    (hits, more)
}

/// The total when known without counting (`Some(None)`: none is given);
/// None when it takes a count.
fn total_known(
    total: Total,
    page: &PageAt,
    more: bool,
    count: i64,
    found: usize,
) -> Option<Option<i64>> {
    match total {
        Total::None => Some(None),
        // By default the total is given when it is known for free: a
        // first page that holds every match. Counting a broad match
        // costs as much as reading it, so that takes `_total=accurate`.
        Total::Default if *page != PageAt::First || more => Some(None),
        Total::Default if count > 0 => Some(Some(found as i64)),
        _ => None,
    }
}

/// Whether a parameter name is known for `rtype` (its code before any
/// modifier or chain).
fn is_known(reg: &Registry, rtype: &str, name: &str) -> bool {
    if name.starts_with("_has:") {
        return true;
    }
    let code = name.split(['.', ':']).next().unwrap_or_default();
    matches!(code, "_id" | "_lastUpdated" | "_list" | "_filter") || reg.get(rtype, code).is_some()
}

impl Fhir {
    /// One page of search results as a `searchset` Bundle (JSON bytes).
    pub async fn search(
        &self,
        scope: &SearchScope,
        params: &[(String, String)],
        strict: bool,
        access: &crate::auth::Access,
    ) -> FhirResult<Vec<u8>> {
        let mut reader = Reader::Pool(&self.store);
        self.search_in(&mut reader, scope, params, strict, access)
            .await
    }

    /// `search`, reading through `reader` (a transaction's search entries
    /// read inside it).
    pub async fn search_in(
        &self,
        reader: &mut Reader<'_>,
        scope: &SearchScope,
        params: &[(String, String)],
        strict: bool,
        access: &crate::auth::Access,
    ) -> FhirResult<Vec<u8>> {
        let (types, path, mut filters) = match scope {
            SearchScope::Type(rtype) => {
                check_type(rtype)?;
                (vec![rtype.clone()], rtype.clone(), Vec::new())
            }
            SearchScope::System => {
                let mut types = Vec::new();
                for (_, value) in params.iter().filter(|(n, _)| n == "_type") {
                    for t in value.split(',') {
                        check_type(t).map_err(|_| {
                            FhirError::invalid(format!("_type: `{t}` is not a resource type"))
                        })?;
                        types.push(t.to_string());
                    }
                }
                // The audit trail is searched by name (`_type=AuditEvent`
                // or `AuditEvent?...`), or every search would list the
                // records of the searches before it.
                let filters = if types.is_empty() {
                    vec![Filter::NotTypes(vec!["AuditEvent".into()])]
                } else {
                    Vec::new()
                };
                (types, String::new(), filters)
            }
            SearchScope::Compartment {
                compartment,
                id,
                rtype,
            } => {
                check_type(compartment)?;
                check_type(rtype)?;
                let f = compartment_filter(compartment, id, rtype)?;
                (
                    vec![rtype.clone()],
                    format!("{compartment}/{id}/{rtype}"),
                    vec![f],
                )
            }
        };

        let reg = self.search_registry();
        let reg = reg.as_ref();
        // `_contained` / `_containedType`: type searches only.
        let mut contained = ContainedMode::of(params)?;
        let mut contained_unsupported: Option<String> = None;
        if contained.searches_contained() && !matches!(scope, SearchScope::Type(_)) {
            let value = if contained.matches == Matches::Both {
                "both"
            } else {
                "true"
            };
            let message = format!(
                "_contained={value} is supported on type searches (GET [base]/[type]) only"
            );
            if strict {
                return Err(FhirError::not_supported(message));
            }
            contained_unsupported = Some(message);
            contained.matches = Matches::Plain;
        }
        // Each criterion inside a contained resource (`#Type` pids).
        let mut inside: Vec<Filter> = Vec::new();
        let inside_map = match (&scope, contained.searches_contained()) {
            (SearchScope::Type(t), true) => Some(crate::search::contained::pid_map(reg, t)),
            _ => None,
        };
        // A parameter that cannot apply under `_contained=true|both`:
        // 400 under strict handling, else ignored with a warning.
        let unsupported = |name: &str, why: &str| -> FhirResult<String> {
            let message = format!(
                "search parameter `{name}`: {why} is not supported with _contained=true|both"
            );
            if strict {
                Err(FhirError::not_supported(message))
            } else {
                Ok(message)
            }
        };
        // Custom parameters searched before their reindex finished.
        let mut incomplete: Vec<String> = Vec::new();
        let mut count = i64::from(self.default_page_size);
        let mut sort = Vec::new();
        let mut total = Total::Default;
        let mut summary = None;
        let mut elements: Option<Vec<String>> = None;
        let mut includes: Vec<IncludeSpec> = Vec::new();
        let mut revincludes: Vec<IncludeSpec> = Vec::new();
        let mut page = PageAt::First;
        let mut kept: Vec<(String, String)> = Vec::new();
        let mut ignored: Vec<String> = contained_unsupported.iter().cloned().collect();
        // Per searched type, the filters of each type.
        let search_types = types.clone();
        let mut per_type: Vec<(String, Vec<Filter>)> = search_types
            .iter()
            .map(|t| (t.clone(), Vec::new()))
            .collect();

        for (name, value) in params {
            let base_name = name.split(':').next().unwrap_or_default();
            match base_name {
                "_count" => {
                    count = self.page_size(value)?;
                }
                "_sort" if contained.searches_contained() => {
                    ignored.push(unsupported(name, "_sort")?);
                }
                "_include" | "_revinclude"
                    if contained.searches_contained() && contained.return_contained =>
                {
                    ignored.push(unsupported(name, "with _containedType=contained, it")?);
                }
                "_sort" => {
                    sort = parse_sort(reg, &types, value)?;
                    kept.push((name.clone(), value.clone()));
                }
                "_total" => {
                    total = match value.as_str() {
                        "none" => Total::None,
                        "estimate" | "accurate" => Total::Accurate,
                        _ => {
                            return Err(FhirError::invalid(format!(
                                "_total must be none, estimate or accurate, not `{value}`"
                            )))
                        }
                    };
                    kept.push((name.clone(), value.clone()));
                }
                "_summary" => {
                    summary = Some(Summary::parse(value).ok_or_else(|| {
                        FhirError::invalid(format!(
                            "_summary must be true, text, data, count or false, not `{value}`"
                        ))
                    })?);
                    kept.push((name.clone(), value.clone()));
                }
                "_elements" => {
                    elements = Some(
                        value
                            .split(',')
                            .map(|e| e.trim().to_string())
                            .filter(|e| !e.is_empty())
                            .collect(),
                    );
                    kept.push((name.clone(), value.clone()));
                }
                "_include" | "_revinclude" => {
                    let iterate = match name.split_once(':') {
                        None => false,
                        Some((_, "iterate" | "recurse")) => true,
                        Some((_, m)) => {
                            return Err(FhirError::invalid(format!(
                                "{base_name}: modifier `:{m}` is not supported (only :iterate)"
                            )))
                        }
                    };
                    let spec = parse_include(reg, base_name, value, iterate)?;
                    if base_name == "_include" {
                        includes.push(spec);
                    } else {
                        revincludes.push(spec);
                    }
                    kept.push((name.clone(), value.clone()));
                }
                "_contained" | "_containedType" => {
                    // Left out of `self` when not applied (reported above).
                    if contained_unsupported.is_none() {
                        kept.push((name.clone(), value.clone()));
                    }
                }
                "_format" | "_pretty" => kept.push((name.clone(), value.clone())),
                CURSOR_PARAM => page = decode_cursor(value)?,
                "_type" => kept.push((name.clone(), value.clone())),
                n if RESULT_PARAMETERS.contains(&n) => {}
                _ => {
                    let check_types: Vec<String> = if search_types.is_empty() {
                        vec!["Resource".to_string()]
                    } else {
                        search_types.clone()
                    };
                    let unknown: Vec<&String> = check_types
                        .iter()
                        .filter(|t| {
                            if t.as_str() == "Resource" {
                                // System search over every type: only the
                                // common parameters.
                                !is_known(reg, "Patient", name)
                                    || reg
                                        .get(
                                            "Patient",
                                            name.split(['.', ':']).next().unwrap_or_default(),
                                        )
                                        .is_some_and(|p| p.key_type != "Resource")
                            } else {
                                !is_known(reg, t, name)
                            }
                        })
                        .collect();
                    if !unknown.is_empty() {
                        let message = format!(
                            "unknown search parameter `{name}` for {}",
                            unknown
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        if strict {
                            return Err(FhirError::invalid(message));
                        }
                        ignored.push(message);
                        continue;
                    }
                    let code = name.split(['.', ':']).next().unwrap_or_default();
                    for t in &search_types {
                        if self.reindex_pending(t, code) {
                            incomplete.push(format!(
                                "search parameter `{code}` of {t} is new or changed and existing resources are being indexed for it (see $reindex); results may be incomplete until that finishes"
                            ));
                        }
                    }
                    if search_types.is_empty() {
                        // Common parameters: the same filter for every type.
                        if base_name == "_filter" {
                            crate::search::filter::check_common(reg, value)?;
                        }
                        filters.push(parse_filter(
                            reg,
                            "Patient",
                            name,
                            value,
                            &self.base_url,
                            0,
                        )?);
                    } else {
                        let mut parsed = Vec::new();
                        for (t, _) in per_type.iter() {
                            parsed.push(parse_filter(reg, t, name, value, &self.base_url, 0)?);
                        }
                        if let (Some(map), [(t, _)]) = (&inside_map, per_type.as_slice()) {
                            match crate::search::contained::to_contained(&parsed[0], t, map) {
                                Ok(f) => inside.push(f),
                                Err(why) => {
                                    ignored.push(unsupported(name, why)?);
                                    continue;
                                }
                            }
                        }
                        for ((_, fs), f) in per_type.iter_mut().zip(parsed) {
                            fs.push(f);
                        }
                    }
                    kept.push((name.clone(), value.clone()));
                }
            }
        }
        // One type: its filters. Several: identical filters apply as they
        // are, else each type's filters in a group of its own.
        match per_type.len() {
            0 => {}
            1 => filters.extend(per_type.pop().expect("one").1),
            _ => {
                if per_type.windows(2).all(|w| w[0].1 == w[1].1) {
                    filters.extend(per_type.pop().expect("several").1);
                } else {
                    filters.push(Filter::Or(
                        per_type
                            .into_iter()
                            .map(|(t, mut fs)| {
                                fs.insert(0, Filter::Types(vec![t]));
                                fs
                            })
                            .collect(),
                    ));
                }
            }
        }

        let count = if summary == Some(Summary::Count) {
            0
        } else {
            count
        };
        let (mut hits, positions, more, total, near) = if contained.searches_contained() {
            // Permission on the type searched (403 without); the matches
            // are then limited to containers the caller may see.
            self.search_reach_filter(access, &types)?;
            let outer: Vec<Filter> = self.search_reach_filter(access, &[])?.into_iter().collect();
            let rtype = types[0].clone();
            let mut found = self
                .contained_matches(
                    reader, contained, rtype, filters, inside, outer, count, &page, total,
                )
                .await?;
            let (hits, positions): (Vec<Hit>, Vec<Option<i64>>) =
                std::mem::take(&mut found.0).into_iter().unzip();
            (hits, positions, found.1, found.2, None)
        } else {
            // `near` without `_sort`: nearest first (R4 location.html#positional
            // makes the distance a deciding factor of the selection). With or
            // without `_sort`, each match carries its distance.
            if sort.is_empty() {
                sort.extend(crate::search::parse::nearest_first(&filters));
            }
            let near = crate::search::parse::NearDistance::of(&filters);
            // What the caller may see (patient compartment, scope constraints).
            if let Some(f) = self.search_reach_filter(access, &types)? {
                filters.push(f);
            }
            // Codes of `:in`, `:not-in`, `:below`, `:above` from the terminology.
            self.resolve_code_sets(&mut filters).await?;

            let counted_by_index = match types.as_slice() {
                [rtype] => {
                    !filters.is_empty()
                        && filters.iter().all(|f| match f {
                            Filter::Index {
                                pids,
                                negate: false,
                                ..
                            } => {
                                !pids.is_empty()
                                    && pids.iter().all(|&pid| reg.numbers_under(rtype, pid))
                            }
                            _ => false,
                        })
                }
                _ => false,
            };
            let query = SearchQuery {
                types: types.clone(),
                counted_by_index,
                filters,
                sort,
                count,
                page: page.clone(),
            };
            let hits = if query.count == 0 {
                Vec::new()
            } else {
                reader.search(self.tenant, &query).await?
            };
            let (hits, more) = trim_page(hits, query.count, &page);
            let total = match total_known(total, &page, more, query.count, hits.len()) {
                Some(known) => known,
                None => Some(reader.count(self.tenant, &query).await?),
            };
            let positions = vec![None; hits.len()];
            (hits, positions, more, total, near)
        };

        // Links.
        let link = |cursor: Option<String>| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &kept {
                q.append_pair(k, v);
            }
            q.append_pair("_count", &count.to_string());
            if let Some(c) = cursor {
                q.append_pair(CURSOR_PARAM, &c);
            }
            let base = if path.is_empty() {
                self.base_url.clone()
            } else {
                format!("{}/{path}", self.base_url)
            };
            format!("{base}?{}", q.finish())
        };
        let self_cursor = match &page {
            PageAt::First => None,
            PageAt::Last => Some("last".to_string()),
            PageAt::After(v, r) => Some(encode_cursor(true, v, *r)),
            PageAt::Before(v, r) => Some(encode_cursor(false, v, *r)),
        };
        let mut links = vec![("self", link(self_cursor)), ("first", link(None))];
        let (has_previous, has_next) = neighbours(&page, more);
        if has_previous {
            if let Some(h) = hits.first() {
                links.push((
                    "previous",
                    link(Some(encode_cursor(false, &h.sort_values, h.rid))),
                ));
            }
        }
        if has_next {
            if let Some(h) = hits.last() {
                links.push((
                    "next",
                    link(Some(encode_cursor(true, &h.sort_values, h.rid))),
                ));
            }
        }
        if has_last(&page, has_previous, has_next) {
            links.push(("last", link(Some("last".to_string()))));
        }

        // Includes.
        let (included, cut) = self
            .included(reader, &hits, &includes, &revincludes)
            .await?;
        let included = self.visible_includes(reader, access, included).await?;
        let mut issues: Vec<Value> = ignored
            .iter()
            .map(|m| json!({"severity": "warning", "code": "not-supported", "diagnostics": format!("{m}; ignored")}))
            .collect();
        for m in &incomplete {
            issues.push(json!({"severity": "warning", "code": "incomplete", "diagnostics": m}));
        }
        if cut {
            issues.push(json!({
                "severity": "warning",
                "code": "too-costly",
                "diagnostics": format!(
                    "_include/_revinclude: a page includes at most {} resources (the server's limit); more matched and were left out; ask for smaller pages (_count)",
                    self.max_included
                ),
            }));
        }

        let shape = |body: &bytes::Bytes| -> FhirResult<bytes::Bytes> {
            if summary.is_none_or(|s| s == Summary::False) && elements.is_none() {
                return Ok(body.clone());
            }
            let mut value: Map<String, Value> = serde_json::from_slice(body)
                .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
            if let Some(s) = summary {
                apply_summary(&mut value, s);
            } else if let Some(names) = &elements {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                apply_elements(&mut value, &names);
            }
            Ok(serde_json::to_vec(&value).expect("serialises").into())
        };
        let mut entries = Vec::with_capacity(hits.len() + included.len() + 1);
        for (h, position) in hits.iter_mut().zip(&positions) {
            let mut full_url = format!("{}/{}/{}", self.base_url, h.rtype, h.id);
            if let Some(k) = position {
                // R4 search.html: the contained resource alone, its
                // fullUrl the container's with `#` and its local id.
                let (local, body) = super::search_contained::cut_out(&h.body, *k)?;
                full_url = format!("{full_url}#{local}");
                h.body = body;
            }
            entries.push(EntryOut {
                full_url: Some(full_url),
                resource: Some(shape(&h.body)?),
                search_mode: Some("match"),
                search_extension: near
                    .as_ref()
                    .filter(|_| h.rtype == "Location")
                    .and_then(|near| location_distance(near, &h.body))
                    .into_iter()
                    .collect(),
                ..Default::default()
            });
        }
        for i in &included {
            entries.push(EntryOut {
                full_url: Some(format!("{}/{}/{}", self.base_url, i.rtype, i.id)),
                resource: Some(shape(&i.body)?),
                search_mode: Some("include"),
                ..Default::default()
            });
        }
        if !issues.is_empty() {
            entries.push(bundle::outcome_entry(issues));
        }
        Ok(bundle::render_with_total(
            "searchset",
            total,
            &links,
            &entries,
        ))
    }

    /// The page of a `_contained=true|both` search of `rtype`: the matches
    /// (with the position of the contained resource for
    /// `_containedType=contained`), whether more follow, and the total.
    /// `plain` are the criteria on ordinary resources (`both`), `inside`
    /// the same on contained ones, `outer` what the caller may see.
    #[allow(clippy::too_many_arguments)]
    async fn contained_matches(
        &self,
        reader: &mut Reader<'_>,
        mode: ContainedMode,
        rtype: String,
        mut plain: Vec<Filter>,
        mut inside: Vec<Filter>,
        mut outer: Vec<Filter>,
        count: i64,
        page: &PageAt,
        total: Total,
    ) -> FhirResult<(Vec<(Hit, Option<i64>)>, bool, Option<i64>)> {
        self.resolve_code_sets(&mut plain).await?;
        self.resolve_code_sets(&mut inside).await?;
        self.resolve_code_sets(&mut outer).await?;
        let both = mode.matches == Matches::Both;
        if mode.return_contained {
            let q = crate::store::contained::ContainedQuery {
                rtype,
                filters: inside,
                plain: both.then_some(plain),
                outer,
                count,
                page: page.clone(),
            };
            let found = if count == 0 {
                Vec::new()
            } else {
                reader.search_contained(self.tenant, &q).await?
            };
            let (found, more) = trim_page(found, count, page);
            let total = match total_known(total, page, more, count, found.len()) {
                Some(known) => known,
                None => Some(reader.count_contained(self.tenant, &q).await?),
            };
            let hits = found.into_iter().map(|h| (h.hit, h.position)).collect();
            return Ok((hits, more, total));
        }
        // The containers (and with `both` the ordinary matches), as a
        // search over every type.
        let inner = Filter::Contained {
            rtype: rtype.clone(),
            filters: inside,
        };
        let mut filters = if both {
            plain.insert(0, Filter::Types(vec![rtype]));
            vec![Filter::Or(vec![plain, vec![inner]])]
        } else {
            vec![inner]
        };
        filters.extend(outer);
        let query = SearchQuery {
            types: Vec::new(),
            filters,
            sort: Vec::new(),
            count,
            page: page.clone(),
            counted_by_index: false,
        };
        let hits = if count == 0 {
            Vec::new()
        } else {
            reader.search(self.tenant, &query).await?
        };
        let (hits, more) = trim_page(hits, count, page);
        let total = match total_known(total, page, more, count, hits.len()) {
            Some(known) => known,
            None => Some(reader.count(self.tenant, &query).await?),
        };
        Ok((hits.into_iter().map(|h| (h, None)).collect(), more, total))
    }

    /// `_include` and `_revinclude` (with `:iterate`) for the matches, at
    /// most `max_included` of them; true when more were left out.
    async fn included(
        &self,
        reader: &mut Reader<'_>,
        hits: &[Hit],
        includes: &[IncludeSpec],
        revincludes: &[IncludeSpec],
    ) -> FhirResult<(Vec<Included>, bool)> {
        if hits.is_empty() || (includes.is_empty() && revincludes.is_empty()) {
            return Ok((Vec::new(), false));
        }
        // One more than the limit, to know whether the limit cut anything.
        let cap = i64::from(self.max_included) + 1;
        let mut seen: HashSet<i64> = hits.iter().map(|h| h.rid).collect();
        let mut out: Vec<Included> = Vec::new();
        // The resources the current round starts from: (rid, type, id).
        let mut frontier: Vec<(i64, String, String)> = hits
            .iter()
            .map(|h| (h.rid, h.rtype.clone(), h.id.clone()))
            .collect();
        for round in 0..=MAX_ITERATE {
            let mut found = Vec::new();
            for spec in includes.iter().filter(|s| round == 0 || s.iterate) {
                let rids: Vec<i64> = frontier
                    .iter()
                    .filter(|(_, t, _)| *t == spec.source_type)
                    .map(|(r, _, _)| *r)
                    .collect();
                let types: Vec<String> = spec.target_type.iter().cloned().collect();
                let left = cap - out.len() as i64 - found.len() as i64;
                if left <= 0 {
                    break;
                }
                found.extend(
                    reader
                        .include(self.tenant, &rids, &spec.pids, &types, left)
                        .await?,
                );
            }
            for spec in revincludes.iter().filter(|s| round == 0 || s.iterate) {
                let targets: Vec<(String, String)> = frontier
                    .iter()
                    .filter(|(_, t, _)| spec.target_type.as_ref().is_none_or(|x| x == t))
                    .map(|(_, t, i)| (t.clone(), i.clone()))
                    .collect();
                let left = cap - out.len() as i64 - found.len() as i64;
                if left <= 0 {
                    break;
                }
                found.extend(
                    reader
                        .revinclude(
                            self.tenant,
                            &targets,
                            Some(&spec.source_type),
                            &spec.pids,
                            left,
                        )
                        .await?,
                );
            }
            frontier.clear();
            for f in found {
                if seen.insert(f.rid) {
                    frontier.push((f.rid, f.rtype.clone(), f.id.clone()));
                    out.push(f);
                }
            }
            if frontier.is_empty() {
                break;
            }
        }
        let cut = out.len() > self.max_included as usize;
        out.truncate(self.max_included as usize);
        Ok((out, cut))
    }
}

/// The `location-distance` extension of a `near` match: the great-circle
/// distance from the searched point to the Location's `position`, in the
/// unit the search asked for, to three decimals. None without a position.
fn location_distance(near: &crate::search::parse::NearDistance, body: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct Position {
        latitude: f64,
        longitude: f64,
    }
    #[derive(serde::Deserialize)]
    struct Location {
        position: Option<Position>,
    }
    let position = serde_json::from_slice::<Location>(body).ok()?.position?;
    let (value, code) = near.to(position.latitude, position.longitude);
    let value = (value * 1000.0).round() / 1000.0;
    Some(json!({
        "url": "http://hl7.org/fhir/StructureDefinition/location-distance",
        "valueDistance": {
            "value": value,
            "unit": code,
            "system": "http://unitsofmeasure.org",
            "code": code,
        },
    }))
}

/// `Prefer: handling=strict` asks for errors on unknown parameters.
pub fn is_strict(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|p| {
        p.split([',', ';'])
            .any(|part| part.trim().eq_ignore_ascii_case("handling=strict"))
    })
}

/// Whether a page read at `page` has a `previous` and a `next` page
/// (`more`: a row beyond the page was found in the direction read).
pub(super) fn neighbours(page: &PageAt, more: bool) -> (bool, bool) {
    let previous = match page {
        PageAt::First => false,
        PageAt::After(..) => true,
        PageAt::Before(..) | PageAt::Last => more,
    };
    let next = match page {
        PageAt::First | PageAt::After(..) => more,
        PageAt::Before(..) => true,
        PageAt::Last => false,
    };
    (previous, next)
}

/// Whether a page links to the `last` one (the last page itself does not).
pub(super) fn has_last(page: &PageAt, previous: bool, next: bool) -> bool {
    next || (*page != PageAt::Last && previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let values = vec![
            SortValue::Int(5),
            SortValue::Text("x".into()),
            SortValue::Null,
            SortValue::Float(1.5),
        ];
        let c = encode_cursor(true, &values, 42);
        assert_eq!(
            decode_cursor(&c).unwrap(),
            PageAt::After(values.clone(), 42)
        );
        let c = encode_cursor(false, &values, 7);
        assert_eq!(decode_cursor(&c).unwrap(), PageAt::Before(values, 7));
        assert_eq!(decode_cursor("last").unwrap(), PageAt::Last);
        assert!(decode_cursor("garbage!").is_err());
    }

    #[test]
    fn compartments() {
        assert_eq!(
            compartment_params("Patient", "Observation"),
            vec!["subject", "performer"]
        );
        assert!(compartment_filter("Patient", "1", "Observation").is_ok());
        assert!(compartment_filter("Patient", "1", "CodeSystem").is_err());
        assert!(is_strict(Some("handling=strict")));
        assert!(!is_strict(Some("return=minimal")));
    }
}
