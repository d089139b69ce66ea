//! The items FHIRPath collections hold: nodes of the JSON resource (with
//! their FHIR type when known) and computed System values, with the
//! date/time and quantity types and their comparison rules.

use std::cmp::Ordering;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::Decimal;
use serde_json::Value;

/// Precision of a date, dateTime or time, coarsest first. Seconds with or
/// without a fraction are one precision (FHIRPath §Date/Time comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prec {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// A date, dateTime or time value with its precision. Times use only the
/// time fields; dates only the date fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DateTimeVal {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Milliseconds.
    pub millis: u32,
    /// Whether the seconds had a fraction (for rendering).
    pub has_millis: bool,
    pub prec: Prec,
    /// Offset from UTC in minutes, when given.
    pub tz: Option<i32>,
    /// The precision starts at Hour (a time of day).
    pub is_time: bool,
}

impl DateTimeVal {
    fn empty(prec: Prec) -> DateTimeVal {
        DateTimeVal {
            year: 0,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            has_millis: false,
            prec,
            tz: None,
            is_time: false,
        }
    }

    /// `YYYY`, `YYYY-MM`, `YYYY-MM-DD`.
    pub fn parse_date(s: &str) -> Option<DateTimeVal> {
        let mut d = DateTimeVal::empty(Prec::Year);
        let parts: Vec<&str> = s.split('-').collect();
        if parts.is_empty() || parts.len() > 3 || parts[0].len() != 4 {
            return None;
        }
        d.year = digits(parts[0])? as i32;
        if let Some(m) = parts.get(1) {
            d.month = two(m).filter(|m| (1..=12).contains(m))?;
            d.prec = Prec::Month;
        }
        if let Some(day) = parts.get(2) {
            d.day = two(day).filter(|x| (1..=31).contains(x))?;
            NaiveDate::from_ymd_opt(d.year, d.month, d.day)?;
            d.prec = Prec::Day;
        }
        Some(d)
    }

    /// `YYYY[-MM[-DD]]T[hh[:mm[:ss[.fff]]]][Z|(+|-)hh:mm]`; also a date alone.
    pub fn parse_datetime(s: &str) -> Option<DateTimeVal> {
        let (date, time) = match s.find('T') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut d = DateTimeVal::parse_date(date)?;
        if let Some(time) = time {
            if time.is_empty() {
                return Some(d);
            }
            if d.prec != Prec::Day {
                return None;
            }
            let (t, tz) = split_tz(time)?;
            let tv = DateTimeVal::parse_time(t)?;
            d.hour = tv.hour;
            d.minute = tv.minute;
            d.second = tv.second;
            d.millis = tv.millis;
            d.has_millis = tv.has_millis;
            d.prec = tv.prec;
            d.tz = tz;
        }
        Some(d)
    }

