//! The terminology operations (http://hl7.org/fhir/R4/terminology-service.html):
//! `CodeSystem/$lookup`, `$validate-code`, `$subsumes`, `ValueSet/$expand`,
//! `ValueSet/$validate-code`, over ICD-10-CM in memory and over CodeSystems
//! and ValueSets stored through the REST API (read on demand). Inputs come
//! from the query string (GET) or a Parameters body (POST), unified in
//! [`OpInput`]; answers are Parameters or ValueSet JSON.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::search::SearchScope;
use super::Fhir;
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::terminology::codesystem::{self, CodeSystem};
use crate::terminology::icd10cm::SYSTEM as ICD10CM;
use crate::terminology::valueset::{self, Hit, Members, Resolver};

/// Operations on CodeSystem and ValueSet, by name.
pub const TERMINOLOGY_OPERATIONS: &[(&str, &str)] = &[
    ("CodeSystem", "$lookup"),
    ("CodeSystem", "$validate-code"),
    ("CodeSystem", "$subsumes"),
    ("ValueSet", "$expand"),
    ("ValueSet", "$validate-code"),
];

/// Largest expansion returned without `count`.
const MAX_EXPANSION: usize = 10_000;

/// A coding given to an operation: (system, version, code, display).
type CodingIn = (Option<String>, Option<String>, String, Option<String>);

/// The parameters of one operation call, by name.
#[derive(Debug, Default)]
pub struct OpInput {
    values: Vec<(String, Value)>,
}

impl OpInput {
    /// From query parameters (all strings).
    pub fn from_query(params: &[(String, String)]) -> Self {
        OpInput {
            values: params
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        }
    }

    /// From a Parameters body: each parameter's value[x] or resource.
    pub fn from_parameters(body: &Value) -> FhirResult<Self> {
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(FhirError::invalid("the body must be a Parameters resource"));
        }
        let mut values = Vec::new();
        for p in body
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let value = p.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.starts_with("value") || *k == "resource")
                    .map(|(_, v)| v.clone())
            });
            if let Some(v) = value {
                values.push((name.to_string(), v));
            }
        }
        Ok(OpInput { values })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn all_text(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.as_str().map(str::to_string))
            .collect()
    }

    fn flag(&self, name: &str) -> FhirResult<bool> {
        match self.text(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(FhirError::invalid(format!(
                "{name} must be true or false, not `{other}`"
            ))),
        }
    }

    fn number(&self, name: &str) -> FhirResult<Option<usize>> {
        self.text(name)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    FhirError::invalid(format!("{name} must be a whole number ≥ 0, not `{v}`"))
                })
            })
            .transpose()
    }

    /// (system, version, code, display) from `coding`, `codeableConcept`
    /// (its first coding) or the separate parameters; `system_name` is the
    /// parameter naming the system (`system` or `url`).
    fn coding(&self, code_name: &str, coding_name: &str) -> Option<CodingIn> {
        let from = |c: &Value| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
            s("code").map(|code| (s("system"), s("version"), code, s("display")))
        };
        if let Some(c) = self.get(coding_name) {
            return from(c);
        }
        if let Some(cc) = self.get("codeableConcept") {
            return cc
                .get("coding")
                .and_then(Value::as_array)
                .and_then(|l| l.first())
                .and_then(from);
        }
        let code = self.text(code_name)?;
        Some((
            self.text("system").or_else(|| self.text("url")),
            self.text("version").or_else(|| self.text("systemVersion")),
            code,
            self.text("display"),
        ))
    }
}

fn param(name: &str, value: (&str, Value)) -> Value {
    let mut p = Map::new();
    p.insert("name".into(), json!(name));
    p.insert(value.0.into(), value.1);
    Value::Object(p)
}

fn parameters(list: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": list})
}

fn unknown_system(system: &str, version: Option<&str>) -> FhirError {
    FhirError::new(
        404,
        IssueType::NotFound,
        format!(
            "code system {system}{} is not known to this server",
            version.map(|v| format!(" version {v}")).unwrap_or_default()
        ),
    )
}

/// Code systems and value sets gathered for one compose evaluation.
struct Gathered {
    systems: HashMap<(String, Option<String>), Arc<CodeSystem>>,
    value_sets: HashMap<String, Members>,
}

impl Resolver for Gathered {
    fn code_system(&self, url: &str, version: Option<&str>) -> Option<Arc<CodeSystem>> {
        self.systems
            .get(&(url.to_string(), version.map(str::to_string)))
            .cloned()
    }
    fn value_set(&self, url: &str) -> Option<&Members> {
        self.value_sets.get(url)
    }
}

