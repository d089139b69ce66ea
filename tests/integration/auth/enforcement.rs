//! Scopes enforced on every interaction: `patient/` tokens confined to
//! their patient's compartment (reads 404 outside, searches and includes
//! filtered, writes refused), v2 constraints, permissions per interaction,
//! transactions and batches entry by entry.

use reqwest::Method;
use serde_json::{json, Value};

use super::{send_as, token_for};
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(
    patient_scopes_confine_reads_and_searches,
    patient_scopes_confine_writes,
    constraints_narrow_searches_and_reads,
    permissions_per_interaction,
    transactions_and_batches_are_checked_per_entry,
);

/// Two patients with an Observation each, a Practitioner, and a lab
/// Observation for the first.
async fn seed(s: &TestServer) {
    for (id, name) in [("p1", "Alpha"), ("p2", "Beta")] {
        let r = s
            .put(
                &format!("Patient/{id}"),
                &json!({"resourceType": "Patient", "id": id, "name": [{"family": name}],
                        "generalPractitioner": [{"reference": "Practitioner/doc"}]}),
            )
            .await;
        assert!(r.status < 300, "{}", r.text);
    }
    s.put(
        "Practitioner/doc",
        &json!({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Doc"}]}),
    )
    .await;
    for (id, patient, category) in [
        ("o1", "p1", "vital-signs"),
        ("o2", "p2", "vital-signs"),
        ("o3", "p1", "laboratory"),
    ] {
        let r = s
            .put(
                &format!("Observation/{id}"),
                &json!({"resourceType": "Observation", "id": id, "status": "final",
                        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
                        "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}}),
            )
            .await;
        assert!(r.status < 300, "{}", r.text);
    }
}

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    let mut v: Vec<String> = bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn patient_scopes_confine_reads_and_searches(s: &TestServer) {
    seed(s).await;
    let t = token_for(s, "patient/*.rs", Some("p1"), "patient");
    let get = |path: &'static str| send_as(s, Some(&t), Method::GET, path, None);

    assert_eq!(get("Patient/p1").await.status, 200);
    assert_eq!(get("Observation/o1").await.status, 200);
    // Another patient's data: 404, as if it did not exist.
    get("Patient/p2").await.outcome(404);
    get("Observation/o2").await.outcome(404);
    get("Observation/o2/_history/1").await.outcome(404);
    get("Observation/o2/_history").await.outcome(404);
    // Outside the compartment: readable.
    assert_eq!(get("Practitioner/doc").await.status, 200);

    let all = get("Observation").await;
    assert_eq!(
        ids(&all.json(), "match"),
        vec!["Observation/o1", "Observation/o3"]
    );
    let patients = get("Patient").await;
    assert_eq!(ids(&patients.json(), "match"), vec!["Patient/p1"]);
    // Compartment search of the other patient: nothing.
    let other = get("Patient/p2/Observation").await;
    assert_eq!(ids(&other.json(), "match"), Vec::<String>::new());
    // Includes never leak: o1's subject is p1, and revincluding from p1
    // gives only p1's observations.
    let inc = get("Observation?_include=Observation:subject").await.json();
    assert_eq!(ids(&inc, "include"), vec!["Patient/p1"]);
    let rev = get("Patient?_revinclude=Observation:subject&_include=Patient:general-practitioner")
        .await
        .json();
    assert_eq!(
        ids(&rev, "include"),
        vec!["Observation/o1", "Observation/o3", "Practitioner/doc"]
    );
    // A system search without _type sees only reachable resources.
    let system = get("?_lastUpdated=gt2000").await.json();
    let found = ids(&system, "match");
    assert!(found.contains(&"Observation/o1".to_string()), "{found:?}");
    assert!(
        !found.iter().any(|f| f.ends_with("p2") || f.ends_with("o2")),
        "{found:?}"
    );

    // Type and system history need unlimited access.
    get("Observation/_history").await.outcome(403);
    get("_history").await.outcome(403);

    // A patient scope without a patient in the token reaches nothing.
    let t = token_for(s, "patient/*.rs", None, "practitioner");
    send_as(s, Some(&t), Method::GET, "Observation/o1", None)
        .await
        .outcome(403);
}

async fn patient_scopes_confine_writes(s: &TestServer) {
    seed(s).await;
    let t = token_for(s, "patient/*.cruds", Some("p1"), "patient");
    let obs = |patient: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "y"},
               "subject": {"reference": format!("Patient/{patient}")}})
    };
    let mine = send_as(s, Some(&t), Method::POST, "Observation", Some(&obs("p1"))).await;
    assert_eq!(mine.status, 201, "{}", mine.text);
    let theirs = send_as(s, Some(&t), Method::POST, "Observation", Some(&obs("p2"))).await;
    theirs.outcome(403);
    // Updating p2's observation, or moving p1's to p2: refused.
    let mut o2 = obs("p2");
    o2["id"] = json!("o2");
    send_as(s, Some(&t), Method::PUT, "Observation/o2", Some(&o2))
        .await
        .outcome(403);
    let mut moved = obs("p2");
    moved["id"] = json!("o1");
    send_as(s, Some(&t), Method::PUT, "Observation/o1", Some(&moved))
        .await
        .outcome(403);
    // A JSON Patch that would move it: refused, and nothing changed.
    let patch = json!([{"op": "replace", "path": "/subject/reference", "value": "Patient/p2"}]);
    let r = s
        .anonymous
        .patch(s.url("Observation/o1"))
        .bearer_auth(&t)
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&patch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.get("Observation/o1").await.json()["subject"]["reference"],
        "Patient/p1"
    );
    send_as(s, Some(&t), Method::DELETE, "Observation/o2", None)
        .await
        .outcome(403);
    assert_eq!(s.get("Observation/o2").await.status, 200, "o2 must survive");
    // Conditional writes need unlimited access.
    let r = send_as(s, Some(&t), Method::DELETE, "Observation?code:text=x", None).await;
    r.outcome(403);
    assert_eq!(
        send_as(s, Some(&t), Method::DELETE, "Observation/o1", None)
            .await
            .status,
        200
    );
}

