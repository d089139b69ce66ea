//! `Patient/$everything` (http://hl7.org/fhir/R4/patient-operation-everything.html)
//! and `Encounter/[id]/$everything`
//! (http://hl7.org/fhir/R4/encounter-operation-everything.html): a
//! patient's or an encounter's record as a `searchset` Bundle, paged.
//!
//! Rules (documented in README.md, "Patient/$everything" and
//! "Encounter/$everything"):
//! - The answer holds the owner (the Patient, the Encounter), every
//!   resource in its compartment (the R4 Patient or Encounter
//!   CompartmentDefinition, through the reference index), and the resources
//!   of the compartment's referenced types those refer to (one level:
//!   `REFERENCED_TYPES`, and for an encounter its Patient too). AuditEvents
//!   are never part of it: they are the server's own access log, and each
//!   `$everything` would otherwise list the records of the ones before it.
//! - `GET [base]/Patient/$everything` gathers every patient the caller may
//!   search; Encounter has the instance level only (as in R4).
//! - The caller needs the search permission on the owner's type; the
//!   answer holds only what the caller may search (the same reach as a
//!   search). With `_type`, each type named must be searchable (403
//!   otherwise); without, types the caller may not search are left out. An
//!   owner outside the caller's reach is answered 404, as a read would be.
//! - `_since`: resources whose `meta.lastUpdated` is at or after the
//!   instant. `start`/`end` (Patient only): care dates, applied to
//!   resources of the Patient compartment whose type has a `date` search
//!   parameter: such a resource is left out when it has date values and
//!   none of them shares an instant with `[start, end]`; other resources
//!   are kept. Resources referred to are those of the members kept.
//! - Pages are in the order resources were first stored, continued by a
//!   cursor after the last one served (`next`), so paging through the
//!   answer neither repeats nor skips a resource; `previous` reads before
//!   the first one served, `last` the end, both backward.

use std::sync::LazyLock;

use serde_json::{json, Value};

use super::bundle::{self, EntryOut};
use super::search::{compartment_params, compartment_types, decode_cursor, encode_cursor};
use super::{check_type, Fhir};
use crate::auth::access::Reach;
use crate::auth::scopes::Perm;
use crate::auth::Access;
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::range_micros;
use crate::fhir::outcome::IssueType;
use crate::search::registry::{registry, ParamType};
use crate::store::everything::EverythingQuery;
use crate::store::query::{Cmp, Cond, PageAt, Table};
use crate::store::{Filter, Hit};

/// Types of the resources the compartment refers to that join the answer.
pub const REFERENCED_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Medication",
    "Device",
];

/// Types never in the answer.
pub const EXCLUDED_TYPES: &[&str] = &["AuditEvent"];

const CURSOR: &str = super::search::CURSOR_PARAM;

/// A compartment `$everything` gathers (R4 CompartmentDefinition): its
/// parameters (`pid`s of every type's), the `date` parameters of its types
/// (care dates), and the types the answer may hold.
struct Compartment {
    /// The compartment's type: `Patient` or `Encounter`.
    kind: &'static str,
    pids: Vec<i64>,
    date_pids: Vec<i64>,
    /// Every type the answer may hold.
    types: Vec<String>,
    /// Types of the resources the members refer to that join the answer.
    referenced: Vec<&'static str>,
    /// The parameters of this `$everything` (R4 OperationDefinition).
    parameters: &'static [&'static str],
    /// Whether `[base]/Kind/$everything` (every owner) is defined.
    type_level: bool,
}

impl Compartment {
    fn of(
        kind: &'static str,
        referenced: Vec<&'static str>,
        parameters: &'static [&'static str],
        type_level: bool,
    ) -> Compartment {
        let mut pids = Vec::new();
        let mut date_pids = Vec::new();
        let mut types: Vec<String> = Vec::new();
        for t in compartment_types(kind) {
            if EXCLUDED_TYPES.contains(&t.as_str()) {
                continue;
            }
            for code in compartment_params(kind, &t) {
                if let Some(p) = registry().get(&t, &code) {
                    pids.push(p.pid);
                }
            }
            if t != kind {
                if let Some(p) = registry()
                    .get(&t, "date")
                    .filter(|p| p.ptype == ParamType::Date)
                {
                    date_pids.push(p.pid);
                }
            }
            types.push(t);
        }
        if !types.iter().any(|x| x == kind) {
            types.push(kind.to_string());
        }
        for t in &referenced {
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
        types.sort();
        Compartment {
            kind,
            pids,
            date_pids,
            types,
            referenced,
            parameters,
            type_level,
        }
    }
}

