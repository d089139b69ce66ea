//! Pharmacy orders: RDE^O11 (encoded order), OMP^O09 (order) and the RXO
//! orders of an ORM^O01 → MedicationRequest (+ Medication); RDS^O13
//! (dispense) → MedicationDispense.
//!
//! Field choices after the IG segment maps RXO[MedicationRequest],
//! TQ1[MedicationRequest], RXR[MedicationRequest] and ORC; RXE, which the
//! IG 1.0.0 has no table for, follows RXO field for field (RXE-2 give code
//! as RXO-1, RXE-3/4/5 give amount as RXO-2/3/4, RXE-10/11/12 dispense as
//! RXO-11/12/13, RXE-13 ordering provider as RXO-14) and wins over it when
//! both are sent: the encoded order is the pharmacy's reading of the order.

use serde_json::{json, Map, Value};

use super::datatypes::{codeable_concept, date_time, number, occurrence, quantity};
use super::order::{
    authored, derived_order_key, groups, notes, order_ids, priority, request_status, requester,
    Group,
};
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, Rep, SegmentRef};

/// request-status (from ORC) → MedicationRequest.status. `revoked` splits
/// by cause: a discontinued order (ORC-1 DC/OD/DR/DF, ORC-5 DC/RP) was
/// `stopped` after it started, any other revoked one `cancelled`.
fn medication_status(group: &Group) -> &'static str {
    match request_status(group) {
        Some("revoked") => {
            let stopped = matches!(group.orc(5).as_str(), "DC" | "RP")
                || (group.orc(5).is_empty()
                    && matches!(group.orc(1).as_str(), "DC" | "OD" | "DR" | "DF"));
            if stopped {
                "stopped"
            } else {
                "cancelled"
            }
        }
        Some("active") => "active",
        Some("completed") => "completed",
        Some("on-hold") => "on-hold",
        Some("entered-in-error") => "entered-in-error",
        _ => "unknown",
    }
}

/// A field of the encoded order (RXE) when valued, else of the order (RXO).
fn pick<'a>(
    rxe: Option<&SegmentRef<'a>>,
    rxe_field: usize,
    rxo: Option<&SegmentRef<'a>>,
    rxo_field: usize,
) -> Option<Rep<'a>> {
    rxe.map(|s| s.get(rxe_field))
        .filter(|r| !r.is_empty())
        .or_else(|| rxo.map(|s| s.get(rxo_field)).filter(|r| !r.is_empty()))
}

/// The medication: a Medication (found by code, created when unknown) when
/// the give code is coded, else the text as a CodeableConcept. Returns the
/// MedicationRequest element name and value.
pub fn medication(
    code: &Rep,
    form: Option<Rep>,
    b: &mut BundleBuilder,
) -> Option<(&'static str, Value)> {
    let cc = codeable_concept(code)?;
    let Some(coding) = cc["coding"].get(0) else {
        return Some(("medicationCodeableConcept", cc));
    };
    let token = match coding["system"].as_str() {
        Some(s) => format!("{s}|{}", coding["code"].as_str().unwrap_or_default()),
        None => coding["code"].as_str().unwrap_or_default().to_string(),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &token)
        .finish();
    let mut m = json!({"resourceType": "Medication", "code": cc});
    if let Some(f) = form.as_ref().and_then(codeable_concept) {
        m["form"] = f;
    }
    let url = b.create_if_none(query, m);
    let mut r = json!({"reference": url});
    if let Some(t) = cc["text"].as_str() {
        r["display"] = json!(t);
    }
    Some(("medicationReference", r))
}

/// A repeat pattern (TQ1-3, or the interval of a TQ) → Timing.code:
/// coded (HL7 table 0335) when it is a code such as `BID` or `Q6H`, else
/// as text.
fn timing_code(pattern: &str) -> Option<Value> {
    let p = pattern.trim();
    if p.is_empty() {
        return None;
    }
    let coded = p.chars().all(|c| c.is_ascii_alphanumeric());
    Some(if coded {
        json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0335",
            "code": p
        }]})
    } else {
        json!({"text": p})
    })
}