impl Fhir {
    /// A code system by URL: ICD-10-CM in memory, or a stored CodeSystem.
    pub async fn code_system(
        &self,
        url: &str,
        version: Option<&str>,
    ) -> FhirResult<Option<Arc<CodeSystem>>> {
        if url == ICD10CM {
            return Ok(self.terminology.icd10cm(version));
        }
        let Some(resource) = self.stored_by_url("CodeSystem", url, version).await? else {
            return Ok(None);
        };
        codesystem::from_resource(&resource)
            .map(|cs| Some(Arc::new(cs)))
            .map_err(FhirError::invalid)
    }

    /// The stored resource of a type with a canonical URL (and version).
    pub(super) async fn stored_by_url(
        &self,
        rtype: &str,
        url: &str,
        version: Option<&str>,
    ) -> FhirResult<Option<Value>> {
        let mut params = vec![("url".to_string(), url.to_string())];
        if let Some(v) = version {
            params.push(("version".to_string(), v.to_string()));
        }
        let bundle = self
            .search(
                &SearchScope::Type(rtype.to_string()),
                &params,
                false,
                &crate::auth::Access::unrestricted("terminology"),
            )
            .await?;
        let bundle: Value = serde_json::from_slice(&bundle)
            .map_err(|e| FhirError::internal(format!("search answer unreadable: {e}")))?;
        Ok(bundle.pointer("/entry/0/resource").cloned())
    }

