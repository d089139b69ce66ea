//! The R4 base invariants (`fhir::invariants`) on every official R4
//! example (npm `hl7.fhir.r4.examples@4.0.1`, in `CHARAKA_R4_EXAMPLES`),
//! and the shipped core profiles on the examples that declare them.
//! The examples conform to R4, so an error they raise is a constraint that
//! is broken in R4 itself or an engine fault: each must be listed in
//! [`KNOWN`] with the reason. Without the variable the test says so and
//! passes, except in CI (`CI` set), where it fails. It prints the number
//! of examples, the time per example, and the errors by key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use charaka::fhir::invariants;
use charaka::fhir::outcome::Severity;
use serde_json::Value;

/// (constraint key, example file): errors on official examples, explained
/// in README.md ("$validate").
const KNOWN: &[(&str, &str)] = &[
    // sdf-4 (`abstract = true or baseDefinition.exists()`): R4's logical
    // models (Definition, Event, FiveWs, Request) have no baseDefinition.
    ("sdf-4", "StructureDefinition-Definition.json"),
    ("sdf-4", "StructureDefinition-Event.json"),
    ("sdf-4", "StructureDefinition-FiveWs.json"),
    ("sdf-4", "StructureDefinition-Request.json"),
];

#[test]
fn r4_examples_keep_the_base_invariants() {
    let Some(dir) = std::env::var_os("CHARAKA_R4_EXAMPLES") else {
        if std::env::var_os("CI").is_some() {
            panic!("CHARAKA_R4_EXAMPLES is not set: the invariant check must run in CI");
        }
        println!("R4 invariants on the examples NOT RUN: set CHARAKA_R4_EXAMPLES");
        return;
    };
    let dir = PathBuf::from(dir);
    let mut skipped: Vec<_> = invariants::table().skipped.keys().collect();
    skipped.sort();
    println!(
        "{} constraints evaluated; skipped: {skipped:?}",
        invariants::table().len()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".json") && !n.starts_with("Bundle-") && n != "package.json"
        })
        .collect();
    files.sort();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked = 0usize;
    let mut times: Vec<f64> = Vec::new();
    for path in &files {
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()) else {
            continue;
        };
        if v.get("resourceType").is_none() {
            continue;
        }
        let start = Instant::now();
        let issues = invariants::check(&v);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        checked += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for i in issues
            .iter()
            .filter(|i| matches!(i.severity, Severity::Error))
        {
            let key = i.diagnostics.split(':').next().unwrap_or("").to_string();
            by_key.entry(key).or_default().push(format!(
                "{name} at {}",
                i.expression.as_deref().unwrap_or("")
            ));
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{checked} examples: {:.3} ms per example on average, median {:.3} ms, 90th percentile {:.3} ms, max {:.1} ms",
        times.iter().sum::<f64>() / checked.max(1) as f64,
        at(0.5),
        at(0.9),
        at(1.0)
    );
    let mut unexpected = Vec::new();
    for (key, hits) in &by_key {
        println!("{key}: {} errors, e.g. {}", hits.len(), hits[0]);
        for h in hits {
            let file = h.split(" at ").next().unwrap();
            if !KNOWN
                .iter()
                .any(|(k, f)| k == key && (*f == "*" || *f == file))
            {
                unexpected.push(format!("{key} on {h}"));
            }
        }
    }
    assert!(checked > 2000, "only {checked} examples read");
    assert!(
        unexpected.is_empty(),
        "{} unexpected errors: {:#?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(40)]
    );
}

/// The official examples that declare an R4 core profile in `meta.profile`
/// (blood pressure, BMI, heart rate, ...) conform to it.
#[test]
fn r4_examples_conform_to_their_core_profiles() {
    let Some(dir) = std::env::var_os("CHARAKA_R4_EXAMPLES") else {
        if std::env::var_os("CI").is_some() {
            panic!("CHARAKA_R4_EXAMPLES is not set: the profile check must run in CI");
        }
        println!("R4 core profiles on the examples NOT RUN: set CHARAKA_R4_EXAMPLES");
        return;
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(PathBuf::from(dir))
        .expect("readable")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.starts_with("Bundle-") {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(entry.path()).unwrap()) else {
            continue;
        };
        let declared: Vec<String> = v
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        for url in declared {
            let Some(p) = charaka::fhir::profile::shipped(&url, None) else {
                continue;
            };
            if p.resource_type != v["resourceType"] {
                continue;
            }
            checked += 1;
            for i in p.validate(&v).issues {
                if matches!(i.severity, Severity::Error) {
                    failures.push(format!("{name} against {url}: {}", i.diagnostics));
                }
            }
        }
    }
    println!("{checked} examples checked against the core profiles they declare");
    assert!(
        checked >= 10,
        "only {checked} examples declare a shipped profile"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
