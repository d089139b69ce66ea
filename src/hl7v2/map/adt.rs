//! ADT (admission, discharge, transfer) → Patient, Encounter, Practitioner,
//! RelatedPerson, Account (GT1), AllergyIntolerance (AL1, IAM), Condition,
//! Procedure, Coverage; A40 merges.

use serde_json::{json, Map, Value};

use super::datatypes::{
    codeable_concept, date_time, derived_key, identifier_cx, key_of, system_of, table_concept,
};
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder, Context, DERIVED_KEY_SYSTEM};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, Rep};

/// The ADT events mapped.
pub const TRIGGERS: &[&str] = &[
    "A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A28", "A31",
    "A40",
];

/// Encounter.status by trigger event (IG ConceptMap Event[EncounterStatus];
/// A06, A07 and A12 are not in it: an encounter that changes class or
/// whose transfer is cancelled goes on, so `in-progress`).
pub fn encounter_status(trigger: &str) -> Option<&'static str> {
    Some(match trigger {
        "A01" | "A02" | "A06" | "A07" | "A12" | "A13" => "in-progress",
        "A03" => "finished",
        "A04" | "A05" => "planned",
        "A08" => "unknown",
        "A11" => "cancelled",
        _ => return None,
    })
}

/// PV1-2 → Encounter.class (IG ConceptMap PatientClass[EncounterClass]).
pub fn encounter_class(code: &str) -> Value {
    let v3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0004";
    let (system, code, display) = match code {
        "E" => (v3, "EMER", "emergency"),
        "I" => (v3, "IMP", "inpatient encounter"),
        "O" => (v3, "AMB", "ambulatory"),
        "P" => (v3, "PRENC", "pre-admission"),
        "R" => (v2, "R", "Recurring patient"),
        "B" => (v2, "B", "Obstetrics"),
        "C" => (v2, "C", "Commercial Account"),
        "N" => (v2, "N", "Not Applicable"),
        _ => (v2, "U", "Unknown"),
    };
    json!({"system": system, "code": code, "display": display})
}

/// XCN → a Practitioner (conditional create by XCN-1 and its authority);
/// returns a reference, or a display-only one when XCN-1 is empty.
pub fn practitioner(xcn: &Rep, default: &str, b: &mut BundleBuilder) -> Option<Value> {
    let id = xcn.comp(1);
    let family = xcn.part(2).sub_part(1).text().trim().to_string();
    let given: Vec<String> = [3, 4].iter().filter_map(|i| xcn.opt(*i)).collect();
    let mut name = Map::new();
    if !family.is_empty() {
        name.insert("family".into(), json!(family));
    }
    if !given.is_empty() {
        name.insert("given".into(), json!(given));
    }
    if let Some(p) = xcn.opt(6) {
        name.insert("prefix".into(), json!([p]));
    }
    let display = [given.join(" "), family.clone()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if id.is_empty() {
        return (!display.is_empty()).then(|| json!({"display": display}));
    }
    let aa = xcn.part(9);
    let system = system_of(
        &aa.sub_part(1).text(),
        &aa.sub_part(2).text(),
        &aa.sub_part(3).text(),
    )
    .unwrap_or_else(|| default.to_string());
    let mut resource = json!({
        "resourceType": "Practitioner",
        "identifier": [{"system": system, "value": id}],
    });
    if !name.is_empty() {
        resource["name"] = json!([Value::Object(name)]);
    }
    let url = b.create_if_none(identifier_query(&system, &id), resource);
    let mut r = json!({"reference": url});
    if !display.is_empty() {
        r["display"] = json!(display);
    }
    Some(r)
}

fn participant(code: &str, display: &str, who: Value) -> Value {
    json!({
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": code, "display": display
        }]}],
        "individual": who
    })
}

