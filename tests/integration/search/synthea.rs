//! Realistic searches over the Synthea sample (`$CHARAKA_SHARED/data/
//! synthea-sample`), each count checked against one computed here from
//! the bundles' JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::{included, link, match_ids, search};
use crate::harness::TestServer;

/// The loaded sample: every resource with its server `Type/id`.
struct Sample {
    /// (server `Type/id`, resource as in the bundle with its references
    /// rewritten to server `Type/id`s).
    resources: Vec<(String, Value)>,
}

impl Sample {
    fn of_type<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r["resourceType"] == rtype)
            .map(|(id, r)| (id, r))
    }

    /// The server `Type/id` a (rewritten) reference points at.
    fn target(&self, reference: &Value) -> Option<String> {
        reference["reference"].as_str().map(str::to_string)
    }
}

async fn load(s: &TestServer) -> Option<Sample> {
    let dir = crate::harness::shared_data("synthea-sample")?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Organizations and practitioners first: the patient bundles refer to them.
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        (
            !(name.starts_with("hospital") || name.starts_with("practitioner")),
            name,
        )
    });
    let mut sample = Sample {
        resources: Vec::new(),
    };
    for path in files {
        let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
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
        assert_eq!(r.status, 200, "{}: {}", path.display(), r.text);
        let response = r.json();
        // fullUrls repeat across bundles: resolve within each bundle.
        let mut by_url = HashMap::new();
        let mut loaded = Vec::new();
        for (entry, answer) in body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .zip(response["entry"].as_array().unwrap())
        {
            let location = answer["response"]["location"].as_str().unwrap();
            let local = location
                .trim_start_matches(&format!("{}/", s.base))
                .split("/_history")
                .next()
                .unwrap()
                .to_string();
            by_url.insert(
                entry["fullUrl"].as_str().unwrap().to_string(),
                local.clone(),
            );
            loaded.push((local, entry["resource"].clone()));
        }
        for (local, mut resource) in loaded {
            rewrite(&mut resource, &by_url);
            sample.resources.push((local, resource));
        }
    }
    Some(sample)
}

/// Rewrites every `reference` found in the bundle to the server's `Type/id`.
fn rewrite(v: &mut Value, by_url: &HashMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "reference" {
                    if let Some(local) = child.as_str().and_then(|r| by_url.get(r)) {
                        *child = Value::from(local.clone());
                    }
                } else {
                    rewrite(child, by_url);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite(i, by_url)),
        _ => {}
    }
}

async fn total(s: &TestServer, query: &str) -> u64 {
    let b = search(s, &format!("{query}&_summary=count")).await;
    b["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{query}: no total: {b}"))
}

/// Every match of a search, following `next` links.
async fn all_matches(s: &TestServer, query: &str) -> (Vec<String>, Vec<String>) {
    let (mut matches, mut includes) = (Vec::new(), Vec::new());
    let mut url = Some(query.to_string());
    while let Some(u) = url {
        let b = search(s, &u).await;
        matches.extend(match_ids(&b));
        includes.extend(included(&b));
        url = link(&b, "next");
    }
    (matches, includes)
}