    /// `hh[:mm[:ss[.fff]]]`
    pub fn parse_time(s: &str) -> Option<DateTimeVal> {
        let mut d = DateTimeVal::empty(Prec::Hour);
        d.is_time = true;
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() > 3 {
            return None;
        }
        d.hour = two(parts[0]).filter(|h| *h < 24)?;
        if let Some(m) = parts.get(1) {
            d.minute = two(m).filter(|m| *m < 60)?;
            d.prec = Prec::Minute;
        }
        if let Some(sec) = parts.get(2) {
            let (whole, frac) = match sec.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (*sec, None),
            };
            d.second = two(whole).filter(|s| *s < 60)?;
            if let Some(f) = frac {
                if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let f3: String = f.chars().chain("000".chars()).take(3).collect();
                d.millis = f3.parse().ok()?;
                d.has_millis = true;
            }
            d.prec = Prec::Second;
        }
        Some(d)
    }

    fn naive(&self) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)?.and_hms_milli_opt(
            self.hour,
            self.minute,
            self.second,
            self.millis,
        )
    }

    fn set_naive(&mut self, n: NaiveDateTime) {
        self.year = n.year();
        self.month = n.month();
        self.day = n.day();
        self.hour = n.hour();
        self.minute = n.minute();
        self.second = n.second();
        self.millis = n.and_utc().timestamp_subsec_millis();
    }

    /// The same instant in UTC (when it has an offset and a time).
    fn to_utc(&self) -> DateTimeVal {
        let mut d = self.clone();
        if let (Some(tz), false, true) = (self.tz, self.is_time, self.prec >= Prec::Hour) {
            if let Some(n) = self.naive() {
                if let Some(u) = n.checked_sub_signed(Duration::minutes(tz as i64)) {
                    d.set_naive(u);
                }
                d.tz = Some(0);
            }
        }
        d
    }

    /// Components from the coarsest, with the seconds as milliseconds.
    fn components(&self) -> Vec<i64> {
        let all = [
            self.year as i64,
            self.month as i64,
            self.day as i64,
            self.hour as i64,
            self.minute as i64,
            self.second as i64 * 1000 + self.millis as i64,
        ];
        let start = if self.is_time { 3 } else { 0 };
        all[start..=self.prec as usize].to_vec()
    }

    /// Compares two values; None when the precisions differ and the common
    /// part is equal (the result is unknown).
    pub fn compare(&self, other: &DateTimeVal) -> Option<Ordering> {
        if self.is_time != other.is_time {
            return None;
        }
        let timed = !self.is_time && self.prec >= Prec::Hour && other.prec >= Prec::Hour;
        if timed && self.tz.is_some() != other.tz.is_some() {
            return None;
        }
        let (a, b) = if self.tz.is_some() && other.tz.is_some() {
            (self.to_utc(), other.to_utc())
        } else {
            (self.clone(), other.clone())
        };
        let (ca, cb) = (a.components(), b.components());
        for (x, y) in ca.iter().zip(cb.iter()) {
            match x.cmp(y) {
                Ordering::Equal => continue,
                o => return Some(o),
            }
        }
        if ca.len() == cb.len() {
            Some(Ordering::Equal)
        } else {
            None
        }
    }

    /// Adds a calendar quantity (`value` in `unit`, a calendar word).
    pub fn add(&self, value: Decimal, unit: &str) -> Option<DateTimeVal> {
        let mut d = self.clone();
        let whole = value.trunc();
        let n: i64 = whole.to_string().parse().ok()?;
        let unit = unit.trim_end_matches('s');
        match unit {
            "year" | "a" => {
                d.year = i32::try_from(d.year as i64 + n).ok()?;
                d.clamp_day();
            }
            "month" | "mo" => {
                let m = d.year as i64 * 12 + (d.month as i64 - 1) + n;
                d.year = i32::try_from(m.div_euclid(12)).ok()?;
                d.month = (m.rem_euclid(12) + 1) as u32;
                d.clamp_day();
            }
            _ => {
                let ms: i64 = match unit {
                    "week" | "wk" => n.checked_mul(7 * 86_400_000)?,
                    "day" | "d" => n.checked_mul(86_400_000)?,
                    "hour" | "h" => n.checked_mul(3_600_000)?,
                    "minute" | "min" => n.checked_mul(60_000)?,
                    "second" | "" => n.checked_mul(1000)?,
                    "millisecond" | "m" => n,
                    _ => return None,
                };
                if self.is_time {
                    let t = NaiveTime::from_hms_milli_opt(d.hour, d.minute, d.second, d.millis)?;
                    let (t2, _) = t.overflowing_add_signed(Duration::try_milliseconds(ms)?);
                    d.hour = t2.hour();
                    d.minute = t2.minute();
                    d.second = t2.second();
                    d.millis = t2.nanosecond() / 1_000_000;
                } else {
                    // Below the value's precision the addition truncates to it.
                    let unit_ms: i64 = match d.prec {
                        Prec::Year => 365 * 86_400_000,
                        Prec::Month => 30 * 86_400_000,
                        Prec::Day => 86_400_000,
                        Prec::Hour => 3_600_000,
                        Prec::Minute => 60_000,
                        Prec::Second => 1,
                    };
                    let ms = ms / unit_ms * unit_ms;
                    if d.prec == Prec::Year {
                        d.year = i32::try_from(d.year as i64 + ms / unit_ms).ok()?;
                    } else if d.prec == Prec::Month {
                        return d.add(Decimal::from(ms / unit_ms), "month");
                    } else {
                        let n = d
                            .naive()?
                            .checked_add_signed(Duration::try_milliseconds(ms)?)?;
                        d.set_naive(n);
                    }
                }
            }
        }
        Some(d)
    }

    fn clamp_day(&mut self) {
        while self.day > 28 && NaiveDate::from_ymd_opt(self.year, self.month, self.day).is_none() {
            self.day -= 1;
        }
    }

    /// The literal form without `@`: `2014-01-01T10:00:00.000+10:00`, `10:00`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.is_time {
            s.push_str(&format!("{:04}", self.year));
            if self.prec >= Prec::Month {
                s.push_str(&format!("-{:02}", self.month));
            }
            if self.prec >= Prec::Day {
                s.push_str(&format!("-{:02}", self.day));
            }
            if self.prec >= Prec::Hour {
                s.push('T');
            }
        }
        if self.prec >= Prec::Hour {
            s.push_str(&format!("{:02}", self.hour));
        }
        if self.prec >= Prec::Minute {
            s.push_str(&format!(":{:02}", self.minute));
        }
        if self.prec >= Prec::Second {
            s.push_str(&format!(":{:02}", self.second));
            if self.has_millis {
                s.push_str(&format!(".{:03}", self.millis));
            }
        }
        if let (Some(tz), false) = (self.tz, self.is_time) {
            if tz == 0 {
                s.push('Z');
            } else {
                let sign = if tz < 0 { '-' } else { '+' };
                s.push_str(&format!("{sign}{:02}:{:02}", tz.abs() / 60, tz.abs() % 60));
            }
        }
        s
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn two(s: &str) -> Option<u32> {
    if s.len() != 2 {
        return None;
    }
    digits(s)
}

