//! Structural validation of a resource in FHIR JSON against the R4 schema:
//! known elements only, arrays where (and only where) elements repeat,
//! required elements present, primitive values well formed, codes of required
//! bindings in their value set, contained resources checked recursively.
//! Every problem is reported with the FHIRPath of the element concerned.

use serde_json::{Map, Value};

use super::outcome::{Issue, IssueType, Severity};
use super::primitive;
use super::schema::{choice_name, schema, ElementDef, TypeDef};

/// Deepest nesting accepted; deeper documents are rejected, not recursed into.
const MAX_DEPTH: usize = 64;

struct Validator {
    issues: Vec<Issue>,
}

impl Validator {
    fn error(&mut self, code: IssueType, path: &str, msg: impl Into<String>) {
        self.issues
            .push(Issue::new(Severity::Error, code, msg.into()).at(path.to_string()));
    }

    fn resource(&mut self, value: &Value, path: Option<&str>, depth: usize) {
        let Value::Object(obj) = value else {
            self.error(
                IssueType::Structure,
                path.unwrap_or("Resource"),
                "a resource must be a JSON object",
            );
            return;
        };
        let rtype = match obj.get("resourceType") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                self.error(
                    IssueType::Structure,
                    path.unwrap_or("Resource"),
                    "resourceType must be a string",
                );
                return;
            }
            None => {
                self.error(
                    IssueType::Required,
                    path.unwrap_or("Resource"),
                    "resourceType is missing",
                );
                return;
            }
        };
        let Some(def) = schema()
            .type_def(rtype)
            .filter(|_| schema().is_resource_type(rtype))
        else {
            self.error(
                IssueType::NotSupported,
                path.unwrap_or("Resource"),
                format!("`{rtype}` is not an R4 resource type"),
            );
            return;
        };
        let path = path.map_or_else(|| rtype.to_string(), |p| p.to_string());
        if let Some(id) = obj.get("id") {
            if !id.as_str().is_some_and(primitive::is_id) {
                self.error(
                    IssueType::Value,
                    &format!("{path}.id"),
                    "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                );
            }
        }
        self.object(obj, def, &path, true, depth);
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        def: &TypeDef,
        path: &str,
        is_resource: bool,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            self.error(
                IssueType::TooCostly,
                path,
                "the resource is nested too deeply",
            );
            return;
        }
        let content = obj.len() - usize::from(is_resource && obj.contains_key("resourceType"));
        if content == 0 && !is_resource {
            self.error(
                IssueType::Structure,
                path,
                "an element must not be an empty object",
            );
        }
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                self.primitive_extension(def, base, value, obj, path, depth);
                continue;
            }
            let Some((el, ty)) = def.property(key) else {
                self.error(
                    IssueType::Structure,
                    &format!("{path}.{key}"),
                    format!("unknown element `{key}`"),
                );
                continue;
            };
            let el_path = if el.choice {
                format!("{path}.{}.ofType({ty})", el.name)
            } else {
                format!("{path}.{key}")
            };
            self.property(
                el,
                ty,
                value,
                obj.contains_key(&format!("_{key}")),
                &el_path,
                depth,
            );
        }
        for el in def.elements.iter().filter(|e| e.min > 0) {
            let present = if el.choice {
                el.types.iter().any(|t| {
                    let name = choice_name(&el.name, t);
                    obj.contains_key(&name) || obj.contains_key(&format!("_{name}"))
                })
            } else {
                obj.contains_key(&el.name) || obj.contains_key(&format!("_{}", el.name))
            };
            if !present {
                self.error(
                    IssueType::Required,
                    &format!("{path}.{}", el.name),
                    format!("required element `{}` is missing", el.name),
                );
            }
        }
    }

    fn property(
        &mut self,
        el: &ElementDef,
        ty: &str,
        value: &Value,
        has_extension: bool,
        path: &str,
        depth: usize,
    ) {
        match (el.many, value) {
            (true, Value::Array(items)) => {
                if items.is_empty() {
                    self.error(IssueType::Structure, path, "arrays must not be empty");
                }
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    if item.is_null() {
                        // Allowed only as a placeholder for a primitive whose
                        // value is absent but which has an id or extension.
                        if !(has_extension && schema().is_primitive(ty)) {
                            self.error(
                                IssueType::Structure,
                                &item_path,
                                "null is not allowed here",
                            );
                        }
                        continue;
                    }
                    self.value(el, ty, item, &item_path, depth);
                }
            }
            (true, _) => self.error(
                IssueType::Structure,
                path,
                "this element repeats: its value must be a JSON array",
            ),
            (false, Value::Array(_)) => self.error(
                IssueType::Structure,
                path,
                "this element does not repeat: its value must not be an array",
            ),
            (false, _) => self.value(el, ty, value, path, depth),
        }
    }

    fn value(&mut self, el: &ElementDef, ty: &str, value: &Value, path: &str, depth: usize) {
        if ty == "Resource" {
            self.resource(value, Some(path), depth + 1);
            return;
        }
        if schema().is_primitive(ty) {
            if let Err(msg) = primitive::check(ty, value) {
                self.error(IssueType::Value, path, msg);
                return;
            }
            if ty == "xhtml" {
                if let Err(msg) =
                    super::xml::check_narrative(value.as_str().unwrap_or_default(), path)
                {
                    self.error(IssueType::Value, path, msg);
                }
                return;
            }
            if let (Some(url), Some(code)) = (&el.binding, value.as_str()) {
                if ty == "code" && schema().value_set_contains(url, code) == Some(false) {
                    self.error(
                        IssueType::CodeInvalid,
                        path,
                        format!("`{code}` is not a code of the required value set {url}"),
                    );
                }
            }
            return;
        }
        let Some(def) = schema().type_def(ty) else {
            self.error(
                IssueType::Exception,
                path,
                format!("no definition for type {ty}"),
            );
            return;
        };
        match value {
            Value::Object(obj) => self.object(obj, def, path, false, depth + 1),
            _ => self.error(
                IssueType::Structure,
                path,
                format!("must be a JSON object ({ty})"),
            ),
        }
    }

    /// `_name`: the id and extensions of a primitive element.
    fn primitive_extension(
        &mut self,
        def: &TypeDef,
        base: &str,
        value: &Value,
        obj: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        let key_path = format!("{path}._{base}");
        let Some((el, ty)) = def
            .property(base)
            .filter(|(_, ty)| schema().is_primitive(ty))
        else {
            self.error(
                IssueType::Structure,
                &key_path,
                format!("unknown element `_{base}`"),
            );
            return;
        };
        match (el.many, value) {
            (true, Value::Array(items)) => {
                let values = obj.get(base).and_then(Value::as_array);
                if values.is_some_and(|v| v.len() != items.len()) {
                    self.error(
                        IssueType::Structure,
                        &key_path,
                        format!("`_{base}` must have as many entries as `{base}`"),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    self.element_of_primitive(item, &format!("{key_path}[{i}]"), depth);
                }
            }
            (false, v @ Value::Object(_)) => self.element_of_primitive(v, &key_path, depth),
            _ => self.error(
                IssueType::Structure,
                &key_path,
                format!("`_{base}` has the wrong shape ({ty})"),
            ),
        }
    }
}

