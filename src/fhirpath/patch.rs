//! FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html): a Parameters
//! resource whose `operation` parameters add, insert, delete, replace and
//! move elements of a resource, each located by a FHIRPath expression.
//!
//! [`parse`] reads the Parameters into [`Operation`]s (a malformed operation
//! is a 400); [`apply`] applies them in order to the resource's JSON (an
//! operation that does not fit the resource is a 422). Errors name the
//! operation, counting from 1.
//!
//! Paths are evaluated in strict mode, so an unknown element is an error
//! rather than an empty match. An element selected by a path is found in the
//! JSON tree by identity (the evaluator's nodes point into the resource), so
//! a path that leaves the resource (`resolve()` of another resource, a
//! computed value) is refused. Values are typed through the R4 schema: a
//! `value[x]` must be one of the element's types (a choice element takes the
//! name of the type given: `deceased` + `valueBoolean` → `deceasedBoolean`),
//! and a value given as `part`s is built element by element, repeating
//! elements as arrays. The companion `_name` arrays of primitive lists
//! (their ids and extensions) stay aligned on insert, delete and move.

use serde_json::{Map, Value};

use super::ast::Expr;
use super::{Context, Node};
use crate::fhir::schema::{choice_name, schema, TypeDef};

/// The five operation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

impl OpType {
    fn parse(code: &str) -> Option<OpType> {
        Some(match code {
            "add" => OpType::Add,
            "insert" => OpType::Insert,
            "delete" => OpType::Delete,
            "replace" => OpType::Replace,
            "move" => OpType::Move,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            OpType::Add => "add",
            OpType::Insert => "insert",
            OpType::Delete => "delete",
            OpType::Replace => "replace",
            OpType::Move => "move",
        }
    }
}

/// A value given to an operation.
#[derive(Debug, Clone, PartialEq)]
enum ValueIn {
    /// `value[x]` (or `resource`): the type suffix (`Date`, `HumanName`,
    /// `Resource`) and the JSON value.
    Typed(String, Value),
    /// `part`s naming the elements of a complex value.
    Parts(Vec<Value>),
}

/// One operation of a FHIRPath Patch.
#[derive(Debug, Clone)]
pub struct Operation {
    pub op: OpType,
    pub path: String,
    expr: Expr,
    name: Option<String>,
    value: Option<ValueIn>,
    index: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
}

/// Why a patch was refused: 400 (malformed) or 422 (does not fit the
/// resource), with a message naming the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn malformed(message: impl Into<String>) -> PatchError {
    PatchError {
        status: 400,
        message: message.into(),
    }
}

/// Reads a Parameters resource into operations.
pub fn parse(params: &Value) -> Result<Vec<Operation>, PatchError> {
    if params.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(malformed("a FHIRPath Patch body is a Parameters resource"));
    }
    let list = params
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            parse_operation(p).map_err(|m| malformed(format!("operation {}: {m}", i + 1)))
        })
        .collect()
}

fn str_part<'v>(part: &'v Value, keys: &[&str]) -> Option<&'v str> {
    keys.iter()
        .find_map(|k| part.get(*k).and_then(Value::as_str))
}

fn parse_operation(p: &Value) -> Result<Operation, String> {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    if name != "operation" {
        return Err(format!(
            "the parameter is named `{name}`; a FHIRPath Patch holds only `operation` parameters"
        ));
    }
    let mut op = None;
    let mut path = None;
    let mut el_name = None;
    let mut value = None;
    let (mut index, mut source, mut destination) = (None, None, None);
    let mut seen: Vec<&str> = Vec::new();
    for part in p
        .get("part")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let pname = part.get("name").and_then(Value::as_str).unwrap_or_default();
        if seen.contains(&pname) {
            return Err(format!("`{pname}` is given twice"));
        }
        seen.push(pname);
        let text = |what: &str| {
            str_part(part, &["valueString", "valueCode", "valueUri"])
                .map(str::to_string)
                .ok_or_else(|| format!("`{pname}` needs a {what}"))
        };
        let int = || {
            part.get("valueInteger")
                .and_then(Value::as_i64)
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| format!("`{pname}` needs a valueInteger ≥ 0"))
        };
        match pname {
            "type" => {
                let code = text("valueCode")?;
                op = Some(OpType::parse(&code).ok_or_else(|| {
                    format!("type `{code}` is not one of add, insert, delete, replace, move")
                })?);
            }
            "path" => path = Some(text("valueString")?),
            "name" => el_name = Some(text("valueString")?),
            "value" => {
                value = Some(value_in(part).ok_or("`value` has no value[x] and no parts")?);
            }
            "index" => index = Some(int()?),
            "source" => source = Some(int()?),
            "destination" => destination = Some(int()?),
            "" => return Err("a part has no name".to_string()),
            other => return Err(format!("unknown part `{other}`")),
        }
    }
    let op = op.ok_or("the part `type` is missing")?;
    let path = path.ok_or_else(|| format!("{}: the part `path` is missing", op.code()))?;
    let (needed, allowed): (&[&str], &[&str]) = match op {
        OpType::Add => (&["name", "value"], &["name", "value"]),
        OpType::Insert => (&["value", "index"], &["value", "index"]),
        OpType::Delete => (&[], &[]),
        OpType::Replace => (&["value"], &["value"]),
        OpType::Move => (&["source", "destination"], &["source", "destination"]),
    };
    for n in needed {
        if !seen.contains(n) {
            return Err(format!("{}: the part `{n}` is missing", op.code()));
        }
    }
    for s in &seen {
        if !["type", "path"].contains(s) && !allowed.contains(s) {
            return Err(format!("{}: the part `{s}` does not apply", op.code()));
        }
    }
    let expr = super::parse(&path).map_err(|e| {
        format!(
            "{}: the path `{path}` is not valid FHIRPath: {e}",
            op.code()
        )
    })?;
    Ok(Operation {
        op,
        path,
        expr,
        name: el_name,
        value,
        index,
        source,
        destination,
    })
}

