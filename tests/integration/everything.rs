//! `Patient/$everything`: the compartment and the resources it refers to,
//! `_type`, `_since`, `start`/`end`, paging, errors and access control.

use crate::search::link;
use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::auth::{send_as, token_for};
use crate::harness::TestServer;

/// Stores `body` under its own id (PUT).
async fn put(s: &TestServer, body: Value) -> Value {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text);
    r.json()
}

fn reference(r: &str) -> Value {
    json!({"reference": r})
}

/// Two patients: `ev-a` with an Encounter, an Observation and a Condition
/// referring to practitioners, an organization and a location; `ev-b` with
/// one Observation by another practitioner. Returns A's expected record
/// (`Type/id` of every resource in it).
async fn two_patients(s: &TestServer) -> BTreeSet<String> {
    put(
        s,
        json!({"resourceType": "Organization", "id": "ev-org-a", "name": "A's clinic"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Organization", "id": "ev-org-other", "name": "Unrelated"}),
    )
    .await;
    for p in ["ev-gp", "ev-doc", "ev-doc-b"] {
        put(
            s,
            json!({"resourceType": "Practitioner", "id": p, "name": [{"family": p}]}),
        )
        .await;
    }
    put(
        s,
        json!({"resourceType": "Location", "id": "ev-room", "name": "Room 1"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Patient", "id": "ev-a", "name": [{"family": "Everything"}],
        "generalPractitioner": [reference("Practitioner/ev-gp")],
        "managingOrganization": reference("Organization/ev-org-a")}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Patient", "id": "ev-b", "name": [{"family": "Other"}]}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Encounter", "id": "ev-enc", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": reference("Patient/ev-a"),
        "participant": [{"individual": reference("Practitioner/ev-doc")}],
        "location": [{"location": reference("Location/ev-room")}],
        "period": {"start": "2020-01-01T09:00:00Z", "end": "2020-01-01T10:00:00Z"}}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Observation", "id": "ev-obs", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": reference("Patient/ev-a"), "encounter": reference("Encounter/ev-enc"),
        "performer": [reference("Practitioner/ev-doc")],
        "effectiveDateTime": "2021-06-01"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Condition", "id": "ev-cond",
        "code": {"text": "something"}, "subject": reference("Patient/ev-a")}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Observation", "id": "ev-obs-b", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": reference("Patient/ev-b"), "performer": [reference("Practitioner/ev-doc-b")]}),
    )
    .await;
    [
        "Patient/ev-a",
        "Encounter/ev-enc",
        "Observation/ev-obs",
        "Condition/ev-cond",
        "Practitioner/ev-gp",
        "Practitioner/ev-doc",
        "Organization/ev-org-a",
        "Location/ev-room",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set(bundle: &Value) -> BTreeSet<String> {
    let all = ids(bundle);
    let set: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "duplicates in {all:?}");
    set
}

fn next(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_string())
}

async fn everything_gathers_the_compartment_and_what_it_refers_to(s: &TestServer) {
    let expected = two_patients(s).await;
    // Reads leave AuditEvents naming the patient: they stay out.
    assert_eq!(s.get("Patient/ev-a").await.status, 200);
    let r = s.get("Patient/ev-a/$everything").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "searchset");
    assert_eq!(set(&b), expected);
    assert_eq!(b["total"], expected.len());
    let audits = s
        .get("AuditEvent?patient=Patient/ev-a&_total=accurate")
        .await
        .json();
    assert!(audits["total"].as_i64().unwrap() > 0, "{audits}");

    // The POST form with a Parameters body.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueCode": "Observation"},
        {"name": "_type", "valueCode": "Practitioner"}
    ]});
    let r = s.post("Patient/ev-a/$everything", &params).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let only: BTreeSet<String> = expected
        .iter()
        .filter(|i| i.starts_with("Observation/") || i.starts_with("Practitioner/"))
        .cloned()
        .collect();
    assert_eq!(set(&r.json()), only);

    // Every patient: both records, still without AuditEvents.
    let all = s.get("Patient/$everything?_count=1000").await.json();
    let all = set(&all);
    assert!(all.is_superset(&expected), "{all:?}");
    for i in [
        "Patient/ev-b",
        "Observation/ev-obs-b",
        "Practitioner/ev-doc-b",
    ] {
        assert!(all.contains(i), "{i} missing from {all:?}");
    }
    assert!(!all.contains("Organization/ev-org-other"));
    assert!(all.iter().all(|i| !i.starts_with("AuditEvent/")));
    let r = s
        .post(
            "Patient/$everything",
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "_type", "valueCode": "Patient"}
            ]}),
        )
        .await;
    let patients = set(&r.json());
    assert!(patients.contains("Patient/ev-a") && patients.contains("Patient/ev-b"));
    assert!(patients.iter().all(|i| i.starts_with("Patient/")));
}

