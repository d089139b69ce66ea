//! The function library: existence, filtering and projection, subsetting,
//! combining, conversion, string, math, tree navigation, utility, and the
//! FHIR additions (`extension`, `hasValue`, `getValue`, `resolve`, ...).
//! Each family with more than a few lines has its own module.

use chrono::{Datelike, Local, Timelike};
use serde_json::Value;

use super::ast::Expr;
use super::eval::{equal, single, single_int, to_bool3, union, Coll, Env, Evaluator};
use super::types;
use super::value::{DateTimeVal, Node, Prec};
use super::Error;

mod boundary;
mod convert;
mod fhir;
mod math;
mod strings;

/// The most items `repeat()` gathers before it gives up (`repeat($this + 1)`
/// never ends).
const REPEAT_LIMIT: usize = 10_000;

fn boolean<'a>(b: bool) -> Coll<'a> {
    vec![Node::Bool(b)]
}

fn arity(name: &str, args: &[Expr], min: usize, max: usize) -> Result<(), Error> {
    if args.len() < min || args.len() > max {
        return Err(Error::semantic(format!(
            "wrong number of arguments to {name}()"
        )));
    }
    Ok(())
}

/// What makes an item the same for `repeat()`: the JSON node it is, or the
/// System value's type and literal form.
fn identity(n: &Node) -> (usize, usize, String) {
    match n {
        Node::Json(j) => (
            j.value.map_or(0, |v| v as *const Value as usize),
            j.ext.map_or(0, |v| v as *const Value as usize),
            String::new(),
        ),
        other => (
            0,
            0,
            format!(
                "{}:{}",
                other.type_name().1,
                other.render().unwrap_or_default()
            ),
        ),
    }
}

