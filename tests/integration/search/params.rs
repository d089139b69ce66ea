//! One test per search parameter type: string, token, date, number,
//! quantity, reference, uri, composite, and `:missing`; plus OR/AND values
//! and escaping.

use serde_json::{json, Value};

use super::{create_id, enc, ids, put_id, set};
use crate::harness::TestServer;

fn patient(family: &str, given: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family, "given": [given]}]})
}

fn observation(code: Value) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": code})
}

/// String: "starts with or equals, after normalising case and accents";
/// `:exact` is case- and accent-sensitive and whole-value; `:contains`
/// matches anywhere.
async fn string_search(s: &TestServer) {
    let zoe = create_id(s, patient("Zoë", "Anna")).await;
    let zoebel = create_id(s, patient("Zoebel", "Max")).await;
    let mazoe = create_id(s, patient("Mazoe", "Lin")).await;
    let dmitri = create_id(s, patient("Дмитриев", "Иван")).await;
    let yamada = create_id(s, patient("山田", "太郎")).await;

    for q in ["Zoë", "zoe", "ZOE", "zoë", "ZOË"] {
        assert_eq!(
            ids(s, &format!("Patient?name={}", enc(q))).await,
            set(&[&zoe, &zoebel]),
            "name={q}"
        );
        assert_eq!(
            ids(s, &format!("Patient?family={}", enc(q))).await,
            set(&[&zoe, &zoebel]),
            "family={q}"
        );
    }
    // Starts with, not "contains".
    assert_eq!(ids(s, "Patient?name=mazoe").await, set(&[&mazoe]));
    assert!(ids(s, "Patient?name=azoe").await.is_empty());
    assert_eq!(ids(s, "Patient?given=an").await, set(&[&zoe]));

    // :exact
    assert_eq!(
        ids(s, &format!("Patient?name:exact={}", enc("Zoë"))).await,
        set(&[&zoe])
    );
    assert!(ids(s, "Patient?family:exact=Zoe").await.is_empty());
    assert!(ids(s, &format!("Patient?family:exact={}", enc("zoë")))
        .await
        .is_empty());
    assert!(ids(s, "Patient?family:exact=Zoeb").await.is_empty());
    assert_eq!(ids(s, "Patient?family:exact=Zoebel").await, set(&[&zoebel]));

    // :contains, still case- and accent-insensitive.
    assert_eq!(
        ids(s, "Patient?name:contains=zoe").await,
        set(&[&zoe, &zoebel, &mazoe])
    );
    assert_eq!(ids(s, "Patient?family:contains=OEB").await, set(&[&zoebel]));
    assert_eq!(
        ids(s, &format!("Patient?family:contains={}", enc("митр"))).await,
        set(&[&dmitri])
    );

    // Non-Latin scripts: case folding of Cyrillic, CJK as is.
    for q in ["дми", "ДМИТРИЕВ", "Дмитриев"] {
        assert_eq!(
            ids(s, &format!("Patient?family={}", enc(q))).await,
            set(&[&dmitri]),
            "family={q}"
        );
    }
    assert_eq!(
        ids(s, &format!("Patient?given={}", enc("иван"))).await,
        set(&[&dmitri])
    );
    assert_eq!(
        ids(s, &format!("Patient?name={}", enc("山田"))).await,
        set(&[&yamada])
    );
    assert_eq!(
        ids(s, &format!("Patient?given={}", enc("太"))).await,
        set(&[&yamada])
    );
}

