//! $validate, $meta, $meta-add and $meta-delete.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

fn issues(oo: &Value) -> Vec<(String, String)> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap().to_string(),
                i["expression"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn validate_reports_problems_without_storing(s: &TestServer) {
    let good = json!({"resourceType": "Patient", "birthDate": "2000-01-01"});
    let r = s.post("Patient/$validate", &good).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Information first; warnings (dom-6: no narrative) may follow.
    let found = issues(&r.json());
    assert_eq!(found[0], ("information".to_string(), String::new()));
    assert!(found.iter().all(|(sev, _)| sev != "error"), "{found:?}");

    let bad = json!({"resourceType": "Patient", "birthDate": "2000-13-01", "foo": 1});
    let r = s.post("Patient/$validate", &bad).await;
    assert_eq!(r.status, 200, "validation was performed: {}", r.text);
    let found = issues(&r.json());
    assert!(
        found.contains(&("error".to_string(), "Patient.birthDate".to_string())),
        "{found:?}"
    );
    assert!(
        found.contains(&("error".to_string(), "Patient.foo".to_string())),
        "{found:?}"
    );

    // Parameters form with mode=update on an instance.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", "id": "other"}},
        {"name": "mode", "valueCode": "update"}
    ]});
    let r = s.post("Patient/p1/$validate", &params).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(issues(&r.json()).contains(&("error".to_string(), "Patient.id".to_string())));
    // mode=delete of something that does not exist.
    let del = json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]});
    let r = s.post("Patient/nobody/$validate", &del).await;
    assert_eq!(r.json()["issue"][0]["code"], "not-found");
    s.post(
        "Patient/$validate",
        &json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "x"}]}),
    )
    .await
    .outcome(400);
    assert!(
        s.get("Patient/_history")
            .await
            .json()
            .get("entry")
            .is_none(),
        "$validate stores nothing"
    );
    s.post("Patient/$nope", &good).await.outcome(404);
}

async fn meta_operations_change_tags_and_profiles(s: &TestServer) {
    let p = s.create(&json!({"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "a"}]}})).await;
    let id = p["id"].as_str().unwrap();
    let r = s.get(&format!("Patient/{id}/$meta")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["parameter"][0]["valueMeta"]["tag"][0]["code"], "a");

    let add = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "urn:t", "code": "a"}, {"system": "urn:t", "code": "b"}],
        "profile": ["http://example.org/StructureDefinition/p"]
    }}]});
    let r = s
        .json(Method::POST, &format!("Patient/{id}/$meta-add"), &add, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let meta = &r.json()["parameter"][0]["valueMeta"];
    assert_eq!(
        meta["tag"].as_array().unwrap().len(),
        2,
        "no duplicate tags"
    );
    assert_eq!(meta["versionId"], "2");
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(
        current["meta"]["profile"][0],
        "http://example.org/StructureDefinition/p"
    );

    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "urn:t", "code": "a"}], "profile": ["http://example.org/StructureDefinition/p"]
    }}]});
    let r = s
        .json(
            Method::POST,
            &format!("Patient/{id}/$meta-delete"),
            &delete,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(
        current["meta"]["tag"],
        json!([{"system": "urn:t", "code": "b"}])
    );
    assert!(current["meta"].get("profile").is_none());

    s.json(
        Method::POST,
        &format!("Patient/{id}/$meta-add"),
        &json!({"resourceType": "Parameters"}),
        &[],
    )
    .await
    .outcome(400);
    s.get("Patient/unknown/$meta").await.outcome(404);
    s.get(&format!("Patient/{id}/$meta-add")).await.outcome(405);
    s.get(&format!("Patient/{id}/$everything-else"))
        .await
        .outcome(404);
}

