//! Contained resources (http://hl7.org/fhir/R4/search.html, "Contained
//! Resources"): chains through local references, `_contained=true|both`,
//! `_containedType=container|contained`, and their index rows kept in
//! step with the container.

use serde_json::{json, Value};

use super::{assert_names_param, entries, ids, link, match_ids, put_id, search, set};
use crate::harness::TestServer;

const LOINC: &str = "http://loinc.org";

fn observation(id: &str, code: &str, status: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]}})
}

fn report(contained: Vec<Value>) -> Value {
    let results: Vec<Value> = contained
        .iter()
        .map(|c| json!({"reference": format!("#{}", c["id"].as_str().unwrap())}))
        .collect();
    json!({"resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "panel"}, "contained": contained, "result": results})
}

/// `Type/id` (and `#local` for contained entries) of the matches, sorted.
fn match_urls(s: &TestServer, bundle: &Value) -> Vec<String> {
    let base = s.url("");
    let base = base.trim_end_matches('/');
    let mut v: Vec<String> = entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["fullUrl"].as_str().unwrap()[base.len() + 1..].to_string())
        .collect();
    v.sort();
    v
}

fn warnings(bundle: &Value) -> String {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .map(|e| e["resource"].to_string())
        .collect()
}

async fn chains_follow_local_references(s: &TestServer) {
    let contained = put_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "chain-1"}]},
            "contained": [{"resourceType": "Patient", "id": "p1",
                "name": [{"family": "Taylor", "given": ["Ann"]}], "gender": "female"}],
            "subject": {"reference": "#p1"}}),
        "c-chain-local",
    )
    .await;
    let taylor = put_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Taylor"}], "gender": "male"}),
        "c-chain-taylor",
    )
    .await;
    let plain = put_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "chain-1"}]},
            "subject": {"reference": format!("Patient/{taylor}")}}),
        "c-chain-plain",
    )
    .await;
    assert_eq!(
        ids(s, "Observation?subject.name=Taylor").await,
        set(&[&contained, &plain])
    );
    assert_eq!(
        ids(s, "Observation?subject:Patient.name=taylor&code=chain-1").await,
        set(&[&contained, &plain])
    );
    // Both criteria of the chain hold in the contained Patient.
    assert_eq!(
        ids(s, "Observation?subject.gender=female&code=chain-1").await,
        set(&[&contained])
    );
    assert!(ids(s, "Observation?subject.name=Nobody").await.is_empty());
    // The contained Patient is no Patient of its own, and its Observation
    // is not one of the patient's.
    assert_eq!(ids(s, "Patient?name=Taylor").await, set(&[&taylor]));
    assert!(ids(s, "Observation?subject=p1").await.is_empty());
}

async fn contained_true_matches_only_contained(s: &TestServer) {
    let dr = put_id(
        s,
        report(vec![observation("o1", "ct-1", "final")]),
        "c-true-dr",
    )
    .await;
    // Ordinary searches: neither the contained Observation nor its
    // container.
    assert!(ids(s, "Observation?code=ct-1").await.is_empty());
    assert!(ids(s, "DiagnosticReport?result.code=ct-1")
        .await
        .contains(&dr));
    let b = search(s, "Observation?code=ct-1&_contained=true").await;
    assert_eq!(match_urls(s, &b), vec![format!("DiagnosticReport/{dr}")]);
    assert_eq!(b["total"], 1);
    assert!(link(&b, "self").unwrap().contains("_contained=true"));
    // The default `_containedType` is `container`.
    let b = search(
        s,
        "Observation?code=http://loinc.org|ct-1&_contained=true&_containedType=container",
    )
    .await;
    assert_eq!(match_urls(s, &b), vec![format!("DiagnosticReport/{dr}")]);
    // By local id, status, and nothing of another code.
    assert_eq!(
        ids(
            s,
            "Observation?_id=o1&status=final&_contained=true&code=ct-1"
        )
        .await,
        set(&[&dr])
    );
    assert!(ids(s, "Observation?code=ct-2&_contained=true")
        .await
        .is_empty());
    // A Patient search does not see the contained Observation.
    assert!(!ids(s, "Patient?_contained=true").await.contains(&dr));
}

