//! The evaluator: paths, operators, variables; functions are in
//! `functions.rs`.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::Value;

use super::ast::{BinOp, Expr, Literal};
use super::types;
use super::value::{DateTimeVal, Node, Quantity};
use super::{Context, Error};

pub type Coll<'a> = Vec<Node<'a>>;

/// What `$this`, `$index` and `$total` are, and the focus unqualified
/// names refer to.
#[derive(Clone)]
pub struct Env<'a> {
    pub focus: Coll<'a>,
    pub index: Option<i64>,
    pub total: Option<Coll<'a>>,
}

pub struct Evaluator<'a> {
    /// `%resource`: the resource the evaluated nodes belong to (a
    /// contained resource when they are inside one).
    pub resource: &'a Value,
    /// `%rootResource`: the container of `resource` when it is contained,
    /// else `resource` itself (R4 fhirpath.html#variables).
    pub root_resource: &'a Value,
    pub ctx: &'a Context,
}

impl<'a> Evaluator<'a> {
    pub fn new(resource: &'a Value, ctx: &'a Context) -> Evaluator<'a> {
        Evaluator {
            resource,
            root_resource: resource,
            ctx,
        }
    }

    /// `%resource` is `resource`, contained in `root_resource`
    /// (`%rootResource`).
    pub fn contained(
        resource: &'a Value,
        root_resource: &'a Value,
        ctx: &'a Context,
    ) -> Evaluator<'a> {
        Evaluator {
            resource,
            root_resource,
            ctx,
        }
    }

    /// `%resource` as a node.
    pub fn root(&self) -> Node<'a> {
        resource_node(self.resource)
    }

    pub fn run(&self, expr: &Expr) -> Result<Coll<'a>, Error> {
        self.run_on(expr, vec![self.root()])
    }

    /// Evaluates with `focus` as `$this` (the resource stays `%resource`).
    pub fn run_on(&self, expr: &Expr, focus: Coll<'a>) -> Result<Coll<'a>, Error> {
        let env = Env {
            focus,
            index: None,
            total: None,
        };
        self.eval(expr, &env)
    }

    pub fn eval(&self, expr: &Expr, env: &Env<'a>) -> Result<Coll<'a>, Error> {
        Ok(match expr {
            Expr::Empty => vec![],
            Expr::Literal(l) => vec![literal(l)],
            Expr::This => env.focus.clone(),
            Expr::Index => env.index.map(Node::Int).into_iter().collect(),
            Expr::Total => env.total.clone().unwrap_or_default(),
            Expr::Env(name) => self.env_var(name)?,
            Expr::Ident(name) => self.root_ident(name, &env.focus)?,
            Expr::Member(target, name) => {
                if self.ctx.strict {
                    static_member_check(target, name)?;
                }
                let input = self.eval(target, env)?;
                self.members(&input, name)?
            }
            Expr::Indexer(target, idx) => {
                let input = self.eval(target, env)?;
                let idx = self.eval(idx, env)?;
                match single_int(&idx)? {
                    Some(i) if i >= 0 => input.into_iter().nth(i as usize).into_iter().collect(),
                    _ => vec![],
                }
            }
            Expr::Call(target, name, args) => {
                if let (true, Some(t)) = (self.ctx.check_ordered_functions, target) {
                    if ORDERED.contains(&name.as_str()) && unordered(t) {
                        return Err(Error::semantic(format!(
                            "{name}() on an unordered collection"
                        )));
                    }
                }
                let input = match target {
                    Some(t) => self.eval(t, env)?,
                    None => env.focus.clone(),
                };
                self.call(name, input, args, env)?
            }
            Expr::Negate(e) => {
                let v = self.eval(e, env)?;
                match single(&v)?.and_then(|n| n.to_system()) {
                    None => vec![],
                    Some(Node::Int(i)) => i.checked_neg().map(Node::Int).into_iter().collect(),
                    Some(Node::Dec(d)) => vec![Node::Dec(-d)],
                    Some(Node::Quantity(q)) => vec![Node::Quantity(Quantity {
                        value: -q.value,
                        unit: q.unit,
                    })],
                    Some(_) => return Err(Error::semantic("unary minus on a non-number")),
                }
            }
            Expr::Is(e, ts) => {
                check_type(ts)?;
                let v = self.eval(e, env)?;
                if v.len() > 1 {
                    return Err(Error::exec("'is' on a collection of more than one item"));
                }
                match v.first() {
                    None => vec![],
                    Some(n) => vec![Node::Bool(types::is_type(n, ts))],
                }
            }
            Expr::As(e, ts) => {
                check_type(ts)?;
                let v = self.eval(e, env)?;
                // R4's search parameters use `x as T` on collections, as a
                // filter; only strict mode holds to the single-item rule.
                if v.len() > 1 && self.ctx.strict {
                    return Err(Error::exec("'as' on a collection of more than one item"));
                }
                v.into_iter().filter(|n| types::as_type(n, ts)).collect()
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r, env)?,
        })
    }

    fn env_var(&self, name: &str) -> Result<Coll<'a>, Error> {
        let s = |v: &str| Ok(vec![Node::Str(v.to_string())]);
        match name {
            "resource" | "context" => Ok(vec![self.root()]),
            "rootResource" => Ok(vec![resource_node(self.root_resource)]),
            "ucum" => s("http://unitsofmeasure.org"),
            "sct" => s("http://snomed.info/sct"),
            "loinc" => s("http://loinc.org"),
            _ => {
                if let Some((_, v)) = self.ctx.variables.iter().find(|(n, _)| n == name) {
                    return Ok(vec![Node::json(v, None)]);
                }
                if let Some(vs) = name.strip_prefix("vs-") {
                    return s(&format!("http://hl7.org/fhir/ValueSet/{vs}"));
                }
                if let Some(ext) = name.strip_prefix("ext-") {
                    return s(&format!("http://hl7.org/fhir/StructureDefinition/{ext}"));
                }
                Err(Error::semantic(format!("unknown variable %{name}")))
            }
        }
    }

    /// A name at the start of a path: the context's type name, or a member.
    fn root_ident(&self, name: &str, focus: &[Node<'a>]) -> Result<Coll<'a>, Error> {
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            let ts = super::ast::TypeSpec {
                namespace: None,
                name: name.to_string(),
            };
            let typed: Vec<_> = focus
                .iter()
                .filter(|n| matches!(n, Node::Json(_)))
                .collect();
            if !typed.is_empty() && types::known_type(&ts) {
                let matching: Coll<'a> = focus
                    .iter()
                    .filter(|n| types::is_type(n, &ts))
                    .cloned()
                    .collect();
                if !matching.is_empty() {
                    return Ok(matching);
                }
                if self.ctx.strict && crate::fhir::schema::schema().is_resource_type(name) {
                    return Err(Error::semantic(format!("the context is not a {name}")));
                }
                if crate::fhir::schema::schema().is_resource_type(name) {
                    return Ok(vec![]);
                }
            }
        }
        self.members(focus, name)
    }

    pub fn members(&self, input: &[Node<'a>], name: &str) -> Result<Coll<'a>, Error> {
        let mut out = Vec::new();
        let mut known = false;
        for n in input {
            if let Node::TypeInfo(ns, tn) = n {
                known = true;
                match name {
                    "namespace" => out.push(Node::Str(ns.to_string())),
                    "name" => out.push(Node::Str(tn.clone())),
                    _ => {}
                }
                continue;
            }
            if types::member(n, name, self.ctx.strict, &mut out)? {
                known = true;
            }
        }
        if self.ctx.strict && !known && !input.is_empty() {
            return Err(Error::semantic(format!(
                "'{name}' is not an element of {}",
                input[0].type_name().1
            )));
        }
        Ok(out)
    }

    fn binary(&self, op: BinOp, l: &Expr, r: &Expr, env: &Env<'a>) -> Result<Coll<'a>, Error> {
        let a = self.eval(l, env)?;
        let b = self.eval(r, env)?;
        let boolean = |v: Option<bool>| v.map(Node::Bool).into_iter().collect::<Coll<'a>>();
        Ok(match op {
            BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
                let x = to_bool3(&a)?;
                let y = to_bool3(&b)?;
                boolean(match op {
                    BinOp::And => match (x, y) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    BinOp::Or => match (x, y) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinOp::Xor => match (x, y) {
                        (Some(p), Some(q)) => Some(p != q),
                        _ => None,
                    },
                    _ => match (x, y) {
                        (Some(false), _) => Some(true),
                        (Some(true), y) => y,
                        (None, Some(true)) => Some(true),
                        _ => None,
                    },
                })
            }
            BinOp::Union => union(a, b),
            BinOp::Eq => boolean(coll_equal(&a, &b)),
            BinOp::Ne => boolean(coll_equal(&a, &b).map(|x| !x)),
            BinOp::Equiv => vec![Node::Bool(coll_equiv(&a, &b))],
            BinOp::NotEquiv => vec![Node::Bool(!coll_equiv(&a, &b))],
            BinOp::In | BinOp::Contains => {
                let (item, coll) = if op == BinOp::In { (&a, &b) } else { (&b, &a) };
                match item.len() {
                    0 => vec![],
                    1 => vec![Node::Bool(
                        coll.iter().any(|c| equal(&item[0], c) == Some(true)),
                    )],
                    _ => return Err(Error::exec("membership test on more than one item")),
                }
            }
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let (Some(x), Some(y)) = (single(&a)?, single(&b)?) else {
                    return Ok(vec![]);
                };
                boolean(compare(x, y)?.map(|o| match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Gt => o == Ordering::Greater,
                    BinOp::Le => o != Ordering::Greater,
                    _ => o != Ordering::Less,
                }))
            }
            BinOp::Concat => {
                let x = single(&a)?.and_then(|n| n.as_str()).unwrap_or_default();
                let y = single(&b)?.and_then(|n| n.as_str()).unwrap_or_default();
                vec![Node::Str(x + &y)]
            }
            _ => {
                let (Some(x), Some(y)) = (single(&a)?, single(&b)?) else {
                    return Ok(vec![]);
                };
                arithmetic(op, x, y)?.into_iter().collect()
            }
        })
    }
}

/// Functions whose result depends on the order of their input.
const ORDERED: [&str; 6] = ["first", "last", "tail", "skip", "take", "single"];

/// Whether an expression gives a collection without a defined order.
fn unordered(e: &Expr) -> bool {
    match e {
        Expr::Call(_, f, _) if f == "children" || f == "descendants" => true,
        Expr::Member(t, _) => unordered(t),
        Expr::Call(Some(t), f, _)
            if matches!(f.as_str(), "where" | "select" | "ofType" | "distinct") =>
        {
            unordered(t)
        }
        _ => false,
    }
}

/// The type of `x as T` (or `x.ofType(T)`) is T even when the value is
/// empty: a member T does not have is an error in strict mode.
fn static_member_check(target: &Expr, name: &str) -> Result<(), Error> {
    let ts = match target {
        Expr::As(_, ts) => Some(ts.clone()),
        Expr::Call(_, f, args) if (f == "as" || f == "ofType") && args.len() == 1 => {
            types::spec_of(&args[0])
        }
        _ => None,
    };
    let Some(ts) = ts else { return Ok(()) };
    if ts.namespace.as_deref().is_some_and(|n| n != "FHIR") {
        return Ok(());
    }
    let Some(td) = crate::fhir::schema::schema().type_def(&ts.name) else {
        return Ok(());
    };
    let known =
        td.property(name).is_some() || td.elements.iter().any(|e| e.choice && e.name == name);
    if known {
        Ok(())
    } else {
        Err(Error::semantic(format!(
            "'{name}' is not an element of {}",
            ts.name
        )))
    }
}

pub fn check_type(ts: &super::ast::TypeSpec) -> Result<(), Error> {
    // `System.Patient` is a type that no value has; an unqualified unknown
    // name is an error.
    if types::known_type(ts) || ts.namespace.is_some() {
        Ok(())
    } else {
        Err(Error::exec(format!("unknown type {}", ts.name)))
    }
}

pub fn literal<'a>(l: &Literal) -> Node<'a> {
    match l {
        Literal::Bool(b) => Node::Bool(*b),
        Literal::Str(s) => Node::Str(s.clone()),
        Literal::Int(i) => Node::Int(*i),
        Literal::Dec(d) => Node::Dec(*d),
        Literal::Date(d) => Node::Date(d.clone()),
        Literal::DateTime(d) => Node::DateTime(d.clone()),
        Literal::Time(d) => Node::Time(d.clone()),
        Literal::Quantity(q) => Node::Quantity(q.clone()),
    }
}

/// The one item of a collection; None when empty; an error when more.
pub fn single<'a, 'b>(c: &'b [Node<'a>]) -> Result<Option<&'b Node<'a>>, Error> {
    match c.len() {
        0 => Ok(None),
        1 => Ok(Some(&c[0])),
        n => Err(Error::exec(format!("expected one item, found {n}"))),
    }
}