/// PV1 (+ PV2) → Encounter; None when the message has no PV1 or the event
/// has no encounter status (A28, A31, A40).
fn encounter(
    message: &Message,
    trigger: &str,
    patient: &str,
    b: &mut BundleBuilder,
) -> Option<String> {
    let pv1 = message.first("PV1")?;
    let status = encounter_status(trigger)?;
    let default = default_system(message);
    let mut e = json!({
        "resourceType": "Encounter",
        "status": status,
        "class": encounter_class(&pv1.get(2).comp(1)),
        "subject": {"reference": patient},
    });
    let identifier = identifier_cx(&pv1.get(19), &default);
    if let Some(id) = &identifier {
        e["identifier"] = json!([id]);
    }
    let mut participants = Vec::new();
    for (field, code, display) in [
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (9, "CON", "consultant"),
        (17, "ADM", "admitter"),
    ] {
        for xcn in pv1.reps(field) {
            if let Some(who) = practitioner(&xcn, &default, b) {
                participants.push(participant(code, display, who));
            }
        }
    }
    if !participants.is_empty() {
        e["participant"] = json!(participants);
    }
    let location = pv1.get(3);
    let place: Vec<String> = [1, 2, 3, 4]
        .iter()
        .filter_map(|i| location.opt(*i))
        .collect();
    if !place.is_empty() {
        e["location"] = json!([{"location": {"display": place.join(" ")}}]);
    }
    let mut period = Map::new();
    if let Some(s) = date_time(&pv1.get(44).comp(1)) {
        period.insert("start".into(), json!(s));
    }
    if let Some(s) = date_time(&pv1.get(45).comp(1)) {
        period.insert("end".into(), json!(s));
    }
    if !period.is_empty() {
        e["period"] = Value::Object(period);
    }
    if let Some(s) = table_concept(&pv1.get(10).comp(1), "0069") {
        e["serviceType"] = s;
    }
    let mut hospitalization = Map::new();
    if let Some(s) = table_concept(&pv1.get(14).comp(1), "0023") {
        hospitalization.insert("admitSource".into(), s);
    }
    if let Some(s) = table_concept(&pv1.get(36).comp(1), "0112") {
        hospitalization.insert("dischargeDisposition".into(), s);
    }
    if !hospitalization.is_empty() {
        e["hospitalization"] = Value::Object(hospitalization);
    }
    if let Some(pv2) = message.first("PV2") {
        if let Some(reason) = codeable_concept(&pv2.get(3)) {
            e["reasonCode"] = json!([reason]);
        }
    }
    let url = b.upsert_by(identifier.as_ref().and_then(key_of), e);
    b.focus.push(url.clone());
    Some(url)
}

/// The Encounter of PV1-19 for messages that only name the visit (DFT,
/// MDM): matched by its identifier, created (status unknown) when not
/// known. None without PV1-19.
pub fn known_encounter(message: &Message, patient: &str, b: &mut BundleBuilder) -> Option<String> {
    let pv1 = message.first("PV1")?;
    let id = identifier_cx(&pv1.get(19), &default_system(message))?;
    let (system, value) = key_of(&id)?;
    let e = json!({
        "resourceType": "Encounter",
        "identifier": [id],
        "status": "unknown",
        "class": encounter_class(&pv1.get(2).comp(1)),
        "subject": {"reference": patient},
    });
    Some(b.create_if_none(identifier_query(&system, &value), e))
}

/// A derived identifier for a resource keyed by the patient and a code.
fn derived(patient_key: &(String, String), kind: &str, code: &str) -> Option<(String, String)> {
    (!code.is_empty()).then(|| {
        (
            DERIVED_KEY_SYSTEM.to_string(),
            format!(
                "{kind}-{}",
                derived_key(&[&patient_key.0, &patient_key.1, code])
            ),
        )
    })
}

fn with_identifier(mut r: Value, key: &Option<(String, String)>) -> Value {
    if let Some((s, v)) = key {
        r["identifier"] = json!([{"system": s, "value": v}]);
    }
    r
}

