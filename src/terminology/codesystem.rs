//! A code system in memory: concepts with one parent each, their children,
//! a pre-order numbering for subsumption in O(1), and the word index that
//! serves `filter`. Built from the shipped ICD-10-CM release or from a
//! CodeSystem resource stored on the server.

use std::collections::HashMap;

use serde_json::Value;

use super::textindex::TextIndex;

/// A property value of a concept.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Code(Box<str>),
    String(Box<str>),
    Boolean(bool),
    Integer(i64),
    Coding(Box<str>, Box<str>),
}

impl PropertyValue {
    /// The value as text (for `=`, `in` and `regex` filters).
    pub fn text(&self) -> String {
        match self {
            PropertyValue::Code(s) | PropertyValue::String(s) => s.to_string(),
            PropertyValue::Boolean(b) => b.to_string(),
            PropertyValue::Integer(i) => i.to_string(),
            PropertyValue::Coding(_, code) => code.to_string(),
        }
    }

    /// `{"valueCode": ...}` etc., for Parameters.
    pub fn to_value_entry(&self) -> (&'static str, Value) {
        match self {
            PropertyValue::Code(s) => ("valueCode", Value::from(s.as_ref())),
            PropertyValue::String(s) => ("valueString", Value::from(s.as_ref())),
            PropertyValue::Boolean(b) => ("valueBoolean", Value::from(*b)),
            PropertyValue::Integer(i) => ("valueInteger", Value::from(*i)),
            PropertyValue::Coding(system, code) => (
                "valueCoding",
                serde_json::json!({"system": system.as_ref(), "code": code.as_ref()}),
            ),
        }
    }
}

/// Another name of a concept (an inclusion term, a translation).
#[derive(Debug, Clone)]
pub struct Designation {
    pub language: Option<Box<str>>,
    /// A code of the code system's own designation uses (e.g. `inclusionTerm`).
    pub use_code: Option<Box<str>>,
    pub value: Box<str>,
}

#[derive(Debug, Clone)]
pub struct Concept {
    pub code: Box<str>,
    pub display: Box<str>,
    pub parent: Option<u32>,
    pub children: Vec<u32>,
    pub not_selectable: bool,
    pub inactive: bool,
    pub properties: Vec<(Box<str>, PropertyValue)>,
    pub designations: Vec<Designation>,
    /// Position in a pre-order walk; descendants are `pre+1..=last`.
    pub pre: u32,
    pub last: u32,
}

impl Concept {
    pub fn new(code: impl Into<Box<str>>, display: impl Into<Box<str>>) -> Self {
        Concept {
            code: code.into(),
            display: display.into(),
            parent: None,
            children: Vec::new(),
            not_selectable: false,
            inactive: false,
            properties: Vec::new(),
            designations: Vec::new(),
            pre: 0,
            last: 0,
        }
    }

    /// The first value of a text property.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .and_then(|(_, v)| match v {
                PropertyValue::Code(s) | PropertyValue::String(s) => Some(s.as_ref()),
                _ => None,
            })
    }
}

/// A property a code system defines.
#[derive(Debug, Clone)]
pub struct PropertyDef {
    pub code: String,
    pub uri: Option<String>,
    pub description: String,
    pub kind: &'static str,
}

#[derive(Debug)]
pub struct CodeSystem {
    pub url: String,
    pub version: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub publisher: Option<String>,
    /// The stored resource this came from (`CodeSystem/{id}`), if any.
    pub resource_id: Option<String>,
    pub case_sensitive: bool,
    /// Whether leaves below the block level are reported as billable
    /// (ICD-10-CM).
    pub billable_property: bool,
    /// `CodeSystem.content` (`complete` unless a stored resource says
    /// otherwise): only a complete system answers for every code below or
    /// above another.
    pub content: String,
    pub concepts: Vec<Concept>,
    /// Concepts without a parent, in order.
    pub roots: Vec<u32>,
    /// Concept ids in pre-order.
    pub order: Vec<u32>,
    by_code: HashMap<Box<str>, u32>,
    pub index: TextIndex,
    pub properties: Vec<PropertyDef>,
}