    pub(super) async fn stored_by_id(&self, rtype: &str, id: &str) -> FhirResult<Value> {
        let v = self.read(rtype, id).await?;
        serde_json::from_slice(v.body.as_deref().unwrap_or_default())
            .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))
    }

    /// The code system an operation names: the instance, or `system`/`url`.
    async fn target_system(
        &self,
        id: Option<&str>,
        system: Option<&str>,
        version: Option<&str>,
    ) -> FhirResult<Arc<CodeSystem>> {
        if let Some(id) = id {
            let resource = self.stored_by_id("CodeSystem", id).await?;
            return codesystem::from_resource(&resource)
                .map(Arc::new)
                .map_err(FhirError::invalid);
        }
        let system = system.ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "the code system is missing (system or url)",
            )
        })?;
        self.code_system(system, version)
            .await?
            .ok_or_else(|| unknown_system(system, version))
    }

    /// `CodeSystem/$lookup`.
    pub async fn lookup(&self, id: Option<&str>, input: &OpInput) -> FhirResult<Value> {
        let (system, version, code, _) = input.coding("code", "coding").ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "$lookup needs code and system, or coding",
            )
        })?;
        let cs = self
            .target_system(id, system.as_deref(), version.as_deref())
            .await?;
        let Some(cid) = cs.id_of(&code) else {
            return Err(FhirError::new(
                404,
                IssueType::CodeInvalid,
                format!("`{code}` is not a code of {}", cs.url),
            ));
        };
        let c = cs.get(cid);
        let wanted = input.all_text("property");
        let want = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
        let mut out = vec![param(
            "name",
            (
                "valueString",
                json!(cs.name.clone().unwrap_or_else(|| cs.url.clone())),
            ),
        )];
        if let Some(v) = &cs.version {
            out.push(param("version", ("valueString", json!(v))));
        }
        out.push(param("display", ("valueString", json!(c.display.as_ref()))));
        if input.flag("designations").unwrap_or(true) {
            for d in &c.designations {
                let mut part = vec![param("value", ("valueString", json!(d.value.as_ref())))];
                if let Some(l) = &d.language {
                    part.insert(0, param("language", ("valueCode", json!(l.as_ref()))));
                }
                if let Some(u) = &d.use_code {
                    part.push(param(
                        "use",
                        ("valueCoding", json!({"system": cs.url, "code": u.as_ref()})),
                    ));
                }
                out.push(json!({"name": "designation", "part": part}));
            }
        }
        let mut props: Vec<(String, (&str, Value))> = Vec::new();
        if let Some(p) = c.parent {
            props.push((
                "parent".into(),
                ("valueCode", json!(cs.get(p).code.as_ref())),
            ));
        }
        for &k in &c.children {
            props.push((
                "child".into(),
                ("valueCode", json!(cs.get(k).code.as_ref())),
            ));
        }
        props.push((
            "notSelectable".into(),
            ("valueBoolean", json!(c.not_selectable)),
        ));
        if cs.billable_property {
            props.push((
                "billable".into(),
                ("valueBoolean", json!(cs.is_billable(c))),
            ));
        }
        props.push(("inactive".into(), ("valueBoolean", json!(c.inactive))));
        for (name, value) in &c.properties {
            if matches!(name.as_ref(), "parent" | "notSelectable" | "inactive") {
                continue;
            }
            props.push((name.to_string(), value.to_value_entry()));
        }
        for (name, value) in props {
            if want(&name) {
                out.push(json!({"name": "property", "part": [
                    param("code", ("valueCode", json!(name))),
                    param("value", value),
                ]}));
            }
        }
        Ok(parameters(out))
    }

    /// `CodeSystem/$validate-code`.
    pub async fn validate_code_system(
        &self,
        id: Option<&str>,
        input: &OpInput,
    ) -> FhirResult<Value> {
        let (system, version, code, display) = input.coding("code", "coding").ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "$validate-code needs code, coding or codeableConcept",
            )
        })?;
        let url = input.text("url").or(system);
        let cs = self
            .target_system(id, url.as_deref(), version.as_deref())
            .await?;
        Ok(validation_answer(
            &cs,
            cs.id_of(&code),
            &code,
            display.as_deref(),
            None,
        ))
    }

    /// `CodeSystem/$subsumes`.
    pub async fn subsumes(&self, id: Option<&str>, input: &OpInput) -> FhirResult<Value> {
        let a = input.coding("codeA", "codingA");
        let b = input.coding("codeB", "codingB");
        let (Some(a), Some(b)) = (a, b) else {
            return Err(FhirError::bad_request(
                IssueType::Required,
                "$subsumes needs codeA and codeB (or codingA and codingB)",
            ));
        };
        let system = input.text("system").or(a.0.clone()).or(b.0.clone());
        let cs = self
            .target_system(id, system.as_deref(), input.text("version").as_deref())
            .await?;
        let find = |code: &str| {
            cs.id_of(code).ok_or_else(|| {
                FhirError::new(
                    404,
                    IssueType::CodeInvalid,
                    format!("`{code}` is not a code of {}", cs.url),
                )
            })
        };
        let (ia, ib) = (find(&a.2)?, find(&b.2)?);
        let outcome = if ia == ib {
            "equivalent"
        } else if cs.subsumes(ia, ib) {
            "subsumes"
        } else if cs.subsumes(ib, ia) {
            "subsumed-by"
        } else {
            "not-subsumed"
        };
        Ok(parameters(vec![param(
            "outcome",
            ("valueCode", json!(outcome)),
        )]))
    }

    /// The ValueSet an operation names: instance, `url`, or `valueSet`.
    async fn target_value_set(&self, id: Option<&str>, input: &OpInput) -> FhirResult<Value> {
        if let Some(id) = id {
            return self.stored_by_id("ValueSet", id).await;
        }
        if let Some(vs) = input.get("valueSet").filter(|v| v.is_object()) {
            return Ok(vs.clone());
        }
        let url = input.text("url").ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "the value set is missing (url or valueSet)",
            )
        })?;
        if let Some(compose) = valueset::implicit_compose(&url) {
            return Ok(
                json!({"resourceType": "ValueSet", "url": url, "status": "active", "compose": compose}),
            );
        }
        self.stored_by_url("ValueSet", &url, input.text("valueSetVersion").as_deref())
            .await?
            .ok_or_else(|| {
                FhirError::not_found(format!("value set {url} is not known to this server"))
            })
    }

    /// Evaluates a ValueSet's compose, fetching what it refers to.
    pub(super) async fn members(&self, vs: &Value, depth: usize) -> FhirResult<Members> {
        if depth > 8 {
            return Err(FhirError::invalid(
                "value sets include each other too deeply",
            ));
        }
        let compose = vs.get("compose").cloned().unwrap_or_else(|| json!({}));
        let mut gathered = Gathered {
            systems: HashMap::new(),
            value_sets: HashMap::new(),
        };
        for (url, version) in valueset::referenced_code_systems(&compose) {
            if let Some(cs) = self.code_system(&url, version.as_deref()).await? {
                gathered.systems.insert((url, version), cs);
            }
        }
        for url in valueset::referenced_value_sets(&compose) {
            let nested = match valueset::implicit_compose(&url) {
                Some(c) => json!({"compose": c}),
                None => self
                    .stored_by_url("ValueSet", &url, None)
                    .await?
                    .ok_or_else(|| FhirError::not_found(format!("value set {url} is not known")))?,
            };
            let members = Box::pin(self.members(&nested, depth + 1)).await?;
            gathered.value_sets.insert(url, members);
        }
        valueset::evaluate(&compose, &gathered)
            .map_err(|e| FhirError::new(422, IssueType::Processing, e))
    }

    /// `ValueSet/$expand`.
    pub async fn expand(&self, id: Option<&str>, input: &OpInput) -> FhirResult<Value> {
        let vs = self.target_value_set(id, input).await?;
        let members = self.members(&vs, 0).await?;
        let filter = input.text("filter");
        let offset = input.number("offset")?.unwrap_or(0);
        let count = input.number("count")?;
        let active_only = input.flag("activeOnly")?;
        let designations = input.flag("includeDesignations")?;
        let language = input.text("displayLanguage");
        let mut hits = valueset::filtered(&members, filter.as_deref());
        if active_only {
            hits.retain(|h| !matches!(h, Hit::Known(cs, id) if cs.get(*id).inactive));
        }
        let total = hits.len();
        if count.is_none() && total > MAX_EXPANSION {
            return Err(FhirError::new(
                422,
                IssueType::TooCostly,
                format!("the expansion has {total} concepts; ask for a page with count (and offset) or narrow it with filter"),
            ));
        }
        let contains: Vec<Value> = hits
            .iter()
            .skip(offset)
            .take(count.unwrap_or(MAX_EXPANSION))
            .map(|h| match h {
                Hit::Known(cs, cid) => {
                    let c = cs.get(*cid);
                    let mut e = json!({"system": cs.url});
                    if let Some(v) = &cs.version {
                        e["version"] = json!(v);
                    }
                    e["code"] = json!(c.code.as_ref());
                    e["display"] = json!(display_in(c, language.as_deref()));
                    if c.not_selectable {
                        e["abstract"] = json!(true);
                    }
                    if c.inactive {
                        e["inactive"] = json!(true);
                    }
                    if designations && !c.designations.is_empty() {
                        e["designation"] = c
                            .designations
                            .iter()
                            .map(|d| {
                                let mut x = json!({"value": d.value.as_ref()});
                                if let Some(l) = &d.language {
                                    x["language"] = json!(l.as_ref());
                                }
                                if let Some(u) = &d.use_code {
                                    x["use"] = json!({"system": cs.url, "code": u.as_ref()});
                                }
                                x
                            })
                            .collect();
                    }
                    e
                }
                Hit::Listed(l) => {
                    let mut e = json!({"system": l.system, "code": l.code});
                    if let Some(d) = &l.display {
                        e["display"] = json!(d);
                    }
                    e
                }
            })
            .collect();
        let mut params = vec![json!({"name": "offset", "valueInteger": offset})];
        if let Some(c) = count {
            params.push(json!({"name": "count", "valueInteger": c}));
        }
        if let Some(f) = &filter {
            params.push(json!({"name": "filter", "valueString": f}));
        }
        if let Some(lang) = input.text("displayLanguage") {
            params.push(json!({"name": "displayLanguage", "valueCode": lang}));
        }
        let mut out = json!({"resourceType": "ValueSet", "status": vs.get("status").cloned().unwrap_or(json!("active"))});
        for key in ["id", "url", "version", "name", "title"] {
            if let Some(v) = vs.get(key) {
                out[key] = v.clone();
            }
        }
        out["expansion"] = json!({
            "identifier": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "timestamp": crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
            "total": total,
            "offset": offset,
            "parameter": params,
            "contains": contains,
        });
        Ok(out)
    }

    /// `ValueSet/$validate-code`.
    pub async fn validate_value_set_code(
        &self,
        id: Option<&str>,
        input: &OpInput,
    ) -> FhirResult<Value> {
        let (system, version, code, display) = input.coding("code", "coding").ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "$validate-code needs code and system, coding or codeableConcept",
            )
        })?;
        let system = system.ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Required,
                "$validate-code needs the code's system",
            )
        })?;
        let vs = self.target_value_set(id, input).await?;
        let members = self.members(&vs, 0).await?;
        if let Some((cs, cid)) = members.find(&system, &code) {
            return Ok(validation_answer(&cs, cid, &code, display.as_deref(), None));
        }
        if let Some(l) = members.find_listed(&system, &code) {
            let mut out = vec![param("result", ("valueBoolean", json!(true)))];
            if let Some(d) = &l.display {
                out.push(param("display", ("valueString", json!(d))));
            }
            return Ok(parameters(out));
        }
        let _ = version;
        let vs_name = vs
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or("the value set");
        Ok(parameters(vec![
            param("result", ("valueBoolean", json!(false))),
            param(
                "message",
                (
                    "valueString",
                    json!(format!("{system}#{code} is not in {vs_name}")),
                ),
            ),
        ]))
    }
}