/// AL1 → AllergyIntolerance.
fn allergies(message: &Message, patient: &str, key: &(String, String), b: &mut BundleBuilder) {
    for al1 in message.all("AL1") {
        let Some(code) = codeable_concept(&al1.get(3)) else {
            continue;
        };
        let mut a = json!({
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"
            }]},
            "code": code,
            "patient": {"reference": patient},
        });
        allergy_details(&mut a, &al1);
        if let Some(d) = date_time(&al1.get(6).comp(1)) {
            a["onsetDateTime"] = json!(d);
        }
        let id = derived(key, "AL1", &al1.get(3).comp(1));
        let a = with_identifier(a, &id);
        b.upsert_by(id, a);
    }
    for iam in message.all("IAM") {
        if let Some(a) = adverse_reaction(message, &iam, patient, key) {
            let (id, a) = a;
            b.upsert_by(Some(id), a);
        }
    }
}

/// What AL1 and IAM say alike (fields 2, 4 and 5): allergen type →
/// category, severity → criticality, reactions.
fn allergy_details(a: &mut Value, seg: &crate::hl7v2::message::SegmentRef) {
    let category = match seg.get(2).comp(1).as_str() {
        "DA" | "MA" => Some("medication"),
        "FA" => Some("food"),
        "EA" | "AA" | "PA" | "LA" => Some("environment"),
        _ => None,
    };
    if let Some(c) = category {
        a["category"] = json!([c]);
    }
    match seg.get(4).comp(1).as_str() {
        "SV" => a["criticality"] = json!("high"),
        "MO" | "MI" => a["criticality"] = json!("low"),
        _ => {}
    }
    let reactions: Vec<Value> = seg
        .reps(5)
        .iter()
        .map(|r| r.text())
        .filter(|t| !t.is_empty())
        .map(|t| json!({"manifestation": [{"text": t}]}))
        .collect();
    if !reactions.is_empty() {
        a["reaction"] = json!(reactions);
    }
}

/// IAM (patient adverse reaction information) → AllergyIntolerance, after
/// the IG IAM map. Matched by IAM-7 (the allergy's unique identifier),
/// else like AL1 by patient and allergen, so an AL1 and an IAM about the
/// same allergen are one resource. IAM-6 action `D` (delete) →
/// verificationStatus entered-in-error (and, per R4 ait-2, no
/// clinicalStatus).
fn adverse_reaction(
    message: &Message,
    iam: &crate::hl7v2::message::SegmentRef,
    patient: &str,
    key: &(String, String),
) -> Option<((String, String), Value)> {
    let code = codeable_concept(&iam.get(3))?;
    let mut a = json!({
        "resourceType": "AllergyIntolerance",
        "code": code,
        "patient": {"reference": patient},
    });
    if iam.get(6).comp(1) == "D" {
        a["verificationStatus"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "entered-in-error"
        }]});
    } else {
        let clinical = match iam.get(17).comp(1).as_str() {
            "I" => "inactive",
            "R" => "resolved",
            _ => "active",
        };
        a["clinicalStatus"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": clinical
        }]});
    }
    allergy_details(&mut a, iam);
    if let Some(d) = date_time(&iam.get(11).comp(1)) {
        a["onsetDateTime"] = json!(d);
    } else if let Some(t) = iam.get(12).opt(1) {
        a["onsetString"] = json!(t);
    }
    if let Some(d) = date_time(&iam.get(13).comp(1)) {
        a["recordedDate"] = json!(d);
    }
    let own = super::datatypes::identifier_ei(&iam.get(7), &default_system(message));
    let id = own
        .as_ref()
        .and_then(key_of)
        .or_else(|| derived(key, "AL1", &iam.get(3).comp(1)))?;
    a["identifier"] = json!([{"system": id.0, "value": id.1}]);
    Some((id, a))
}

