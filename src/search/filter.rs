//! `_filter` (R4 search_filter.html): a boolean expression of tests
//! `path operator value`, joined by `and`, `or` and `not ( … )`, evaluated
//! left to right with no precedence between `and` and `or`. Each test is
//! the criterion of an ordinary search parameter (`parse::parse_filter`),
//! with the operator turned into that parameter's prefix or modifier as
//! the operator table says for its type; the tests are combined with
//! `Filter::Or` groups, and `not` is pushed down to the tests (De Morgan)
//! and flips them.
//!
//! Paths are parameter names, chains (`subject.name`) and `_has:Type:ref:param`;
//! a path filter (`related[type eq has-component].target`) is not supported.
//! The system names `loinc`, `snomed`, `rxnorm` and `ucum` stand for their
//! URIs in token and quantity values.

use super::normalize::truncate;
use super::parse::{parse_filter, targets_of};
use super::registry::Registry;
use super::ParamType;
use crate::error::{FhirError, FhirResult};
use crate::store::query::{Cond, Filter};

/// Most tests one `_filter` may hold.
const MAX_TESTS: usize = 64;

/// Deepest nesting of parentheses.
const MAX_DEPTH: usize = 16;

fn bad(message: impl std::fmt::Display) -> FhirError {
    FhirError::invalid(format!("search parameter `_filter`: {message}"))
}

fn unsupported(message: impl std::fmt::Display) -> FhirError {
    FhirError::not_supported(format!("search parameter `_filter`: {message}"))
}

/// A parsed `_filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Test {
        path: String,
        op: String,
        value: String,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Every test, as (path, operator, value).
    pub fn tests(&self) -> Vec<(&str, &str, &str)> {
        match self {
            Expr::Test { path, op, value } => vec![(path, op, value)],
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut all = a.tests();
                all.extend(b.tests());
                all
            }
            Expr::Not(e) => e.tests(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    /// A JSON string, unescaped.
    Str(String),
    /// Any other run of characters up to whitespace or `)`.
    Word(String),
}

fn tokens(text: &str) -> FhirResult<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            chars.next();
            out.push(Tok::Open);
        } else if c == ')' {
            chars.next();
            out.push(Tok::Close);
        } else if c == '"' {
            // A JSON string: find its closing quote, then let serde_json
            // read the escapes.
            let mut end = None;
            let mut escaped = false;
            chars.next();
            for (i, c) in chars.by_ref() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| bad(format!("the string at {at} is not closed")))?;
            let s: String = serde_json::from_str(&text[at..=end])
                .map_err(|e| bad(format!("the string at {at} is not a JSON string ({e})")))?;
            out.push(Tok::Str(s));
        } else {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == ')' || c == '(' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(Tok::Word(word));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    tests: usize,
    depth: usize,
}

fn keyword(t: Option<&Tok>, k: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn filter(&mut self) -> FhirResult<Expr> {
        let mut acc = self.term()?;
        loop {
            if keyword(self.peek(), "and") {
                self.at += 1;
                acc = Expr::And(Box::new(acc), Box::new(self.term()?));
            } else if keyword(self.peek(), "or") {
                self.at += 1;
                acc = Expr::Or(Box::new(acc), Box::new(self.term()?));
            } else {
                return Ok(acc);
            }
        }
    }

    fn group(&mut self) -> FhirResult<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad(format!("parentheses nest at most {MAX_DEPTH} deep")));
        }
        let inner = self.filter()?;
        self.depth -= 1;
        match self.next() {
            Some(Tok::Close) => Ok(inner),
            _ => Err(bad("a `(` is not closed")),
        }
    }

    fn term(&mut self) -> FhirResult<Expr> {
        match self.next() {
            Some(Tok::Open) => self.group(),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => match self.next() {
                Some(Tok::Open) => Ok(Expr::Not(Box::new(self.group()?))),
                _ => Err(bad("`not` must be followed by `(`")),
            },
            Some(Tok::Word(path)) => {
                if path.contains('[') {
                    return Err(unsupported(format!(
                        "`{path}`: filters inside a path (`name[filter].name`) are not supported"
                    )));
                }
                let op = match self.next() {
                    Some(Tok::Word(op)) => op.to_ascii_lowercase(),
                    _ => return Err(bad(format!("`{path}` has no operator"))),
                };
                let value = match self.next() {
                    Some(Tok::Word(v) | Tok::Str(v)) => v,
                    _ => return Err(bad(format!("`{path} {op}` has no value"))),
                };
                self.tests += 1;
                if self.tests > MAX_TESTS {
                    return Err(bad(format!("at most {MAX_TESTS} tests")));
                }
                Ok(Expr::Test { path, op, value })
            }
            Some(Tok::Str(s)) => Err(bad(format!("\"{s}\" stands where a parameter should"))),
            Some(Tok::Close) => Err(bad("a `)` closes nothing")),
            None => Err(bad("the expression ends too early")),
        }
    }
}

