//! Parameters for all resources (`_id`, `_lastUpdated`, `_tag`, `_profile`,
//! `_security`, `_list`, `_has`, `_type`, `_text`, `_content`), chains,
//! `_include`/`_revinclude`, and the other search entry points (POST
//! `_search`, system search, compartment search).

use reqwest::Method;
use serde_json::{json, Value};

use super::{create_id, enc, entries, ids, included, match_ids, search, set};
use crate::harness::TestServer;

async fn id_and_meta_params(s: &TestServer) {
    let tagged = create_id(
        s,
        json!({"resourceType": "Patient", "meta": {
            "tag": [{"system": "http://tags.example", "code": "vip"}],
            "profile": ["http://example.org/StructureDefinition/special-patient"],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
        }}),
    )
    .await;
    let other = create_id(
        s,
        json!({"resourceType": "Patient", "meta": {
            "tag": [{"system": "http://tags.example", "code": "plain"}],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]
        }}),
    )
    .await;
    let bare = create_id(s, json!({"resourceType": "Patient"})).await;

    assert_eq!(
        ids(s, &format!("Patient?_id={tagged}")).await,
        set(&[&tagged])
    );
    assert_eq!(
        ids(s, &format!("Patient?_id={tagged},{bare}")).await,
        set(&[&tagged, &bare])
    );
    assert!(ids(s, "Patient?_id=does-not-exist").await.is_empty());
    assert_eq!(
        ids(s, "Patient?_tag=http://tags.example|vip").await,
        set(&[&tagged])
    );
    assert_eq!(ids(s, "Patient?_tag=plain").await, set(&[&other]));
    assert_eq!(
        ids(s, "Patient?_tag:not=http://tags.example|vip").await,
        set(&[&other, &bare])
    );
    assert_eq!(
        ids(
            s,
            "Patient?_profile=http://example.org/StructureDefinition/special-patient"
        )
        .await,
        set(&[&tagged])
    );
    assert_eq!(
        ids(
            s,
            "Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"
        )
        .await,
        set(&[&tagged])
    );

    // _lastUpdated compares with the stored meta.lastUpdated.
    let first = s.get(&format!("Patient/{tagged}")).await.json()["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_string();
    let last = s.get(&format!("Patient/{bare}")).await.json()["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first < last, "{first} < {last}");
    let all = set(&[&tagged, &other, &bare]);
    assert_eq!(ids(s, "Patient?_lastUpdated=gt2000-01-01").await, all);
    assert!(ids(s, "Patient?_lastUpdated=lt2000-01-01").await.is_empty());
    assert_eq!(
        ids(s, &format!("Patient?_lastUpdated=ge{}", enc(&first))).await,
        all
    );
    assert_eq!(
        ids(s, &format!("Patient?_lastUpdated={}", enc(&first))).await,
        set(&[&tagged])
    );
    assert_eq!(
        ids(s, &format!("Patient?_lastUpdated=le{}", enc(&first))).await,
        set(&[&tagged])
    );
    let after_first = ids(s, &format!("Patient?_lastUpdated=gt{}", enc(&first))).await;
    assert!(!after_first.contains(&tagged) && after_first.contains(&bare));
    let before_last = ids(s, &format!("Patient?_lastUpdated=lt{}", enc(&last))).await;
    assert!(before_last.contains(&tagged) && !before_last.contains(&bare));
    let year = &first[..4];
    assert_eq!(ids(s, &format!("Patient?_lastUpdated={year}")).await, all);
}

/// `_text` searches the narrative, `_content` the whole resource, as text:
/// a word anywhere matches.
async fn text_and_content(s: &TestServer) {
    let div = |t: &str| json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{t}</div>")});
    let p1 = create_id(
        s,
        json!({"resourceType": "Patient", "text": div("Known diabetic, lives alone"),
               "name": [{"family": "Lumberjack"}]}),
    )
    .await;
    let p2 = create_id(
        s,
        json!({"resourceType": "Patient", "text": div("Healthy"),
               "name": [{"family": "Woodcutter"}],
               "address": [{"city": "Diabeticville"}]}),
    )
    .await;
    assert_eq!(ids(s, "Patient?_text=known").await, set(&[&p1]));
    assert_eq!(ids(s, "Patient?_text=diabetic").await, set(&[&p1]));
    assert_eq!(ids(s, "Patient?_text=alone").await, set(&[&p1]));
    assert!(ids(s, "Patient?_text=woodcutter").await.is_empty());
    assert_eq!(ids(s, "Patient?_content=lumberjack").await, set(&[&p1]));
    assert_eq!(ids(s, "Patient?_content=woodcutter").await, set(&[&p2]));
    assert_eq!(ids(s, "Patient?_content=healthy").await, set(&[&p2]));
}

/// `_list` and `_has` (nested too).
async fn list_and_has(s: &TestServer) {
    let div = |t: &str| json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{t}</div>")});
    let p1 = create_id(
        s,
        json!({"resourceType": "Patient", "text": div("Known diabetic, lives alone"),
               "name": [{"family": "Lumberjack"}]}),
    )
    .await;
    let p2 = create_id(
        s,
        json!({"resourceType": "Patient", "text": div("Healthy"),
               "name": [{"family": "Woodcutter"}],
               "address": [{"city": "Diabeticville"}]}),
    )
    .await;
    let p3 = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Plain"}]}),
    )
    .await;
    let list = create_id(
        s,
        json!({"resourceType": "List", "status": "current", "mode": "working",
               "entry": [{"item": {"reference": format!("Patient/{p1}")}},
                         {"item": {"reference": format!("Patient/{p3}")}}]}),
    )
    .await;
    assert_eq!(
        ids(s, &format!("Patient?_list={list}")).await,
        set(&[&p1, &p3])
    );

    // _has: patients referred to by an Observation with this code.
    let enc1 = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
               "subject": {"reference": format!("Patient/{p2}")}}),
    )
    .await;
    let enc3 = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
               "subject": {"reference": format!("Patient/{p3}")}}),
    )
    .await;
    let obs = |subject: &str, encounter: &str, code: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "subject": {"reference": subject},
               "encounter": {"reference": encounter}})
    };
    create_id(
        s,
        obs(
            &format!("Patient/{p1}"),
            &format!("Encounter/{enc3}"),
            "1234-5",
        ),
    )
    .await;
    create_id(
        s,
        obs(
            &format!("Patient/{p2}"),
            &format!("Encounter/{enc1}"),
            "9999-9",
        ),
    )
    .await;
    assert_eq!(
        ids(s, "Patient?_has:Observation:patient:code=1234-5").await,
        set(&[&p1])
    );
    assert_eq!(
        ids(
            s,
            "Patient?_has:Observation:subject:code=http://loinc.org|9999-9"
        )
        .await,
        set(&[&p2])
    );
    assert_eq!(
        ids(s, "Patient?_has:Observation:patient:code=1234-5,9999-9").await,
        set(&[&p1, &p2])
    );
    assert!(ids(s, "Patient?_has:Observation:patient:code=0000-0")
        .await
        .is_empty());
    // Nested: patients with an Encounter that has an Observation of code 1234-5
    // (that observation's encounter is p3's, although its subject is p1).
    assert_eq!(
        ids(
            s,
            "Patient?_has:Encounter:subject:_has:Observation:encounter:code=1234-5"
        )
        .await,
        set(&[&p3])
    );
    assert_eq!(
        ids(
            s,
            "Patient?_has:Encounter:subject:_has:Observation:encounter:code=9999-9"
        )
        .await,
        set(&[&p2])
    );
}