/// RXE/RXO give amount + TQ1 (or the TQ of RXE-1/ORC-7) + RXR → Dosage.
fn dosage(
    message: &Message,
    group: &Group,
    rxe: Option<&SegmentRef>,
    rxo: Option<&SegmentRef>,
) -> Result<Option<Value>, Failure> {
    let mut d = Map::new();
    let tq1 = group.first("TQ1");
    // The TQ of pre-2.5 messages: RXE-1, else ORC-7.
    let tq = rxe
        .map(|s| s.get(1))
        .filter(|r| !r.is_empty())
        .or_else(|| group.orc.map(|o| o.get(7)));
    let units = pick(rxe, 5, rxo, 4);
    let amount = |field: Option<Rep>| {
        let raw = field?.comp(1);
        match &units {
            Some(u) => quantity(&raw, u),
            None => number(&raw).map(|v| json!({"value": v})),
        }
    };
    let mut dose = Map::new();
    match (amount(pick(rxe, 3, rxo, 2)), amount(pick(rxe, 4, rxo, 3))) {
        (Some(lo), Some(hi)) if lo != hi => {
            dose.insert("doseRange".into(), json!({"low": lo, "high": hi}));
        }
        (Some(q), _) | (None, Some(q)) => {
            dose.insert("doseQuantity".into(), q);
        }
        (None, None) => {
            if let Some(t) = tq1 {
                let cq = t.get(2);
                if let Some(q) = quantity(&cq.comp(1), &cq.part(2)) {
                    dose.insert("doseQuantity".into(), q);
                }
            }
        }
    }
    if !dose.is_empty() {
        d.insert("doseAndRate".into(), json!([Value::Object(dose)]));
    }
    let mut timing = Map::new();
    let mut repeat = Map::new();
    let pattern = tq1
        .map(|t| t.get(3).comp(1))
        .filter(|p| !p.is_empty())
        .or_else(|| tq.map(|r| r.part(2).sub(1, 1)));
    if let Some(code) = pattern.as_deref().and_then(timing_code) {
        timing.insert("code".into(), code);
    }
    let (start, end) = match tq1 {
        Some(t) => (t.get(7).comp(1), t.get(8).comp(1)),
        None => tq.map_or_else(Default::default, |r| (r.comp(4), r.comp(5))),
    };
    let mut bounds = Map::new();
    if let Some(s) = date_time(&start) {
        bounds.insert("start".into(), json!(s));
    }
    if let Some(e) = date_time(&end) {
        bounds.insert("end".into(), json!(e));
    }
    if !bounds.is_empty() {
        repeat.insert("boundsPeriod".into(), Value::Object(bounds));
    }
    if let Some(t) = tq1 {
        if let Some(n) = t.get(14).opt(1) {
            let count = n.parse::<u32>().map_err(|_| {
                Failure::error(
                    ErrorCode::DataType,
                    Some(Location::new("TQ1", occurrence(message, &t), 14)),
                    "TQ1-14 (total occurrences) is not a whole number",
                )
            })?;
            repeat.insert("count".into(), json!(count));
        }
    }
    if !repeat.is_empty() {
        timing.insert("repeat".into(), Value::Object(repeat));
    }
    if !timing.is_empty() {
        d.insert("timing".into(), Value::Object(timing));
    }
    if let Some(text) = tq1.and_then(|t| t.get(11).opt(1)) {
        d.insert("text".into(), json!(text));
    }
    let mut instructions: Vec<Value> = rxe
        .map(|s| s.reps(7))
        .filter(|r| !r.is_empty())
        .or_else(|| rxo.map(|s| s.reps(7)))
        .unwrap_or_default()
        .iter()
        .filter_map(codeable_concept)
        .collect();
    if let Some(text) = tq1.and_then(|t| t.get(10).opt(1)) {
        instructions.push(json!({"text": text}));
    }
    if !instructions.is_empty() {
        d.insert("additionalInstruction".into(), json!(instructions));
    }
    if let Some(rxr) = group.first("RXR") {
        for (field, key) in [(1, "route"), (2, "site"), (4, "method")] {
            if let Some(cc) = codeable_concept(&rxr.get(field)) {
                d.insert(key.into(), cc);
            }
        }
    }
    Ok((!d.is_empty()).then_some(Value::Object(d)))
}