/// `Patient/$everything`: the patient's compartment and what it refers to.
static PATIENT: LazyLock<Compartment> = LazyLock::new(|| {
    Compartment::of(
        "Patient",
        REFERENCED_TYPES.to_vec(),
        &["_since", "_type", "_count", "start", "end"],
        true,
    )
});

/// `Encounter/[id]/$everything`: the encounter's compartment and what it
/// refers to, the patient among them (R4 Encounter-everything has no care
/// dates and no type level).
static ENCOUNTER: LazyLock<Compartment> = LazyLock::new(|| {
    let mut referenced = vec!["Patient"];
    referenced.extend_from_slice(REFERENCED_TYPES);
    Compartment::of(
        "Encounter",
        referenced,
        &["_since", "_type", "_count"],
        false,
    )
});

/// The compartment of `Kind/$everything`, for the types that have the
/// operation.
fn compartment(kind: &str) -> Option<&'static Compartment> {
    match kind {
        "Patient" => Some(&*PATIENT),
        "Encounter" => Some(&*ENCOUNTER),
        _ => None,
    }
}

/// Whether `[base]/{kind}(/[id])/$everything` is an operation of this
/// server (`instance`: with an id).
pub fn has_everything(kind: &str, instance: bool) -> bool {
    compartment(kind).is_some_and(|c| instance || c.type_level)
}

/// A Parameters body (`POST .../$everything`) as name/value pairs, as the
/// query string would give them.
pub fn parameters_input(body: &Value) -> FhirResult<Vec<(String, String)>> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(FhirError::invalid(
            "$everything takes a Parameters resource as its body",
        ));
    }
    let mut out = Vec::new();
    for p in body
        .get("parameter")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            return Err(FhirError::invalid("a parameter of $everything has no name"));
        };
        let value = p.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v)
        });
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => {
                return Err(FhirError::invalid(format!(
                    "parameter `{name}` of $everything needs a primitive value"
                )))
            }
        };
        out.push((name.to_string(), text));
    }
    Ok(out)
}

/// The request's parameters, read.
struct Asked {
    since: Option<(i64, i64)>,
    types: Option<Vec<String>>,
    count: i64,
    start: Option<i64>,
    end: Option<i64>,
    page: PageAt,
    /// Parameters repeated in the paging links.
    kept: Vec<(String, String)>,
    /// Unknown parameters, ignored (lenient handling).
    ignored: Vec<String>,
}

impl Fhir {
    fn everything_params(
        &self,
        c: &Compartment,
        params: &[(String, String)],
        strict: bool,
    ) -> FhirResult<Asked> {
        let mut asked = Asked {
            since: None,
            types: None,
            count: i64::from(self.default_page_size),
            start: None,
            end: None,
            page: PageAt::First,
            kept: Vec::new(),
            ignored: Vec::new(),
        };
        let date = |name: &str, value: &str, what: &str| {
            range_micros(value)
                .ok_or_else(|| FhirError::invalid(format!("{name} must be {what}, not `{value}`")))
        };
        for (name, value) in params {
            match name.as_str() {
                "_since" => {
                    asked.since = Some(date(
                        name,
                        value,
                        "an instant such as 2024-01-31T10:00:00Z",
                    )?);
                }
                "_type" => {
                    let types = asked.types.get_or_insert_with(Vec::new);
                    for t in value.split(',').map(str::trim) {
                        check_type(t).map_err(|_| {
                            FhirError::invalid(format!("_type: `{t}` is not a resource type"))
                        })?;
                        types.push(t.to_string());
                    }
                }
                "_count" => {
                    asked.count = self.page_size(value)?;
                    continue;
                }
                "start" if c.parameters.contains(&"start") => {
                    asked.start = Some(date(name, value, "a date such as 2020-01-01")?.0)
                }
                "end" if c.parameters.contains(&"end") => {
                    asked.end = Some(date(name, value, "a date such as 2020-12-31")?.1)
                }
                CURSOR => {
                    asked.page = match decode_cursor(value)? {
                        PageAt::After(v, rid) if v.is_empty() => PageAt::After(v, rid),
                        PageAt::Before(v, rid) if v.is_empty() => PageAt::Before(v, rid),
                        PageAt::Last => PageAt::Last,
                        _ => {
                            return Err(FhirError::invalid(format!(
                                "`{value}` is not a page cursor of $everything"
                            )))
                        }
                    };
                    continue;
                }
                "_format" | "_pretty" => {}
                other => {
                    let message = format!(
                        "unknown parameter `{other}` of {}/$everything (known: {})",
                        c.kind,
                        c.parameters.join(", ")
                    );
                    if strict {
                        return Err(FhirError::invalid(message));
                    }
                    asked.ignored.push(message);
                    continue;
                }
            }
            asked.kept.push((name.clone(), value.clone()));
        }
        if let (Some(s), Some(e)) = (asked.start, asked.end) {
            if s > e {
                return Err(FhirError::invalid("start must not be after end"));
            }
        }
        Ok(asked)
    }