async fn everything_filters_by_type_since_and_care_dates(s: &TestServer) {
    let expected = two_patients(s).await;
    let r = s
        .get("Patient/ev-a/$everything?_type=Observation,Location")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        set(&r.json()),
        BTreeSet::from([
            "Observation/ev-obs".to_string(),
            "Location/ev-room".to_string()
        ])
    );

    // _since: a new version of the Condition, then what changed from then on.
    let cond = s.get("Condition/ev-cond").await.json();
    let updated = s.put("Condition/ev-cond", &cond).await.json();
    let since = updated["meta"]["lastUpdated"].as_str().unwrap().to_string();
    let full = s.get("Patient/ev-a/$everything").await.json();
    let at = |v: &str| chrono::DateTime::parse_from_rfc3339(v).unwrap();
    let newer: BTreeSet<String> = full["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| at(e["resource"]["meta"]["lastUpdated"].as_str().unwrap()) >= at(&since))
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert!(newer.contains("Condition/ev-cond"));
    assert!(newer.len() < expected.len());
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("_since", &since)
        .finish();
    let r = s.get(&format!("Patient/ev-a/$everything?{q}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(set(&r.json()), newer);

    // Care dates: the Encounter (2020) and the Observation (2021) by their
    // dates; the Condition has no `date` parameter and stays.
    let later = set(&s
        .get("Patient/ev-a/$everything?start=2021-01-01")
        .await
        .json());
    assert!(later.contains("Observation/ev-obs") && later.contains("Condition/ev-cond"));
    assert!(later.contains("Patient/ev-a"));
    assert!(!later.contains("Encounter/ev-enc"));
    let earlier = set(&s
        .get("Patient/ev-a/$everything?end=2020-12-31")
        .await
        .json());
    assert!(earlier.contains("Encounter/ev-enc") && earlier.contains("Condition/ev-cond"));
    assert!(!earlier.contains("Observation/ev-obs"));
    let both = set(&s
        .get("Patient/ev-a/$everything?start=2020-01-01&end=2021-12-31")
        .await
        .json());
    assert_eq!(both, expected);
}

async fn everything_pages_without_duplicates_or_gaps(s: &TestServer) {
    let mut expected = two_patients(s).await;
    for i in 0..13 {
        let id = format!("ev-page-{i}");
        put(
            s,
            json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "x"}, "subject": reference("Patient/ev-a")}),
        )
        .await;
        expected.insert(format!("Observation/{id}"));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut url = "Patient/ev-a/$everything?_count=4".to_string();
    let mut pages = 0;
    loop {
        let r = s.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let b = r.json();
        let page = ids(&b);
        assert!(page.len() <= 4);
        pages += 1;
        seen.extend(page);
        if pages == 2 {
            // Created while paging: served on a later page, nothing skipped.
            put(
                s,
                json!({"resourceType": "Observation", "id": "ev-page-late", "status": "final",
                "code": {"text": "x"}, "subject": reference("Patient/ev-a")}),
            )
            .await;
            expected.insert("Observation/ev-page-late".to_string());
        }
        match next(&b) {
            Some(n) => {
                assert!(n.contains("_count=4"), "{n}");
                url = n;
            }
            None => break,
        }
        assert!(pages <= expected.len(), "paging does not end");
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    assert_eq!(unique, expected);
    assert_eq!(pages, expected.len().div_ceil(4));
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Observation/ev-page-late")
    );
}