pub fn single_int(c: &[Node]) -> Result<Option<i64>, Error> {
    match single(c)?.and_then(|n| n.to_system()) {
        None => Ok(None),
        Some(Node::Int(i)) => Ok(Some(i)),
        Some(_) => Err(Error::exec("expected an integer")),
    }
}

/// A collection as a Boolean for logic operators: empty → None; one
/// Boolean → it; one other item → true; more → an error.
pub fn to_bool3(c: &[Node]) -> Result<Option<bool>, Error> {
    match single(c)? {
        None => Ok(None),
        Some(n) => match n.to_system() {
            Some(Node::Bool(b)) => Ok(Some(b)),
            _ => Ok(Some(true)),
        },
    }
}

/// `|`: merge without duplicates.
pub fn union<'a>(a: Coll<'a>, b: Coll<'a>) -> Coll<'a> {
    let mut out: Coll<'a> = Vec::new();
    for n in a.into_iter().chain(b) {
        if !out.iter().any(|m| equal(m, &n) == Some(true)) {
            out.push(n);
        }
    }
    out
}

fn date_like(n: &Node) -> Option<DateTimeVal> {
    match n {
        Node::Date(d) | Node::DateTime(d) | Node::Time(d) => Some(d.clone()),
        _ => None,
    }
}