fn split_tz(t: &str) -> Option<(&str, Option<i32>)> {
    if let Some(rest) = t.strip_suffix('Z') {
        return Some((rest, Some(0)));
    }
    if let Some(i) = t.rfind(['+', '-']) {
        let (time, tz) = (&t[..i], &t[i..]);
        let sign = if tz.starts_with('-') { -1 } else { 1 };
        let (h, m) = tz[1..].split_once(':')?;
        return Some((time, Some(sign * (two(h)? as i32 * 60 + two(m)? as i32))));
    }
    Some((t, None))
}

/// A quantity: a decimal value and a unit (UCUM code or calendar word).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub value: Decimal,
    pub unit: String,
}

/// UCUM units this engine converts between: (unit, dimension, factor to the
/// dimension's base unit).
const UNITS: &[(&str, &str, &str)] = &[
    ("g", "mass", "1"),
    ("kg", "mass", "1000"),
    ("mg", "mass", "0.001"),
    ("ug", "mass", "0.000001"),
    ("ng", "mass", "0.000000001"),
    ("[lb_av]", "mass", "453.59237"),
    ("m", "length", "1"),
    ("km", "length", "1000"),
    ("cm", "length", "0.01"),
    ("mm", "length", "0.001"),
    ("um", "length", "0.000001"),
    ("[in_i]", "length", "0.0254"),
    ("[ft_i]", "length", "0.3048"),
    ("L", "volume", "1"),
    ("l", "volume", "1"),
    ("dL", "volume", "0.1"),
    ("mL", "volume", "0.001"),
    ("ml", "volume", "0.001"),
    ("uL", "volume", "0.000001"),
    ("m2", "area", "1"),
    ("cm2", "area", "0.0001"),
    ("s", "time", "1"),
    ("ms", "time", "0.001"),
    ("min", "time", "60"),
    ("h", "time", "3600"),
    ("d", "time", "86400"),
    ("wk", "time", "604800"),
    ("mo", "time", "2629800"),
    ("a", "time", "31557600"),
    ("1", "one", "1"),
    ("%", "one", "0.01"),
];

