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
    /// The id of the stored SearchParameter resource that defines this
    /// parameter; None for the built-in R4 parameters.
    pub custom: Option<String>,
}

impl SearchParam {
    /// What decides this parameter's index rows, as text: two parameters
    /// with the same signature index alike.
    pub fn signature(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{:?}|{}",
            self.rtype,
            self.code,
            self.url,
            self.ptype.as_str(),
            self.expression_text.as_deref().unwrap_or(""),
            self.targets,
            self.components
                .iter()
                .map(|c| format!("{}:{}:{:?}", c.key, c.ptype.as_str(), c.expression))
                .collect::<Vec<_>>()
                .join(",")
        )
    }

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

/// Every search parameter, by resource type and code: the built-in R4
/// parameters ([`registry`]) or those plus a tenant's custom parameters
/// ([`Registry::with_custom`]).
#[derive(Clone)]
pub struct Registry {
    by_type: HashMap<String, BTreeMap<String, Arc<SearchParam>>>,
    /// The type of every parameter by canonical URL (components refer to
    /// their parameter by URL).
    types_by_url: HashMap<String, ParamType>,
}

/// A custom SearchParameter that could not be taken into the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionError {
    /// Where in the SearchParameter the problem is (`SearchParameter.expression`).
    pub element: &'static str,
    pub message: String,
}