impl Validator {
    fn element_of_primitive(&mut self, v: &Value, path: &str, depth: usize) {
        let element = schema().type_def("Element").expect("Element is defined");
        match v {
            Value::Object(o) => self.object(o, element, path, false, depth + 1),
            Value::Null => {}
            _ => self.error(
                IssueType::Structure,
                path,
                "must be a JSON object (id and extension of a primitive)",
            ),
        }
    }
}

/// Validates a resource; returns every problem found (empty when valid).
pub fn validate_resource(value: &Value) -> Vec<Issue> {
    let mut v = Validator { issues: Vec::new() };
    v.resource(value, None, 0);
    v.issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<(String, String)> {
        validate_resource(&v)
            .into_iter()
            .map(|i| (i.expression.unwrap_or_default(), i.diagnostics))
            .collect()
    }

    #[test]
    fn accepts_a_valid_patient() {
        let p = json!({
            "resourceType": "Patient", "id": "p1", "active": true,
            "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
            "gender": "male", "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://example.org/x", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "contained": [{"resourceType": "Organization", "id": "o1", "name": "X"}],
            "deceasedBoolean": false
        });
        assert_eq!(problems(p), vec![]);
    }

    #[test]
    fn names_the_path_of_each_problem() {
        let p = json!({
            "resourceType": "Patient", "foo": 1, "birthDate": "2020-13-45",
            "name": {"family": "A"}, "gender": "xyz", "active": "yes",
            "contact": [{"name": {"given": [""]}}],
            "contained": [{"resourceType": "Organization", "bar": 2}]
        });
        let found = problems(p);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "Patient.foo",
            "Patient.birthDate",
            "Patient.name",
            "Patient.gender",
            "Patient.active",
            "Patient.contact[0].name.given[0]",
            "Patient.contained[0].bar",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {found:?}"
            );
        }
    }

    #[test]
    fn reports_missing_required_and_choice_types() {
        let o = json!({"resourceType": "Observation", "code": {"text": "x"}, "valueFoo": 1});
        let found = problems(o);
        assert!(found.iter().any(|(p, _)| p == "Observation.status"));
        assert!(found.iter().any(|(p, _)| p == "Observation.valueFoo"));
        let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1.5}});
        assert_eq!(problems(o), vec![]);
    }

    #[test]
    fn rejects_unknown_types_and_bad_ids() {
        assert_eq!(problems(json!({"resourceType": "Foo"})).len(), 1);
        assert_eq!(problems(json!({"status": "final"})).len(), 1);
        assert_eq!(
            problems(json!({"resourceType": "Patient", "id": "a b"}))[0].0,
            "Patient.id"
        );
    }
}
