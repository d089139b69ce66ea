//! history at instance, type and system level, with paging and filters.

use crate::search::link;
use serde_json::{json, Value};

use crate::harness::TestServer;

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

async fn instance_history_pages_newest_first(s: &TestServer) {
    let mut p = s
        .create(&json!({"resourceType": "Patient", "birthDate": "2000-01-01"}))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    for day in 2..=5 {
        p["birthDate"] = json!(format!("2000-01-0{day}"));
        assert_eq!(s.put(&format!("Patient/{id}"), &p).await.status, 200);
    }
    let first = s.get(&format!("Patient/{id}/_history?_count=2")).await;
    assert_eq!(first.status, 200);
    let bundle = first.json();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "history");
    let page = entries(&bundle);
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["resource"]["meta"]["versionId"], "5");
    assert_eq!(page[1]["resource"]["meta"]["versionId"], "4");
    assert_eq!(page[0]["request"]["method"], "PUT");
    assert_eq!(page[0]["request"]["url"], format!("Patient/{id}"));
    assert_eq!(page[0]["response"]["etag"], "W/\"5\"");
    assert_eq!(page[0]["fullUrl"], format!("{}/Patient/{id}", s.base));
    assert!(link(&bundle, "self").is_some() && link(&bundle, "first").is_some());

    // A write after the first page does not shift the following pages.
    p["birthDate"] = json!("2000-01-09");
    assert_eq!(s.put(&format!("Patient/{id}"), &p).await.status, 200);

    let mut versions = vec![];
    let mut next = link(&bundle, "next");
    while let Some(url) = next {
        let b = s.get(&url).await.json();
        versions.extend(
            entries(&b)
                .iter()
                .map(|e| e["resource"]["meta"]["versionId"].clone()),
        );
        next = link(&b, "next");
    }
    assert_eq!(versions, vec![json!("3"), json!("2"), json!("1")]);
    let oldest = s
        .get(&format!("Patient/{id}/_history?_count=1&_before=999999999"))
        .await;
    assert_eq!(oldest.status, 200);
    // _count=0 gives no entries.
    assert!(entries(
        &s.get(&format!("Patient/{id}/_history?_count=0"))
            .await
            .json()
    )
    .is_empty());
    s.get(&format!("Patient/{id}/_history?_count=abc"))
        .await
        .outcome(400);
}

async fn deletes_show_in_history(s: &TestServer) {
    let p = s.create(&json!({"resourceType": "Patient"})).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 200);
    let bundle = s.get(&format!("Patient/{id}/_history")).await.json();
    let page = entries(&bundle);
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["request"]["method"], "DELETE");
    assert!(page[0].get("resource").is_none());
    assert_eq!(page[0]["response"]["etag"], "W/\"2\"");
    assert_eq!(page[1]["request"]["method"], "POST");
    assert_eq!(page[1]["request"]["url"], "Patient");
    assert_eq!(page[1]["response"]["status"], "201 Created");
}

async fn type_and_system_history(s: &TestServer) {
    let a = s.create(&json!({"resourceType": "Patient"})).await;
    let o = s
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "heart rate"}}))
        .await;
    let b = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await;

    let patients = s.get("Patient/_history").await.json();
    let ids: Vec<String> = entries(&patients)
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![b["id"].as_str().unwrap(), a["id"].as_str().unwrap()]
    );

    let all = s.get("_history").await.json();
    let types: Vec<String> = entries(&all)
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["Patient", "Observation", "Patient"]);
    assert_eq!(entries(&all)[1]["resource"]["id"], o["id"]);
    s.get("Foo/_history").await.outcome(404);
}

async fn since_and_at_filter_versions(s: &TestServer) {
    let mut p = s
        .create(&json!({"resourceType": "Patient", "gender": "male"}))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    let v1_time = p["meta"]["lastUpdated"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    p["gender"] = json!("female");
    let v2 = s.put(&format!("Patient/{id}"), &p).await.json();
    let v2_time = v2["meta"]["lastUpdated"].as_str().unwrap().to_string();

    let since = s
        .get(&format!(
            "Patient/{id}/_history?_since={}",
            urlencode(&v2_time)
        ))
        .await
        .json();
    assert_eq!(entries(&since).len(), 1);
    assert_eq!(entries(&since)[0]["resource"]["meta"]["versionId"], "2");
    let since_all = s
        .get(&format!(
            "Patient/{id}/_history?_since={}",
            urlencode(&v1_time)
        ))
        .await
        .json();
    assert_eq!(entries(&since_all).len(), 2);
    let none = s
        .get(&format!(
            "Patient/{id}/_history?_since=2999-01-01T00:00:00Z"
        ))
        .await
        .json();
    assert!(entries(&none).is_empty());

    // _at: the version current at v1's time is version 1 only.
    let at = s
        .get(&format!(
            "Patient/{id}/_history?_at={}",
            urlencode(&v1_time)
        ))
        .await
        .json();
    let versions: Vec<Value> = entries(&at)
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].clone())
        .collect();
    assert_eq!(versions, vec![json!("1")]);
    // A whole year covers both versions.
    let year = &v1_time[..4];
    let at_year = s
        .get(&format!("Patient/{id}/_history?_at={year}"))
        .await
        .json();
    assert_eq!(entries(&at_year).len(), 2);
    s.get(&format!("Patient/{id}/_history?_since=yesterday"))
        .await
        .outcome(400);
    // The self link keeps the filters.
    assert!(link(&since, "self").unwrap().contains("_since="));
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

crate::on_both_databases!(
    instance_history_pages_newest_first,
    deletes_show_in_history,
    type_and_system_history,
    since_and_at_filter_versions,
);
