//! A Pratt parser from tokens to [`Expr`], with FHIRPath's precedence
//! (http://hl7.org/fhirpath/N1/#operator-precedence).

use std::str::FromStr;

use rust_decimal::Decimal;

use super::ast::{BinOp, Expr, Literal, TypeSpec};
use super::lexer::{lex, Tok};
use super::value::{DateTimeVal, Quantity};
use super::Error;

/// Parses a complete expression.
pub fn parse(src: &str) -> Result<Expr, Error> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(Error::syntax("empty expression"));
    }
    let e = p.expr(0)?;
    if p.pos < p.toks.len() {
        return Err(Error::syntax(format!("unexpected {:?}", p.toks[p.pos])));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// How deeply expressions may nest (parentheses, arguments, operands).
const MAX_DEPTH: usize = 200;

const CALENDAR_UNITS: [&str; 16] = [
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

/// The infix operator at a token, with its binding power.
fn infix(tok: &Tok) -> Option<(BinOp, u8)> {
    let op = match tok {
        Tok::Op(o) => match *o {
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "&" => (BinOp::Concat, 9),
            "|" => (BinOp::Union, 7),
            "<" => (BinOp::Lt, 6),
            ">" => (BinOp::Gt, 6),
            "<=" => (BinOp::Le, 6),
            ">=" => (BinOp::Ge, 6),
            "=" => (BinOp::Eq, 5),
            "!=" => (BinOp::Ne, 5),
            "~" => (BinOp::Equiv, 5),
            "!~" => (BinOp::NotEquiv, 5),
            _ => return None,
        },
        Tok::Ident(w) => match w.as_str() {
            "div" => (BinOp::IntDiv, 10),
            "mod" => (BinOp::Mod, 10),
            "in" => (BinOp::In, 4),
            "contains" => (BinOp::Contains, 4),
            "and" => (BinOp::And, 3),
            "or" => (BinOp::Or, 2),
            "xor" => (BinOp::Xor, 2),
            "implies" => (BinOp::Implies, 1),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

const TYPE_OP_BP: u8 = 8;
const UNARY_BP: u8 = 11;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Result<Tok, Error> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| Error::syntax("unexpected end of expression"))?;
        self.pos += 1;
        Ok(t)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), Error> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(Error::syntax(format!("expected '{op}'")))
        }
    }

    fn expr(&mut self, min_bp: u8) -> Result<Expr, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::syntax("the expression nests too deeply"));
        }
        let r = self.expr_inner(min_bp);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Expr, Error> {
        let mut lhs = self.prefix()?;
        while let Some(tok) = self.peek() {
            if let Tok::Ident(w) = tok {
                if w == "is" || w == "as" {
                    if TYPE_OP_BP <= min_bp {
                        break;
                    }
                    let is = w == "is";
                    self.pos += 1;
                    let ts = self.type_spec()?;
                    lhs = if is {
                        Expr::Is(Box::new(lhs), ts)
                    } else {
                        Expr::As(Box::new(lhs), ts)
                    };
                    continue;
                }
            }
            let Some((op, bp)) = infix(tok) else { break };
            if bp <= min_bp {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(bp)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn type_spec(&mut self) -> Result<TypeSpec, Error> {
        let first = self.identifier()?;
        if self.peek() == Some(&Tok::Op(".")) {
            self.pos += 1;
            let second = self.identifier()?;
            return Ok(TypeSpec {
                namespace: Some(first),
                name: second,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn identifier(&mut self) -> Result<String, Error> {
        match self.next()? {
            Tok::Ident(s) | Tok::Delimited(s) => Ok(s),
            t => Err(Error::syntax(format!(
                "expected an identifier, found {t:?}"
            ))),
        }
    }

    fn prefix(&mut self) -> Result<Expr, Error> {
        let tok = self.next()?;
        let term = match tok {
            Tok::Op("-") => {
                let e = self.expr(UNARY_BP)?;
                return Ok(match e {
                    Expr::Literal(Literal::Int(i)) => Expr::Literal(Literal::Int(-i)),
                    Expr::Literal(Literal::Dec(d)) => Expr::Literal(Literal::Dec(-d)),
                    e => Expr::Negate(Box::new(e)),
                });
            }
            Tok::Op("+") => return self.expr(UNARY_BP),
            Tok::Op("(") => {
                let e = self.expr(0)?;
                self.expect_op(")")?;
                e
            }
            Tok::Op("{") => {
                self.expect_op("}")?;
                Expr::Empty
            }
            Tok::Str(s) => Expr::Literal(Literal::Str(s)),
            Tok::Num(n) => self.number(&n)?,
            Tok::DateTime(s) => Expr::Literal(date_literal(&s)?),
            Tok::Time(s) => Expr::Literal(Literal::Time(
                DateTimeVal::parse_time(&s)
                    .ok_or_else(|| Error::syntax(format!("bad time @T{s}")))?,
            )),
            Tok::Env(s) => Expr::Env(s),
            Tok::Dollar(s) => match s.as_str() {
                "this" => Expr::This,
                "index" => Expr::Index,
                "total" => Expr::Total,
                _ => return Err(Error::syntax(format!("unknown ${s}"))),
            },
            Tok::Ident(s) if s == "true" => Expr::Literal(Literal::Bool(true)),
            Tok::Ident(s) if s == "false" => Expr::Literal(Literal::Bool(false)),
            Tok::Ident(s) | Tok::Delimited(s) => {
                if self.peek() == Some(&Tok::Op("(")) {
                    self.pos += 1;
                    let args = self.args()?;
                    Expr::Call(None, s, args)
                } else {
                    Expr::Ident(s)
                }
            }
            t => return Err(Error::syntax(format!("unexpected {t:?}"))),
        };
        self.postfix(term)
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, Error> {
        loop {
            if self.eat_op(".") {
                let name = self.identifier()?;
                if self.eat_op("(") {
                    let args = self.args()?;
                    e = Expr::Call(Some(Box::new(e)), name, args);
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
            } else if self.eat_op("[") {
                let idx = self.expr(0)?;
                self.expect_op("]")?;
                e = Expr::Indexer(Box::new(e), Box::new(idx));
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>, Error> {
        let mut args = Vec::new();
        if self.eat_op(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            if self.eat_op(")") {
                return Ok(args);
            }
            self.expect_op(",")?;
        }
    }

    fn number(&mut self, n: &str) -> Result<Expr, Error> {
        // A quantity: a number followed by a unit string or a calendar unit.
        let unit = match self.peek() {
            Some(Tok::Str(u)) => Some(u.clone()),
            Some(Tok::Ident(w)) if CALENDAR_UNITS.contains(&w.as_str()) => Some(w.clone()),
            _ => None,
        };
        let lit = if let Some(unit) = unit {
            self.pos += 1;
            let value = Decimal::from_str(n).map_err(|e| Error::syntax(e.to_string()))?;
            Literal::Quantity(Quantity { value, unit })
        } else if n.contains('.') {
            Literal::Dec(Decimal::from_str(n).map_err(|e| Error::syntax(e.to_string()))?)
        } else {
            match n.parse::<i64>() {
                Ok(i) => Literal::Int(i),
                Err(_) => {
                    Literal::Dec(Decimal::from_str(n).map_err(|e| Error::syntax(e.to_string()))?)
                }
            }
        };
        Ok(Expr::Literal(lit))
    }
}

fn date_literal(s: &str) -> Result<Literal, Error> {
    let bad = || Error::syntax(format!("bad date/time literal @{s}"));
    if s.contains('T') {
        // `T08` is not a FHIR time: read it as `T08:00`.
        DateTimeVal::parse_datetime(s)
            .map(|mut d| {
                if d.prec == super::value::Prec::Hour {
                    d.prec = super::value::Prec::Minute;
                }
                d
            })
            .map(Literal::DateTime)
            .ok_or_else(bad)
    } else {
        DateTimeVal::parse_date(s)
            .map(Literal::Date)
            .ok_or_else(bad)
    }
}
