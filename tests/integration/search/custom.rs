//! Custom SearchParameters written through the API: validation on write,
//! new writes indexed at once, existing resources indexed by the reindex
//! job (progress through `GET [base]/$reindex`), changes and deletions,
//! and the CapabilityStatement listing them.

use serde_json::{json, Value};

use super::{create_id, match_ids, search};
use crate::harness::TestServer;

const MMN: &str = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName";

/// The R4 spec's classic example: Patient by the mother's maiden name
/// extension.
fn mothers_maiden_name(expression: &str) -> Value {
    json!({
        "resourceType": "SearchParameter",
        "url": "http://example.org/fhir/SearchParameter/patient-mothers-maiden-name",
        "name": "MothersMaidenName",
        "status": "active",
        "description": "Search by the mother's maiden name",
        "code": "mothers-maiden-name",
        "base": ["Patient"],
        "type": "string",
        "expression": expression,
    })
}

fn patient(family: &str, maiden: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"family": family}],
        "extension": [{"url": MMN, "valueString": maiden}],
    })
}

fn param<'p>(p: &'p Value, name: &str) -> Vec<&'p Value> {
    p["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == name)
        .collect()
}

/// Waits until no custom parameter is pending and no reindex job runs;
/// returns the last `$reindex` answer.
async fn reindexed(s: &TestServer) -> Value {
    for _ in 0..1000 {
        let r = s.get("$reindex").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let p = r.json();
        let running = param(&p, "status")
            .first()
            .is_some_and(|x| x["valueCode"] == "running");
        if !running && param(&p, "pending").is_empty() {
            return p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the reindex did not finish");
}

fn strict() -> [(&'static str, &'static str); 1] {
    [("prefer", "handling=strict")]
}

async fn custom_parameter_lifecycle(s: &TestServer) {
    // Written before the parameter exists.
    let early = create_id(s, patient("Early", "Oldfield")).await;
    let other = create_id(s, patient("Other", "Newman")).await;
    let r = s
        .get_with("Patient?mothers-maiden-name=oldfield", &strict())
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    let created = s
        .create(&mothers_maiden_name(&format!("Patient.extension('{MMN}')")))
        .await;
    let sp_id = created["id"].as_str().unwrap().to_string();

    // A new write is indexed at once.
    let late = create_id(s, patient("Late", "Oldfield")).await;
    let p = reindexed(s).await;
    let job = param(&p, "job");
    assert!(
        job.iter().any(|j| j["part"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "type" && x["valueCode"] == "Patient")),
        "a job over Patient: {p}"
    );
    // Existing resources are found after the reindex.
    let bundle = search(s, "Patient?mothers-maiden-name=oldfield").await;
    let mut found = match_ids(&bundle);
    found.sort();
    let mut want = vec![early.clone(), late.clone()];
    want.sort();
    assert_eq!(found, want);
    assert!(
        !bundle.to_string().contains("incomplete"),
        "no warning once indexed: {bundle}"
    );
    assert_eq!(
        match_ids(&search(s, "Patient?mothers-maiden-name:exact=Newman").await),
        vec![other.clone()]
    );
    // Sorting works on it too: Newman before Oldfield.
    let sorted = match_ids(&search(s, "Patient?_sort=mothers-maiden-name").await);
    assert_eq!(sorted.first(), Some(&other), "{sorted:?}");

    // The CapabilityStatement lists it with its canonical URL.
    let meta = s.get("metadata").await.json();
    let patient_entry = meta["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    assert!(
        patient_entry["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mothers-maiden-name"
                && p["definition"]
                    == "http://example.org/fhir/SearchParameter/patient-mothers-maiden-name"
                && p["type"] == "string"),
        "{patient_entry}"
    );

    // A changed expression re-indexes: now the family name.
    let mut changed = mothers_maiden_name("Patient.name.family");
    changed["id"] = json!(sp_id);
    let r = s.put(&format!("SearchParameter/{sp_id}"), &changed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    reindexed(s).await;
    assert!(match_ids(&search(s, "Patient?mothers-maiden-name=oldfield").await).is_empty());
    assert_eq!(
        match_ids(&search(s, "Patient?mothers-maiden-name=early").await),
        vec![early.clone()]
    );

    // Deleted: unknown again.
    let r = s.delete(&format!("SearchParameter/{sp_id}")).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = s
        .get_with("Patient?mothers-maiden-name=early", &strict())
        .await;
    let oo = r.outcome(400);
    assert!(
        oo.to_string().contains("mothers-maiden-name"),
        "names the parameter: {oo}"
    );
    let meta = s.get("metadata").await.text;
    assert!(!meta.contains("mothers-maiden-name"));
    reindexed(s).await;
}

async fn invalid_search_parameters_are_refused(s: &TestServer) {
    // An expression that is not FHIRPath.
    let r = s
        .post(
            "SearchParameter",
            &mothers_maiden_name("Patient.name.where("),
        )
        .await;
    let oo = r.outcome(400);
    assert_eq!(
        oo["issue"][0]["expression"][0],
        "SearchParameter.expression"
    );
    assert!(oo.to_string().contains("FHIRPath"), "{oo}");

    // A code a built-in parameter of the base has.
    let mut clash = mothers_maiden_name("Patient.name.family");
    clash["code"] = json!("family");
    let oo = s.post("SearchParameter", &clash).await.outcome(400);
    assert_eq!(oo["issue"][0]["expression"][0], "SearchParameter.code");
    assert!(oo.to_string().contains("built-in"), "{oo}");

    // A base that is not a resource type.
    let mut base = mothers_maiden_name("Patient.name.family");
    base["base"] = json!(["Patient", "Nonsense"]);
    let oo = s.post("SearchParameter", &base).await.outcome(400);
    assert!(oo.to_string().contains("Nonsense"), "{oo}");

    // Composites need components that name known parameters.
    let mut composite = mothers_maiden_name("Patient.name");
    composite["type"] = json!("composite");
    composite["component"] = json!([
        {"definition": "http://example.org/nope", "expression": "family"},
        {"definition": "http://hl7.org/fhir/SearchParameter/individual-given", "expression": "given"}
    ]);
    let oo = s.post("SearchParameter", &composite).await.outcome(400);
    assert!(oo.to_string().contains("http://example.org/nope"), "{oo}");

    // Comparators and modifiers come from their R4 value sets.
    let mut comparator = mothers_maiden_name("Patient.name.family");
    comparator["comparator"] = json!(["bogus"]);
    let oo = s.post("SearchParameter", &comparator).await.outcome(400);
    assert!(oo.to_string().contains("comparator"), "{oo}");

    // Two SearchParameters cannot define one code on one type.
    s.create(&mothers_maiden_name("Patient.name.family")).await;
    let mut twin = mothers_maiden_name("Patient.name.given");
    twin["url"] = json!("http://example.org/fhir/SearchParameter/twin");
    let oo = s.post("SearchParameter", &twin).await.outcome(400);
    assert!(oo.to_string().contains("SearchParameter/"), "{oo}");
    // A draft is stored and not used, so it may share the code.
    twin["status"] = json!("draft");
    s.create(&twin).await;
    // Drafts are stored unchecked, as the official R4 examples need (drafts
    // with `_id` as code, or no expression); an active one is checked.
    let mut draft = mothers_maiden_name("Patient.name.where(");
    draft["url"] = json!("http://example.org/fhir/SearchParameter/draft");
    draft["code"] = json!("_id");
    draft["status"] = json!("draft");
    s.create(&draft).await;
    draft["status"] = json!("active");
    let oo = s.post("SearchParameter", &draft).await.outcome(400);
    assert_eq!(oo["issue"][0]["expression"][0], "SearchParameter.code");
    reindexed(s).await;
}

/// Custom parameters in every kind of conditional criteria: transaction
/// conditional references, `ifNoneExist`, conditional update, patch and
/// delete, in a transaction Bundle and on their own.
async fn custom_parameters_in_conditional_criteria(s: &TestServer) {
    s.create(&mothers_maiden_name(&format!("Patient.extension('{MMN}')")))
        .await;
    reindexed(s).await;
    let id = create_id(s, patient("Cond", "Conditionalova")).await;
    let by_maiden = "Patient?mothers-maiden-name=conditionalova";

    // A transaction: a conditional reference and a conditional create
    // that matches.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1e3c2a-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Observation", "status": "final",
            "code": {"text": "note"}, "subject": {"reference": by_maiden}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient("Dup", "Conditionalova"),
         "request": {"method": "POST", "url": "Patient",
            "ifNoneExist": "mothers-maiden-name=conditionalova"}},
    ]});
    let r = s.post("", &bundle).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert_eq!(out["entry"][1]["response"]["status"], "200 OK", "{out}");
    // A conditional update in a transaction.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Cond"}],
            "gender": "female",
            "extension": [{"url": MMN, "valueString": "Conditionalova"}]},
         "request": {"method": "PUT", "url": by_maiden}},
    ]});
    let r = s.post("", &bundle).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert_eq!(
        out["entry"][0]["response"]["location"],
        format!("Patient/{id}/_history/2"),
        "{out}"
    );
    let obs = search(s, "Observation?code:text=note").await;
    assert_eq!(
        obs["entry"][0]["resource"]["subject"]["reference"],
        format!("Patient/{id}")
    );
    assert_eq!(match_ids(&search(s, by_maiden).await), vec![id.clone()]);
    let current = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(current["gender"], "female");

    // On their own: If-None-Exist, conditional update and patch.
    let r = s
        .json(
            reqwest::Method::POST,
            "Patient",
            &patient("Dup", "Conditionalova"),
            &[("if-none-exist", "mothers-maiden-name=conditionalova")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["id"], id.as_str());
    let mut body = current.clone();
    body["gender"] = json!("male");
    body.as_object_mut().unwrap().remove("meta");
    let r = s.put(by_maiden, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["meta"]["versionId"], "3");
    let r = s
        .send(
            reqwest::Method::PATCH,
            by_maiden,
            Some(br#"[{"op": "replace", "path": "/gender", "value": "other"}]"#.to_vec()),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["gender"], "other");

    // Conditional deletes, in a transaction and on their own.
    let gone = create_id(s, patient("Gone", "Deletova")).await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Patient?mothers-maiden-name=deletova"}}
    ]});
    let r = s.post("", &bundle).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get(&format!("Patient/{gone}")).await.status, 410);
    let r = s.delete(by_maiden).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    assert_eq!(s.get(&format!("Patient/{id}")).await.status, 410);
}

