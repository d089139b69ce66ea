//! The search parameters the server knows: every R4 SearchParameter
//! (`conformance/search-parameters.json`, derived from the official
//! definitions by `tools/gen_search_params.py`), one [`SearchParam`] per
//! (resource type, code), with its FHIRPath expression parsed once and cut
//! down to the branches that concern that type.
//!
//! Parameters defined on `Resource` and `DomainResource` (`_id`,
//! `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`, `_text`,
//! `_content`, `_query`) are copied onto every resource type.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

use crate::fhir::schema::schema;
use crate::fhirpath::ast::{BinOp, Expr};

/// The type of a search parameter (http://hl7.org/fhir/R4/search.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "number" => ParamType::Number,
            "date" => ParamType::Date,
            "string" => ParamType::String,
            "token" => ParamType::Token,
            "reference" => ParamType::Reference,
            "composite" => ParamType::Composite,
            "quantity" => ParamType::Quantity,
            "uri" => ParamType::Uri,
            "special" => ParamType::Special,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

/// One component of a composite parameter.
#[derive(Debug)]
pub struct Component {
    /// The type of the parameter the component is defined by.
    pub ptype: ParamType,
    /// Evaluated on each item the composite's own expression selects.
    pub expression: Expr,
    /// Index key of the component's rows: `code$n`.
    pub key: String,
    /// `pid` of the key.
    pub pid: i64,
}

/// A search parameter as it applies to one resource type.
#[derive(Debug)]
pub struct SearchParam {
    pub url: String,
    pub code: String,
    pub rtype: String,
    /// The type the parameter's index keys are numbered under: `Resource`
    /// for the common parameters (so that `_tag` rows of every type share
    /// one pid and system-wide searches need one condition), else `rtype`.
    pub key_type: String,
    /// `pid(key_type, code)`.
    pub pid: i64,
    pub ptype: ParamType,
    /// The original expression (as published).
    pub expression_text: Option<String>,
    /// The parsed expression, restricted to this type's branches; None for
    /// parameters without one (`_text`, `_content`, `_query`) and for
    /// those whose value lives in the `resources` table (`_id`,
    /// `_lastUpdated`).
    pub expression: Option<Expr>,
    /// Resource types a reference parameter may point at.
    pub targets: Vec<String>,
    pub components: Vec<Component>,
}

impl SearchParam {
    /// Parameters whose values are columns of `resources`, not index rows.
    pub fn is_column(&self) -> bool {
        matches!(self.code.as_str(), "_id" | "_lastUpdated")
    }
}

#[derive(Deserialize)]
struct RawFile {
    parameters: Vec<RawParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParam {
    url: String,
    code: String,
    base: Vec<String>,
    #[serde(rename = "type")]
    ptype: String,
    expression: Option<String>,
    #[serde(default)]
    target: Vec<String>,
    #[serde(default)]
    component: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    definition: String,
    expression: String,
}

/// Every search parameter, by resource type and code.
pub struct Registry {
    by_type: HashMap<String, BTreeMap<String, Arc<SearchParam>>>,
}

static BASE: LazyLock<Registry> = LazyLock::new(|| {
    Registry::from_definitions(include_str!("../../conformance/search-parameters.json"))
        .expect("conformance/search-parameters.json is valid")
});

/// The R4 search parameters.
pub fn registry() -> &'static Registry {
    &BASE
}

impl Registry {
    fn from_definitions(json: &str) -> Result<Registry, String> {
        let raw: RawFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let types_by_url: HashMap<&str, &str> = raw
            .parameters
            .iter()
            .map(|p| (p.url.as_str(), p.ptype.as_str()))
            .collect();
        let all_types = schema().resource_types();
        let mut by_type: HashMap<String, BTreeMap<String, Arc<SearchParam>>> = HashMap::new();
        for p in &raw.parameters {
            let ptype = ParamType::parse(&p.ptype)
                .ok_or_else(|| format!("{}: unknown type {}", p.url, p.ptype))?;
            let parsed = match &p.expression {
                Some(text) => {
                    Some(crate::fhirpath::parse(text).map_err(|e| format!("{}: {e}", p.url))?)
                }
                None => None,
            };
            let mut components = Vec::new();
            for (n, c) in p.component.iter().enumerate() {
                let ctype = types_by_url
                    .get(c.definition.as_str())
                    .and_then(|t| ParamType::parse(t))
                    .ok_or_else(|| format!("{}: unknown component {}", p.url, c.definition))?;
                let expression =
                    crate::fhirpath::parse(&c.expression).map_err(|e| format!("{}: {e}", p.url))?;
                components.push((ctype, expression, format!("{}${n}", p.code)));
            }
            let common = p
                .base
                .iter()
                .any(|b| b == "Resource" || b == "DomainResource");
            let bases: Vec<&str> = if common {
                all_types.iter().map(String::as_str).collect()
            } else {
                p.base.iter().map(String::as_str).collect()
            };
            for base in bases {
                let key_type = if common { "Resource" } else { base };
                let expression = parsed.as_ref().and_then(|e| for_type(e, base));
                let param = SearchParam {
                    url: p.url.clone(),
                    code: p.code.clone(),
                    rtype: base.to_string(),
                    key_type: key_type.to_string(),
                    pid: super::pid(key_type, &p.code),
                    ptype,
                    expression_text: p.expression.clone(),
                    expression,
                    targets: p.target.clone(),
                    components: components
                        .iter()
                        .map(|(ptype, expression, key)| Component {
                            ptype: *ptype,
                            expression: expression.clone(),
                            key: key.clone(),
                            pid: super::pid(key_type, key),
                        })
                        .collect(),
                };
                by_type
                    .entry(base.to_string())
                    .or_default()
                    .insert(p.code.clone(), Arc::new(param));
            }
        }
        Ok(Registry { by_type })
    }