/// The unit of a dimension whose factor is 1 (`m` for length).
pub fn base_unit(dim: &str) -> Option<&'static str> {
    UNITS
        .iter()
        .find(|(_, d, f)| *d == dim && *f == "1")
        .map(|(u, _, _)| *u)
}

/// Calendar words and the UCUM unit they equal for equality: only
/// weeks and shorter are definite durations.
pub fn calendar_to_ucum(unit: &str) -> Option<&'static str> {
    Some(match unit.trim_end_matches('s') {
        "year" => "a",
        "month" => "mo",
        "week" => "wk",
        "day" => "d",
        "hour" => "h",
        "minute" => "min",
        "second" => "s",
        "millisecond" => "ms",
        _ => return None,
    })
}

pub fn is_calendar(unit: &str) -> bool {
    unit != "s" && unit != "ms" && calendar_to_ucum(unit).is_some() && unit.len() > 2
}

impl Quantity {
    /// The value in the base unit of its dimension.
    pub fn canonical(&self, equivalence: bool) -> Option<(&'static str, Decimal)> {
        let mut unit = self.unit.as_str();
        if is_calendar(unit) {
            let u = calendar_to_ucum(unit)?;
            // year and month are not definite durations unless equivalent.
            if !equivalence && (u == "a" || u == "mo") {
                return None;
            }
            unit = u;
        }
        let (_, dim, f) = UNITS.iter().find(|(u, _, _)| *u == unit)?;
        Some((dim, self.value.checked_mul(Decimal::from_str(f).ok()?)?))
    }

    /// Compares two quantities; None when their units cannot be compared.
    pub fn compare(&self, other: &Quantity, equivalence: bool) -> Option<Ordering> {
        let norm = |u: &str| {
            calendar_to_ucum(u)
                .filter(|_| is_calendar(u))
                .unwrap_or("")
                .to_string()
        };
        if self.unit == other.unit
            || (is_calendar(&self.unit)
                && is_calendar(&other.unit)
                && norm(&self.unit) == norm(&other.unit))
        {
            return self.value.partial_cmp(&other.value);
        }
        let (da, va) = self.canonical(equivalence)?;
        let (db, vb) = other.canonical(equivalence)?;
        if da != db {
            return None;
        }
        va.partial_cmp(&vb)
    }

    pub fn render(&self) -> String {
        if is_calendar(&self.unit) {
            format!("{} {}", self.value, self.unit)
        } else {
            format!("{} '{}'", self.value, self.unit)
        }
    }
}

/// A node of the resource: a JSON value (None when only the `_name`
/// companion of a primitive exists), its companion, and its FHIR type.
#[derive(Debug, Clone)]
pub struct JsonNode<'a> {
    pub value: Option<&'a Value>,
    pub ext: Option<&'a Value>,
    pub ty: Option<&'a str>,
}

/// One item of a collection.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    Json(JsonNode<'a>),
    Bool(bool),
    Int(i64),
    Dec(Decimal),
    Str(String),
    Date(DateTimeVal),
    DateTime(DateTimeVal),
    Time(DateTimeVal),
    Quantity(Quantity),
    /// The result of `type()`: namespace and name.
    TypeInfo(&'static str, String),
}

/// Types whose JSON primitive is read as an Integer.
const INTEGER_TYPES: [&str; 3] = ["integer", "positiveInt", "unsignedInt"];
/// FHIR types of the Quantity family.
pub const QUANTITY_TYPES: [&str; 7] = [
    "Quantity",
    "Age",
    "Count",
    "Distance",
    "Duration",
    "MoneyQuantity",
    "SimpleQuantity",
];

