//! The profile walker on small profiles and on R4's vital signs profiles.

use serde_json::{json, Value};

use super::{shipped, Item, Lookup, Profile};

const VITALSIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

fn errors(p: &Profile, r: &Value) -> Vec<String> {
    p.validate(r)
        .issues
        .iter()
        .filter(|i| matches!(i.severity, crate::fhir::outcome::Severity::Error))
        .map(|i| {
            format!(
                "{} | {}",
                i.expression.as_deref().unwrap_or(""),
                i.diagnostics
            )
        })
        .collect()
}

/// A small Patient profile: one or two names, a fixed gender, an
/// identifier pattern, and `identifier` sliced by system (closed).
fn patient_profile() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/p",
        "type": "Patient",
        "snapshot": {"element": [
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.name", "path": "Patient.name", "min": 1, "max": "2"},
            {"id": "Patient.gender", "path": "Patient.gender", "min": 0, "max": "1", "fixedCode": "female"},
            {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus", "min": 0, "max": "1",
             "patternCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"}]}},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "fixedUri": "urn:mrn"},
            {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1, "max": "1"},
            {"id": "Patient.identifier:ssn", "path": "Patient.identifier", "sliceName": "ssn", "min": 0, "max": "1"},
            {"id": "Patient.identifier:ssn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "patternUri": "urn:ssn"}
        ]}
    }))
    .unwrap()
}

fn good_patient() -> Value {
    json!({"resourceType": "Patient",
        "name": [{"family": "A"}],
        "gender": "female",
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "identifier": [{"system": "urn:mrn", "value": "1"}, {"system": "urn:ssn", "value": "2"}]})
}

#[test]
fn a_conforming_resource_has_no_errors() {
    assert!(errors(&patient_profile(), &good_patient()).is_empty());
}

#[test]
fn cardinality() {
    let p = patient_profile();
    let mut r = good_patient();
    r.as_object_mut().unwrap().remove("name");
    let e = errors(&p, &r);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("Patient.name | "), "{e:?}");
    assert!(e[0].contains("at least 1"), "{e:?}");
    r["name"] = json!([{"family": "A"}, {"family": "B"}, {"family": "C"}]);
    let e = errors(&p, &r);
    assert!(e.len() == 1 && e[0].contains("at most 2"), "{e:?}");
}

#[test]
fn fixed_and_pattern_values() {
    let p = patient_profile();
    let mut r = good_patient();
    r["gender"] = json!("male");
    r["maritalStatus"] = json!({"coding": [{"system": "http://other", "code": "M"}]});
    let e = errors(&p, &r);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e
        .iter()
        .any(|x| x.starts_with("Patient.gender | ") && x.contains("fixes")));
    assert!(e
        .iter()
        .any(|x| x.starts_with("Patient.maritalStatus | ") && x.contains("pattern")));
}

