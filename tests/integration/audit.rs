//! The audit trail: what is recorded for reads, searches, writes, refusals,
//! HL7 v2 messages and token requests; that the API cannot change it; that
//! patients can list who read their record; that `audit verify` names
//! every kind of tampering; and erasure (`Patient/$erase`). Both databases.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(
    reads_searches_and_writes_are_recorded,
    refusals_and_failures_are_recorded,
    the_api_cannot_change_the_audit_trail,
    system_history_and_search_leave_out_the_audit_trail,
    patients_see_who_accessed_their_record,
    hl7v2_messages_and_token_requests_are_recorded,
    messages_committed_together_are_each_recorded,
    verify_names_each_tampered_record,
    checkpoints_expose_a_rewritten_chain,
    erasure_removes_a_patient_for_good,
);

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

/// AuditEvents matching `query`, newest first.
async fn events(s: &TestServer, query: &str) -> Vec<Value> {
    let r = s
        .get(&format!("AuditEvent?{query}&_count=1000&_sort=-date"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    entries(&r.json())
}

fn subtype(e: &Value) -> &str {
    e["subtype"][0]["code"].as_str().unwrap_or_default()
}

fn entity_refs(e: &Value) -> Vec<String> {
    e["entity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["what"]["reference"].as_str().map(str::to_string))
        .collect()
}

fn query_of(e: &Value) -> Option<String> {
    e["entity"].as_array()?.iter().find_map(|x| {
        let q = x["query"].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(q).ok()?;
        String::from_utf8(bytes).ok()
    })
}

async fn reads_searches_and_writes_are_recorded(s: &TestServer) {
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Auditson"}]}))
        .await;
    let pid = p["id"].as_str().unwrap();
    let o = s
        .create(&json!({
            "resourceType": "Observation", "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": format!("Patient/{pid}")}
        }))
        .await;
    let oid = o["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("Observation/{oid}")).await.status, 200);
    assert_eq!(
        s.get(&format!("Observation?patient={pid}")).await.status,
        200
    );

    let found = events(s, &format!("patient={pid}")).await;
    let of = |code: &str| -> Vec<&Value> { found.iter().filter(|e| subtype(e) == code).collect() };

    // The read: the version read, the patient it belongs to, who and from where.
    let read = of("read");
    assert_eq!(read.len(), 1, "{found:#?}");
    let read = read[0];
    assert_eq!(read["action"], "R");
    assert_eq!(read["outcome"], "0");
    assert_eq!(read["type"]["code"], "rest");
    let refs = entity_refs(read);
    assert!(
        refs.contains(&format!("Observation/{oid}/_history/1")),
        "{refs:?}"
    );
    assert!(refs.contains(&format!("Patient/{pid}")), "{refs:?}");
    let client = read["agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["who"]["identifier"]["system"] == "urn:charaka:client")
        .expect("the client is named");
    assert_eq!(client["requestor"], true);
    assert_eq!(client["network"]["address"], "127.0.0.1");

    // The creates, recorded in their own transactions with the version made.
    let creates = of("create");
    assert_eq!(creates.len(), 2, "{found:#?}");
    let all_refs: Vec<String> = creates.iter().flat_map(|e| entity_refs(e)).collect();
    assert!(all_refs.contains(&format!("Observation/{oid}/_history/1")));
    assert!(all_refs.contains(&format!("Patient/{pid}/_history/1")));
    assert!(creates.iter().all(|e| e["action"] == "C"));

    // The search: its query, base64 per BALP, and the patient it named.
    let search = of("search-type");
    assert_eq!(search.len(), 1, "{found:#?}");
    assert_eq!(search[0]["action"], "E");
    assert_eq!(
        query_of(search[0]).as_deref(),
        Some(format!("/Observation?patient={pid}").as_str())
    );

    // Searchable by agent, action and date too.
    let by_action = events(s, &format!("patient={pid}&action=R")).await;
    assert_eq!(by_action.len(), 1);
    let today = &read["recorded"].as_str().unwrap()[..10];
    assert!(!events(s, &format!("patient={pid}&date={today}"))
        .await
        .is_empty());
    assert!(events(s, &format!("patient={pid}&date=lt2000"))
        .await
        .is_empty());
}

async fn refusals_and_failures_are_recorded(s: &TestServer) {
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Refusal"}]}))
        .await;
    let pid = p["id"].as_str().unwrap();
    // No token: 401, recorded against the anonymous caller.
    let r = s
        .anonymous
        .get(s.url(&format!("Patient/{pid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A bad update: 400, nothing written, recorded as a failure.
    let bad = s
        .put(
            &format!("Patient/{pid}"),
            &json!({"resourceType": "Patient", "id": pid, "birthDate": "not a date"}),
        )
        .await;
    assert_eq!(bad.status, 400);

    let failed = events(s, &format!("patient={pid}&outcome=4")).await;
    let refused = failed
        .iter()
        .find(|e| subtype(e) == "read")
        .expect("the refused read is recorded");
    assert_eq!(refused["outcomeDesc"], "HTTP 401");
    assert_eq!(refused["agent"][0]["who"]["display"], "anonymous");
    let update = failed
        .iter()
        .find(|e| subtype(e) == "update")
        .expect("the failed update is recorded");
    assert_eq!(update["outcomeDesc"], "HTTP 400");
    assert_eq!(update["action"], "U");
    // The failure wrote nothing.
    assert_eq!(
        s.get(&format!("Patient/{pid}")).await.json()["meta"]["versionId"],
        "1"
    );
}

async fn the_api_cannot_change_the_audit_trail(s: &TestServer) {
    s.create(&json!({"resourceType": "Patient"})).await;
    let any = events(s, "action=C").await;
    let event = any.first().expect("an event").clone();
    let id = event["id"].as_str().unwrap();
    let path = format!("AuditEvent/{id}");
    let mut changed = event.clone();
    changed["outcome"] = json!("8");
    s.put(&path, &changed).await.outcome(405);
    s.delete(&path).await.outcome(405);
    s.post("AuditEvent", &changed).await.outcome(405);
    let patch = s
        .client
        .patch(s.url(&path))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"replace","path":"/outcome","value":"8"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 405);
    let tx = s
        .post(
            "",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"request": {"method": "DELETE", "url": path}}
            ]}),
        )
        .await;
    assert_eq!(tx.status, 405, "{}", tx.text);
    let now = s.get(&path).await.json();
    assert_eq!(now["meta"]["versionId"], "1");
    assert_eq!(now["outcome"], event["outcome"]);
}

async fn system_history_and_search_leave_out_the_audit_trail(s: &TestServer) {
    s.create(&json!({"resourceType": "Patient"})).await;
    s.get("Patient").await;
    let history = s.get("_history").await.json();
    let types: Vec<Value> = entries(&history)
        .iter()
        .map(|r| r["resourceType"].clone())
        .collect();
    assert_eq!(types, vec![json!("Patient")]);
    let all = s.get("?_count=100").await.json();
    assert!(entries(&all)
        .iter()
        .all(|r| r["resourceType"] != "AuditEvent"));
    // Named, they are there.
    let own = s.get("AuditEvent/_history").await.json();
    assert!(!entries(&own).is_empty());
    let typed = s.get("?_type=AuditEvent").await.json();
    assert!(!entries(&typed).is_empty());
}

async fn patients_see_who_accessed_their_record(s: &TestServer) {
    let me = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Self"}]}))
        .await;
    let other = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Other"}]}))
        .await;
    let me_id = me["id"].as_str().unwrap();
    let other_id = other["id"].as_str().unwrap();
    s.get(&format!("Patient/{me_id}")).await;
    s.get(&format!("Patient/{other_id}")).await;
    let token = crate::auth::token_for(s, "patient/AuditEvent.rs", Some(me_id), "patient");
    let r = crate::auth::send_as(
        s,
        Some(&token),
        reqwest::Method::GET,
        "AuditEvent?_count=1000",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mine = entries(&r.json());
    assert!(!mine.is_empty());
    let patient_ref = format!("Patient/{me_id}");
    for e in &mine {
        assert!(
            entity_refs(e).iter().any(|r| r == &patient_ref),
            "an event not about this patient: {e:#}"
        );
    }
    // The administrator's read of this record is listed; the other
    // patient's is not.
    assert!(mine.iter().any(|e| subtype(e) == "read"));
    let other_ref = format!("Patient/{other_id}");
    assert!(mine.iter().all(|e| !entity_refs(e).contains(&other_ref)));
}

async fn hl7v2_messages_and_token_requests_are_recorded(s: &TestServer) {
    let mut mllp = crate::hl7v2::Mllp::connect(s.mllp_addr()).await;
    let ack = mllp
        .send(&crate::hl7v2::adt("A01", "AUD1", "MRN-AUD-1", "Messageson"))
        .await;
    assert_eq!(crate::hl7v2::ack_code(&ack), "AA");
    let imports = events(
        s,
        "type=http://dicom.nema.org/resources/ontology/DCM|110107",
    )
    .await;
    let import = imports.first().expect("the message is recorded");
    assert_eq!(import["outcome"], "0");
    assert_eq!(import["subtype"][0]["code"], "A01");
    // The sender as it names itself and where it connected from; plain
    // MLLP has no certificate or token to name it by.
    let sender = &import["agent"][0];
    assert_eq!(sender["requestor"], true, "{sender}");
    assert_eq!(sender["who"]["display"], "REG|NORTH", "{sender}");
    assert!(sender["who"].get("identifier").is_none(), "{sender}");
    assert_eq!(
        sender["network"],
        json!({"address": "127.0.0.1", "type": "2"}),
        "{sender}"
    );
    let refs = entity_refs(import);
    assert!(refs.iter().any(|r| r.starts_with("Patient/")), "{refs:?}");
    assert!(refs.iter().any(|r| r.starts_with("Encounter/")), "{refs:?}");
    let patient = refs
        .iter()
        .filter(|r| r.starts_with("Patient/"))
        .find_map(|r| r.strip_suffix("/_history/1"))
        .expect("the new Patient's first version is named")
        .to_string();

    // An update of the same patient names the versions it wrote: the
    // Patient's second, and for every resource the version now stored.
    let ack = mllp
        .send(&crate::hl7v2::adt("A08", "AUD2", "MRN-AUD-1", "Messageson"))
        .await;
    assert_eq!(crate::hl7v2::ack_code(&ack), "AA", "{ack}");
    let imports = events(
        s,
        "type=http://dicom.nema.org/resources/ontology/DCM|110107",
    )
    .await;
    let update = imports
        .iter()
        .find(|e| subtype(e) == "A08")
        .expect("the A08 is recorded");
    let refs = entity_refs(update);
    assert!(
        refs.contains(&format!("{patient}/_history/2")),
        "{patient} version 2 in {refs:?}"
    );
    for r in refs.iter().filter(|r| r.contains("/_history/")) {
        let (target, version) = r.split_once("/_history/").unwrap();
        let stored = s.get(target).await;
        assert_eq!(stored.status, 200, "{r}: {}", stored.text);
        assert_eq!(stored.json()["meta"]["versionId"], version, "{r}");
    }

    // A token request with a wrong secret is recorded as a failure.
    let r = s
        .anonymous
        .post(format!("{}/auth/token", s.origin))
        .basic_auth("no-such-client", Some("wrong"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let auth = events(
        s,
        "type=http://dicom.nema.org/resources/ontology/DCM|110114&outcome=4",
    )
    .await;
    let failed = auth.first().expect("the failed token request is recorded");
    assert_eq!(
        failed["agent"][0]["who"]["identifier"]["value"],
        "no-such-client"
    );
    assert!(failed["outcomeDesc"]
        .as_str()
        .unwrap()
        .starts_with("client_credentials"));
}

/// HL7 v2 messages from several connections at once commit together; each
/// applied message still has its own record naming what it wrote, and the
/// chain verifies.
async fn messages_committed_together_are_each_recorded(s: &TestServer) {
    let addr = s.mllp_addr();
    let mut tasks = Vec::new();
    for conn in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut mllp = crate::hl7v2::Mllp::connect(addr).await;
            for i in 0..5 {
                let message = crate::hl7v2::adt(
                    "A01",
                    &format!("GRP-{conn}-{i}"),
                    &format!("MRN-GRP-{conn}-{i}"),
                    "Grouped",
                );
                let ack = mllp.send(&message).await;
                assert_eq!(crate::hl7v2::ack_code(&ack), "AA", "{ack}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = events(
        s,
        "type=http://dicom.nema.org/resources/ontology/DCM|110107&outcome=0",
    )
    .await;
    assert_eq!(records.len(), 20, "one record per applied message");
    let mut patients: Vec<String> = records
        .iter()
        .map(|r| {
            let refs = entity_refs(r);
            let mut patients: Vec<&str> = refs
                .iter()
                .filter(|x| x.starts_with("Patient/"))
                .map(|x| x.split("/_history").next().unwrap())
                .collect();
            patients.dedup();
            assert_eq!(
                patients.len(),
                1,
                "a record names its own message's patient: {refs:?}"
            );
            patients[0].to_string()
        })
        .collect();
    patients.sort();
    patients.dedup();
    assert_eq!(patients.len(), 20, "each record names a different patient");
    assert_eq!(verify(s).await, Vec::new(), "the chain verifies");
}

/// Verifies the chain in-process; returns the problems found.
async fn verify(s: &TestServer) -> Vec<(i64, String)> {
    let auth = &s.app().auth;
    let report = charaka::audit::verify::verify(s.fhir(), |jws| {
        charaka::audit::checkpoint::verify_signature(auth, jws)
    })
    .await
    .unwrap();
    report
        .problems
        .into_iter()
        .map(|p| (p.seq, p.message))
        .collect()
}

async fn record_ids(s: &TestServer) -> Vec<String> {
    s.fhir()
        .store
        .audit_chain(1, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.event_id)
        .collect()
}

async fn verify_names_each_tampered_record(s: &TestServer) {
    for n in 0..10 {
        s.create(&json!({"resourceType": "Patient", "name": [{"family": format!("Chain{n}")}]}))
            .await;
    }
    assert_eq!(verify(s).await, vec![], "an untouched trail verifies");
    let ids = record_ids(s).await;
    assert!(ids.len() >= 10, "{}", ids.len());

    // Modified: record 3 gets record 2's event body.
    s.sql(&format!(
        "UPDATE resource_versions SET body = (SELECT v.body FROM resource_versions v \
         JOIN resources r ON r.rid = v.rid WHERE r.type = 'AuditEvent' AND r.id = '{}') \
         WHERE rid = (SELECT rid FROM resources WHERE type = 'AuditEvent' AND id = '{}')",
        ids[1], ids[2]
    ))
    .await;
    let problems = verify(s).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, 3);
    assert!(problems[0].1.contains("record 3"), "{problems:?}");

    // Deleted: record 5's link is gone (and its event is no longer chained).
    s.sql("DELETE FROM audit_chain WHERE tenant = 1 AND seq = 5")
        .await;
    let problems = verify(s).await;
    assert!(
        problems
            .iter()
            .any(|(seq, m)| *seq == 5 && m.contains("missing")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|(_, m)| m.contains(&ids[4]) && m.contains("not in the chain")),
        "{problems:?}"
    );

    // Reordered: records 7 and 8 swap places.
    s.sql(
        "UPDATE audit_chain SET seq = -7 WHERE tenant = 1 AND seq = 7; \
         UPDATE audit_chain SET seq = 7 WHERE tenant = 1 AND seq = 8; \
         UPDATE audit_chain SET seq = 8 WHERE tenant = 1 AND seq = -7;",
    )
    .await;
    let problems = verify(s).await;
    assert!(problems.iter().any(|(seq, _)| *seq == 7), "{problems:?}");

    // Removed from the end: the head no longer matches.
    let last = ids.len();
    s.sql(&format!(
        "DELETE FROM audit_chain WHERE tenant = 1 AND seq > {}",
        last - 1
    ))
    .await;
    let problems = verify(s).await;
    assert!(
        problems.iter().any(|(_, m)| m.contains("head")),
        "{problems:?}"
    );

    // The command line says the same and fails.
    if s.config().database_url.starts_with("sqlite:") {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_charaka"))
            .args([
                "audit",
                "verify",
                "--database-url",
                &s.config().database_url,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("record 3"), "{stdout}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn blob(s: &TestServer, bytes: &[u8]) -> String {
    if s.config().database_url.starts_with("sqlite:") {
        format!("X'{}'", hex(bytes))
    } else {
        format!("'\\x{}'::bytea", hex(bytes))
    }
}

async fn checkpoints_expose_a_rewritten_chain(s: &TestServer) {
    for n in 0..4 {
        s.create(&json!({"resourceType": "Patient", "name": [{"family": format!("Pin{n}")}]}))
            .await;
    }
    let signed = charaka::audit::checkpoint::checkpoint(s.fhir(), &s.app().auth)
        .await
        .unwrap()
        .expect("a checkpoint is signed");
    assert_eq!(verify(s).await, vec![]);

    // Someone with database access (but not the keys) removes record 2 and
    // its event, renumbers the records after it and recomputes every hash
    // from there, head included: the chain is consistent again...
    let ids = record_ids(s).await;
    let rid = format!(
        "(SELECT rid FROM resources WHERE type = 'AuditEvent' AND id = '{}')",
        ids[1]
    );
    let mut sql = String::new();
    for table in charaka::store::index::TABLES {
        sql.push_str(&format!("DELETE FROM {table} WHERE rid = {rid};\n"));
    }
    sql.push_str(&format!(
        "DELETE FROM resource_versions WHERE rid = {rid};\n\
         DELETE FROM resources WHERE type = 'AuditEvent' AND id = '{}';\n\
         DELETE FROM audit_chain WHERE tenant = 1 AND seq = 2;\n\
         UPDATE audit_chain SET seq = -(seq - 1) WHERE tenant = 1 AND seq > 2;\n\
         UPDATE audit_chain SET seq = -seq WHERE tenant = 1 AND seq < 0;\n",
        ids[1]
    ));
    s.sql(&sql).await;
    let store = &s.fhir().store;
    let links = store.audit_chain(1, 0, 10_000).await.unwrap();
    let mut previous = vec![0u8; 32];
    let mut sql = String::new();
    for link in &links {
        let body = store
            .vread(1, "AuditEvent", &link.event_id, 1)
            .await
            .unwrap()
            .unwrap()
            .body
            .unwrap();
        let hash = charaka::audit::chain::link_hash(&previous, link.seq, &link.event_id, &body);
        sql.push_str(&format!(
            "UPDATE audit_chain SET hash = {} WHERE tenant = 1 AND seq = {};\n",
            blob(s, &hash),
            link.seq
        ));
        previous = hash;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET seq = {}, hash = {} WHERE tenant = 1;",
        links.len(),
        blob(s, &previous)
    ));
    s.sql(&sql).await;
    // ...but no longer matches what the server signed.
    let problems = verify(s).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, signed);
    assert!(problems[0].1.contains("checkpoint"), "{problems:?}");
}

async fn erasure_removes_a_patient_for_good(s: &TestServer) {
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Forgetme"}]}))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let keep = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Keepme"}]}))
        .await;
    let keep_id = keep["id"].as_str().unwrap().to_string();
    let mut obs = s
        .create(&json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
            "subject": {"reference": format!("Patient/{pid}")}
        }))
        .await;
    let oid = obs["id"].as_str().unwrap().to_string();
    obs["status"] = json!("amended");
    assert_eq!(s.put(&format!("Observation/{oid}"), &obs).await.status, 200);
    let other_obs = s
        .create(&json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
            "subject": {"reference": format!("Patient/{keep_id}")}
        }))
        .await;
    // Deleted before the erasure: its history still holds the data.
    let gone = s
        .create(&json!({
            "resourceType": "Condition", "code": {"text": "old"},
            "subject": {"reference": format!("Patient/{pid}")}
        }))
        .await;
    let gone_id = gone["id"].as_str().unwrap().to_string();
    assert_eq!(s.delete(&format!("Condition/{gone_id}")).await.status, 200);
    // Read once, so the read cache holds the patient.
    assert_eq!(s.get(&format!("Patient/{pid}")).await.status, 200);

    // Not for everyone: a user without administrator rights is refused.
    let user = crate::auth::token_for(s, "user/*.cruds", None, "practitioner");
    let refused = crate::auth::send_as(
        s,
        Some(&user),
        reqwest::Method::POST,
        &format!("Patient/{pid}/$erase"),
        Some(&json!({"resourceType": "Parameters"})),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(s.get(&format!("Patient/{pid}")).await.status, 200);

    let r = s
        .post(
            &format!("Patient/{pid}/$erase"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let out = r.json();
    assert_eq!(out["parameter"][0]["valueInteger"], 3, "{out:#}");
    s.get(&format!("Condition/{gone_id}/_history/1"))
        .await
        .outcome(404);

    // Gone, every version, as if never written (404, not 410).
    s.get(&format!("Patient/{pid}")).await.outcome(404);
    s.get(&format!("Observation/{oid}")).await.outcome(404);
    s.get(&format!("Observation/{oid}/_history/1"))
        .await
        .outcome(404);
    let found = s
        .get(&format!("Observation?subject=Patient/{pid}"))
        .await
        .json();
    assert!(entries(&found).is_empty());
    let names = s.get("Patient?name=forgetme").await.json();
    assert!(entries(&names).is_empty());
    let history = s.get("_history?_count=1000").await.json();
    assert!(entries(&history)
        .iter()
        .all(|r| r["id"] != json!(pid) && r["id"] != json!(oid)));
    // Others are untouched.
    assert_eq!(s.get(&format!("Patient/{keep_id}")).await.status, 200);
    assert_eq!(
        s.get(&format!(
            "Observation/{}",
            other_obs["id"].as_str().unwrap()
        ))
        .await
        .status,
        200
    );
    // The erasure is on record, naming ids only; the trail still verifies.
    let erasures = events(s, &format!("patient={pid}&subtype=operation")).await;
    let erasure = erasures.first().expect("the erasure is recorded");
    let refs = entity_refs(erasure);
    assert!(
        refs.contains(&format!("Observation/{oid}/_history/2")),
        "{refs:?}"
    );
    assert!(!erasure.to_string().contains("Forgetme"));
    assert_eq!(verify(s).await, vec![]);
    // A second erasure finds nothing.
    s.post(
        &format!("Patient/{pid}/$erase"),
        &json!({"resourceType": "Parameters"}),
    )
    .await
    .outcome(404);
}
