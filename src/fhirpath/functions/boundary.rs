//! `precision()`, `lowBoundary()` and `highBoundary()` (FHIRPath 2.1):
//! the range of values a Decimal, Quantity, Date, DateTime or Time literal
//! stands for, given its precision.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use super::super::value::{DateTimeVal, Node, Prec, Quantity};

/// Applies one of the three functions; None when the result is empty.
pub fn apply<'a>(name: &str, v: &Node<'a>, p: Option<i64>) -> Option<Node<'a>> {
    if name == "precision" {
        return precision(v).map(Node::Int);
    }
    let high = name == "highBoundary";
    match v {
        Node::Int(i) => decimal(Decimal::from(*i), p, high).map(Node::Dec),
        Node::Dec(d) => decimal(*d, p, high).map(Node::Dec),
        Node::Quantity(q) => decimal(q.value, p, high).map(|value| {
            Node::Quantity(Quantity {
                value,
                unit: q.unit.clone(),
            })
        }),
        Node::Date(d) => date(d, p.unwrap_or(8), high).map(|d| {
            if d.prec <= Prec::Day {
                Node::Date(d)
            } else {
                Node::DateTime(d)
            }
        }),
        Node::DateTime(d) => date(d, p.unwrap_or(17), high).map(|d| {
            if d.prec <= Prec::Day {
                Node::Date(d)
            } else {
                Node::DateTime(d)
            }
        }),
        Node::Time(d) => date(d, p.unwrap_or(9), high).map(Node::Time),
        _ => None,
    }
}

fn precision(v: &Node) -> Option<i64> {
    match v {
        Node::Int(_) => Some(0),
        Node::Dec(d) => Some(d.scale() as i64),
        Node::Quantity(q) => Some(q.value.scale() as i64),
        Node::Date(d) | Node::DateTime(d) | Node::Time(d) => Some(digits(d)),
        _ => None,
    }
}

/// The number of digits of a date/time at its precision.
fn digits(d: &DateTimeVal) -> i64 {
    let base = match d.prec {
        Prec::Year => 4,
        Prec::Month => 6,
        Prec::Day => 8,
        Prec::Hour => 10,
        Prec::Minute => 12,
        Prec::Second => {
            if d.has_millis {
                17
            } else {
                14
            }
        }
    };
    if d.is_time {
        base - 8
    } else {
        base
    }
}

fn decimal(d: Decimal, p: Option<i64>, high: bool) -> Option<Decimal> {
    let p = p.unwrap_or(8);
    if !(0..=28).contains(&p) {
        return None;
    }
    // A value below the target resolution has the boundary 0 there.
    if d.abs() < Decimal::new(1, p as u32) {
        let mut z = Decimal::ZERO;
        z.rescale(p as u32);
        return Some(z);
    }
    if d.scale() >= 28 {
        return None;
    }
    let half = Decimal::new(5, d.scale() + 1);
    let signed = if high {
        d.checked_add(half)?
    } else {
        d.checked_sub(half)?
    };
    let strategy = if high {
        RoundingStrategy::ToPositiveInfinity
    } else {
        RoundingStrategy::ToNegativeInfinity
    };
    let mut r = signed.round_dp_with_strategy(p as u32, strategy);
    r.rescale(p as u32);
    Some(r)
}

/// Fills or truncates a date/time to `p` digits with the lowest or highest
/// value (and the widest offset when it has no timezone).
fn date(d: &DateTimeVal, p: i64, high: bool) -> Option<DateTimeVal> {
    let mut r = d.clone();
    let (prec, millis) = match if d.is_time { p + 8 } else { p } {
        4 => (Prec::Year, false),
        6 => (Prec::Month, false),
        8 => (Prec::Day, false),
        10 => (Prec::Hour, false),
        12 => (Prec::Minute, false),
        14 => (Prec::Second, false),
        17 => (Prec::Second, true),
        _ => return None,
    };
    if d.is_time && prec < Prec::Hour {
        return None;
    }
    let fill = |from: Prec| d.prec < from;
    if fill(Prec::Month) {
        r.month = if high { 12 } else { 1 };
    }
    if fill(Prec::Day) {
        r.day = if high {
            (28..=31)
                .rev()
                .find(|day| NaiveDate::from_ymd_opt(r.year, r.month, *day).is_some())
                .unwrap_or(28)
        } else {
            1
        };
    }
    if fill(Prec::Hour) {
        r.hour = if high { 23 } else { 0 };
    }
    if fill(Prec::Minute) {
        r.minute = if high { 59 } else { 0 };
    }
    if fill(Prec::Second) {
        r.second = if high { 59 } else { 0 };
    }
    if !d.has_millis {
        r.millis = if high { 999 } else { 0 };
    }
    r.prec = prec;
    r.has_millis = millis;
    if !d.is_time && prec >= Prec::Hour && r.tz.is_none() {
        r.tz = Some(if high { -12 * 60 } else { 14 * 60 });
    }
    if prec < Prec::Hour {
        r.tz = None;
    }
    Some(r)
}