/// Chains: typed and untyped, two levels, on different target types.
async fn chained_search(s: &TestServer) {
    let acme = create_id(
        s,
        json!({"resourceType": "Organization", "name": "Acme Hospital"}),
    )
    .await;
    let beta = create_id(
        s,
        json!({"resourceType": "Organization", "name": "Beta Clinic"}),
    )
    .await;
    let smith = create_id(
        s,
        json!({"resourceType": "Practitioner", "name": [{"family": "Smith"}]}),
    )
    .await;
    let pa = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Chainy"}],
               "managingOrganization": {"reference": format!("Organization/{acme}")},
               "generalPractitioner": [{"reference": format!("Practitioner/{smith}")}]}),
    )
    .await;
    let pb = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Other"}],
               "managingOrganization": {"reference": format!("Organization/{beta}")},
               "generalPractitioner": [{"reference": format!("Organization/{beta}")}]}),
    )
    .await;
    let obs = |p: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
               "subject": {"reference": format!("Patient/{p}")}})
    };
    let oa = create_id(s, obs(&pa)).await;
    let ob = create_id(s, obs(&pb)).await;
    let ea = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
               "subject": {"reference": format!("Patient/{pa}")}}),
    )
    .await;

    let cases: &[(&str, Vec<&String>)] = &[
        ("Observation?subject:Patient.name=chainy", vec![&oa]),
        ("Observation?patient.name=chainy", vec![&oa]),
        ("Observation?patient.family=other", vec![&ob]),
        ("Observation?patient.name=nobody", vec![]),
        ("Observation?patient.organization.name=beta", vec![&ob]),
        (
            "Observation?patient.general-practitioner.name=smith",
            vec![&oa],
        ),
        (
            "Observation?patient.general-practitioner.name=beta",
            vec![&ob],
        ),
        (
            "Observation?patient.general-practitioner:Practitioner.name=smith",
            vec![&oa],
        ),
        (
            "Observation?patient.general-practitioner:Practitioner.name=beta",
            vec![],
        ),
        (
            "Encounter?subject:Patient.organization.name=acme",
            vec![&ea],
        ),
        ("Encounter?patient.organization.name=beta", vec![]),
        ("Observation?patient.name=chainy,other", vec![&oa, &ob]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(s, query).await, set(expected), "{query}");
    }
    // Reverse chain from the other side.
    assert_eq!(
        ids(
            s,
            &format!("Organization?_has:Patient:organization:_id={pa}")
        )
        .await,
        set(&[&acme])
    );
}