/// Token: `code`, `system|code`, `|code` (no system), `system|`; `:not`
/// (includes resources without the value); `:text`; `:of-type`; booleans.
async fn token_search(s: &TestServer) {
    let loinc = "http://loinc.org";
    let o1 = create_id(
        s,
        observation(json!({
            "coding": [{"system": loinc, "code": "1234-5", "display": "Glucose"}],
            "text": "Blood sugar"
        })),
    )
    .await;
    let o2 = create_id(
        s,
        observation(json!({"coding": [{"system": "http://other.org", "code": "1234-5"}]})),
    )
    .await;
    let o3 = create_id(s, observation(json!({"coding": [{"code": "1234-5"}]}))).await;
    let o4 = create_id(
        s,
        observation(json!({
            "coding": [{"system": loinc, "code": "9999-9", "display": "Hemoglobin"}],
            "text": "Hb"
        })),
    )
    .await;

    assert_eq!(
        ids(s, "Observation?code=1234-5").await,
        set(&[&o1, &o2, &o3])
    );
    assert_eq!(
        ids(s, "Observation?code=http://loinc.org|1234-5").await,
        set(&[&o1])
    );
    assert_eq!(ids(s, "Observation?code=|1234-5").await, set(&[&o3]));
    assert_eq!(
        ids(s, "Observation?code=http://loinc.org|").await,
        set(&[&o1, &o4])
    );
    assert!(ids(s, "Observation?code=http://loinc.org|0000-0")
        .await
        .is_empty());
    assert_eq!(
        ids(s, "Observation?code:not=http://loinc.org|1234-5").await,
        set(&[&o2, &o3, &o4])
    );
    assert_eq!(ids(s, "Observation?code:not=1234-5").await, set(&[&o4]));
    // :text searches CodeableConcept.text and Coding.display as strings.
    assert_eq!(ids(s, "Observation?code:text=blood").await, set(&[&o1]));
    assert_eq!(ids(s, "Observation?code:text=GLUCOSE").await, set(&[&o1]));
    assert_eq!(ids(s, "Observation?code:text=hemo").await, set(&[&o4]));
    assert_eq!(ids(s, "Observation?code:text=hb").await, set(&[&o4]));
    assert!(ids(s, "Observation?code:text=1234").await.is_empty());

    // Identifier :of-type (type system|type code|value), booleans, :not.
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0203";
    let pa = create_id(
        s,
        json!({"resourceType": "Patient", "active": true, "gender": "female",
               "identifier": [{"type": {"coding": [{"system": v2, "code": "MR"}]},
                               "system": "http://hosp.example", "value": "12345"}]}),
    )
    .await;
    let pb = create_id(
        s,
        json!({"resourceType": "Patient", "active": false, "gender": "male",
               "identifier": [{"type": {"coding": [{"system": v2, "code": "SS"}]},
                               "value": "12345"}]}),
    )
    .await;
    let pc = create_id(s, json!({"resourceType": "Patient"})).await;
    assert_eq!(
        ids(s, &format!("Patient?identifier:of-type={v2}|MR|12345")).await,
        set(&[&pa])
    );
    assert_eq!(
        ids(s, &format!("Patient?identifier:of-type={v2}|SS|12345")).await,
        set(&[&pb])
    );
    assert!(ids(s, &format!("Patient?identifier:of-type={v2}|MR|99999"))
        .await
        .is_empty());
    assert_eq!(ids(s, "Patient?identifier=12345").await, set(&[&pa, &pb]));
    assert_eq!(
        ids(s, "Patient?identifier=http://hosp.example|12345").await,
        set(&[&pa])
    );
    assert_eq!(ids(s, "Patient?active=true").await, set(&[&pa]));
    assert_eq!(ids(s, "Patient?active=false").await, set(&[&pb]));
    assert_eq!(ids(s, "Patient?active:not=true").await, set(&[&pb, &pc]));
    assert_eq!(ids(s, "Patient?gender=female").await, set(&[&pa]));
    assert_eq!(ids(s, "Patient?gender:not=male").await, set(&[&pa, &pc]));
}