async fn constraints_narrow_searches_and_reads(s: &TestServer) {
    seed(s).await;
    let t = token_for(
        s,
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        Some("p1"),
        "patient",
    );
    let r = send_as(s, Some(&t), Method::GET, "Observation", None).await;
    assert_eq!(ids(&r.json(), "match"), vec!["Observation/o3"]);
    assert_eq!(
        send_as(s, Some(&t), Method::GET, "Observation/o3", None)
            .await
            .status,
        200
    );
    send_as(s, Some(&t), Method::GET, "Observation/o1", None)
        .await
        .outcome(404);
    // No write permission comes with it.
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "z"},
                     "subject": {"reference": "Patient/p1"}});
    send_as(s, Some(&t), Method::POST, "Observation", Some(&obs))
        .await
        .outcome(403);
    // Other types: nothing.
    send_as(s, Some(&t), Method::GET, "Patient/p1", None)
        .await
        .outcome(403);
}

async fn permissions_per_interaction(s: &TestServer) {
    seed(s).await;
    let read_only = token_for(s, "user/Patient.r", None, "practitioner");
    assert_eq!(
        send_as(s, Some(&read_only), Method::GET, "Patient/p1", None)
            .await
            .status,
        200
    );
    let oo = send_as(s, Some(&read_only), Method::GET, "Patient", None)
        .await
        .outcome(403);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("search of Patient"),
        "{oo}"
    );
    let p = json!({"resourceType": "Patient", "id": "p1"});
    send_as(s, Some(&read_only), Method::PUT, "Patient/p1", Some(&p))
        .await
        .outcome(403);
    send_as(s, Some(&read_only), Method::DELETE, "Patient/p1", None)
        .await
        .outcome(403);
    send_as(s, Some(&read_only), Method::GET, "Observation/o1", None)
        .await
        .outcome(403);
    // v1 write: create, update, delete but not read.
    let writer = token_for(s, "user/Patient.write", None, "practitioner");
    assert_eq!(
        send_as(s, Some(&writer), Method::PUT, "Patient/p1", Some(&p))
            .await
            .status,
        200
    );
    send_as(s, Some(&writer), Method::GET, "Patient/p1", None)
        .await
        .outcome(403);
    // Administration.
    send_as(s, Some(&writer), Method::GET, "$reindex", None)
        .await
        .outcome(403);
    let admin = token_for(s, "system/*.cruds", None, "practitioner");
    assert_eq!(
        send_as(s, Some(&admin), Method::GET, "$reindex", None)
            .await
            .status,
        200
    );
}

async fn transactions_and_batches_are_checked_per_entry(s: &TestServer) {
    seed(s).await;
    let t = token_for(s, "patient/*.cruds", Some("p1"), "patient");
    let entry = |patient: &str| {
        json!({"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                            "subject": {"reference": format!("Patient/{patient}")}},
               "request": {"method": "POST", "url": "Observation"}})
    };
    let before = s.get("Observation?_summary=count").await.json()["total"].clone();
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry("p1"), entry("p2")]});
    let r = send_as(s, Some(&t), Method::POST, "", Some(&tx)).await;
    let oo = r.outcome(403);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry[1]"),
        "{oo}"
    );
    assert_eq!(
        s.get("Observation?_summary=count").await.json()["total"],
        before,
        "nothing stored"
    );

    let batch =
        json!({"resourceType": "Bundle", "type": "batch", "entry": [entry("p1"), entry("p2")]});
    let r = send_as(s, Some(&t), Method::POST, "", Some(&batch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert!(out["entry"][0]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("201"));
    assert!(out["entry"][1]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("403"));
}