    /// `Kind/[id]/$everything` (`id` given) or `Kind/$everything` (every
    /// owner; Patient only), `Kind` being `Patient` or `Encounter`: one page
    /// as a `searchset` Bundle (JSON bytes).
    pub async fn everything(
        &self,
        kind: &str,
        id: Option<&str>,
        params: &[(String, String)],
        strict: bool,
        access: &Access,
    ) -> FhirResult<Vec<u8>> {
        let c = compartment(kind)
            .filter(|c| id.is_some() || c.type_level)
            .ok_or_else(|| {
                FhirError::new(
                    404,
                    IssueType::NotSupported,
                    format!(
                        "`{kind}{}/$everything` is not an operation of this server",
                        if id.is_some() { "/[id]" } else { "" }
                    ),
                )
            })?;
        let asked = self.everything_params(c, params, strict)?;
        let owner_reach = self.permit(access, Perm::Search, c.kind)?;
        let owners = match id {
            Some(id) => {
                let v = self.read(c.kind, id).await?;
                let value: Option<Value> = v
                    .body
                    .as_deref()
                    .map(serde_json::from_slice)
                    .transpose()
                    .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
                let visible = match (&owner_reach, &value) {
                    (Reach::All, _) => true,
                    (reach, Some(value)) => self.within_reach(reach, c.kind, id, value).await?,
                    (_, None) => false,
                };
                if !visible {
                    return Err(FhirError::not_found(format!(
                        "{}/{id} is not known",
                        c.kind
                    )));
                }
                if self.audit && c.kind == "Encounter" {
                    if let (Some(slot), Some(patient)) = (
                        crate::audit::current(),
                        value.as_ref().and_then(subject_patient),
                    ) {
                        slot.add_patients(std::iter::once(patient));
                    }
                }
                Some(vec![id.to_string()])
            }
            // Patient-scoped callers: their patients' records only.
            None => match &owner_reach {
                Reach::Some(limits) if limits.iter().all(|l| l.patient.is_some()) => {
                    let mut ids: Vec<String> =
                        limits.iter().filter_map(|l| l.patient.clone()).collect();
                    ids.sort();
                    ids.dedup();
                    Some(ids)
                }
                _ => None,
            },
        };

        // What the caller may see: every type named in `_type` must be
        // searchable; the compartment is gathered within the caller's reach
        // over all the types it may search (the resources referred to are
        // those of the visible members, whatever `_type` keeps).
        if let Some(types) = &asked.types {
            self.search_reach_filter(access, types)?;
        }
        let reach = if access.unrestricted {
            None
        } else {
            let visible: Vec<String> = c
                .types
                .iter()
                .filter(|t| access.reach(Perm::Search, t).is_some())
                .cloned()
                .collect();
            self.search_reach_filter(access, &visible)?
        };
        let types = asked.types.clone().unwrap_or_default();
        let mut filters: Vec<Filter> = reach.into_iter().collect();
        if let Some((lo, hi)) = asked.since {
            filters.push(Filter::LastUpdated(vec![(Cmp::Ge, lo, hi)]));
        }
        if asked.start.is_some() || asked.end.is_some() {
            filters.push(care_dates(
                c,
                asked.start.unwrap_or(i64::MIN),
                asked.end.unwrap_or(i64::MAX),
            ));
        }
        let query = EverythingQuery {
            compartment: c.kind.to_string(),
            owners,
            compartment_pids: c.pids.clone(),
            referenced_types: c.referenced.iter().map(|t| t.to_string()).collect(),
            filters,
            types,
            excluded_types: EXCLUDED_TYPES.iter().map(|t| t.to_string()).collect(),
            page: asked.page.clone(),
            count: asked.count,
        };
        let mut hits = if asked.count == 0 {
            Vec::new()
        } else {
            self.store.everything(self.tenant, &query).await?
        };
        let forward = !matches!(asked.page, PageAt::Before(..) | PageAt::Last);
        let more = hits.len() as i64 > asked.count;
        if more {
            if forward {
                hits.truncate(asked.count as usize);
            } else {
                hits.remove(0);
            }
        }

        if self.audit {
            if let Some(slot) = crate::audit::current() {
                slot.add_patients(
                    hits.iter()
                        .filter(|h| h.rtype == "Patient")
                        .map(|h| h.id.clone()),
                );
            }
        }

        let path = match id {
            Some(id) => format!("{}/{}/{id}/$everything", self.base_url, c.kind),
            None => format!("{}/{}/$everything", self.base_url, c.kind),
        };
        let link = |cursor: Option<String>| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &asked.kept {
                q.append_pair(k, v);
            }
            q.append_pair("_count", &asked.count.to_string());
            if let Some(c) = cursor {
                q.append_pair(CURSOR, &c);
            }
            format!("{path}?{}", q.finish())
        };
        let links = page_links(&asked.page, &hits, more, &link);
        let total =
            (asked.page == PageAt::First && !more && asked.count > 0).then_some(hits.len() as i64);