fn codes(concept: &Value) -> Vec<(String, String)> {
    concept["coding"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["system"].as_str().unwrap_or_default().to_string(),
                        c["code"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn instant(v: &Value) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok()
}

fn id_of(type_id: &str) -> String {
    type_id.split_once('/').unwrap().1.to_string()
}

async fn synthea_searches(s: &TestServer) {
    let Some(sample) = load(s).await else { return };
    let patients: Vec<(String, Value)> = sample
        .of_type("Patient")
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    assert_eq!(patients.len(), 5);
    let subject_of = |r: &Value| {
        sample
            .target(&r["subject"])
            .or_else(|| sample.target(&r["patient"]))
    };

    // Totals by type.
    for rtype in [
        "Patient",
        "Observation",
        "Encounter",
        "Condition",
        "Organization",
        "Practitioner",
    ] {
        let expected = sample.of_type(rtype).count() as u64;
        assert_eq!(total(s, &format!("{rtype}?")).await, expected, "{rtype}");
    }

    for (pid, patient) in &patients {
        let id = id_of(pid);
        // Observations of the patient with their most frequent LOINC code.
        let mut by_code: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all_obs = BTreeSet::new();
        for (oid, o) in sample.of_type("Observation") {
            if subject_of(o).as_deref() != Some(pid.as_str()) {
                continue;
            }
            all_obs.insert(id_of(oid));
            for (system, code) in codes(&o["code"]) {
                if system == "http://loinc.org" {
                    by_code.entry(code).or_default().push(id_of(oid));
                }
            }
        }
        let (code, expected) = by_code.iter().max_by_key(|(_, v)| v.len()).unwrap();
        let query = format!("Observation?patient=Patient/{id}&code=http://loinc.org|{code}");
        assert_eq!(total(s, &query).await, expected.len() as u64, "{query}");
        let (mut got, _) = all_matches(s, &format!("{query}&_count=7")).await;
        got.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(got, expected, "{query}");
        // Every observation of the patient, paged.
        let (got, _) = all_matches(s, &format!("Observation?subject={id}&_count=40")).await;
        assert_eq!(got.len(), all_obs.len(), "{id}: paged observations");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all_obs);
        // Through the compartment too.
        assert_eq!(
            total(s, &format!("Patient/{id}/Observation?")).await,
            all_obs.len() as u64
        );

        // Encounters of 2015 and 2016 (periods overlapping the range).
        let from: DateTime<FixedOffset> = "2015-01-01T00:00:00Z".parse().unwrap();
        let to: DateTime<FixedOffset> = "2017-01-01T00:00:00Z".parse().unwrap();
        let expected = sample
            .of_type("Encounter")
            .filter(|(_, e)| subject_of(e).as_deref() == Some(pid.as_str()))
            .filter(|(_, e)| {
                let start = instant(&e["period"]["start"]).unwrap();
                let end = instant(&e["period"]["end"]);
                end.is_none_or(|end| end >= from) && start < to
            })
            .count();
        let query = format!(
            "Encounter?patient={id}&date=ge2015-01-01T00:00:00Z&date=lt2017-01-01T00:00:00Z"
        );
        assert_eq!(total(s, &query).await, expected as u64, "{query}");

        // Medication requests with their requesters included (each once).
        let mut requests = 0;
        let mut requesters = BTreeSet::new();
        let mut medications = BTreeSet::new();
        for (_, m) in sample.of_type("MedicationRequest") {
            if subject_of(m).as_deref() == Some(pid.as_str()) {
                requests += 1;
                requesters.extend(sample.target(&m["requester"]));
                medications.extend(sample.target(&m["medicationReference"]));
            }
        }
        let (got, inc) = all_matches(
            s,
            &format!("MedicationRequest?patient={id}&_include=MedicationRequest:medication"),
        )
        .await;
        assert_eq!(got.len(), requests, "{id}: medication requests");
        assert_eq!(inc.into_iter().collect::<BTreeSet<_>>(), medications);
        let (got, inc) = all_matches(
            s,
            &format!("MedicationRequest?patient={id}&_include=MedicationRequest:requester"),
        )
        .await;
        assert_eq!(got.len(), requests);
        assert_eq!(
            inc.len(),
            requesters.len(),
            "{id}: requesters included once each"
        );
        assert_eq!(inc.into_iter().collect::<BTreeSet<_>>(), requesters);

        // By name, and the patient's encounters by a chain on the name.
        let family = patient["name"][0]["family"].as_str().unwrap();
        let by_family: Vec<&String> = patients
            .iter()
            .filter(|(_, p)| {
                p["name"].as_array().unwrap().iter().any(|n| {
                    n["family"]
                        .as_str()
                        .is_some_and(|f| f.to_lowercase().starts_with(&family.to_lowercase()))
                })
            })
            .map(|(pid, _)| pid)
            .collect();
        let got = match_ids(&search(s, &format!("Patient?family={}", super::enc(family))).await);
        assert_eq!(got.len(), by_family.len(), "family={family}");
        assert!(got.contains(&id));
        let encounters = sample
            .of_type("Encounter")
            .filter(|(_, e)| subject_of(e).as_deref() == Some(pid.as_str()))
            .count() as u64;
        if by_family.len() == 1 {
            let query = format!("Encounter?subject:Patient.family={}", super::enc(family));
            assert_eq!(total(s, &query).await, encounters, "{query}");
        }
    }

    // Conditions by SNOMED code, across all patients; and patients by
    // condition through _has.
    let mut by_code: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (_, c) in sample.of_type("Condition") {
        for (system, code) in codes(&c["code"]) {
            if system == "http://snomed.info/sct" {
                let e = by_code.entry(code).or_default();
                e.0 += 1;
                e.1.extend(subject_of(c).map(|p| id_of(&p)));
            }
        }
    }
    assert!(!by_code.is_empty());
    for (code, (count, patients)) in &by_code {
        let query = format!("Condition?code=http://snomed.info/sct|{code}");
        assert_eq!(total(s, &query).await, *count, "{query}");
        let got: BTreeSet<String> =
            match_ids(&search(s, &format!("Patient?_has:Condition:patient:code={code}")).await)
                .into_iter()
                .collect();
        assert_eq!(&got, patients, "_has:Condition:patient:code={code}");
    }

    // Vital signs after 2015 by category and date, across all patients.
    let from: DateTime<FixedOffset> = "2015-06-01T00:00:00Z".parse().unwrap();
    let expected = sample
        .of_type("Observation")
        .filter(|(_, o)| {
            o["category"].as_array().is_some_and(|cats| {
                cats.iter()
                    .any(|c| codes(c).iter().any(|(_, code)| code == "vital-signs"))
            })
        })
        .filter(|(_, o)| instant(&o["effectiveDateTime"]).is_some_and(|t| t > from))
        .count() as u64;
    let query = "Observation?category=vital-signs&date=gt2015-06-01T00:00:00Z";
    assert_eq!(total(s, query).await, expected, "{query}");
}

crate::on_both_databases!(synthea_searches);
