//! read, vread, create, update, delete and patch, with their headers.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "active": true,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25"
    })
}

/// The resource without server-set meta fields.
fn content(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            v.as_object_mut().unwrap().remove("meta");
        }
    }
    v.as_object_mut().unwrap().remove("id");
    v
}

async fn create_sets_id_meta_and_headers(s: &TestServer) {
    let mut body = patient();
    body["id"] = json!("client-chosen");
    body["meta"] = json!({"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z"});
    let r = s.post("Patient", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    let id = created["id"].as_str().unwrap();
    assert_ne!(id, "client-chosen", "create ignores a client id");
    assert_eq!(created["meta"]["versionId"], "1");
    assert!(created["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/Patient/{id}/_history/1", s.base)
    );
    assert_eq!(r.header("etag").unwrap(), "W/\"1\"");
    assert!(r.header("last-modified").is_some());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/fhir+json"));
    assert_eq!(content(created.clone()), content(patient()));

    let read = s.get(&format!("Patient/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), created, "read serves what create returned");
    assert_eq!(read.header("etag").unwrap(), "W/\"1\"");
    assert_eq!(read.header("last-modified"), r.header("last-modified"));
}

async fn read_unknown_is_404(s: &TestServer) {
    s.get("Patient/does-not-exist").await.outcome(404);
    s.get("Patient/does-not-exist/_history/1")
        .await
        .outcome(404);
    s.get("Observation/x").await.outcome(404);
}

async fn update_makes_versions_and_vread_reads_them(s: &TestServer) {
    let created = s.create(&patient()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut v2 = created.clone();
    v2["birthDate"] = json!("1974-12-26");
    let r = s.put(&format!("Patient/{id}"), &v2).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("etag").unwrap(), "W/\"2\"");
    assert_eq!(r.json()["meta"]["versionId"], "2");

    let one = s.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["birthDate"], "1974-12-25");
    assert_eq!(one.header("etag").unwrap(), "W/\"1\"");
    let two = s.get(&format!("Patient/{id}/_history/2")).await;
    assert_eq!(two.json()["birthDate"], "1974-12-26");
    s.get(&format!("Patient/{id}/_history/3"))
        .await
        .outcome(404);
    s.get(&format!("Patient/{id}/_history/zero"))
        .await
        .outcome(404);
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(current, two.json());
}

async fn update_as_create_with_client_id(s: &TestServer) {
    let mut body = patient();
    body["id"] = json!("mrn-12345");
    let r = s.put("Patient/mrn-12345", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/Patient/mrn-12345/_history/1", s.base)
    );
    let r = s.put("Patient/mrn-12345", &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["meta"]["versionId"], "2");
}

async fn delete_is_logical(s: &TestServer) {
    let created = s.create(&patient()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let r = s.delete(&format!("Patient/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    assert_eq!(r.header("etag").unwrap(), "W/\"2\"");

    let gone = s.get(&format!("Patient/{id}")).await;
    gone.outcome(410);
    assert_eq!(gone.header("etag").unwrap(), "W/\"2\"");
    // Earlier versions stay readable; the deletion itself is 410.
    assert_eq!(s.get(&format!("Patient/{id}/_history/1")).await.status, 200);
    s.get(&format!("Patient/{id}/_history/2"))
        .await
        .outcome(410);

    // Deleting again, or deleting what never existed, succeeds and writes nothing.
    assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 200);
    assert_eq!(s.delete("Patient/never-existed").await.status, 200);
    let minimal = s
        .send(
            Method::DELETE,
            "Patient/never-existed",
            None,
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(minimal.status, 204);
    let history = s.get(&format!("Patient/{id}/_history")).await.json();
    assert_eq!(history["entry"].as_array().unwrap().len(), 2);

    // An update brings it back as a new version.
    let r = s.put(&format!("Patient/{id}"), &created).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["meta"]["versionId"], "3");
}

async fn if_match_guards_updates_and_deletes(s: &TestServer) {
    let created = s.create(&patient()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("Patient/{id}");
    let r = s
        .json(Method::PUT, &path, &created, &[("if-match", "W/\"2\"")])
        .await;
    r.outcome(412);
    let r = s
        .json(Method::PUT, &path, &created, &[("if-match", "W/\"1\"")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The same precondition now fails: version 1 is no longer current.
    s.json(Method::PUT, &path, &created, &[("if-match", "W/\"1\"")])
        .await
        .outcome(412);
    s.send(Method::DELETE, &path, None, &[("if-match", "W/\"1\"")])
        .await
        .outcome(412);
    assert_eq!(s.get(&path).await.json()["meta"]["versionId"], "2");
    let r = s
        .send(Method::DELETE, &path, None, &[("if-match", "W/\"2\"")])
        .await;
    assert_eq!(r.status, 200);
    // If-Match on a resource that does not exist.
    let mut other = patient();
    other["id"] = json!("nope");
    s.json(
        Method::PUT,
        "Patient/nope",
        &other,
        &[("if-match", "W/\"1\"")],
    )
    .await
    .outcome(412);
    s.get("Patient/nope").await.outcome(404);
}

async fn conditional_read_answers_304(s: &TestServer) {
    let created = s.create(&patient()).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    let r = s.get_with(&path, &[("if-none-match", "W/\"1\"")]).await;
    assert_eq!(r.status, 304);
    assert!(r.text.is_empty());
    assert_eq!(r.header("etag").unwrap(), "W/\"1\"");
    assert_eq!(
        s.get_with(&path, &[("if-none-match", "W/\"7\"")])
            .await
            .status,
        200
    );
    assert_eq!(
        s.get_with(
            &path,
            &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")]
        )
        .await
        .status,
        304
    );
    assert_eq!(
        s.get_with(
            &path,
            &[("if-modified-since", "Thu, 01 Jan 2015 00:00:00 GMT")]
        )
        .await
        .status,
        200
    );
    let head = s.send(Method::HEAD, &path, None, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag").unwrap(), "W/\"1\"");
}

async fn prefer_shapes_write_responses(s: &TestServer) {
    let r = s
        .json(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=minimal")],
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.text.is_empty(), "{}", r.text);
    assert!(r.header("location").is_some());
    assert_eq!(r.header("etag").unwrap(), "W/\"1\"");
    let r = s
        .json(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=OperationOutcome")],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    assert_eq!(r.json()["issue"][0]["severity"], "information");
    let r = s
        .json(
            Method::POST,
            "Patient",
            &patient(),
            &[("prefer", "return=representation")],
        )
        .await;
    assert_eq!(r.json()["resourceType"], "Patient");
}

async fn json_patch_applies_and_validates(s: &TestServer) {
    let created = s.create(&patient()).await;
    let path = format!("Patient/{}", created["id"].as_str().unwrap());
    let patch = |ops: Value| serde_json::to_vec(&ops).unwrap();
    let ct = ("content-type", "application/json-patch+json");

    let r = s
        .send(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{"op": "replace", "path": "/birthDate", "value": "1980-01-01"}]),
            )),
            &[ct],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["birthDate"], "1980-01-01");
    assert_eq!(r.json()["meta"]["versionId"], "2");
    assert_eq!(r.json()["name"], created["name"]);

    // If-Match on patch.
    let r = s
        .send(
            Method::PATCH,
            &path,
            Some(patch(json!([{"op": "remove", "path": "/active"}]))),
            &[ct, ("if-match", "W/\"1\"")],
        )
        .await;
    r.outcome(412);

    // Failing test op, invalid result, removed id: 422 and nothing written.
    s.send(
        Method::PATCH,
        &path,
        Some(patch(
            json!([{"op": "test", "path": "/gender", "value": "female"}]),
        )),
        &[ct],
    )
    .await
    .outcome(422);
    let oo = s
        .send(
            Method::PATCH,
            &path,
            Some(patch(
                json!([{"op": "replace", "path": "/birthDate", "value": "1980-13-01"}]),
            )),
            &[ct],
        )
        .await
        .outcome(422);
    assert_eq!(oo["issue"][0]["expression"][0], "Patient.birthDate");
    s.send(
        Method::PATCH,
        &path,
        Some(patch(json!([{"op": "remove", "path": "/id"}]))),
        &[ct],
    )
    .await
    .outcome(422);
    s.send(Method::PATCH, &path, Some(b"not json".to_vec()), &[ct])
        .await
        .outcome(400);
    assert_eq!(s.get(&path).await.json()["meta"]["versionId"], "2");

    s.send(
        Method::PATCH,
        "Patient/unknown",
        Some(patch(json!([]))),
        &[ct],
    )
    .await
    .outcome(404);
}

crate::on_both_databases!(
    create_sets_id_meta_and_headers,
    read_unknown_is_404,
    update_makes_versions_and_vread_reads_them,
    update_as_create_with_client_id,
    delete_is_logical,
    if_match_guards_updates_and_deletes,
    conditional_read_answers_304,
    prefer_shapes_write_responses,
    json_patch_applies_and_validates,
);
