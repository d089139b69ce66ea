//! FHIR JSON → FHIR XML, compact, elements in schema order.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::Writer;
use serde_json::{Map, Value};

use super::{checked_div, is_attribute, shape, Shape, FHIR_NS};
use crate::fhir::schema::{schema, ElementDef, TypeDef};

type Out = Writer<Vec<u8>>;
type Object = Map<String, Value>;

pub(super) fn document(json: &Value) -> Result<String, String> {
    let resource = json
        .as_object()
        .ok_or("the JSON is not an object (a resource)")?;
    let mut w = Writer::new(Vec::new());
    emit(
        &mut w,
        Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
    );
    write_resource(&mut w, resource, None)?;
    String::from_utf8(w.into_inner()).map_err(|e| e.to_string())
}

/// Writes to a `Vec`, which cannot fail.
fn emit(w: &mut Out, event: Event) {
    w.write_event(event).expect("writing to memory");
}

/// One element of a complex type present in the JSON: its value and its
/// `_name` companion (primitives only).
struct Prop<'a> {
    index: usize,
    name: &'a str,
    element: &'static ElementDef,
    ty: &'static str,
    value: Option<&'a Value>,
    extra: Option<&'a Value>,
}

/// A resource: `<Patient>` (with the FHIR namespace at the root). `path` is
/// where it sits (None for the root, whose path is its type).
fn write_resource(w: &mut Out, resource: &Object, path: Option<&str>) -> Result<(), String> {
    let at = path.unwrap_or("resource");
    let rtype = match resource.get("resourceType") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(format!("{at}: no resourceType")),
    };
    if !schema().is_resource_type(rtype) {
        return Err(format!("{at}: '{rtype}' is not a resource type"));
    }
    let td = schema()
        .type_def(rtype)
        .ok_or_else(|| format!("{at}: no definition for {rtype}"))?;
    let mut start = BytesStart::new(rtype);
    if path.is_none() {
        start.push_attribute(("xmlns", FHIR_NS));
    }
    let path = path.unwrap_or(rtype);
    let props = props(resource, td, rtype, true, path)?;
    write_element(w, start, &props, path)
}

/// `<name id=".." url="..">` with its children, for a datatype or backbone element.
fn write_complex(
    w: &mut Out,
    name: &str,
    ty: &str,
    value: &Value,
    path: &str,
) -> Result<(), String> {
    let Value::Object(object) = value else {
        return Err(format!("{path}: expected an object, got {}", kind(value)));
    };
    let td = schema()
        .type_def(ty)
        .ok_or_else(|| format!("{path}: no definition for the type {ty}"))?;
    let mut start = BytesStart::new(name);
    for attribute in ["id", "url"] {
        if !is_attribute(ty, false, attribute) {
            continue;
        }
        match object.get(attribute) {
            None => {}
            Some(Value::String(s)) => {
                let value = escape(s, path)?;
                start.push_attribute((attribute.as_bytes(), value.as_bytes()));
            }
            Some(v) => {
                return Err(format!(
                    "{path}.{attribute}: expected a string, got {}",
                    kind(v)
                ))
            }
        }
    }
    let props = props(object, td, ty, false, path)?;
    write_element(w, start, &props, path)
}

/// The start tag, the children and the end tag (or `<x/>` without children).
fn write_element(w: &mut Out, start: BytesStart, props: &[Prop], path: &str) -> Result<(), String> {
    if props.is_empty() {
        emit(w, Event::Empty(start));
        return Ok(());
    }
    let end = BytesEnd::new(String::from_utf8_lossy(start.name().as_ref()).into_owned());
    emit(w, Event::Start(start));
    for prop in props {
        write_prop(w, prop, path)?;
    }
    emit(w, Event::End(end));
    Ok(())
}

/// The JSON properties of an object of type `td` as elements, in schema
/// order; attributes (`id` of datatypes, `Extension.url`) are left out.
fn props<'a>(
    object: &'a Object,
    td: &'static TypeDef,
    type_name: &str,
    is_resource: bool,
    path: &str,
) -> Result<Vec<Prop<'a>>, String> {
    let mut props: Vec<Prop> = Vec::with_capacity(object.len());
    for (key, value) in object {
        if is_resource && key == "resourceType" {
            continue;
        }
        let (extra, name) = match key.strip_prefix('_') {
            Some(name) => (true, name),
            None => (false, key.as_str()),
        };
        let Some((element, ty)) = td.property(name) else {
            return Err(format!("{path}: unknown property '{key}'"));
        };
        if is_attribute(type_name, is_resource, &element.name) {
            if extra {
                return Err(format!(
                    "{path}: '{key}' is not possible: '{name}' is an XML attribute here"
                ));
            }
            continue;
        }
        if extra && shape(ty) != Shape::Primitive {
            return Err(format!("{path}: unknown property '{key}'"));
        }
        match props.iter_mut().find(|p| std::ptr::eq(p.element, element)) {
            Some(p) if p.name != name => {
                return Err(format!(
                    "{path}: both '{}' and '{name}' are given for {}[x]",
                    p.name, element.name
                ))
            }
            Some(p) if extra => p.extra = Some(value),
            Some(p) => p.value = Some(value),
            None => props.push(Prop {
                index: td
                    .elements
                    .iter()
                    .position(|e| std::ptr::eq(e, element))
                    .unwrap_or(usize::MAX),
                name,
                element,
                ty,
                value: (!extra).then_some(value),
                extra: extra.then_some(value),
            }),
        }
    }
    props.sort_by_key(|p| p.index);
    Ok(props)
}

