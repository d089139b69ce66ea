//! ORM^O01 and OML^O21 (general and laboratory orders) → ServiceRequest;
//! and what every order family shares: the order groups of a message and
//! the common order segment ORC (identifiers, status, requester, priority).
//!
//! An ORM order group whose detail is a pharmacy segment (RXO) is a
//! medication order and maps as in `pharmacy.rs`.
//!
//! Every order family: ORC-28 → meta.security (`security`), and with a
//! PV1-19 visit number the request names that Encounter (found, or created
//! with status unknown; the ADT feed's is never rewritten). The IG states
//! the link for ORU's DiagnosticReport; for the others it maps PV1 to the
//! message's one Encounter, which is the visit the order was placed in.

use serde_json::{json, Value};

use super::adt::{known_encounter, practitioner};
use super::datatypes::{
    codeable_concept, confidentiality_code, date_time, derived_key, identifier_ei, key_of,
    occurrence, system_of,
};
use super::patient::{add_patient, default_system, PatientWrite};
use super::{BundleBuilder, DERIVED_KEY_SYSTEM};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, SegmentRef};

/// One order: its ORC (if any) and the segments after it up to the next
/// ORC. A detail segment (`anchors`: OBR, RXE, RXA...) named a second time
/// without an ORC between starts a new group without ORC (v2.3 VXUs, for
/// one, send RXAs without ORC).
pub struct Group<'a> {
    pub orc: Option<SegmentRef<'a>>,
    pub segments: Vec<SegmentRef<'a>>,
}

impl<'a> Group<'a> {
    pub fn first(&self, name: &str) -> Option<SegmentRef<'a>> {
        self.segments.iter().find(|s| s.name() == name).copied()
    }

    pub fn all<'b>(&'b self, name: &'b str) -> impl Iterator<Item = SegmentRef<'a>> + 'b {
        self.segments
            .iter()
            .filter(move |s| s.name() == name)
            .copied()
    }

    /// ORC field `n`, component 1.
    pub fn orc(&self, n: usize) -> String {
        self.orc.map(|o| o.get(n).comp(1)).unwrap_or_default()
    }
}

/// Segments about the patient and the visit, which belong to no order.
const PATIENT_LEVEL: &[&str] = &[
    "MSH", "SFT", "UAC", "EVN", "PID", "PD1", "PV1", "PV2", "NK1", "IN1", "IN2", "IN3", "GT1",
    "AL1", "IAM", "ARV", "PRT", "ROL",
];

pub fn groups<'a>(message: &'a Message, anchors: &[&str]) -> Vec<Group<'a>> {
    let mut out: Vec<Group> = Vec::new();
    for seg in message.iter() {
        let name = seg.name();
        if name == "ORC" {
            out.push(Group {
                orc: Some(seg),
                segments: Vec::new(),
            });
        } else if anchors.contains(&name) {
            match out.last_mut() {
                Some(g) if !g.segments.iter().any(|s| s.name() == name) => g.segments.push(seg),
                _ => out.push(Group {
                    orc: None,
                    segments: vec![seg],
                }),
            }
        } else if PATIENT_LEVEL.contains(&name) && out.is_empty() {
            continue;
        } else if let Some(g) = out.last_mut() {
            if !PATIENT_LEVEL.contains(&name) {
                g.segments.push(seg);
            }
        }
    }
    out
}

/// ORC-5 order status, else ORC-1 order control → request-status (IG
/// ConceptMaps OrderStatus and OrderControlCode[ServiceRequest.status]).
pub fn request_status(group: &Group) -> Option<&'static str> {
    let by_status = match group.orc(5).as_str() {
        "CA" | "DC" | "RP" => Some("revoked"),
        "CM" => Some("completed"),
        "ER" => Some("entered-in-error"),
        "HD" => Some("on-hold"),
        "IP" | "SC" => Some("active"),
        _ => None,
    };
    by_status.or(match group.orc(1).as_str() {
        "AF" | "CA" | "HD" | "NW" | "OK" | "PR" | "PY" | "RL" | "RO" | "RQ" => Some("active"),
        "CR" | "DC" | "DF" | "DR" | "OC" | "OD" => Some("revoked"),
        "FU" => Some("completed"),
        "HR" | "OH" => Some("on-hold"),
        _ => None,
    })
}