impl CodeSystem {
    /// Builds the hierarchy and the indexes over `concepts`, whose `parent`
    /// fields are set.
    pub fn new(url: &str, version: Option<String>, mut concepts: Vec<Concept>) -> Self {
        let mut roots = Vec::new();
        for i in 0..concepts.len() {
            match concepts[i].parent {
                Some(p) => concepts[p as usize].children.push(i as u32),
                None => roots.push(i as u32),
            }
        }
        // Pre-order numbering, iteratively.
        let mut order = Vec::with_capacity(concepts.len());
        let mut stack: Vec<(u32, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((c, done)) = stack.pop() {
            if done {
                concepts[c as usize].last = order.len() as u32 - 1;
                continue;
            }
            concepts[c as usize].pre = order.len() as u32;
            order.push(c);
            stack.push((c, true));
            for &child in concepts[c as usize].children.iter().rev() {
                stack.push((child, false));
            }
        }
        let by_code = concepts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.code.clone(), i as u32))
            .collect();
        let index = TextIndex::build(&concepts);
        CodeSystem {
            url: url.to_string(),
            version,
            name: None,
            title: None,
            publisher: None,
            resource_id: None,
            case_sensitive: true,
            billable_property: false,
            content: "complete".to_string(),
            concepts,
            roots,
            order,
            by_code,
            index,
            properties: Vec::new(),
        }
    }

    pub fn id_of(&self, code: &str) -> Option<u32> {
        match self.by_code.get(code) {
            Some(&i) => Some(i),
            None if !self.case_sensitive => self
                .concepts
                .iter()
                .position(|c| c.code.eq_ignore_ascii_case(code))
                .map(|i| i as u32),
            None => None,
        }
    }

    pub fn concept(&self, code: &str) -> Option<&Concept> {
        self.id_of(code).map(|i| &self.concepts[i as usize])
    }

    pub fn get(&self, id: u32) -> &Concept {
        &self.concepts[id as usize]
    }

    /// Whether `a` is `b` or an ancestor of `b`.
    pub fn subsumes(&self, a: u32, b: u32) -> bool {
        let (a, b) = (self.get(a), self.get(b));
        a.pre <= b.pre && b.pre <= a.last
    }

    /// A reportable code: selectable, and for ICD-10-CM a leaf.
    pub fn is_billable(&self, concept: &Concept) -> bool {
        !concept.not_selectable && (!self.billable_property || concept.children.is_empty())
    }

    /// The descendants of `id` (not itself), in pre-order.
    pub fn descendants(&self, id: u32) -> &[u32] {
        let c = self.get(id);
        &self.order[c.pre as usize + 1..=c.last as usize]
    }

    /// Codes close to `code` that are valid: the same code with its dot
    /// fixed, then the nearest ancestor's reportable descendants, then
    /// codes sharing the longest prefix. At most `limit`.
    pub fn suggestions(&self, code: &str, limit: usize) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let wanted: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if wanted.is_empty() {
            return out;
        }
        // The longest prefix that is a code (ignoring the dot).
        for len in (1..=wanted.len()).rev() {
            let hits = self.index.code_prefix(&wanted[..len]);
            if hits.is_empty() {
                continue;
            }
            for id in hits {
                if out.len() >= limit {
                    break;
                }
                if self.is_billable(self.get(id)) && !out.contains(&id) {
                    out.push(id);
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }
}

fn read_property(p: &Value) -> Option<(Box<str>, PropertyValue)> {
    let code: Box<str> = p.get("code")?.as_str()?.into();
    let value = if let Some(v) = p.get("valueCode").and_then(Value::as_str) {
        PropertyValue::Code(v.into())
    } else if let Some(v) = p.get("valueString").and_then(Value::as_str) {
        PropertyValue::String(v.into())
    } else if let Some(v) = p.get("valueBoolean").and_then(Value::as_bool) {
        PropertyValue::Boolean(v)
    } else if let Some(v) = p.get("valueInteger").and_then(Value::as_i64) {
        PropertyValue::Integer(v)
    } else if let Some(c) = p.get("valueCoding") {
        PropertyValue::Coding(
            c.get("system").and_then(Value::as_str).unwrap_or("").into(),
            c.get("code").and_then(Value::as_str).unwrap_or("").into(),
        )
    } else {
        return None;
    };
    Some((code, value))
}

/// Reads a CodeSystem resource (`concept` nested, or flat with `parent`
/// properties) into the model. Only `content = complete` (or `fragment`)
/// code systems with concepts make sense here.
pub fn from_resource(resource: &Value) -> Result<CodeSystem, String> {
    let url = resource
        .get("url")
        .and_then(Value::as_str)
        .ok_or("the CodeSystem has no url")?;
    let mut concepts: Vec<Concept> = Vec::new();
    // Parent codes given as properties, resolved after all are read.
    let mut parent_codes: Vec<Option<String>> = Vec::new();
    fn walk(
        list: &[Value],
        parent: Option<u32>,
        concepts: &mut Vec<Concept>,
        parent_codes: &mut Vec<Option<String>>,
    ) {
        for c in list {
            let Some(code) = c.get("code").and_then(Value::as_str) else {
                continue;
            };
            let mut concept =
                Concept::new(code, c.get("display").and_then(Value::as_str).unwrap_or(""));
            concept.parent = parent;
            let mut parent_code = None;
            for p in c
                .get("property")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some((name, value)) = read_property(p) else {
                    continue;
                };
                match (name.as_ref(), &value) {
                    ("notSelectable", PropertyValue::Boolean(b)) => concept.not_selectable = *b,
                    ("inactive", PropertyValue::Boolean(b)) => concept.inactive = *b,
                    ("status", PropertyValue::Code(s)) => {
                        concept.inactive = matches!(s.as_ref(), "retired" | "inactive")
                    }
                    ("parent", PropertyValue::Code(s)) if parent.is_none() => {
                        parent_code = Some(s.to_string())
                    }
                    _ => {}
                }
                concept.properties.push((name, value));
            }
            for d in c
                .get("designation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(value) = d.get("value").and_then(Value::as_str) {
                    concept.designations.push(Designation {
                        language: d.get("language").and_then(Value::as_str).map(Into::into),
                        use_code: d
                            .pointer("/use/code")
                            .and_then(Value::as_str)
                            .map(Into::into),
                        value: value.into(),
                    });
                }
            }
            let id = concepts.len() as u32;
            concepts.push(concept);
            parent_codes.push(parent_code);
            if let Some(children) = c.get("concept").and_then(Value::as_array) {
                walk(children, Some(id), concepts, parent_codes);
            }
        }
    }
    if let Some(list) = resource.get("concept").and_then(Value::as_array) {
        walk(list, None, &mut concepts, &mut parent_codes);
    }
    let positions: HashMap<String, u32> = concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.code.to_string(), i as u32))
        .collect();
    for (i, code) in parent_codes.iter().enumerate() {
        if let Some(p) = code.as_ref().and_then(|c| positions.get(c)) {
            // A parent property that would make a cycle is ignored.
            let mut up = Some(*p);
            let mut cycle = false;
            while let Some(u) = up {
                if u as usize == i {
                    cycle = true;
                    break;
                }
                up = concepts[u as usize].parent;
            }
            if !cycle {
                concepts[i].parent = Some(*p);
            }
        }
    }
    let version = resource
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut cs = CodeSystem::new(url, version, concepts);
    cs.name = resource.get("name").and_then(Value::as_str).map(Into::into);
    cs.title = resource
        .get("title")
        .and_then(Value::as_str)
        .map(Into::into);
    cs.publisher = resource
        .get("publisher")
        .and_then(Value::as_str)
        .map(Into::into);
    cs.resource_id = resource.get("id").and_then(Value::as_str).map(Into::into);
    cs.case_sensitive = resource
        .get("caseSensitive")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if let Some(content) = resource.get("content").and_then(Value::as_str) {
        cs.content = content.to_string();
    }
    Ok(cs)
}