        let mut entries: Vec<EntryOut> = hits
            .into_iter()
            .map(|h| EntryOut {
                full_url: Some(format!("{}/{}/{}", self.base_url, h.rtype, h.id)),
                resource: Some(h.body),
                search_mode: Some("match"),
                ..Default::default()
            })
            .collect();
        if !asked.ignored.is_empty() {
            let issues: Vec<Value> = asked
                .ignored
                .iter()
                .map(|m| json!({"severity": "warning", "code": "not-supported", "diagnostics": format!("{m}; ignored")}))
                .collect();
            entries.push(bundle::outcome_entry(issues));
        }
        Ok(bundle::render_with_total(
            "searchset",
            total,
            &links,
            &entries,
        ))
    }
}

/// The paging links of a page of `hits` (`more`: a row beyond the page
/// was found in the direction read), as search gives them: `previous` and
/// `next` continue before the first and after the last resource served
/// (an empty page continues from its own cursor), `last` reads the end
/// backward.
fn page_links(
    page: &PageAt,
    hits: &[Hit],
    more: bool,
    link: &dyn Fn(Option<String>) -> String,
) -> Vec<(&'static str, String)> {
    let self_cursor = match page {
        PageAt::First => None,
        PageAt::Last => Some("last".to_string()),
        PageAt::After(_, rid) => Some(encode_cursor(true, &[], *rid)),
        PageAt::Before(_, rid) => Some(encode_cursor(false, &[], *rid)),
    };
    let mut links = vec![("self", link(self_cursor)), ("first", link(None))];
    let (has_previous, has_next) = super::search::neighbours(page, more);
    // Where an empty page's neighbours start: its own cursor.
    let (before, after) = match (hits.first(), hits.last(), page) {
        (Some(f), Some(l), _) => (Some(f.rid), Some(l.rid)),
        (_, _, PageAt::After(_, rid)) => (Some(rid.saturating_add(1)), Some(*rid)),
        (_, _, PageAt::Before(_, rid)) => (Some(*rid), Some(rid.saturating_sub(1))),
        _ => (None, None),
    };
    if let (true, Some(rid)) = (has_previous, before) {
        links.push(("previous", link(Some(encode_cursor(false, &[], rid)))));
    }
    if let (true, Some(rid)) = (has_next, after) {
        links.push(("next", link(Some(encode_cursor(true, &[], rid)))));
    }
    if super::search::has_last(page, has_previous, has_next) {
        links.push(("last", link(Some("last".to_string()))));
    }
    links
}

/// The patient an Encounter is of (`subject`), for the audit record.
fn subject_patient(encounter: &Value) -> Option<String> {
    let reference = encounter.pointer("/subject/reference")?.as_str()?;
    let id = reference.rsplit('/').next()?;
    let rtype = reference.strip_suffix(id)?.trim_end_matches('/');
    (rtype == "Patient" || rtype.ends_with("/Patient")).then(|| id.to_string())
}