/// Date: the search value and the target are both ranges (by precision);
/// every prefix compares the ranges as search.html#prefix describes.
async fn date_search(s: &TestServer) {
    let born = |d: &str| json!({"resourceType": "Patient", "birthDate": d});
    let d1 = create_id(s, born("1970-03-15")).await;
    let d2 = create_id(s, born("1970")).await;
    let d3 = create_id(s, born("1970-03")).await;
    let d4 = create_id(s, born("1971-01-01")).await;
    let d5 = create_id(s, born("1969-12-31")).await;
    let d6 = create_id(s, born("1900-01-01")).await;

    let cases: &[(&str, Vec<&String>)] = &[
        // eq: the search range contains the target range.
        ("1970", vec![&d1, &d2, &d3]),
        ("eq1970", vec![&d1, &d2, &d3]),
        ("1970-03", vec![&d1, &d3]),
        ("1970-03-15", vec![&d1]),
        ("ne1970", vec![&d4, &d5, &d6]),
        ("ne1970-03", vec![&d2, &d4, &d5, &d6]),
        // gt/lt: the range above/below the search value overlaps the target.
        ("gt1970", vec![&d4]),
        ("lt1970", vec![&d5, &d6]),
        ("ge1970", vec![&d1, &d2, &d3, &d4]),
        ("le1970", vec![&d1, &d2, &d3, &d5, &d6]),
        ("gt1970-03-15", vec![&d2, &d3, &d4]),
        ("lt1970-03-15", vec![&d2, &d3, &d5, &d6]),
        // sa/eb: no overlap, and the target lies wholly after/before.
        ("sa1970-03", vec![&d4]),
        ("eb1970-03", vec![&d5, &d6]),
        ("sa1969-12-31", vec![&d1, &d2, &d3, &d4]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            ids(s, &format!("Patient?birthdate={value}")).await,
            set(expected),
            "birthdate={value}"
        );
    }
    // A search value with a time is an (instant) range inside the target day.
    let instant = ids(s, "Patient?birthdate=1970-03-15T10:00:00Z").await;
    assert!(!instant.contains(&d1), "a day is not inside one second");
    let after = ids(s, "Patient?birthdate=gt1970-03-15T10:00:00Z").await;
    assert!(after.contains(&d1) && after.contains(&d4) && !after.contains(&d5));
    // AND of two prefixes is a range (1970 as a whole overlaps both sides).
    assert_eq!(
        ids(s, "Patient?birthdate=ge1970-03-01&birthdate=lt1970-04-01").await,
        set(&[&d1, &d2, &d3])
    );
    // ap: the exact value always matches; a date 70 years away does not.
    let ap = ids(s, "Patient?birthdate=ap1970-03-15").await;
    assert!(ap.contains(&d1), "ap1970-03-15: {ap:?}");
    assert!(!ap.contains(&d6), "ap1970-03-15: {ap:?}");

    // dateTime with a time zone: 14:00+02:00 is 12:00Z.
    let timed = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "t"},
               "effectiveDateTime": "2020-05-05T14:00:00+02:00"}),
    )
    .await;
    let q = |v: &str| format!("Observation?date={}", enc(v));
    for (value, matches) in [
        ("2020-05-05", true),
        ("2020-05", true),
        ("2020-05-05T12:00:00Z", true),
        ("2020-05-05T14:00:00+02:00", true),
        ("2020-05-05T08:00:00-04:00", true),
        ("2020-05-05T14:00:00Z", false),
        ("gt2020-05-05T11:30:00Z", true),
        ("lt2020-05-05T11:30:00Z", false),
        ("gt2020-05-05T13:30:00+01:00", false),
        ("lt2020-05-05T13:30:00+01:00", true),
        ("ge2020-05-05T12:00:00Z", true),
        ("le2020-05-05T12:00:00Z", true),
        ("ne2020-05-05T12:00:00Z", false),
        ("2020-05-06", false),
    ] {
        let got = ids(s, &q(value)).await;
        assert_eq!(got.contains(&timed), matches, "date={value}: {got:?}");
    }

    // Periods: a missing end is open (until the end of time).
    let open = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "in-progress",
               "class": {"code": "AMB"}, "period": {"start": "2021-01-10"}}),
    )
    .await;
    let closed = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "finished",
               "class": {"code": "AMB"},
               "period": {"start": "2021-02-01", "end": "2021-02-03"}}),
    )
    .await;
    // A missing start is open too.
    let until = create_id(
        s,
        json!({"resourceType": "Encounter", "status": "finished",
               "class": {"code": "AMB"}, "period": {"end": "2019-01-01"}}),
    )
    .await;
    let cases: &[(&str, Vec<&String>)] = &[
        ("lt1900", vec![&until]),
        ("gt2019-01-01", vec![&open, &closed]),
        ("eb2019-01-02", vec![&until]),
        ("gt2030-01-01", vec![&open]),
        ("lt2021-01-01", vec![&until]),
        ("2021", vec![&closed]),
        ("2019", vec![]),
        ("2021-02", vec![&closed]),
        ("2021-02-02", vec![]),
        ("ne2021-02-02", vec![&open, &closed, &until]),
        ("ge2021-01-10", vec![&open, &closed]),
        ("gt2021-02-02", vec![&open, &closed]),
        ("lt2021-02-02", vec![&open, &closed, &until]),
        ("lt2021-01-15", vec![&open, &until]),
        ("sa2020-12-31", vec![&open, &closed]),
        ("sa2021-01-20", vec![&closed]),
        ("eb2021-02-05", vec![&closed, &until]),
        ("eb2030", vec![&closed, &until]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            ids(s, &format!("Encounter?date={value}")).await,
            set(expected),
            "Encounter?date={value}"
        );
    }
}