const CONF: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// R4 resource.html#tag-updates: an update merges the stored tags and
/// security labels with the body's; `$meta-delete` removes them.
async fn update_keeps_tags_and_security_labels(s: &TestServer) {
    let p = s
        .create(&json!({"resourceType": "Patient", "meta": {
            "security": [{"system": CONF, "code": "R"}],
            "tag": [{"system": "urn:t", "code": "a"}]},
            "gender": "female"}))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    let restricted = format!("Patient?_security={CONF}|R&_id={id}");

    // PUT without meta: the label and the tag stay, and stay searchable.
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "gender": "male"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(
        body["meta"]["security"],
        json!([{"system": CONF, "code": "R"}])
    );
    assert_eq!(
        body["meta"]["tag"],
        json!([{"system": "urn:t", "code": "a"}])
    );
    assert_eq!(body["gender"], "male");
    assert_eq!(search_ids(s, &restricted).await, vec![id.clone()]);
    assert_eq!(
        search_ids(s, &format!("Patient?_tag=urn:t|a&_id={id}")).await,
        vec![id.clone()]
    );

    // Another label and a profile: merged with the stored label.
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "meta": {
                "security": [{"system": CONF, "code": "V"}],
                "profile": ["http://example.org/StructureDefinition/p"]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let meta = r.json()["meta"].clone();
    assert_eq!(
        meta["security"],
        json!([{"system": CONF, "code": "V"}, {"system": CONF, "code": "R"}])
    );
    assert_eq!(
        meta["profile"][0],
        "http://example.org/StructureDefinition/p"
    );
    // Profiles are replaced: a PUT without one drops it.
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let meta = r.json()["meta"].clone();
    assert!(meta.get("profile").is_none(), "{meta}");
    assert_eq!(meta["security"].as_array().unwrap().len(), 2, "{meta}");

    // $meta-delete removes R; a later PUT does not bring it back.
    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "security": [{"system": CONF, "code": "R"}], "tag": [{"system": "urn:t", "code": "a"}]
    }}]});
    let r = s
        .json(
            Method::POST,
            &format!("Patient/{id}/$meta-delete"),
            &delete,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let meta = r.json()["meta"].clone();
    assert_eq!(meta["security"], json!([{"system": CONF, "code": "V"}]));
    assert!(meta.get("tag").is_none(), "{meta}");
    assert!(search_ids(s, &restricted).await.is_empty());

    // A transaction's update and a conditional update keep them too.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {"resourceType": "Patient", "id": id, "gender": "other"},
        "request": {"method": "PUT", "url": format!("Patient/{id}")}}]});
    let r = s.post("", &bundle).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(current["gender"], "other");
    assert_eq!(
        current["meta"]["security"],
        json!([{"system": CONF, "code": "V"}])
    );
    let r = s
        .put(
            &format!("Patient?_id={id}"),
            &json!({"resourceType": "Patient", "gender": "unknown"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(current["gender"], "unknown");
    assert_eq!(
        current["meta"]["security"],
        json!([{"system": CONF, "code": "V"}])
    );
    assert_eq!(
        search_ids(s, &format!("Patient?_security={CONF}|V&_id={id}")).await,
        vec![id.clone()]
    );

    // Deleted, then created again by a PUT: nothing is carried over.
    assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 200);
    let r = s
        .put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json()["meta"].get("security").is_none(), "{}", r.text);
}

/// Ids found by a search (first page).
async fn search_ids(s: &TestServer, query: &str) -> Vec<String> {
    let r = s.get(query).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.json()["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn reindex_rebuilds_lost_index_rows(s: &TestServer) {
    let a = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Reindexova"}]}))
        .await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(
        search_ids(s, "Patient?name=reindexova").await,
        vec![id.clone()]
    );
    // Wipe every index row behind the server's back.
    let store = &s.fhir().store;
    let mut tx = store.begin().await.unwrap();
    let live = tx.live_batch(1, None, 0, 10_000).await.unwrap();
    for r in &live {
        tx.replace_index(1, r.rid, &charaka::store::IndexRows::default())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert!(search_ids(s, "Patient?name=reindexova").await.is_empty());

    let r = s
        .post("$reindex", &json!({"resourceType": "Parameters"}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Poll until the job reports completion.
    let mut status = String::new();
    for _ in 0..200 {
        let p = s.get("$reindex").await.json();
        let get = |name: &str| {
            p["parameter"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .cloned()
                .unwrap_or(Value::Null)
        };
        status = get("status")["valueCode"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status == "completed" {
            // Every resource wiped, plus the audit records written since.
            let processed = get("processed")["valueInteger"].as_u64().unwrap();
            assert!(
                processed >= live.len() as u64,
                "{processed} < {}",
                live.len()
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "completed");
    assert_eq!(search_ids(s, "Patient?name=reindexova").await, vec![id]);
    let ready = s.get("../health/ready").await;
    assert_eq!(ready.json()["searchIndex"], "current", "{}", ready.text);
}

crate::on_both_databases!(
    validate_reports_problems_without_storing,
    meta_operations_change_tags_and_profiles,
    update_keeps_tags_and_security_labels,
    reindex_rebuilds_lost_index_rows
);
