//! transaction and batch Bundles: urn:uuid resolution, ordering, atomicity,
//! conditional entries, per-entry outcomes, and real Synthea bundles.

use serde_json::{json, Value};

use crate::harness::TestServer;

fn entry(full_url: Option<&str>, method: &str, url: &str, resource: Option<Value>) -> Value {
    let mut e = json!({"request": {"method": method, "url": url}});
    if let Some(f) = full_url {
        e["fullUrl"] = json!(f);
    }
    if let Some(r) = resource {
        e["resource"] = r;
    }
    e
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}], "name": [{"family": "Iyer"}]})
}

fn observation(subject: &str) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "extension": [{"url": "http://example.org/source", "valueReference": {"reference": subject}}],
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

async fn history_len(s: &TestServer) -> usize {
    s.get("_history?_count=1000").await.json()["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn transaction_resolves_urn_uuids(s: &TestServer) {
    let b = bundle(
        "transaction",
        vec![
            entry(
                Some("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"),
                "POST",
                "Observation",
                Some(observation("urn:uuid:d1a2b3c4-0000-4000-8000-000000000001")),
            ),
            entry(
                Some("urn:uuid:d1a2b3c4-0000-4000-8000-000000000001"),
                "POST",
                "Patient",
                Some(patient("T1")),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["type"], "transaction-response");
    let entries = resp["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!(e["response"]["status"], "201 Created");
        assert!(e["response"]["etag"].as_str().unwrap().starts_with("W/"));
    }
    let patient_location = entries[1]["response"]["location"].as_str().unwrap();
    let patient_ref = patient_location.split("/_history").next().unwrap();
    assert_eq!(
        patient_ref, "Patient/d1a2b3c4-0000-4000-8000-000000000001",
        "the urn's uuid becomes the id"
    );
    let obs_location = entries[0]["response"]["location"].as_str().unwrap();
    let obs = s
        .get(obs_location.split("/_history").next().unwrap())
        .await
        .json();
    assert_eq!(obs["subject"]["reference"], patient_ref);
    assert_eq!(
        obs["extension"][0]["valueReference"]["reference"],
        patient_ref
    );
    assert_eq!(entries[0]["resource"]["subject"]["reference"], patient_ref);

    // A later Bundle may refer to the stored patient by its urn.
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Observation",
            Some(observation("urn:uuid:d1a2b3c4-0000-4000-8000-000000000001")),
        )],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["entry"][0]["resource"]["subject"]["reference"],
        patient_ref
    );
    // An urn that names nothing is an error, and nothing is stored.
    let before = history_len(s).await;
    let b = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Observation",
            Some(observation("urn:uuid:00000000-0000-4000-8000-00000000dead")),
        )],
    );
    let oo = s.post("", &b).await.outcome(400);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Bundle.entry[0]"),
        "{oo}"
    );
    assert_eq!(history_len(s).await, before);
}

async fn transaction_is_all_or_nothing(s: &TestServer) {
    let existing = s.create(&patient("KEEP")).await;
    let id = existing["id"].as_str().unwrap();
    let before = history_len(s).await;
    let mut updated = existing.clone();
    updated["gender"] = json!("female");
    // 999 good creates, an update, then an entry that fails its If-Match.
    let mut entries: Vec<Value> = (0..998)
        .map(|i| {
            entry(
                Some(&format!("urn:uuid:{}", uuid_n(i))),
                "POST",
                "Patient",
                Some(patient(&format!("N{i}"))),
            )
        })
        .collect();
    entries.push(entry(None, "PUT", &format!("Patient/{id}"), Some(updated)));
    let mut failing = entry(
        None,
        "PUT",
        &format!("Patient/{id}x"),
        Some(json!({"resourceType": "Patient", "id": format!("{id}x")})),
    );
    failing["request"]["ifMatch"] = json!("W/\"9\"");
    entries.push(failing);
    let r = s.post("", &bundle("transaction", entries)).await;
    let oo = r.outcome(412);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[999]"),
        "{oo}"
    );
    assert_eq!(
        history_len(s).await,
        before,
        "nothing of the failed transaction is stored"
    );
    let still = s.get(&format!("Patient/{id}")).await.json();
    assert_eq!(still, existing);
}

