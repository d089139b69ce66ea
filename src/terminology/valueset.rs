//! ValueSet `compose` → the set of concepts it means: `include` and
//! `exclude` with concept lists and filters (`is-a`, `descendent-of`,
//! `is-not-a`, `=`, `in`, `not-in`, `regex`, `exists`), and the implicit
//! value sets of a code system (`{url}?fhir_vs`, `{url}?fhir_vs=isa/{code}`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::codesystem::CodeSystem;

/// Concepts of one code system in a value set, in the code system's order.
#[derive(Debug)]
pub struct Part {
    pub cs: Arc<CodeSystem>,
    /// None: every concept.
    pub ids: Option<Vec<u32>>,
}

/// A code listed for a code system the server does not hold.
#[derive(Debug, Clone)]
pub struct Listed {
    pub system: String,
    pub version: Option<String>,
    pub code: String,
    pub display: Option<String>,
}

/// The members of a value set.
#[derive(Debug, Default)]
pub struct Members {
    pub parts: Vec<Part>,
    pub listed: Vec<Listed>,
}

impl Members {
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.ids.as_ref().map_or(p.cs.concepts.len(), Vec::len))
            .sum::<usize>()
            + self.listed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `code` of `system` is a member; the part's code system and
    /// concept id when the system is held.
    pub fn find(&self, system: &str, code: &str) -> Option<(Arc<CodeSystem>, Option<u32>)> {
        for part in &self.parts {
            if part.cs.url != system {
                continue;
            }
            if let Some(id) = part.cs.id_of(code) {
                let member = match &part.ids {
                    None => true,
                    Some(ids) => ids.contains(&id),
                };
                if member {
                    return Some((part.cs.clone(), Some(id)));
                }
            }
        }
        None
    }

    pub fn find_listed(&self, system: &str, code: &str) -> Option<&Listed> {
        self.listed
            .iter()
            .find(|l| l.system == system && l.code == code)
    }
}

/// The compose of an implicit value set URL, if `url` is one:
/// `{system}?fhir_vs` or `{system}?fhir_vs=isa/{code}`.
pub fn implicit_compose(url: &str) -> Option<Value> {
    let (system, query) = url.split_once("?fhir_vs")?;
    let include = match query.strip_prefix('=') {
        None if query.is_empty() => json!({"system": system}),
        Some(rest) => {
            let code = rest.strip_prefix("isa/")?;
            json!({"system": system, "filter": [{"property": "concept", "op": "is-a", "value": code}]})
        }
        None => return None,
    };
    Some(json!({"include": [include]}))
}

/// Finds code systems (by URL and optional version) and value sets (by
/// canonical URL, already expanded).
pub trait Resolver {
    fn code_system(&self, url: &str, version: Option<&str>) -> Option<Arc<CodeSystem>>;
    fn value_set(&self, url: &str) -> Option<&Members>;
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Value set canonicals a compose refers to (so they can be expanded first).
pub fn referenced_value_sets(compose: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["include", "exclude"] {
        for inc in compose
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for vs in inc
                .get("valueSet")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(url) = vs.as_str() {
                    out.push(url.to_string());
                }
            }
        }
    }
    out
}

/// Code systems a compose refers to: (url, version).
pub fn referenced_code_systems(compose: &Value) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for key in ["include", "exclude"] {
        for inc in compose
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(system) = str_of(inc, "system") {
                out.push((
                    system.to_string(),
                    str_of(inc, "version").map(str::to_string),
                ));
            }
        }
    }
    out
}

/// One `filter` of an include, checked against a concept.
struct Filter<'a> {
    property: &'a str,
    op: &'a str,
    value: &'a str,
    regex: Option<regex::Regex>,
    /// The concept `value` names, for hierarchy filters.
    target: Option<u32>,
}