/// Parses a `_filter` value.
pub fn parse(text: &str) -> FhirResult<Expr> {
    let mut p = Parser {
        toks: tokens(text)?,
        at: 0,
        tests: 0,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(bad("is empty"));
    }
    let expr = p.filter()?;
    match p.peek() {
        None => Ok(expr),
        Some(Tok::Close) => Err(bad("a `)` closes nothing")),
        Some(t) => Err(bad(format!(
            "expected `and` or `or` after a test, found {}",
            match t {
                Tok::Word(w) => format!("`{w}`"),
                Tok::Str(s) => format!("\"{s}\""),
                _ => "`(`".into(),
            }
        ))),
    }
}

/// For a search of every type: each test's parameter must be one that
/// every type has (`_id`, `_lastUpdated`, `_tag`, ...).
pub fn check_common(reg: &Registry, text: &str) -> FhirResult<()> {
    for (path, _, _) in parse(text)?.tests() {
        let code = path.split(['.', ':']).next().unwrap_or_default();
        let common = !path.starts_with("_has:")
            && (matches!(code, "_id" | "_lastUpdated")
                || reg
                    .get("Patient", code)
                    .is_some_and(|p| p.key_type == "Resource"));
        if !common {
            return Err(bad(format!(
                "`{path}` is not a parameter of every resource type: name the types \
                 (`_type`) or search one type"
            )));
        }
    }
    Ok(())
}

/// The `_filter` criteria on resources of `rtype`.
pub fn to_filter(
    reg: &Registry,
    rtype: &str,
    text: &str,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    translate(reg, rtype, &parse(text)?, base_url, depth)
}

fn translate(
    reg: &Registry,
    rtype: &str,
    e: &Expr,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    Ok(match e {
        Expr::Test { path, op, value } => test(reg, rtype, path, op, value, base_url, depth)?,
        Expr::And(a, b) => {
            let mut all = members(translate(reg, rtype, a, base_url, depth)?);
            all.extend(members(translate(reg, rtype, b, base_url, depth)?));
            Filter::Or(vec![all])
        }
        Expr::Or(a, b) => {
            let mut groups = alternatives(translate(reg, rtype, a, base_url, depth)?);
            groups.extend(alternatives(translate(reg, rtype, b, base_url, depth)?));
            Filter::Or(groups)
        }
        Expr::Not(inner) => negate(translate(reg, rtype, inner, base_url, depth)?)?,
    })
}

/// The filters a filter ANDs: a single-group `Or`'s, else itself.
fn members(f: Filter) -> Vec<Filter> {
    match f {
        Filter::Or(mut groups) if groups.len() == 1 => groups.pop().expect("one group"),
        f => vec![f],
    }
}

/// The AND groups a filter ORs.
fn alternatives(f: Filter) -> Vec<Vec<Filter>> {
    match f {
        Filter::Or(groups) => groups,
        f => vec![vec![f]],
    }
}