async fn everything_pages_backward(s: &TestServer) {
    let mut expected = two_patients(s).await;
    for i in 0..9 {
        let id = format!("ev-back-{i}");
        put(
            s,
            json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "x"}, "subject": reference("Patient/ev-a")}),
        )
        .await;
        expected.insert(format!("Observation/{id}"));
    }
    // 17 resources in pages of 5.
    let first = s.get("Patient/ev-a/$everything?_count=5").await.json();
    assert!(link(&first, "previous").is_none());
    let last_url = link(&first, "last").expect("a last link");
    let second = s.get(&next(&first).unwrap()).await.json();
    // Back from the second page: the first page again.
    let back = s.get(&link(&second, "previous").unwrap()).await;
    assert_eq!(back.status, 200, "{}", back.text);
    let back = back.json();
    assert_eq!(ids(&back), ids(&first));
    assert!(link(&back, "previous").is_none());
    assert_eq!(
        ids(&s.get(&next(&back).unwrap()).await.json()),
        ids(&second)
    );

    // From the last page backward: every resource once, in reverse order.
    let last = s.get(&last_url).await.json();
    assert!(next(&last).is_none());
    assert_eq!(ids(&last).len(), 5);
    let mut pages = vec![ids(&last)];
    let mut page = last;
    while let Some(previous) = link(&page, "previous") {
        page = s.get(&previous).await.json();
        pages.push(ids(&page));
        assert!(pages.len() <= expected.len(), "paging does not end");
    }
    let seen: Vec<String> = pages.into_iter().rev().flatten().collect();
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    assert_eq!(unique, expected);
    // The same order as going forward.
    let mut forward = Vec::new();
    let mut url = Some("Patient/ev-a/$everything?_count=5".to_string());
    while let Some(u) = url {
        let b = s.get(&u).await.json();
        forward.extend(ids(&b));
        url = next(&b);
    }
    assert_eq!(forward, seen);
    // A search cursor with sort values is not one of $everything's.
    let search = s.get("Observation?_sort=date&_count=1").await.json();
    let cursor = next(&search).unwrap();
    let cursor = cursor.split("_cursor=").nth(1).unwrap();
    s.get(&format!("Patient/ev-a/$everything?_cursor={cursor}"))
        .await
        .outcome(400);
}