impl DefinitionError {
    fn new(element: &'static str, message: impl Into<String>) -> Self {
        DefinitionError {
            element,
            message: message.into(),
        }
    }
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
        let mut reg = Registry {
            by_type: HashMap::new(),
            types_by_url: HashMap::new(),
        };
        for p in &raw.parameters {
            let ptype = ParamType::parse(&p.ptype)
                .ok_or_else(|| format!("{}: unknown type {}", p.url, p.ptype))?;
            reg.types_by_url.insert(p.url.clone(), ptype);
        }
        for p in &raw.parameters {
            reg.add(p, None)
                .map_err(|e| format!("{}: {}", p.url, e.message))?;
        }
        Ok(reg)
    }

    /// The built-in parameters plus `definitions` (SearchParameter
    /// resources, each with its resource id): each must pass
    /// [`check_definition`]; one that does not is left out and returned
    /// with its error.
    pub fn with_custom(
        &self,
        definitions: &[(String, serde_json::Value)],
    ) -> (Registry, Vec<(String, DefinitionError)>) {
        let mut reg = self.clone();
        let mut errors = Vec::new();
        let mut raws = Vec::new();
        for (id, def) in definitions {
            match serde_json::from_value::<RawParam>(def.clone()) {
                Ok(raw) => {
                    if let Some(t) = ParamType::parse(&raw.ptype) {
                        reg.types_by_url.insert(raw.url.clone(), t);
                    }
                    raws.push((id, raw));
                }
                Err(e) => errors.push((
                    id.clone(),
                    DefinitionError::new("SearchParameter", e.to_string()),
                )),
            }
        }
        for (id, raw) in &raws {
            let checked = reg.check(raw, Some(id.as_str()), true);
            if let Err(e) = checked.and_then(|()| reg.add(raw, Some(id.as_str()))) {
                errors.push(((*id).clone(), e));
            }
        }
        (reg, errors)
    }

    /// Whether `definition` (a SearchParameter resource, stored under `id`)
    /// can join this registry: its type, expression, bases and components
    /// make sense, and (when `active`) its code is not taken on any of its
    /// bases by a built-in parameter or another SearchParameter resource.
    pub fn check_definition(
        &self,
        id: Option<&str>,
        definition: &serde_json::Value,
        active: bool,
    ) -> Result<(), DefinitionError> {
        let raw: RawParam = serde_json::from_value(definition.clone())
            .map_err(|e| DefinitionError::new("SearchParameter", e.to_string()))?;
        self.check(&raw, id, active)
    }

    fn check(&self, p: &RawParam, id: Option<&str>, clash: bool) -> Result<(), DefinitionError> {
        let code_ok = !p.code.is_empty()
            && !p.code.starts_with('_')
            && p.code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !code_ok {
            return Err(DefinitionError::new(
                "SearchParameter.code",
                format!(
                    "`{}` is not a usable code (letters, digits and `-`, not starting with `_`)",
                    p.code
                ),
            ));
        }
        let ptype = ParamType::parse(&p.ptype).ok_or_else(|| {
            DefinitionError::new(
                "SearchParameter.type",
                format!("`{}` is not a search parameter type", p.ptype),
            )
        })?;
        if ptype == ParamType::Special {
            return Err(DefinitionError::new(
                "SearchParameter.type",
                "parameters of type `special` need server code and cannot be defined",
            ));
        }
        if p.base.is_empty() {
            return Err(DefinitionError::new(
                "SearchParameter.base",
                "names no resource type",
            ));
        }
        for base in &p.base {
            if !schema().is_resource_type(base) {
                return Err(DefinitionError::new(
                    "SearchParameter.base",
                    format!("`{base}` is not a resource type this server indexes one by one (Resource and DomainResource are not accepted)"),
                ));
            }
            if let Some(other) = self.get(base, &p.code).filter(|_| clash) {
                let same = match (&other.custom, id) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                if !same {
                    let whose = match &other.custom {
                        None => "a built-in parameter".to_string(),
                        Some(other_id) => format!("SearchParameter/{other_id}"),
                    };
                    return Err(DefinitionError::new(
                        "SearchParameter.code",
                        format!(
                            "{base} already has a parameter `{}` ({whose}: {})",
                            p.code, other.url
                        ),
                    ));
                }
            }
        }
        let Some(text) = &p.expression else {
            return Err(DefinitionError::new(
                "SearchParameter.expression",
                "is required: the server indexes a parameter by evaluating it",
            ));
        };
        crate::fhirpath::parse(text).map_err(|e| {
            DefinitionError::new(
                "SearchParameter.expression",
                format!("`{text}` is not valid FHIRPath: {e}"),
            )
        })?;
        for t in &p.target {
            if !schema().is_resource_type(t) {
                return Err(DefinitionError::new(
                    "SearchParameter.target",
                    format!("`{t}` is not a resource type"),
                ));
            }
        }
        if !p.target.is_empty() && ptype != ParamType::Reference {
            return Err(DefinitionError::new(
                "SearchParameter.target",
                "only reference parameters have targets",
            ));
        }
        if ptype == ParamType::Composite && p.component.len() < 2 {
            return Err(DefinitionError::new(
                "SearchParameter.component",
                "a composite parameter needs at least two components",
            ));
        }
        if ptype != ParamType::Composite && !p.component.is_empty() {
            return Err(DefinitionError::new(
                "SearchParameter.component",
                "only composite parameters have components",
            ));
        }
        for c in &p.component {
            match self.types_by_url.get(&c.definition) {
                None => {
                    return Err(DefinitionError::new(
                        "SearchParameter.component.definition",
                        format!("`{}` is not a known search parameter", c.definition),
                    ))
                }
                Some(ParamType::Composite | ParamType::Special) => {
                    return Err(DefinitionError::new(
                        "SearchParameter.component.definition",
                        format!("`{}` cannot be a component", c.definition),
                    ))
                }
                Some(_) => {}
            }
            crate::fhirpath::parse(&c.expression).map_err(|e| {
                DefinitionError::new(
                    "SearchParameter.component.expression",
                    format!("`{}` is not valid FHIRPath: {e}", c.expression),
                )
            })?;
        }
        Ok(())
    }

    /// Adds `p` under each of its bases.
    fn add(&mut self, p: &RawParam, custom: Option<&str>) -> Result<(), DefinitionError> {
        let all_types = schema().resource_types();
        let ptype = ParamType::parse(&p.ptype).ok_or_else(|| {
            DefinitionError::new("SearchParameter.type", format!("unknown type {}", p.ptype))
        })?;
        let parsed =
            match &p.expression {
                Some(text) => Some(crate::fhirpath::parse(text).map_err(|e| {
                    DefinitionError::new("SearchParameter.expression", e.to_string())
                })?),
                None => None,
            };
        let mut components = Vec::new();
        for (n, c) in p.component.iter().enumerate() {
            let ctype = self
                .types_by_url
                .get(c.definition.as_str())
                .copied()
                .ok_or_else(|| {
                    DefinitionError::new(
                        "SearchParameter.component.definition",
                        format!("unknown component {}", c.definition),
                    )
                })?;
            let expression = crate::fhirpath::parse(&c.expression).map_err(|e| {
                DefinitionError::new("SearchParameter.component.expression", e.to_string())
            })?;
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
                custom: custom.map(str::to_string),
            };
            self.by_type
                .entry(base.to_string())
                .or_default()
                .insert(p.code.clone(), Arc::new(param));
        }
        Ok(())
    }

    /// The custom parameters' definitions as they shape index rows, one
    /// line each (part of the index fingerprint).
    pub fn custom_signature(&self) -> String {
        self.custom_params()
            .iter()
            .map(|p| p.signature())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether a parameter with this canonical URL is known.
    pub fn defines_url(&self, url: &str) -> bool {
        self.types_by_url.contains_key(url)
    }

    /// The custom parameters (from SearchParameter resources), by type.
    pub fn custom_params(&self) -> Vec<&Arc<SearchParam>> {
        let mut out: Vec<&Arc<SearchParam>> = self
            .by_type
            .values()
            .flat_map(|m| m.values())
            .filter(|p| p.custom.is_some())
            .collect();
        out.sort_by(|a, b| (&a.rtype, &a.code).cmp(&(&b.rtype, &b.code)));
        out
    }

    /// The parameter `code` of `rtype`.
    pub fn get(&self, rtype: &str, code: &str) -> Option<&Arc<SearchParam>> {
        self.by_type.get(rtype)?.get(code)
    }

    /// Whether `pid` is the index key of one of `rtype`'s own parameters
    /// (or of their components), numbered under `rtype`: its index rows
    /// belong to resources of `rtype` only. Parameters common to every type
    /// are numbered under `Resource` and are not.
    pub fn numbers_under(&self, rtype: &str, pid: i64) -> bool {
        self.params(rtype).any(|p| {
            p.key_type == rtype && (p.pid == pid || p.components.iter().any(|c| c.pid == pid))
        })
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
                format!("{key}:contained"),
            ] {
                let pid = crate::search::pid(rtype, &k);
                if let Some(other) = pids.insert(pid, (rtype.clone(), k.clone())) {
                    panic!("{rtype}/{k} and {other:?} share pid {pid}");
                }
            }
        }
        // So have the keys of contained resources (`#Type/key`) and the
        // local references of reference parameters (`code:contained`).
        for rtype in crate::fhir::schema::schema().resource_types() {
            for (from, to) in crate::search::contained::pid_map(r, rtype) {
                let key = (format!("#{rtype}"), to.to_string());
                if let Some(other) = pids.insert(to, key.clone()) {
                    panic!("{key:?} and {other:?} share pid {to} (from {from})");
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