/// Promotes a Date or DateTime System value compared to a string.
fn str_as_date(s: &str, like: &Node) -> Option<DateTimeVal> {
    match like {
        Node::Time(_) => DateTimeVal::parse_time(s),
        Node::Date(_) | Node::DateTime(_) => DateTimeVal::parse_datetime(s),
        _ => None,
    }
}

/// `=` on two items; None when unknown (different date precisions).
pub fn equal(a: &Node, b: &Node) -> Option<bool> {
    if let (Node::Json(x), Node::Json(y)) = (a, b) {
        // Placeholders of unresolved references have no identity to compare.
        if x.value.is_none() && x.ext.is_none() || y.value.is_none() && y.ext.is_none() {
            return Some(false);
        }
        let prim =
            |ty: Option<&str>| ty.is_none_or(|t| crate::fhir::schema::schema().is_primitive(t));
        if !(prim(x.ty) && prim(y.ty)) || x.value.is_some_and(Value::is_object) {
            if super::value::QUANTITY_TYPES.contains(&x.ty.unwrap_or(""))
                && super::value::QUANTITY_TYPES.contains(&y.ty.unwrap_or(""))
            {
                // fall through to the quantity comparison below
            } else {
                return Some(x.value == y.value);
            }
        }
    }
    let (Some(x), Some(y)) = (a.to_system(), b.to_system()) else {
        return Some(false);
    };
    match (&x, &y) {
        (Node::Bool(p), Node::Bool(q)) => Some(p == q),
        (Node::Str(p), Node::Str(q)) => Some(p == q),
        (Node::Int(_) | Node::Dec(_), Node::Int(_) | Node::Dec(_)) => Some(num(&x)? == num(&y)?),
        (Node::Quantity(p), Node::Quantity(q)) => p.compare(q, false).map(|o| o == Ordering::Equal),
        (Node::Str(s), d) | (d, Node::Str(s)) if date_like(d).is_some() => {
            let p = str_as_date(s, d)?;
            date_like(d)?.compare(&p).map(|o| o == Ordering::Equal)
        }
        _ => match (date_like(&x), date_like(&y)) {
            (Some(p), Some(_)) if p.is_time != date_like(&y)?.is_time => Some(false),
            (Some(p), Some(q)) => p.compare(&q).map(|o| o == Ordering::Equal),
            _ => Some(false),
        },
    }
}

