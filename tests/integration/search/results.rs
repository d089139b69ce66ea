//! Shaping results: `_sort`, `_count`, `_total`, `_summary`, `_elements`,
//! `_contained`, and paging through `next`/`previous`/`last` links.

use serde_json::{json, Value};

use super::{create_id, entries, link, match_ids, put_id, search};
use crate::harness::TestServer;

fn families(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            e["resource"]["name"][0]["family"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn sorting(s: &TestServer) {
    let p = |family: &str, born: &str, gender: &str| {
        json!({"resourceType": "Patient", "name": [{"family": family}],
               "birthDate": born, "gender": gender})
    };
    let b80 = put_id(s, p("Baker", "1980-01-01", "male"), "s-b").await;
    let a90 = put_id(s, p("Adams", "1990-01-01", "female"), "s-a").await;
    let b70 = put_id(s, p("Baker", "1970-01-01", "female"), "s-d").await;
    let c85 = put_id(s, p("Clark", "1985-01-01", "male"), "s-c").await;

    let order = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: &[(&str, Vec<String>)] = &[
        ("_sort=family,birthdate", order(&[&a90, &b70, &b80, &c85])),
        ("_sort=family,-birthdate", order(&[&a90, &b80, &b70, &c85])),
        ("_sort=-family,birthdate", order(&[&c85, &b70, &b80, &a90])),
        ("_sort=birthdate", order(&[&b70, &b80, &c85, &a90])),
        ("_sort=-birthdate", order(&[&a90, &c85, &b80, &b70])),
        (
            "_sort=gender,family,birthdate",
            order(&[&a90, &b70, &b80, &c85]),
        ),
        ("_sort=-gender,-family", order(&[&c85, &b80, &b70, &a90])),
        ("_sort=_id", order(&[&a90, &b80, &c85, &b70])),
        ("_sort=-_id", order(&[&b70, &c85, &b80, &a90])),
        // Written in the order b80, a90, b70, c85.
        ("_sort=_lastUpdated", order(&[&b80, &a90, &b70, &c85])),
        ("_sort=-_lastUpdated", order(&[&c85, &b70, &a90, &b80])),
    ];
    for (query, expected) in cases {
        let b = search(s, &format!("Patient?{query}")).await;
        assert_eq!(&match_ids(&b), expected, "{query}");
    }
    let b = search(s, "Patient?_sort=family").await;
    assert_eq!(families(&b), vec!["Adams", "Baker", "Baker", "Clark"]);
    // Sorting never drops resources that lack the sort value.
    let nameless = put_id(
        s,
        json!({"resourceType": "Patient", "gender": "unknown"}),
        "s-e",
    )
    .await;
    for query in [
        "_sort=family",
        "_sort=-family",
        "_sort=birthdate",
        "_sort=-birthdate,family",
    ] {
        let got = match_ids(&search(s, &format!("Patient?{query}")).await);
        assert_eq!(got.len(), 5, "{query}: {got:?}");
        assert!(got.contains(&nameless), "{query}: {got:?}");
    }
    // Sorting composes with filtering.
    let b = search(s, "Patient?gender=male&_sort=-birthdate").await;
    assert_eq!(match_ids(&b), vec![c85.clone(), b80.clone()]);
}

/// With several values per resource, "the sort is based on the item in the
/// set of multiple parameters that comes earliest in the specified sort
/// order" (search.html#_sort): the lowest ascending, the highest descending.
async fn sort_repeating_values(s: &TestServer) {
    let p = |given: &[&str]| json!({"resourceType": "Patient", "name": [{"family": "Rep", "given": given}]});
    let zed_amy = create_id(s, p(&["Zed", "Amy"])).await;
    let bob = create_id(s, p(&["Bob"])).await;
    let b = search(s, "Patient?_sort=given").await;
    assert_eq!(
        match_ids(&b),
        vec![zed_amy.clone(), bob.clone()],
        "Amy < Bob"
    );
    let b = search(s, "Patient?_sort=-given").await;
    assert_eq!(match_ids(&b), vec![zed_amy, bob], "Zed > Bob");
}

async fn count_total_summary_elements(s: &TestServer) {
    for i in 0..4 {
        create_id(
            s,
            json!({"resourceType": "Patient", "name": [{"family": format!("Sum{i}")}],
                   "birthDate": "1975-05-05", "gender": "other",
                   "maritalStatus": {"text": "married"},
                   "communication": [{"language": {"text": "Hindi"}}],
                   "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Sum</div>"}}),
        )
        .await;
    }
    // The total of a partial page is given on request (counting costs as
    // much as reading every match); a page holding every match has it.
    let b = search(s, "Patient?_count=2").await;
    assert!(b.get("total").is_none(), "{b}");
    assert_eq!(search(s, "Patient?_count=10").await["total"], 4);
    let b = search(s, "Patient?_count=2&_total=accurate").await;
    assert_eq!(match_ids(&b).len(), 2);
    assert_eq!(b["total"], 4);
    assert!(link(&b, "next").is_some());
    let b = search(s, "Patient?_count=0").await;
    assert!(match_ids(&b).is_empty());
    let b = search(s, "Patient?_total=accurate&_count=1").await;
    assert_eq!(b["total"], 4);
    assert_eq!(match_ids(&b).len(), 1);
    // _total=none: the total MAY be left out, the matches are still there.
    let b = search(s, "Patient?_total=none").await;
    assert_eq!(match_ids(&b).len(), 4);
    assert!(b["total"].is_null() || b["total"] == 4, "{b}");

    // _summary=count: the total and no entries.
    let b = search(s, "Patient?_summary=count").await;
    assert_eq!(b["total"], 4);
    assert!(
        entries(&b).iter().all(|e| e["search"]["mode"] != "match"),
        "{b}"
    );
    let b = search(s, "Patient?family=sum1&_summary=count").await;
    assert_eq!(b["total"], 1);

    let subsetted = |r: &Value| {
        r["meta"]["tag"].as_array().is_some_and(|tags| {
            tags.iter().any(|t| {
                t["code"] == "SUBSETTED"
                    && t["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
            })
        })
    };
    // _summary=true: only elements marked isSummary (name, birthDate, gender;
    // not maritalStatus, communication, text). Resources SHOULD be SUBSETTED.
    let b = search(s, "Patient?_summary=true").await;
    assert_eq!(match_ids(&b).len(), 4);
    for e in entries(&b) {
        let r = &e["resource"];
        assert!(
            r["name"].is_array() && r["birthDate"].is_string() && r["gender"].is_string(),
            "{r}"
        );
        assert!(
            r["maritalStatus"].is_null() && r["communication"].is_null() && r["text"].is_null(),
            "{r}"
        );
        assert!(subsetted(r), "_summary=true without SUBSETTED: {r}");
    }
    // _summary=data: everything but the narrative.
    let b = search(s, "Patient?_summary=data").await;
    for e in entries(&b) {
        let r = &e["resource"];
        assert!(r["text"].is_null() && r["maritalStatus"].is_object(), "{r}");
    }
    // _elements: the listed elements (plus mandatory ones and id/meta).
    let b = search(s, "Patient?_elements=birthDate,maritalStatus").await;
    assert_eq!(match_ids(&b).len(), 4);
    for e in entries(&b) {
        let r = &e["resource"];
        assert_eq!(r["resourceType"], "Patient");
        assert!(r["id"].is_string(), "{r}");
        assert_eq!(r["birthDate"], "1975-05-05");
        assert!(r["maritalStatus"].is_object(), "{r}");
        assert!(
            r["name"].is_null() && r["gender"].is_null() && r["communication"].is_null(),
            "{r}"
        );
        assert!(subsetted(r), "_elements without SUBSETTED: {r}");
    }
}

/// Walks every `next` link from `first`, returning the pages' match ids.
async fn walk(s: &TestServer, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = Some(first.to_string());
    while let Some(u) = url {
        let b = search(s, &u).await;
        pages.push(match_ids(&b));
        url = link(&b, "next");
        assert!(pages.len() <= 50, "too many pages");
    }
    pages
}

/// Creates 23 patients `Page00`..`Page22` (out of order); returns their
/// ids sorted by family.
async fn page_fixture(s: &TestServer) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..23 {
        let n = (i * 7) % 23;
        let id = create_id(
            s,
            json!({"resourceType": "Patient", "name": [{"family": format!("Page{n:02}")}]}),
        )
        .await;
        all.push((format!("Page{n:02}"), id));
    }
    all.sort();
    all.into_iter().map(|(_, id)| id).collect()
}

/// Walks `query` (page size 5 over 23 matches) and checks the pages against
/// each other: sizes 5,5,5,5,3, each resource once, `previous` of page 2 is
/// page 1, `last` is the end. Returns the matches in page order.
async fn check_paging(s: &TestServer, query: &str) -> Vec<String> {
    let pages = walk(s, query).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 3],
        "{query}: {pages:?}"
    );
    let flat = pages.concat();
    let mut unique = flat.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 23, "{query}: duplicates in {flat:?}");

    let page1 = search(s, query).await;
    assert!(page1.get("total").is_none(), "{page1}");
    let counted = search(s, &format!("{query}&_total=accurate")).await;
    assert_eq!(counted["total"], 23);
    assert!(link(&page1, "self").is_some());
    assert!(link(&page1, "previous").is_none(), "{page1}");
    let page2 = search(s, &link(&page1, "next").unwrap()).await;
    assert_eq!(match_ids(&page2), pages[1], "{query}: page 2");
    let back = search(s, &link(&page2, "previous").expect("previous link")).await;
    assert_eq!(match_ids(&back), pages[0], "{query}: previous of page 2");
    let last = search(s, &link(&page1, "last").expect("last link")).await;
    let last_ids = match_ids(&last);
    assert!(!last_ids.is_empty() && last_ids.len() <= 5, "{last}");
    assert_eq!(
        last_ids,
        flat[23 - last_ids.len()..].to_vec(),
        "{query}: last"
    );
    assert!(link(&last, "next").is_none(), "{last}");
    flat
}