/// Whether ORC-1 announces an order (so ORC-9 is when it was authored) rather
/// than a change to one (then ORC-9 is the date of the change; IG: authoredOn
/// only for `NW`, and for the notifications and replacements that carry a
/// whole order).
pub fn authored(group: &Group) -> Option<String> {
    let control = group.orc(1);
    let new = matches!(
        control.as_str(),
        "" | "NW" | "OK" | "SN" | "NA" | "RO" | "OP" | "PY" | "RE" | "PA" | "CH"
    );
    new.then(|| date_time(&group.orc(9))).flatten()
}

/// TQ1-9, else the priority of a TQ field (component 6) → request-priority
/// (IG ConceptMap ExtendedPriorityCodes: S, A, R; the others have no match).
pub fn priority(group: &Group, tq: Option<&SegmentRef>, tq_field: usize) -> Option<&'static str> {
    let valued = |c: String| (!c.is_empty()).then_some(c);
    let code = group
        .first("TQ1")
        .and_then(|t| valued(t.get(9).comp(1)))
        .or_else(|| tq.and_then(|s| valued(s.get(tq_field).comp(6))))
        .or_else(|| group.orc.and_then(|o| valued(o.get(7).comp(6))))?;
    match code.as_str() {
        "S" => Some("stat"),
        "A" => Some("asap"),
        "R" => Some("routine"),
        _ => None,
    }
}

fn typed(mut id: Value, code: &str) -> Value {
    id["type"] = json!({"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
        "code": code
    }]});
    id
}

/// The placer (ORC-2, or the detail's field) and filler (ORC-3, or the
/// detail's) numbers as typed identifiers (PLAC, FILL), and the match key:
/// the placer number, else the filler's.
pub struct OrderIds {
    pub identifiers: Vec<Value>,
    pub key: Option<(String, String)>,
}

pub fn order_ids(
    group: &Group,
    detail: Option<(&SegmentRef, usize, usize)>,
    default: &str,
) -> OrderIds {
    let from = |n: usize| group.orc.and_then(|o| identifier_ei(&o.get(n), default));
    let placer = detail
        .and_then(|(s, p, _)| identifier_ei(&s.get(p), default))
        .or_else(|| from(2));
    let filler = detail
        .and_then(|(s, _, f)| identifier_ei(&s.get(f), default))
        .or_else(|| from(3));
    let key = placer.as_ref().or(filler.as_ref()).and_then(key_of);
    let mut identifiers = Vec::new();
    if let Some(p) = placer {
        identifiers.push(typed(p, "PLAC"));
    }
    if let Some(f) = filler {
        identifiers.push(typed(f, "FILL"));
    }
    OrderIds { identifiers, key }
}

/// A key for an order without placer or filler number: the patient, what
/// is ordered and when.
pub fn derived_order_key(
    kind: &str,
    patient_key: &(String, String),
    parts: &[&str],
) -> (String, String) {
    let mut all = vec![patient_key.0.as_str(), patient_key.1.as_str()];
    all.extend_from_slice(parts);
    (
        DERIVED_KEY_SYSTEM.to_string(),
        format!("{kind}-{}", derived_key(&all)),
    )
}

/// The requester: ORC-12, else the detail's ordering provider.
pub fn requester(
    group: &Group,
    detail: Option<(&SegmentRef, usize)>,
    default: &str,
    b: &mut BundleBuilder,
) -> Option<Value> {
    group
        .orc
        .and_then(|o| practitioner(&o.get(12), default, b))
        .or_else(|| detail.and_then(|(s, n)| practitioner(&s.get(n), default, b)))
}

/// ORC-28 confidentiality code → `meta` with the security label (IG
/// ORC[ServiceRequest], ORC[Immunization], ORC[DiagnosticReport]: ORC-28 →
/// meta.security through the ConfidentialityCode map; applied to every
/// resource an order group makes, MedicationRequest and MedicationDispense
/// included, and to ORU's ServiceRequest, DiagnosticReport and
/// Observations). A table 0177 code the map lacks gets AE 103: a
/// restriction silently dropped would expose the resource.
pub fn security(message: &Message, orc: Option<SegmentRef>) -> Result<Option<Value>, Failure> {
    let Some(orc) = orc else {
        return Ok(None);
    };
    match confidentiality_code(&orc.get(28)) {
        Ok(None) => Ok(None),
        Ok(Some(coding)) => Ok(Some(json!({"security": [coding]}))),
        Err(code) => Err(Failure::error(
            ErrorCode::TableValueNotFound,
            Some(Location::new("ORC", occurrence(message, &orc), 28)),
            format!(
                "ORC-28 confidentiality code `{}` is not in table 0177",
                code.chars().take(20).collect::<String>()
            ),
        )),
    }
}