/// Number (RiskAssessment.probability): implicit precision of the search
/// value (`0.8` is [0.75, 0.85)), and the prefixes.
async fn number_search(s: &TestServer) {
    let risk = |p: f64| {
        json!({"resourceType": "RiskAssessment", "status": "final",
               "subject": {"reference": "Patient/x"},
               "prediction": [{"probabilityDecimal": p}]})
    };
    let r08 = create_id(s, risk(0.8)).await;
    let r025 = create_id(s, risk(0.25)).await;
    let r084 = create_id(s, risk(0.84)).await;
    let cases: &[(&str, Vec<&String>)] = &[
        ("0.8", vec![&r08, &r084]),
        ("0.80", vec![&r08]),
        ("0.84", vec![&r084]),
        ("gt0.5", vec![&r08, &r084]),
        ("lt0.5", vec![&r025]),
        ("ge0.84", vec![&r084]),
        ("le0.25", vec![&r025]),
        ("gt0.84", vec![]),
        ("lt0.25", vec![]),
        ("ne0.80", vec![&r025, &r084]),
        // Exponential notation: 8e-1 has one significant figure too.
        ("8e-1", vec![&r08, &r084]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            ids(s, &format!("RiskAssessment?probability={value}")).await,
            set(expected),
            "probability={value}"
        );
    }
    // ap: approximately (the spec suggests 10%); the value itself matches.
    let ap = ids(s, "RiskAssessment?probability=ap0.8").await;
    assert!(ap.contains(&r08) && !ap.contains(&r025), "{ap:?}");
}