async fn paging_default_order(s: &TestServer) {
    let mut expected = page_fixture(s).await;
    let mut flat = check_paging(s, "Patient?_count=5").await;
    flat.sort();
    expected.sort();
    assert_eq!(flat, expected);
    // _total=accurate: the total on every page.
    let page1 = search(s, "Patient?_count=5&_total=accurate").await;
    let page2 = search(s, &link(&page1, "next").unwrap()).await;
    assert_eq!(page2["total"], 23, "{page2}");
    // Filters apply on every page.
    let pages = walk(s, "Patient?family=page1&_count=3").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 3, 1]
    );
}

async fn paging_sorted(s: &TestServer) {
    let sorted = page_fixture(s).await;
    assert_eq!(
        check_paging(s, "Patient?_sort=family&_count=5").await,
        sorted
    );
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(
        check_paging(s, "Patient?_sort=-family&_count=5").await,
        reversed
    );
    let mut by_id = sorted.clone();
    by_id.sort();
    assert_eq!(check_paging(s, "Patient?_sort=_id&_count=5").await, by_id);
    check_paging(s, "Patient?_sort=-_lastUpdated&_count=5").await;
}

/// Resources created while a client pages must not make it see an existing
/// resource twice or miss one.
async fn check_stable_under_writes(s: &TestServer, query: &str) {
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            create_id(
                s,
                json!({"resourceType": "Patient", "name": [{"family": format!("Stable{:02}", i * 2)}]}),
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut b = search(s, query).await;
    let mut round = 0;
    loop {
        seen.extend(match_ids(&b));
        // Before fetching the next page: new resources sorting before,
        // between and after what was already handed out.
        if round < 3 {
            for name in ["Stable00a", "Stable05", "Stable99"] {
                create_id(
                    s,
                    json!({"resourceType": "Patient", "name": [{"family": format!("{name}-{round}")}]}),
                )
                .await;
            }
        }
        round += 1;
        let Some(next) = link(&b, "next") else { break };
        b = search(s, &next).await;
        assert!(round < 60);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{query}: duplicates in {seen:?}");
    for id in &ids {
        assert!(seen.contains(id), "{query}: {id} skipped");
    }
}

async fn paging_stable_under_writes(s: &TestServer) {
    check_stable_under_writes(s, "Patient?_count=4").await;
}

async fn paging_sorted_stable_under_writes(s: &TestServer) {
    check_stable_under_writes(s, "Patient?_sort=family&_count=4").await;
}

async fn paging_sorted_by_last_updated_stable_under_writes(s: &TestServer) {
    check_stable_under_writes(s, "Patient?_sort=-_lastUpdated&_count=4").await;
}

/// `_contained`: `false` (the default) is applied and kept in `self`;
/// `true`/`both` on a system search are refused under strict handling and
/// ignored with a warning otherwise (contained.rs tests type searches);
/// unknown codes are errors.
async fn contained_parameters(s: &TestServer) {
    let request = put_id(
        s,
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "contained": [{"resourceType": "Medication", "id": "m1",
                "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1191"}]}}],
            "medicationReference": {"reference": "#m1"},
            "subject": {"reference": "Patient/contained-p"}}),
        "contained-mr",
    )
    .await;
    // Never matched as a Medication of its own.
    let b = search(s, "Medication?code=1191").await;
    assert!(match_ids(&b).is_empty(), "{b}");
    let b = search(s, "Medication?code=1191&_contained=false").await;
    assert!(match_ids(&b).is_empty(), "{b}");
    let own = link(&b, "self").unwrap();
    assert!(own.contains("_contained=false"), "{own}");
    let b = search(
        s,
        "MedicationRequest?_id=contained-mr&_contained=false&_containedType=container",
    )
    .await;
    assert_eq!(match_ids(&b), vec![request.clone()]);
    for value in ["true", "both"] {
        // Type searches only: a system search ignores it.
        let query = format!("?_type=Medication&code=1191&_contained={value}");
        let b = search(s, &query).await;
        let outcome = entries(&b)
            .into_iter()
            .find(|e| e["search"]["mode"] == "outcome")
            .expect("a warning");
        let diagnostics = outcome["resource"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            diagnostics.contains(&format!("_contained={value}")),
            "{diagnostics}"
        );
        assert!(!link(&b, "self").unwrap().contains("_contained"));
        let oo = s
            .get_with(&query, &[("prefer", "handling=strict")])
            .await
            .outcome(400);
        assert_eq!(oo["issue"][0]["code"], "not-supported");
    }
    for query in [
        "Medication?_contained=yes",
        "Medication?_containedType=resource",
    ] {
        let oo = s.get(query).await.outcome(400);
        let diagnostics = oo["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.starts_with("_contained"), "{diagnostics}");
    }
}

