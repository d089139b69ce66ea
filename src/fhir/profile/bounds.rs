//! `minValue[x]`, `maxValue[x]` and `maxLength` on one value
//! (http://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.minValue_x_).
//!
//! - integers and decimals compare as numbers;
//! - `date`, `dateTime`, `instant` and `time` compare the spans they
//!   cover at their precision: a value breaks `minValue` only when all of
//!   its span lies before the bound's (`2023-12` is below `2024-01-01`,
//!   `2024` is not), and `maxValue` only when all of it lies after;
//! - Quantities compare their `value` when the units are the same
//!   (`system` and `code`, or `unit` when neither has a code), or when
//!   both are UCUM units of the same dimension (converted to canonical
//!   units); other units cannot be compared;
//! - `maxLength` counts the characters of a string value.

use serde_json::Value;

use crate::fhir::datetime;
use crate::ucum;

const UCUM: &str = "http://unitsofmeasure.org";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Side {
    Min,
    Max,
}

impl Side {
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::Min => "minValue",
            Side::Max => "maxValue",
        }
    }
}

/// What one bound says about one value.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Ok,
    /// The value breaks the bound: what the value is, for the message.
    Broken(String),
    /// The bound cannot be applied to the value: why.
    Unchecked(String),
}

/// A type code or JSON suffix with a lower-case first letter
/// (`DateTime` → `dateTime`).
fn type_code(ty: &str) -> String {
    let mut c = ty.chars();
    match c.next() {
        Some(f)
            if !matches!(
                ty,
                "Quantity"
                    | "SimpleQuantity"
                    | "Age"
                    | "Duration"
                    | "Count"
                    | "Distance"
                    | "MoneyQuantity"
            ) =>
        {
            f.to_lowercase().chain(c).collect()
        }
        _ => ty.to_string(),
    }
}

/// Checks `actual`, a value of type `ty`, against a `minValue[x]` or
/// `maxValue[x]`.
pub(super) fn check(side: Side, ty: &str, actual: &Value, bound: &Value) -> Verdict {
    let ty = type_code(ty);
    match ty.as_str() {
        "integer" | "unsignedInt" | "positiveInt" | "decimal" | "integer64" => {
            let (Some(a), Some(b)) = (number(actual), number(bound)) else {
                return Verdict::Unchecked(format!("{bound} is not a number"));
            };
            verdict(side, a, a, b, b, shown(actual))
        }
        "date" | "dateTime" | "instant" | "time" => {
            let span = |v: &Value| {
                let s = v.as_str()?;
                if ty == "time" {
                    datetime::range_micros(&format!("1970-01-01T{s}Z"))
                } else {
                    datetime::range_micros(s)
                }
            };
            let (Some((alo, ahi)), Some((blo, bhi))) = (span(actual), span(bound)) else {
                return Verdict::Unchecked(format!("{bound} is not a {ty}"));
            };
            verdict(
                side,
                alo as f64,
                ahi as f64,
                blo as f64,
                bhi as f64,
                shown(actual),
            )
        }
        "Quantity" | "SimpleQuantity" | "Age" | "Duration" | "Count" | "Distance"
        | "MoneyQuantity" => quantity(side, actual, bound),
        _ => Verdict::Unchecked(format!("{} does not apply to a {ty}", side.name())),
    }
}

/// Min: broken when the value's span ends before the bound's starts;
/// max: when it starts after the bound's ends.
fn verdict(side: Side, alo: f64, ahi: f64, blo: f64, bhi: f64, shown: String) -> Verdict {
    let broken = match side {
        Side::Min => ahi < blo,
        Side::Max => alo > bhi,
    };
    if broken {
        Verdict::Broken(shown)
    } else {
        Verdict::Ok
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn quantity(side: Side, actual: &Value, bound: &Value) -> Verdict {
    let Some(b) = bound.get("value").and_then(number) else {
        return Verdict::Unchecked(format!("the profile's {} has no value", side.name()));
    };
    let Some(a) = actual.get("value").and_then(number) else {
        return Verdict::Ok;
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let unit_of = |v: &Value| match s(v, "code") {
        Some(code) => (s(v, "system"), Some(code), None),
        None => (None, None, s(v, "unit")),
    };
    let shown = |v: f64, q: &Value| {
        let unit = s(q, "code").or_else(|| s(q, "unit")).unwrap_or_default();
        format!("{v} {unit}").trim_end().to_string()
    };
    if unit_of(actual) == unit_of(bound) {
        return verdict(side, a, a, b, b, shown(a, actual));
    }
    let ucum_code = |q: &Value| {
        (s(q, "system").as_deref() == Some(UCUM))
            .then(|| s(q, "code"))
            .flatten()
    };
    if let (Some(ac), Some(bc)) = (ucum_code(actual), ucum_code(bound)) {
        if let (Some((ca, ua)), Some((cb, ub))) =
            (ucum::to_canonical(a, &ac), ucum::to_canonical(b, &bc))
        {
            if ua == ub {
                return verdict(side, ca, ca, cb, cb, shown(a, actual));
            }
        }
    }
    Verdict::Unchecked(format!(
        "its unit ({}) is not comparable with the unit of the profile's {} ({})",
        shown(a, actual),
        side.name(),
        shown(b, bound)
    ))
}

/// Whether a string value is longer than `max` characters: its length.
pub(super) fn too_long(actual: &Value, max: u64) -> Option<usize> {
    let n = actual.as_str()?.chars().count();
    (n as u64 > max).then_some(n)
}

/// A bound for a message: a Quantity as `value unit`, a string without
/// quotes.
pub(super) fn shown(bound: &Value) -> String {
    match bound {
        Value::String(s) => s.clone(),
        Value::Object(q) if q.contains_key("value") => {
            let unit = q
                .get("code")
                .or_else(|| q.get("unit"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            format!("{} {unit}", q["value"]).trim_end().to_string()
        }
        other => other.to_string(),
    }
}