/// `_include` / `_revinclude`: included entries are marked `include`,
/// matches `match`; nothing appears twice.
async fn include_and_revinclude(s: &TestServer) {
    let org = create_id(
        s,
        json!({"resourceType": "Organization", "name": "Inc Org"}),
    )
    .await;
    let pr = create_id(
        s,
        json!({"resourceType": "Practitioner", "name": [{"family": "Doc"}]}),
    )
    .await;
    let p1 = create_id(
        s,
        json!({"resourceType": "Patient",
               "managingOrganization": {"reference": format!("Organization/{org}")}}),
    )
    .await;
    let p2 = create_id(s, json!({"resourceType": "Patient"})).await;
    let obs = |p: &str, members: Vec<String>| {
        let has_member: Vec<Value> = members
            .iter()
            .map(|m| json!({"reference": format!("Observation/{m}")}))
            .collect();
        let mut o = json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "inc-1"}]},
               "subject": {"reference": format!("Patient/{p}")},
               "performer": [{"reference": format!("Practitioner/{pr}")}]});
        if !has_member.is_empty() {
            o["hasMember"] = Value::from(has_member);
        }
        o
    };
    let o_a = create_id(s, obs(&p1, vec![])).await;
    let o_b = create_id(s, obs(&p1, vec![o_a.clone()])).await;
    let o_c = create_id(s, obs(&p2, vec![])).await;

    let check_modes = |b: &Value| {
        let mut seen = std::collections::HashSet::new();
        for e in entries(b) {
            let key = format!("{}/{}", e["resource"]["resourceType"], e["resource"]["id"]);
            assert!(seen.insert(key.clone()), "{key} appears twice: {b}");
            let mode = e["search"]["mode"].as_str().unwrap_or_default();
            assert!(
                mode == "match" || mode == "include" || mode == "outcome",
                "{e}"
            );
        }
    };

    let b = search(s, "Observation?code=inc-1&_include=Observation:subject").await;
    check_modes(&b);
    let mut m = match_ids(&b);
    m.sort();
    assert_eq!(m, set(&[&o_a, &o_b, &o_c]));
    let mut inc = included(&b);
    inc.sort();
    let mut expected = vec![format!("Patient/{p1}"), format!("Patient/{p2}")];
    expected.sort();
    assert_eq!(inc, expected, "patient p1 included once: {b}");
    assert_eq!(b["total"], 3, "total counts matches only");

    // Target type restricts: subject is never a Practitioner.
    let b = search(
        s,
        "Observation?code=inc-1&_include=Observation:subject:Practitioner",
    )
    .await;
    assert!(included(&b).is_empty(), "{b}");
    // Wildcard: every reference parameter.
    let b = search(s, &format!("Observation?_id={o_c}&_include=Observation:*")).await;
    check_modes(&b);
    let mut inc = included(&b);
    inc.sort();
    assert_eq!(
        inc,
        vec![format!("Patient/{p2}"), format!("Practitioner/{pr}")]
    );

    // A resource that is both a match and the target of an include is a match only.
    let b = search(s, "Observation?code=inc-1&_include=Observation:has-member").await;
    check_modes(&b);
    assert_eq!(match_ids(&b).len(), 3);
    assert!(included(&b).is_empty(), "{b}");
    let b = search(
        s,
        &format!("Observation?_id={o_b}&_include=Observation:has-member"),
    )
    .await;
    assert_eq!(included(&b), vec![format!("Observation/{o_a}")]);

    // :iterate follows references of included resources too.
    let b = search(
        s,
        &format!(
            "Observation?_id={o_a}&_include=Observation:subject&_include:iterate=Patient:organization"
        ),
    )
    .await;
    check_modes(&b);
    let mut inc = included(&b);
    inc.sort();
    assert_eq!(
        inc,
        vec![format!("Organization/{org}"), format!("Patient/{p1}")]
    );
    // Without :iterate, Patient:organization applies to the matches only (none are Patients).
    let b = search(
        s,
        &format!(
            "Observation?_id={o_a}&_include=Observation:subject&_include=Patient:organization"
        ),
    )
    .await;
    assert_eq!(included(&b), vec![format!("Patient/{p1}")]);

    // _revinclude: the resources that refer to the matches.
    let b = search(
        s,
        &format!("Patient?_id={p1}&_revinclude=Observation:subject"),
    )
    .await;
    check_modes(&b);
    assert_eq!(match_ids(&b), vec![p1.clone()]);
    let mut inc = included(&b);
    inc.sort();
    let mut expected = vec![format!("Observation/{o_a}"), format!("Observation/{o_b}")];
    expected.sort();
    assert_eq!(inc, expected);
    assert_eq!(b["total"], 1);
    let b = search(
        s,
        &format!("Organization?_id={org}&_revinclude=Patient:organization&_revinclude:iterate=Observation:patient"),
    )
    .await;
    check_modes(&b);
    assert_eq!(included(&b).len(), 3, "p1, o_a, o_b: {b}");

    // Deleted resources are neither included nor reverse-included.
    s.delete(&format!("Patient/{p2}")).await;
    let b = search(
        s,
        &format!("Observation?_id={o_c}&_include=Observation:subject"),
    )
    .await;
    assert!(included(&b).is_empty(), "{b}");
    s.delete(&format!("Observation/{o_b}")).await;
    let b = search(
        s,
        &format!("Patient?_id={p1}&_revinclude=Observation:subject"),
    )
    .await;
    assert_eq!(included(&b), vec![format!("Observation/{o_a}")]);
}

