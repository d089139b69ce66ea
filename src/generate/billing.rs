//! Insurance: the patient's Coverage (Medicare from 65, Medicaid or a
//! private plan before), and one Claim per visit that bills what was done,
//! with the visit's Conditions as diagnoses.

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::clinical::Visited;
use super::codes;
use super::patient::Record;
use super::shared::{Payor, PAYORS};
use super::time::{add_years, local, today};
use super::{concept, reference};

pub fn coverage(r: &mut Record) {
    let medicare_from = add_years(r.birth, 65);
    let start = r.birth.max(add_years(today(), -20));
    let before = if r.rng.chance(0.15) {
        Payor::Medicaid
    } else {
        Payor::Private
    };
    if start < medicare_from {
        let end = (medicare_from < today()).then_some(medicare_from);
        policy(r, before, start, end);
    }
    if medicare_from <= today() {
        policy(r, Payor::Medicare, medicare_from.max(start), None);
    }
}

fn policy(r: &mut Record, kind: Payor, start: NaiveDate, end: Option<NaiveDate>) {
    let choices: Vec<usize> = (0..PAYORS.len()).filter(|i| PAYORS[*i].1 == kind).collect();
    let payor = r.pool.payors[*r.rng.pick(&choices)].clone();
    let id = r.rng.uuid();
    let child = r.age_on(today()) < 18;
    let (relationship, class) = if child {
        (("child", "Child"), ("PUBLICPOL", "public healthcare"))
    } else {
        (("self", "Self"), ("PUBLICPOL", "public healthcare"))
    };
    let kind_code = if kind == Payor::Private {
        ("HIP", "health insurance plan policy")
    } else {
        class
    };
    let mut period = json!({"start": start.format("%Y-%m-%d").to_string()});
    if let Some(end) = end {
        period["end"] = json!(end.format("%Y-%m-%d").to_string());
    }
    r.out.push(json!({
        "resourceType": "Coverage",
        "id": id,
        "status": if end.is_some() { "cancelled" } else { "active" },
        "type": concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", kind_code),
        "subscriberId": r.rng.digits(11),
        "beneficiary": r.patient_ref(),
        "relationship": concept("http://terminology.hl7.org/CodeSystem/subscriber-relationship", relationship),
        "period": period,
        "payor": [reference("Organization", &payor)]
    }));
    r.coverage.push((id, start, end));
}

/// The Claim for a visit: the visit itself, then each procedure,
/// immunization and prescription, all with the visit's diagnoses.
pub fn claim(r: &mut Record, v: &Visited) {
    let date = v.start.date();
    let coverage = r
        .coverage
        .iter()
        .find(|(_, from, to)| *from <= date && to.is_none_or(|t| date < t))
        .or(r.coverage.last())
        .map(|(id, _, _)| id.clone());
    let id = r.rng.uuid();
    let institutional = v.kind == codes::ADMISSION || v.kind == codes::EMERGENCY;
    let mut diagnosis: Vec<Value> = Vec::new();
    for c in &v.conditions {
        let sequence = diagnosis.len() + 1;
        diagnosis
            .push(json!({"sequence": sequence, "diagnosisReference": reference("Condition", c)}));
    }
    let mut coded = Vec::new();
    if diagnosis.is_empty() {
        coded.push(if r.age_on(date) < 18 {
            codes::CHILD_CHECKUP
        } else {
            codes::ADULT_CHECKUP
        });
    }
    if v.items.iter().any(|(system, _, _)| *system == codes::CVX) {
        coded.push(codes::IMMUNIZATION_VISIT);
    }
    for z in coded {
        let sequence = diagnosis.len() + 1;
        diagnosis.push(
            json!({"sequence": sequence, "diagnosisCodeableConcept": concept(codes::ICD10CM, z)}),
        );
    }
    let all_diagnoses: Vec<usize> = (1..=diagnosis.len()).collect();
    let serviced = v.start.format("%Y-%m-%d").to_string();
    let items: Vec<Value> = v
        .items
        .iter()
        .enumerate()
        .map(|(i, (system, code, price))| {
            json!({
                "sequence": i + 1,
                "diagnosisSequence": all_diagnoses,
                "productOrService": concept(system, *code),
                "servicedDate": serviced,
                "encounter": [reference("Encounter", &v.encounter)],
                "net": {"value": price, "currency": "USD"}
            })
        })
        .collect();
    let total: f64 = v.items.iter().map(|(_, _, p)| p).sum();
    let mut claim = json!({
        "resourceType": "Claim",
        "id": id,
        "status": "active",
        "type": concept(
            "http://terminology.hl7.org/CodeSystem/claim-type",
            if institutional { ("institutional", "Institutional") } else { ("professional", "Professional") }
        ),
        "use": "claim",
        "patient": r.patient_ref(),
        "billablePeriod": {"start": local(r.city, v.start), "end": local(r.city, v.end)},
        "created": local(r.city, v.end),
        "provider": reference("Organization", &r.pool.providers[v.provider]),
        "priority": concept("http://terminology.hl7.org/CodeSystem/processpriority", ("normal", "Normal")),
        "careTeam": [{"sequence": 1, "provider": reference("Practitioner", &v.clinician)}],
        "diagnosis": diagnosis,
        "insurance": [],
        "item": items,
        "total": {"value": (total * 100.0).round() / 100.0, "currency": "USD"}
    });
    if let Some(coverage) = coverage {
        claim["insurance"] =
            json!([{"sequence": 1, "focal": true, "coverage": reference("Coverage", &coverage)}]);
    }
    r.out.push(claim);
}