impl Filter<'_> {
    fn matches(&self, cs: &CodeSystem, id: u32) -> bool {
        let c = cs.get(id);
        let values = || -> Vec<String> {
            match self.property {
                "concept" | "code" => vec![c.code.to_string()],
                "display" => vec![c.display.to_string()],
                "parent" => c
                    .parent
                    .map(|p| cs.get(p).code.to_string())
                    .into_iter()
                    .collect(),
                "child" => c
                    .children
                    .iter()
                    .map(|&k| cs.get(k).code.to_string())
                    .collect(),
                "notSelectable" | "abstract" => vec![c.not_selectable.to_string()],
                "billable" => vec![cs.is_billable(c).to_string()],
                "inactive" => vec![c.inactive.to_string()],
                name => c
                    .properties
                    .iter()
                    .filter(|(n, _)| n.as_ref() == name)
                    .map(|(_, v)| v.text())
                    .collect(),
            }
        };
        match self.op {
            "is-a" => self.target.is_some_and(|t| cs.subsumes(t, id)),
            "descendent-of" => self.target.is_some_and(|t| t != id && cs.subsumes(t, id)),
            "is-not-a" => !self.target.is_some_and(|t| cs.subsumes(t, id)),
            "=" => values().iter().any(|v| v == self.value),
            "in" => values()
                .iter()
                .any(|v| self.value.split(',').any(|x| x.trim() == v)),
            "not-in" => !values()
                .iter()
                .any(|v| self.value.split(',').any(|x| x.trim() == v)),
            "regex" => {
                let re = self.regex.as_ref().expect("compiled");
                values().iter().any(|v| re.is_match(v))
            }
            "exists" => values().is_empty() != (self.value == "true"),
            _ => false,
        }
    }
}

const OPS: &[&str] = &[
    "is-a",
    "descendent-of",
    "is-not-a",
    "=",
    "in",
    "not-in",
    "regex",
    "exists",
];

/// The concepts of `cs` one include (or exclude) selects, in order.
fn select(cs: &CodeSystem, inc: &Value) -> Result<Option<Vec<u32>>, String> {
    let concepts = inc.get("concept").and_then(Value::as_array);
    let filters = inc.get("filter").and_then(Value::as_array);
    if let Some(list) = concepts {
        let mut ids = Vec::new();
        for c in list {
            let code = str_of(c, "code").unwrap_or_default();
            match cs.id_of(code) {
                Some(id) => ids.push(id),
                None => {
                    return Err(format!(
                        "the value set lists code `{code}`, which {} does not define",
                        cs.url
                    ))
                }
            }
        }
        ids.sort_by_key(|&i| cs.get(i).pre);
        ids.dedup();
        return Ok(Some(ids));
    }
    let Some(filters) = filters.filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let mut parsed = Vec::new();
    for f in filters {
        let property = str_of(f, "property").unwrap_or_default();
        let op = str_of(f, "op").unwrap_or_default();
        let value = str_of(f, "value").unwrap_or_default();
        if !OPS.contains(&op) {
            return Err(format!("filter operator `{op}` is not supported"));
        }
        let regex = if op == "regex" {
            Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("filter regex `{value}` is not valid: {e}"))?,
            )
        } else {
            None
        };
        let target = if matches!(op, "is-a" | "descendent-of" | "is-not-a") {
            Some(
                cs.id_of(value)
                    .ok_or_else(|| format!("filter value `{value}` is not a code of {}", cs.url))?,
            )
        } else {
            None
        };
        parsed.push(Filter {
            property,
            op,
            value,
            regex,
            target,
        });
    }
    // A hierarchy filter narrows the walk to one subtree.
    let scope: Vec<u32> = match parsed
        .iter()
        .find(|f| matches!(f.op, "is-a" | "descendent-of"))
        .and_then(|f| f.target)
    {
        Some(t) => std::iter::once(t)
            .chain(cs.descendants(t).iter().copied())
            .collect(),
        None => cs.order.clone(),
    };
    Ok(Some(
        scope
            .into_iter()
            .filter(|&id| parsed.iter().all(|f| f.matches(cs, id)))
            .collect(),
    ))
}