/// GT1 → the patient's Account with its guarantors (our rules; the IG
/// 1.0.0 has no GT1 table). The Account is matched by PID-18 (patient
/// account number), else one per patient. A guarantor whose GT1-11
/// relationship is `SEL` is the patient; any other is a RelatedPerson
/// (name GT1-3, address GT1-5, phones GT1-6/7, birth date GT1-8, sex
/// GT1-9, relationship GT1-11) matched by GT1-2, else by patient and name.
/// The guarantor period is GT1-13 to GT1-14.
fn guarantors(message: &Message, patient: &str, key: &(String, String), b: &mut BundleBuilder) {
    let default = default_system(message);
    let mut parties = Vec::new();
    for gt1 in message.all("GT1") {
        let relationship = codeable_concept(&gt1.get(11));
        let party = if gt1.get(11).comp(1) == "SEL" {
            json!({"reference": patient})
        } else {
            let Some(name) = super::datatypes::human_name(&gt1.get(3)) else {
                continue;
            };
            let mut r = json!({
                "resourceType": "RelatedPerson",
                "active": true,
                "patient": {"reference": patient},
                "name": [name],
            });
            if let Some(rel) = &relationship {
                r["relationship"] = json!([rel]);
            }
            if let Some(a) = super::datatypes::address(&gt1.get(5)) {
                r["address"] = json!([a]);
            }
            let mut telecom: Vec<Value> = gt1
                .reps(6)
                .iter()
                .filter_map(|x| super::datatypes::contact_point(x, Some("home")))
                .collect();
            telecom.extend(
                gt1.reps(7)
                    .iter()
                    .filter_map(|x| super::datatypes::contact_point(x, Some("work"))),
            );
            if !telecom.is_empty() {
                r["telecom"] = json!(telecom);
            }
            if let Some(d) = super::datatypes::date(&gt1.get(8).comp(1)) {
                r["birthDate"] = json!(d);
            }
            match gt1.get(9).comp(1).as_str() {
                "M" => r["gender"] = json!("male"),
                "F" => r["gender"] = json!("female"),
                "O" | "A" => r["gender"] = json!("other"),
                "U" => r["gender"] = json!("unknown"),
                _ => {}
            }
            let ids: Vec<Value> = gt1
                .reps(2)
                .iter()
                .filter_map(|cx| identifier_cx(cx, &default))
                .collect();
            let id = ids
                .first()
                .and_then(key_of)
                .or_else(|| derived(key, "GT1", gt1.get(3).raw()));
            if ids.is_empty() {
                r = with_identifier(r, &id);
            } else {
                r["identifier"] = json!(ids);
            }
            json!({"reference": b.upsert_by(id, r)})
        };
        let mut g = json!({"party": party});
        let mut period = Map::new();
        if let Some(s) = date_time(&gt1.get(13).comp(1)) {
            period.insert("start".into(), json!(s));
        }
        if let Some(e) = date_time(&gt1.get(14).comp(1)) {
            period.insert("end".into(), json!(e));
        }
        if !period.is_empty() {
            g["period"] = Value::Object(period);
        }
        parties.push(g);
    }
    if parties.is_empty() {
        return;
    }
    let pid = message.first("PID");
    let account_id = pid.and_then(|p| identifier_cx(&p.get(18), &default));
    let id = account_id
        .as_ref()
        .and_then(key_of)
        .or_else(|| derived(key, "ACCOUNT", "guarantor"));
    let account = json!({
        "resourceType": "Account",
        "status": "active",
        "subject": [{"reference": patient}],
        "guarantor": parties,
    });
    let account = with_identifier(account, &id);
    b.upsert_by(id, account);
}

