//! `charaka import`: NDJSON, transaction and collection Bundles, through the
//! service layer, with failures named by file and line.

use charaka::service::import::{collect_files, ImportStats};
use serde_json::json;

use crate::harness::TestServer;

async fn import_loads_ndjson_and_bundles(s: &TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = [
        json!({"resourceType": "Patient", "id": "imp-1", "name": [{"family": "Menon"}]})
            .to_string(),
        String::new(),
        json!({"resourceType": "Patient", "name": [{"family": "Das"}]}).to_string(),
        json!({"resourceType": "Patient", "birthDate": "1990-02-30"}).to_string(),
    ]
    .join("\n");
    std::fs::write(dir.path().join("a.ndjson"), ndjson).unwrap();
    let txn = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5a0e4a6c-0000-4000-8000-000000000001", "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:5a0e4a6c-0000-4000-8000-000000000001"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    std::fs::write(dir.path().join("b.json"), txn.to_string()).unwrap();
    let collection = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Organization", "id": "org-1", "name": "Ward 7"}},
        {"resource": {"resourceType": "Practitioner", "name": [{"family": "Pillai"}]}}
    ]});
    std::fs::write(dir.path().join("c.json"), collection.to_string()).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();

    let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(files.len(), 3);
    let mut stats = ImportStats::default();
    for f in &files {
        s.fhir()
            .import_file(f, &mut stats, &mut |_, _| {})
            .await
            .unwrap();
    }
    assert_eq!(stats.total(), 6, "{stats:?}");
    assert_eq!(stats.written["Patient"], 3);
    assert_eq!(stats.failures.len(), 1, "{stats:?}");
    assert!(
        stats.failures[0].0.ends_with("a.ndjson:4"),
        "{:?}",
        stats.failures
    );
    assert!(
        stats.failures[0].1.contains("birthDate"),
        "{:?}",
        stats.failures
    );
    assert_eq!(s.get("Patient/imp-1").await.status, 200);
    assert_eq!(s.get("Organization/org-1").await.status, 200);
    let obs = s.get("Observation/_history").await.json();
    assert_eq!(
        obs["entry"][0]["resource"]["subject"]["reference"],
        "Patient/5a0e4a6c-0000-4000-8000-000000000001"
    );

    // Importing again updates resources that have ids instead of duplicating them.
    let mut again = ImportStats::default();
    s.fhir()
        .import_file(&dir.path().join("a.ndjson"), &mut again, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        s.get("Patient/imp-1").await.json()["meta"]["versionId"],
        "2"
    );
}

crate::on_both_databases!(import_loads_ndjson_and_bundles);

/// `charaka import` into a new database marks its search index as built with
/// this version's parameters, so the server's first start does not rebuild
/// it all again.
#[tokio::test]
async fn import_into_a_new_database_needs_no_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.ndjson");
    std::fs::write(
        &file,
        serde_json::json!({"resourceType": "Patient", "id": "fresh-1"}).to_string(),
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_charaka"))
        .args(["import", "--database-url", &url])
        .arg(&file)
        .env("CHARAKA_ENCRYPTION", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: Vec<(String,)> = sqlx::query_as("SELECT fingerprint FROM search_index_state")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![(charaka::service::reindex::fingerprint(
            charaka::search::registry::registry()
        ),)],
        "the index is marked current"
    );
}
