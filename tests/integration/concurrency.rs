//! Concurrent writers on one resource: versions never repeat or skip, and
//! If-Match prevents lost updates.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::TestServer;

const WRITERS: usize = 50;

async fn parallel_updates_get_distinct_versions(s: &TestServer) {
    let created = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let client = s.client.clone();
        let url = s.url(&format!("Patient/{id}"));
        let mut body = created.clone();
        body["name"] = json!([{"family": format!("Writer{i}")}]);
        tasks.push(tokio::spawn(async move {
            let r = client
                .put(url)
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().await.unwrap();
            v["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        }));
    }
    let mut versions = BTreeSet::new();
    for t in tasks {
        assert!(
            versions.insert(t.await.unwrap()),
            "a version number was given twice"
        );
    }
    assert_eq!(
        versions,
        (2..=WRITERS + 1).collect::<BTreeSet<_>>(),
        "no gaps, no duplicates"
    );
    let history = s
        .get(&format!("Patient/{id}/_history?_count=100"))
        .await
        .json();
    assert_eq!(history["entry"].as_array().unwrap().len(), WRITERS + 1);
}

/// Every writer adds its own identifier with read → PUT If-Match → retry on
/// 412. With If-Match honoured, the final version has all of them.
async fn if_match_prevents_lost_updates(s: &TestServer) {
    let created = s.create(&json!({"resourceType": "Patient"})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let client = s.client.clone();
        let url = s.url(&format!("Patient/{id}"));
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let current: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                let version = current["meta"]["versionId"].as_str().unwrap().to_string();
                let mut next = current.clone();
                let mut ids = next["identifier"].as_array().cloned().unwrap_or_default();
                ids.push(json!({"system": "urn:writer", "value": i.to_string()}));
                next["identifier"] = json!(ids);
                let r = client
                    .put(&url)
                    .header("content-type", "application/fhir+json")
                    .header("if-match", format!("W/\"{version}\""))
                    .body(serde_json::to_vec(&next).unwrap())
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => return conflicts,
                    412 => conflicts += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let last = s.get(&format!("Patient/{id}")).await.json();
    let writers: BTreeSet<String> = last["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(writers.len(), WRITERS, "an update was lost");
    assert_eq!(last["meta"]["versionId"], (WRITERS + 1).to_string());
    // With 50 concurrent writers some must have collided; if none did, the
    // test did not exercise If-Match.
    assert!(
        conflicts > 0,
        "no write conflicted; the test did not test anything"
    );
}

crate::on_both_databases!(
    parallel_updates_get_distinct_versions,
    if_match_prevents_lost_updates
);