fn uuid_n(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

async fn transaction_rejects_touching_a_resource_twice(s: &TestServer) {
    let old = s.create(&patient("OLD")).await;
    let old_id = old["id"].as_str().unwrap().to_string();
    let matched = s.create(&patient("MATCH")).await;
    let before = history_len(s).await;
    // A GET and a DELETE of one resource.
    let b = bundle(
        "transaction",
        vec![
            entry(None, "GET", &format!("Patient/{old_id}"), None),
            entry(None, "POST", "Patient", Some(patient("NEW"))),
            entry(None, "DELETE", &format!("Patient/{old_id}"), None),
        ],
    );
    let oo = s.post("", &b).await.outcome(400);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("both touch"),
        "{oo}"
    );
    // A read of the resource an ifNoneExist create matches.
    let mut create = entry(None, "POST", "Patient", Some(patient("MATCH")));
    create["request"]["ifNoneExist"] = json!("identifier=urn:mrn|MATCH");
    let b = bundle(
        "transaction",
        vec![
            entry(
                None,
                "GET",
                &format!("Patient/{}", matched["id"].as_str().unwrap()),
                None,
            ),
            create,
        ],
    );
    s.post("", &b).await.outcome(400);
    assert_eq!(history_len(s).await, before);
}

async fn transaction_entries_do_what_they_say(s: &TestServer) {
    let old = s.create(&patient("OLD")).await;
    let old_id = old["id"].as_str().unwrap().to_string();
    let read = s.create(&patient("READ")).await;
    let read_id = read["id"].as_str().unwrap().to_string();
    let matched = s.create(&patient("MATCH")).await;
    let cond = s.create(&patient("COND")).await;
    let mut create = entry(
        Some("urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"),
        "POST",
        "Patient",
        Some(patient("MATCH")),
    );
    create["request"]["ifNoneExist"] = json!("identifier=urn:mrn|MATCH");
    let patch_body = base64_encode(br#"[{"op":"add","path":"/gender","value":"other"}]"#);
    let b = bundle(
        "transaction",
        vec![
            entry(None, "GET", &format!("Patient/{read_id}/_history/1"), None),
            create,
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("urn:uuid:bbbbbbbb-0000-4000-8000-000000000001")),
            ),
            entry(
                None,
                "PUT",
                "Patient?identifier=urn:mrn|NEW",
                Some(patient("NEW")),
            ),
            entry(None, "DELETE", &format!("Patient/{old_id}"), None),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("Patient?identifier=urn:mrn|COND")),
            ),
            entry(
                None,
                "PATCH",
                &format!("Patient/{}", cond["id"].as_str().unwrap()),
                Some(
                    json!({"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch_body}),
                ),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = r.json()["entry"].as_array().unwrap().clone();
    assert_eq!(e.len(), 7);
    assert_eq!(e[0]["response"]["status"], "200 OK");
    assert_eq!(
        e[0]["resource"]["meta"]["versionId"], "1",
        "vread of version 1"
    );
    assert_eq!(e[1]["response"]["status"], "200 OK", "ifNoneExist matched");
    assert_eq!(e[1]["resource"]["id"], matched["id"]);
    assert_eq!(
        e[2]["resource"]["subject"]["reference"],
        format!("Patient/{}", matched["id"].as_str().unwrap())
    );
    assert_eq!(e[3]["response"]["status"], "201 Created");
    assert_eq!(e[4]["response"]["status"], "200 OK");
    assert_eq!(
        e[5]["resource"]["subject"]["reference"],
        format!("Patient/{}", cond["id"].as_str().unwrap())
    );
    assert_eq!(e[6]["resource"]["gender"], "other");
    s.get(&format!("Patient/{old_id}")).await.outcome(410);

    // Conditional references that match nothing, or several resources.
    s.create(&patient("TWICE")).await;
    s.create(&patient("TWICE")).await;
    let none = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Observation",
            Some(observation("Patient?identifier=urn:mrn|NOBODY")),
        )],
    );
    s.post("", &none).await.outcome(400);
    let many = bundle(
        "transaction",
        vec![entry(
            None,
            "POST",
            "Observation",
            Some(observation("Patient?identifier=urn:mrn|TWICE")),
        )],
    );
    s.post("", &many).await.outcome(412);
    // Two entries on one resource.
    let twice = bundle(
        "transaction",
        vec![
            entry(
                None,
                "DELETE",
                &format!("Patient/{}", cond["id"].as_str().unwrap()),
                None,
            ),
            entry(
                None,
                "PUT",
                &format!("Patient/{}", cond["id"].as_str().unwrap()),
                Some({
                    let mut c = cond.clone();
                    c.as_object_mut().unwrap().remove("meta");
                    c
                }),
            ),
        ],
    );
    let oo = s.post("", &twice).await.outcome(400);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("both touch"),
        "{oo}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn batch_entries_are_independent(s: &TestServer) {
    let before = history_len(s).await;
    let b = bundle(
        "batch",
        vec![
            entry(None, "POST", "Patient", Some(patient("B1"))),
            entry(
                None,
                "POST",
                "Patient",
                Some(json!({"resourceType": "Patient", "birthDate": "not-a-date"})),
            ),
            entry(None, "GET", "Patient/does-not-exist", None),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("Patient/whatever")),
            ),
            entry(None, "DELETE", "Patient/nothing-here", None),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let resp = r.json();
    assert_eq!(resp["type"], "batch-response");
    let e = resp["entry"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], "201 Created");
    assert_eq!(e[1]["response"]["status"], "400 Bad Request");
    assert_eq!(
        e[1]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.birthDate"
    );
    assert_eq!(e[2]["response"]["status"], "404 Not Found");
    assert_eq!(
        e[2]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(e[3]["response"]["status"], "201 Created");
    assert_eq!(e[4]["response"]["status"], "200 OK");
    assert_eq!(history_len(s).await, before + 2);
}

