//! `_summary` and `_elements`: subsets of a resource, marked SUBSETTED.
//! (http://hl7.org/fhir/R4/search.html#summary, #elements)

use serde_json::{json, Map, Value};

use super::schema::{schema, TypeDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

impl Summary {
    pub fn parse(s: &str) -> Option<Summary> {
        Some(match s {
            "true" => Summary::True,
            "text" => Summary::Text,
            "data" => Summary::Data,
            "count" => Summary::Count,
            "false" => Summary::False,
            _ => return None,
        })
    }
}

/// Whether top-level property `key` belongs to one of `names` (element names;
/// `value` selects `valueQuantity` etc.).
fn element_name<'a>(def: &'a TypeDef, key: &str) -> Option<&'a str> {
    let base = key.strip_prefix('_').unwrap_or(key);
    def.property(base).map(|(el, _)| el.name.as_str())
}

fn mark_subsetted(resource: &mut Map<String, Value>) {
    let meta = resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Value::Array(tags) = tags {
            tags.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
                "display": "Resource encoded in summary mode"
            }));
        }
    }
}

/// Keeps the elements of `obj` for which `keep(element)` holds, recursing
/// into backbone elements for `_summary=true`.
fn retain(
    obj: &mut Map<String, Value>,
    def: &TypeDef,
    keep: &dyn Fn(&str, bool, u32) -> bool,
    recurse: bool,
) {
    obj.retain(|key, _| {
        if key == "resourceType" || key == "id" || key == "meta" {
            return true;
        }
        let base = key.strip_prefix('_').unwrap_or(key);
        match def.property(base) {
            Some((el, _)) => keep(&el.name, el.summary, el.min),
            None => false,
        }
    });
    if !recurse {
        return;
    }
    for (key, value) in obj.iter_mut() {
        let Some((_, ty)) = def.property(key) else {
            continue;
        };
        if !ty.contains('.') {
            continue;
        }
        let Some(child) = schema().type_def(ty) else {
            continue;
        };
        let items: Vec<&mut Value> = match value {
            Value::Array(items) => items.iter_mut().collect(),
            v => vec![v],
        };
        for item in items {
            if let Value::Object(o) = item {
                retain(o, child, keep, true);
            }
        }
    }
}

/// Applies `_summary` to a resource (not `count`, which is for searches).
pub fn apply_summary(resource: &mut Map<String, Value>, summary: Summary) {
    let Some(def) = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|t| schema().type_def(t))
    else {
        return;
    };
    match summary {
        Summary::False | Summary::Count => return,
        Summary::True => retain(resource, def, &|_, summary, _| summary, true),
        Summary::Text => retain(
            resource,
            def,
            &|name, _, min| name == "text" || min > 0,
            false,
        ),
        Summary::Data => retain(resource, def, &|name, _, _| name != "text", false),
    }
    mark_subsetted(resource);
}

/// Applies `_elements` (a list of top-level element names).
pub fn apply_elements(resource: &mut Map<String, Value>, names: &[&str]) {
    let Some(def) = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|t| schema().type_def(t))
    else {
        return;
    };
    resource.retain(|key, _| {
        if key == "resourceType" || key == "id" || key == "meta" {
            return true;
        }
        match element_name(def, key) {
            Some(name) => {
                names.contains(&name) || def.elements.iter().any(|e| e.name == name && e.min > 0)
            }
            None => false,
        }
    });
    mark_subsetted(resource);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Map<String, Value> {
        let v = json!({"resourceType": "Patient", "id": "1", "text": {"status": "generated", "div": "<div/>"},
            "name": [{"family": "A"}], "maritalStatus": {"text": "M"}, "birthDate": "2000",
            "_birthDate": {"extension": [{"url": "http://x", "valueString": "y"}]},
            "contact": [{"name": {"family": "B"}}], "deceasedBoolean": false});
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn summary_true_keeps_summary_elements() {
        let mut p = patient();
        apply_summary(&mut p, Summary::True);
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "name",
                "birthDate",
                "_birthDate",
                "deceasedBoolean",
                "meta"
            ]
        );
        assert_eq!(p["meta"]["tag"][0]["code"], "SUBSETTED");
    }

    #[test]
    fn summary_data_and_text() {
        let mut p = patient();
        apply_summary(&mut p, Summary::Data);
        assert!(!p.contains_key("text") && p.contains_key("contact"));
        let mut p = patient();
        apply_summary(&mut p, Summary::Text);
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(keys, ["resourceType", "id", "text", "meta"]);
    }

    #[test]
    fn elements_selects_named_elements_and_choices() {
        let mut p = patient();
        apply_elements(&mut p, &["birthDate", "deceased"]);
        let keys: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "birthDate",
                "_birthDate",
                "deceasedBoolean",
                "meta"
            ]
        );
    }
}