/// A count of refills (RXE-12 / RXO-13): a whole number.
fn refills(value: &Rep, segment: &str, seq: usize, field: usize) -> Result<Option<u64>, Failure> {
    let raw = value.comp(1);
    if raw.is_empty() {
        return Ok(None);
    }
    let n = number(&raw).and_then(|n| n.as_u64());
    n.map(Some).ok_or_else(|| {
        Failure::error(
            ErrorCode::DataType,
            Some(Location::new(segment, seq, field)),
            format!("{segment}-{field} (number of refills) is not a whole number"),
        )
    })
}

/// One pharmacy order group → MedicationRequest; returns its full URL.
pub fn medication_request(
    message: &Message,
    group: &Group,
    patient: &str,
    patient_key: &(String, String),
    b: &mut BundleBuilder,
) -> Result<String, Failure> {
    let (mr, key) = medication_request_body(message, group, patient, patient_key, b)?;
    let url = b.upsert(identifier_query(&key.0, &key.1), mr);
    b.focus.push(url.clone());
    Ok(url)
}

/// The MedicationRequest of a pharmacy order group and its match key.
fn medication_request_body(
    message: &Message,
    group: &Group,
    patient: &str,
    patient_key: &(String, String),
    b: &mut BundleBuilder,
) -> Result<(Value, (String, String)), Failure> {
    let default = default_system(message);
    let rxe = group.first("RXE");
    let rxo = group.first("RXO");
    let code = pick(rxe.as_ref(), 2, rxo.as_ref(), 1).ok_or_else(|| {
        let (seg, field) = match (&rxe, &rxo) {
            (None, Some(_)) => ("RXO", 1),
            _ => ("RXE", 2),
        };
        let at = rxe.or(rxo).map_or(1, |s| occurrence(message, &s));
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new(seg, at, field)),
            format!("{seg}-{field} (the medication ordered) is required"),
        )
    })?;
    let form = pick(rxe.as_ref(), 6, rxo.as_ref(), 5);
    let (element, med) = medication(&code, form, b).ok_or_else(|| {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            None,
            "the medication ordered has neither code nor text",
        )
    })?;
    let ids = order_ids(group, None, &default);
    let mut mr = json!({
        "resourceType": "MedicationRequest",
        "status": medication_status(group),
        "intent": "order",
        "subject": {"reference": patient},
    });
    mr[element] = med;
    if let Some(meta) = super::order::security(message, group.orc)? {
        mr["meta"] = meta;
    }
    if let Some(e) = super::adt::known_encounter(message, patient, b) {
        mr["encounter"] = json!({"reference": e});
    }
    if !ids.identifiers.is_empty() {
        mr["identifier"] = json!(ids.identifiers);
    }
    if let Some(a) = authored(group) {
        mr["authoredOn"] = json!(a);
    }
    let tq_holder = rxe.filter(|s| !s.get(1).is_empty());
    let priority = match tq_holder {
        Some(s) => priority(group, Some(&s), 1),
        None => priority(group, None, 0),
    };
    if let Some(p) = priority {
        mr["priority"] = json!(p);
    }
    let detail = match (&rxe, &rxo) {
        (Some(s), _) if !s.get(13).is_empty() => Some((s, 13)),
        (_, Some(s)) => Some((s, 14)),
        _ => None,
    };
    if let Some(who) = requester(group, detail, &default, b) {
        mr["requester"] = who;
    }
    if let Some(d) = dosage(message, group, rxe.as_ref(), rxo.as_ref())? {
        mr["dosageInstruction"] = json!([d]);
    }
    let mut dispense = Map::new();
    let amount = pick(rxe.as_ref(), 10, rxo.as_ref(), 11).map(|r| r.comp(1));
    let units = pick(rxe.as_ref(), 11, rxo.as_ref(), 12);
    if let Some(a) = amount {
        let q = match &units {
            Some(u) => quantity(&a, u),
            None => number(&a).map(|v| json!({"value": v})),
        };
        let q = q.ok_or_else(|| {
            let (seg, field) = if rxe.is_some_and(|s| !s.get(10).is_empty()) {
                ("RXE", 10)
            } else {
                ("RXO", 11)
            };
            Failure::error(
                ErrorCode::DataType,
                Some(Location::new(seg, 1, field)),
                format!("{seg}-{field} (dispense amount) is not a number"),
            )
        })?;
        dispense.insert("quantity".into(), q);
    }
    let refill = match (&rxe, &rxo) {
        (Some(s), _) if !s.get(12).is_empty() => {
            refills(&s.get(12), "RXE", occurrence(message, s), 12)?
        }
        (_, Some(s)) => refills(&s.get(13), "RXO", occurrence(message, s), 13)?,
        _ => None,
    };
    if let Some(n) = refill {
        dispense.insert("numberOfRepeatsAllowed".into(), json!(n));
    }
    if !dispense.is_empty() {
        mr["dispenseRequest"] = Value::Object(dispense);
    }
    let notes = notes(group);
    if !notes.is_empty() {
        mr["note"] = json!(notes);
    }
    let key = ids.key.unwrap_or_else(|| {
        let key = derived_order_key("RX", patient_key, &[&code.comp(1), &group.orc(9)]);
        mr["identifier"] = json!([{"system": key.0, "value": key.1}]);
        key
    });
    Ok((mr, key))
}