async fn bundle_limits_and_kinds(s: &TestServer) {
    s.post("", &bundle("collection", vec![])).await.outcome(400);
    s.post("", &patient("X")).await.outcome(400);
    s.post("", &json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", "url": "Patient"}}]}))
        .await
        .outcome(400);
    s.post(
        "",
        &bundle(
            "transaction",
            vec![entry(None, "POST", "Patient", Some(observation("x")))],
        ),
    )
    .await
    .outcome(400);
    s.post(
        "",
        &bundle(
            "transaction",
            vec![entry(None, "GET", "Patient/1/Observation/2", None)],
        ),
    )
    .await
    .outcome(400);
    // An empty transaction is fine.
    let r = s
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Other Bundle types are stored as resources.
    let doc = s
        .post(
            "Bundle",
            &json!({"resourceType": "Bundle", "type": "collection"}),
        )
        .await;
    assert_eq!(doc.status, 201, "{}", doc.text);
}

/// The `Type/id` of each match of a searchset.
fn matches(searchset: &Value) -> Vec<String> {
    searchset["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

async fn batch_search_entries_answer_searchsets(s: &TestServer) {
    let mut family = Vec::new();
    for mrn in ["S1", "S2", "S3"] {
        let mut p = patient(mrn);
        p["name"][0]["family"] = json!("Searchentry");
        family.push(format!(
            "Patient/{}",
            s.create(&p).await["id"].as_str().unwrap()
        ));
    }
    let obs = s.create(&observation(&family[0])).await;
    let b = bundle(
        "batch",
        vec![
            entry(None, "GET", "Patient?family=Searchentry&_count=2", None),
            entry(
                None,
                "GET",
                "?_type=Observation&code=http://loinc.org|8867-4",
                None,
            ),
            entry(None, "GET", "Patient?birthdate=notadate", None),
            entry(None, "GET", "Patient?family=Searchentry&nonsense=1", None),
            entry(None, "HEAD", "Patient?family=Searchentry", None),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert_eq!(out["type"], "batch-response");
    let e = &out["entry"];
    // The same answer as the search on its own.
    assert_eq!(e[0]["response"]["status"], "200 OK");
    assert_eq!(e[0]["resource"]["type"], "searchset");
    let alone = s.get("Patient?family=Searchentry&_count=2").await.json();
    assert_eq!(matches(&e[0]["resource"]), matches(&alone));
    assert_eq!(matches(&e[0]["resource"]).len(), 2);
    assert!(e[0]["resource"]["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
    // A system search.
    let found = matches(&e[1]["resource"]);
    assert!(
        found.contains(&format!("Observation/{}", obs["id"].as_str().unwrap())),
        "{found:?}"
    );
    assert!(found.iter().all(|f| f.starts_with("Observation/")));
    // A bad value fails its entry alone.
    let status = e[2]["response"]["status"].as_str().unwrap();
    assert!(status.starts_with("400"), "{status}");
    let diagnostics = e[2]["response"]["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(
        diagnostics.contains("Bundle.entry[2]") && diagnostics.contains("birthdate"),
        "{diagnostics}"
    );
    // Unknown parameters: ignored with a warning by default.
    assert_eq!(e[3]["response"]["status"], "200 OK");
    let mut all = family.clone();
    all.sort();
    let mut got = matches(&e[3]["resource"]);
    got.sort();
    assert_eq!(got, all);
    // HEAD: the status alone.
    assert_eq!(e[4]["response"]["status"], "200 OK");
    assert!(e[4].get("resource").is_none());

    // Under `Prefer: handling=strict` an unknown parameter fails its entry.
    let strict = bundle(
        "batch",
        vec![
            entry(None, "GET", "Patient?family=Searchentry&nonsense=1", None),
            entry(None, "GET", "Patient?family=Searchentry", None),
        ],
    );
    let r = s
        .json(
            reqwest::Method::POST,
            "",
            &strict,
            &[("prefer", "handling=strict")],
        )
        .await;
    let e = &r.json()["entry"];
    assert!(e[0]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("400"));
    assert_eq!(e[1]["response"]["status"], "200 OK");
}

async fn transaction_search_entries_see_its_writes(s: &TestServer) {
    let b = bundle(
        "transaction",
        vec![
            // Listed first, processed after the writes.
            entry(None, "GET", "Patient?identifier=urn:mrn|TXSEARCH", None),
            entry(
                None,
                "GET",
                "Observation?patient.identifier=urn:mrn|TXSEARCH",
                None,
            ),
            entry(
                Some("urn:uuid:cccccccc-0000-4000-8000-000000000001"),
                "POST",
                "Patient",
                Some(patient("TXSEARCH")),
            ),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("urn:uuid:cccccccc-0000-4000-8000-000000000001")),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    let e = &out["entry"];
    let created = |i: usize| {
        let location = e[i]["response"]["location"].as_str().unwrap();
        location.split("/_history").next().unwrap().to_string()
    };
    assert_eq!(e[0]["response"]["status"], "200 OK");
    assert_eq!(matches(&e[0]["resource"]), vec![created(2)]);
    assert_eq!(matches(&e[1]["resource"]), vec![created(3)]);
}

async fn transaction_fails_whole_on_a_bad_search_entry(s: &TestServer) {
    let b = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Patient", Some(patient("TXBAD"))),
            entry(None, "GET", "Patient?birthdate=notadate", None),
        ],
    );
    let oo = s.post("", &b).await.outcome(400);
    let diagnostics = oo["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("Bundle.entry[1]"), "{diagnostics}");
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry[1]");
    // Nothing was written.
    let found = s.get("Patient?identifier=urn:mrn|TXBAD").await.json();
    assert!(matches(&found).is_empty(), "{found}");
}

async fn search_entries_are_checked_as_searches(s: &TestServer) {
    use crate::auth::{send_as, token_for};
    let mine = s.create(&patient("MINE")).await;
    let mine = format!("Patient/{}", mine["id"].as_str().unwrap());
    let theirs = s.create(&patient("THEIRS")).await;
    let my_obs = s.create(&observation(&mine)).await;
    s.create(&observation(&format!(
        "Patient/{}",
        theirs["id"].as_str().unwrap()
    )))
    .await;
    let t = token_for(
        s,
        "patient/*.rs",
        Some(mine.trim_start_matches("Patient/")),
        "patient",
    );
    let b = bundle(
        "batch",
        vec![
            entry(None, "GET", "Observation?code=8867-4", None),
            entry(None, "GET", "Patient?identifier=urn:mrn|THEIRS", None),
        ],
    );
    let r = send_as(s, Some(&t), reqwest::Method::POST, "", Some(&b)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = &r.json()["entry"];
    assert_eq!(
        matches(&e[0]["resource"]),
        vec![format!("Observation/{}", my_obs["id"].as_str().unwrap())]
    );
    assert!(matches(&e[1]["resource"]).is_empty());
    // Without the search permission: the entry is refused, in a transaction the Bundle.
    let t = token_for(
        s,
        "patient/Patient.rs",
        Some(mine.trim_start_matches("Patient/")),
        "patient",
    );
    let r = send_as(s, Some(&t), reqwest::Method::POST, "", Some(&b)).await;
    let e = &r.json()["entry"];
    assert!(e[0]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("403"));
    assert_eq!(e[1]["response"]["status"], "200 OK");
    let mut tx = b.clone();
    tx["type"] = json!("transaction");
    send_as(s, Some(&t), reqwest::Method::POST, "", Some(&tx))
        .await
        .outcome(403);
}

async fn compartment_search_entries(s: &TestServer) {
    let a = s.create(&patient("CMPA")).await;
    let a = a["id"].as_str().unwrap().to_string();
    let b = s.create(&patient("CMPB")).await;
    let b = b["id"].as_str().unwrap().to_string();
    let obs_a = s.create(&observation(&format!("Patient/{a}"))).await;
    let obs_a = format!("Observation/{}", obs_a["id"].as_str().unwrap());
    s.create(&observation(&format!("Patient/{b}"))).await;
    let batch = bundle(
        "batch",
        vec![
            entry(
                None,
                "GET",
                &format!("Patient/{a}/Observation?code=http://loinc.org|8867-4"),
                None,
            ),
            entry(None, "GET", &format!("Patient/{a}/Observation"), None),
            entry(
                None,
                "GET",
                &format!("{}/Patient/{a}/Observation?code=1234-5", s.base),
                None,
            ),
            // Not in the compartment, an unknown compartment, a bad value.
            entry(None, "GET", &format!("Patient/{a}/CodeSystem"), None),
            entry(None, "GET", "Basic/1/Observation", None),
            entry(
                None,
                "GET",
                &format!("Patient/{a}/Observation?date=notadate"),
                None,
            ),
            // Compartment URLs are searches: other methods do not fit them.
            entry(None, "DELETE", &format!("Patient/{a}/Observation"), None),
        ],
    );
    let r = s.post("", &batch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    let e = &out["entry"];
    assert_eq!(e[0]["response"]["status"], "200 OK");
    assert_eq!(e[0]["resource"]["type"], "searchset");
    assert_eq!(matches(&e[0]["resource"]), vec![obs_a.clone()]);
    // The same answer as the compartment search over HTTP, self link included.
    let alone = s
        .get(&format!(
            "Patient/{a}/Observation?code=http://loinc.org|8867-4"
        ))
        .await
        .json();
    assert_eq!(matches(&alone), vec![obs_a.clone()]);
    assert_eq!(e[0]["resource"]["link"][0], alone["link"][0]);
    assert_eq!(matches(&e[1]["resource"]), vec![obs_a.clone()]);
    assert!(matches(&e[2]["resource"]).is_empty());
    for (i, what) in [(3, "CodeSystem"), (4, "Basic"), (5, "date"), (6, "method")] {
        let status = e[i]["response"]["status"].as_str().unwrap();
        assert!(status.starts_with("400"), "entry {i}: {status}");
        let diagnostics = e[i]["response"]["outcome"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap();
        assert!(
            diagnostics.contains(&format!("Bundle.entry[{i}]")) && diagnostics.contains(what),
            "entry {i}: {diagnostics}"
        );
    }

    // In a transaction the search sees the transaction's writes.
    let tx = bundle(
        "transaction",
        vec![
            entry(None, "GET", &format!("Patient/{b}/Observation"), None),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation(&format!("Patient/{b}"))),
            ),
        ],
    );
    let r = s.post("", &tx).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    let e = &out["entry"];
    let created = e[1]["response"]["location"]
        .as_str()
        .unwrap()
        .split("/_history")
        .next()
        .unwrap()
        .to_string();
    let found = matches(&e[0]["resource"]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.contains(&created), "{found:?}");
    // A bad compartment search fails the whole transaction.
    let tx = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Patient", Some(patient("CMPBAD"))),
            entry(None, "GET", &format!("Patient/{a}/CodeSystem"), None),
        ],
    );
    let oo = s.post("", &tx).await.outcome(400);
    assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry[1]");
    assert!(matches(&s.get("Patient?identifier=urn:mrn|CMPBAD").await.json()).is_empty());
}

async fn compartment_search_entries_are_checked_as_searches(s: &TestServer) {
    use crate::auth::{send_as, token_for};
    let mine = s.create(&patient("CMPMINE")).await;
    let mine = mine["id"].as_str().unwrap().to_string();
    let theirs = s.create(&patient("CMPTHEIRS")).await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    let my_obs = s.create(&observation(&format!("Patient/{mine}"))).await;
    s.create(&observation(&format!("Patient/{theirs}"))).await;
    let b = bundle(
        "batch",
        vec![
            entry(None, "GET", &format!("Patient/{mine}/Observation"), None),
            entry(None, "GET", &format!("Patient/{theirs}/Observation"), None),
        ],
    );
    let t = token_for(s, "patient/*.rs", Some(&mine), "patient");
    let r = send_as(s, Some(&t), reqwest::Method::POST, "", Some(&b)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = &r.json()["entry"];
    assert_eq!(
        matches(&e[0]["resource"]),
        vec![format!("Observation/{}", my_obs["id"].as_str().unwrap())]
    );
    // Another patient's compartment: nothing the token may see.
    assert!(matches(&e[1]["resource"]).is_empty());
    // Without the search permission on the type searched.
    let t = token_for(s, "patient/Patient.rs", Some(&mine), "patient");
    let r = send_as(s, Some(&t), reqwest::Method::POST, "", Some(&b)).await;
    let e = &r.json()["entry"];
    assert!(e[0]["response"]["status"]
        .as_str()
        .unwrap()
        .starts_with("403"));
    let mut tx = b.clone();
    tx["type"] = json!("transaction");
    send_as(s, Some(&t), reqwest::Method::POST, "", Some(&tx))
        .await
        .outcome(403);
}

/// A transaction's conditional criteria are looked up together (one
/// statement, then the unmatched ones again under their locks): each entry
/// still gets what its own criteria match, the same criteria written twice
/// (in another order) resolve alike, and a criteria error names its entry
/// and writes nothing.
async fn transaction_conditional_lookups_together(s: &TestServer) {
    let shared = s.create(&patient("LK-SHARED")).await;
    let shared_ref = format!("Patient/{}", shared["id"].as_str().unwrap());
    let mut matched = entry(
        Some("urn:uuid:cccccccc-0000-4000-8000-000000000001"),
        "POST",
        "Patient",
        Some(patient("LK-SHARED")),
    );
    matched["request"]["ifNoneExist"] = json!("identifier=urn:mrn|LK-SHARED");
    let mut fresh = entry(
        Some("urn:uuid:cccccccc-0000-4000-8000-000000000002"),
        "POST",
        "Patient",
        Some(patient("LK-FRESH")),
    );
    fresh["request"]["ifNoneExist"] = json!("identifier=urn:mrn|LK-FRESH");
    let mut by_criteria = observation("Patient?identifier=urn:mrn|LK-SHARED&family=Iyer");
    by_criteria["extension"][0]["valueReference"]["reference"] =
        json!("Patient?family=Iyer&identifier=urn:mrn|LK-SHARED");
    let b = bundle(
        "transaction",
        vec![
            matched,
            fresh,
            entry(
                None,
                "PUT",
                "Patient?identifier=urn:mrn|LK-PUT",
                Some(patient("LK-PUT")),
            ),
            entry(None, "POST", "Observation", Some(by_criteria)),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("urn:uuid:cccccccc-0000-4000-8000-000000000002")),
            ),
        ],
    );
    let r = s.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = r.json()["entry"].as_array().unwrap().clone();
    assert_eq!(e[0]["response"]["status"], "200 OK", "ifNoneExist matched");
    assert_eq!(e[0]["resource"]["id"], shared["id"]);
    assert_eq!(e[1]["response"]["status"], "201 Created");
    assert_eq!(e[2]["response"]["status"], "201 Created");
    assert_eq!(
        e[3]["resource"]["subject"]["reference"],
        shared_ref.as_str()
    );
    assert_eq!(
        e[3]["resource"]["extension"][0]["valueReference"]["reference"],
        shared_ref.as_str(),
        "the same criteria in another order resolve alike"
    );
    let fresh_id = e[1]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        e[4]["resource"]["subject"]["reference"],
        format!("Patient/{fresh_id}")
    );
    for mrn in ["LK-FRESH", "LK-PUT"] {
        let found = s
            .get(&format!("Patient?identifier=urn:mrn|{mrn}"))
            .await
            .json();
        assert_eq!(matches(&found).len(), 1, "{found}");
    }
    // Sent again: every conditional entry now matches what it created.
    let again = s.post("", &b).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let e2 = again.json()["entry"].as_array().unwrap().clone();
    assert_eq!(e2[1]["response"]["status"], "200 OK");
    assert_eq!(e2[1]["resource"]["id"], fresh_id);
    assert_eq!(e2[2]["response"]["status"], "200 OK");
    assert_eq!(e2[2]["resource"]["id"], e[2]["resource"]["id"]);

    // Criteria that do not parse fail their own entry, and nothing else of
    // the Bundle is written.
    let before = history_len(s).await;
    let mut bad = entry(None, "POST", "Patient", Some(patient("LK-BAD")));
    bad["request"]["ifNoneExist"] = json!("no-such-parameter=1");
    let b = bundle(
        "transaction",
        vec![
            entry(
                None,
                "PUT",
                "Patient?identifier=urn:mrn|LK-NEVER",
                Some(patient("LK-NEVER")),
            ),
            entry(
                None,
                "POST",
                "Observation",
                Some(observation("Patient?identifier=urn:mrn|LK-SHARED")),
            ),
            bad,
        ],
    );
    let oo = s.post("", &b).await.outcome(400);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[2]"),
        "{oo}"
    );
    assert_eq!(history_len(s).await, before);
    let never = s.get("Patient?identifier=urn:mrn|LK-NEVER").await.json();
    assert!(matches(&never).is_empty(), "{never}");
}

/// More conditional criteria than one lookup statement takes (100): each
/// entry still gets its own criteria's match, on the first run (none, so
/// all are created) and the second (each matches what it created).
async fn transaction_with_many_conditional_creates(s: &TestServer) {
    let entries: Vec<Value> = (0..130)
        .map(|i| {
            let mut e = entry(None, "POST", "Patient", Some(patient(&format!("MANY-{i}"))));
            e["request"]["ifNoneExist"] = json!(format!("identifier=urn:mrn|MANY-{i}"));
            e
        })
        .collect();
    let b = bundle("transaction", entries);
    let first = s.post("", &b).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let created = first.json()["entry"].as_array().unwrap().clone();
    assert!(created
        .iter()
        .all(|e| e["response"]["status"] == "201 Created"));
    let again = s.post("", &b).await;
    assert_eq!(again.status, 200, "{}", again.text);
    for (i, (a, c)) in again.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&created)
        .enumerate()
    {
        assert_eq!(a["response"]["status"], "200 OK", "entry {i}");
        assert_eq!(a["resource"]["id"], c["resource"]["id"], "entry {i}");
        assert_eq!(
            a["resource"]["identifier"][0]["value"],
            format!("MANY-{i}"),
            "entry {i}"
        );
    }
}

/// Transactions planned side by side, each creating the same patient when
/// none exists (`ifNoneExist`) and an Observation about it: the lookups each
/// made before its write transaction are stale once another commits, so
/// exactly one Patient is created and every Observation refers to it.
async fn concurrent_conditional_transactions_create_once(s: &TestServer) {
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = s.client.clone();
        let url = s.url("");
        // A urn of its own: a stale plan would create a patient of its own.
        let patient_urn = format!("urn:uuid:{}", uuid_n(100 + i));
        let mut create = entry(
            Some(&patient_urn),
            "POST",
            "Patient",
            Some(patient("TX-RACE")),
        );
        create["request"]["ifNoneExist"] = json!("identifier=urn:mrn|TX-RACE");
        let b = bundle(
            "transaction",
            vec![
                create,
                entry(
                    Some(&format!("urn:uuid:{}", uuid_n(i))),
                    "POST",
                    "Observation",
                    Some(observation(&patient_urn)),
                ),
            ],
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(&b).unwrap())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        let first = body["entry"][0]["response"]["status"]
            .as_str()
            .unwrap_or("");
        created += usize::from(first.starts_with("201"));
    }
    assert_eq!(created, 1, "exactly one transaction created the patient");
    let patients = s.get("Patient?identifier=urn:mrn|TX-RACE").await.json();
    let found = matches(&patients);
    assert_eq!(found.len(), 1, "{patients}");
    let observations = s
        .get(&format!("Observation?subject={}&_count=50", found[0]))
        .await
        .json();
    assert_eq!(
        observations["entry"].as_array().map_or(0, Vec::len),
        12,
        "{observations}"
    );
}

crate::on_both_databases!(
    batch_search_entries_answer_searchsets,
    concurrent_conditional_transactions_create_once,
    transaction_conditional_lookups_together,
    transaction_with_many_conditional_creates,
    compartment_search_entries,
    compartment_search_entries_are_checked_as_searches,
    transaction_search_entries_see_its_writes,
    transaction_fails_whole_on_a_bad_search_entry,
    search_entries_are_checked_as_searches,
    transaction_resolves_urn_uuids,
    transaction_is_all_or_nothing,
    transaction_rejects_touching_a_resource_twice,
    transaction_entries_do_what_they_say,
    batch_entries_are_independent,
    bundle_limits_and_kinds,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_entries_is_413() {
    let s = TestServer::sqlite_with(|c| c.max_bundle_entries = 3).await;
    let entries = (0..4)
        .map(|i| entry(None, "POST", "Patient", Some(patient(&i.to_string()))))
        .collect();
    s.post("", &bundle("transaction", entries))
        .await
        .outcome(413);
    s.stop().await;
}

/// The Synthea sample: organisations, practitioners, then five patients,
/// each a transaction of up to 482 entries; every reference resolves.
async fn synthea_bundles_load(s: &TestServer) {
    let Some(dir) = crate::harness::shared_data("synthea-sample") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // hospitalInformation and practitionerInformation first.
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        (
            !(name.starts_with("hospital") || name.starts_with("practitioner")),
            name,
        )
    });
    let mut total = 0;
    for path in &files {
        let body: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let n = body["entry"].as_array().unwrap().len();
        let r = s
            .send(
                reqwest::Method::POST,
                "",
                Some(serde_json::to_vec(&body).unwrap()),
                &[
                    ("content-type", "application/fhir+json"),
                    ("prefer", "return=minimal"),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "{}: {}",
            path.display(),
            &r.text[..r.text.len().min(2000)]
        );
        let resp = r.json();
        let entries = resp["entry"].as_array().unwrap();
        assert_eq!(entries.len(), n);
        assert!(entries
            .iter()
            .all(|e| e["response"]["status"] == "201 Created"));
        total += n;
    }
    assert_eq!(history_len_all(s).await, total);
    // References between the bundles were resolved to stored resources.
    let encounters = s.get("Encounter/_history?_count=1").await.json();
    let provider = encounters["entry"][0]["resource"]["serviceProvider"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(provider.starts_with("Organization/"), "{provider}");
    assert_eq!(s.get(&provider).await.status, 200);
}

async fn history_len_all(s: &TestServer) -> usize {
    let mut n = 0;
    let mut url = "_history?_count=1000".to_string();
    loop {
        let b = s.get(&url).await.json();
        n += b["entry"].as_array().map_or(0, Vec::len);
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_string(),
            None => return n,
        }
    }
}

mod synthea {
    crate::on_both_databases!(synthea_bundles_load);
    use super::synthea_bundles_load;
}
