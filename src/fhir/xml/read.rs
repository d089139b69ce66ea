//! FHIR XML → FHIR JSON.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;
use serde_json::{Map, Number, Value};

use super::{checked_div, is_attribute, is_xml_space, ns_of, shape, Ns, Shape};
use crate::fhir::schema::{schema, ElementDef, TypeDef};

/// Elements nested deeper than this are refused (the parser recurses).
const MAX_DEPTH: usize = 200;
/// serde_json refuses JSON nested deeper than this, so the result may not be:
/// it could be stored, but never parsed again.
const MAX_JSON_DEPTH: usize = 127;

pub(super) fn document(input: &str) -> Result<Value, String> {
    let mut r = Reader {
        xml: NsReader::from_str(input),
        input,
        event_start: 0,
        depth: 0,
    };
    let mut root: Option<Map<String, Value>> = None;
    loop {
        let (ns, event) = r.next()?;
        match event {
            Event::Decl(d) if root.is_none() => check_decl(&d)?,
            Event::Start(ref e) | Event::Empty(ref e) if root.is_none() => {
                let empty = matches!(event, Event::Empty(_));
                if ns != Ns::Fhir {
                    return Err(format!(
                        "the root element '{}' is not in the FHIR namespace {}",
                        utf8(e.name().as_ref()),
                        super::FHIR_NS
                    ));
                }
                root = Some(r.resource(e, empty, None)?);
            }
            Event::Text(ref t) if t.iter().all(|&b| is_xml_space(b)) => {}
            Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
            Event::Eof => {
                let json = root
                    .map(Value::Object)
                    .ok_or("the document has no root element (the resource type)")?;
                if json_depth(&json) > MAX_JSON_DEPTH {
                    return Err(format!(
                        "the resource nests deeper than {MAX_JSON_DEPTH} levels as JSON"
                    ));
                }
                return Ok(json);
            }
            _ if root.is_some() => return Err("there is content after the root element".into()),
            _ => return Err("there is content before the root element".into()),
        }
    }
}

/// Nesting of arrays and objects (a scalar is 0).
fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_decl(d: &BytesDecl) -> Result<(), String> {
    if let Some(encoding) = d.encoding() {
        let encoding = encoding.map_err(|e| format!("XML declaration: {e}"))?;
        let encoding = utf8(&encoding);
        if !encoding.eq_ignore_ascii_case("utf-8") && !encoding.eq_ignore_ascii_case("utf8") {
            return Err(format!(
                "the XML declares the encoding {encoding}: only UTF-8 is accepted"
            ));
        }
    }
    Ok(())
}

/// The text of a name or value taken from the input, which is a `str`.
fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

struct Reader<'i> {
    xml: NsReader<&'i [u8]>,
    input: &'i str,
    /// Where the last event read began.
    event_start: usize,
    depth: usize,
}

/// The values of one element of a complex type, gathered over its
/// occurrences: `values[i]`/`extras[i]` are the value and the `_name` object
/// (id, extension) of the i-th occurrence, `Null` where there is none.
struct Slot<'s> {
    name: String,
    element: &'s ElementDef,
    values: Vec<Value>,
    extras: Vec<Value>,
    any_value: bool,
    any_extra: bool,
}

/// A child element: its namespace, start tag and whether it is empty (`<x/>`).
type Child<'i> = (Ns, BytesStart<'i>, bool);

/// A primitive's value, and its `_name` object (`id`, `extension`).
type PrimitiveParts = (Option<Value>, Option<Map<String, Value>>);

impl<'i> Reader<'i> {
    fn next(&mut self) -> Result<(Ns, Event<'i>), String> {
        self.event_start = self.xml.buffer_position() as usize;
        match self.xml.read_resolved_event() {
            Ok((ns, event)) => Ok((ns_of(&ns), event)),
            Err(e) => Err(format!(
                "XML syntax error at byte {}: {e}",
                self.xml.error_position()
            )),
        }
    }

