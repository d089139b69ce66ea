use super::atoms::{self, Def};
use super::{canonical, to_canonical, Canonical};

fn c(unit: &str) -> Canonical {
    canonical(unit).unwrap_or_else(|| panic!("{unit} should be valid UCUM"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `a` is `ratio` times `b`, and both have the same canonical unit.
fn assert_ratio(a: &str, b: &str, ratio: f64) {
    let (ca, cb) = (c(a), c(b));
    assert_eq!(ca.unit, cb.unit, "{a} vs {b}");
    assert!(
        close(ca.factor / cb.factor, ratio),
        "{a} / {b} = {}, expected {ratio}",
        ca.factor / cb.factor
    );
}

fn assert_incommensurable(a: &str, b: &str) {
    assert_ne!(c(a).unit, c(b).unit, "{a} vs {b}");
}

#[test]
fn canonical_string_format() {
    assert_eq!(
        c("mg/dL"),
        Canonical {
            factor: 10.0,
            unit: "m-3.g".into()
        }
    );
    assert_eq!(c("mmol/L").unit, "m-3.mol");
    assert_eq!(
        c("kPa"),
        Canonical {
            factor: 1e6,
            unit: "m-1.s-2.g".into()
        }
    );
    assert_eq!(c("N").unit, "m.s-2.g");
    assert_eq!(
        c("m[iU]/mL"),
        Canonical {
            factor: 1000.0,
            unit: "m-3.[iU]".into()
        }
    );
    assert_eq!(
        c("1"),
        Canonical {
            factor: 1.0,
            unit: "1".into()
        }
    );
    assert_eq!(
        c("%"),
        Canonical {
            factor: 0.01,
            unit: "1".into()
        }
    );
}

#[test]
fn mass_concentration() {
    assert_ratio("mg/dL", "g/L", 0.01);
    assert_ratio("g/dL", "g/L", 10.0);
    assert_ratio("ug/mL", "mg/L", 1.0);
    assert_eq!(to_canonical(12.0, "g/dL"), to_canonical(120.0, "g/L"));
    assert_eq!(
        to_canonical(120.0, "g/L"),
        Some((120_000.0, "m-3.g".into()))
    );
}

#[test]
fn substance_concentration() {
    assert_ratio("mmol/L", "mol/m3", 1.0);
    assert_ratio("umol/mL", "mmol/L", 1.0);
    assert_ratio("mmol/L", "umol/L", 1000.0);
    assert_eq!(to_canonical(5.4, "mmol/L"), to_canonical(5.4, "mol/m3"));
    assert_eq!(to_canonical(5400.0, "umol/L"), to_canonical(5.4, "mol/m3"));
    // eq and osm are moles, as in UCUM.
    assert_ratio("meq/L", "mmol/L", 1.0);
    assert_ratio("mosm/kg", "mmol/kg", 1.0);
    // mol is its own dimension: never a plain number, never a mass.
    assert_incommensurable("mol", "10*23");
    assert_incommensurable("mmol/L", "10*9/L");
    assert_incommensurable("mmol/L", "mg/dL");
}

#[test]
fn mass_length_volume() {
    assert_ratio("kg", "[lb_av]", 1.0 / 0.45359237);
    assert_ratio("[lb_av]", "[oz_av]", 16.0);
    assert_ratio("[in_i]", "cm", 2.54);
    assert_ratio("[ft_i]", "m", 0.3048);
    assert_ratio("[mi_i]", "km", 1.609344);
    assert_ratio("[gal_us]", "L", 3.785411784);
    assert_ratio("[foz_us]", "mL", 29.5735295625);
    assert_ratio("L", "l", 1.0);
    assert_ratio("L", "dm3", 1.0);
    assert_ratio("mL", "cm3", 1.0);
    assert_ratio("[drp]", "mL", 0.05);
}

#[test]
fn time_and_rates() {
    assert_ratio("/min", "Hz", 1.0 / 60.0);
    assert_ratio("{beats}/min", "/min", 1.0);
    assert_ratio("h", "min", 60.0);
    assert_ratio("d", "h", 24.0);
    assert_ratio("wk", "d", 7.0);
    assert_ratio("a", "d", 365.25);
    assert_ratio("mo", "d", 365.25 / 12.0);
    assert_ratio("mL/min", "L/h", 0.06);
    assert_ratio("U", "umol/min", 1.0);
    assert_ratio("kat", "mol/s", 1.0);
    assert_ratio("U", "nkat", 1e3 / 60.0);
}

#[test]
fn pressure_and_energy() {
    assert_ratio("mm[Hg]", "kPa", 0.133322);
    assert_ratio("cm[H2O]", "Pa", 98.0665);
    assert_ratio("atm", "kPa", 101.325);
    assert_ratio("bar", "kPa", 100.0);
    assert_ratio("[psi]", "Pa", 6894.757293168361);
    assert_ratio("kcal", "kJ", 4.184);
    assert_ratio("[Cal]", "kcal", 1.0);
    assert_ratio("W", "J/s", 1.0);
}

#[test]
fn counts_and_powers_of_ten() {
    assert_ratio("10*9/L", "10*3/uL", 1.0);
    assert_ratio("10^9/L", "10*9/L", 1.0);
    assert_ratio("10*-3", "[ppth]", 1.0);
    assert_ratio("{cells}/uL", "10*6/L", 1.0);
    assert_ratio("{cells}/uL", "/uL", 1.0);
    assert_ratio("1000/mL", "10*6/L", 1.0);
    assert_ratio("%", "1", 0.01);
    assert_ratio("[ppm]", "[ppb]", 1000.0);
    assert_ratio("{score}", "1", 1.0);
    assert_eq!(c("{score}").unit, "1");
}

#[test]
fn annotations_are_ignored() {
    assert_ratio("mg{creat}/dL", "mg/dL", 1.0);
    assert_ratio("m2{body surface}", "m2", 1.0);
    assert_ratio("%{HemoglobinA1C}", "%", 1.0);
    assert_ratio("mL/min/{1.73_m2}", "mL/min", 1.0);
    assert_ratio("{RBC}/[HPF]", "/[HPF]", 1.0);
    // Not in the grammar, but LOINC writes it.
    assert_ratio("%/100{WBC}", "%", 0.01);
    assert_ratio("10*3{RBCs}/uL", "10*9/L", 1.0);
}

#[test]
fn operators_and_parentheses() {
    // Left to right: a/b.c is (a/b).c.
    assert_ratio("mL/min.kg", "mL.kg/min", 1.0);
    assert_ratio("mL/(min.kg)", "mL/min/kg", 1.0);
    assert_ratio("/min.h", "h/min", 1.0);
    assert_ratio("(m/s)/s", "m/s2", 1.0);
    assert_ratio("((g))/((L))", "g/L", 1.0);
    assert_ratio("m+2", "m2", 1.0);
    assert_ratio("cm3", "m3", 1e-6);
    assert_ratio("24.h", "d", 1.0);
    assert_ratio("m2.5", "m2", 5.0); // a factor after the operator
    assert_ratio("kg.m/s2", "N", 1.0);
}

#[test]
fn arbitrary_units() {
    assert_ratio("[IU]/L", "[iU]/L", 1.0);
    assert_ratio("m[IU]/mL", "[IU]/L", 1.0);
    assert_ratio("[LPF]", "[HPF]", 100.0);
    assert_incommensurable("[IU]/L", "/L");
    assert_incommensurable("[IU]", "[arb'U]");
    assert_incommensurable("[arb'U]", "[beth'U]");
    assert_incommensurable("/[HPF]", "1");
    assert_incommensurable("U/L", "[IU]/L");
    // Non-metric arbitrary units take no prefix.
    assert_eq!(canonical("k[arb'U]"), None);
    assert_eq!(canonical("m[beth'U]"), None);
}

#[test]
fn metric_prefixes_follow_ucum() {
    assert_ratio("kg", "g", 1e3);
    assert_ratio("dam", "m", 10.0);
    assert_ratio("dL", "L", 0.1);
    assert_ratio("fL", "L", 1e-15);
    assert_ratio("Mg", "g", 1e6);
    assert_ratio("ms", "s", 1e-3);
    assert_incommensurable("cd", "d"); // candela, not centi-day
    assert_ratio("Pa", "N/m2", 1.0); // pascal, not peta-year
    for invalid in [
        "k[lb_av]", "mmin", "kh", "m%", "mmm", "k10*3", "c[in_i]", "u[ppm]",
    ] {
        assert_eq!(canonical(invalid), None, "{invalid}");
    }
}

#[test]
fn case_sensitive() {
    assert_ratio("Mg", "mg", 1e9);
    assert_eq!(canonical("MG"), None);
    assert_eq!(canonical("MMOL/L"), None);
    assert_eq!(canonical("mEq/L"), None);
    assert_eq!(canonical("Min"), None);
    assert_eq!(canonical("pa"), None); // `a` (year) takes no prefix
    assert_ratio("ML", "L", 1e6); // megalitre, not "ml"
}

#[test]
fn temperatures() {
    assert_eq!(canonical("Cel"), None);
    assert_eq!(canonical("[degF]"), None);
    assert_eq!(canonical("[pH]"), None);
    assert_eq!(canonical("mCel"), None);
    for (value, unit) in [(37.0, "Cel"), (98.6, "[degF]")] {
        let (kelvin, canonical_unit) = to_canonical(value, unit).unwrap();
        assert_eq!(canonical_unit, "K");
        assert!(close(kelvin, 310.15), "{value} {unit} = {kelvin} K");
    }
    assert_eq!(to_canonical(37.0, "Cel/h"), None);
    assert_eq!(to_canonical(310.15, "K"), Some((310.15, "K".into())));
}

#[test]
fn invalid_inputs() {
    for invalid in [
        "",
        " ",
        "mg/",
        "/",
        ".",
        "mg.",
        ".mg",
        "mg//dL",
        "mg..g",
        "foo",
        "10*",
        "10^",
        "10*+",
        "(",
        ")",
        "(mg",
        "mg)",
        "(mg))",
        "((mg)",
        "()",
        "{",
        "}",
        "{abc",
        "abc}",
        "m{a}{b}",
        "{a}{b}",
        "[",
        "[in_i",
        "in_i]",
        "mg dL",
        " mg",
        "mg ",
        "2m",
        "m-",
        "m2-",
        "-1",
        "+2",
        "mg/dL/",
        "(m/s)2",
        "µg",
        "mg\n",
        "m99999999999",
        "g%",
        "0/L",
        "10*999",
        "10*-999",
    ] {
        assert_eq!(canonical(invalid), None, "{invalid:?}");
        assert_eq!(to_canonical(1.0, invalid), None, "{invalid:?}");
    }
}

#[test]
fn every_table_entry_resolves() {
    for atom in atoms::all() {
        let resolved = canonical(atom.code);
        match atom.def {
            Def::Special => assert_eq!(resolved, None, "{}", atom.code),
            _ => assert!(resolved.is_some(), "{} does not resolve", atom.code),
        }
    }
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = format!("{}m{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(canonical(&deep), None);
    assert!(canonical(&format!("{}m{}", "(".repeat(10), ")".repeat(10))).is_some());
    assert_eq!(canonical(&"m.".repeat(100_000)), None);
    assert!(canonical(&format!("{}m", "m.".repeat(10_000))).is_some());
    assert_eq!(canonical("m2147483647.m"), None);

    // A small fuzz loop over the characters UCUM cares about.
    const ALPHABET: &[u8] = b"mgLlsdkcu10*^+-./(){}[]_'%HgiUa ";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 12) as usize;
        let s: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect();
        if let Some(Canonical { factor, .. }) = canonical(&s) {
            assert!(factor.is_finite() && factor > 0.0, "{s:?} gave {factor}");
        }
        let _ = to_canonical(f64::MAX, &s);
    }
}
