//! The profile walker on small profiles and on R4's vital signs profiles.

use serde_json::{json, Value};

use super::{shipped, Profile};

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