#[test]
fn slices_by_value_and_closed_slicing() {
    let p = patient_profile();
    let mut r = good_patient();
    // No MRN: the mrn slice's minimum; an unknown system under closed slicing.
    r["identifier"] = json!([{"system": "urn:other", "value": "3"}]);
    let e = errors(&p, &r);
    assert!(
        e.iter()
            .any(|x| x.starts_with("Patient.identifier | ") && x.contains("slice `mrn`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|x| x.starts_with("Patient.identifier[0] | ") && x.contains("closed")),
        "{e:?}"
    );
    // Two MRNs: the slice's maximum; an MRN without value: the slice's child.
    r["identifier"] = json!([{"system": "urn:mrn", "value": "1"}, {"system": "urn:mrn"}]);
    let e = errors(&p, &r);
    assert!(
        e.iter()
            .any(|x| x.contains("slice `mrn`") && x.contains("at most 1")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|x| x.starts_with("Patient.identifier[1].value | ")),
        "{e:?}"
    );
}

fn vital_sign(code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/1"},
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

#[test]
fn vital_signs_category_slice_and_reference_target() {
    let p = shipped(VITALSIGNS, None).expect("vitalsigns is shipped");
    assert!(errors(p, &vital_sign("8867-4")).is_empty());
    let mut bad = vital_sign("8867-4");
    bad["category"] = json!([{"text": "vitals"}]);
    bad["subject"] = json!({"reference": "Group/1"});
    let e = errors(p, &bad);
    assert!(e.iter().any(|x| x.contains("slice `VSCat`")), "{e:?}");
    assert!(
        e.iter()
            .any(|x| x.starts_with("Observation.subject.reference | ")),
        "{e:?}"
    );
}

#[test]
fn heart_rate_code_and_blood_pressure_components() {
    let hr = shipped("http://hl7.org/fhir/StructureDefinition/heartrate", None).unwrap();
    assert!(errors(hr, &vital_sign("8867-4")).is_empty());
    let e = errors(hr, &vital_sign("1234-5"));
    assert!(
        e.iter()
            .any(|x| x.starts_with("Observation.code.coding | ") && x.contains("HeartRateCode")),
        "{e:?}"
    );

    let bp = shipped("http://hl7.org/fhir/StructureDefinition/bp", None).unwrap();
    let component = |code: &str| {
        json!({"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})
    };
    let mut r = vital_sign("85354-9");
    r.as_object_mut().unwrap().remove("valueQuantity");
    r["component"] = json!([component("8480-6"), component("8462-4")]);
    assert!(errors(bp, &r).is_empty(), "{:?}", errors(bp, &r));
    // Only the systolic component; a value on the panel itself (closed type slicing, max 0).
    r["component"] = json!([component("8480-6")]);
    r["valueQuantity"] = json!({"value": 1});
    let e = errors(bp, &r);
    assert!(e.iter().any(|x| x.contains("slice `DiastolicBP`")), "{e:?}");
    assert!(
        e.iter().any(|x| x.starts_with("Observation.value")),
        "{e:?}"
    );
}

#[test]
fn every_shipped_profile_loads() {
    for (id, _) in super::super::shipped_profiles::SHIPPED {
        let url = format!("http://hl7.org/fhir/StructureDefinition/{id}");
        assert!(shipped(&url, None).is_some(), "{url}");
    }
}

/// An Observation profile with bounds: a Quantity value of 30–250 /min,
/// an effective date in 2020 or later, an issued instant before 2030, a
/// positive integer component value at most 10, a comment of at most 10
/// characters.
fn bounded_profile() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/bounded",
        "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.effective[x]", "path": "Observation.effective[x]", "min": 0, "max": "1",
             "type": [{"code": "dateTime"}], "minValueDateTime": "2020-01-01"},
            {"id": "Observation.issued", "path": "Observation.issued", "min": 0, "max": "1",
             "maxValueInstant": "2029-12-31T23:59:59Z"},
            {"id": "Observation.value[x]", "path": "Observation.value[x]", "min": 0, "max": "1",
             "type": [{"code": "Quantity"}],
             "minValueQuantity": {"value": 30, "system": "http://unitsofmeasure.org", "code": "/min"},
             "maxValueQuantity": {"value": 250, "system": "http://unitsofmeasure.org", "code": "/min"}},
            {"id": "Observation.note", "path": "Observation.note", "min": 0, "max": "*"},
            {"id": "Observation.note.text", "path": "Observation.note.text", "min": 1, "max": "1",
             "maxLength": 10},
            {"id": "Observation.component", "path": "Observation.component", "min": 0, "max": "*"},
            {"id": "Observation.component.value[x]", "path": "Observation.component.value[x]",
             "min": 0, "max": "1", "type": [{"code": "integer"}, {"code": "decimal"}, {"code": "time"}],
             "minValueInteger": 1, "maxValueDecimal": 10.5}
        ]}
    }))
    .unwrap()
}

fn bounded(value: Value) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "hr"},
        "effectiveDateTime": "2024-05-01T10:00:00Z", "issued": "2024-05-01T10:00:00Z",
        "valueQuantity": value,
        "note": [{"text": "short"}],
        "component": [{"code": {"text": "a"}, "valueInteger": 3}]})
}

fn per_min(v: f64) -> Value {
    json!({"value": v, "system": "http://unitsofmeasure.org", "code": "/min"})
}