/// `_total=accurate` counts live matches only, whether the count is taken
/// from the index rows (parameters of the searched type) or through the
/// resources (parameters common to every type, such as `_tag`).
async fn accurate_totals_count_live_matches(s: &TestServer) {
    let obs = |code: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "meta": {"tag": [{"system": "urn:t", "code": "counted"}]},
               "code": {"coding": [{"system": "urn:c", "code": code}]}})
    };
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create_id(s, obs("tally")).await);
    }
    // Another type with the same tag: not an Observation.
    let patient = json!({"resourceType": "Patient",
        "meta": {"tag": [{"system": "urn:t", "code": "counted"}]}});
    create_id(s, patient).await;
    // One deleted, one changed to another code, one amended (still a match).
    let deleted = s.delete(&format!("Observation/{}", ids[0])).await.status;
    assert!(deleted == 200 || deleted == 204, "delete: {deleted}");
    put_id(s, obs("other"), &ids[1]).await;
    let mut amended = obs("tally");
    amended["status"] = json!("amended");
    put_id(s, amended, &ids[2]).await;

    let total = |b: &Value| b["total"].as_i64();
    let b = search(s, "Observation?code=urn:c|tally&_total=accurate&_count=1").await;
    assert_eq!(total(&b), Some(2), "{b}");
    let b = search(s, "Observation?code=tally&status=final&_total=accurate").await;
    assert_eq!(total(&b), Some(1), "{b}");
    assert_eq!(match_ids(&b), vec![ids[3].clone()]);
    let b = search(s, "Observation?code=tally,other&_summary=count").await;
    assert_eq!(total(&b), Some(3), "{b}");
    let b = search(s, "Observation?_tag=urn:t|counted&_total=accurate").await;
    assert_eq!(total(&b), Some(3), "{b}");
    let b = search(
        s,
        "Observation?_tag=urn:t|counted&code=tally&_total=accurate",
    )
    .await;
    assert_eq!(total(&b), Some(2), "{b}");
}