fn write_prop(w: &mut Out, prop: &Prop, path: &str) -> Result<(), String> {
    let name = prop.name;
    let shape = shape(prop.ty);
    if shape == Shape::Primitive && prop.element.many {
        let values = list(prop.value, name, path)?;
        let extras = list(prop.extra, name, path)?;
        for i in 0..values.len().max(extras.len()) {
            let at = format!("{path}.{name}[{i}]");
            write_primitive(w, name, prop.ty, values.get(i), extras.get(i), &at)?;
        }
        return Ok(());
    }
    if shape == Shape::Primitive {
        let at = format!("{path}.{name}");
        return write_primitive(w, name, prop.ty, prop.value, prop.extra, &at);
    }
    let Some(value) = prop.value else {
        return Ok(());
    };
    let items = match (prop.element.many, value) {
        (true, Value::Array(items)) => items.as_slice(),
        (true, v) => return Err(format!("{path}.{name}: expected an array, got {}", kind(v))),
        (false, v) => std::slice::from_ref(v),
    };
    for (i, item) in items.iter().enumerate() {
        let at = match prop.element.many {
            true => format!("{path}.{name}[{i}]"),
            false => format!("{path}.{name}"),
        };
        match shape {
            Shape::Xhtml => {
                let Value::String(div) = item else {
                    return Err(format!("{at}: expected a string, got {}", kind(item)));
                };
                let div = checked_div(div, &at)?;
                w.get_mut().extend_from_slice(div.as_bytes());
            }
            Shape::Resource => {
                let Value::Object(resource) = item else {
                    return Err(format!("{at}: expected a resource, got {}", kind(item)));
                };
                emit(w, Event::Start(BytesStart::new(name)));
                write_resource(w, resource, Some(&at))?;
                emit(w, Event::End(BytesEnd::new(name)));
            }
            Shape::Complex | Shape::Primitive => write_complex(w, name, prop.ty, item, &at)?,
        }
    }
    Ok(())
}

/// The items of a repeating primitive's value or `_name` array.
fn list<'a>(value: Option<&'a Value>, name: &str, path: &str) -> Result<&'a [Value], String> {
    match value {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(v) => Err(format!("{path}.{name}: expected an array, got {}", kind(v))),
    }
}

/// `<name id=".." value="..">` with its extensions.
fn write_primitive(
    w: &mut Out,
    name: &str,
    ty: &str,
    value: Option<&Value>,
    extra: Option<&Value>,
    path: &str,
) -> Result<(), String> {
    let value = value.filter(|v| !v.is_null());
    let extra = extra.filter(|v| !v.is_null());
    if value.is_none() && extra.is_none() {
        return Err(format!("{path}: null, with neither a value nor extensions"));
    }
    let mut start = BytesStart::new(name);
    let mut extensions: &[Value] = &[];
    if let Some(extra) = extra {
        let Value::Object(extra) = extra else {
            return Err(format!(
                "{path}: expected an object for _{name}, got {}",
                kind(extra)
            ));
        };
        for (key, v) in extra {
            match (key.as_str(), v) {
                ("id", Value::String(id)) => {
                    let id = escape(id, path)?;
                    start.push_attribute((&b"id"[..], id.as_bytes()));
                }
                ("extension", Value::Array(items)) => extensions = items,
                _ => return Err(format!("{path}: unexpected '{key}' in _{name}")),
            }
        }
    }
    if let Some(value) = value {
        let text = xml_value(ty, value, path)?;
        let text = escape(&text, path)?;
        start.push_attribute((&b"value"[..], text.as_bytes()));
    }
    if extensions.is_empty() {
        emit(w, Event::Empty(start));
        return Ok(());
    }
    emit(w, Event::Start(start));
    for (i, ext) in extensions.iter().enumerate() {
        write_complex(
            w,
            "extension",
            "Extension",
            ext,
            &format!("{path}.extension[{i}]"),
        )?;
    }
    emit(w, Event::End(BytesEnd::new(name)));
    Ok(())
}

/// A primitive's JSON value as the text of its `value` attribute.
fn xml_value<'a>(ty: &str, value: &'a Value, path: &str) -> Result<Cow<'a, str>, String> {
    match (ty, value) {
        ("boolean", Value::Bool(b)) => Ok(Cow::Borrowed(if *b { "true" } else { "false" })),
        ("integer" | "positiveInt" | "unsignedInt" | "decimal", Value::Number(n)) => {
            Ok(Cow::Owned(n.to_string()))
        }
        ("boolean" | "integer" | "positiveInt" | "unsignedInt" | "decimal", _) => {
            Err(format!("{path}: expected a {ty}, got {}", kind(value)))
        }
        (_, Value::String(s)) => Ok(Cow::Borrowed(s)),
        _ => Err(format!("{path}: expected a string, got {}", kind(value))),
    }
}

/// Escapes an attribute value: markup characters, and the whitespace that
/// attribute-value normalisation would turn into spaces as character
/// references. Characters XML 1.0 cannot carry at all are refused.
fn escape<'a>(s: &'a str, path: &str) -> Result<Cow<'a, str>, String> {
    let special = |c: char| matches!(c, '&' | '<' | '>' | '"') || !super::is_xml_char(c) || c < ' ';
    if !s.contains(special) {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if !super::is_xml_char(c) => {
                return Err(format!(
                    "{path}: the character U+{:04X} cannot be written in XML",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    Ok(Cow::Owned(out))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