/// The Parameters of `$validate-code` for a code looked up in `cs`.
fn validation_answer(
    cs: &CodeSystem,
    found: Option<u32>,
    code: &str,
    display: Option<&str>,
    _context: Option<&str>,
) -> Value {
    let Some(cid) = found else {
        let near: Vec<String> = cs
            .suggestions(code, 5)
            .into_iter()
            .map(|i| cs.get(i).code.to_string())
            .collect();
        let mut message = format!("`{code}` is not a code of {}", cs.url);
        if !near.is_empty() {
            message.push_str(&format!("; nearest valid codes: {}", near.join(", ")));
        }
        return parameters(vec![
            param("result", ("valueBoolean", json!(false))),
            param("message", ("valueString", json!(message))),
        ]);
    };
    let c = cs.get(cid);
    let mut out = Vec::new();
    let display_ok = display.is_none_or(|d| display_matches(cs, cid, d));
    out.push(param("result", ("valueBoolean", json!(display_ok))));
    if !display_ok {
        out.push(param(
            "message",
            (
                "valueString",
                json!(format!(
                    "`{}` is not a display of {code}; the display is `{}`",
                    display.unwrap_or_default(),
                    c.display
                )),
            ),
        ));
    }
    out.push(param("display", ("valueString", json!(c.display.as_ref()))));
    parameters(out)
}