/// Paging a search on one code or one reference (on SQLite the index rows
/// lead the query, in rid order): every match once, in order, with
/// `previous` and `last`; a resource with the code twice is one match.
async fn paging_led_by_index_rows(s: &TestServer) {
    let subject = create_id(s, json!({"resourceType": "Patient"})).await;
    let other = create_id(s, json!({"resourceType": "Patient"})).await;
    let obs = |code: &str, twice: bool, who: &str| {
        let mut coding = vec![json!({"system": "urn:a", "code": code})];
        if twice {
            coding.push(json!({"system": "urn:b", "code": code}));
        }
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": coding},
               "subject": {"reference": format!("Patient/{who}")}})
    };
    let mut gone = Vec::new();
    for i in 0..23 {
        create_id(s, obs("walked", i % 3 == 0, &subject)).await;
        // Others between them: another code, another subject, one deleted.
        create_id(s, obs("stood", false, &other)).await;
        if i == 10 {
            gone.push(create_id(s, obs("walked", false, &subject)).await);
        }
    }
    let deleted = s.delete(&format!("Observation/{}", gone[0])).await.status;
    assert!(deleted == 200 || deleted == 204, "delete: {deleted}");
    check_paging(s, "Observation?code=walked&_count=5").await;
    check_paging(s, "Observation?code=urn:a|walked&_count=5").await;
    check_paging(
        s,
        &format!("Observation?subject=Patient/{subject}&_count=5"),
    )
    .await;
    // With a second condition checked on each row.
    check_paging(
        s,
        &format!("Observation?code=walked&subject=Patient/{subject}&_count=5"),
    )
    .await;
}

