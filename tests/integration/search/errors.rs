//! Errors (unknown parameters, malformed values), injection attempts, and
//! the index following writes: updates, deletes, conditional interactions.

use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_names_param, create_id, ids, link, match_ids, search, set};
use crate::harness::TestServer;

fn patient(family: &str, born: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}], "birthDate": born})
}

/// Unknown parameters: ignored by default (and left out of the self link),
/// 400 under `Prefer: handling=strict`.
async fn unknown_parameters(s: &TestServer) {
    let a = create_id(s, patient("Known", "1970-01-01")).await;
    let b = create_id(s, patient("Other", "1980-01-01")).await;

    let bundle = search(s, "Patient?nonsense=1&family=known").await;
    assert_eq!(match_ids(&bundle), vec![a.clone()]);
    let self_link = link(&bundle, "self").expect("self link");
    assert!(!self_link.contains("nonsense"), "{self_link}");
    assert!(self_link.contains("family"), "{self_link}");
    assert_eq!(ids(s, "Patient?nonsense=1").await, set(&[&a, &b]));

    for query in ["Patient?nonsense=1", "Patient?family=known&nonsense=1"] {
        let r = s.get_with(query, &[("prefer", "handling=strict")]).await;
        assert_names_param(&r, "nonsense", query);
    }
    // Strict does not refuse known parameters.
    let r = s
        .get_with("Patient?family=known", &[("prefer", "handling=strict")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(match_ids(&r.json()), vec![a]);
    // A parameter of another type is unknown here.
    let r = s
        .get_with("Patient?code=1234", &[("prefer", "handling=strict")])
        .await;
    assert_names_param(&r, "code", "Patient?code=1234 (strict)");
}

/// Values that cannot be parsed: 400 naming the parameter.
async fn malformed_values(s: &TestServer) {
    create_id(s, patient("Known", "1970-01-01")).await;
    let cases = [
        ("Patient?birthdate=notadate", "birthdate"),
        ("Patient?birthdate=2020-13-45", "birthdate"),
        ("Patient?birthdate=xx2020", "birthdate"),
        ("Patient?birthdate=gt", "birthdate"),
        ("Patient?_lastUpdated=yesterday", "_lastUpdated"),
        ("RiskAssessment?probability=abc", "probability"),
        ("RiskAssessment?probability=zz0.5", "probability"),
        (
            "Observation?value-quantity=lots|http://unitsofmeasure.org|mg",
            "value-quantity",
        ),
        ("Patient?family:nonsense=x", "family"),
        ("Patient?birthdate:contains=1970", "birthdate"),
        ("Patient?gender.name=x", "gender"),
        ("Patient?family.name=x", "family"),
        ("Observation?subject:Patient.nonsense=x", "nonsense"),
        ("Patient?_count=abc", "_count"),
        ("Patient?_count=-1", "_count"),
        ("Patient?_sort=nonsense", "_sort"),
        ("Patient?_summary=maybe", "_summary"),
        ("Patient?_total=lots", "_total"),
        ("Patient?birthdate:missing=perhaps", "birthdate"),
        ("Observation?_include=Observation:nonsense", "_include"),
        (
            "Observation?code-value-quantity=8480-6",
            "code-value-quantity",
        ),
        ("Patient?_has:Observation:patient=x", "_has"),
    ];
    let mut wrong = Vec::new();
    for (query, param) in cases {
        let r = s.get(query).await;
        let named = r.status == 400 && r.text.contains(param);
        if !named {
            wrong.push(format!("{query} -> {} {}", r.status, r.text));
        } else {
            assert_names_param(&r, param, query);
        }
    }
    assert!(
        wrong.is_empty(),
        "not a 400 naming the parameter:\n{}",
        wrong.join("\n")
    );
}

/// Values and names that look like SQL are data, not SQL.
async fn injection_attempts(s: &TestServer) {
    let a = create_id(s, patient("O'Brien", "1970-01-01")).await;
    let b = create_id(s, patient("Plain", "1980-01-01")).await;
    let all = set(&[&a, &b]);
    let values = [
        "' OR 1=1 --",
        "' OR '1'='1",
        "x';DROP TABLE resources;--",
        "x\"; DROP TABLE resource_versions; --",
        "%' OR 1=1 --",
        "\\'; SELECT 1; --",
        "1) OR (1=1",
    ];
    for v in values {
        for param in [
            "name",
            "family:exact",
            "family:contains",
            "identifier",
            "_id",
            "_tag",
        ] {
            let query = format!("Patient?{param}={}", super::enc(v));
            let r = s.get(&query).await;
            assert!(
                r.status == 200 || r.status == 400,
                "{query}: {} {}",
                r.status,
                r.text
            );
            if r.status == 200 {
                assert!(match_ids(&r.json()).is_empty(), "{query}: {}", r.text);
            }
        }
    }
    assert_eq!(ids(s, "Patient?family=o'brien").await, set(&[&a]));
    assert_eq!(ids(s, "Patient?family:exact=O'Brien").await, set(&[&a]));
    assert_eq!(ids(s, "Patient?family:contains='bri").await, set(&[&a]));
    // Names with quotes and SQL: unknown parameters (lenient: ignored).
    for name in [
        "na'me",
        "name'--",
        "x\";DROP TABLE resources;--",
        "_sort",
        "_has:Observation':patient:code",
        "name:' OR 1=1",
    ] {
        let query = format!("Patient?{}=x';DROP TABLE resources;--", super::enc(name));
        let r = s.get(&query).await;
        assert!(
            r.status == 200 || r.status == 400,
            "{query}: {} {}",
            r.status,
            r.text
        );
        if r.status == 400 {
            r.outcome(400);
        }
    }
    let r = s
        .get_with("Patient?na'me=x", &[("prefer", "handling=strict")])
        .await;
    r.outcome(400);
    for query in [
        "Patient?_sort=family';DROP TABLE resources;--",
        "Patient?_include=Patient:organization';--",
        "Patient?_count=1;DROP TABLE resources",
    ] {
        let r = s.get(query).await;
        assert!(
            r.status == 200 || r.status == 400,
            "{query}: {} {}",
            r.status,
            r.text
        );
    }
    // The data is intact.
    assert_eq!(ids(s, "Patient").await, all);
    assert_eq!(s.get(&format!("Patient/{a}")).await.status, 200);
    assert_eq!(s.get("Patient/_history").await.status, 200);
}

/// Writes keep the index in step: an update replaces the old values, a
/// delete removes the resource from results.
async fn index_follows_writes(s: &TestServer) {
    let id = create_id(s, patient("Before", "1970-01-01")).await;
    assert_eq!(ids(s, "Patient?family=before").await, vec![id.clone()]);
    let mut body = patient("After", "1971-02-02");
    body["id"] = json!(id);
    assert_eq!(s.put(&format!("Patient/{id}"), &body).await.status, 200);
    assert!(ids(s, "Patient?family=before").await.is_empty());
    assert!(ids(s, "Patient?birthdate=1970-01-01").await.is_empty());
    assert_eq!(ids(s, "Patient?family=after").await, vec![id.clone()]);
    assert_eq!(
        ids(s, "Patient?birthdate=1971-02-02").await,
        vec![id.clone()]
    );
    // Removing an element removes its rows.
    let body = json!({"resourceType": "Patient", "id": id, "name": [{"family": "After"}]});
    assert_eq!(s.put(&format!("Patient/{id}"), &body).await.status, 200);
    assert!(ids(s, "Patient?birthdate=1971-02-02").await.is_empty());
    assert_eq!(
        ids(s, "Patient?birthdate:missing=true").await,
        vec![id.clone()]
    );
    // PATCH too.
    let patch = serde_json::to_vec(
        &json!([{"op": "replace", "path": "/name/0/family", "value": "Patched"}]),
    )
    .unwrap();
    let r = s
        .send(
            Method::PATCH,
            &format!("Patient/{id}"),
            Some(patch),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(ids(s, "Patient?family=after").await.is_empty());
    assert_eq!(ids(s, "Patient?family=patched").await, vec![id.clone()]);
    // Delete.
    assert!(matches!(
        s.delete(&format!("Patient/{id}")).await.status,
        200 | 204
    ));
    assert!(ids(s, "Patient?family=patched").await.is_empty());
    assert!(ids(s, "Patient").await.is_empty());
    assert_eq!(search(s, "Patient?_summary=count").await["total"], 0);
    // A reference search does not find a deleted target through a chain.
    let p = create_id(s, patient("Gone", "1970-01-01")).await;
    let o = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "subject": {"reference": format!("Patient/{p}")}}),
    )
    .await;
    assert_eq!(
        ids(s, "Observation?patient.family=gone").await,
        vec![o.clone()]
    );
    s.delete(&format!("Patient/{p}")).await;
    assert!(ids(s, "Observation?patient.family=gone").await.is_empty());
    assert!(ids(s, &format!("Patient?_has:Observation:patient:_id={o}"))
        .await
        .is_empty());

    // Moving a referencing resource moves `_has` and `_revinclude` with it.
    let a = create_id(s, patient("HasA", "1970-01-01")).await;
    let b = create_id(s, patient("HasB", "1970-01-01")).await;
    let obs = |p: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"code": "moved"}]},
               "subject": {"reference": format!("Patient/{p}")}})
    };
    let o = create_id(s, obs(&a)).await;
    assert_eq!(
        ids(s, "Patient?_has:Observation:subject:code=moved").await,
        vec![a.clone()]
    );
    let mut moved = obs(&b);
    moved["id"] = json!(o);
    assert_eq!(s.put(&format!("Observation/{o}"), &moved).await.status, 200);
    assert_eq!(
        ids(s, "Patient?_has:Observation:subject:code=moved").await,
        vec![b.clone()]
    );
    let bundle = search(
        s,
        &format!("Patient?_id={a},{b}&_revinclude=Observation:subject"),
    )
    .await;
    assert_eq!(super::included(&bundle), vec![format!("Observation/{o}")]);
    s.delete(&format!("Observation/{o}")).await;
    assert!(ids(s, "Patient?_has:Observation:subject:code=moved")
        .await
        .is_empty());
    // A chain follows the target's current version only.
    let o = create_id(s, obs(&a)).await;
    assert_eq!(
        ids(s, "Observation?patient.family=hasa").await,
        vec![o.clone()]
    );
    let mut renamed = patient("HasC", "1970-01-01");
    renamed["id"] = json!(a);
    assert_eq!(s.put(&format!("Patient/{a}"), &renamed).await.status, 200);
    assert!(ids(s, "Observation?patient.family=hasa").await.is_empty());
    assert_eq!(ids(s, "Observation?patient.family=hasc").await, vec![o]);
}