pub fn num(n: &Node) -> Option<Decimal> {
    match n {
        Node::Int(i) => Some(Decimal::from(*i)),
        Node::Dec(d) => Some(*d),
        _ => None,
    }
}

/// `=` on collections.
pub fn coll_equal(a: &[Node], b: &[Node]) -> Option<bool> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.len() != b.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (x, y) in a.iter().zip(b) {
        match equal(x, y) {
            Some(false) => return Some(false),
            None => unknown = true,
            _ => {}
        }
    }
    if unknown {
        None
    } else {
        Some(true)
    }
}

fn norm_ws(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `~` on two items.
pub fn equiv(a: &Node, b: &Node) -> bool {
    if let (Node::Json(x), Node::Json(y)) = (a, b) {
        if x.value.is_some_and(Value::is_object) || y.value.is_some_and(Value::is_object) {
            if let (Some(p), Some(q)) = (a.as_quantity(), b.as_quantity()) {
                return quantity_equiv(&p, &q);
            }
            return x.value == y.value;
        }
    }
    let (Some(x), Some(y)) = (a.to_system(), b.to_system()) else {
        return false;
    };
    match (&x, &y) {
        (Node::Str(p), Node::Str(q)) => norm_ws(p) == norm_ws(q),
        (Node::Int(_) | Node::Dec(_), Node::Int(_) | Node::Dec(_)) => {
            let (p, q) = (num(&x).unwrap_or_default(), num(&y).unwrap_or_default());
            let scale = p.scale().min(q.scale());
            p.round_dp(scale) == q.round_dp(scale)
        }
        (Node::Quantity(p), Node::Quantity(q)) => quantity_equiv(p, q),
        _ => match (date_like(&x), date_like(&y)) {
            (Some(p), Some(q)) => p.compare(&q) == Some(Ordering::Equal),
            _ => equal(&x, &y) == Some(true),
        },
    }
}

/// Quantities are equivalent when equal at the precision of the less
/// precise one, in the same unit.
fn quantity_equiv(p: &Quantity, q: &Quantity) -> bool {
    let (Some((dp, vp)), Some((dq, vq))) = (p.canonical(true), q.canonical(true)) else {
        return p.compare(q, true) == Some(Ordering::Equal);
    };
    if dp != dq {
        return false;
    }
    // Both in p's unit.
    let Some(factor) = vp.checked_div(p.value).filter(|_| !p.value.is_zero()) else {
        return vp == vq;
    };
    let Some(q_in_p) = vq.checked_div(factor) else {
        return false;
    };
    let scale = p.value.scale().min(q.value.scale());
    p.value.round_dp(scale) == q_in_p.round_dp(scale)
}

/// `~` on collections: same size and every item equivalent to one of the other.
pub fn coll_equiv(a: &[Node], b: &[Node]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    'outer: for x in a {
        for (i, y) in b.iter().enumerate() {
            if !used[i] && equiv(x, y) {
                used[i] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// `<` and friends on two items.
pub fn compare(a: &Node, b: &Node) -> Result<Option<Ordering>, Error> {
    let (x, y) = match (a.to_system(), b.to_system()) {
        (Some(x), Some(y)) => (x, y),
        _ => match (a.as_quantity(), b.as_quantity()) {
            (Some(p), Some(q)) => (Node::Quantity(p), Node::Quantity(q)),
            _ => return Err(Error::exec("cannot compare these values")),
        },
    };
    Ok(match (&x, &y) {
        (Node::Str(p), Node::Str(q)) => Some(p.cmp(q)),
        (Node::Int(_) | Node::Dec(_), Node::Int(_) | Node::Dec(_)) => num(&x).partial_cmp(&num(&y)),
        (Node::Quantity(p), Node::Quantity(q)) => match p.compare(q, false) {
            Some(o) => Some(o),
            None => return Err(Error::exec("quantities of incomparable units")),
        },
        (Node::Str(s), d) if date_like(d).is_some() => {
            str_as_date(s, d).and_then(|p| p.compare(&date_like(d).unwrap()))
        }
        (d, Node::Str(s)) if date_like(d).is_some() => {
            str_as_date(s, d).and_then(|p| date_like(d).unwrap().compare(&p))
        }
        _ => match (date_like(&x), date_like(&y)) {
            (Some(p), Some(q)) => {
                if p.is_time != q.is_time {
                    return Err(Error::exec("cannot compare a time with a date"));
                }
                p.compare(&q)
            }
            _ => return Err(Error::exec("cannot compare values of different types")),
        },
    })
}

/// Arithmetic on two items; None for an empty result (division by zero,
/// overflow).
fn arithmetic<'a>(op: BinOp, a: &Node<'a>, b: &Node<'a>) -> Result<Option<Node<'a>>, Error> {
    let x = a
        .to_system()
        .or_else(|| a.as_quantity().map(Node::Quantity));
    let y = b
        .to_system()
        .or_else(|| b.as_quantity().map(Node::Quantity));
    let (Some(x), Some(y)) = (x, y) else {
        return Ok(None);
    };
    let bad = || {
        Err(Error::semantic(format!(
            "cannot apply {op:?} to {:?} and {:?}",
            x.type_name().1,
            y.type_name().1
        )))
    };
    match (&x, &y) {
        (Node::Str(p), Node::Str(q)) if op == BinOp::Add => Ok(Some(Node::Str(format!("{p}{q}")))),
        (Node::Int(p), Node::Int(q)) => Ok(match op {
            BinOp::Add => p.checked_add(*q).map(Node::Int),
            BinOp::Sub => p.checked_sub(*q).map(Node::Int),
            BinOp::Mul => p.checked_mul(*q).map(Node::Int),
            BinOp::Div => {
                if *q == 0 {
                    None
                } else {
                    Decimal::from(*p)
                        .checked_div(Decimal::from(*q))
                        .map(|d| Node::Dec(d.normalize()))
                }
            }
            BinOp::IntDiv => p.checked_div(*q).map(Node::Int),
            BinOp::Mod => p.checked_rem(*q).map(Node::Int),
            _ => return bad(),
        }),
        (Node::Int(_) | Node::Dec(_), Node::Int(_) | Node::Dec(_)) => {
            let (p, q) = (num(&x).unwrap_or_default(), num(&y).unwrap_or_default());
            Ok(match op {
                BinOp::Add => p.checked_add(q).map(Node::Dec),
                BinOp::Sub => p.checked_sub(q).map(Node::Dec),
                BinOp::Mul => p.checked_mul(q).map(Node::Dec),
                BinOp::Div => p.checked_div(q).map(|d| Node::Dec(d.normalize())),
                BinOp::IntDiv => p
                    .checked_div(q)
                    .map(|d| Node::Int(d.trunc().to_string().parse().unwrap_or(0))),
                BinOp::Mod => p.checked_rem(q).map(Node::Dec),
                _ => return bad(),
            })
        }
        (Node::Date(d) | Node::DateTime(d) | Node::Time(d), Node::Quantity(q))
            if matches!(op, BinOp::Add | BinOp::Sub) =>
        {
            let unit = q.unit.as_str();
            if super::value::calendar_to_ucum(unit).is_none()
                && !matches!(unit, "wk" | "d" | "h" | "min" | "s" | "ms")
            {
                return Err(Error::exec(format!("cannot add '{unit}' to a date")));
            }
            let v = if op == BinOp::Sub { -q.value } else { q.value };
            let unit = match unit {
                "a" => "year",
                "mo" => "month",
                "wk" => "week",
                "d" => "day",
                "h" => "hour",
                "min" => "minute",
                "s" => "second",
                "ms" => "millisecond",
                u => u,
            };
            let r = d.add(v, unit);
            Ok(r.map(|r| match &x {
                Node::Date(_) => Node::Date(r),
                Node::Time(_) => Node::Time(r),
                _ => Node::DateTime(r),
            }))
        }
        (Node::Quantity(p), Node::Quantity(q)) if matches!(op, BinOp::Add | BinOp::Sub) => {
            if p.unit == q.unit {
                let v = if op == BinOp::Add {
                    p.value.checked_add(q.value)
                } else {
                    p.value.checked_sub(q.value)
                };
                let Some(v) = v else { return Ok(None) };
                return Ok(Some(Node::Quantity(Quantity {
                    value: v,
                    unit: p.unit.clone(),
                })));
            }
            Ok(None)
        }
        (Node::Quantity(p), Node::Int(_) | Node::Dec(_))
            if matches!(op, BinOp::Mul | BinOp::Div) =>
        {
            let n = num(&y).unwrap_or_default();
            let v = if op == BinOp::Mul {
                p.value.checked_mul(n)
            } else {
                p.value.checked_div(n)
            };
            Ok(v.map(|v| {
                Node::Quantity(Quantity {
                    value: v.normalize(),
                    unit: p.unit.clone(),
                })
            }))
        }
        (Node::Int(_) | Node::Dec(_), Node::Quantity(q)) if op == BinOp::Mul => {
            let n = num(&x).unwrap_or_default();
            Ok(Some(Node::Quantity(Quantity {
                value: match q.value.checked_mul(n) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                unit: q.unit.clone(),
            })))
        }
        (Node::Quantity(p), Node::Quantity(q)) if matches!(op, BinOp::Mul | BinOp::Div) => {
            // Different units of one dimension: both in the base unit first.
            let (p, q) = match (p.canonical(false), q.canonical(false)) {
                (Some((dp, vp)), Some((dq, vq))) if dp == dq && p.unit != q.unit => {
                    let base = super::value::base_unit(dp).unwrap_or("1").to_string();
                    (
                        &Quantity {
                            value: vp,
                            unit: base.clone(),
                        },
                        &Quantity {
                            value: vq,
                            unit: base,
                        },
                    )
                }
                _ => (p, q),
            };
            let unit = match (op, p.unit.as_str(), q.unit.as_str()) {
                (BinOp::Mul, "1", u) | (BinOp::Mul, u, "1") | (BinOp::Div, u, "1") => u.to_string(),
                (BinOp::Mul, u, v) if u == v => format!("{u}2"),
                (BinOp::Div, u, v) if u == v => "1".to_string(),
                (BinOp::Mul, u, v) => format!("{u}.{v}"),
                (_, u, v) => format!("{u}/{v}"),
            };
            let v = if op == BinOp::Mul {
                p.value.checked_mul(q.value)
            } else {
                p.value.checked_div(q.value)
            };
            Ok(v.map(|v| {
                Node::Quantity(Quantity {
                    value: v.normalize(),
                    unit,
                })
            }))
        }
        _ => bad(),
    }
}

/// A resource's JSON as a node of its type.
fn resource_node(resource: &Value) -> Node<'_> {
    let ty = resource.get("resourceType").and_then(Value::as_str);
    Node::json(resource, ty)
}