/// `not (f)`.
fn negate(mut f: Filter) -> FhirResult<Filter> {
    match &mut f {
        Filter::Index { negate, .. } => {
            *negate = !*negate;
            return Ok(f);
        }
        Filter::Missing { missing, .. } => {
            *missing = !*missing;
            return Ok(f);
        }
        _ => {}
    }
    Ok(match f {
        // not (any group, all of it) = all groups, any of each negated.
        Filter::Or(groups) => Filter::Or(vec![groups
            .into_iter()
            .map(|g| {
                Ok(Filter::Or(
                    g.into_iter()
                        .map(|f| Ok(vec![negate(f)?]))
                        .collect::<FhirResult<_>>()?,
                ))
            })
            .collect::<FhirResult<_>>()?]),
        Filter::Either(fs) => Filter::Or(vec![fs
            .into_iter()
            .map(negate)
            .collect::<FhirResult<_>>()?]),
        other => {
            return Err(unsupported(format!(
                "`not` is not supported around {}",
                match other {
                    Filter::Ids(_) => "`_id`",
                    Filter::LastUpdated(_) => "`_lastUpdated`",
                    Filter::Has { .. } => "`_has`",
                    Filter::Composite(_) => "a composite parameter",
                    Filter::List { .. } => "`_list`",
                    _ => "this test",
                }
            )))
        }
    })
}

