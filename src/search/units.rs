//! Quantity units for search: the UCUM canonical form of a unit (see
//! `crate::ucum`), so that `5.4 mmol/L` and `5400 umol/L` index and compare
//! as the same quantity.

pub const UCUM: &str = "http://unitsofmeasure.org";

/// The canonical unit and the factor to it, when `code` is a UCUM unit
/// (system `http://unitsofmeasure.org`) that converts linearly.
pub fn canonical(system: &str, code: &str) -> Option<(String, f64)> {
    if system != UCUM || code.is_empty() {
        return None;
    }
    let c = crate::ucum::canonical(code)?;
    Some((c.unit, c.factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucum_units_only() {
        let (u1, f1) = canonical(UCUM, "mg/dL").unwrap();
        let (u2, f2) = canonical(UCUM, "g/L").unwrap();
        assert_eq!(u1, u2);
        // 120 mg/dL is 1.2 g/L.
        assert!((120.0 * f1 - 1.2 * f2).abs() < 1e-9 * f2);
        assert!(canonical("http://example.org/units", "mg").is_none());
        assert!(canonical(UCUM, "not a unit").is_none());
    }
}
