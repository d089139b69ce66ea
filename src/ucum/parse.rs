//! Parsing a UCUM (case-sensitive) expression straight into its reduced form.
//!
//! Grammar (UCUM §§ 6–12, with the leading `/` read as `1/`):
//!
//! ```text
//! term      := ["/"] component (("." | "/") component)*     left to right
//! component := "(" term ")" | annotation | (factor | simple [exponent]) [annotation]
//! simple    := atom | prefix atom                             atom must be metric
//! factor    := digits
//! exponent  := ["+" | "-"] digits
//! ```

use std::collections::BTreeMap;

use super::atoms::{self, Def, Dim, PREFIXES};

/// Nesting bound for parentheses and atom definitions, so hostile input cannot
/// exhaust the stack. Real units nest two or three levels.
const MAX_DEPTH: usize = 32;

/// A unit reduced to `mantissa × 10^pow10 × Π dim^exponent`.
///
/// Powers of ten (prefixes, `10*n`, `%`, litres) are kept apart from the
/// mantissa so decimal conversions stay exact: `12 g/dL` and `120 g/L` both
/// become exactly `120000 g.m-3`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Reduced {
    pub(super) mantissa: f64,
    pub(super) pow10: i32,
    pub(super) dims: BTreeMap<Dim, i32>,
}

impl Reduced {
    fn unity() -> Reduced {
        Reduced::scalar(1.0, 0)
    }

    fn scalar(mantissa: f64, pow10: i32) -> Reduced {
        Reduced {
            mantissa,
            pow10,
            dims: BTreeMap::new(),
        }
    }

    fn dim(dim: Dim) -> Reduced {
        let mut r = Reduced::unity();
        r.dims.insert(dim, 1);
        r
    }

    fn mul(mut self, other: Reduced) -> Option<Reduced> {
        self.mantissa *= other.mantissa;
        self.pow10 = self.pow10.checked_add(other.pow10)?;
        for (dim, exp) in other.dims {
            let e = self.dims.entry(dim).or_insert(0);
            *e = e.checked_add(exp)?;
            if *e == 0 {
                self.dims.remove(&dim);
            }
        }
        Some(self)
    }

    fn pow(mut self, n: i32) -> Option<Reduced> {
        self.mantissa = self.mantissa.powi(n);
        self.pow10 = self.pow10.checked_mul(n)?;
        for exp in self.dims.values_mut() {
            *exp = exp.checked_mul(n)?;
        }
        self.dims.retain(|_, e| *e != 0);
        Some(self)
    }

    /// `value × mantissa × 10^pow10`, multiplying or dividing by an exact
    /// power of ten so that decimal values convert without drift.
    pub(super) fn apply(&self, value: f64) -> f64 {
        let v = value * self.mantissa;
        let p = 10f64.powi(self.pow10.saturating_abs());
        if self.pow10 >= 0 {
            v * p
        } else {
            v / p
        }
    }
}

/// Parses and reduces a whole expression; `None` when it is not valid UCUM,
/// names an unknown atom, or uses a non-ratio unit (`Cel`, `[degF]`, `[pH]`).
pub(super) fn reduce(expr: &str) -> Option<Reduced> {
    reduce_at(expr, 0)
}