    /// The next child element of the current element, or None at its end.
    /// Only whitespace, comments and processing instructions may come between.
    fn child(&mut self, path: &str) -> Result<Option<Child<'i>>, String> {
        loop {
            let (ns, event) = self.next()?;
            match event {
                Event::Start(e) => return Ok(Some((ns, e, false))),
                Event::Empty(e) => return Ok(Some((ns, e, true))),
                Event::End(_) => return Ok(None),
                Event::Text(t) if t.iter().all(|&b| is_xml_space(b)) => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(format!(
                    "{path}: text content is not allowed here (FHIR puts values in value=\"...\")"
                ))
                }
                Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
                Event::Decl(_) => return Err(format!("{path}: misplaced XML declaration")),
                Event::Eof => return Err(format!("{path}: the element is not closed")),
            }
        }
    }

    /// Calls `f` with each FHIR attribute (unprefixed) and its value, after
    /// XML attribute-value normalisation. Namespace declarations and `xsi:`
    /// attributes are skipped; any other prefixed attribute is refused.
    fn attributes(
        &self,
        e: &BytesStart,
        path: &str,
        mut f: impl FnMut(&str, Cow<str>) -> Result<(), String>,
    ) -> Result<(), String> {
        for a in e.attributes() {
            let a = a.map_err(|err| format!("{path}: {err}"))?;
            let key = a.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                continue;
            }
            let (ns, _) = self.xml.resolver().resolve_attribute(a.key);
            match ns_of(&ns) {
                Ns::None => {}
                Ns::Xsi => continue,
                _ => return Err(format!("{path}: unknown attribute '{}'", utf8(key))),
            }
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| format!("{path}: attribute '{}': {err}", utf8(key)))?;
            f(&utf8(key), value)?;
        }
        Ok(())
    }

    /// A resource element (`<Patient>`): the root, or the one child of a
    /// `contained`/`resource`/`outcome` element. `path` is where it sits (None
    /// for the root, whose path is its type).
    fn resource(
        &mut self,
        e: &BytesStart,
        empty: bool,
        path: Option<&str>,
    ) -> Result<Map<String, Value>, String> {
        let rtype = utf8(e.local_name().into_inner()).into_owned();
        let path = path.unwrap_or(&rtype);
        if !schema().is_resource_type(&rtype) {
            return Err(format!("{path}: '{rtype}' is not a resource type"));
        }
        let td = schema()
            .type_def(&rtype)
            .ok_or_else(|| format!("{path}: no definition for {rtype}"))?;
        self.attributes(e, path, |k, _| {
            Err(format!("{path}: unknown attribute '{k}'"))
        })?;
        let mut map = Map::new();
        map.insert("resourceType".into(), Value::String(rtype.clone()));
        self.children(&mut map, td, &rtype, true, empty, path)?;
        Ok(map)
    }

    /// A datatype or backbone element: `id` (and `Extension.url`) from the
    /// attributes, the rest from the children.
    fn complex(
        &mut self,
        e: &BytesStart,
        empty: bool,
        ty: &str,
        path: &str,
    ) -> Result<Map<String, Value>, String> {
        let td = schema()
            .type_def(ty)
            .ok_or_else(|| format!("{path}: no definition for the type {ty}"))?;
        let mut map = Map::new();
        self.attributes(e, path, |k, v| {
            if is_attribute(ty, false, k) && td.property(k).is_some() {
                map.insert(k.to_string(), Value::String(v.into_owned()));
                Ok(())
            } else {
                Err(format!("{path}: unknown attribute '{k}'"))
            }
        })?;
        self.children(&mut map, td, ty, false, empty, path)?;
        Ok(map)
    }

    /// Reads the children of an element of type `td` into `map`.
    fn children(
        &mut self,
        map: &mut Map<String, Value>,
        td: &'static TypeDef,
        type_name: &str,
        is_resource: bool,
        empty: bool,
        path: &str,
    ) -> Result<(), String> {
        if empty {
            return Ok(());
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("{path}: elements are nested too deeply"));
        }
        let mut slots: Vec<Slot<'static>> = Vec::new();
        while let Some((ns, e, child_empty)) = self.child(path)? {
            let local = e.local_name();
            let name = utf8(local.as_ref());
            let qname = e.name();
            let is_div = ns == Ns::Xhtml && name == "div";
            if ns != Ns::Fhir && !is_div {
                return Err(format!(
                    "{path}: element '{}' is not in the FHIR namespace",
                    utf8(qname.as_ref())
                ));
            }
            let Some((element, ty)) = td.property(&name) else {
                return Err(format!("{path}: unknown element '{name}'"));
            };
            if is_attribute(type_name, is_resource, &element.name) {
                return Err(format!(
                    "{path}: '{name}' is an attribute here, not an element"
                ));
            }
            let shape = shape(ty);
            if (shape == Shape::Xhtml) != is_div {
                return Err(format!(
                    "{path}: the narrative must be a <div> in the namespace {}",
                    super::XHTML_NS
                ));
            }
            let at = match slots.iter().rposition(|s| s.name == name) {
                Some(at) => at,
                None => {
                    if let Some(other) = slots.iter().find(|s| std::ptr::eq(s.element, element)) {
                        return Err(format!(
                            "{path}: both '{}' and '{name}' are given for {}[x]",
                            other.name, element.name
                        ));
                    }
                    slots.push(Slot {
                        name: name.to_string(),
                        element,
                        values: Vec::new(),
                        extras: Vec::new(),
                        any_value: false,
                        any_extra: false,
                    });
                    slots.len() - 1
                }
            };
            let count = slots[at].values.len();
            if count > 0 && !element.many {
                return Err(format!(
                    "{path}: '{name}' appears more than once but does not repeat"
                ));
            }
            let child_path = if element.many {
                format!("{path}.{name}[{count}]")
            } else {
                format!("{path}.{name}")
            };
            let (value, extra) = match shape {
                Shape::Xhtml => (Some(self.div(child_empty, &child_path)?), None),
                Shape::Primitive => self.primitive(&e, child_empty, ty, &child_path)?,
                Shape::Resource => (Some(self.wrapped(&e, child_empty, &child_path)?), None),
                Shape::Complex => {
                    let map = self.complex(&e, child_empty, ty, &child_path)?;
                    (Some(Value::Object(map)), None)
                }
            };
            let slot = &mut slots[at];
            slot.any_value |= value.is_some();
            slot.values.push(value.unwrap_or(Value::Null));
            slot.any_extra |= extra.is_some();
            slot.extras.push(extra.map_or(Value::Null, Value::Object));
        }
        for mut slot in slots {
            let one = |values: &mut Vec<Value>| match slot.element.many {
                true => Value::Array(std::mem::take(values)),
                false => values.pop().unwrap_or(Value::Null),
            };
            if slot.any_value {
                map.insert(slot.name.clone(), one(&mut slot.values));
            }
            if slot.any_extra {
                map.insert(format!("_{}", slot.name), one(&mut slot.extras));
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// A primitive: its value (typed for JSON) and its `_name` object (`id`,
    /// `extension`), each if present.
    fn primitive(
        &mut self,
        e: &BytesStart,
        empty: bool,
        ty: &str,
        path: &str,
    ) -> Result<PrimitiveParts, String> {
        let mut value = None;
        let mut extra = Map::new();
        self.attributes(e, path, |k, v| {
            match k {
                "value" => value = Some(json_value(ty, v, path)?),
                "id" => {
                    extra.insert("id".into(), Value::String(v.into_owned()));
                }
                _ => return Err(format!("{path}: unknown attribute '{k}'")),
            }
            Ok(())
        })?;
        if !empty {
            self.depth += 1;
            let mut extensions = Vec::new();
            while let Some((ns, child, child_empty)) = self.child(path)? {
                if ns != Ns::Fhir || child.name().as_ref() != b"extension" {
                    return Err(format!(
                        "{path}: unknown element '{}'",
                        utf8(child.name().as_ref())
                    ));
                }
                let child_path = format!("{path}.extension[{}]", extensions.len());
                let ext = self.complex(&child, child_empty, "Extension", &child_path)?;
                extensions.push(Value::Object(ext));
            }
            if !extensions.is_empty() {
                extra.insert("extension".into(), Value::Array(extensions));
            }
            self.depth -= 1;
        }
        if value.is_none() && extra.is_empty() {
            return Err(format!("{path}: has neither a value nor extensions"));
        }
        Ok((value, (!extra.is_empty()).then_some(extra)))
    }

    /// The resource inside a `contained`, `Bundle.entry.resource`, ... element.
    fn wrapped(&mut self, e: &BytesStart, empty: bool, path: &str) -> Result<Value, String> {
        self.attributes(e, path, |k, _| {
            Err(format!("{path}: unknown attribute '{k}'"))
        })?;
        let mut found = None;
        if !empty {
            self.depth += 1;
            while let Some((ns, child, child_empty)) = self.child(path)? {
                if found.is_some() {
                    return Err(format!("{path}: holds more than one resource"));
                }
                if ns != Ns::Fhir {
                    return Err(format!(
                        "{path}: element '{}' is not in the FHIR namespace",
                        utf8(child.name().as_ref())
                    ));
                }
                found = Some(self.resource(&child, child_empty, Some(path))?);
            }
            self.depth -= 1;
        }
        found
            .map(Value::Object)
            .ok_or_else(|| format!("{path}: holds no resource"))
    }

    /// The narrative div, whose start tag was the last event: its text in the
    /// input, verbatim.
    fn div(&mut self, empty: bool, path: &str) -> Result<Value, String> {
        let start = self.event_start;
        if self.input.as_bytes().get(start) != Some(&b'<') {
            return Err(format!("{path}: cannot locate the div in the input"));
        }
        if !empty {
            let mut depth = 0usize;
            loop {
                let (_, event) = self.next()?;
                match event {
                    Event::Start(_) => depth += 1,
                    Event::End(_) if depth == 0 => break,
                    Event::End(_) => depth -= 1,
                    Event::DocType(_) => return Err("DOCTYPE declarations are not allowed".into()),
                    Event::Eof => return Err(format!("{path}: the div is not closed")),
                    _ => {}
                }
            }
        }
        let end = self.xml.buffer_position() as usize;
        let text = self
            .input
            .get(start..end)
            .ok_or_else(|| format!("{path}: cannot locate the div in the input"))?;
        Ok(Value::String(checked_div(text, path)?.into_owned()))
    }
}

/// A primitive's `value` attribute as JSON: booleans and numbers typed,
/// everything else a string. Decimals keep their exact text.
fn json_value(ty: &str, text: Cow<str>, path: &str) -> Result<Value, String> {
    match ty {
        "boolean" => match text.as_ref() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{path}: '{text}' is not a boolean (true or false)")),
        },
        "integer" | "positiveInt" | "unsignedInt" | "decimal" => text
            .parse::<Number>()
            .map(Value::Number)
            .map_err(|_| format!("{path}: '{text}' is not a valid {ty}")),
        _ => Ok(Value::String(text.into_owned())),
    }
}