/// Quantity: `number|system|code`, `number` alone (any unit),
/// `number||unit` (code or unit), and comparison through UCUM canonical
/// units across prefixes (umol/L vs mmol/L, mg/dL vs g/L).
async fn quantity_search(s: &TestServer) {
    let ucum = "http://unitsofmeasure.org";
    let obs = |q: Value| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"text": "q"}, "valueQuantity": q})
    };
    let q1 = create_id(
        s,
        obs(json!({"value": 5.4, "unit": "mg", "system": ucum, "code": "mg"})),
    )
    .await;
    let q2 = create_id(
        s,
        obs(json!({"value": 5500, "unit": "µmol/L", "system": ucum, "code": "umol/L"})),
    )
    .await;
    let q3 = create_id(
        s,
        obs(json!({"value": 150, "unit": "mg/dL", "system": ucum, "code": "mg/dL"})),
    )
    .await;
    let q4 = create_id(s, obs(json!({"value": 5.4, "unit": "mg"}))).await;
    let cases: &[(&str, Vec<&String>)] = &[
        ("5.4", vec![&q1, &q4]),
        ("5.4|http://unitsofmeasure.org|mg", vec![&q1]),
        ("5.4||mg", vec![&q1, &q4]),
        ("gt5|http://unitsofmeasure.org|mg", vec![&q1]),
        ("lt5|http://unitsofmeasure.org|mg", vec![]),
        // 5500 umol/L is 5.5 mmol/L.
        ("gt5.3|http://unitsofmeasure.org|mmol/L", vec![&q2]),
        ("5.5|http://unitsofmeasure.org|mmol/L", vec![&q2]),
        ("lt5|http://unitsofmeasure.org|mmol/L", vec![]),
        ("5500|http://unitsofmeasure.org|umol/L", vec![&q2]),
        // 150 mg/dL is 1.5 g/L, and not a substance concentration.
        ("1.5|http://unitsofmeasure.org|g/L", vec![&q3]),
        ("150|http://unitsofmeasure.org|mg/dL", vec![&q3]),
        ("ge1|http://unitsofmeasure.org|g/L", vec![&q3]),
        ("1.5|http://unitsofmeasure.org|mmol/L", vec![]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            ids(s, &format!("Observation?value-quantity={}", enc(value))).await,
            set(expected),
            "value-quantity={value}"
        );
    }
}

/// Reference: `Type/id`, bare id, absolute URL on the server's base,
/// `:Type` modifier, `:identifier`.
async fn reference_search(s: &TestServer) {
    let p = put_id(s, json!({"resourceType": "Patient"}), "ref-p1").await;
    put_id(s, json!({"resourceType": "Patient"}), "ref-p2").await;
    let obs = |subject: Value| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"text": "r"}, "subject": subject})
    };
    let o1 = create_id(s, obs(json!({"reference": "Patient/ref-p1"}))).await;
    let o2 = create_id(s, obs(json!({"reference": "Patient/ref-p2"}))).await;
    let o3 = create_id(
        s,
        obs(json!({"identifier": {"system": "http://hosp.example", "value": "X1"}})),
    )
    .await;
    let base = &s.base;
    for q in [
        format!("Observation?subject=Patient/{p}"),
        format!("Observation?subject={p}"),
        format!("Observation?subject={base}/Patient/{p}"),
        format!("Observation?subject:Patient={p}"),
        format!("Observation?patient={p}"),
        format!("Observation?patient=Patient/{p}"),
    ] {
        assert_eq!(ids(s, &q).await, set(&[&o1]), "{q}");
    }
    assert!(ids(s, &format!("Observation?subject:Group={p}"))
        .await
        .is_empty());
    assert!(ids(s, "Observation?subject=Patient/nobody")
        .await
        .is_empty());
    assert_eq!(
        ids(s, "Observation?subject=ref-p1,ref-p2").await,
        set(&[&o1, &o2])
    );
    assert_eq!(
        ids(s, "Observation?subject:identifier=http://hosp.example|X1").await,
        set(&[&o3])
    );
    assert!(
        ids(s, "Observation?subject:identifier=http://hosp.example|X2")
            .await
            .is_empty()
    );
}

/// Uri: exact by default; `:below` (the value is a prefix of the stored
/// uri); `:above` (the stored uri is a prefix of the value).
async fn uri_search(s: &TestServer) {
    let vs = |url: &str| json!({"resourceType": "ValueSet", "status": "active", "url": url});
    let v1 = create_id(s, vs("http://acme.org/fhir/ValueSet/123")).await;
    let v2 = create_id(s, vs("http://acme.org/fhir/ValueSet/124")).await;
    create_id(s, vs("http://other.org/ValueSet/1")).await;
    assert_eq!(
        ids(s, "ValueSet?url=http://acme.org/fhir/ValueSet/123").await,
        set(&[&v1])
    );
    assert!(ids(s, "ValueSet?url=http://acme.org/fhir/ValueSet/12")
        .await
        .is_empty());
    assert!(ids(s, "ValueSet?url=http://acme.org/fhir").await.is_empty());
    assert_eq!(
        ids(s, "ValueSet?url:below=http://acme.org/fhir").await,
        set(&[&v1, &v2])
    );
    assert_eq!(
        ids(s, "ValueSet?url:below=http://acme.org/fhir/ValueSet/123").await,
        set(&[&v1])
    );
    assert_eq!(
        ids(
            s,
            "ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5"
        )
        .await,
        set(&[&v1])
    );
    assert!(ids(s, "ValueSet?url:above=http://acme.org/fhir")
        .await
        .is_empty());
}