/// Chains and `_has` that start from many resources (100 chain targets,
/// 2,000 `_has` referrers) find a page by walking the resources in rid
/// order a window of rids at a time (2,048 first), and collect the rest
/// when matches turn sparse; narrower ones collect at once. Matches dense
/// at first, then thousands of resources apart, a deleted match among
/// them: every page holds the right resources once, in order, on every
/// path.
async fn paging_walked_in_windows(s: &TestServer) {
    let gp = |name: &str| json!({"resourceType": "Practitioner", "name": [{"family": name}]});
    let walker = create_id(s, gp("Walker")).await;
    let zed = create_id(s, gp("Zed")).await;
    let bundle = |entries: Vec<Value>| {
        let entries: Vec<Value> = entries
            .into_iter()
            .map(
                |r| json!({"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}),
            )
            .collect();
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    };
    let of = |doctor: &str| {
        json!({"resourceType": "Patient",
               "generalPractitioner": [{"reference": format!("Practitioner/{doctor}")}]})
    };
    // Walker's patients without Observations: the chain is broad.
    let r = s.post("", &bundle(vec![of(&walker); 90])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A patient of `doctor` and an Observation of `code` about them.
    let unit = |doctor: String, code: &'static str| async move {
        let patient = create_id(s, of(&doctor)).await;
        let obs = create_id(
            s,
            json!({"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": "urn:w", "code": code}]},
                   "subject": {"reference": format!("Patient/{patient}")}}),
        )
        .await;
        (patient, obs)
    };
    let (mut patients, mut observations) = (Vec::new(), Vec::new());
    for (matches, after) in [(15, 2_500), (6, 2_500), (2, 10)] {
        for i in 0..matches {
            let (patient, obs) = unit(walker.clone(), "walked").await;
            patients.push(patient);
            observations.push(obs);
            unit(zed.clone(), "walked").await;
            if i == 2 {
                // A match deleted: its patient no longer has one either.
                let (_, gone) = unit(walker.clone(), "walked").await;
                let deleted = s.delete(&format!("Observation/{gone}")).await.status;
                assert!(deleted == 200 || deleted == 204, "delete: {deleted}");
            }
        }
        // Resources between the matches, each about one of the matching
        // patients so far, the newest first: `_has:Basic:subject` is broad.
        let filler: Vec<Value> = (0..after)
            .map(|i| {
                json!({"resourceType": "Basic", "code": {"text": "filler"},
                       "subject": {"reference": format!("Patient/{}", patients[patients.len() - 1 - i % patients.len()])}})
            })
            .collect();
        let r = s.post("", &bundle(filler)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let chained = check_paging(
        s,
        "Observation?patient.general-practitioner.name=walker&_count=5",
    )
    .await;
    assert_eq!(chained, observations, "chain: every match, in rid order");
    // Second conditions that do not lead (`_lastUpdated`) test each row.
    let chained = check_paging(
        s,
        &format!(
            "Observation?subject:Patient.general-practitioner=Practitioner/{walker}\
             &_lastUpdated=gt2000-01-01&_count=5"
        ),
    )
    .await;
    assert_eq!(chained, observations, "chain with a second condition");
    // Pages of 20: the second finds one match in its first window, then
    // thousands of rids without: it collects the rest.
    let pages = walk(
        s,
        "Observation?patient.general-practitioner.name=walker&_count=20",
    )
    .await;
    assert_eq!(pages.concat(), observations, "chain, pages of 20");
    let had = check_paging(s, "Patient?_has:Basic:subject:code:text=filler&_count=5").await;
    assert_eq!(
        had, patients,
        "_has: every patient referred to, in rid order"
    );
    // Walked by the first `_has`, the second tests each patient.
    let had = check_paging(
        s,
        "Patient?_has:Basic:subject:code:text=filler&_has:Observation:patient:code=walked\
         &_lastUpdated=gt2000-01-01&_count=5",
    )
    .await;
    assert_eq!(had, patients, "walked _has with a second _has");
    let had = check_paging(
        s,
        "Patient?_has:Observation:patient:code=walked&_has:Observation:patient:status=final\
         &_lastUpdated=gt2000-01-01&general-practitioner.name=walker&_count=5",
    )
    .await;
    assert_eq!(had, patients, "_has with other conditions");
    let had = walk(
        s,
        "Patient?_has:Observation:patient:code=urn:w|walked&_count=5",
    )
    .await;
    assert_eq!(had.concat().len(), 46, "_has alone: both doctors' patients");
}

crate::on_both_databases!(
    sorting,
    paging_led_by_index_rows,
    paging_walked_in_windows,
    accurate_totals_count_live_matches,
    contained_parameters,
    count_total_summary_elements,
    paging_default_order,
    paging_stable_under_writes,
    sort_repeating_values,
    paging_sorted,
    paging_sorted_stable_under_writes,
    paging_sorted_by_last_updated_stable_under_writes
);