impl<'a> Evaluator<'a> {
    /// Evaluates `e` once per item with `$this`/`$index` bound.
    fn per_item(
        &self,
        input: &[Node<'a>],
        e: &Expr,
        env: &Env<'a>,
    ) -> Result<Vec<Coll<'a>>, Error> {
        input
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let env = Env {
                    focus: vec![item.clone()],
                    index: Some(i as i64),
                    total: env.total.clone(),
                };
                self.eval(e, &env)
            })
            .collect()
    }

    /// A plain argument: evaluated against the function's input.
    fn arg(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Node<'a>],
        env: &Env<'a>,
    ) -> Result<Coll<'a>, Error> {
        let env = Env {
            focus: input.to_vec(),
            index: env.index,
            total: env.total.clone(),
        };
        self.eval(&args[i], &env)
    }

    fn str_arg(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Node<'a>],
        env: &Env<'a>,
    ) -> Result<Option<String>, Error> {
        let v = self.arg(args, i, input, env)?;
        match single(&v)? {
            None => Ok(None),
            Some(n) => n
                .as_str()
                .map(Some)
                .ok_or_else(|| Error::semantic("expected a string argument")),
        }
    }

    fn int_arg(
        &self,
        args: &[Expr],
        i: usize,
        input: &[Node<'a>],
        env: &Env<'a>,
    ) -> Result<Option<i64>, Error> {
        single_int(&self.arg(args, i, input, env)?)
    }

    pub fn call(
        &self,
        name: &str,
        input: Coll<'a>,
        args: &[Expr],
        env: &Env<'a>,
    ) -> Result<Coll<'a>, Error> {
        let n = args.len();
        // Functions whose arguments are expressions over each item.
        match name {
            "where" => {
                arity(name, args, 1, 1)?;
                let r = self.per_item(&input, &args[0], env)?;
                let mut out = Vec::new();
                for (item, c) in input.into_iter().zip(r) {
                    if to_bool3(&c)? == Some(true) {
                        out.push(item);
                    }
                }
                return Ok(out);
            }
            "select" => {
                arity(name, args, 1, 1)?;
                return Ok(self
                    .per_item(&input, &args[0], env)?
                    .into_iter()
                    .flatten()
                    .collect());
            }
            "exists" if n == 1 => {
                let r = self.per_item(&input, &args[0], env)?;
                for c in r {
                    if to_bool3(&c)? == Some(true) {
                        return Ok(boolean(true));
                    }
                }
                return Ok(boolean(false));
            }
            "all" => {
                arity(name, args, 1, 1)?;
                for c in self.per_item(&input, &args[0], env)? {
                    if to_bool3(&c)? != Some(true) {
                        return Ok(boolean(false));
                    }
                }
                return Ok(boolean(true));
            }
            "repeat" => {
                arity(name, args, 1, 1)?;
                let mut out: Coll<'a> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                let mut queue = input;
                while !queue.is_empty() {
                    let next: Coll<'a> = self
                        .per_item(&queue, &args[0], env)?
                        .into_iter()
                        .flatten()
                        .collect();
                    queue = Vec::new();
                    for item in next {
                        if seen.insert(identity(&item)) {
                            if out.len() >= REPEAT_LIMIT {
                                return Err(Error::exec("repeat() gives too many items"));
                            }
                            out.push(item.clone());
                            queue.push(item);
                        }
                    }
                }
                return Ok(out);
            }
            "aggregate" => {
                arity(name, args, 1, 2)?;
                let mut total = if n == 2 {
                    self.eval(&args[1], env)?
                } else {
                    vec![]
                };
                for (i, item) in input.iter().enumerate() {
                    let env = Env {
                        focus: vec![item.clone()],
                        index: Some(i as i64),
                        total: Some(total),
                    };
                    total = self.eval(&args[0], &env)?;
                }
                return Ok(total);
            }
            "iif" => {
                arity(name, args, 2, 3)?;
                if input.len() > 1 {
                    return Err(Error::exec("iif() on a collection of more than one item"));
                }
                let ienv = Env {
                    focus: input.clone(),
                    index: env.index,
                    total: env.total.clone(),
                };
                let c = self.eval(&args[0], &ienv)?;
                let cond = match single(&c)?.map(|n| n.to_system()) {
                    None => false,
                    Some(Some(Node::Bool(b))) => b,
                    Some(_) => return Err(Error::semantic("iif() criterion is not a Boolean")),
                };
                return if cond {
                    self.eval(&args[1], &ienv)
                } else if n == 3 {
                    self.eval(&args[2], &ienv)
                } else {
                    Ok(vec![])
                };
            }
            "ofType" | "is" | "as" => {
                arity(name, args, 1, 1)?;
                let ts = types::spec_of(&args[0])
                    .ok_or_else(|| Error::semantic("expected a type name"))?;
                super::eval::check_type(&ts)?;
                if name == "ofType" {
                    return Ok(input
                        .into_iter()
                        .filter(|n| types::as_type(n, &ts))
                        .collect());
                }
                if input.len() > 1 && (name == "is" || self.ctx.strict) {
                    return Err(Error::exec(format!("{name}() on more than one item")));
                }
                if name == "as" {
                    return Ok(input
                        .into_iter()
                        .filter(|n| types::as_type(n, &ts))
                        .collect());
                }
                return Ok(match input.first() {
                    None => vec![],
                    Some(item) if name == "is" => boolean(types::is_type(item, &ts)),
                    Some(item) => {
                        if types::as_type(item, &ts) {
                            vec![item.clone()]
                        } else {
                            vec![]
                        }
                    }
                });
            }
            "trace" => {
                arity(name, args, 1, 2)?;
                return Ok(input);
            }
            "union" | "combine" | "intersect" | "exclude" | "subsetOf" | "supersetOf" => {
                arity(name, args, 1, 1)?;
                let other = self.eval(&args[0], env)?;
                return Ok(match name {
                    "union" => union(input, other),
                    "combine" => input.into_iter().chain(other).collect(),
                    "intersect" => {
                        let mut out: Coll<'a> = Vec::new();
                        for i in input {
                            if other.iter().any(|o| equal(o, &i) == Some(true))
                                && !out.iter().any(|o| equal(o, &i) == Some(true))
                            {
                                out.push(i);
                            }
                        }
                        out
                    }
                    "exclude" => input
                        .into_iter()
                        .filter(|i| !other.iter().any(|o| equal(o, i) == Some(true)))
                        .collect(),
                    "subsetOf" => boolean(subset(&input, &other)),
                    _ => boolean(subset(&other, &input)),
                });
            }
            _ => {}
        }
        self.plain(name, input, args, env)
    }

    fn plain(
        &self,
        name: &str,
        input: Coll<'a>,
        args: &[Expr],
        env: &Env<'a>,
    ) -> Result<Coll<'a>, Error> {
        let n = args.len();
        let none = |max: usize| arity(name, args, 0, max);
        Ok(match name {
            "empty" => {
                none(0)?;
                boolean(input.is_empty())
            }
            "exists" => {
                none(0)?;
                boolean(!input.is_empty())
            }
            "not" => {
                none(0)?;
                to_bool3(&input)?
                    .map(|b| Node::Bool(!b))
                    .into_iter()
                    .collect()
            }
            "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
                none(0)?;
                let bools = input
                    .iter()
                    .map(|n| match n.to_system() {
                        Some(Node::Bool(b)) => Ok(Some(b)),
                        _ => Err(Error::exec(format!("{name}() on a non-Boolean"))),
                    })
                    .collect::<Result<Vec<Option<bool>>, Error>>()?;
                boolean(match name {
                    "allTrue" => bools.iter().all(|b| *b == Some(true)),
                    "anyTrue" => bools.contains(&Some(true)),
                    "allFalse" => bools.iter().all(|b| *b == Some(false)),
                    _ => bools.contains(&Some(false)),
                })
            }
            "count" => {
                none(0)?;
                vec![Node::Int(input.len() as i64)]
            }
            "distinct" => {
                none(0)?;
                union(input, vec![])
            }
            "isDistinct" => {
                none(0)?;
                let len = input.len();
                boolean(union(input, vec![]).len() == len)
            }
            "single" => {
                none(0)?;
                if input.len() > 1 {
                    return Err(Error::exec("single() on more than one item"));
                }
                input
            }
            "first" => {
                none(0)?;
                input.into_iter().take(1).collect()
            }
            "last" => {
                none(0)?;
                input.into_iter().last().into_iter().collect()
            }
            "tail" => {
                none(0)?;
                input.into_iter().skip(1).collect()
            }
            "skip" | "take" => {
                arity(name, args, 1, 1)?;
                let k = self.int_arg(args, 0, &input, env)?.unwrap_or(0).max(0) as usize;
                if name == "skip" {
                    input.into_iter().skip(k).collect()
                } else {
                    input.into_iter().take(k).collect()
                }
            }
            "children" => {
                none(0)?;
                let mut out = Vec::new();
                for i in &input {
                    types::children(i, &mut out);
                }
                out
            }
            "descendants" => {
                none(0)?;
                let mut out = Vec::new();
                let mut queue = input;
                while !queue.is_empty() {
                    let mut next = Vec::new();
                    for i in &queue {
                        types::children(i, &mut next);
                    }
                    out.extend(next.iter().cloned());
                    queue = next;
                }
                out
            }
            "type" => {
                none(0)?;
                input
                    .iter()
                    .map(|i| {
                        let (ns, n) = i.type_name();
                        Node::TypeInfo(ns, n)
                    })
                    .collect()
            }
            "now" | "today" | "timeOfDay" => {
                none(0)?;
                let now = self.ctx.now.unwrap_or_else(|| Local::now().fixed_offset());
                let mut d = DateTimeVal::parse_datetime("2000-01-01T00:00:00.000").expect("valid");
                d.year = now.year();
                d.month = now.month();
                d.day = now.day();
                d.hour = now.hour();
                d.minute = now.minute();
                d.second = now.second();
                d.millis = now.timestamp_subsec_millis().min(999);
                d.tz = Some(now.offset().local_minus_utc() / 60);
                vec![match name {
                    "now" => Node::DateTime(d),
                    "today" => {
                        d.prec = Prec::Day;
                        d.tz = None;
                        Node::Date(d)
                    }
                    _ => {
                        d.is_time = true;
                        d.tz = None;
                        Node::Time(d)
                    }
                }]
            }
            // Conversions.
            "toString" | "toInteger" | "toDecimal" | "toBoolean" | "toDate" | "toDateTime"
            | "toTime" | "toQuantity" => {
                none(1)?;
                let unit = if n == 1 {
                    self.str_arg(args, 0, &input, env)?
                } else {
                    None
                };
                match single(&input)? {
                    None => vec![],
                    Some(i) => convert::convert(name, i, unit.as_deref())
                        .into_iter()
                        .collect(),
                }
            }
            "convertsToString" | "convertsToInteger" | "convertsToDecimal"
            | "convertsToBoolean" | "convertsToDate" | "convertsToDateTime" | "convertsToTime"
            | "convertsToQuantity" => {
                none(1)?;
                let unit = if n == 1 {
                    self.str_arg(args, 0, &input, env)?
                } else {
                    None
                };
                let to = format!("to{}", &name["convertsTo".len()..]);
                match single(&input)? {
                    None => vec![],
                    Some(i) => boolean(convert::convert(&to, i, unit.as_deref()).is_some()),
                }
            }
            // Strings.
            "startsWith" | "endsWith" | "contains" | "indexOf" | "matches" | "matchesFull"
            | "replaceMatches" | "replace" | "substring" | "upper" | "lower" | "length"
            | "toChars" | "trim" | "split" | "encode" | "decode" | "escape" | "unescape" => {
                self.string_fn(name, input, args, env)?
            }
            "join" => {
                none(1)?;
                let sep = if n == 1 {
                    self.str_arg(args, 0, &input, env)?.unwrap_or_default()
                } else {
                    String::new()
                };
                let parts: Vec<String> = input.iter().filter_map(|i| i.as_str()).collect();
                vec![Node::Str(parts.join(&sep))]
            }
            // Math.
            "abs" | "ceiling" | "exp" | "floor" | "ln" | "log" | "power" | "round" | "sqrt"
            | "truncate" => self.math_fn(name, input, args, env)?,
            // FHIR additions.
            "extension" => {
                arity(name, args, 1, 1)?;
                let url = self.str_arg(args, 0, &input, env)?;
                let exts = self.members(&input, "extension")?;
                let mut out = Vec::new();
                for e in exts {
                    let u = self.members(std::slice::from_ref(&e), "url")?;
                    if u.first().and_then(|u| u.as_str()) == url {
                        out.push(e);
                    }
                }
                out
            }
            "hasValue" => {
                none(0)?;
                boolean(
                    input.len() == 1
                        && matches!(&input[0], Node::Json(j) if j.value.is_some_and(|v| !v.is_object() && !v.is_array())),
                )
            }
            "getValue" => {
                none(0)?;
                match single(&input)? {
                    Some(i @ Node::Json(j)) if j.value.is_some_and(|v| !v.is_object()) => {
                        i.to_system().into_iter().collect()
                    }
                    _ => vec![],
                }
            }
            "resolve" => {
                none(0)?;
                let mut out = Vec::new();
                for i in &input {
                    let r: Option<&'a str> = match i {
                        Node::Json(j) => match j.value {
                            Some(Value::Object(o)) => o.get("reference").and_then(Value::as_str),
                            Some(Value::String(s)) => Some(s.as_str()),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(r) = r {
                        out.extend(self.resolve(r));
                    }
                }
                out
            }
            "conformsTo" => {
                arity(name, args, 1, 1)?;
                let Some(url) = self.str_arg(args, 0, &input, env)? else {
                    return Ok(vec![]);
                };
                let Some(ty) = url.strip_prefix("http://hl7.org/fhir/StructureDefinition/") else {
                    return Err(Error::exec(format!("unknown profile {url}")));
                };
                if !crate::fhir::schema::schema().is_resource_type(ty)
                    && crate::fhir::schema::schema().type_def(ty).is_none()
                {
                    return Err(Error::exec(format!("unknown profile {url}")));
                }
                match single(&input)? {
                    None => vec![],
                    Some(n) => boolean(n.type_name().1 == ty),
                }
            }
            "memberOf" | "subsumes" | "subsumedBy" => vec![],
            "precision" | "lowBoundary" | "highBoundary" => {
                none(1)?;
                let p = if n == 1 {
                    self.int_arg(args, 0, &input, env)?
                } else {
                    None
                };
                match single(&input)?.and_then(|i| i.to_system()) {
                    None => vec![],
                    Some(v) => boundary::apply(name, &v, p).into_iter().collect(),
                }
            }
            "sort" => self.sort(input, args, env)?,
            "htmlChecks" | "htmlchecks" => boolean(true),
            "comparable" => {
                arity(name, args, 1, 1)?;
                let other = self.arg(args, 0, &input, env)?;
                match (
                    single(&input)?.and_then(|n| n.as_quantity()),
                    single(&other)?.and_then(|n| n.as_quantity()),
                ) {
                    (Some(p), Some(q)) => boolean(p.compare(&q, false).is_some()),
                    _ => vec![],
                }
            }
            "hasTemplateIdOf" => vec![],
            _ => return Err(Error::semantic(format!("unknown function {name}()"))),
        })
    }
}

