//! Determinism and shape of the generated data; loading it into a server is
//! tested in tests/integration/generate.rs.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::*;

fn generate(dir: &Path, patients: u64, per_bundle: u64, seed: u64) -> Summary {
    run(&Options {
        patients,
        out: dir.to_path_buf(),
        seed,
        per_bundle,
        resources_per_patient: 180,
    })
    .unwrap()
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = generate(a.path(), 5, 2, 42);
    generate(b.path(), 5, 2, 42);
    generate(c.path(), 5, 2, 43);
    let names: Vec<String> = sa
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "000000-shared.json",
            "000001-patients.json",
            "000002-patients.json",
            "000003-patients.json"
        ]
    );
    for name in &names {
        let x = std::fs::read(a.path().join(name)).unwrap();
        assert_eq!(x, std::fs::read(b.path().join(name)).unwrap(), "{name}");
        assert_ne!(x, std::fs::read(c.path().join(name)).unwrap(), "{name}");
    }
}

#[test]
fn a_patient_does_not_depend_on_how_many_are_generated_or_bundled() {
    let pool = Pool::new(7);
    let alone = patient::generate(7, 3, &pool, 180.0);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), 4, 1, 7);
    generate(b.path(), 6, 4, 7);
    let one = read(&a.path().join("000004-patients.json"));
    let four = read(&b.path().join("000001-patients.json"));
    let resources = |bundle: &Value| -> Vec<Value> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect()
    };
    assert_eq!(resources(&one), alone);
    assert!(resources(&four).ends_with(&alone));
}

#[test]
fn every_resource_is_valid_and_every_reference_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), 30, 10, 1);
    let mut ids = HashSet::new();
    let mut references = Vec::new();
    for file in &summary.files {
        let bundle = read(file);
        let issues = crate::fhir::validate::validate_resource(&bundle);
        assert!(issues.is_empty(), "{}: {issues:?}", file.display());
        for entry in bundle["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            let issues = crate::fhir::validate::validate_resource(r);
            assert!(issues.is_empty(), "{key}: {issues:?}\n{r}");
            assert_eq!(entry["request"]["method"], "PUT");
            assert_eq!(entry["request"]["url"], key.as_str());
            assert_eq!(
                entry["fullUrl"],
                format!("urn:uuid:{}", r["id"].as_str().unwrap())
            );
            assert!(ids.insert(key.clone()), "duplicate {key}");
            collect_references(r, &mut references);
        }
    }
    assert!(references.len() > 1000);
    for reference in references {
        assert!(ids.contains(&reference), "dangling {reference}");
    }
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => collect_references(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_references(i, out)),
        _ => {}
    }
}

#[test]
fn the_data_looks_like_a_clinic() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), 200, 50, 3);
    let per_patient = summary.total() as f64 / 200.0;
    assert!(
        (120.0..260.0).contains(&per_patient),
        "{per_patient} resources per patient"
    );
    for t in [
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Procedure",
        "Immunization",
        "Claim",
        "Coverage",
        "AllergyIntolerance",
        "Practitioner",
        "Organization",
    ] {
        assert!(
            summary.resources.get(t).copied().unwrap_or(0) > 0,
            "no {t}: {:?}",
            summary.resources
        );
    }
    let mut systems: BTreeMap<String, u64> = BTreeMap::new();
    let mut sizes = Vec::new();
    let mut non_ascii_names = 0;
    let mut birth_precisions = HashSet::new();
    for file in summary.files.iter().skip(1) {
        let bundle = read(file);
        let mut size = 0;
        for entry in bundle["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            size += 1;
            match r["resourceType"].as_str().unwrap() {
                "Patient" => {
                    if size > 1 {
                        sizes.push(size - 1);
                    }
                    size = 1;
                    if !r["name"].to_string().is_ascii() {
                        non_ascii_names += 1;
                    }
                    birth_precisions.insert(r["birthDate"].as_str().unwrap().len());
                    assert_eq!(r["identifier"][0]["system"], "urn:charaka:mrn");
                }
                "Condition" => {
                    *systems
                        .entry(r["code"]["coding"][0]["system"].as_str().unwrap().into())
                        .or_default() += 1
                }
                "Observation" => {
                    if let Some(q) = r.get("valueQuantity") {
                        assert_eq!(q["system"], "http://unitsofmeasure.org");
                    }
                    assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
                }
                _ => {}
            }
        }
        sizes.push(size);
    }
    assert_eq!(
        systems.keys().collect::<Vec<_>>(),
        ["http://hl7.org/fhir/sid/icd-10-cm"]
    );
    assert!(non_ascii_names > 10, "{non_ascii_names}");
    assert_eq!(birth_precisions.len(), 3, "{birth_precisions:?}");
    let biggest = sizes.iter().max().unwrap();
    assert!(
        *biggest as f64 > 2.0 * per_patient,
        "sizes vary: {biggest} vs {per_patient}"
    );
}