/// Care dates within `lo..=hi`: a resource with values of its type's
/// `date` parameter keeps only if one of them overlaps the period; one
/// without (or of a type without the parameter) is kept.
fn care_dates(c: &Compartment, lo: i64, hi: i64) -> Filter {
    let pids = c.date_pids.clone();
    Filter::Or(vec![
        vec![Filter::Missing {
            table: Table::Date,
            pids: pids.clone(),
            missing: true,
        }],
        vec![Filter::Index {
            table: Table::Date,
            pids,
            alts: vec![Cond::Overlaps { lo, hi }],
            negate: false,
        }],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compartment_of_everything() {
        assert!(PATIENT.types.iter().any(|t| t == "Observation"));
        assert!(PATIENT.types.iter().any(|t| t == "Practitioner"));
        assert!(!PATIENT.types.iter().any(|t| t == "AuditEvent"));
        let obs = registry().get("Observation", "subject").unwrap().pid;
        assert!(PATIENT.pids.contains(&obs));
        let audit = registry().get("AuditEvent", "patient").unwrap().pid;
        assert!(!PATIENT.pids.contains(&audit));
        let enc = registry().get("Encounter", "date").unwrap().pid;
        assert!(PATIENT.date_pids.contains(&enc));
    }

    #[test]
    fn encounter_compartment() {
        let obs = registry().get("Observation", "encounter").unwrap().pid;
        assert!(ENCOUNTER.pids.contains(&obs));
        let admin = registry()
            .get("MedicationAdministration", "context")
            .unwrap()
            .pid;
        assert!(ENCOUNTER.pids.contains(&admin));
        let subject = registry().get("Observation", "subject").unwrap().pid;
        assert!(!ENCOUNTER.pids.contains(&subject));
        for t in ["Encounter", "Patient", "Location", "Condition"] {
            assert!(ENCOUNTER.types.iter().any(|x| x == t), "{t}");
        }
        assert!(!ENCOUNTER.types.iter().any(|x| x == "AllergyIntolerance"));
        assert!(has_everything("Patient", false));
        assert!(has_everything("Encounter", true));
        assert!(!has_everything("Encounter", false));
        assert!(!has_everything("Observation", true));
        assert_eq!(
            subject_patient(&json!({"subject": {"reference": "Patient/p1"}})),
            Some("p1".to_string())
        );
        assert_eq!(
            subject_patient(&json!({"subject": {"reference": "Group/g"}})),
            None
        );
    }

    #[test]
    fn paging_links() {
        let hit = |rid| Hit {
            rid,
            rtype: "Patient".into(),
            id: rid.to_string(),
            version: 1,
            last_updated: 0,
            body: bytes::Bytes::new(),
            sort_values: Vec::new(),
        };
        let link = |c: Option<String>| match c {
            None => "first".to_string(),
            Some(c) => match decode_cursor(&c).unwrap() {
                PageAt::After(_, rid) => format!("after {rid}"),
                PageAt::Before(_, rid) => format!("before {rid}"),
                PageAt::Last => "last".to_string(),
                PageAt::First => unreachable!(),
            },
        };
        let rels = |page: PageAt, hits: &[Hit], more: bool| {
            page_links(&page, hits, more, &link)
                .into_iter()
                .map(|(rel, url)| format!("{rel}: {url}"))
                .collect::<Vec<_>>()
        };
        let page = [hit(3), hit(5)];
        assert_eq!(
            rels(PageAt::First, &page, true),
            ["self: first", "first: first", "next: after 5", "last: last"]
        );
        assert_eq!(
            rels(PageAt::First, &page, false),
            ["self: first", "first: first"]
        );
        assert_eq!(
            rels(PageAt::After(vec![], 2), &page, false),
            [
                "self: after 2",
                "first: first",
                "previous: before 3",
                "last: last"
            ]
        );
        assert_eq!(
            rels(PageAt::Before(vec![], 6), &page, true),
            [
                "self: before 6",
                "first: first",
                "previous: before 3",
                "next: after 5",
                "last: last"
            ]
        );
        assert_eq!(
            rels(PageAt::Last, &page, false),
            ["self: last", "first: first"]
        );
        // An empty page continues from its own cursor, even at the ends of
        // the range.
        assert_eq!(
            rels(PageAt::After(vec![], i64::MAX), &[], false),
            [
                "self: after 9223372036854775807",
                "first: first",
                "previous: before 9223372036854775807",
                "last: last"
            ]
        );
        assert_eq!(
            rels(PageAt::Before(vec![], i64::MIN), &[], false),
            [
                "self: before -9223372036854775808",
                "first: first",
                "next: after -9223372036854775808",
                "last: last"
            ]
        );
    }

    #[test]
    fn parameters_bodies() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"},
            {"name": "_count", "valueInteger": 5},
            {"name": "_type", "valueCode": "Observation"},
        ]});
        assert_eq!(
            parameters_input(&body).unwrap(),
            vec![
                ("_since".to_string(), "2024-01-01T00:00:00Z".to_string()),
                ("_count".to_string(), "5".to_string()),
                ("_type".to_string(), "Observation".to_string()),
            ]
        );
        assert!(parameters_input(&json!({"resourceType": "Patient"})).is_err());
        let bad = json!({"resourceType": "Parameters", "parameter": [{"name": "_type"}]});
        assert!(parameters_input(&bad).is_err());
    }
}
