//! UCUM units reduced to a canonical form, so quantities in different but
//! commensurable units can be compared: `5.4 mmol/L`, `5400 umol/L` and
//! `5.4 mol/m3` are the same value, and so are `12 g/dL` and `120 g/L`.
//! Pure functions, no I/O; the search engine's quantity index uses them.
//!
//! # Canonical form
//!
//! [`canonical`] returns a factor and a unit string. The string lists the
//! dimensions with non-zero exponent in this fixed order: `m`, `s`, `g`, `rad`,
//! `K`, `C`, `cd`, `mol`, then arbitrary units (such as `[iU]`) by code in byte
//! order. Each is its symbol followed by its exponent when that is not 1
//! (negative exponents as `-n`, never `/`), joined by `.`; a dimensionless unit
//! is `1`. Equal strings mean commensurable units, different strings mean not.
//!
//! | unit    | factor        | unit string |
//! |---------|---------------|-------------|
//! | `mg/dL` | 10            | `m-3.g`     |
//! | `mmol/L`| 1             | `m-3.mol`   |
//! | `/min`  | 1/60          | `s-1`       |
//! | `kPa`   | 1e6           | `m-1.s-2.g` |
//! | `%`     | 0.01          | `1`         |
//! | `m[iU]/mL` | 1000       | `m-3.[iU]`  |
//!
//! # Supported
//!
//! The case-sensitive (c/s) syntax: `.` and `/` read left to right, a leading
//! `/` read as `1/` (`/min`, `/[HPF]`), parentheses, integer exponents (`m2`,
//! `s-1`, `cm3`: the prefix is raised too), annotations `{...}` (ignored, and
//! alone they are unity: `{cells}/uL`, `{score}`), the powers of ten `10*n` and
//! `10^n`, integer factors (`10*9/L`, `24.h`), and the twenty metric prefixes on
//! the atoms that UCUM marks as metric (`kg`, `mmol`, `mm[Hg]` = m + `m[Hg]`;
//! not `k[lb_av]`). The atom table (`atoms.rs`) covers SI and its derived
//! units, time (`min h d wk mo a`), volume (`L l`), pressure (`bar atm mm[Hg]
//! cm[H2O] [psi]`), energy (`cal kcal [Cal]`), chemistry (`mol eq osm kat U`),
//! parts (`% [ppth] [ppm] [ppb] [pptr]`), drops, international and US/British
//! customary length, mass and volume units, and the common arbitrary units.
//!
//! # Deliberate deviations from UCUM
//!
//! - `mol` is a base dimension. UCUM defines it as 6.0221367e23 (a pure
//!   number), which makes `mmol/L` commensurable with `10*9/L` cell counts;
//!   for clinical search that is a false match, never a wanted one. `eq` and
//!   `osm` are 1 mol, as in UCUM, so `mEq/L` compares with `mmol/L`.
//! - Arbitrary units (`[iU]`, `[arb'U]`, `[beth'U]`, `[CFU]`, ...) are each a
//!   dimension of their own, convertible only to themselves. `[IU]` is `[iU]`,
//!   as UCUM defines it.
//! - `[HPF]` is its own dimension and `[LPF]` is 100 `[HPF]`; UCUM makes both
//!   dimensionless, which would match "cells per field" against plain counts.
//! - `10*` or `10^` without an exponent is rejected (UCUM reads it as 10).
//!
//! # Not supported
//!
//! - Non-ratio units: `Cel`, `[degF]` and `[pH]` give `None` from
//!   [`canonical`]. [`to_canonical`] converts a value in exactly `Cel` or
//!   `[degF]` to kelvin (offset applied); prefixed or compound temperature
//!   units (`Cel/h`) and the other special units (`Np`, `B[...]`, `[hp_X]`,
//!   ...) are `None`.
//! - Atoms missing from the table (e.g. `G`, `t`, `u`, `eV`, `[S]`, binary
//!   prefixes `Ki`): `None`, as for any invalid string.
//! - The case-insensitive (c/i) variant (`MG`, `MMOL/L`): UCUM is case-sensitive
//!   in FHIR, so `Mg` is a megagram and `MG` is not a unit here.
//! - Exponents on parentheses (`(m/s)2`), which the UCUM grammar does not
//!   allow either. (Annotations on factors, `%/100{WBC}`, are accepted although
//!   the grammar forbids them, because LOINC uses them.)

mod atoms;
mod parse;

#[cfg(test)]
mod tests;

/// A unit reduced to canonical form: one unit equals `factor` canonical units.
/// The `unit` string format is described in the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct Canonical {
    pub factor: f64,
    pub unit: String,
}

/// Reduces a UCUM expression. `None` when the string is not valid UCUM, names
/// a unit this module does not know, or names a non-ratio unit (`Cel`).
pub fn canonical(unit: &str) -> Option<Canonical> {
    let reduced = parse::reduce(unit)?;
    let factor = reduced.apply(1.0);
    valid(factor).then(|| Canonical {
        factor,
        unit: unit_string(&reduced),
    })
}

/// Converts `value` in `unit` to canonical units: the value and the canonical
/// unit string. Powers of ten are applied exactly, so `12 g/dL` and `120 g/L`
/// give the same float. Also converts `Cel` and `[degF]` to `K`.
pub fn to_canonical(value: f64, unit: &str) -> Option<(f64, String)> {
    let (converted, unit) = match unit {
        "Cel" => (value + 273.15, "K".to_owned()),
        "[degF]" => ((value + 459.67) * 5.0 / 9.0, "K".to_owned()),
        _ => {
            let reduced = parse::reduce(unit)?;
            if !valid(reduced.apply(1.0)) {
                return None;
            }
            (reduced.apply(value), unit_string(&reduced))
        }
    };
    converted.is_finite().then_some((converted, unit))
}

/// A unit's factor must be a positive finite number (`0/L` or `10*999` is not a unit).
fn valid(factor: f64) -> bool {
    factor.is_finite() && factor > 0.0
}

fn unit_string(reduced: &parse::Reduced) -> String {
    if reduced.dims.is_empty() {
        return "1".to_owned();
    }
    let parts: Vec<String> = reduced
        .dims
        .iter()
        .map(|(dim, &exp)| match exp {
            1 => dim.symbol().to_owned(),
            _ => format!("{}{exp}", dim.symbol()),
        })
        .collect();
    parts.join(".")
}