/// Evaluates a compose.
pub fn evaluate(compose: &Value, resolver: &dyn Resolver) -> Result<Members, String> {
    let mut members = Members::default();
    let includes = compose
        .get("include")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut chosen: Vec<(Arc<CodeSystem>, Option<Vec<u32>>)> = Vec::new();
    for inc in &includes {
        let nested: Vec<&Members> = inc
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|url| {
                resolver
                    .value_set(url)
                    .ok_or_else(|| format!("value set {url} is not known"))
            })
            .collect::<Result<_, _>>()?;
        let Some(system) = str_of(inc, "system") else {
            // Only value sets: their union.
            for m in nested {
                for p in &m.parts {
                    chosen.push((p.cs.clone(), p.ids.clone()));
                }
                members.listed.extend(m.listed.iter().cloned());
            }
            continue;
        };
        let version = str_of(inc, "version");
        match resolver.code_system(system, version) {
            Some(cs) => {
                let mut ids = select(&cs, inc)?;
                if !nested.is_empty() {
                    let all: Vec<u32> = ids.take().unwrap_or_else(|| cs.order.clone());
                    ids = Some(
                        all.into_iter()
                            .filter(|&id| {
                                nested
                                    .iter()
                                    .all(|m| m.find(system, &cs.get(id).code).is_some())
                            })
                            .collect(),
                    );
                }
                chosen.push((cs, ids));
            }
            None => {
                let Some(list) = inc.get("concept").and_then(Value::as_array) else {
                    return Err(format!(
                        "code system {system}{} is not known to this server",
                        version.map(|v| format!(" version {v}")).unwrap_or_default()
                    ));
                };
                for c in list {
                    members.listed.push(Listed {
                        system: system.to_string(),
                        version: version.map(str::to_string),
                        code: str_of(c, "code").unwrap_or_default().to_string(),
                        display: str_of(c, "display").map(str::to_string),
                    });
                }
            }
        }
    }
    // Merge parts of the same code system.
    for (cs, ids) in chosen {
        match members.parts.iter_mut().find(|p| Arc::ptr_eq(&p.cs, &cs)) {
            Some(part) => {
                part.ids = match (part.ids.take(), ids) {
                    (None, _) | (_, None) => None,
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        a.sort_by_key(|&i| cs.get(i).pre);
                        a.dedup();
                        Some(a)
                    }
                }
            }
            None => members.parts.push(Part { cs, ids }),
        }
    }
    for exc in compose
        .get("exclude")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(system) = str_of(exc, "system") else {
            continue;
        };
        for part in members.parts.iter_mut().filter(|p| p.cs.url == system) {
            let cs = part.cs.clone();
            let removed: Vec<u32> = select(&cs, exc)?.unwrap_or_else(|| cs.order.clone());
            let mut gone = vec![false; cs.concepts.len()];
            for id in removed {
                gone[id as usize] = true;
            }
            let ids = part.ids.take().unwrap_or_else(|| cs.order.clone());
            part.ids = Some(ids.into_iter().filter(|&id| !gone[id as usize]).collect());
        }
        if let Some(list) = exc.get("concept").and_then(Value::as_array) {
            members.listed.retain(|l| {
                l.system != system || !list.iter().any(|c| str_of(c, "code") == Some(&l.code))
            });
        }
    }
    Ok(members)
}

/// A concept found while expanding: (code system, id) or a listed code.
pub enum Hit<'a> {
    Known(&'a Arc<CodeSystem>, u32),
    Listed(&'a Listed),
}

/// The members matching `filter` (free text; see `textindex`), best first,
/// or all members in order when there is no filter.
pub fn filtered<'a>(members: &'a Members, filter: Option<&str>) -> Vec<Hit<'a>> {
    let mut out = Vec::new();
    let filter = filter.map(str::trim).filter(|f| !f.is_empty());
    for part in &members.parts {
        let cs = &part.cs;
        match filter {
            None => match &part.ids {
                None => out.extend(cs.order.iter().map(|&id| Hit::Known(cs, id))),
                Some(ids) => out.extend(ids.iter().map(|&id| Hit::Known(cs, id))),
            },
            Some(text) => {
                let found = cs.index.search(text, &cs.concepts);
                match &part.ids {
                    None => out.extend(found.into_iter().map(|id| Hit::Known(cs, id))),
                    Some(ids) => {
                        let mut member = vec![false; cs.concepts.len()];
                        for &id in ids {
                            member[id as usize] = true;
                        }
                        out.extend(
                            found
                                .into_iter()
                                .filter(|&id| member[id as usize])
                                .map(|id| Hit::Known(cs, id)),
                        );
                    }
                }
            }
        }
    }
    for l in &members.listed {
        let keep = match filter {
            None => true,
            Some(text) => {
                let words = super::textindex::words(l.display.as_deref().unwrap_or(""));
                l.code.starts_with(text)
                    || super::textindex::words(text)
                        .iter()
                        .all(|q| words.iter().any(|w| w.starts_with(q.as_str())))
            }
        };
        if keep {
            out.push(Hit::Listed(l));
        }
    }
    out
}