/// NK1 → RelatedPerson (IG NK1[RelatedPerson] map), beside the
/// Patient.contact every message writes. Matched by NK1-33 (else NK1-12),
/// else by the patient, the name and the relationship.
fn related_persons(
    message: &Message,
    patient: &str,
    key: &(String, String),
    b: &mut BundleBuilder,
) {
    let default = default_system(message);
    for nk1 in message.all("NK1") {
        let name = super::datatypes::human_name(&nk1.get(2));
        let relationship = codeable_concept(&nk1.get(3));
        if name.is_none() && relationship.is_none() {
            continue;
        }
        let mut r = json!({
            "resourceType": "RelatedPerson",
            "active": true,
            "patient": {"reference": patient},
        });
        if let Some(n) = name {
            r["name"] = json!([n]);
        }
        let mut relationships: Vec<Value> = relationship.into_iter().collect();
        relationships.extend(codeable_concept(&nk1.get(7)));
        if !relationships.is_empty() {
            r["relationship"] = json!(relationships);
        }
        if let Some(a) = super::datatypes::address(&nk1.get(4)) {
            r["address"] = json!([a]);
        }
        let mut telecom: Vec<Value> = nk1
            .reps(5)
            .iter()
            .filter_map(|x| super::datatypes::contact_point(x, Some("home")))
            .collect();
        telecom.extend(
            nk1.reps(6)
                .iter()
                .filter_map(|x| super::datatypes::contact_point(x, Some("work"))),
        );
        if !telecom.is_empty() {
            r["telecom"] = json!(telecom);
        }
        let gender = match nk1.get(15).comp(1).as_str() {
            "M" => Some("male"),
            "F" => Some("female"),
            "O" | "A" => Some("other"),
            "U" => Some("unknown"),
            _ => None,
        };
        if let Some(g) = gender {
            r["gender"] = json!(g);
        }
        if let Some(d) = super::datatypes::date(&nk1.get(16).comp(1)) {
            r["birthDate"] = json!(d);
        }
        let mut period = Map::new();
        if let Some(s) = date_time(&nk1.get(8).comp(1)) {
            period.insert("start".into(), json!(s));
        }
        if let Some(e) = date_time(&nk1.get(9).comp(1)) {
            period.insert("end".into(), json!(e));
        }
        if !period.is_empty() {
            r["period"] = Value::Object(period);
        }
        let ids: Vec<Value> = nk1
            .reps(33)
            .iter()
            .chain(nk1.reps(12).iter())
            .filter_map(|cx| identifier_cx(cx, &default))
            .collect();
        let id = ids.first().and_then(key_of).or_else(|| {
            derived(
                key,
                "NK1",
                &format!("{}|{}", nk1.get(2).raw(), nk1.get(3).comp(1)),
            )
        });
        let r = if ids.is_empty() {
            with_identifier(r, &id)
        } else {
            let mut r = r;
            r["identifier"] = json!(ids);
            r
        };
        b.upsert_by(id, r);
    }
}

/// DG1 → Condition (encounter diagnosis).
fn diagnoses(
    message: &Message,
    patient: &str,
    encounter: Option<&str>,
    key: &(String, String),
    b: &mut BundleBuilder,
) {
    for dg1 in message.all("DG1") {
        let Some(code) = codeable_concept(&dg1.get(3)) else {
            continue;
        };
        let mut c = json!({
            "resourceType": "Condition",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "encounter-diagnosis"
            }]}],
            "code": code,
            "subject": {"reference": patient},
        });
        if let Some(e) = encounter {
            c["encounter"] = json!({"reference": e});
        }
        if let Some(d) = date_time(&dg1.get(5).comp(1)) {
            c["onsetDateTime"] = json!(d);
        }
        let id = derived(key, "DG1", &dg1.get(3).comp(1));
        let c = with_identifier(c, &id);
        b.upsert_by(id, c);
    }
}

/// PR1 → Procedure.
fn procedures(
    message: &Message,
    patient: &str,
    encounter: Option<&str>,
    key: &(String, String),
    b: &mut BundleBuilder,
) {
    let default = default_system(message);
    for pr1 in message.all("PR1") {
        let Some(code) = codeable_concept(&pr1.get(3)) else {
            continue;
        };
        let mut p = json!({
            "resourceType": "Procedure",
            "status": "completed",
            "code": code,
            "subject": {"reference": patient},
        });
        if let Some(e) = encounter {
            p["encounter"] = json!({"reference": e});
        }
        if let Some(d) = date_time(&pr1.get(5).comp(1)) {
            p["performedDateTime"] = json!(d);
        }
        let performers: Vec<Value> = pr1
            .reps(12)
            .iter()
            .filter_map(|x| practitioner(x, &default, b))
            .map(|who| json!({"actor": who}))
            .collect();
        if !performers.is_empty() {
            p["performer"] = json!(performers);
        }
        let when = pr1.get(5).comp(1);
        let id = derived(key, "PR1", &format!("{}|{when}", pr1.get(3).comp(1)));
        let p = with_identifier(p, &id);
        b.upsert_by(id, p);
    }
}