crate::on_both_databases!(
    custom_parameter_lifecycle,
    invalid_search_parameters_are_refused,
    custom_parameters_in_conditional_criteria
);

/// Custom parameters are read from the database at start; the index
/// fingerprint covers them, so a restart after their reindex finished
/// rebuilds nothing.
async fn custom_parameters_survive_a_restart(s: TestServer) {
    s.create(&mothers_maiden_name(&format!("Patient.extension('{MMN}')")))
        .await;
    let id = create_id(&s, patient("Kept", "Restartova")).await;
    reindexed(&s).await;
    let s = s.restart().await;
    assert_eq!(
        match_ids(&search(&s, "Patient?mothers-maiden-name=restartova").await),
        vec![id.clone()]
    );
    let p = reindexed(&s).await;
    assert_eq!(
        param(&p, "status")[0]["valueCode"],
        "idle",
        "no rebuild at start: {p}"
    );
    assert!(s.get("metadata").await.text.contains("mothers-maiden-name"));
    // Writes after the restart are indexed with it.
    let later = create_id(&s, patient("Later", "Restartova")).await;
    let mut found = match_ids(&search(&s, "Patient?mothers-maiden-name=restartova").await);
    found.sort();
    let mut want = vec![id, later];
    want.sort();
    assert_eq!(found, want);
    s.stop().await;
}

mod restart {
    use crate::harness::TestServer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::custom_parameters_survive_a_restart(TestServer::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(s) = TestServer::postgres().await else {
            return;
        };
        super::custom_parameters_survive_a_restart(s).await;
    }
}