async fn everything_errors(s: &TestServer) {
    two_patients(s).await;
    s.get("Patient/nobody/$everything").await.outcome(404);
    s.get("Patient/ev-a/$everything?_since=yesterday")
        .await
        .outcome(400);
    s.get("Patient/ev-a/$everything?_type=Nonsense")
        .await
        .outcome(400);
    s.get("Patient/ev-a/$everything?start=2021-01-01&end=2020-01-01")
        .await
        .outcome(400);
    s.get("Observation/ev-obs/$everything").await.outcome(404);
    // Unknown parameters: a warning by default, an error when strict.
    let b = s.get("Patient/ev-a/$everything?foo=1").await.json();
    let last = b["entry"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["search"]["mode"], "outcome");
    assert!(last["resource"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("foo"));
    s.get_with(
        "Patient/ev-a/$everything?foo=1",
        &[("prefer", "handling=strict")],
    )
    .await
    .outcome(400);
    let r = s
        .json(
            Method::POST,
            "Patient/ev-a/$everything",
            &json!({"resourceType": "Patient"}),
            &[],
        )
        .await;
    r.outcome(400);
}

async fn everything_stays_within_a_patient_token(s: &TestServer) {
    let expected = two_patients(s).await;
    let t = token_for(s, "patient/*.rs", Some("ev-a"), "patient");
    let r = send_as(s, Some(&t), Method::GET, "Patient/ev-a/$everything", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(set(&r.json()), expected);
    send_as(s, Some(&t), Method::GET, "Patient/ev-b/$everything", None)
        .await
        .outcome(404);
    let r = send_as(s, Some(&t), Method::GET, "Patient/$everything", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(set(&r.json()), expected);
    // The POST form is checked the same way.
    let r = send_as(
        s,
        Some(&t),
        Method::POST,
        "Patient/ev-b/$everything",
        Some(&json!({"resourceType": "Parameters"})),
    )
    .await;
    r.outcome(404);

    // Without the search permission on Patient.
    let t = token_for(s, "patient/Observation.rs", Some("ev-a"), "patient");
    send_as(s, Some(&t), Method::GET, "Patient/ev-a/$everything", None)
        .await
        .outcome(403);
    // Types the token cannot search are left out, or refused when named.
    let t = token_for(
        s,
        "patient/Patient.rs patient/Observation.rs",
        Some("ev-a"),
        "patient",
    );
    let r = send_as(s, Some(&t), Method::GET, "Patient/ev-a/$everything", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        set(&r.json()),
        BTreeSet::from(["Patient/ev-a".to_string(), "Observation/ev-obs".to_string()])
    );
    send_as(
        s,
        Some(&t),
        Method::GET,
        "Patient/ev-a/$everything?_type=Encounter",
        None,
    )
    .await
    .outcome(403);
}

crate::on_both_databases!(
    everything_gathers_the_compartment_and_what_it_refers_to,
    everything_filters_by_type_since_and_care_dates,
    everything_pages_without_duplicates_or_gaps,
    everything_pages_backward,
    everything_errors,
    everything_stays_within_a_patient_token,
    encounter_everything_gathers_its_compartment,
    encounter_everything_pages,
    encounter_everything_errors,
    encounter_everything_stays_within_a_patient_token,
);

/// A second encounter of `ev-a` with a MedicationAdministration (linked by
/// `context`), a Condition and a Procedure (by `encounter`), and the
/// record of [`two_patients`]. Returns the expected record of `ev-enc`.
async fn encounter_record(s: &TestServer) -> BTreeSet<String> {
    two_patients(s).await;
    put(
        s,
        json!({"resourceType": "Organization", "id": "ev-provider", "name": "Ward"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Medication", "id": "ev-med",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1191"}]}}),
    )
    .await;
    // ev-enc again, now with a service provider.
    put(
        s,
        json!({"resourceType": "Encounter", "id": "ev-enc", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": reference("Patient/ev-a"),
        "participant": [{"individual": reference("Practitioner/ev-doc")}],
        "location": [{"location": reference("Location/ev-room")}],
        "serviceProvider": reference("Organization/ev-provider"),
        "period": {"start": "2020-01-01T09:00:00Z", "end": "2020-01-01T10:00:00Z"}}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "MedicationAdministration", "id": "ev-admin",
        "status": "completed", "medicationReference": reference("Medication/ev-med"),
        "subject": reference("Patient/ev-a"), "context": reference("Encounter/ev-enc"),
        "effectiveDateTime": "2020-01-01T09:30:00Z"}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Condition", "id": "ev-enc-cond", "code": {"text": "cough"},
        "subject": reference("Patient/ev-a"), "encounter": reference("Encounter/ev-enc")}),
    )
    .await;
    // Another encounter of the same patient, and what belongs to it.
    put(
        s,
        json!({"resourceType": "Encounter", "id": "ev-enc-2", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": reference("Patient/ev-a")}),
    )
    .await;
    put(
        s,
        json!({"resourceType": "Procedure", "id": "ev-proc-2", "status": "completed",
        "subject": reference("Patient/ev-a"), "encounter": reference("Encounter/ev-enc-2"),
        "performer": [{"actor": reference("Practitioner/ev-doc-b")}]}),
    )
    .await;
    [
        "Encounter/ev-enc",
        "Observation/ev-obs",
        "MedicationAdministration/ev-admin",
        "Condition/ev-enc-cond",
        "Patient/ev-a",
        "Practitioner/ev-doc",
        "Location/ev-room",
        "Organization/ev-provider",
        "Medication/ev-med",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

async fn encounter_everything_gathers_its_compartment(s: &TestServer) {
    let expected = encounter_record(s).await;
    let r = s.get("Encounter/ev-enc/$everything").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["type"], "searchset");
    assert_eq!(set(&b), expected);
    assert_eq!(b["total"], expected.len());
    let self_link = b["link"][0]["url"].as_str().unwrap();
    assert!(
        self_link.contains("/Encounter/ev-enc/$everything?"),
        "{self_link}"
    );

    // The other encounter: its Procedure and what that refers to.
    let other = set(&s.get("Encounter/ev-enc-2/$everything").await.json());
    assert_eq!(
        other,
        BTreeSet::from([
            "Encounter/ev-enc-2".to_string(),
            "Procedure/ev-proc-2".to_string(),
            "Patient/ev-a".to_string(),
            "Practitioner/ev-doc-b".to_string(),
        ])
    );

    // _type, and the POST form.
    let r = s
        .get("Encounter/ev-enc/$everything?_type=Observation,Condition")
        .await;
    assert_eq!(
        set(&r.json()),
        BTreeSet::from([
            "Observation/ev-obs".to_string(),
            "Condition/ev-enc-cond".to_string()
        ])
    );
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueCode": "Medication"},
        {"name": "_type", "valueCode": "Encounter"}
    ]});
    let r = s.post("Encounter/ev-enc/$everything", &params).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        set(&r.json()),
        BTreeSet::from([
            "Encounter/ev-enc".to_string(),
            "Medication/ev-med".to_string()
        ])
    );

    // _since: only the Condition changes.
    let cond = s.get("Condition/ev-enc-cond").await.json();
    let updated = s.put("Condition/ev-enc-cond", &cond).await.json();
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("_since", updated["meta"]["lastUpdated"].as_str().unwrap())
        .finish();
    let r = s.get(&format!("Encounter/ev-enc/$everything?{q}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(set(&r.json()).contains("Condition/ev-enc-cond"));
    assert!(!set(&r.json()).contains("Patient/ev-a"));

    // The audit trail records an operation naming the encounter's patient,
    // with the request as its query.
    let audits = s
        .get("AuditEvent?patient=Patient/ev-a&subtype=operation&_count=100")
        .await
        .json();
    let queries: Vec<String> = audits["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e["resource"]["entity"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|x| {
            use base64::Engine;
            let q = x["query"].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(q).ok()?;
            String::from_utf8(bytes).ok()
        })
        .collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("/Encounter/ev-enc/$everything")),
        "{queries:?}"
    );
}