#[test]
fn min_and_max_values() {
    let p = bounded_profile();
    assert!(errors(&p, &bounded(per_min(72.0))).is_empty());
    assert!(errors(&p, &bounded(per_min(30.0))).is_empty());
    assert!(errors(&p, &bounded(per_min(250.0))).is_empty());

    let e = errors(&p, &bounded(per_min(251.0)));
    assert_eq!(
        e,
        ["Observation.value | Observation.value is 251 /min, above the profile's maxValue 250 /min"],
    );
    let e = errors(&p, &bounded(per_min(29.5)));
    assert!(
        e.len() == 1 && e[0].contains("below the profile's minValue 30 /min"),
        "{e:?}"
    );

    let mut r = bounded(per_min(72.0));
    r["effectiveDateTime"] = json!("2019-12-31T23:00:00-02:00"); // 2020-01-01T01:00Z
    r["issued"] = json!("2030-01-01T00:00:00+01:00"); // 2029-12-31T23:00Z
    assert!(errors(&p, &r).is_empty(), "{:?}", errors(&p, &r));
    r["effectiveDateTime"] = json!("2019-12");
    r["issued"] = json!("2030-01-01T00:00:00Z");
    r["component"] = json!([{"code": {"text": "a"}, "valueInteger": 0},
        {"code": {"text": "b"}, "valueDecimal": 10.6}, {"code": {"text": "c"}, "valueDecimal": 10.50}]);
    let e = errors(&p, &r);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("Observation.effective | ")
            && e[0].contains("2019-12, below the profile's minValue 2020-01-01"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("Observation.issued | ") && e[1].contains("above the profile's maxValue"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("Observation.component[0].value | ") && e[2].contains("0, below"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("Observation.component[1].value | ") && e[3].contains("10.6, above"),
        "{e:?}"
    );

    // A coarser value that overlaps the bound is not below it.
    r = bounded(per_min(72.0));
    r["effectiveDateTime"] = json!("2020");
    assert!(errors(&p, &r).is_empty());
}

#[test]
fn quantity_bounds_convert_ucum_units_and_warn_on_others() {
    let p = bounded_profile();
    // 5 /s is 300 /min.
    let fast = json!({"value": 5, "system": "http://unitsofmeasure.org", "code": "/s"});
    let e = errors(&p, &bounded(fast));
    assert!(
        e.len() == 1 && e[0].contains("5 /s, above the profile's maxValue 250 /min"),
        "{e:?}"
    );
    let slow = json!({"value": 1, "system": "http://unitsofmeasure.org", "code": "/s"});
    assert!(errors(&p, &bounded(slow)).is_empty());
    // Another dimension or a unit without a code cannot be compared: a warning.
    for q in [
        json!({"value": 9000, "system": "http://unitsofmeasure.org", "code": "kg"}),
        json!({"value": 9000, "unit": "beats per minute"}),
    ] {
        let out = p.validate(&bounded(q));
        let warnings: Vec<&str> = out
            .issues
            .iter()
            .filter(|i| matches!(i.severity, crate::fhir::outcome::Severity::Warning))
            .map(|i| i.diagnostics.as_str())
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("minValue was not checked"),
            "{warnings:?}"
        );
        assert!(out
            .issues
            .iter()
            .all(|i| !matches!(i.severity, crate::fhir::outcome::Severity::Error)));
    }
}

#[test]
fn time_bounds_and_max_length() {
    let p = bounded_profile();
    let mut r = bounded(per_min(72.0));
    r["note"] = json!([{"text": "ten chars!"}, {"text": "élève ok"}, {"text": "eleven char"}]);
    let e = errors(&p, &r);
    assert_eq!(
        e,
        ["Observation.note[2].text | Observation.note[2].text is 11 characters long; the profile's maxLength is 10"]
    );
    let sd = json!({"resourceType": "StructureDefinition", "url": "urn:t", "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.value[x]", "path": "Observation.value[x]", "min": 0, "max": "1",
             "minValueTime": "08:00:00", "maxValueTime": "17:30:00"}]}});
    let p = Profile::from_resource(&sd).unwrap();
    let obs = |t: &str| json!({"resourceType": "Observation", "valueTime": t});
    assert!(errors(&p, &obs("08:00:00")).is_empty());
    // 17:30:00.5 is 17:30:00 at the bound's precision.
    assert!(errors(&p, &obs("17:30:00.5")).is_empty());
    let e = errors(&p, &obs("17:30:01"));
    assert!(
        e.len() == 1 && e[0].contains("above the profile's maxValue 17:30:00"),
        "{e:?}"
    );
    let e = errors(&p, &obs("07:59:59"));
    assert!(
        e.len() == 1 && e[0].contains("07:59:59, below the profile's minValue 08:00:00"),
        "{e:?}"
    );
}

const EYE: &str = "http://example.org/StructureDefinition/eye-colour";
const HEIGHT: &str = "http://example.org/StructureDefinition/height";

/// An extension definition: fixed url, one value of the given type, with
/// extra element definitions on the value.
fn extension(url: &str, ty: &str, value_rules: Value) -> Profile {
    let mut value = json!({"id": "Extension.value[x]", "path": "Extension.value[x]",
        "min": 1, "max": "1", "type": [{"code": ty}]});
    for (k, v) in value_rules.as_object().unwrap() {
        value[k] = v.clone();
    }
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": url, "type": "Extension",
        "snapshot": {"element": [
            {"id": "Extension", "path": "Extension", "min": 0, "max": "*"},
            {"id": "Extension.url", "path": "Extension.url", "min": 1, "max": "1", "fixedUri": url},
            value
        ]}
    }))
    .unwrap()
}

