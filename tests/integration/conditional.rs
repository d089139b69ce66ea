//! Conditional create, update, patch and delete on `_id` and `identifier`,
//! including the race of concurrent conditional creates.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

fn patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example/mrn", "value": mrn}],
        "name": [{"family": "Rao", "given": ["Asha"]}]
    })
}

async fn conditional_create_matches_identifier(s: &TestServer) {
    let criteria = [("if-none-exist", "identifier=http://hospital.example/mrn|A1")];
    let first = s
        .json(Method::POST, "Patient", &patient("A1"), &criteria)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json()["id"].clone();
    let second = s
        .json(Method::POST, "Patient", &patient("A1"), &criteria)
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.json()["id"], id);
    assert_eq!(
        second.json()["meta"]["versionId"],
        "1",
        "nothing new was written"
    );
    // Code without system, and the Type? prefix, match too.
    let third = s
        .json(
            Method::POST,
            "Patient",
            &patient("A1"),
            &[("if-none-exist", "Patient?identifier=A1")],
        )
        .await;
    assert_eq!(third.status, 200);
    // Another value creates.
    let other = s
        .json(
            Method::POST,
            "Patient",
            &patient("A2"),
            &[("if-none-exist", "identifier=http://hospital.example/mrn|A2")],
        )
        .await;
    assert_eq!(other.status, 201);
    // Two matches: 412.
    s.create(&patient("DUP")).await;
    s.create(&patient("DUP")).await;
    s.json(
        Method::POST,
        "Patient",
        &patient("DUP"),
        &[("if-none-exist", "identifier=DUP")],
    )
    .await
    .outcome(412);
    // Unknown search parameters: 400, nothing created.
    s.json(
        Method::POST,
        "Patient",
        &patient("X"),
        &[("if-none-exist", "nonsense=Rao")],
    )
    .await
    .outcome(400);
    // _id criteria.
    let by_id = s
        .json(
            Method::POST,
            "Patient",
            &patient("A9"),
            &[("if-none-exist", &format!("_id={}", id.as_str().unwrap()))],
        )
        .await;
    assert_eq!(by_id.status, 200);
    let history = s.get("Patient/_history").await.json();
    assert_eq!(history["entry"].as_array().unwrap().len(), 4);
}

async fn conditional_create_is_race_free(s: &TestServer) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = s.client.clone();
        let url = s.url("Patient");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/fhir+json")
                .header(
                    "if-none-exist",
                    "identifier=http://hospital.example/mrn|RACE",
                )
                .body(serde_json::to_vec(&patient("RACE")).unwrap())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert!(status == 201 || status == 200, "status {status}");
        created += usize::from(status == 201);
        ids.insert(id);
    }
    assert_eq!(created, 1, "exactly one create");
    assert_eq!(ids.len(), 1, "every answer names the same resource");
}

async fn conditional_update_creates_or_updates(s: &TestServer) {
    let path = "Patient?identifier=http://hospital.example/mrn|U1";
    let r = s.put(path, &patient("U1")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut changed = patient("U1");
    changed["gender"] = json!("female");
    let r = s.put(path, &changed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["meta"]["versionId"], "2");
    // A body id that contradicts the match is refused.
    changed["id"] = json!("someone-else");
    s.put(path, &changed).await.outcome(400);
    // No match but an id in the body: update as create with that id.
    let mut with_id = patient("U2");
    with_id["id"] = json!("u2");
    let r = s.put("Patient?identifier=U2", &with_id).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["id"], "u2");
    // Multiple matches.
    s.create(&patient("M")).await;
    s.create(&patient("M")).await;
    s.put("Patient?identifier=M", &patient("M"))
        .await
        .outcome(412);
    s.put("Patient?nonsense=Rao", &patient("M"))
        .await
        .outcome(400);
    s.put("Patient", &patient("M")).await.outcome(400);
}

async fn conditional_patch_and_delete(s: &TestServer) {
    let a = s.create(&patient("D1")).await;
    s.create(&patient("D2")).await;
    s.create(&patient("D2")).await;
    let patch =
        serde_json::to_vec(&json!([{"op": "add", "path": "/active", "value": false}])).unwrap();
    let r = s
        .send(
            Method::PATCH,
            "Patient?identifier=D1",
            Some(patch.clone()),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], a["id"]);
    assert_eq!(r.json()["active"], false);
    s.send(
        Method::PATCH,
        "Patient?identifier=D2",
        Some(patch.clone()),
        &[("content-type", "application/json-patch+json")],
    )
    .await
    .outcome(412);
    s.send(
        Method::PATCH,
        "Patient?identifier=NONE",
        Some(patch),
        &[("content-type", "application/json-patch+json")],
    )
    .await
    .outcome(404);

    // Conditional delete removes every match.
    let r = s
        .delete("Patient?identifier=http://hospital.example/mrn|D2")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .starts_with("2 "));
    let r = s.delete("Patient?identifier=D2").await;
    assert!(r.json()["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .starts_with("0 "));
    assert_eq!(
        s.get(&format!("Patient/{}", a["id"].as_str().unwrap()))
            .await
            .status,
        200
    );
    // Deleted resources no longer match.
    let r = s
        .json(
            Method::POST,
            "Patient",
            &patient("D2"),
            &[("if-none-exist", "identifier=D2")],
        )
        .await;
    assert_eq!(r.status, 201);
    s.delete("Patient?nonsense=x").await.outcome(400);
}

crate::on_both_databases!(
    conditional_create_matches_identifier,
    conditional_create_is_race_free,
    conditional_update_creates_or_updates,
    conditional_patch_and_delete,
);
