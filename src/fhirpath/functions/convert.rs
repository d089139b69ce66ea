//! Conversions: `toString`, `toInteger`, `toDecimal`, `toBoolean`, `toDate`,
//! `toDateTime`, `toTime`, `toQuantity` (and `convertsTo*` through them).

use std::str::FromStr;

use rust_decimal::Decimal;

use super::super::value::{DateTimeVal, Node, Prec, Quantity};

/// Parses `5.5 'mg'`, `1 day`, `7`.
fn parse_quantity(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (num, unit) = match s.find(' ') {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, "'1'"),
    };
    if num.is_empty()
        || !num
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    let value = Decimal::from_str(num).ok()?;
    let unit = if let Some(u) = unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
        u.to_string()
    } else if super::super::value::is_calendar(unit) {
        unit.to_string()
    } else {
        return None;
    };
    Some(Quantity { value, unit })
}

/// `toX()` on one item; None when it does not convert.
pub(super) fn convert<'a>(to: &str, item: &Node<'a>, unit: Option<&str>) -> Option<Node<'a>> {
    let v = item
        .to_system()
        .or_else(|| item.as_quantity().map(Node::Quantity))?;
    match to {
        "toString" => item.render().or_else(|| v.render()).map(Node::Str),
        "toInteger" => match v {
            Node::Int(i) => Some(Node::Int(i)),
            Node::Bool(b) => Some(Node::Int(b as i64)),
            Node::Str(s) => {
                let t = s.strip_prefix('+').unwrap_or(&s);
                if t.trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    && !t.is_empty()
                {
                    t.parse().ok().map(Node::Int)
                } else {
                    None
                }
            }
            _ => None,
        },
        "toDecimal" => match v {
            Node::Int(i) => Some(Node::Dec(Decimal::from(i))),
            Node::Dec(d) => Some(Node::Dec(d)),
            Node::Bool(b) => Some(Node::Dec(if b { Decimal::ONE } else { Decimal::ZERO })),
            Node::Str(s) => {
                let t = s.trim_start_matches(['+', '-']);
                if !t.is_empty()
                    && t.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && !t.ends_with('.')
                {
                    Decimal::from_str(&s).ok().map(Node::Dec)
                } else {
                    None
                }
            }
            _ => None,
        },
        "toBoolean" => match v {
            Node::Bool(b) => Some(Node::Bool(b)),
            Node::Int(1) => Some(Node::Bool(true)),
            Node::Int(0) => Some(Node::Bool(false)),
            Node::Dec(d) if d == Decimal::ONE => Some(Node::Bool(true)),
            Node::Dec(d) if d.is_zero() => Some(Node::Bool(false)),
            Node::Str(s) => match s.to_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Node::Bool(true)),
                "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Node::Bool(false)),
                _ => None,
            },
            _ => None,
        },
        "toDate" => match v {
            Node::Date(d) => Some(Node::Date(d)),
            Node::DateTime(mut d) => {
                d.prec = d.prec.min(Prec::Day);
                d.tz = None;
                Some(Node::Date(d))
            }
            Node::Str(s) => DateTimeVal::parse_date(&s)
                .or_else(|| {
                    DateTimeVal::parse_datetime(&s).map(|mut d| {
                        d.prec = d.prec.min(Prec::Day);
                        d.tz = None;
                        d
                    })
                })
                .map(Node::Date),
            _ => None,
        },
        "toDateTime" => match v {
            Node::Date(d) | Node::DateTime(d) => Some(Node::DateTime(d)),
            Node::Str(s) => DateTimeVal::parse_datetime(&s).map(Node::DateTime),
            _ => None,
        },
        "toTime" => match v {
            Node::Time(d) => Some(Node::Time(d)),
            Node::Str(s) => {
                DateTimeVal::parse_time(s.strip_prefix('T').unwrap_or(&s)).map(Node::Time)
            }
            _ => None,
        },
        "toQuantity" => {
            let q = match v {
                Node::Int(i) => Quantity {
                    value: Decimal::from(i),
                    unit: "1".into(),
                },
                Node::Dec(d) => Quantity {
                    value: d,
                    unit: "1".into(),
                },
                Node::Bool(b) => Quantity {
                    value: if b { Decimal::ONE } else { Decimal::ZERO },
                    unit: "1".into(),
                },
                Node::Quantity(q) => q,
                Node::Str(s) => parse_quantity(&s)?,
                _ => return None,
            };
            match unit {
                None => Some(Node::Quantity(q)),
                Some(u) if u == q.unit => Some(Node::Quantity(q)),
                Some(u) => {
                    let factor = ratio(&q.unit, u)?;
                    Some(Node::Quantity(Quantity {
                        value: q.value.checked_mul(factor)?.normalize(),
                        unit: u.to_string(),
                    }))
                }
            }
        }
        _ => None,
    }
}

/// How many `to` one `from` is, for convertible units.
fn ratio(from: &str, to: &str) -> Option<Decimal> {
    let one = |u: &str| Quantity {
        value: Decimal::ONE,
        unit: u.to_string(),
    };
    let (da, a) = one(from).canonical(false)?;
    let (db, b) = one(to).canonical(false)?;
    if da != db {
        return None;
    }
    a.checked_div(b)
}