/// Patient extensions sliced by profile (`$this`, closed): one eye colour,
/// at most one height.
fn extension_slicing(eye: &str) -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/p-ext", "type": "Patient",
        "snapshot": {"element": [
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.extension", "path": "Patient.extension", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "profile", "path": "$this"}], "rules": "closed"}},
            {"id": "Patient.extension:eye", "path": "Patient.extension", "sliceName": "eye",
             "min": 1, "max": "1", "type": [{"code": "Extension", "profile": [eye]}]},
            {"id": "Patient.extension:height", "path": "Patient.extension", "sliceName": "height",
             "min": 0, "max": "1", "type": [{"code": "Extension", "profile": [HEIGHT]}]}
        ]}
    }))
    .unwrap()
}

fn with_others(p: &Profile, others: &[Profile], r: &Value) -> (Vec<String>, Vec<String>) {
    with_stored(p, others, &[], r)
}

/// Validation with other profiles and resources "stored" on the server
/// (by `Type/id`): (errors, warnings).
fn with_stored(
    p: &Profile,
    others: &[Profile],
    stored: &[Value],
    r: &Value,
) -> (Vec<String>, Vec<String>) {
    let profiles = |url: &str| others.iter().find(|o| o.url == url);
    let resources = |reference: &str| {
        stored.iter().find(|s| {
            format!(
                "{}/{}",
                s["resourceType"].as_str().unwrap(),
                s["id"].as_str().unwrap()
            ) == reference
        })
    };
    let lookup = Lookup {
        profiles: &profiles,
        resources: Some(&resources),
    };
    let out = p.validate_with(r, &lookup);
    let pick = |sev: fn(&crate::fhir::outcome::Severity) -> bool| {
        out.issues
            .iter()
            .filter(|i| sev(&i.severity))
            .map(|i| {
                format!(
                    "{} | {}",
                    i.expression.as_deref().unwrap_or(""),
                    i.diagnostics
                )
            })
            .collect::<Vec<_>>()
    };
    (
        pick(|s| matches!(s, crate::fhir::outcome::Severity::Error)),
        pick(|s| matches!(s, crate::fhir::outcome::Severity::Warning)),
    )
}

#[test]
fn slices_by_profile_of_the_element() {
    let others = [
        extension(EYE, "code", json!({})),
        extension(
            HEIGHT,
            "Quantity",
            json!({"maxValueQuantity": {"value": 300, "system": "http://unitsofmeasure.org", "code": "cm"}}),
        ),
    ];
    let p = extension_slicing(EYE);
    assert_eq!(p.needed_profiles(), [EYE, HEIGHT]);
    let eye = json!({"url": EYE, "valueCode": "brown"});
    let height = |cm: u32| json!({"url": HEIGHT, "valueQuantity": {"value": cm, "system": "http://unitsofmeasure.org", "code": "cm"}});
    let patient = |ext: Value| json!({"resourceType": "Patient", "extension": ext});

    let (e, w) = with_others(&p, &others, &patient(json!([eye, height(180)])));
    assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");

    // A height over the extension's maxValue conforms to no slice's
    // profile (closed slicing); no eye colour: the slice's minimum.
    let (e, _) = with_others(&p, &others, &patient(json!([height(350)])));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("Patient.extension[0] | ") && e[0].contains("closed"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("Patient.extension | ") && e[1].contains("slice `eye`"),
        "{e:?}"
    );

    // An eye colour without its value does not conform either.
    let (e, _) = with_others(&p, &others, &patient(json!([{"url": EYE}])));
    assert!(
        e.iter()
            .any(|x| x.contains("slice `eye`") && x.contains("at least 1")),
        "{e:?}"
    );

    // A profile the server does not know: a warning, not a closed-slicing error.
    let p = extension_slicing("http://example.org/StructureDefinition/unknown");
    let (e, w) = with_others(&p, &others, &patient(json!([eye])));
    assert!(
        w.iter().any(|x| x.starts_with("Patient.extension[0] | ")
            && x.contains("could not be sorted")
            && x.contains("unknown is not known")),
        "{w:?}"
    );
    assert!(!e.iter().any(|x| x.contains("closed")), "{e:?}");
}

const HR: &str = "http://example.org/StructureDefinition/hr";

fn heart_rate_only() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": HR, "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.code", "path": "Observation.code", "min": 1, "max": "1",
             "patternCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
        ]}
    }))
    .unwrap()
}

