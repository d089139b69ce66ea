//! Type knowledge from the R4 schema: member navigation (choice types,
//! primitive `_name` companions, contained resources) and type tests.

use serde_json::Value;

use super::ast::TypeSpec;
use super::value::{JsonNode, Node, QUANTITY_TYPES};
use super::Error;
use crate::fhir::schema::schema;

/// The FHIR type of a JSON value given the declared one: resources carry
/// their own `resourceType`.
fn actual_type<'a>(value: &'a Value, declared: Option<&'a str>) -> Option<&'a str> {
    match value.get("resourceType").and_then(Value::as_str) {
        Some(rt)
            if declared.is_none()
                || declared == Some("Resource")
                || schema().is_resource_type(rt) =>
        {
            Some(rt)
        }
        _ => declared,
    }
}

/// Pushes `obj[key]` (array items flattened) zipped with its `_key` companion.
fn push_key<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    ty: Option<&'a str>,
    out: &mut Vec<Node<'a>>,
) {
    let v = obj.get(key);
    let e = obj.get(&format!("_{key}"));
    match (v, e) {
        (Some(Value::Array(vs)), e) => {
            let es = e.and_then(Value::as_array);
            for (i, item) in vs.iter().enumerate() {
                let ext = es.and_then(|es| es.get(i)).filter(|x| !x.is_null());
                if item.is_null() && ext.is_none() {
                    continue;
                }
                out.push(Node::Json(JsonNode {
                    value: Some(item).filter(|x| !x.is_null()),
                    ext,
                    ty: actual_type(item, ty),
                }));
            }
        }
        (None, Some(Value::Array(es))) => {
            for ext in es.iter().filter(|x| !x.is_null()) {
                out.push(Node::Json(JsonNode {
                    value: None,
                    ext: Some(ext),
                    ty,
                }));
            }
        }
        (Some(Value::Null), None) | (None, None) => {}
        (v, e) => out.push(Node::Json(JsonNode {
            value: v.filter(|x| !x.is_null()),
            ext: e,
            ty: v.and_then(|v| actual_type(v, ty)).or(ty),
        })),
    }
}

/// The children of `node` named `name` (FHIRPath member navigation).
/// Returns false when the node's type is known and has no such element. In
/// strict mode a choice element named with its type suffix is an error.
pub fn member<'a>(
    node: &Node<'a>,
    name: &str,
    strict: bool,
    out: &mut Vec<Node<'a>>,
) -> Result<bool, Error> {
    let Node::Json(j) = node else { return Ok(true) };
    // id and extension of a primitive live in its companion.
    let obj = match (j.value, j.ext) {
        (Some(Value::Object(o)), _) => o,
        (_, Some(Value::Object(o))) => {
            let ty = match name {
                "id" => Some("string"),
                "extension" => Some("Extension"),
                _ => None,
            };
            push_key(o, name, ty, out);
            return Ok(true);
        }
        _ => return Ok(true),
    };
    let td = j.ty.and_then(|t| schema().type_def(t));
    if let Some(td) = td {
        if let Some((el, ty)) = td.property(name) {
            if el.choice && el.name != name {
                if strict {
                    return Err(Error::semantic(format!(
                        "'{name}' is a choice type; use '{}'",
                        el.name
                    )));
                }
                push_key(obj, name, Some(ty), out);
                return Ok(true);
            }
            push_key(obj, name, Some(ty), out);
            return Ok(true);
        }
        // A choice element: `value` finds `valueQuantity`, ...
        let mut found_choice = false;
        for el in &td.elements {
            if el.choice && el.name == name {
                found_choice = true;
                for ty in &el.types {
                    let key = crate::fhir::schema::choice_name(name, ty);
                    if obj.contains_key(&key) || obj.contains_key(&format!("_{key}")) {
                        push_key(obj, &key, Some(ty.as_str()), out);
                    }
                }
            }
        }
        if found_choice {
            return Ok(true);
        }
        if j.ty != Some("Extension") {
            return Ok(false);
        }
    }
    // Without type knowledge: the key itself, else a choice by prefix.
    if obj.contains_key(name) || obj.contains_key(&format!("_{name}")) {
        push_key(obj, name, None, out);
        return Ok(true);
    }
    for key in obj.keys() {
        if let Some(rest) = key.strip_prefix(name) {
            if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                let ty = guess_type(rest);
                push_key(obj, key, ty, out);
            }
        }
    }
    Ok(true)
}

/// `Quantity` from `valueQuantity`; `string` from `valueString`.
fn guess_type(suffix: &str) -> Option<&'static str> {
    let lower = {
        let mut c = suffix.chars();
        let f = c.next()?.to_ascii_lowercase();
        format!("{f}{}", c.as_str())
    };
    if schema().is_primitive(&lower) {
        return PRIMITIVES.iter().find(|p| **p == lower).copied();
    }
    COMPLEX.iter().find(|p| **p == suffix).copied()
}