fn reduce_at(expr: &str, depth: usize) -> Option<Reduced> {
    if depth > MAX_DEPTH || expr.is_empty() || !expr.is_ascii() {
        return None;
    }
    let mut p = Parser {
        s: expr.as_bytes(),
        pos: 0,
        depth,
    };
    let r = p.term()?;
    (p.pos == p.s.len()).then_some(r)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn term(&mut self) -> Option<Reduced> {
        // A leading "/" means "1/": `/min` is per minute, and `/[pi].A/m`
        // (UCUM's own definition of the oersted) is (1/π)·A/m.
        let mut acc = if self.peek() == Some(b'/') {
            Reduced::unity()
        } else {
            self.component()?
        };
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    acc = acc.mul(self.component()?)?;
                }
                Some(b'/') => {
                    self.pos += 1;
                    acc = acc.mul(self.component()?.pow(-1)?)?;
                }
                _ => return Some(acc),
            }
        }
    }

    fn component(&mut self) -> Option<Reduced> {
        match self.peek()? {
            b'(' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                let inner = self.term()?;
                if self.peek() != Some(b')') {
                    return None;
                }
                self.pos += 1;
                self.depth -= 1;
                Some(inner)
            }
            b'{' => {
                self.annotation()?;
                Some(Reduced::unity())
            }
            _ => {
                let unit = self.simple_unit()?;
                // The grammar annotates units only, but LOINC writes
                // `%/100{WBC}`: a factor may carry an annotation too.
                if self.peek() == Some(b'{') {
                    self.annotation()?;
                }
                Some(unit)
            }
        }
    }

    /// `{...}`: any printable ASCII but braces; carries no meaning.
    fn annotation(&mut self) -> Option<()> {
        self.pos += 1; // '{'
        loop {
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                b'{' => return None,
                b' '..=b'~' => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// A factor, or a (prefixed) atom with an optional exponent.
    fn simple_unit(&mut self) -> Option<Reduced> {
        let token = self.token()?;
        if token.bytes().all(|b| b.is_ascii_digit()) {
            let factor: f64 = token.parse().ok()?;
            return Some(Reduced::scalar(factor, 0));
        }
        let (name, exponent) = split_exponent(token)?;
        if matches!(name, "10*" | "10^") {
            // UCUM reads a bare "10*" as ten; it is far more often a typo.
            return Some(Reduced::scalar(1.0, exponent?));
        }
        self.resolve(name)?.pow(exponent.unwrap_or(1))
    }

    /// The run of characters up to the next operator, parenthesis or brace;
    /// square brackets are taken whole, whatever they contain.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'.' | b'/' | b'(' | b')' | b'{' | b'}' => break,
                b'[' => {
                    let close = self.s[self.pos..].iter().position(|&c| c == b']')?;
                    self.pos += close + 1;
                }
                b'!'..=b'~' => self.pos += 1,
                _ => return None,
            }
        }
        let s: &'a [u8] = self.s;
        let token = std::str::from_utf8(&s[start..self.pos]).ok()?;
        (!token.is_empty()).then_some(token)
    }

    /// An atom by its exact code first (`cd` is candela, not centi-day), then
    /// a metric prefix followed by a metric atom (`mmol`, `cm[H2O]`).
    fn resolve(&self, name: &str) -> Option<Reduced> {
        if let Some(atom) = atoms::get(name) {
            return self.define(atom);
        }
        PREFIXES.iter().find_map(|&(prefix, pow10)| {
            let atom = atoms::get(name.strip_prefix(prefix)?)?;
            if !atom.metric {
                return None;
            }
            Reduced::scalar(1.0, pow10).mul(self.define(atom)?)
        })
    }

    fn define(&self, atom: &atoms::Atom) -> Option<Reduced> {
        match atom.def {
            Def::Base(dim) => Some(Reduced::dim(dim)),
            Def::Arbitrary => Some(Reduced::dim(Dim::Arbitrary(atom.code))),
            Def::Special => None,
            Def::Scaled(factor, expr) => {
                Reduced::scalar(factor, 0).mul(reduce_at(expr, self.depth + 1)?)
            }
        }
    }
}

/// Splits `m2` into `("m", Some(2))`, `10*-3` into `("10*", Some(-3))`.
/// Atoms never end in a digit outside brackets, so trailing digits are the
/// exponent. Returns `None` for a sign without digits or an oversized exponent.
fn split_exponent(token: &str) -> Option<(&str, Option<i32>)> {
    let digits = token.bytes().rev().take_while(u8::is_ascii_digit).count();
    let mut split = token.len() - digits;
    if digits > 0 && split > 0 && matches!(token.as_bytes()[split - 1], b'+' | b'-') {
        split -= 1;
    }
    let (name, exp) = token.split_at(split);
    if name.is_empty() {
        return None;
    }
    if exp.is_empty() {
        return Some((name, None));
    }
    Some((name, Some(exp.parse().ok()?)))
}
