//! Token modifiers answered by the terminology service: `:below`, `:above`
//! (ICD-10-CM and a stored CodeSystem's hierarchy), `:in` and `:not-in`
//! (stored and implicit value sets), and their errors.

use serde_json::{json, Value};

use super::{create_id, match_ids, put_id, search};
use crate::harness::TestServer;

const ICD: &str = "http://hl7.org/fhir/sid/icd-10-cm";

fn condition(codings: Value) -> Value {
    json!({
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": codings}
    })
}

fn icd(code: &str) -> Value {
    json!([{"system": ICD, "code": code}])
}

/// The ids a search matches, sorted.
async fn found(s: &TestServer, query: &str) -> Vec<String> {
    let mut ids = match_ids(&search(s, query).await);
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

struct Data {
    e11_9: String,
    e11_65: String,
    e10_9: String,
    i10: String,
    ward: String,
    none: String,
}

async fn data(s: &TestServer) -> Data {
    s.put(
        "CodeSystem/wards",
        &json!({"resourceType": "CodeSystem", "id": "wards", "url": "urn:example:wards",
            "status": "active", "content": "complete", "concept": [
            {"code": "med", "display": "Medical wards", "concept": [
                {"code": "med-cardio", "display": "Cardiology ward"},
                {"code": "med-renal", "display": "Renal ward"}]},
            {"code": "surg", "display": "Surgical wards"}]}),
    )
    .await;
    s.put(
        "CodeSystem/wards-part",
        &json!({"resourceType": "CodeSystem", "id": "wards-part", "url": "urn:example:wards-part",
            "status": "active", "content": "fragment", "concept": [{"code": "med"}]}),
    )
    .await;
    Data {
        e11_9: create_id(s, condition(icd("E11.9"))).await,
        e11_65: create_id(s, condition(icd("E11.65"))).await,
        e10_9: create_id(s, condition(icd("E10.9"))).await,
        i10: create_id(s, condition(icd("I10"))).await,
        ward: create_id(
            s,
            condition(json!([{"system": "urn:example:wards", "code": "med-renal"}])),
        )
        .await,
        none: create_id(
            s,
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"}}),
        )
        .await,
    }
}

async fn below_and_above(s: &TestServer) {
    let d = data(s).await;
    assert_eq!(
        found(s, &format!("Condition?code:below={ICD}|E11")).await,
        sorted(&[&d.e11_9, &d.e11_65])
    );
    // The block E08-E13 holds both kinds of diabetes; OR of two values.
    assert_eq!(
        found(s, &format!("Condition?code:below={ICD}|E08-E13")).await,
        sorted(&[&d.e11_9, &d.e11_65, &d.e10_9])
    );
    assert_eq!(
        found(s, &format!("Condition?code:below={ICD}|E10,{ICD}|I10")).await,
        sorted(&[&d.e10_9, &d.i10])
    );
    // A stored CodeSystem's hierarchy.
    assert_eq!(
        found(s, "Condition?code:below=urn:example:wards|med").await,
        sorted(&[&d.ward])
    );
    assert!(found(s, "Condition?code:below=urn:example:wards|surg")
        .await
        .is_empty());
    // Above: the code and its ancestors, so a leaf finds only itself and a
    // search above a leaf's child finds the leaf's ancestors' codings.
    assert_eq!(
        found(s, &format!("Condition?code:above={ICD}|E11.65")).await,
        sorted(&[&d.e11_65])
    );
    let e11 = create_id(s, condition(icd("E11.6"))).await;
    assert_eq!(
        found(s, &format!("Condition?code:above={ICD}|E11.65")).await,
        sorted(&[&d.e11_65, &e11])
    );
    assert_eq!(
        found(s, "Condition?code:above=urn:example:wards|med-renal").await,
        sorted(&[&d.ward])
    );
    // Combined with other criteria.
    assert_eq!(
        found(
            s,
            &format!("Condition?code:below={ICD}|E11&_id={},{}", d.e11_9, d.i10)
        )
        .await,
        sorted(&[&d.e11_9])
    );
    let _ = d.none;
}

async fn in_and_not_in(s: &TestServer) {
    let d = data(s).await;
    // Implicit value set of ICD-10-CM.
    assert_eq!(
        found(s, &format!("Condition?code:in={ICD}?fhir_vs=isa/E11")).await,
        sorted(&[&d.e11_9, &d.e11_65])
    );
    // A stored ValueSet, created through the API, by canonical URL and by
    // reference.
    put_id(
        s,
        json!({"resourceType": "ValueSet", "url": "urn:example:vs:followed",
            "version": "1", "status": "active", "compose": {"include": [
            {"system": ICD, "filter": [{"property": "concept", "op": "is-a", "value": "E10"}]},
            {"system": ICD, "concept": [{"code": "I10"}]},
            {"system": "urn:example:wards", "filter": [{"property": "concept", "op": "is-a", "value": "med"}]}
        ]}}),
        "followed",
    )
    .await;
    let followed = sorted(&[&d.e10_9, &d.i10, &d.ward]);
    assert_eq!(
        found(s, "Condition?code:in=urn:example:vs:followed").await,
        followed
    );
    assert_eq!(
        found(s, "Condition?code:in=urn:example:vs:followed|1").await,
        followed
    );
    assert_eq!(
        found(s, "Condition?code:in=ValueSet/followed").await,
        followed
    );
    // A ValueSet stored with its expansion and no compose.
    put_id(
        s,
        json!({"resourceType": "ValueSet", "url": "urn:example:vs:expanded", "status": "active",
            "expansion": {"timestamp": "2026-01-01T00:00:00Z", "contains": [
                {"system": ICD, "code": "E11.9"},
                {"abstract": true, "contains": [{"system": ICD, "code": "I10"}]}]}}),
        "expanded",
    )
    .await;
    assert_eq!(
        found(s, "Condition?code:in=urn:example:vs:expanded").await,
        sorted(&[&d.e11_9, &d.i10])
    );
    // :not-in: no coding in the set, including resources without a code.
    assert_eq!(
        found(s, "Condition?code:not-in=urn:example:vs:followed").await,
        sorted(&[&d.e11_9, &d.e11_65, &d.none])
    );
    // A value set edited through the API is used as it is now.
    put_id(
        s,
        json!({"resourceType": "ValueSet", "url": "urn:example:vs:followed",
            "version": "1", "status": "active", "compose": {"include": [
            {"system": ICD, "concept": [{"code": "E11.65"}]}]}}),
        "followed",
    )
    .await;
    assert_eq!(
        found(s, "Condition?code:in=ValueSet/followed").await,
        sorted(&[&d.e11_65])
    );
    // The total counts the same matches.
    let b = search(s, "Condition?code:not-in=ValueSet/followed&_total=accurate").await;
    assert_eq!(b["total"], 5, "{b}");
}

async fn modifier_errors(s: &TestServer) {
    let _ = data(s).await;
    let cases = [
        (
            "Condition?code:in=urn:example:vs:unknown",
            "urn:example:vs:unknown",
        ),
        ("Condition?code:in=ValueSet/unknown", "ValueSet/unknown"),
        (
            "Condition?code:not-in=urn:example:vs:unknown",
            "code:not-in",
        ),
        ("Condition?code:below=E11", "system|code"),
        (
            "Condition?code:below=urn:example:nowhere|x",
            "urn:example:nowhere",
        ),
        (
            "Condition?code:below=http://hl7.org/fhir/sid/icd-10-cm|NOPE",
            "`NOPE` is not a code",
        ),
        (
            "Condition?code:above=http://hl7.org/fhir/sid/icd-10-cm|",
            "system|code",
        ),
        (
            "Condition?code:below=urn:example:wards-part|med",
            "content `fragment`",
        ),
    ];
    for (query, expect) in cases {
        let oo = s.get(query).await.outcome(400);
        assert!(oo.to_string().contains(expect), "{query}: {oo}");
    }
    // Too many codes: the chapter of injuries (54,283 codes), the whole
    // code system; a chapter under the limit works.
    let oo = s
        .get(&format!("Condition?code:below={ICD}|19"))
        .await
        .outcome(400);
    assert!(oo.to_string().contains("more than the 10000"), "{oo}");
    assert_eq!(oo["issue"][0]["code"], "too-costly");
    search(s, &format!("Condition?code:below={ICD}|13")).await;
    let oo = s
        .get(&format!("Condition?code:in={ICD}?fhir_vs"))
        .await
        .outcome(400);
    assert!(oo.to_string().contains("more than the 10000"), "{oo}");
    // Not in conditional criteria.
    let r = s
        .json(
            reqwest::Method::PUT,
            &format!("Condition?code:below={ICD}|E11"),
            &condition(icd("E11.9")),
            &[],
        )
        .await;
    let oo = r.outcome(400);
    assert!(oo.to_string().contains("searches only"), "{oo}");
}

crate::on_both_databases!(below_and_above, in_and_not_in, modifier_errors);