#[test]
fn slices_by_profile_of_resolved_references_and_bundle_entries() {
    // Observation.hasMember sliced by the profile of the resource referred to.
    let p = Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/panel",
        "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.hasMember", "path": "Observation.hasMember", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "profile", "path": "resolve()"}], "rules": "open"}},
            {"id": "Observation.hasMember:hr", "path": "Observation.hasMember", "sliceName": "hr",
             "min": 1, "max": "1", "type": [{"code": "Reference", "targetProfile": [HR]}]}
        ]}
    }))
    .unwrap();
    let others = [heart_rate_only()];
    let obs = |id: &str, code: &str| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]}})
    };
    let panel = json!({"resourceType": "Observation", "status": "final", "code": {"text": "panel"},
        "contained": [obs("a", "8867-4"), obs("b", "9279-1")],
        "hasMember": [{"reference": "#b"}, {"reference": "#a"}]});
    let (e, w) = with_others(&p, &others, &panel);
    assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
    let mut no_hr = panel.clone();
    no_hr["hasMember"] = json!([{"reference": "#b"}]);
    let (e, _) = with_others(&p, &others, &no_hr);
    assert!(e.len() == 1 && e[0].contains("slice `hr`"), "{e:?}");
    // A reference to a resource elsewhere cannot be resolved: a warning.
    no_hr["hasMember"] = json!([{"reference": "Observation/x"}]);
    let (_, w) = with_others(&p, &others, &no_hr);
    assert!(
        w.iter()
            .any(|x| x.starts_with("Observation.hasMember[0] | ") && x.contains("`Observation/x`")),
        "{w:?}"
    );

    // Bundle entries sliced by the profile of their resource.
    let b = Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/b",
        "type": "Bundle",
        "snapshot": {"element": [
            {"id": "Bundle", "path": "Bundle", "min": 0, "max": "*"},
            {"id": "Bundle.entry", "path": "Bundle.entry", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "profile", "path": "resource"}], "rules": "closed"}},
            {"id": "Bundle.entry:hr", "path": "Bundle.entry", "sliceName": "hr", "min": 1, "max": "*"},
            {"id": "Bundle.entry:hr.resource", "path": "Bundle.entry.resource", "min": 1, "max": "1",
             "type": [{"code": "Observation", "profile": [HR]}]},
            {"id": "Bundle.entry:patient", "path": "Bundle.entry", "sliceName": "patient", "min": 0, "max": "1"},
            {"id": "Bundle.entry:patient.resource", "path": "Bundle.entry.resource", "min": 1, "max": "1",
             "type": [{"code": "Patient", "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]}
        ]}
    }))
    .unwrap();
    let bundle =
        |entries: Value| json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    let good = bundle(
        json!([{"resource": obs("a", "8867-4")}, {"resource": {"resourceType": "Patient"}}]),
    );
    let (e, w) = with_others(&b, &others, &good);
    assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
    let bad = bundle(json!([{"resource": obs("a", "9279-1")}]));
    let (e, _) = with_others(&b, &others, &bad);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("Bundle.entry[0] | ") && e[0].contains("closed"),
        "{e:?}"
    );
    assert!(e[1].contains("slice `hr`"), "{e:?}");

    // Bundle entries referred to by fullUrl or Type/id resolve too.
    let mut panel_in_bundle = panel.clone();
    panel_in_bundle.as_object_mut().unwrap().remove("contained");
    panel_in_bundle["hasMember"] =
        json!([{"reference": "Observation/b"}, {"reference": "urn:uuid:1"}]);
    let collection = bundle(json!([
        {"fullUrl": "http://s/fhir/Observation/b", "resource": obs("b", "9279-1")},
        {"fullUrl": "urn:uuid:1", "resource": obs("x", "8867-4")}
    ]));
    let root = Item {
        value: &collection,
        loc: "Bundle".into(),
        ty: "Bundle".into(),
    };
    let profiles = |url: &str| others.iter().find(|o| o.url == url);
    let lookup = Lookup {
        profiles: &profiles,
        resources: None,
    };
    let w = super::Walker {
        profile: &p,
        resource: &panel_in_bundle,
        top: root.value,
        lookup: &lookup,
        depth: 0,
        out: super::Outcome::default(),
    };
    let refs = panel_in_bundle["hasMember"].as_array().unwrap();
    assert_eq!(w.resolve(&refs[0]).unwrap()["id"], "b");
    assert_eq!(w.resolve(&refs[1]).unwrap()["id"], "x");
}