/// NTE segments of a group → Annotations.
pub fn notes(group: &Group) -> Vec<Value> {
    group
        .all("NTE")
        .map(|n| {
            n.reps(3)
                .iter()
                .map(|r| r.text())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|t| !t.is_empty())
        .map(|t| json!({"text": t}))
        .collect()
}

/// ORC + OBR → ServiceRequest (IG segment maps ORC[ServiceRequest] and
/// OBR[ServiceRequest]).
fn service_request(
    message: &Message,
    group: &Group,
    obr: &SegmentRef,
    patient: &str,
    patient_key: &(String, String),
    b: &mut BundleBuilder,
) -> Result<String, Failure> {
    let default = default_system(message);
    let code = codeable_concept(&obr.get(4)).ok_or_else(|| {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("OBR", occurrence(message, obr), 4)),
            "OBR-4 (universal service identifier) is required",
        )
    })?;
    let ids = order_ids(group, Some((obr, 2, 3)), &default);
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "status": request_status(group).unwrap_or("unknown"),
        "intent": "order",
        "code": code,
        "subject": {"reference": patient},
    });
    if let Some(meta) = security(message, group.orc)? {
        sr["meta"] = meta;
    }
    if let Some(e) = known_encounter(message, patient, b) {
        sr["encounter"] = json!({"reference": e});
    }
    if !ids.identifiers.is_empty() {
        sr["identifier"] = json!(ids.identifiers);
    }
    if let Some(o) = group.orc {
        // ORC-4 is an EIP: its first component an EI in subcomponents.
        let group_number = o.get(4);
        let value = group_number.sub(1, 1);
        if !value.is_empty() {
            let system = system_of(
                &group_number.sub(1, 2),
                &group_number.sub(1, 3),
                &group_number.sub(1, 4),
            )
            .unwrap_or_else(|| default.clone());
            sr["requisition"] = typed(json!({"system": system, "value": value}), "PGN");
        }
    }
    if let Some(a) = authored(group) {
        sr["authoredOn"] = json!(a);
    }
    if let Some(p) = priority(group, Some(obr), 27) {
        sr["priority"] = json!(p);
    }
    if let Some(who) = requester(group, Some((obr, 16)), &default, b) {
        sr["requester"] = who;
    }
    let when = group
        .first("TQ1")
        .and_then(|t| date_time(&t.get(7).comp(1)))
        .or_else(|| date_time(&obr.get(27).comp(4)))
        .or_else(|| group.orc.and_then(|o| date_time(&o.get(7).comp(4))));
    if let Some(w) = when {
        sr["occurrenceDateTime"] = json!(w);
    }
    let reasons: Vec<Value> = obr.reps(31).iter().filter_map(codeable_concept).collect();
    if !reasons.is_empty() {
        sr["reasonCode"] = json!(reasons);
    }
    let notes = notes(group);
    if !notes.is_empty() {
        sr["note"] = json!(notes);
    }
    let key = ids.key.unwrap_or_else(|| {
        let key = derived_order_key("OBR", patient_key, &[&obr.get(4).comp(1), &group.orc(9)]);
        sr["identifier"] = json!([{"system": key.0, "value": key.1}]);
        key
    });
    let url = b.upsert_by(Some(key), sr);
    b.focus.push(url.clone());
    Ok(url)
}

/// ORM^O01, OML^O21.
pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let groups = groups(message, &["OBR", "RXO"]);
    if groups.is_empty() {
        return Err(Failure::missing("ORC", 1, "common order segment"));
    }
    for g in &groups {
        if let Some(obr) = g.first("OBR") {
            service_request(message, g, &obr, &patient, &patient_key, b)?;
        } else if g.first("RXO").is_some() {
            super::pharmacy::medication_request(message, g, &patient, &patient_key, b)?;
        } else {
            let at = g.orc.map_or(1, |o| occurrence(message, &o));
            return Err(Failure::error(
                ErrorCode::RequiredFieldMissing,
                Some(Location::new("ORC", at, 1)),
                "the order has no detail segment (OBR or RXO): what is ordered is unknown",
            ));
        }
    }
    Ok(())
}
