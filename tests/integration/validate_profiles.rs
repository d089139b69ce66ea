//! `$validate` with the base invariants and against profiles: shipped
//! (R4 vital signs), named by `profile` or `meta.profile`, and uploaded
//! through the API with a binding to a stored ValueSet.

use serde_json::{json, Value};

use crate::harness::TestServer;

const VITALSIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
const HEARTRATE: &str = "http://hl7.org/fhir/StructureDefinition/heartrate";

/// (severity, expression, diagnostics) of each issue.
fn issues(oo: &Value) -> Vec<(String, String, String)> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap().to_string(),
                i["expression"][0].as_str().unwrap_or("").to_string(),
                i["diagnostics"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn errors(oo: &Value) -> Vec<(String, String, String)> {
    issues(oo).into_iter().filter(|i| i.0 == "error").collect()
}

async fn validate(s: &TestServer, path: &str, body: &Value) -> Value {
    let r = s.post(path, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn heart_rate(code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

async fn vital_signs_profile(s: &TestServer) {
    let path = format!("Observation/$validate?profile={VITALSIGNS}");
    let oo = validate(s, &path, &heart_rate("8867-4")).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    assert_eq!(oo["issue"][0]["severity"], "information");

    // No vital-signs category: the VSCat slice's minimum.
    let mut bad = heart_rate("8867-4");
    bad["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]);
    let found = errors(&validate(s, &path, &bad).await);
    assert!(
        found
            .iter()
            .any(|(_, at, d)| at == "Observation.category" && d.contains("VSCat")),
        "{found:?}"
    );

    // A heart rate with another code: the HeartRateCode slice is missing,
    // whether the profile is named by the request or by meta.profile.
    let wrong = heart_rate("1234-5");
    let by_param = errors(
        &validate(
            s,
            &format!("Observation/$validate?profile={HEARTRATE}"),
            &wrong,
        )
        .await,
    );
    let mut declared = wrong.clone();
    declared["meta"] = json!({"profile": [HEARTRATE]});
    let by_meta = errors(&validate(s, "Observation/$validate", &declared).await);
    for found in [by_param, by_meta] {
        assert!(
            found
                .iter()
                .any(|(_, at, d)| at == "Observation.code.coding" && d.contains("HeartRateCode")),
            "{found:?}"
        );
    }

    // A blood pressure component with a wrong unit code (fixed mm[Hg]).
    let mut bp = heart_rate("85354-9");
    bp.as_object_mut().unwrap().remove("valueQuantity");
    let comp = |code: &str, unit: &str| {
        json!({"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": {"value": 120, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
    };
    bp["component"] = json!([comp("8480-6", "mm[Hg]"), comp("8462-4", "kPa")]);
    let found = errors(
        &validate(
            s,
            "Observation/$validate?profile=http://hl7.org/fhir/StructureDefinition/bp",
            &bp,
        )
        .await,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Observation.component[1].value.code");

    // An unknown meta.profile is a warning, not an error.
    let mut unknown = heart_rate("8867-4");
    unknown["meta"] = json!({"profile": ["http://example.org/StructureDefinition/elsewhere"]});
    let oo = validate(s, "Observation/$validate", &unknown).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    assert!(issues(&oo).iter().any(|(sev, at, d)| sev == "warning"
        && at == "Observation.meta.profile"
        && d.contains("http://example.org/StructureDefinition/elsewhere")));

    // An unknown profile is an error of the request, naming it.
    let r = s
        .post(
            "Observation/$validate?profile=http://example.org/StructureDefinition/none",
            &heart_rate("8867-4"),
        )
        .await;
    let oo = r.outcome(400);
    assert!(oo["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("http://example.org/StructureDefinition/none"));
}

async fn uploaded_profile_with_a_stored_value_set(s: &TestServer) {
    let vs = json!({"resourceType": "ValueSet", "url": "http://example.org/ValueSet/lab-codes",
        "status": "active",
        "compose": {"include": [{"system": "http://example.org/lab", "concept": [{"code": "glucose"}, {"code": "sodium"}]}]}});
    assert_eq!(s.post("ValueSet", &vs).await.status, 201);
    let sd = json!({"resourceType": "StructureDefinition",
    "url": "http://example.org/StructureDefinition/lab-obs", "version": "2",
    "name": "LabObs", "status": "active", "kind": "resource", "abstract": false,
    "type": "Observation", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
    "snapshot": {"element": [
        {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
        {"id": "Observation.code", "path": "Observation.code", "min": 1, "max": "1",
         "type": [{"code": "CodeableConcept"}],
         "binding": {"strength": "required", "valueSet": "http://example.org/ValueSet/lab-codes"}},
        {"id": "Observation.subject", "path": "Observation.subject", "min": 1, "max": "1",
         "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
        {"id": "Observation.interpretation", "path": "Observation.interpretation", "min": 0, "max": "0"}
    ]}});
    let r = s.post("StructureDefinition", &sd).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let obs = |code: &str| {
        json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://example.org/lab", "code": code}]},
        "subject": {"reference": "Patient/p1"}})
    };
    let params = |resource: Value, profile: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "resource", "resource": resource},
            {"name": "profile", "valueUri": profile}
        ]})
    };
    let url = "http://example.org/StructureDefinition/lab-obs|2";
    let oo = validate(s, "Observation/$validate", &params(obs("glucose"), url)).await;
    assert!(errors(&oo).is_empty(), "{oo}");

    let mut bad = obs("potassium");
    bad["subject"] = json!({"reference": "Group/g1"});
    bad["interpretation"] = json!([{"text": "high"}]);
    let found = errors(&validate(s, "Observation/$validate", &params(bad, url)).await);
    let at: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
    assert!(at.contains(&"Observation.code"), "{found:?}");
    assert!(at.contains(&"Observation.subject.reference"), "{found:?}");
    assert!(at.contains(&"Observation.interpretation"), "{found:?}");
    assert_eq!(found.len(), 3, "{found:?}");

    // A StructureDefinition without a snapshot cannot be used.
    let mut bare = sd.clone();
    bare["url"] = json!("http://example.org/StructureDefinition/bare");
    bare.as_object_mut().unwrap().remove("snapshot");
    bare["differential"] = json!({"element": [{"id": "Observation", "path": "Observation"}]});
    assert_eq!(s.post("StructureDefinition", &bare).await.status, 201);
    let oo = s
        .post(
            "Observation/$validate",
            &params(
                obs("glucose"),
                "http://example.org/StructureDefinition/bare",
            ),
        )
        .await
        .outcome(422);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("snapshot"),
        "{oo}"
    );

    // Another version is not this profile.
    s.post(
        "Observation/$validate",
        &params(
            obs("glucose"),
            "http://example.org/StructureDefinition/lab-obs|3",
        ),
    )
    .await
    .outcome(400);
}

async fn invariants_are_reported_with_their_key(s: &TestServer) {
    let patient = json!({"resourceType": "Patient", "id": "p1",
        "contact": [{"name": {"family": "Ng"}}, {"gender": "female"}]});
    let found = errors(&validate(s, "Patient/$validate", &patient).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Patient.contact[1]");
    assert!(found[0].2.starts_with("pat-1"), "{found:?}");

    // Instance level, mode=update (query), on a stored patient.
    let r = s
        .put(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p1"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let found = errors(&validate(s, "Patient/p1/$validate?mode=update", &patient).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].2.starts_with("pat-1"));
    let mut fixed = patient.clone();
    fixed["contact"][1]["telecom"] = json!([{"system": "phone", "value": "123"}]);
    let oo = validate(s, "Patient/p1/$validate?mode=update", &fixed).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    // A warning invariant (dom-6: no narrative) is a warning.
    assert!(issues(&oo)
        .iter()
        .any(|(sev, _, d)| sev == "warning" && d.starts_with("dom-6")));
}

/// A StructureDefinition for the API: `snapshot` elements as given.
fn structure(url: &str, ty: &str, kind: &str, elements: Value) -> Value {
    json!({"resourceType": "StructureDefinition", "url": url,
        "name": "Test", "status": "active", "kind": kind, "abstract": false,
        "type": ty, "derivation": "constraint",
        "baseDefinition": format!("http://hl7.org/fhir/StructureDefinition/{ty}"),
        "snapshot": {"element": elements}})
}

const SHOE: &str = "http://example.org/StructureDefinition/shoe-size";

/// Uploaded profiles with bounds, a stored extension definition named by a
/// `profile` discriminator, and a re-sliced identifier.
async fn bounds_profile_slices_and_reslices(s: &TestServer) {
    let shoe = structure(
        SHOE,
        "Extension",
        "complex-type",
        json!([
            {"id": "Extension", "path": "Extension", "min": 0, "max": "*"},
            {"id": "Extension.url", "path": "Extension.url", "min": 1, "max": "1", "fixedUri": SHOE},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "max": "1",
             "type": [{"code": "decimal"}], "minValueDecimal": 15, "maxValueDecimal": 55}
        ]),
    );
    let r = s.post("StructureDefinition", &shoe).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = "http://example.org/StructureDefinition/bounded-patient";
    let profile = structure(
        url,
        "Patient",
        "resource",
        json!([
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.extension", "path": "Patient.extension", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "profile", "path": "$this"}], "rules": "closed"}},
            {"id": "Patient.extension:shoe", "path": "Patient.extension", "sliceName": "shoe",
             "min": 1, "max": "1", "type": [{"code": "Extension", "profile": [SHOE]}]},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn",
             "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "use"}], "rules": "open"}},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "fixedUri": "urn:mrn"},
            {"id": "Patient.identifier:mrn/official", "path": "Patient.identifier", "sliceName": "mrn/official",
             "min": 0, "max": "1"},
            {"id": "Patient.identifier:mrn/official.use", "path": "Patient.identifier.use", "min": 1, "max": "1",
             "fixedCode": "official"},
            {"id": "Patient.name", "path": "Patient.name", "min": 0, "max": "*"},
            {"id": "Patient.name.family", "path": "Patient.name.family", "min": 0, "max": "1", "maxLength": 8},
            {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 0, "max": "1",
             "minValueDate": "1900-01-01", "maxValueDate": "2030"}
        ]),
    );
    let r = s.post("StructureDefinition", &profile).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let path = format!("Patient/$validate?profile={url}");
    let mrn = |use_: &str| json!({"system": "urn:mrn", "use": use_, "value": "1"});
    let patient = json!({"resourceType": "Patient",
        "extension": [{"url": SHOE, "valueDecimal": 42.5}],
        "identifier": [mrn("official"), mrn("usual")],
        "name": [{"family": "Nguyen"}], "birthDate": "1980-02-29"});
    let oo = validate(s, &path, &patient).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    assert!(
        !issues(&oo)
            .iter()
            .any(|i| i.0 == "warning" && i.1.starts_with("Patient.extension")),
        "{oo}"
    );

    let mut bad = patient.clone();
    bad["extension"] = json!([{"url": SHOE, "valueDecimal": 56}]);
    bad["identifier"] = json!([mrn("official"), mrn("official")]);
    bad["name"] = json!([{"family": "Montgomery-Smith"}]);
    bad["birthDate"] = json!("1899-12");
    let found = errors(&validate(s, &path, &bad).await);
    let has = |at: &str, text: &str| found.iter().any(|(_, a, d)| a == at && d.contains(text));
    // The shoe size over the extension's maxValue conforms to no slice.
    assert!(has("Patient.extension[0]", "closed"), "{found:?}");
    assert!(has("Patient.extension", "slice `shoe`"), "{found:?}");
    assert!(
        has(
            "Patient.identifier",
            "slice `mrn/official` of Patient.identifier: the profile allows at most 1"
        ),
        "{found:?}"
    );
    assert!(
        has(
            "Patient.name[0].family",
            "16 characters long; the profile's maxLength is 8"
        ),
        "{found:?}"
    );
    assert!(
        has(
            "Patient.birthDate",
            "1899-12, below the profile's minValue 1900-01-01"
        ),
        "{found:?}"
    );
    assert_eq!(found.len(), 5, "{found:?}");
    let oo = validate(s, &path, &bad).await;
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["expression"].is_array()),
        "{oo}"
    );
}

const EYE: &str = "http://example.org/StructureDefinition/eye-colour";
const NAMED: &str = "http://example.org/StructureDefinition/named";

/// `type.profile` outside slicing: an extension slice sorted by `url`
/// (fixed by the stored extension definition), a datatype profile on
/// `name`, and a profile the server does not know on `address`.
async fn type_profiles_of_elements(s: &TestServer) {
    let eye = structure(
        EYE,
        "Extension",
        "complex-type",
        json!([
            {"id": "Extension", "path": "Extension", "min": 0, "max": "*"},
            {"id": "Extension.url", "path": "Extension.url", "min": 1, "max": "1", "fixedUri": EYE},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "max": "1",
             "type": [{"code": "code"}]}
        ]),
    );
    let named = structure(
        NAMED,
        "HumanName",
        "complex-type",
        json!([
            {"id": "HumanName", "path": "HumanName", "min": 0, "max": "*"},
            {"id": "HumanName.family", "path": "HumanName.family", "min": 1, "max": "1"}
        ]),
    );
    let url = "http://example.org/StructureDefinition/typed-patient";
    let profile = structure(
        url,
        "Patient",
        "resource",
        json!([
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.extension", "path": "Patient.extension", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}},
            {"id": "Patient.extension:eye", "path": "Patient.extension", "sliceName": "eye",
             "min": 1, "max": "1", "type": [{"code": "Extension", "profile": [EYE]}]},
            {"id": "Patient.name", "path": "Patient.name", "min": 0, "max": "*",
             "type": [{"code": "HumanName", "profile": [NAMED]}]},
            {"id": "Patient.address", "path": "Patient.address", "min": 0, "max": "*",
             "type": [{"code": "Address", "profile": ["http://example.org/StructureDefinition/nowhere"]}]}
        ]),
    );
    for sd in [eye, named, profile] {
        let r = s.post("StructureDefinition", &sd).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let path = format!("Patient/$validate?profile={url}");
    let good = json!({"resourceType": "Patient",
        "extension": [{"url": EYE, "valueCode": "brown"}],
        "name": [{"family": "Nguyen"}]});
    let oo = validate(s, &path, &good).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    assert!(
        !issues(&oo)
            .iter()
            .any(|i| i.0 == "warning" && i.1.starts_with("Patient.")),
        "{oo}"
    );

    let mut bad = good.clone();
    bad["extension"] = json!([{"url": EYE, "valueString": "brown"}]);
    bad["name"] = json!([{"given": ["Minh"]}]);
    bad["address"] = json!([{"city": "Hanoi"}]);
    let oo = validate(s, &path, &bad).await;
    let found = errors(&oo);
    let has = |at: &str, text: &str| found.iter().any(|(_, a, d)| a == at && d.contains(text));
    assert!(
        has("Patient.extension[0].value", "the profile allows code"),
        "{found:?}"
    );
    assert!(has("Patient.name[0].family", "at least 1"), "{found:?}");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        issues(&oo).iter().any(|(sev, at, d)| sev == "warning"
            && at == "Patient.address[0]"
            && d.contains("http://example.org/StructureDefinition/nowhere")),
        "{oo}"
    );
}

/// `targetProfile`: the subject must be a female patient; stored and
/// contained patients are checked, an unknown one is a warning.
async fn target_profiles_of_stored_references(s: &TestServer) {
    let female = "http://example.org/StructureDefinition/female-patient";
    let url = "http://example.org/StructureDefinition/obs-female";
    let profiles = [
        structure(
            female,
            "Patient",
            "resource",
            json!([
                {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
                {"id": "Patient.gender", "path": "Patient.gender", "min": 1, "max": "1", "fixedCode": "female"}
            ]),
        ),
        structure(
            url,
            "Observation",
            "resource",
            json!([
                {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
                {"id": "Observation.subject", "path": "Observation.subject", "min": 1, "max": "1",
                 "type": [{"code": "Reference", "targetProfile": [female]}]}
            ]),
        ),
    ];
    for sd in profiles {
        let r = s.post("StructureDefinition", &sd).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    for (id, gender) in [("tp-f", "female"), ("tp-m", "male")] {
        let r = s
            .put(
                &format!("Patient/{id}"),
                &json!({"resourceType": "Patient", "id": id, "gender": gender}),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "{}", r.text);
    }
    let obs = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "meta": {"profile": [url]},
            "subject": {"reference": subject}})
    };
    let oo = validate(s, "Observation/$validate", &obs("Patient/tp-f")).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    assert!(
        !issues(&oo)
            .iter()
            .any(|i| i.0 == "warning" && i.1 == "Observation.subject"),
        "{oo}"
    );
    // The patient read for the check is in the operation's audit record,
    // as a read of it would be.
    let r = s.get("AuditEvent?patient=tp-f&_count=100").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read_by_validate = r.json()["entry"].as_array().unwrap().iter().any(|e| {
        let e = &e["resource"];
        e["action"] == "E"
            && e["entity"].as_array().is_some_and(|es| {
                es.iter()
                    .any(|x| x["what"]["reference"] == "Patient/tp-f/_history/1")
            })
    });
    assert!(read_by_validate, "{}", r.text);

    let found = errors(&validate(s, "Observation/$validate", &obs("Patient/tp-m")).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Observation.subject");
    assert!(
        found[0]
            .2
            .contains("refers to Patient/tp-m, which conforms to none of")
            && found[0].2.contains(female),
        "{found:?}"
    );

    let oo = validate(s, "Observation/$validate", &obs("Patient/tp-none")).await;
    assert!(errors(&oo).is_empty(), "{oo}");
    let unchecked = |oo: &Value| {
        issues(oo).iter().any(|(sev, at, d)| {
            sev == "warning" && at == "Observation.subject" && d.contains("not checked")
        })
    };
    assert!(unchecked(&oo), "{oo}");

    // A caller who may not read patients learns nothing of them: the
    // reference is not checked.
    let writer = crate::auth::token_for(s, "user/Observation.cu", None, "practitioner");
    let r = crate::auth::send_as(
        s,
        Some(&writer),
        reqwest::Method::POST,
        "Observation/$validate",
        Some(&obs("Patient/tp-m")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let oo = r.json();
    assert!(errors(&oo).is_empty() && unchecked(&oo), "{oo}");

    // The shipped vital signs profile: members are vital signs too.
    let mut member = heart_rate("8867-4");
    member["id"] = json!("tp-hr");
    assert!(s.put("Observation/tp-hr", &member).await.status < 300);
    let mut lab = member.clone();
    lab["id"] = json!("tp-lab");
    lab.as_object_mut().unwrap().remove("category");
    assert!(s.put("Observation/tp-lab", &lab).await.status < 300);
    let path = format!("Observation/$validate?profile={VITALSIGNS}");
    let mut panel = heart_rate("8867-4");
    panel["hasMember"] = json!([{"reference": "Observation/tp-hr"}]);
    assert!(errors(&validate(s, &path, &panel).await).is_empty());
    panel["hasMember"] =
        json!([{"reference": "Observation/tp-hr"}, {"reference": "Observation/tp-lab"}]);
    let found = errors(&validate(s, &path, &panel).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Observation.hasMember[1]");
    assert!(found[0].2.contains(VITALSIGNS), "{found:?}");
}

/// Ordered slicing, open at the end only, named by meta.profile.
async fn ordered_slices(s: &TestServer) {
    let url = "http://example.org/StructureDefinition/ordered-ids";
    let profile = structure(
        url,
        "Patient",
        "resource",
        json!([
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                 "rules": "openAtEnd", "ordered": true}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 0, "max": "*"},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "fixedUri": "urn:mrn"},
            {"id": "Patient.identifier:ssn", "path": "Patient.identifier", "sliceName": "ssn", "min": 0, "max": "1"},
            {"id": "Patient.identifier:ssn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "fixedUri": "urn:ssn"}
        ]),
    );
    let r = s.post("StructureDefinition", &profile).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let patient = |systems: &[&str]| {
        let ids: Vec<Value> = systems
            .iter()
            .map(|s| json!({"system": s, "value": "1"}))
            .collect();
        json!({"resourceType": "Patient", "meta": {"profile": [url]}, "identifier": ids})
    };
    let oo = validate(
        s,
        "Patient/$validate",
        &patient(&["urn:mrn", "urn:ssn", "urn:x"]),
    )
    .await;
    assert!(errors(&oo).is_empty(), "{oo}");

    let found = errors(&validate(s, "Patient/$validate", &patient(&["urn:ssn", "urn:mrn"])).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Patient.identifier[1]");
    assert!(found[0].2.contains("ordered"), "{found:?}");

    let found = errors(&validate(s, "Patient/$validate", &patient(&["urn:x", "urn:ssn"])).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "Patient.identifier[1]");
    assert!(found[0].2.contains("matches no slice"), "{found:?}");
}

crate::on_both_databases!(
    bounds_profile_slices_and_reslices,
    type_profiles_of_elements,
    target_profiles_of_stored_references,
    ordered_slices,
    vital_signs_profile,
    uploaded_profile_with_a_stored_value_set,
    invariants_are_reported_with_their_key
);
