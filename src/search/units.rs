//! Quantity units for search: the UCUM canonical form of a unit, so that
//! `5.4 mmol/L` and `5400 umol/L` index and compare as the same quantity.

use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

pub const UCUM: &str = "http://unitsofmeasure.org";

/// The canonical unit and the factor to it, when `code` is a UCUM unit
/// (system `http://unitsofmeasure.org`) this server can convert.
pub fn canonical(system: &str, code: &str) -> Option<(String, f64)> {
    if system != UCUM || code.is_empty() {
        return None;
    }
    let q = crate::fhirpath::Quantity {
        value: Decimal::from_str("1").ok()?,
        unit: code.to_string(),
    };
    let (dim, factor) = q.canonical(false)?;
    Some((dim.to_string(), factor.to_f64()?))
}