/// Composite: both components must match within the same repetition
/// (the same Observation.component), not across components.
async fn composite_search(s: &TestServer) {
    let loinc = "http://loinc.org";
    let mmhg = |v: f64| json!({"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
    let bp = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": loinc, "code": "85354-9"}]},
        "component": [
            {"code": {"coding": [{"system": loinc, "code": "8480-6"}]},
             "valueQuantity": mmhg(120.0)},
            {"code": {"coding": [{"system": loinc, "code": "8462-4"}]},
             "valueQuantity": mmhg(80.0)}
        ]}),
    )
    .await;
    let systolic = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": loinc, "code": "8480-6"}]},
               "valueQuantity": mmhg(130.0)}),
    )
    .await;
    let cases: &[(&str, Vec<&String>)] = &[
        (
            "code-value-quantity=http://loinc.org|8480-6$gt100",
            vec![&systolic],
        ),
        ("code-value-quantity=http://loinc.org|8480-6$lt100", vec![]),
        ("code-value-quantity=8480-6$130", vec![&systolic]),
        (
            "code-value-quantity=http://loinc.org|8480-6$130|http://unitsofmeasure.org|mm[Hg]",
            vec![&systolic],
        ),
        (
            "component-code-value-quantity=http://loinc.org|8480-6$gt100",
            vec![&bp],
        ),
        // Diastolic is 80: the systolic 120 of the other component must not count.
        (
            "component-code-value-quantity=http://loinc.org|8462-4$gt100",
            vec![],
        ),
        (
            "component-code-value-quantity=http://loinc.org|8462-4$lt90",
            vec![&bp],
        ),
        (
            "component-code-value-quantity=http://loinc.org|8480-6$lt90",
            vec![],
        ),
        (
            "combo-code-value-quantity=http://loinc.org|8480-6$gt100",
            vec![&bp, &systolic],
        ),
        // OR of composite values.
        (
            "component-code-value-quantity=8462-4$gt100,8480-6$gt100",
            vec![&bp],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            ids(s, &format!("Observation?{query}")).await,
            set(expected),
            "{query}"
        );
    }

    // token$token composites, again within one component.
    let coded = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": loinc, "code": "72166-2"}]},
               "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "266919005"}]},
               "component": [
                   {"code": {"coding": [{"code": "c1"}]}, "valueCodeableConcept": {"coding": [{"code": "v1"}]}},
                   {"code": {"coding": [{"code": "c2"}]}, "valueCodeableConcept": {"coding": [{"code": "v2"}]}}
               ]}),
    )
    .await;
    let cases: &[(&str, Vec<&String>)] = &[
        ("code-value-concept=72166-2$266919005", vec![&coded]),
        (
            "code-value-concept=http://loinc.org|72166-2$http://snomed.info/sct|266919005",
            vec![&coded],
        ),
        ("code-value-concept=72166-2$v1", vec![]),
        ("component-code-value-concept=c1$v1", vec![&coded]),
        ("component-code-value-concept=c2$v2", vec![&coded]),
        ("component-code-value-concept=c1$v2", vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(
            ids(s, &format!("Observation?{query}")).await,
            set(expected),
            "{query}"
        );
    }
}

