//! The terminology operations over ICD-10-CM and stored CodeSystems and
//! ValueSets, and ICD-10-CM validation on write.

use serde_json::{json, Value};

use crate::harness::TestServer;

fn part<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    params["parameter"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn properties(params: &Value, code: &str) -> Vec<Value> {
    params["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "property" && p["part"][0]["valueCode"] == code)
        .map(|p| p["part"][1].clone())
        .collect()
}

fn codes(vs: &Value) -> Vec<String> {
    vs["expansion"]["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

const ICD: &str = "http://hl7.org/fhir/sid/icd-10-cm";

async fn lookup_validate_and_subsume_icd10cm(s: &TestServer) {
    let r = s
        .get(&format!("CodeSystem/$lookup?system={ICD}&code=E11.9"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json();
    assert_eq!(
        part(&p, "display").unwrap()["valueString"],
        "Type 2 diabetes mellitus without complications"
    );
    assert_eq!(properties(&p, "parent")[0]["valueCode"], "E11");
    assert_eq!(properties(&p, "billable")[0]["valueBoolean"], true);
    let e11 = s
        .get(&format!("CodeSystem/$lookup?system={ICD}&code=E11"))
        .await
        .json();
    assert_eq!(properties(&e11, "billable")[0]["valueBoolean"], false);
    assert!(properties(&e11, "child").len() > 5);
    assert_eq!(properties(&e11, "block")[0]["valueCode"], "E08-E13");
    assert!(!properties(&e11, "excludes1").is_empty());
    // POST form.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": ICD, "code": "I10"}}]});
    let r = s.post("CodeSystem/$lookup", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Unknown code and unknown system: OperationOutcomes.
    s.get(&format!("CodeSystem/$lookup?system={ICD}&code=E11.99"))
        .await
        .outcome(404);
    s.get("CodeSystem/$lookup?system=urn:nothing&code=x")
        .await
        .outcome(404);
    s.get("CodeSystem/$lookup?code=x").await.outcome(400);

    let v = s
        .get(&format!("CodeSystem/$validate-code?url={ICD}&code=E11.9"))
        .await
        .json();
    assert_eq!(part(&v, "result").unwrap()["valueBoolean"], true);
    let v = s
        .get(&format!("CodeSystem/$validate-code?url={ICD}&code=E11.99"))
        .await
        .json();
    assert_eq!(part(&v, "result").unwrap()["valueBoolean"], false);
    let v = s
        .get(&format!(
            "CodeSystem/$validate-code?url={ICD}&code=E11.9&display=Something%20else"
        ))
        .await
        .json();
    assert_eq!(part(&v, "result").unwrap()["valueBoolean"], false);
    assert!(part(&v, "message").is_some());

    let sub = s
        .get(&format!(
            "CodeSystem/$subsumes?system={ICD}&codeA=E11&codeB=E11.9"
        ))
        .await
        .json();
    assert_eq!(part(&sub, "outcome").unwrap()["valueCode"], "subsumes");
    let sub = s
        .get(&format!(
            "CodeSystem/$subsumes?system={ICD}&codeA=E11.9&codeB=I10"
        ))
        .await
        .json();
    assert_eq!(part(&sub, "outcome").unwrap()["valueCode"], "not-subsumed");
}

async fn expand_implicit_value_sets_with_filter_and_paging(s: &TestServer) {
    for text in ["E11.9", "diabetes%20type%202", "type%202%20diab"] {
        let r = s
            .get(&format!(
                "ValueSet/$expand?url={ICD}?fhir_vs&filter={text}&count=5"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let found = codes(&r.json());
        assert!(
            found[0] == "E11.9" || found[0] == "E11",
            "{text}: {found:?}"
        );
    }
    let sub = s
        .get(&format!(
            "ValueSet/$expand?url={ICD}?fhir_vs=isa/E11&count=10&offset=0"
        ))
        .await
        .json();
    let total = sub["expansion"]["total"].as_u64().unwrap();
    assert!(total > 50, "{total}");
    let first = codes(&sub);
    assert_eq!(first[0], "E11");
    assert!(first.iter().all(|c| c.starts_with("E11")));
    let next = s
        .get(&format!(
            "ValueSet/$expand?url={ICD}?fhir_vs=isa/E11&count=10&offset=10"
        ))
        .await
        .json();
    assert!(codes(&next).iter().all(|c| !first.contains(c)));
    // The whole code system needs paging.
    s.get(&format!("ValueSet/$expand?url={ICD}?fhir_vs"))
        .await
        .outcome(422);
}

async fn stored_code_system_and_value_set(s: &TestServer) {
    s.put(
        "CodeSystem/wards",
        &json!({"resourceType": "CodeSystem", "id": "wards", "url": "urn:example:wards",
            "status": "active", "content": "complete", "concept": [
            {"code": "med", "display": "Medical wards", "concept": [
                {"code": "med-cardio", "display": "Cardiology ward", "designation": [
                    {"language": "de", "value": "Kardiologische Station"}]},
                {"code": "med-renal", "display": "Renal ward"}]},
            {"code": "surg", "display": "Surgical wards"}]}),
    )
    .await;
    s.put(
        "ValueSet/medical",
        &json!({"resourceType": "ValueSet", "id": "medical", "url": "urn:example:vs:medical",
            "status": "active", "compose": {
            "include": [{"system": "urn:example:wards", "filter": [{"property": "concept", "op": "is-a", "value": "med"}]},
                        {"system": ICD, "concept": [{"code": "I10"}]}],
            "exclude": [{"system": "urn:example:wards", "concept": [{"code": "med-renal"}]}]}}),
    )
    .await;
    let vs = s.get("ValueSet/medical/$expand").await.json();
    assert_eq!(codes(&vs), ["med", "med-cardio", "I10"]);
    let vs = s
        .get("ValueSet/$expand?url=urn:example:vs:medical&filter=cardio")
        .await
        .json();
    assert_eq!(codes(&vs), ["med-cardio"]);
    // displayLanguage: a designation in that language (or a regional
    // variant of it) is the display; others keep the code system's own.
    let vs = s
        .get("ValueSet/medical/$expand?displayLanguage=de-CH")
        .await
        .json();
    let displays: Vec<&str> = vs["expansion"]["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["display"].as_str().unwrap())
        .collect();
    assert_eq!(
        displays,
        [
            "Medical wards",
            "Kardiologische Station",
            "Essential (primary) hypertension"
        ]
    );
    let v = s
        .get("ValueSet/$validate-code?url=urn:example:vs:medical&system=urn:example:wards&code=med-renal")
        .await
        .json();
    assert_eq!(part(&v, "result").unwrap()["valueBoolean"], false);
    let v = s
        .get(&format!(
            "ValueSet/$validate-code?url=urn:example:vs:medical&system={ICD}&code=I10"
        ))
        .await
        .json();
    assert_eq!(part(&v, "result").unwrap()["valueBoolean"], true);
    let l = s
        .get("CodeSystem/$lookup?system=urn:example:wards&code=med-cardio")
        .await
        .json();
    assert_eq!(properties(&l, "parent")[0]["valueCode"], "med");
    let l = s
        .get("CodeSystem/wards/$subsumes?codeA=med&codeB=med-renal")
        .await
        .json();
    assert_eq!(part(&l, "outcome").unwrap()["valueCode"], "subsumes");
    // A regex filter.
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource":
        {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
            {"system": "urn:example:wards", "filter": [{"property": "code", "op": "regex", "value": "med-.*"}]}]}}}]});
    let r = s.post("ValueSet/$expand", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(codes(&r.json()), ["med-cardio", "med-renal"]);
}

fn condition(code: &str, display: &str) -> Value {
    json!({"resourceType": "Condition", "subject": {"reference": "Patient/x"},
        "code": {"coding": [{"system": ICD, "code": code, "display": display}]}})
}

async fn icd10cm_codings_are_checked_on_write(s: &TestServer) {
    let r = s
        .post(
            "Condition",
            &condition("E11.9", "Type 2 diabetes mellitus without complications"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // A wrong display is accepted, with a warning for those who ask.
    let r = s.post("Condition", &condition("E11.9", "Sugar")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s
        .json(
            reqwest::Method::POST,
            "Condition",
            &condition("E11.9", "Sugar"),
            &[("prefer", "return=OperationOutcome")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let oo = r.json();
    let warning = oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["severity"] == "warning")
        .unwrap_or_else(|| panic!("no warning: {oo}"));
    assert_eq!(warning["expression"][0], "Condition.code.coding[0].display");
    assert!(
        warning["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Type 2 diabetes mellitus without complications"),
        "{oo}"
    );
    // In a transaction the warning is the entry's response.outcome.
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": condition("E11.9", "Sugar"), "request": {"method": "POST", "url": "Condition"}},
        {"resource": condition("E11.9", "Type 2 diabetes mellitus without complications"),
         "request": {"method": "POST", "url": "Condition"}}]});
    let r = s.post("", &tx).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(
        b["entry"][0]["response"]["outcome"]["issue"][0]["severity"], "warning",
        "{b}"
    );
    assert!(b["entry"][1]["response"]["outcome"].is_null(), "{b}");
    // $validate reports what a write would.
    let r = s
        .post("Condition/$validate", &condition("E11.9", "Sugar"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("Condition.code.coding[0].display"),
        "{}",
        r.text
    );
    let r = s
        .post("Condition/$validate", &condition("E11.99", "x"))
        .await;
    let oo = r.json();
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "error" && i["expression"][0] == "Condition.code.coding[0]"),
        "{oo}"
    );
    let oo = s
        .post("Condition", &condition("E11.99", "x"))
        .await
        .outcome(422);
    let issue = &oo["issue"][0];
    assert_eq!(issue["expression"][0], "Condition.code.coding[0]");
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("E11.9"),
        "{oo}"
    );
    let claim = json!({"resourceType": "Claim", "status": "active", "use": "claim",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": {"reference": "Patient/x"}, "created": "2026-01-01",
        "provider": {"reference": "Organization/o"}, "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "Coverage/c"}}],
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "E11"}]}}]});
    let oo = s.post("Claim", &claim).await.outcome(422);
    let text = oo["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("E11.9"), "{text}");
    assert!(oo["issue"][0]["expression"][0]
        .as_str()
        .unwrap()
        .starts_with("Claim.diagnosis[0]"));
}

