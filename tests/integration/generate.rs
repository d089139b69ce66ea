//! `charaka generate`: the generated Bundles load into a real server through
//! `charaka import` and over HTTP, their references resolve, and loading
//! them again duplicates nothing.

use std::collections::HashSet;

use charaka::generate::{run, Options};
use charaka::service::import::{collect_files, ImportStats};
use serde_json::Value;

use crate::harness::TestServer;

async fn import_dir(s: &TestServer, dir: &std::path::Path) -> ImportStats {
    let mut stats = ImportStats::default();
    for f in collect_files(&[dir.to_path_buf()]).unwrap() {
        s.fhir()
            .import_file(&f, &mut stats, &mut |_, _| {})
            .await
            .unwrap();
    }
    stats
}

/// Distinct ids of a type, from its history.
async fn ids_of(s: &TestServer, rtype: &str) -> HashSet<String> {
    let history = s.get(&format!("{rtype}/_history?_count=1000")).await.json();
    history["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

async fn generated_data_loads_and_reloads(s: &TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&Options {
        patients: 4,
        out: dir.path().to_path_buf(),
        seed: 11,
        per_bundle: 2,
        resources_per_patient: 60,
    })
    .unwrap();

    let stats = import_dir(s, dir.path()).await;
    assert!(stats.failures.is_empty(), "{:?}", stats.failures);
    assert_eq!(stats.total(), summary.total());
    assert_eq!(stats.written["Patient"], 4);

    // References resolve: an Observation's subject, encounter and performer.
    let bundle: Value = serde_json::from_slice(&std::fs::read(&summary.files[1]).unwrap()).unwrap();
    let obs = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Observation")
        .expect("an Observation");
    let stored = s
        .get(&format!("Observation/{}", obs["id"].as_str().unwrap()))
        .await
        .json();
    for path in ["subject", "encounter"] {
        let target = stored[path]["reference"].as_str().unwrap();
        assert_eq!(s.get(target).await.status, 200, "{path} → {target}");
    }
    let performer = stored["performer"][0]["reference"].as_str().unwrap();
    assert!(performer.starts_with("Practitioner/"));
    assert_eq!(s.get(performer).await.status, 200);
    let encounter = s
        .get(stored["encounter"]["reference"].as_str().unwrap())
        .await
        .json();
    let provider = encounter["serviceProvider"]["reference"].as_str().unwrap();
    assert_eq!(s.get(provider).await.status, 200);

    // Loading again updates (version 2) and duplicates nothing.
    let practitioners = ids_of(s, "Practitioner").await;
    let organizations = ids_of(s, "Organization").await;
    let patients = ids_of(s, "Patient").await;
    assert_eq!(
        practitioners.len() as u64,
        summary.resources["Practitioner"]
    );
    let again = import_dir(s, dir.path()).await;
    assert!(again.failures.is_empty(), "{:?}", again.failures);
    assert_eq!(ids_of(s, "Practitioner").await, practitioners);
    assert_eq!(ids_of(s, "Organization").await, organizations);
    assert_eq!(ids_of(s, "Patient").await, patients);
    assert_eq!(s.get(performer).await.json()["meta"]["versionId"], "2");

    // The same files load over HTTP as transactions.
    let resp = s.post("", &bundle).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let entries = resp.json()["entry"].as_array().unwrap().len();
    assert_eq!(entries, bundle["entry"].as_array().unwrap().len());
    assert_eq!(ids_of(s, "Patient").await, patients);
}

crate::on_both_databases!(generated_data_loads_and_reloads);