/// The value of a `value` part (or of a part of a complex value).
fn value_in(part: &Value) -> Option<ValueIn> {
    let obj = part.as_object()?;
    for (k, v) in obj {
        if let Some(suffix) = k.strip_prefix("value") {
            if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Some(ValueIn::Typed(suffix.to_string(), v.clone()));
            }
        }
    }
    if let Some(r) = obj.get("resource") {
        return Some(ValueIn::Typed("Resource".to_string(), r.clone()));
    }
    obj.get("part")
        .and_then(Value::as_array)
        .map(|p| ValueIn::Parts(p.clone()))
}

/// Applies the operations in order. On error the resource may be partly
/// changed; callers discard it.
pub fn apply(resource: &mut Value, ops: &[Operation]) -> Result<(), PatchError> {
    for (i, op) in ops.iter().enumerate() {
        apply_one(resource, op).map_err(|m| PatchError {
            status: 422,
            message: format!("operation {} ({} `{}`): {m}", i + 1, op.op.code(), op.path),
        })?;
    }
    Ok(())
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a selected element is: the object holding it, its JSON key (of a
/// choice element, with the type suffix) and its position in a list.
#[derive(Debug, Clone, PartialEq)]
struct Place {
    parent: Vec<Step>,
    key: String,
    index: Option<usize>,
}

/// What a path selects: the resource itself or elements in it.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Root,
    Element(Place),
}

fn apply_one(doc: &mut Value, op: &Operation) -> Result<(), String> {
    match op.op {
        OpType::Add => {
            let name = op.name.as_deref().expect("parsed");
            let value = op.value.as_ref().expect("parsed");
            let container = single(select(doc, &op.expr)?)?;
            let parent = container_path(&container);
            let ty = type_at(doc, &parent);
            let td = ty.as_deref().and_then(|t| schema().type_def(t));
            let (key, json, many) = typed(td, ty.as_deref(), name, value)?;
            let obj = object_at(doc, &parent).ok_or_else(|| {
                "the path selects a primitive value, which has no elements to add to".to_string()
            })?;
            // A choice element has a value under any of its type names.
            if let Some(el) =
                td.and_then(|td| td.elements.iter().find(|e| e.name == name && e.choice))
            {
                if let Some(set) = el
                    .types
                    .iter()
                    .map(|t| choice_name(name, t))
                    .find(|k| obj.contains_key(k) || obj.contains_key(&format!("_{k}")))
                {
                    return Err(format!("`{name}` already has a value ({set}); use replace"));
                }
            }
            let existing = obj.get(&key);
            let many = many || (td.is_none() && matches!(existing, Some(Value::Array(_))));
            if many {
                let len = list_len(obj, &key)?;
                insert_at(obj, &key, len, json);
            } else if existing.is_some() || obj.contains_key(&format!("_{key}")) {
                return Err(format!(
                    "`{key}` already has a value and does not repeat; use replace"
                ));
            } else {
                obj.insert(key, json);
            }
            Ok(())
        }
        OpType::Insert => {
            let (parent, key) = list_of(doc, &op.expr)?;
            let value = op.value.as_ref().expect("parsed");
            let ty = type_at(doc, &parent);
            let td = ty.as_deref().and_then(|t| schema().type_def(t));
            let (_, json, many) = typed(td, ty.as_deref(), &key, value)?;
            if td.is_some() && !many {
                return Err(format!("`{key}` is not a list"));
            }
            let index = op.index.expect("parsed");
            let obj = object_at(doc, &parent).expect("the list's container is an object");
            let len = list_len(obj, &key)?;
            if index > len {
                return Err(format!(
                    "index {index} is beyond the end of the list ({len} items)"
                ));
            }
            insert_at(obj, &key, index, json);
            Ok(())
        }
        OpType::Delete => {
            let targets = select(doc, &op.expr)?;
            if targets.is_empty() {
                return Ok(());
            }
            let place = match single(targets)? {
                Target::Root => return Err("the resource itself cannot be deleted".to_string()),
                Target::Element(p) => p,
            };
            let obj = object_at(doc, &place.parent).expect("an element's parent is an object");
            remove(obj, &place.key, place.index);
            prune_empty(doc, &place.parent);
            Ok(())
        }
        OpType::Replace => {
            let place = match single(select(doc, &op.expr)?)? {
                Target::Root => {
                    return Err(
                        "the resource itself cannot be replaced; use update (PUT)".to_string()
                    )
                }
                Target::Element(p) => p,
            };
            let value = op.value.as_ref().expect("parsed");
            let ty = type_at(doc, &place.parent);
            let td = ty.as_deref().and_then(|t| schema().type_def(t));
            let base = td
                .and_then(|td| td.property(&place.key))
                .map(|(el, _)| el.name.clone())
                .unwrap_or_else(|| place.key.clone());
            let (key, json, _) = typed(td, ty.as_deref(), &base, value)?;
            let obj = object_at(doc, &place.parent).expect("an element's parent is an object");
            match place.index {
                Some(i) => {
                    if key != place.key {
                        return Err(format!(
                            "`{}` holds a {}; a list item keeps its type",
                            place.key,
                            &place.key[base.len()..]
                        ));
                    }
                    if let Some(Value::Array(a)) = obj.get_mut(&key) {
                        a[i] = json;
                    }
                }
                None => {
                    if key != place.key {
                        // A choice element changing type (valueQuantity → valueString).
                        obj.remove(&place.key);
                        obj.remove(&format!("_{}", place.key));
                    }
                    obj.insert(key, json);
                }
            }
            Ok(())
        }
        OpType::Move => {
            let (parent, key) = list_of(doc, &op.expr)?;
            let (from, to) = (op.source.expect("parsed"), op.destination.expect("parsed"));
            let obj = object_at(doc, &parent).expect("the list's container is an object");
            let len = list_len(obj, &key)?;
            for (what, i) in [("source", from), ("destination", to)] {
                if i >= len {
                    return Err(format!("{what} {i} is outside the list ({len} items)"));
                }
            }
            for k in [key.clone(), format!("_{key}")] {
                if let Some(Value::Array(a)) = obj.get_mut(&k) {
                    if from < a.len() && to < a.len() {
                        let item = a.remove(from);
                        a.insert(to, item);
                    }
                }
            }
            Ok(())
        }
    }
}

/// Evaluates a path and finds each element it selects in the resource.
fn select(doc: &Value, expr: &Expr) -> Result<Vec<Target>, String> {
    let ctx = Context {
        strict: true,
        ..Context::default()
    };
    let nodes = super::evaluate(expr, doc, &ctx).map_err(|e| e.to_string())?;
    nodes
        .iter()
        .map(|n| {
            let Node::Json(j) = n else {
                return Err(
                    "the path selects a computed value, not an element of the resource".to_string(),
                );
            };
            let Some(ptr) = j.value.or(j.ext) else {
                return Err("the path selects an empty element".to_string());
            };
            if std::ptr::eq(ptr, doc) {
                return Ok(Target::Root);
            }
            let mut steps = Vec::new();
            if !find(doc, ptr, &mut steps) {
                return Err(
                    "the path selects elements outside the resource being patched".to_string(),
                );
            }
            Ok(Target::Element(place_of(steps)))
        })
        .collect()
}

fn single(mut targets: Vec<Target>) -> Result<Target, String> {
    match targets.len() {
        1 => Ok(targets.pop().expect("one")),
        0 => Err("the path matches no element".to_string()),
        n => Err(format!("the path matches {n} elements; it must match one")),
    }
}

/// The list an insert or move works on: `<path>.name` is the list `name` of the
/// single element the path before it selects (so an empty list can be
/// inserted into); any other path must select items of one list.
fn list_of(doc: &Value, expr: &Expr) -> Result<(Vec<Step>, String), String> {
    let (container, key) = match expr {
        Expr::Member(target, name) => (single(select(doc, target)?)?, name.clone()),
        Expr::Ident(name)
            if doc.get("resourceType").and_then(Value::as_str) != Some(name.as_str()) =>
        {
            (Target::Root, name.clone())
        }
        _ => {
            let targets = select(doc, expr)?;
            let mut places = targets.iter().map(|t| match t {
                Target::Element(p) if p.index.is_some() => Some((p.parent.clone(), p.key.clone())),
                _ => None,
            });
            let first = places
                .next()
                .ok_or("the path matches no list")?
                .ok_or("the path does not select items of a list")?;
            if places.any(|p| p.as_ref() != Some(&first)) {
                return Err("the path selects items of more than one list".to_string());
            }
            return Ok(first);
        }
    };
    let parent = container_path(&container);
    if !value_at(doc, &parent).is_some_and(Value::is_object) {
        return Err("the path's container is a primitive value, not an element".to_string());
    }
    if let Some(ty) = type_at(doc, &parent) {
        if let Some(td) = schema().type_def(&ty) {
            match td.elements.iter().find(|e| e.name == key) {
                None => return Err(format!("{ty} has no element `{key}`")),
                Some(el) if !el.many => return Err(format!("`{key}` is not a list")),
                Some(_) => {}
            }
        }
    }
    Ok((parent, key))
}

/// The JSON path of the object a target is (its parent path plus itself).
fn container_path(t: &Target) -> Vec<Step> {
    match t {
        Target::Root => Vec::new(),
        Target::Element(p) => {
            let mut steps = p.parent.clone();
            steps.push(Step::Key(p.key.clone()));
            if let Some(i) = p.index {
                steps.push(Step::Index(i));
            }
            steps
        }
    }
}

/// Depth-first search for the value at address `target`.
fn find(v: &Value, target: *const Value, path: &mut Vec<Step>) -> bool {
    if std::ptr::eq(v, target) {
        return true;
    }
    match v {
        Value::Object(o) => {
            for (k, c) in o {
                path.push(Step::Key(k.clone()));
                if find(c, target, path) {
                    return true;
                }
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(Step::Index(i));
                if find(c, target, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    false
}

fn place_of(mut steps: Vec<Step>) -> Place {
    let index = match steps.last() {
        Some(Step::Index(i)) => {
            let i = *i;
            steps.pop();
            Some(i)
        }
        _ => None,
    };
    let key = match steps.pop() {
        Some(Step::Key(k)) => k,
        _ => String::new(),
    };
    // A primitive with only an id or extensions is found at `_name`.
    let key = key.strip_prefix('_').map(str::to_string).unwrap_or(key);
    Place {
        parent: steps,
        key,
        index,
    }
}

/// The FHIR type of the object at `path` (through the schema; contained
/// resources by their `resourceType`).
fn type_at(doc: &Value, path: &[Step]) -> Option<String> {
    let mut v = doc;
    let mut ty = doc.get("resourceType")?.as_str()?.to_string();
    for step in path {
        match step {
            Step::Key(k) => {
                let td = schema().type_def(&ty)?;
                ty = td.property(k)?.1.to_string();
                v = v.get(k)?;
            }
            Step::Index(i) => v = v.get(i)?,
        }
        if ty == "Resource" || ty == "DomainResource" {
            if let Some(rt) = v.get("resourceType").and_then(Value::as_str) {
                ty = rt.to_string();
            }
        }
    }
    Some(ty)
}

fn value_at<'v>(doc: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

fn object_at<'v>(doc: &'v mut Value, path: &[Step]) -> Option<&'v mut Map<String, Value>> {
    let mut v = doc;
    for step in path {
        v = match step {
            Step::Key(k) => v.get_mut(k)?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    v.as_object_mut()
}

fn list_len(obj: &Map<String, Value>, key: &str) -> Result<usize, String> {
    match obj.get(key).or_else(|| obj.get(&format!("_{key}"))) {
        None => Ok(0),
        Some(Value::Array(a)) => Ok(a.len()),
        Some(_) => Err(format!("`{key}` is not a list")),
    }
}

/// Inserts into the list `key` (made when absent), keeping a `_key`
/// companion list aligned.
fn insert_at(obj: &mut Map<String, Value>, key: &str, index: usize, value: Value) {
    let list = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        // A list of primitives that had only extensions has no values yet.
        while a.len() < index {
            a.push(Value::Null);
        }
        a.insert(index, value);
    }
    if let Some(Value::Array(a)) = obj.get_mut(&format!("_{key}")) {
        if index <= a.len() {
            a.insert(index, Value::Null);
        }
    }
}

/// Removes an element (and its companion `_key` entry); empty lists go.
fn remove(obj: &mut Map<String, Value>, key: &str, index: Option<usize>) {
    let companion = format!("_{key}");
    match index {
        None => {
            obj.remove(key);
            obj.remove(&companion);
        }
        Some(i) => {
            for k in [key, companion.as_str()] {
                let now_empty = match obj.get_mut(k) {
                    Some(Value::Array(a)) => {
                        if i < a.len() {
                            a.remove(i);
                        }
                        a.iter().all(Value::is_null)
                    }
                    _ => false,
                };
                if now_empty {
                    obj.remove(k);
                }
            }
        }
    }
}

/// Removes the objects a delete left empty, from `path` up: FHIR JSON has
/// no empty elements (deleting `contact.name.text`, the name's only
/// element, deletes the name).
fn prune_empty(doc: &mut Value, path: &[Step]) {
    let mut path = path.to_vec();
    while !path.is_empty() {
        let empty = matches!(object_at(doc, &path), Some(o) if o.is_empty());
        if !empty {
            return;
        }
        let last = path.pop().expect("not empty");
        let (container, key, index) = match last {
            Step::Index(i) => match path.pop() {
                Some(Step::Key(k)) => (path.clone(), k, Some(i)),
                _ => return,
            },
            Step::Key(k) => (path.clone(), k, None),
        };
        let Some(obj) = object_at(doc, &container) else {
            return;
        };
        remove(obj, &key, index);
    }
}

/// The JSON key and value of element `name` of type `ty` given `value`,
/// checked against the element's types; and whether the element repeats.
fn typed(
    td: Option<&TypeDef>,
    ty: Option<&str>,
    name: &str,
    value: &ValueIn,
) -> Result<(String, Value, bool), String> {
    let el = match td {
        Some(td) => Some(
            td.elements
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| format!("{} has no element `{name}`", ty.unwrap_or("it")))?,
        ),
        None => None,
    };
    let Some(el) = el else {
        let json = match value {
            ValueIn::Typed(_, v) => v.clone(),
            ValueIn::Parts(parts) => build(parts, None)?,
        };
        return Ok((name.to_string(), json, false));
    };
    match value {
        ValueIn::Typed(suffix, v) => {
            let given = format!("value{suffix}");
            let fits = |t: &str| {
                choice_name("value", t) == given
                    || (suffix == "Quantity" && matches!(t, "SimpleQuantity" | "MoneyQuantity"))
                    // Parameters has no valueXhtml: a narrative comes as a string.
                    || (suffix == "String" && t == "xhtml")
            };
            let t = el.types.iter().find(|t| fits(t)).ok_or_else(|| {
                format!(
                    "`{name}` takes {}, not {given}",
                    el.types
                        .iter()
                        .map(|t| choice_name("value", t))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            })?;
            let key = if el.choice {
                choice_name(name, t)
            } else {
                name.to_string()
            };
            Ok((key, v.clone(), el.many))
        }
        ValueIn::Parts(parts) => {
            if el.choice {
                return Err(format!(
                    "`{name}` is a choice element; give its value as value[x], not parts"
                ));
            }
            let t = &el.types[0];
            if schema().is_primitive(t) {
                return Err(format!("`{name}` is a {t}; give it as value[x], not parts"));
            }
            Ok((name.to_string(), build(parts, Some(t))?, el.many))
        }
    }
}

/// A complex value from its parts: each part names an element.
fn build(parts: &[Value], ty: Option<&str>) -> Result<Value, String> {
    let td = ty.and_then(|t| schema().type_def(t));
    let mut obj = Map::new();
    for part in parts {
        let name = part
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a part of the value has no name")?;
        let value = value_in(part)
            .ok_or_else(|| format!("the part `{name}` has no value[x] and no parts"))?;
        let (key, json, many) = typed(td, ty, name, &value)
            .map_err(|m| format!("in the value's part `{name}`: {m}"))?;
        match obj.remove(&key) {
            Some(Value::Array(mut a)) if many || td.is_none() => {
                a.push(json);
                obj.insert(key, Value::Array(a));
            }
            Some(first) if td.is_none() => {
                obj.insert(key, Value::Array(vec![first, json]));
            }
            Some(_) => {
                return Err(format!(
                    "the part `{name}` is given twice but does not repeat"
                ))
            }
            None if many => {
                obj.insert(key, Value::Array(vec![json]));
            }
            None => {
                obj.insert(key, json);
            }
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests;