/// Conditional create/update/delete take any search criteria.
async fn conditional_with_any_criteria(s: &TestServer) {
    let criteria = [("if-none-exist", "family=Cond&birthdate=1970")];
    let first = s
        .json(
            Method::POST,
            "Patient",
            &patient("Cond", "1970-06-01"),
            &criteria,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json()["id"].clone();
    let again = s
        .json(
            Method::POST,
            "Patient",
            &patient("Cond", "1970-06-01"),
            &criteria,
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["id"], id);
    let other_year = s
        .json(
            Method::POST,
            "Patient",
            &patient("Cond", "1980-06-01"),
            &[("if-none-exist", "family=Cond&birthdate=1980")],
        )
        .await;
    assert_eq!(other_year.status, 201, "{}", other_year.text);
    // Both now match `family=cond`: 412.
    s.json(
        Method::POST,
        "Patient",
        &patient("Cond", "1990-06-01"),
        &[("if-none-exist", "family=cond")],
    )
    .await
    .outcome(412);
    // Chains and prefixes in criteria.
    let r = s
        .json(
            Method::POST,
            "Patient",
            &patient("Cond", "1990-06-01"),
            &[("if-none-exist", "family:exact=Cond&birthdate=lt1975")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], id);

    // Conditional update on a date and a string.
    let mut changed = patient("Cond", "1970-06-01");
    changed["gender"] = json!("female");
    let r = s.put("Patient?family=cond&birthdate=1970", &changed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], id);
    assert_eq!(r.json()["meta"]["versionId"], "2");
    assert_eq!(
        ids(s, "Patient?gender=female").await,
        vec![id.as_str().unwrap().to_string()]
    );
    let r = s
        .put(
            "Patient?family=cond&birthdate=2001",
            &patient("Cond", "2001-01-01"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Conditional delete on gender: only the female one goes.
    let r = s.delete("Patient?family=cond&gender=female").await;
    assert!(matches!(r.status, 200 | 204), "{}", r.text);
    assert_eq!(
        s.get(&format!("Patient/{}", id.as_str().unwrap()))
            .await
            .status,
        410
    );
    assert_eq!(ids(s, "Patient?family=cond").await.len(), 2);
    // Malformed criteria: 400.
    s.json(
        Method::POST,
        "Patient",
        &patient("Cond", "1970-06-01"),
        &[("if-none-exist", "birthdate=notadate")],
    )
    .await
    .outcome(400);
}

crate::on_both_databases!(
    unknown_parameters,
    malformed_values,
    injection_attempts,
    index_follows_writes,
    conditional_with_any_criteria,
);
