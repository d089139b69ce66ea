//! The R4 type model: every resource, complex type and backbone element with
//! its elements (types, cardinality, summary and modifier flags, required code
//! bindings). Derived from the official StructureDefinitions by
//! `tools/gen_r4_schema.py` into `r4_schema.json`, embedded in the binary.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::Deserialize;

#[derive(Deserialize)]
struct RawSchema {
    resources: Vec<String>,
    primitives: Vec<String>,
    types: HashMap<String, Vec<RawElement>>,
    #[serde(rename = "valueSets")]
    value_sets: HashMap<String, Vec<String>>,
}

/// `[name, types, min, max, flags, binding]`
#[derive(Deserialize)]
struct RawElement(String, Vec<String>, u32, i32, String, Option<String>);

#[derive(Debug)]
pub struct ElementDef {
    /// Name without the choice suffix (`value` for `value[x]`).
    pub name: String,
    pub types: Vec<String>,
    pub min: u32,
    /// True when the element repeats (max `*`).
    pub many: bool,
    pub choice: bool,
    pub summary: bool,
    pub modifier: bool,
    /// Required ValueSet binding whose codes are known.
    pub binding: Option<String>,
}

#[derive(Debug, Default)]
pub struct TypeDef {
    pub elements: Vec<ElementDef>,
    /// JSON property name → (element index, type index). Choice elements
    /// appear once per type (`valueQuantity`, `valueString`, ...).
    json_names: HashMap<String, (usize, usize)>,
}

impl TypeDef {
    /// Looks up a JSON property name (without a leading `_`).
    pub fn property(&self, json_name: &str) -> Option<(&ElementDef, &str)> {
        self.json_names
            .get(json_name)
            .map(|&(e, t)| (&self.elements[e], self.elements[e].types[t].as_str()))
    }
}

pub struct Schema {
    resources: Vec<String>,
    resource_set: HashSet<String>,
    primitives: HashSet<String>,
    types: HashMap<String, TypeDef>,
    value_sets: HashMap<String, HashSet<String>>,
}

/// `valueQuantity` from `value` + `Quantity`.
pub fn choice_name(name: &str, ty: &str) -> String {
    let mut out = String::with_capacity(name.len() + ty.len());
    out.push_str(name);
    let mut chars = ty.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    out
}

impl Schema {
    fn load() -> Schema {
        let raw: RawSchema = serde_json::from_str(include_str!("r4_schema.json"))
            .expect("embedded r4_schema.json is valid");
        let types = raw
            .types
            .into_iter()
            .map(|(name, elements)| {
                let elements: Vec<ElementDef> = elements
                    .into_iter()
                    .map(
                        |RawElement(name, types, min, max, flags, binding)| ElementDef {
                            name,
                            types,
                            min,
                            many: max < 0,
                            choice: flags.contains('c'),
                            summary: flags.contains('s'),
                            modifier: flags.contains('m'),
                            binding,
                        },
                    )
                    .collect();
                let mut json_names = HashMap::new();
                for (e, el) in elements.iter().enumerate() {
                    if el.choice {
                        for (t, ty) in el.types.iter().enumerate() {
                            json_names.insert(choice_name(&el.name, ty), (e, t));
                        }
                    } else {
                        json_names.insert(el.name.clone(), (e, 0));
                    }
                }
                (
                    name,
                    TypeDef {
                        elements,
                        json_names,
                    },
                )
            })
            .collect();
        Schema {
            resource_set: raw.resources.iter().cloned().collect(),
            resources: raw.resources,
            primitives: raw.primitives.into_iter().collect(),
            types,
            value_sets: raw
                .value_sets
                .into_iter()
                .map(|(url, codes)| (url, codes.into_iter().collect()))
                .collect(),
        }
    }

    /// Every concrete R4 resource type, sorted.
    pub fn resource_types(&self) -> &[String] {
        &self.resources
    }

    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource_set.contains(name)
    }

    pub fn is_primitive(&self, ty: &str) -> bool {
        self.primitives.contains(ty)
    }

    /// A resource, complex type or backbone element path.
    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// Whether `code` is in a required ValueSet; None when the set is unknown.
    pub fn value_set_contains(&self, url: &str, code: &str) -> Option<bool> {
        self.value_sets.get(url).map(|codes| codes.contains(code))
    }
}

/// The R4 schema, loaded on first use.
pub fn schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(Schema::load);
    &SCHEMA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_every_resource_type() {
        let s = schema();
        assert_eq!(s.resource_types().len(), 146);
        assert!(s.is_resource_type("Patient"));
        assert!(s.is_resource_type("ClaimResponse"));
        assert!(!s.is_resource_type("DomainResource"));
        assert!(!s.is_resource_type("patient"));
    }

    #[test]
    fn expands_choice_elements() {
        let obs = schema().type_def("Observation").unwrap();
        let (el, ty) = obs.property("valueQuantity").unwrap();
        assert_eq!((el.name.as_str(), ty), ("value", "Quantity"));
        assert!(el.choice && el.summary);
        assert!(obs.property("value").is_none());
        assert!(obs.property("valueFoo").is_none());
    }
}