/// `off` checks nothing; `warn` accepts what `strict` rejects and says so.
async fn policies_off_and_warn(postgres: bool) {
    for policy in ["off", "warn"] {
        let set = |c: &mut charaka::config::Config| c.icd10cm_validation = policy.into();
        let s = if postgres {
            match TestServer::postgres_with(set).await {
                Some(s) => s,
                None => return,
            }
        } else {
            TestServer::sqlite_with(set).await
        };
        let r = s
            .json(
                reqwest::Method::POST,
                "Condition",
                &condition("NOT.A.CODE", "x"),
                &[("prefer", "return=OperationOutcome")],
            )
            .await;
        assert_eq!(r.status, 201, "{policy}: {}", r.text);
        let warned = r.json()["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "warning");
        assert_eq!(warned, policy == "warn", "{policy}: {}", r.text);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_off_and_warn_sqlite() {
    policies_off_and_warn(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_off_and_warn_postgres() {
    policies_off_and_warn(true).await;
}

crate::on_both_databases!(
    lookup_validate_and_subsume_icd10cm,
    expand_implicit_value_sets_with_filter_and_paging,
    stored_code_system_and_value_set,
    icd10cm_codings_are_checked_on_write,
    terminology_capabilities,
);

async fn terminology_capabilities(s: &TestServer) {
    let r = s.get("metadata?mode=terminology").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tc = r.json();
    assert_eq!(tc["resourceType"], "TerminologyCapabilities");
    assert_eq!(tc["codeSystem"][0]["uri"], ICD);
    assert_eq!(tc["codeSystem"][0]["version"][0]["isDefault"], true);
    // The CapabilityStatement lists the operations on their types.
    let cs = s.get("metadata").await.json();
    let ops = |rtype: &str| -> Vec<String> {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == rtype)
            .unwrap()["operation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    for op in ["lookup", "validate-code", "subsumes"] {
        assert!(
            ops("CodeSystem").contains(&op.to_string()),
            "CodeSystem ${op}"
        );
    }
    for op in ["expand", "validate-code"] {
        assert!(ops("ValueSet").contains(&op.to_string()), "ValueSet ${op}");
    }
}