async fn criteria_hold_in_one_contained_resource(s: &TestServer) {
    let dr = put_id(
        s,
        report(vec![
            observation("a", "and-1", "final"),
            observation("b", "and-2", "preliminary"),
        ]),
        "c-and-dr",
    )
    .await;
    assert_eq!(
        ids(s, "Observation?code=and-1&status=final&_contained=true").await,
        set(&[&dr])
    );
    assert_eq!(
        ids(
            s,
            "Observation?code=and-2&status=preliminary&_contained=true"
        )
        .await,
        set(&[&dr])
    );
    // Each contained Observation matches one criterion: no match.
    assert!(ids(
        s,
        "Observation?code=and-1&status=preliminary&_contained=true"
    )
    .await
    .is_empty());
    assert!(ids(s, "Observation?code=and-1&code=and-2&_contained=true")
        .await
        .is_empty());
    // `:not` and `:missing` apply within the same contained resource.
    assert_eq!(
        ids(s, "Observation?code=and-1&status:not=final&_contained=true").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(s, "Observation?code=and-2&status:not=final&_contained=true").await,
        set(&[&dr])
    );
}

async fn updates_and_deletes_keep_the_rows(s: &TestServer) {
    let dr = put_id(
        s,
        report(vec![observation("u1", "upd-1", "final")]),
        "c-upd-dr",
    )
    .await;
    assert_eq!(
        ids(s, "Observation?code=upd-1&_contained=true").await,
        set(&[&dr])
    );
    // The update drops the contained Observation.
    put_id(
        s,
        json!({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "panel"}}),
        &dr,
    )
    .await;
    assert!(ids(s, "Observation?code=upd-1&_contained=true")
        .await
        .is_empty());
    // Back, then deleted.
    put_id(s, report(vec![observation("u1", "upd-1", "final")]), &dr).await;
    assert_eq!(
        ids(s, "Observation?code=upd-1&_contained=true").await,
        set(&[&dr])
    );
    assert_eq!(
        s.delete(&format!("DiagnosticReport/{dr}")).await.status,
        200
    );
    assert!(ids(s, "Observation?code=upd-1&_contained=true")
        .await
        .is_empty());
    let b = search(
        s,
        "Observation?code=upd-1&_contained=true&_containedType=contained",
    )
    .await;
    assert!(match_urls(s, &b).is_empty(), "{b}");
}

async fn contained_type_returns_the_contained_resource(s: &TestServer) {
    let dr = put_id(
        s,
        report(vec![
            observation("x1", "ctype-1", "final"),
            observation("x2", "ctype-1", "amended"),
        ]),
        "c-type-dr",
    )
    .await;
    let b = search(
        s,
        "Observation?code=ctype-1&_contained=true&_containedType=contained",
    )
    .await;
    assert_eq!(
        match_urls(s, &b),
        vec![
            format!("DiagnosticReport/{dr}#x1"),
            format!("DiagnosticReport/{dr}#x2")
        ]
    );
    assert_eq!(b["total"], 2);
    let first = &entries(&b)[0];
    assert_eq!(first["resource"]["resourceType"], "Observation");
    assert_eq!(first["resource"]["id"], "x1");
    assert_eq!(first["resource"]["status"], "final");
    assert_eq!(first["search"]["mode"], "match");
    assert!(first["resource"]["contained"].is_null());
    // The criteria pick the contained resource, not its siblings.
    let b = search(
        s,
        "Observation?code=ctype-1&status=amended&_contained=true&_containedType=contained",
    )
    .await;
    assert_eq!(match_urls(s, &b), vec![format!("DiagnosticReport/{dr}#x2")]);
    // Paging by (container, position).
    let b = search(
        s,
        "Observation?code=ctype-1&_contained=true&_containedType=contained&_count=1&_total=accurate",
    )
    .await;
    assert_eq!(b["total"], 2);
    assert_eq!(match_urls(s, &b), vec![format!("DiagnosticReport/{dr}#x1")]);
    let next = link(&b, "next").expect("a next page");
    let path = &next[s.url("").trim_end_matches('/').len() + 1..];
    let b = search(s, path).await;
    assert_eq!(match_urls(s, &b), vec![format!("DiagnosticReport/{dr}#x2")]);
    assert!(link(&b, "next").is_none());
}

async fn both_matches_either(s: &TestServer) {
    let dr = put_id(
        s,
        report(vec![observation("b1", "both-1", "final")]),
        "c-both-dr",
    )
    .await;
    let own = put_id(s, observation("", "both-1", "final"), "c-both-obs").await;
    assert_eq!(ids(s, "Observation?code=both-1").await, set(&[&own]));
    let b = search(s, "Observation?code=both-1&_contained=both").await;
    assert_eq!(
        match_urls(s, &b),
        vec![
            format!("DiagnosticReport/{dr}"),
            format!("Observation/{own}")
        ]
    );
    let b = search(
        s,
        "Observation?code=both-1&_contained=both&_containedType=contained",
    )
    .await;
    assert_eq!(
        match_urls(s, &b),
        vec![
            format!("DiagnosticReport/{dr}#b1"),
            format!("Observation/{own}")
        ]
    );
    assert_eq!(b["total"], 2);
}