const PRIMITIVES: [&str; 20] = [
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

const COMPLEX: [&str; 22] = [
    "Quantity",
    "CodeableConcept",
    "Coding",
    "Range",
    "Ratio",
    "Period",
    "SampledData",
    "Attachment",
    "Reference",
    "Identifier",
    "HumanName",
    "Address",
    "ContactPoint",
    "Timing",
    "Age",
    "Duration",
    "Count",
    "Distance",
    "Money",
    "Annotation",
    "Signature",
    "Meta",
];

/// Whether `ty` is `base` or a specialization of it.
fn derives(ty: &str, base: &str) -> bool {
    if ty == base {
        return true;
    }
    match base {
        "Resource" => schema().is_resource_type(ty),
        "DomainResource" => {
            schema().is_resource_type(ty) && !matches!(ty, "Bundle" | "Binary" | "Parameters")
        }
        "Quantity" => QUANTITY_TYPES.contains(&ty),
        "string" => matches!(ty, "code" | "id" | "markdown"),
        "uri" => matches!(ty, "url" | "canonical" | "oid" | "uuid"),
        "integer" => matches!(ty, "positiveInt" | "unsignedInt"),
        "Element" => !schema().is_resource_type(ty),
        "BackboneElement" => ty.contains('.'),
        _ => false,
    }
}

const SYSTEM_TYPES: [&str; 8] = [
    "Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity",
];

/// Whether a type specifier names a type this engine knows.
pub fn known_type(ts: &TypeSpec) -> bool {
    let n = ts.name.as_str();
    match ts.namespace.as_deref() {
        Some("System") => SYSTEM_TYPES.contains(&n),
        Some("FHIR") => fhir_type(n),
        None => SYSTEM_TYPES.contains(&n) || fhir_type(n),
        Some(_) => false,
    }
}

fn fhir_type(n: &str) -> bool {
    schema().type_def(n).is_some()
        || schema().is_primitive(n)
        || matches!(
            n,
            "Resource" | "DomainResource" | "Element" | "BackboneElement"
        )
}

/// `node as ts`, `ofType(ts)`: like `is`, except that FHIR primitives
/// match only their own type (the official tests: `gender.as(string)` is
/// empty while `gender.is(string)` is true).
pub fn as_type(node: &Node, ts: &TypeSpec) -> bool {
    match node {
        Node::Json(j) if j.ty.is_some_and(|t| schema().is_primitive(t)) => {
            is_type(node, ts) && j.ty == Some(ts.name.as_str())
        }
        _ => is_type(node, ts),
    }
}

/// `node is ts`
pub fn is_type(node: &Node, ts: &TypeSpec) -> bool {
    let (ns, name) = node.type_name();
    let want = ts.name.as_str();
    match ts.namespace.as_deref() {
        Some(n) if n != ns => false,
        _ if ns == "FHIR" => derives(&name, want),
        _ => name == want,
    }
}

/// Every child of a node (`children()`), each with its FHIR type.
pub fn children<'a>(node: &Node<'a>, out: &mut Vec<Node<'a>>) {
    let Node::Json(j) = node else { return };
    let obj = match (j.value, j.ext) {
        (Some(Value::Object(o)), _) => o,
        (_, Some(Value::Object(o))) => {
            for key in ["id", "extension"] {
                let ty = if key == "id" { "string" } else { "Extension" };
                push_key(o, key, Some(ty), out);
            }
            return;
        }
        _ => return,
    };
    let td = j.ty.and_then(|t| schema().type_def(t));
    for key in obj.keys() {
        if key == "resourceType" {
            continue;
        }
        if let Some(base) = key.strip_prefix('_') {
            if obj.contains_key(base) {
                continue;
            }
            let ty = td.and_then(|td| td.property(base)).map(|(_, t)| t);
            push_key(obj, base, ty, out);
            continue;
        }
        let ty = td.and_then(|td| td.property(key)).map(|(_, t)| t);
        push_key(obj, key, ty, out);
    }
}

/// A type specifier from a function argument (`ofType(FHIR.Patient)`).
pub fn spec_of(e: &super::ast::Expr) -> Option<TypeSpec> {
    use super::ast::Expr;
    match e {
        Expr::Ident(n) => Some(TypeSpec {
            namespace: None,
            name: n.clone(),
        }),
        Expr::Member(t, n) => match t.as_ref() {
            Expr::Ident(ns) => Some(TypeSpec {
                namespace: Some(ns.clone()),
                name: n.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}