#[test]
fn reslicing() {
    // identifier sliced by system (open); the MRN slice resliced by use.
    let p = Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/re",
        "type": "Patient",
        "snapshot": {"element": [
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "use"}], "rules": "closed"}},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "max": "1",
             "fixedUri": "urn:mrn"},
            {"id": "Patient.identifier:mrn/official", "path": "Patient.identifier", "sliceName": "mrn/official",
             "min": 1, "max": "1"},
            {"id": "Patient.identifier:mrn/official.use", "path": "Patient.identifier.use", "min": 1, "max": "1",
             "fixedCode": "official"},
            {"id": "Patient.identifier:mrn/official.value", "path": "Patient.identifier.value", "min": 1, "max": "1",
             "maxLength": 4},
            {"id": "Patient.identifier:mrn/old", "path": "Patient.identifier", "sliceName": "mrn/old",
             "min": 0, "max": "*"},
            {"id": "Patient.identifier:mrn/old.use", "path": "Patient.identifier.use", "min": 1, "max": "1",
             "fixedCode": "old"}
        ]}
    }))
    .unwrap();
    let id = |use_: &str, value: &str| json!({"system": "urn:mrn", "use": use_, "value": value});
    let patient = |ids: Value| json!({"resourceType": "Patient", "identifier": ids});
    let good = patient(
        json!([id("official", "1234"), id("old", "9"), id("old", "8"),
        {"system": "urn:other", "value": "x"}]),
    );
    assert!(errors(&p, &good).is_empty(), "{:?}", errors(&p, &good));

    // No official MRN; a usual MRN is in no reslice (closed); an old one is fine.
    let e = errors(&p, &patient(json!([id("usual", "1"), id("old", "2")])));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("Patient.identifier[0] | ") && e[0].contains("closed"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("Patient.identifier | ") && e[1].contains("slice `mrn/official`"),
        "{e:?}"
    );

    // The reslice's own element rules: value at most 4 characters.
    let e = errors(&p, &patient(json!([id("official", "12345")])));
    assert!(
        e.len() == 1
            && e[0].starts_with("Patient.identifier[0].value | ")
            && e[0].contains("maxLength"),
        "{e:?}"
    );
}

/// Issues as `location | diagnostics` at the given severity.
fn at(issues: &[String], loc: &str, text: &str) -> bool {
    issues
        .iter()
        .any(|x| x.starts_with(&format!("{loc} | ")) && x.contains(text))
}

const FAMILY: &str = "http://example.org/StructureDefinition/family-name";

/// A HumanName profile: the family name is required.
fn family_name() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": FAMILY, "type": "HumanName",
        "snapshot": {"element": [
            {"id": "HumanName", "path": "HumanName", "min": 0, "max": "*"},
            {"id": "HumanName.family", "path": "HumanName.family", "min": 1, "max": "1"}
        ]}
    }))
    .unwrap()
}

/// Patient elements whose types name profiles: a datatype profile on
/// `name`, an extension sliced by `url` (the slice has no `url` element:
/// the extension's definition fixes it), an unsliced extension element
/// naming one extension, and an address profile nobody knows.
fn typed_profiles() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/typed", "type": "Patient",
        "snapshot": {"element": [
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.extension", "path": "Patient.extension", "min": 0, "max": "*",
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}},
            {"id": "Patient.extension:height", "path": "Patient.extension", "sliceName": "height",
             "min": 0, "max": "1", "type": [{"code": "Extension", "profile": [HEIGHT]}]},
            // The extension's rule restated on the slice: reported once.
            {"id": "Patient.extension:height.value[x]", "path": "Patient.extension.value[x]",
             "min": 1, "max": "1", "type": [{"code": "Quantity"}],
             "maxValueQuantity": {"value": 300, "system": "http://unitsofmeasure.org", "code": "cm"}},
            {"id": "Patient.modifierExtension", "path": "Patient.modifierExtension", "min": 0, "max": "*",
             "type": [{"code": "Extension", "profile": [EYE]}]},
            {"id": "Patient.name", "path": "Patient.name", "min": 0, "max": "*",
             "type": [{"code": "HumanName", "profile": [FAMILY]}]},
            {"id": "Patient.address", "path": "Patient.address", "min": 0, "max": "*",
             "type": [{"code": "Address", "profile": ["http://example.org/StructureDefinition/nowhere"]}]}
        ]}
    }))
    .unwrap()
}