/// POST `[type]/_search` with a form body; system search with `_type`;
/// compartment search.
async fn search_entry_points(s: &TestServer) {
    let pa = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Entry"}], "birthDate": "1980-02-02"}),
    )
    .await;
    let pb = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "Entry"}], "birthDate": "1990-02-02"}),
    )
    .await;
    let obs = |p: &str, code: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "subject": {"reference": format!("Patient/{p}")}})
    };
    let oa1 = create_id(s, obs(&pa, "1")).await;
    let oa2 = create_id(s, obs(&pa, "2")).await;
    let ob1 = create_id(s, obs(&pb, "1")).await;

    let get = search(s, "Patient?family=entry&birthdate=lt1985").await;
    let r = s
        .send(
            Method::POST,
            "Patient/_search",
            Some(b"family=entry&birthdate=lt1985".to_vec()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let post = r.json();
    assert_eq!(post["type"], "searchset");
    assert_eq!(match_ids(&post), vec![pa.clone()]);
    assert_eq!(match_ids(&get), match_ids(&post));
    assert_eq!(get["total"], post["total"]);
    // URL and body parameters combine.
    let r = s
        .send(
            Method::POST,
            "Patient/_search?family=entry",
            Some(b"birthdate=gt1985".to_vec()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(match_ids(&r.json()), vec![pb.clone()]);

    // System search across types.
    let b = search(s, &format!("?_type=Patient,Observation&_id={pa},{oa1}")).await;
    let mut got: Vec<String> = entries(&b)
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![format!("Observation/{oa1}"), format!("Patient/{pa}")]
    );
    let b = search(s, &format!("?_id={pb}")).await;
    assert_eq!(match_ids(&b), vec![pb.clone()]);
    let b = search(s, "?_type=Observation").await;
    assert_eq!(b["total"], 3);

    // Compartment: Patient/[id]/Observation.
    assert_eq!(
        ids(s, &format!("Patient/{pa}/Observation")).await,
        set(&[&oa1, &oa2])
    );
    assert_eq!(
        ids(s, &format!("Patient/{pa}/Observation?code=2")).await,
        set(&[&oa2])
    );
    assert_eq!(
        ids(s, &format!("Patient/{pb}/Observation")).await,
        set(&[&ob1])
    );
    assert!(ids(s, "Patient/nobody/Observation").await.is_empty());
    // The Patient compartment holds Observations by performer too.
    let performed = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "p"},
               "performer": [{"reference": format!("Patient/{pb}")}]}),
    )
    .await;
    assert_eq!(
        ids(s, &format!("Patient/{pb}/Observation")).await,
        set(&[&ob1, &performed])
    );

    // The same search in XML.
    let r = s.get(&format!("Patient?_id={pa}&_format=xml")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/fhir+xml"),
        "{:?}",
        r.header("content-type")
    );
    assert!(
        r.text.contains("<Bundle xmlns=\"http://hl7.org/fhir\">"),
        "{}",
        r.text
    );
    assert!(r.text.contains("<type value=\"searchset\"/>"), "{}", r.text);
    assert!(
        r.text.contains(&format!("<id value=\"{pa}\"/>")),
        "{}",
        r.text
    );
}

crate::on_both_databases!(
    id_and_meta_params,
    list_and_has,
    chained_search,
    include_and_revinclude,
    search_entry_points,
    text_and_content
);