impl<'a> Evaluator<'a> {
    /// `sort(keys...)`: a key written `-expr` sorts descending.
    fn sort(&self, input: Coll<'a>, args: &[Expr], env: &Env<'a>) -> Result<Coll<'a>, Error> {
        let mut keyed = Vec::new();
        for (i, item) in input.into_iter().enumerate() {
            let ienv = Env {
                focus: vec![item.clone()],
                index: Some(i as i64),
                total: env.total.clone(),
            };
            let mut keys = Vec::new();
            for a in args {
                let (e, desc) = match a {
                    Expr::Negate(e) => (e.as_ref(), true),
                    e => (e, false),
                };
                let k = self.eval(e, &ienv)?;
                keys.push((k.into_iter().next(), desc));
            }
            if args.is_empty() {
                keys.push((Some(item.clone()), false));
            }
            keyed.push((keys, item));
        }
        let mut err = None;
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, desc), (y, _)) in a.iter().zip(b) {
                let o = match (x, y) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => {
                        let o = match super::eval::compare(x, y) {
                            Ok(o) => o.unwrap_or(std::cmp::Ordering::Equal),
                            Err(e) => {
                                err = Some(e);
                                std::cmp::Ordering::Equal
                            }
                        };
                        if *desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        if let Some(e) = err {
            return Err(e);
        }
        Ok(keyed.into_iter().map(|(_, i)| i).collect())
    }
}

fn subset(a: &[Node], b: &[Node]) -> bool {
    a.iter()
        .all(|x| b.iter().any(|y| equal(x, y) == Some(true)))
}