#[test]
fn type_profiles_outside_slicing() {
    let others = [
        family_name(),
        extension(EYE, "code", json!({})),
        extension(
            HEIGHT,
            "Quantity",
            json!({"maxValueQuantity": {"value": 300, "system": "http://unitsofmeasure.org", "code": "cm"}}),
        ),
    ];
    let p = typed_profiles();
    let height = |cm: u32| json!({"url": HEIGHT, "valueQuantity": {"value": cm, "system": "http://unitsofmeasure.org", "code": "cm"}});
    let good = json!({"resourceType": "Patient",
        "extension": [height(180)],
        "modifierExtension": [{"url": EYE, "valueCode": "brown"}],
        "name": [{"family": "A"}]});
    let (e, w) = with_others(&p, &others, &good);
    assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");

    // The height over the extension's maxValue, an eye colour with another
    // url and a value of the wrong type, a name without a family name.
    let mut bad = good.clone();
    bad["extension"] = json!([height(350)]);
    bad["modifierExtension"] = json!([{"url": "http://example.org/other", "valueString": "brown"}]);
    bad["name"] = json!([{"given": ["A"]}]);
    let (e, w) = with_others(&p, &others, &bad);
    assert!(at(&e, "Patient.extension[0].value", "maxValue"), "{e:?}");
    assert!(
        at(&e, "Patient.modifierExtension[0].url", "fixes it to"),
        "{e:?}"
    );
    assert!(
        at(
            &e,
            "Patient.modifierExtension[0].value",
            "the profile allows code"
        ),
        "{e:?}"
    );
    assert!(at(&e, "Patient.name[0].family", "at least 1"), "{e:?}");
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(w.is_empty(), "{w:?}");

    // A profile the server does not know: a warning naming it, no error.
    let mut elsewhere = good.clone();
    elsewhere["address"] = json!([{"city": "X"}]);
    let (e, w) = with_others(&p, &others, &elsewhere);
    assert!(e.is_empty(), "{e:?}");
    assert!(
        at(
            &w,
            "Patient.address[0]",
            "StructureDefinition/nowhere is not known"
        ),
        "{w:?}"
    );
}

const FEMALE: &str = "http://example.org/StructureDefinition/female";

fn female_patient() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": FEMALE, "type": "Patient",
        "snapshot": {"element": [
            {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
            {"id": "Patient.gender", "path": "Patient.gender", "min": 1, "max": "1", "fixedCode": "female"}
        ]}
    }))
    .unwrap()
}

/// Observations whose subject is a female patient (a profile, not a type),
/// whose performer is any Practitioner or a profile nobody knows.
fn subject_profile() -> Profile {
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/obs-f", "type": "Observation",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.subject", "path": "Observation.subject", "min": 0, "max": "1",
             "type": [{"code": "Reference", "targetProfile": [FEMALE]}]},
            {"id": "Observation.performer", "path": "Observation.performer", "min": 0, "max": "*",
             "type": [{"code": "Reference", "targetProfile": [
                 "http://hl7.org/fhir/StructureDefinition/Practitioner",
                 "http://example.org/StructureDefinition/unknown-org"]}]},
            {"id": "Observation.focus", "path": "Observation.focus", "min": 0, "max": "*",
             "type": [{"code": "Reference", "targetProfile": [
                 "http://hl7.org/fhir/StructureDefinition/Resource", FEMALE]}]}
        ]}
    }))
    .unwrap()
}

#[test]
fn target_profiles_of_references() {
    let p = subject_profile();
    assert!(p.has_target_profiles());
    assert!(!patient_profile().has_target_profiles());
    let others = [female_patient()];
    let patient =
        |id: &str, gender: &str| json!({"resourceType": "Patient", "id": id, "gender": gender});
    let stored = [patient("f", "female"), patient("m", "male")];
    let obs = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "contained": [patient("cf", "female"), patient("cm", "male")],
            "subject": {"reference": subject}})
    };
    for good in ["Patient/f", "#cf"] {
        let (e, w) = with_stored(&p, &others, &stored, &obs(good));
        assert!(e.is_empty() && w.is_empty(), "{good}: {e:?} {w:?}");
    }
    for bad in ["Patient/m", "#cm"] {
        let (e, _) = with_stored(&p, &others, &stored, &obs(bad));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            at(
                &e,
                "Observation.subject",
                &format!("refers to {bad}, which conforms to none of {FEMALE}")
            ) && e[0].contains("fixes it to"),
            "{e:?}"
        );
    }
    // A resource the server does not have: a warning, not an error.
    let (e, w) = with_stored(&p, &others, &stored, &obs("Patient/gone"));
    assert!(e.is_empty(), "{e:?}");
    assert!(
        at(&w, "Observation.subject", "`Patient/gone`") && w[0].contains("not checked"),
        "{w:?}"
    );
    // Any Practitioner is a performer; another type might be the unknown
    // profile's: a warning naming it. Any resource is a focus.
    let mut r = obs("Patient/f");
    r["contained"] = json!([{"resourceType": "Practitioner", "id": "pr"}, {"resourceType": "Organization", "id": "o"}]);
    r["performer"] = json!([{"reference": "#pr"}, {"reference": "#o"}]);
    r["focus"] = json!([{"reference": "#pr"}]);
    let (e, w) = with_stored(&p, &others, &stored, &r);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        at(&w, "Observation.performer[1]", "unknown-org is not known"),
        "{w:?}"
    );
}