/// The type of the parameter a path ends at, on resources of `rtype`.
fn leaf_type(reg: &Registry, rtype: &str, path: &str) -> Option<ParamType> {
    if let Some(rest) = path.strip_prefix("_has:") {
        let mut parts = rest.splitn(3, ':');
        let (t, _, p) = (parts.next()?, parts.next()?, parts.next()?);
        return leaf_type(reg, t, p);
    }
    let (head, chain) = match path.split_once('.') {
        Some((h, c)) => (h, Some(c)),
        None => (path, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    match (code, chain) {
        ("_id", None) => return Some(ParamType::Token),
        ("_lastUpdated", None) => return Some(ParamType::Date),
        ("_text" | "_content", None) => return Some(ParamType::String),
        _ => {}
    }
    let param = reg.get(rtype, code)?;
    let Some(rest) = chain else {
        return Some(param.ptype);
    };
    let candidates = match modifier {
        Some(t) => vec![t.to_string()],
        None => targets_of(param),
    };
    candidates.iter().find_map(|t| leaf_type(reg, t, rest))
}

/// How a test becomes an ordinary parameter: a modifier added to its
/// path, a prefix before its value, a change to its conditions, or its
/// negation.
#[derive(Default)]
struct Plan {
    modifier: Option<&'static str>,
    prefix: &'static str,
    leaf: Option<fn(&mut Cond)>,
    negate: bool,
}

fn plan(ptype: ParamType, op: &str) -> Option<Plan> {
    use ParamType as P;
    let prefix = |prefix| {
        Some(Plan {
            prefix,
            ..Plan::default()
        })
    };
    let modifier = |m| {
        Some(Plan {
            modifier: Some(m),
            ..Plan::default()
        })
    };
    match (ptype, op) {
        // Strings: case- and accent-insensitive, like ordinary string search.
        (P::String, "eq") => Some(Plan {
            leaf: Some(string_equal),
            ..Plan::default()
        }),
        (P::String, "ne") => Some(Plan {
            leaf: Some(string_equal),
            negate: true,
            ..Plan::default()
        }),
        (P::String, "sw") => prefix(""),
        (P::String, "co") => modifier("contains"),
        (P::String, "ew") => Some(Plan {
            modifier: Some("contains"),
            leaf: Some(string_suffix),
            ..Plan::default()
        }),
        (P::Token | P::Reference | P::Uri | P::Composite | P::Special, "eq") => prefix(""),
        (P::Reference, "re") => prefix(""),
        (P::Token | P::Reference | P::Uri | P::Composite, "ne") => Some(Plan {
            negate: true,
            ..Plan::default()
        }),
        (P::Token, "in") => modifier("in"),
        (P::Token, "ni") => modifier("not-in"),
        // ss: the value subsumes a code of the resource (codes below it);
        // sb: the value is subsumed by one (codes above it).
        (P::Token, "ss") => modifier("below"),
        (P::Token, "sb") => modifier("above"),
        (P::Date | P::Number | P::Quantity, op) => match op {
            "eq" => prefix("eq"),
            "ne" => prefix("ne"),
            "gt" => prefix("gt"),
            "lt" => prefix("lt"),
            "ge" => prefix("ge"),
            "le" => prefix("le"),
            "sa" => prefix("sa"),
            "eb" => prefix("eb"),
            "ap" => prefix("ap"),
            "po" if ptype == P::Date => Some(Plan {
                prefix: "eq",
                leaf: Some(date_overlaps),
                ..Plan::default()
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Whole-value equality. Indexed values are cut at
/// `normalize::MAX_INDEXED_CHARS` characters, so the search value is too.
fn string_equal(c: &mut Cond) {
    if let Cond::StrPrefix(v) = c {
        *c = Cond::StrEqual(truncate(std::mem::take(v)));
    }
}

/// Ends with: of values longer than the indexed length only the kept part
/// is seen, so the test is then whether the kept part contains it.
fn string_suffix(c: &mut Cond) {
    if let Cond::StrContains(v) = c {
        *c = Cond::StrSuffix(std::mem::take(v));
    }
}

fn date_overlaps(c: &mut Cond) {
    if let Cond::Date { lo, hi, .. } = *c {
        *c = Cond::Overlaps { lo, hi };
    }
}

/// Applies `leaf` to the conditions of `f`'s tests, through chains and
/// `_has`.
fn map_leaves(f: &mut Filter, leaf: fn(&mut Cond)) {
    let all = |fs: &mut Vec<Filter>| fs.iter_mut().for_each(|f| map_leaves(f, leaf));
    match f {
        Filter::Index { alts, .. } => {
            for c in alts {
                match c {
                    Cond::Chain { filters, .. } | Cond::LocalChain { filters, .. } => all(filters),
                    c => leaf(c),
                }
            }
        }
        Filter::Either(fs) | Filter::Has { filters: fs, .. } => all(fs),
        _ => {}
    }
}

/// `err` of the ordinary parameter a test became, told as the test's.
fn within(mut err: FhirError, test: &str) -> FhirError {
    for issue in &mut err.issues {
        issue.diagnostics = format!(
            "search parameter `_filter`: in `{test}`: {}",
            issue.diagnostics
        );
    }
    err
}

/// The URIs the names `loinc`, `snomed`, `rxnorm` and `ucum` stand for.
fn system_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "loinc" => "http://loinc.org",
        "snomed" => "http://snomed.info/sct",
        "rxnorm" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "ucum" => "http://unitsofmeasure.org",
        _ => return None,
    })
}

/// A value as an ordinary parameter's: its `\` and `,` escaped (a `_filter`
/// value is one value), system names replaced in tokens and quantities.
fn ordinary_value(ptype: ParamType, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace(',', "\\,");
    // Where the system stands: `system|code`, `number|system|unit`.
    let (at, parts_of) = match ptype {
        ParamType::Token => (0, 2),
        ParamType::Quantity => (1, 3),
        _ => return escaped,
    };
    let mut parts: Vec<&str> = escaped.split('|').collect();
    if parts.len() == parts_of {
        if let Some(uri) = system_alias(parts[at]) {
            parts[at] = uri;
        }
    }
    parts.join("|")
}

fn test(
    reg: &Registry,
    rtype: &str,
    path: &str,
    op: &str,
    value: &str,
    base_url: &str,
    depth: usize,
) -> FhirResult<Filter> {
    let last = path.rsplit(['.', ':']).next().unwrap_or(path);
    let leaf_modifier = path
        .rsplit('.')
        .next()
        .is_some_and(|l| l.contains(':') && !path.starts_with("_has:"));
    if leaf_modifier {
        return Err(bad(format!(
            "`{path}`: modifiers are not used in _filter; the operator says how to compare"
        )));
    }
    if op == "pr" {
        let present = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!("`{path} pr` takes true or false"))),
        };
        return parse_filter(
            reg,
            rtype,
            &format!("{path}:missing"),
            if present { "false" } else { "true" },
            base_url,
            depth,
        )
        .map_err(|e| within(e, &format!("{path} pr {value}")));
    }
    if matches!(last, "_text" | "_content") && op != "co" {
        return Err(unsupported(format!(
            "`{path}` takes only `co` (words anywhere in the text)"
        )));
    }
    let ptype = leaf_type(reg, rtype, path)
        .ok_or_else(|| bad(format!("unknown search parameter `{last}` in `{path}`")))?;
    let plan = plan(ptype, op).ok_or_else(|| {
        unsupported(format!(
            "operator `{op}` is not supported on `{path}` ({} parameter)",
            format!("{ptype:?}").to_lowercase()
        ))
    })?;
    let name = match plan.modifier {
        Some(m) => format!("{path}:{m}"),
        None => path.to_string(),
    };
    let ordinary = format!("{}{}", plan.prefix, ordinary_value(ptype, value));
    let mut f = parse_filter(reg, rtype, &name, &ordinary, base_url, depth)
        .map_err(|e| within(e, &format!("{path} {op} {value}")))?;
    if let Some(leaf) = plan.leaf {
        map_leaves(&mut f, leaf);
    }
    if plan.negate {
        f = negate(f)
            .map_err(|_| unsupported(format!("operator `{op}` is not supported on `{path}`")))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str, op: &str, value: &str) -> Expr {
        Expr::Test {
            path: path.into(),
            op: op.into(),
            value: value.into(),
        }
    }

    #[test]
    fn left_to_right_without_precedence() {
        let e = parse(r#"a eq 1 or b eq "x y" and c eq 3"#).unwrap();
        assert_eq!(
            e,
            Expr::And(
                Box::new(Expr::Or(
                    Box::new(t("a", "eq", "1")),
                    Box::new(t("b", "eq", "x y"))
                )),
                Box::new(t("c", "eq", "3"))
            )
        );
    }

    #[test]
    fn groups_not_and_strings() {
        let e = parse(r#"not (name co "a \"b\" (c)") and (x eq y)"#).unwrap();
        assert_eq!(
            e,
            Expr::And(
                Box::new(Expr::Not(Box::new(t("name", "co", "a \"b\" (c)")))),
                Box::new(t("x", "eq", "y"))
            )
        );
        // A token value ends at `)`; words end at `(`.
        assert_eq!(parse("(code eq a|b)").unwrap(), t("code", "eq", "a|b"));
        assert_eq!(
            parse("not(a eq 1)and(b eq 2)").unwrap(),
            Expr::And(
                Box::new(Expr::Not(Box::new(t("a", "eq", "1")))),
                Box::new(t("b", "eq", "2"))
            )
        );
        let deep = format!("{}a eq 1{}", "(".repeat(16), ")".repeat(16));
        assert_eq!(parse(&deep).unwrap(), t("a", "eq", "1"));
    }

    #[test]
    fn malformed_expressions_are_named() {
        for (text, says) in [
            ("", "is empty"),
            ("name eq", "has no value"),
            ("name", "has no operator"),
            ("(name eq x", "not closed"),
            ("name eq x)", "closes nothing"),
            ("name eq x y", "expected `and` or `or`"),
            ("not name eq x", "followed by `(`"),
            ("name eq \"x", "not closed"),
            ("a eq 1 and", "ends too early"),
            (
                &format!("{}a eq 1{}", "(".repeat(17), ")".repeat(17)),
                "nest at most",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.status, 400, "{text}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn values_become_ordinary_values() {
        assert_eq!(
            ordinary_value(ParamType::Token, "loinc|1234-5"),
            "http://loinc.org|1234-5"
        );
        assert_eq!(
            ordinary_value(ParamType::Quantity, "5.4|ucum|mg"),
            "5.4|http://unitsofmeasure.org|mg"
        );
        assert_eq!(
            ordinary_value(ParamType::String, r"Smith, J\r"),
            r"Smith\, J\\r"
        );
    }
}