/// A decimal from JSON number text (with exponent support).
pub fn decimal_from_text(s: &str) -> Option<Decimal> {
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

impl<'a> Node<'a> {
    pub fn json(value: &'a Value, ty: Option<&'a str>) -> Node<'a> {
        Node::Json(JsonNode {
            value: Some(value),
            ext: None,
            ty,
        })
    }

    /// The System value of a primitive node; the node itself when it is
    /// already a System value; None for complex nodes and value-less primitives.
    pub fn to_system(&self) -> Option<Node<'a>> {
        let Node::Json(j) = self else {
            return Some(self.clone());
        };
        let v = j.value?;
        let ty = j.ty.unwrap_or("");
        match v {
            Value::Bool(b) => Some(Node::Bool(*b)),
            Value::Number(n) => {
                let text = n.to_string();
                if ty == "decimal" || (ty.is_empty() && text.contains(['.', 'e', 'E'])) {
                    decimal_from_text(&text).map(Node::Dec)
                } else if INTEGER_TYPES.contains(&ty) || ty.is_empty() {
                    text.parse().ok().map(Node::Int)
                } else {
                    decimal_from_text(&text).map(Node::Dec)
                }
            }
            Value::String(s) => match ty {
                "date" => DateTimeVal::parse_date(s).map(Node::Date),
                "dateTime" | "instant" => DateTimeVal::parse_datetime(s).map(Node::DateTime),
                "time" => DateTimeVal::parse_time(s).map(Node::Time),
                "decimal" => decimal_from_text(s).map(Node::Dec),
                _ if INTEGER_TYPES.contains(&ty) => s.parse().ok().map(Node::Int),
                _ => Some(Node::Str(s.clone())),
            },
            Value::Object(_) if QUANTITY_TYPES.contains(&ty) => {
                self.as_quantity().map(Node::Quantity)
            }
            _ => None,
        }
    }

    /// A FHIR Quantity (or a System one) as a [`Quantity`].
    pub fn as_quantity(&self) -> Option<Quantity> {
        match self {
            Node::Quantity(q) => Some(q.clone()),
            Node::Json(JsonNode {
                value: Some(Value::Object(o)),
                ..
            }) => {
                let value = match o.get("value")? {
                    Value::Number(n) => decimal_from_text(&n.to_string())?,
                    _ => return None,
                };
                let unit = o
                    .get("code")
                    .or_else(|| o.get("unit"))
                    .and_then(Value::as_str)
                    .unwrap_or("1");
                Some(Quantity {
                    value,
                    unit: unit.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The type name: `System.Integer`, `FHIR.Patient`.
    pub fn type_name(&self) -> (&'static str, String) {
        let sys = |n: &str| ("System", n.to_string());
        match self {
            Node::Json(j) => ("FHIR", j.ty.unwrap_or("Element").to_string()),
            Node::Bool(_) => sys("Boolean"),
            Node::Int(_) => sys("Integer"),
            Node::Dec(_) => sys("Decimal"),
            Node::Str(_) => sys("String"),
            Node::Date(_) => sys("Date"),
            Node::DateTime(_) => sys("DateTime"),
            Node::Time(_) => sys("Time"),
            Node::Quantity(_) => sys("Quantity"),
            Node::TypeInfo(..) => sys("SimpleTypeInfo"),
        }
    }

    pub fn as_str(&self) -> Option<String> {
        match self.to_system()? {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as it is rendered by `toString()`.
    pub fn render(&self) -> Option<String> {
        Some(match self.to_system()? {
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Dec(d) => d.to_string(),
            Node::Str(s) => s,
            Node::Date(d) | Node::DateTime(d) | Node::Time(d) => d.render(),
            Node::Quantity(q) => q.render(),
            Node::Json(_) | Node::TypeInfo(..) => return None,
        })
    }
}