/// Identifiers sliced by system into `a` then `b`, with the given rules
/// and order.
fn ordered_slicing(rules: &str, ordered: bool) -> Profile {
    let slice = |name: &str| {
        [
            json!({"id": format!("Patient.identifier:{name}"), "path": "Patient.identifier",
                "sliceName": name, "min": 0, "max": "*"}),
            json!({"id": format!("Patient.identifier:{name}.system"), "path": "Patient.identifier.system",
                "min": 1, "max": "1", "fixedUri": format!("urn:{name}")}),
        ]
    };
    let mut elements = vec![
        json!({"id": "Patient", "path": "Patient", "min": 0, "max": "*"}),
        json!({"id": "Patient.identifier", "path": "Patient.identifier", "min": 0, "max": "*",
            "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                "rules": rules, "ordered": ordered}}),
    ];
    elements.extend(slice("a"));
    elements.extend(slice("b"));
    Profile::from_resource(&json!({
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/ordered", "type": "Patient",
        "snapshot": {"element": elements}
    }))
    .unwrap()
}

#[test]
fn ordered_slicing_and_open_at_end() {
    let patient = |systems: &[&str]| {
        let ids: Vec<Value> = systems
            .iter()
            .map(|s| json!({"system": format!("urn:{s}"), "value": "1"}))
            .collect();
        json!({"resourceType": "Patient", "identifier": ids})
    };
    let p = ordered_slicing("openAtEnd", true);
    for good in [&["a", "a", "b", "x", "x"][..], &["b", "x"], &["x"]] {
        let e = errors(&p, &patient(good));
        assert!(e.is_empty(), "{good:?}: {e:?}");
    }
    // A `b` before an `a`: out of order.
    let e = errors(&p, &patient(&["a", "b", "a"]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        at(
            &e,
            "Patient.identifier[2]",
            "(slice `a`) comes after Patient.identifier[1] (slice `b`)"
        ) && e[0].contains("ordered"),
        "{e:?}"
    );
    // An `a` after an identifier in no slice: not at the end.
    let e = errors(&p, &patient(&["x", "a"]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        at(
            &e,
            "Patient.identifier[1]",
            "comes after Patient.identifier[0], which matches no slice"
        ),
        "{e:?}"
    );
    // Without `ordered` and with open rules, both orders are fine.
    let p = ordered_slicing("open", false);
    for any in [&["a", "b", "a"][..], &["x", "a"]] {
        assert!(errors(&p, &patient(any)).is_empty(), "{any:?}");
    }
}

#[test]
fn type_profiles_of_bundle_entries() {
    let b = Profile::from_resource(&json!({
        "resourceType": "StructureDefinition", "url": "http://example.org/StructureDefinition/hr-bundle",
        "type": "Bundle",
        "snapshot": {"element": [
            {"id": "Bundle", "path": "Bundle", "min": 0, "max": "*"},
            {"id": "Bundle.entry", "path": "Bundle.entry", "min": 0, "max": "*"},
            {"id": "Bundle.entry.resource", "path": "Bundle.entry.resource", "min": 1, "max": "1",
             "type": [{"code": "Resource", "profile": [HR]}]}
        ]}
    }))
    .unwrap();
    let others = [heart_rate_only()];
    let obs = |code: &str| {
        json!({"resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}})
    };
    let bundle =
        |entries: Value| json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    let (e, w) = with_others(&b, &others, &bundle(json!([obs("8867-4")])));
    assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
    let (e, _) = with_others(
        &b,
        &others,
        &bundle(json!([obs("9279-1"), {"resource": {"resourceType": "Patient"}}])),
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(at(&e, "Bundle.entry[0].resource.code", "pattern"), "{e:?}");
    assert!(
        at(&e, "Bundle.entry[1].resource", "is a Patient; the profile")
            && e[1].contains("is for Observation"),
        "{e:?}"
    );
}