async fn unsupported_combinations(s: &TestServer) {
    put_id(
        s,
        report(vec![observation("n1", "unsup-1", "final")]),
        "c-unsup-dr",
    )
    .await;
    let strict = [("prefer", "handling=strict")];
    for (query, param) in [
        ("Observation?code=unsup-1&_contained=true&_sort=date", "_sort"),
        (
            "Observation?code=unsup-1&_contained=true&code-value-quantity=x$1",
            "code-value-quantity",
        ),
        ("Observation?code=unsup-1&_contained=both&_lastUpdated=gt2000", "_lastUpdated"),
        (
            "Observation?code=unsup-1&_contained=true&_containedType=contained&_include=Observation:subject",
            "_include",
        ),
        ("?_type=Observation&code=unsup-1&_contained=true", "_contained"),
    ] {
        let r = s.get_with(query, &strict).await;
        assert_names_param(&r, param, query);
        assert_eq!(r.outcome(400)["issue"][0]["code"], "not-supported", "{query}");
        // Lenient: ignored with a warning naming it, left out of `self`.
        let b = search(s, query).await;
        assert!(warnings(&b).contains(param), "{query}: {b}");
        let own = link(&b, "self").unwrap();
        assert!(!own.contains(&format!("{param}=")), "{query}: {own}");
    }
    for query in [
        "Observation?_contained=yes",
        "Observation?_containedType=resource",
    ] {
        let oo = s.get(query).await.outcome(400);
        let diagnostics = oo["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.starts_with("_contained"), "{diagnostics}");
    }
    // `_containedType` alone changes nothing.
    let b = search(s, "Observation?code=unsup-1&_containedType=contained").await;
    assert!(match_ids(&b).is_empty());
}

/// Contained resources are no resources of their own anywhere else:
/// counts, compartments, `_has`, `_include` and `_revinclude` see the
/// container's own elements only.
async fn contained_rows_stay_out_of_other_searches(s: &TestServer) {
    let patient = put_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Realo"}]}),
        "c-iso-pat",
    )
    .await;
    // The container's subject is its contained Patient; a contained
    // Observation refers to the stored Patient.
    let container = put_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "iso-outer"}]},
            "contained": [
                {"resourceType": "Patient", "id": "p1", "name": [{"family": "Isolde"}],
                 "identifier": [{"system": "urn:iso", "value": "1"}]},
                {"resourceType": "Observation", "id": "o2", "status": "final",
                 "code": {"coding": [{"system": LOINC, "code": "iso-inner"}]},
                 "subject": {"reference": format!("Patient/{patient}")}}],
            "subject": {"reference": "#p1"},
            "hasMember": [{"reference": "#o2"}]}),
        "c-iso-obs",
    )
    .await;
    let total = |b: &Value| b["total"].as_i64();
    let b = search(s, "Patient?identifier=urn:iso|1&_total=accurate").await;
    assert!(match_ids(&b).is_empty(), "{b}");
    assert_eq!(total(&b), Some(0), "{b}");
    let b = search(
        s,
        &format!("Observation?subject=Patient/{patient}&_total=accurate"),
    )
    .await;
    assert!(match_ids(&b).is_empty(), "{b}");
    assert_eq!(total(&b), Some(0), "{b}");
    let b = search(s, "Observation?code=iso-inner&_summary=count").await;
    assert_eq!(total(&b), Some(0), "{b}");
    // The stored patient's compartment and reverse chains.
    assert!(ids(s, &format!("Patient/{patient}/Observation"))
        .await
        .is_empty());
    assert!(ids(s, "Patient?_has:Observation:subject:code=iso-inner")
        .await
        .is_empty());
    assert!(ids(s, "Patient?_has:Observation:subject:code=iso-outer")
        .await
        .is_empty());
    // Includes follow the container's own references only.
    let b = search(
        s,
        &format!("Patient?_id={patient}&_revinclude=Observation:subject"),
    )
    .await;
    assert_eq!(entries(&b).len(), 1, "{b}");
    let b = search(
        s,
        &format!("Observation?_id={container}&_include=Observation:subject"),
    )
    .await;
    assert_eq!(entries(&b).len(), 1, "{b}");
    // The container is still found by its own values and by the chain.
    assert_eq!(
        ids(s, "Observation?code=iso-outer").await,
        set(&[&container])
    );
    assert_eq!(
        ids(s, "Observation?subject.name=Isolde").await,
        set(&[&container])
    );
}

crate::on_both_databases!(
    chains_follow_local_references,
    contained_rows_stay_out_of_other_searches,
    contained_true_matches_only_contained,
    criteria_hold_in_one_contained_resource,
    updates_and_deletes_keep_the_rows,
    contained_type_returns_the_contained_resource,
    both_matches_either,
    unsupported_combinations,
);