/// ORC-5 → MedicationDispense.status; a dispense message reports a
/// dispense done unless the order status says otherwise (our rule; the IG
/// 1.0.0 has no RXD table).
fn dispense_status(group: &Group) -> &'static str {
    match group.orc(5).as_str() {
        "CA" => "cancelled",
        "DC" | "RP" => "stopped",
        "ER" => "entered-in-error",
        "HD" => "on-hold",
        "IP" | "SC" => "in-progress",
        _ => "completed",
    }
}

/// Whether two unit fields (CWE) name the same unit, for daysSupply.
fn units_equal(a: &Rep, b: &Rep) -> bool {
    let (x, y) = (a.comp(1), b.comp(1));
    !x.is_empty() && x.eq_ignore_ascii_case(&y)
}

/// One RXD of an RDS^O13 → MedicationDispense. authorizingPrescription is
/// the MedicationRequest of the order (matched by ORC-2, else ORC-3); when
/// that order is not known yet it is created from the group's RXE/RXO, or,
/// without them, as a stub (status unknown) naming the dispensed product,
/// so the dispense always points at its order and a later RDE fills it in.
fn medication_dispense(
    message: &Message,
    group: &Group,
    rxd: &SegmentRef,
    patient: &str,
    patient_key: &(String, String),
    b: &mut BundleBuilder,
) -> Result<(), Failure> {
    let default = default_system(message);
    let at = occurrence(message, rxd);
    let code = rxd.get(2);
    let (element, med) = medication(&code, Some(rxd.get(6)), b).ok_or_else(|| {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("RXD", at, 2)),
            "RXD-2 (dispense/give code) is required",
        )
    })?;
    let mut md = json!({
        "resourceType": "MedicationDispense",
        "status": dispense_status(group),
        "subject": {"reference": patient},
    });
    md[element] = med.clone();
    if let Some(meta) = super::order::security(message, group.orc)? {
        md["meta"] = meta;
    }
    if let Some(e) = super::adt::known_encounter(message, patient, b) {
        md["context"] = json!({"reference": e});
    }
    let amount = rxd.get(4).comp(1);
    if !amount.is_empty() {
        let q = quantity(&amount, &rxd.get(5)).ok_or_else(|| {
            Failure::error(
                ErrorCode::DataType,
                Some(Location::new("RXD", at, 4)),
                "RXD-4 (actual dispense amount) is not a number",
            )
        })?;
        // daysSupply: the amount over RXD-12 total daily dose, when both
        // are in the same units (our rule: v2 has no days-supply field).
        let daily = rxd.get(12);
        if let (Some(total), Some(per_day)) = (number(&amount), number(&daily.comp(1))) {
            let (t, d) = (
                total.as_f64().unwrap_or(0.0),
                per_day.as_f64().unwrap_or(0.0),
            );
            if d > 0.0 && units_equal(&daily.part(2), &rxd.get(5)) {
                md["daysSupply"] = json!({
                    "value": (t / d).floor() as u64,
                    "unit": "day",
                    "system": "http://unitsofmeasure.org",
                    "code": "d"
                });
            }
        }
        md["quantity"] = q;
    }
    if let Some(when) = date_time(&rxd.get(3).comp(1)) {
        md["whenHandedOver"] = json!(when);
    }
    let performers: Vec<Value> = rxd
        .reps(10)
        .iter()
        .filter_map(|x| super::adt::practitioner(x, &default, b))
        .map(|who| json!({"actor": who}))
        .collect();
    if !performers.is_empty() {
        md["performer"] = json!(performers);
    }
    let notes: Vec<Value> = rxd
        .reps(9)
        .iter()
        .filter_map(|r| r.opt(2).or_else(|| r.opt(1)))
        .map(|t| json!({"text": t}))
        .collect();
    if !notes.is_empty() {
        md["note"] = json!(notes);
    }
    let ids = order_ids(group, None, &default);
    if let Some(order_key) = &ids.key {
        let prescription = if group.first("RXE").is_some() || group.first("RXO").is_some() {
            medication_request_body(message, group, patient, patient_key, b)?.0
        } else {
            let mut stub = json!({
                "resourceType": "MedicationRequest",
                "status": "unknown",
                "intent": "order",
                "identifier": ids.identifiers,
                "subject": {"reference": patient},
            });
            stub[element] = med;
            stub
        };
        let url = b.create_if_none(identifier_query(&order_key.0, &order_key.1), prescription);
        md["authorizingPrescription"] = json!([{"reference": url}]);
    }
    // The dispense: the order's key (else the product and time) and RXD-1.
    let order_part = ids
        .key
        .as_ref()
        .map(|(s, v)| format!("{s}|{v}"))
        .unwrap_or_else(|| format!("{}|{}", code.comp(1), rxd.get(3).comp(1)));
    let key = derived_order_key("RXD", patient_key, &[&order_part, &rxd.get(1).comp(1)]);
    let mut identifiers = vec![json!({"system": key.0, "value": key.1})];
    if let Some(rx) = rxd.get(7).opt(1) {
        identifiers.push(json!({"system": default, "value": rx}));
    }
    md["identifier"] = json!(identifiers);
    let url = b.upsert(identifier_query(&key.0, &key.1), md);
    b.focus.push(url);
    Ok(())
}

/// RDS^O13.
pub fn map_dispense(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let mut any = false;
    for g in &groups(message, &["RXD"]) {
        if let Some(rxd) = g.first("RXD") {
            medication_dispense(message, g, &rxd, &patient, &patient_key, b)?;
            any = true;
        }
    }
    if !any {
        return Err(Failure::missing("RXD", 2, "dispense/give code"));
    }
    Ok(())
}

/// RDE^O11, OMP^O09.
pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let groups = groups(message, &["RXE", "RXO"]);
    if groups.is_empty() {
        return Err(Failure::missing("ORC", 1, "common order segment"));
    }
    for g in &groups {
        medication_request(message, g, &patient, &patient_key, b)?;
    }
    Ok(())
}