async fn encounter_everything_pages(s: &TestServer) {
    let mut expected = encounter_record(s).await;
    for i in 0..6 {
        let id = format!("ev-enc-obs-{i}");
        put(
            s,
            json!({"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "x"}, "encounter": reference("Encounter/ev-enc")}),
        )
        .await;
        expected.insert(format!("Observation/{id}"));
    }
    let mut seen = Vec::new();
    let mut url = "Encounter/ev-enc/$everything?_count=5".to_string();
    loop {
        let b = s.get(&url).await.json();
        let page = ids(&b);
        assert!(page.len() <= 5);
        seen.extend(page);
        match next(&b) {
            Some(n) => {
                assert!(n.contains("/Encounter/ev-enc/$everything?"), "{n}");
                url = n;
            }
            None => break,
        }
        assert!(seen.len() <= expected.len(), "paging does not end");
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
    assert_eq!(unique, expected);
}

async fn encounter_everything_errors(s: &TestServer) {
    encounter_record(s).await;
    s.get("Encounter/nowhere/$everything").await.outcome(404);
    // R4 defines the instance level only.
    s.get("Encounter/$everything").await.outcome(404);
    s.get("Encounter/ev-enc/$everything?_since=soon")
        .await
        .outcome(400);
    s.get("Encounter/ev-enc/$everything?_type=Nonsense")
        .await
        .outcome(400);
    s.get("Encounter/ev-enc/$everything?_count=-1")
        .await
        .outcome(400);
    // Care dates are Patient/$everything's: unknown here.
    let b = s
        .get("Encounter/ev-enc/$everything?start=2020-01-01")
        .await
        .json();
    let last = b["entry"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["search"]["mode"], "outcome");
    assert!(last["resource"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("start"));
    s.get_with(
        "Encounter/ev-enc/$everything?start=2020-01-01",
        &[("prefer", "handling=strict")],
    )
    .await
    .outcome(400);
    s.post(
        "Encounter/ev-enc/$everything",
        &json!({"resourceType": "Encounter"}),
    )
    .await
    .outcome(400);
    // A deleted encounter is gone.
    assert_eq!(s.delete("Encounter/ev-enc-2").await.status, 200);
    s.get("Encounter/ev-enc-2/$everything").await.outcome(410);
}

async fn encounter_everything_stays_within_a_patient_token(s: &TestServer) {
    let expected = encounter_record(s).await;
    put(
        s,
        json!({"resourceType": "Encounter", "id": "ev-enc-b", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": reference("Patient/ev-b")}),
    )
    .await;
    let t = token_for(s, "patient/*.rs", Some("ev-a"), "patient");
    let r = send_as(
        s,
        Some(&t),
        Method::GET,
        "Encounter/ev-enc/$everything",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(set(&r.json()), expected);
    // Another patient's encounter is not there for this token.
    send_as(
        s,
        Some(&t),
        Method::GET,
        "Encounter/ev-enc-b/$everything",
        None,
    )
    .await
    .outcome(404);
    // Without the search permission on Encounter.
    let t = token_for(s, "patient/Observation.rs", Some("ev-a"), "patient");
    send_as(
        s,
        Some(&t),
        Method::GET,
        "Encounter/ev-enc/$everything",
        None,
    )
    .await
    .outcome(403);
    // Types the token cannot search are left out, or refused when named.
    let t = token_for(
        s,
        "patient/Encounter.rs patient/Observation.rs",
        Some("ev-a"),
        "patient",
    );
    let r = send_as(
        s,
        Some(&t),
        Method::GET,
        "Encounter/ev-enc/$everything",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        set(&r.json()),
        BTreeSet::from([
            "Encounter/ev-enc".to_string(),
            "Observation/ev-obs".to_string()
        ])
    );
    send_as(
        s,
        Some(&t),
        Method::GET,
        "Encounter/ev-enc/$everything?_type=Condition",
        None,
    )
    .await
    .outcome(403);
}