/// IN1 → Coverage (payor as a display-only Organization reference).
fn coverages(message: &Message, patient: &str, key: &(String, String), b: &mut BundleBuilder) {
    for in1 in message.all("IN1") {
        let plan = in1.get(2).comp(1);
        let company = in1.get(4).comp(1);
        let payor = if company.is_empty() {
            plan.clone()
        } else {
            company
        };
        if payor.is_empty() {
            continue;
        }
        let mut c = json!({
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": patient},
            "payor": [{"display": payor}],
        });
        if let Some(t) = table_concept(&plan, "0072") {
            c["type"] = t;
        }
        let member = in1.get(36).comp(1);
        if !member.is_empty() {
            c["subscriberId"] = json!(member);
        }
        let mut period = Map::new();
        if let Some(s) = date_time(&in1.get(12).comp(1)) {
            period.insert("start".into(), json!(s));
        }
        if let Some(s) = date_time(&in1.get(13).comp(1)) {
            period.insert("end".into(), json!(s));
        }
        if !period.is_empty() {
            c["period"] = Value::Object(period);
        }
        let id = derived(key, "IN1", &format!("{payor}|{member}"));
        let c = with_identifier(c, &id);
        b.upsert_by(id, c);
    }
}

/// A40: the surviving patient (PID) is written; the prior one (MRG-1),
/// which must exist, is marked inactive and linked `replaced-by` the
/// survivor, which links back with `replaces`. References to the prior
/// patient are left as they are: clients follow `Patient.link`.
fn merge(message: &Message, context: &Context, b: &mut BundleBuilder) -> Result<(), Failure> {
    let mrg = message
        .first("MRG")
        .ok_or_else(|| Failure::missing("MRG", 1, "prior patient identifier list"))?;
    let Some((prior_id, version, mut prior)) = context.prior_patient.clone() else {
        return Err(Failure::error(
            ErrorCode::UnknownKey,
            Some(Location::new("MRG", 1, 1)),
            "the prior patient named by MRG-1 does not exist",
        ));
    };
    let (survivor, _) = add_patient(message, b, PatientWrite::Update)?;
    let _ = mrg;
    prior["active"] = json!(false);
    prior["link"] = json!([{"other": {"reference": survivor}, "type": "replaced-by"}]);
    if let Some(obj) = prior.as_object_mut() {
        obj.remove("meta");
    }
    let prior_url = b.update("Patient", &prior_id, Some(version), prior);
    b.focus.push(prior_url);
    Ok(())
}

/// The key of the prior patient of an A40 (MRG-1), to look up before mapping.
pub fn merge_prior_key(message: &Message) -> Option<(String, String)> {
    let mrg = message.first("MRG")?;
    let default = default_system(message);
    mrg.reps(1)
        .iter()
        .filter_map(|cx| identifier_cx(cx, &default))
        .next()
        .and_then(|i| key_of(&i))
}

pub fn map(
    message: &Message,
    trigger: &str,
    context: &Context,
    b: &mut BundleBuilder,
) -> Result<(), Failure> {
    if trigger == "A40" {
        return merge(message, context, b);
    }
    let (patient, key) = add_patient(message, b, PatientWrite::Update)?;
    let encounter = encounter(message, trigger, &patient, b);
    allergies(message, &patient, &key, b);
    related_persons(message, &patient, &key, b);
    guarantors(message, &patient, &key, b);
    diagnoses(message, &patient, encounter.as_deref(), &key, b);
    procedures(message, &patient, encounter.as_deref(), &key, b);
    coverages(message, &patient, &key, b);
    Ok(())
}