    /// The parameter `code` of `rtype`.
    pub fn get(&self, rtype: &str, code: &str) -> Option<&Arc<SearchParam>> {
        self.by_type.get(rtype)?.get(code)
    }

    /// Every parameter of `rtype`, by code.
    pub fn params(&self, rtype: &str) -> impl Iterator<Item = &Arc<SearchParam>> {
        self.by_type.get(rtype).into_iter().flat_map(|m| m.values())
    }

    /// Every index key (`code`, and `code$n` for composite components),
    /// with the type it is numbered under.
    pub fn index_keys(&self) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for params in self.by_type.values() {
            for p in params.values() {
                keys.push((p.key_type.clone(), p.code.clone()));
                for c in &p.components {
                    keys.push((p.key_type.clone(), c.key.clone()));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The resource types that have a parameter `code`.
    pub fn types_with(&self, code: &str) -> Vec<&str> {
        let mut types: Vec<&str> = self
            .by_type
            .iter()
            .filter(|(_, params)| params.contains_key(code))
            .map(|(t, _)| t.as_str())
            .collect();
        types.sort_unstable();
        types
    }
}

/// The part of `expr` that can select anything in a resource of `rtype`:
/// branches of a top-level union that start with another resource type's
/// name are dropped (`Patient.name | Practitioner.name` becomes
/// `Patient.name` for Patient). None when nothing is left.
fn for_type(expr: &Expr, rtype: &str) -> Option<Expr> {
    let mut branches = Vec::new();
    split_union(expr, &mut branches);
    let kept: Vec<&Expr> = branches
        .into_iter()
        .filter(|b| match root_type(b) {
            Some(root) => {
                root == rtype
                    || root == "Resource"
                    || root == "DomainResource"
                    || !schema().is_resource_type(root)
            }
            None => true,
        })
        .collect();
    kept.into_iter()
        .cloned()
        .reduce(|a, b| Expr::Binary(BinOp::Union, Box::new(a), Box::new(b)))
}

fn split_union<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::Binary(BinOp::Union, l, r) => {
            split_union(l, out);
            split_union(r, out);
        }
        other => out.push(other),
    }
}

/// The identifier a path starts with (`Observation` in
/// `(Observation.value as Quantity)`).
fn root_type(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Ident(name) => Some(name),
        Expr::Member(target, _) | Expr::Indexer(target, _) => root_type(target),
        Expr::Call(Some(target), _, _) => root_type(target),
        Expr::As(e, _) | Expr::Is(e, _) => root_type(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_parameter() {
        let r = registry();
        let name = r.get("Patient", "name").unwrap();
        assert_eq!(name.ptype, ParamType::String);
        let subject = r.get("Observation", "subject").unwrap();
        assert_eq!(subject.ptype, ParamType::Reference);
        assert!(subject.targets.iter().any(|t| t == "Patient"));
        // Common parameters apply to every type.
        for rtype in ["Patient", "Observation", "Bundle", "Binary"] {
            assert!(r.get(rtype, "_tag").is_some(), "{rtype}");
            assert!(r.get(rtype, "_id").unwrap().is_column());
        }
        let cvq = r.get("Observation", "code-value-quantity").unwrap();
        assert_eq!(cvq.components.len(), 2);
        assert_eq!(cvq.components[1].ptype, ParamType::Quantity);
        assert_eq!(cvq.components[1].key, "code-value-quantity$1");
        let keys = r.index_keys();
        assert!(keys.len() > 1500, "{}", keys.len());
        // Every key, and the derived keys, has its own pid.
        let mut pids = std::collections::HashMap::new();
        for (rtype, key) in &keys {
            for k in [
                key.clone(),
                format!("{key}:text"),
                format!("{key}:identifier"),
                format!("{key}:of-type"),
            ] {
                let pid = crate::search::pid(rtype, &k);
                if let Some(other) = pids.insert(pid, (rtype.clone(), k.clone())) {
                    panic!("{rtype}/{k} and {other:?} share pid {pid}");
                }
            }
        }
    }

    #[test]
    fn keeps_only_the_branches_of_the_type() {
        // `address` is shared by Patient, Person, Practitioner, RelatedPerson.
        let p = registry().get("Patient", "address").unwrap();
        let text = format!("{:?}", p.expression.as_ref().unwrap());
        assert!(
            text.contains("Patient") && !text.contains("Practitioner"),
            "{text}"
        );
    }
}
