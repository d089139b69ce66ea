//! The table of unit atoms: which codes exist, which take metric prefixes,
//! and how each is defined in terms of other UCUM expressions.
//!
//! Definitions follow the UCUM essence table (values, and the `isMetric` flag
//! that decides whether an atom takes a prefix), with the deviations listed in
//! the module documentation of [`crate::ucum`]: `mol` is a base dimension, and
//! arbitrary units are dimensions of their own.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A dimension of the canonical form. The derived order (bases in UCUM's
/// order, then arbitrary units by code) is the order of the canonical string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Dim {
    Meter,
    Second,
    Gram,
    Radian,
    Kelvin,
    Coulomb,
    Candela,
    /// Not a base unit in UCUM (there `mol` is 6.0221367e23); see the module docs.
    Mole,
    /// An arbitrary unit such as `[iU]`: convertible only to itself.
    Arbitrary(&'static str),
}

impl Dim {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Dim::Meter => "m",
            Dim::Second => "s",
            Dim::Gram => "g",
            Dim::Radian => "rad",
            Dim::Kelvin => "K",
            Dim::Coulomb => "C",
            Dim::Candela => "cd",
            Dim::Mole => "mol",
            Dim::Arbitrary(code) => code,
        }
    }
}

/// How an atom is defined.
#[derive(Clone, Copy, Debug)]
pub(super) enum Def {
    /// One of the dimensions of the canonical form.
    Base(Dim),
    /// An arbitrary unit: a dimension of its own, named by its code.
    Arbitrary,
    /// A non-ratio scale (`Cel`, `[degF]`, `[pH]`): recognised, never converted.
    Special,
    /// `factor` × the UCUM expression.
    Scaled(f64, &'static str),
}

pub(super) struct Atom {
    pub(super) code: &'static str,
    /// Whether the atom takes a metric prefix (`kg` yes, `k[lb_av]` no).
    pub(super) metric: bool,
    pub(super) def: Def,
}

const fn atom(code: &'static str, metric: bool, def: Def) -> Atom {
    Atom { code, metric, def }
}

const fn scaled(code: &'static str, metric: bool, factor: f64, expr: &'static str) -> Atom {
    atom(code, metric, Def::Scaled(factor, expr))
}

const fn arbitrary(code: &'static str, metric: bool) -> Atom {
    atom(code, metric, Def::Arbitrary)
}

/// Metric prefixes as powers of ten. `da` comes first so `dam` is deka-metre.
pub(super) const PREFIXES: &[(&str, i32)] = &[
    ("da", 1),
    ("Y", 24),
    ("Z", 21),
    ("E", 18),
    ("P", 15),
    ("T", 12),
    ("G", 9),
    ("M", 6),
    ("k", 3),
    ("h", 2),
    ("d", -1),
    ("c", -2),
    ("m", -3),
    ("u", -6),
    ("n", -9),
    ("p", -12),
    ("f", -15),
    ("a", -18),
    ("z", -21),
    ("y", -24),
];

#[rustfmt::skip]
const ATOMS: &[Atom] = &[
    // Base units (and mol, kept as a base dimension).
    atom("m", true, Def::Base(Dim::Meter)),
    atom("s", true, Def::Base(Dim::Second)),
    atom("g", true, Def::Base(Dim::Gram)),
    atom("rad", true, Def::Base(Dim::Radian)),
    atom("K", true, Def::Base(Dim::Kelvin)),
    atom("C", true, Def::Base(Dim::Coulomb)),
    atom("cd", true, Def::Base(Dim::Candela)),
    atom("mol", true, Def::Base(Dim::Mole)),
    // Dimensionless numbers. `10*` and `10^` are handled by the parser, which
    // keeps their powers of ten exact.
    scaled("[pi]", false, std::f64::consts::PI, "1"),
    scaled("%", false, 1.0, "10*-2"),
    scaled("[ppth]", false, 1.0, "10*-3"),
    scaled("[ppm]", false, 1.0, "10*-6"),
    scaled("[ppb]", false, 1.0, "10*-9"),
    scaled("[pptr]", false, 1.0, "10*-12"),
    // SI derived units.
    scaled("sr", true, 1.0, "rad2"),
    scaled("Hz", true, 1.0, "s-1"),
    scaled("N", true, 1.0, "kg.m/s2"),
    scaled("Pa", true, 1.0, "N/m2"),
    scaled("J", true, 1.0, "N.m"),
    scaled("W", true, 1.0, "J/s"),
    scaled("A", true, 1.0, "C/s"),
    scaled("V", true, 1.0, "J/C"),
    scaled("F", true, 1.0, "C/V"),
    scaled("Ohm", true, 1.0, "V/A"),
    scaled("S", true, 1.0, "Ohm-1"),
    scaled("Wb", true, 1.0, "V.s"),
    scaled("T", true, 1.0, "Wb/m2"),
    scaled("H", true, 1.0, "Wb/A"),
    scaled("lm", true, 1.0, "cd.sr"),
    scaled("lx", true, 1.0, "lm/m2"),
    scaled("Bq", true, 1.0, "s-1"),
    scaled("Gy", true, 1.0, "J/kg"),
    scaled("Sv", true, 1.0, "J/kg"),
    atom("Cel", true, Def::Special),
    // ISO 1000 and other customary units.
    scaled("l", true, 1.0, "dm3"),
    scaled("L", true, 1.0, "l"),
    scaled("min", false, 60.0, "s"),
    scaled("h", false, 60.0, "min"),
    scaled("d", false, 24.0, "h"),
    scaled("wk", false, 7.0, "d"),
    scaled("a_j", false, 365.25, "d"),
    scaled("a_g", false, 365.2425, "d"),
    scaled("a", false, 1.0, "a_j"),
    scaled("mo_j", false, 1.0, "a_j/12"),
    scaled("mo_g", false, 1.0, "a_g/12"),
    scaled("mo", false, 1.0, "mo_j"),
    scaled("deg", false, 2.0, "[pi].rad/360"),
    scaled("bar", true, 1e5, "Pa"),
    scaled("atm", false, 101_325.0, "Pa"),
    scaled("[g]", true, 9.80665, "m/s2"),
    scaled("Ci", true, 3.7e10, "Bq"),
    // Clinical.
    scaled("m[Hg]", true, 133.322, "kPa"),
    scaled("m[H2O]", true, 9.80665, "kPa"),
    scaled("[in_i'Hg]", false, 1.0, "m[Hg].[in_i]/m"),
    scaled("[in_i'H2O]", false, 1.0, "m[H2O].[in_i]/m"),
    scaled("[drp]", false, 1.0, "ml/20"),
    scaled("[MET]", false, 3.5, "mL/min/kg"),
    scaled("[diop]", false, 1.0, "/m"),
    scaled("[Ch]", false, 1.0, "mm/[pi]"),
    // Heat.
    scaled("cal_th", true, 4.184, "J"),
    scaled("cal_IT", true, 4.1868, "J"),
    scaled("cal", true, 1.0, "cal_th"),
    scaled("[Cal]", false, 1.0, "kcal_th"),
    atom("[degF]", false, Def::Special),
    // Chemical.
    scaled("eq", true, 1.0, "mol"),
    scaled("osm", true, 1.0, "mol"),
    scaled("kat", true, 1.0, "mol/s"),
    scaled("U", true, 1.0, "umol/min"),
    atom("[pH]", false, Def::Special),
    // Arbitrary units: each a dimension of its own. [IU] is defined as [iU].
    arbitrary("[iU]", true),
    scaled("[IU]", true, 1.0, "[iU]"),
    arbitrary("[arb'U]", false),
    arbitrary("[USP'U]", false),
    arbitrary("[GPL'U]", false),
    arbitrary("[MPL'U]", false),
    arbitrary("[APL'U]", false),
    arbitrary("[beth'U]", false),
    arbitrary("[todd'U]", false),
    arbitrary("[dye'U]", false),
    arbitrary("[smgy'U]", false),
    arbitrary("[bdsk'U]", false),
    arbitrary("[ka'U]", false),
    arbitrary("[knk'U]", false),
    arbitrary("[mclg'U]", false),
    arbitrary("[tb'U]", false),
    arbitrary("[CFU]", true),
    // Microscope fields: UCUM makes them dimensionless; here [HPF] is its own
    // dimension so "cells per field" never equals a plain count.
    arbitrary("[HPF]", false),
    scaled("[LPF]", false, 100.0, "[HPF]"),
    // International customary units.
    scaled("[in_i]", false, 2.54, "cm"),
    scaled("[ft_i]", false, 12.0, "[in_i]"),
    scaled("[yd_i]", false, 3.0, "[ft_i]"),
    scaled("[mi_i]", false, 5280.0, "[ft_i]"),
    scaled("[gr]", false, 64.79891, "mg"),
    scaled("[lb_av]", false, 7000.0, "[gr]"),
    scaled("[oz_av]", false, 1.0, "[lb_av]/16"),
    scaled("[dr_av]", false, 1.0, "[oz_av]/16"),
    scaled("[stone_av]", false, 14.0, "[lb_av]"),
    scaled("[lbf_av]", false, 1.0, "[lb_av].[g]"),
    scaled("[psi]", false, 1.0, "[lbf_av]/[in_i]2"),
    // US and British volumes.
    scaled("[gal_us]", false, 231.0, "[in_i]3"),
    scaled("[qt_us]", false, 1.0, "[gal_us]/4"),
    scaled("[pt_us]", false, 1.0, "[qt_us]/2"),
    scaled("[gil_us]", false, 1.0, "[pt_us]/4"),
    scaled("[foz_us]", false, 1.0, "[gil_us]/4"),
    scaled("[tbs_us]", false, 1.0, "[foz_us]/2"),
    scaled("[tsp_us]", false, 1.0, "[tbs_us]/3"),
    scaled("[cup_us]", false, 16.0, "[tbs_us]"),
    scaled("[gal_br]", false, 4.54609, "l"),
    scaled("[qt_br]", false, 1.0, "[gal_br]/4"),
    scaled("[pt_br]", false, 1.0, "[qt_br]/2"),
    scaled("[gil_br]", false, 1.0, "[pt_br]/4"),
    scaled("[foz_br]", false, 1.0, "[gil_br]/5"),
];

/// The atom with exactly this code (case-sensitive).
pub(super) fn get(code: &str) -> Option<&'static Atom> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Atom>> = OnceLock::new();
    INDEX
        .get_or_init(|| ATOMS.iter().map(|a| (a.code, a)).collect())
        .get(code)
        .copied()
}

#[cfg(test)]
pub(super) fn all() -> &'static [Atom] {
    ATOMS
}