/// `:missing=true` matches resources without any value for the parameter.
async fn missing_modifier(s: &TestServer) {
    let with = create_id(
        s,
        json!({"resourceType": "Patient", "birthDate": "1980-01-01", "gender": "male"}),
    )
    .await;
    let without = create_id(
        s,
        json!({"resourceType": "Patient", "name": [{"family": "N"}]}),
    )
    .await;
    assert_eq!(
        ids(s, "Patient?birthdate:missing=true").await,
        set(&[&without])
    );
    assert_eq!(
        ids(s, "Patient?birthdate:missing=false").await,
        set(&[&with])
    );
    assert_eq!(
        ids(s, "Patient?gender:missing=true").await,
        set(&[&without])
    );
    assert_eq!(
        ids(s, "Patient?family:missing=false").await,
        set(&[&without])
    );
    assert_eq!(ids(s, "Patient?family:missing=true").await, set(&[&with]));
    assert_eq!(
        ids(s, "Patient?organization:missing=true").await,
        set(&[&with, &without])
    );

    // A composite value needs every component: a code without a value is
    // no code-value-quantity.
    let loinc = |code: &str| json!({"coding": [{"system": "http://loinc.org", "code": code}]});
    let measured = create_id(
        s,
        json!({"resourceType": "Observation", "status": "final", "code": loinc("2345-7"),
               "valueQuantity": {"value": 5, "system": "http://unitsofmeasure.org", "code": "mmol/L"}}),
    )
    .await;
    let pending = create_id(
        s,
        json!({"resourceType": "Observation", "status": "registered", "code": loinc("2345-7")}),
    )
    .await;
    assert_eq!(
        ids(
            s,
            "Observation?code=2345-7&code-value-quantity:missing=true"
        )
        .await,
        set(&[&pending])
    );
    assert_eq!(
        ids(
            s,
            "Observation?code=2345-7&code-value-quantity:missing=false"
        )
        .await,
        set(&[&measured])
    );
    assert_eq!(
        ids(s, "Observation?code=2345-7&code-value-concept:missing=true").await,
        set(&[&measured, &pending])
    );
}

/// A comma is OR within one parameter; repeating a parameter is AND; `\,`
/// is a literal comma.
async fn or_and_escaping(s: &TestServer) {
    let p = |family: &str, given: &[&str]| json!({"resourceType": "Patient", "name": [{"family": family, "given": given}]});
    let alpha = create_id(s, p("Alpha", &["Ann", "Bea"])).await;
    let beta = create_id(s, p("Beta", &["Ann"])).await;
    let gamma = create_id(s, p("Gamma", &["Bea"])).await;
    let smith_jr = create_id(s, p("Smith, Jr", &["Tom"])).await;
    let smithers = create_id(s, p("Smithers", &["Tim"])).await;

    assert_eq!(
        ids(s, "Patient?family=alpha,beta").await,
        set(&[&alpha, &beta])
    );
    assert_eq!(ids(s, "Patient?given=ann&given=bea").await, set(&[&alpha]));
    assert_eq!(
        ids(s, "Patient?given=ann,bea&family=beta,gamma").await,
        set(&[&beta, &gamma])
    );
    assert_eq!(ids(s, "Patient?family=alpha&family=beta").await, set(&[]));
    // `Smith\,` is the one value "Smith," (the `\` percent-encoded).
    assert_eq!(ids(s, "Patient?family=Smith%5C,").await, set(&[&smith_jr]));
    assert_eq!(
        ids(s, "Patient?family=Smith%5C,%20Jr").await,
        set(&[&smith_jr])
    );
    assert_eq!(
        ids(s, "Patient?family:exact=Smith%5C,%20Jr").await,
        set(&[&smith_jr])
    );
    assert_eq!(
        ids(s, "Patient?family=Smith,Gamma").await,
        set(&[&smith_jr, &smithers, &gamma])
    );
}

crate::on_both_databases!(
    string_search,
    token_search,
    date_search,
    number_search,
    quantity_search,
    reference_search,
    uri_search,
    composite_search,
    missing_modifier,
    or_and_escaping,
);