/// A display matches the concept's display or a designation, ignoring case
/// and spacing.
pub fn display_matches(cs: &CodeSystem, id: u32, display: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let d = norm(display);
    let c = cs.get(id);
    norm(&c.display) == d || c.designations.iter().any(|x| norm(&x.value) == d)
}

impl Fhir {
    /// Loads the releases imported into the database (`charaka terminology
    /// import`) beside the shipped one.
    pub async fn load_releases(&self) -> FhirResult<()> {
        for (version, data) in self.store.releases(ICD10CM).await? {
            match crate::terminology::icd10cm::read_derived(&data) {
                Ok((cs, _)) => self.terminology.add_icd10cm(cs),
                Err(e) => {
                    tracing::error!(version, error = %e, "stored ICD-10-CM release unreadable")
                }
            }
        }
        Ok(())
    }
}

impl Fhir {
    /// `GET metadata?mode=terminology`: the TerminologyCapabilities.
    pub fn terminology_capabilities(&self) -> Value {
        let versions: Vec<Value> = self
            .terminology
            .icd10cm_versions()
            .iter()
            .rev()
            .enumerate()
            .map(|(i, v)| {
                json!({"code": v, "isDefault": i == 0, "compositional": false,
                "property": ["parent", "child", "notSelectable", "billable", "chapter", "block",
                    "inclusionTerm", "includes", "excludes1", "excludes2", "codeFirst", "codeAlso",
                    "useAdditionalCode", "note", "sevenChrNote", "sevenChrDef"]})
            })
            .collect();
        json!({
            "resourceType": "TerminologyCapabilities",
            "status": "active",
            "date": crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
            "kind": "instance",
            "implementation": {"description": "Charaka terminology service", "url": self.base_url},
            "codeSystem": [{"uri": ICD10CM, "version": versions, "subsumption": true}],
            "expansion": {"hierarchical": false, "paging": true, "incomplete": false,
                "parameter": [{"name": "filter"}, {"name": "offset"}, {"name": "count"},
                    {"name": "activeOnly"}, {"name": "includeDesignations"}, {"name": "displayLanguage"}],
                "textFilter": "Every word must be the start of a word of the display or an inclusion term, or the text is the start of a code (with or without the dot)."},
            "codeSearch": "all",
            "validateCode": {"translations": false},
            "closure": {"translation": false}
        })
    }
}

/// A concept's display in `language` (BCP 47): a designation in that
/// language, or in its primary language when the tag has a region
/// (`de-CH` takes a `de` designation); else the code system's own display.
fn display_in<'c>(
    c: &'c crate::terminology::codesystem::Concept,
    language: Option<&str>,
) -> &'c str {
    let Some(wanted) = language.map(str::to_ascii_lowercase) else {
        return &c.display;
    };
    let primary = wanted.split('-').next().unwrap_or_default().to_string();
    let in_language = |tag: &str| {
        c.designations
            .iter()
            .find(|d| {
                d.language
                    .as_deref()
                    .is_some_and(|l| l.eq_ignore_ascii_case(tag))
            })
            .map(|d| d.value.as_ref())
    };
    in_language(&wanted)
        .or_else(|| in_language(&primary))
        .unwrap_or(&c.display)
}
