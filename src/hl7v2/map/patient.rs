//! PID (+ PD1, NK1) → Patient, and the patient match every family uses.

use serde_json::{json, Map, Value};

use super::datatypes::{
    address, codeable_concept, contact_point, date, date_time, human_name, identifier_cx, key_of,
};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::Failure;
use crate::hl7v2::message::{Message, SegmentRef};

/// The identifier system for identifiers without an assigning authority:
/// local to the sending facility (MSH-4, else MSH-3).
pub fn default_system(message: &Message) -> String {
    let msh = message.msh();
    let facility = msh.get(4).comp(1);
    let sender = if facility.is_empty() {
        msh.get(3).comp(1)
    } else {
        facility
    };
    format!(
        "urn:charaka:hl7v2:aa:{}",
        super::datatypes::uri_part(if sender.is_empty() { "local" } else { &sender })
    )
}

/// PID → Patient resource (without id).
pub fn patient(message: &Message, pid: &SegmentRef) -> Result<(Value, (String, String)), Failure> {
    let default = default_system(message);
    let identifiers: Vec<Value> = pid
        .reps(3)
        .iter()
        .filter_map(|cx| identifier_cx(cx, &default))
        .collect();
    // The match key: the MR identifier, else the first.
    let key = identifiers
        .iter()
        .find(|i| i["type"]["coding"][0]["code"] == "MR")
        .or_else(|| identifiers.first())
        .and_then(key_of)
        .ok_or_else(|| Failure::missing("PID", 3, "patient identifier list"))?;
    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Patient"));
    p.insert("identifier".into(), json!(identifiers));
    let names: Vec<Value> = pid.reps(5).iter().filter_map(human_name).collect();
    if !names.is_empty() {
        p.insert("name".into(), json!(names));
    }
    let mut telecom: Vec<Value> = pid
        .reps(13)
        .iter()
        .filter_map(|x| contact_point(x, Some("home")))
        .collect();
    telecom.extend(
        pid.reps(14)
            .iter()
            .filter_map(|x| contact_point(x, Some("work"))),
    );
    if !telecom.is_empty() {
        p.insert("telecom".into(), json!(telecom));
    }
    let gender = match pid.get(8).comp(1).as_str() {
        "M" => Some("male"),
        "F" => Some("female"),
        "O" | "A" => Some("other"),
        "U" | "N" => Some("unknown"),
        _ => None,
    };
    if let Some(g) = gender {
        p.insert("gender".into(), json!(g));
    }
    if let Some(d) = date(&pid.get(7).comp(1)) {
        p.insert("birthDate".into(), json!(d));
    }
    match pid.get(30).comp(1).as_str() {
        "Y" => {
            let deceased = date_time(&pid.get(29).comp(1));
            match deceased {
                Some(d) => p.insert("deceasedDateTime".into(), json!(d)),
                None => p.insert("deceasedBoolean".into(), json!(true)),
            };
        }
        "N" => {
            p.insert("deceasedBoolean".into(), json!(false));
        }
        _ => {
            if let Some(d) = date_time(&pid.get(29).comp(1)) {
                p.insert("deceasedDateTime".into(), json!(d));
            }
        }
    }
    let addresses: Vec<Value> = pid.reps(11).iter().filter_map(address).collect();
    if !addresses.is_empty() {
        p.insert("address".into(), json!(addresses));
    }
    if let Some(m) = pid.get(16).opt(1) {
        p.insert(
            "maritalStatus".into(),
            json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                "code": m
            }]}),
        );
    }
    match pid.get(24).comp(1).as_str() {
        "Y" => {
            let order = pid.get(25).comp(1).parse::<i64>().ok();
            match order {
                Some(n) => p.insert("multipleBirthInteger".into(), json!(n)),
                None => p.insert("multipleBirthBoolean".into(), json!(true)),
            };
        }
        "N" => {
            p.insert("multipleBirthBoolean".into(), json!(false));
        }
        _ => {}
    }
    if let Some(lang) = codeable_concept(&pid.get(15)) {
        p.insert("communication".into(), json!([{"language": lang}]));
    }
    Ok((Value::Object(p), key))
}

/// NK1 → Patient.contact.
pub fn contacts(message: &Message) -> Vec<Value> {
    message
        .all("NK1")
        .filter_map(|nk1| {
            let mut c = Map::new();
            if let Some(n) = human_name(&nk1.get(2)) {
                c.insert("name".into(), n);
            }
            if let Some(r) = codeable_concept(&nk1.get(3)) {
                c.insert("relationship".into(), json!([r]));
            }
            if let Some(a) = address(&nk1.get(4)) {
                c.insert("address".into(), a);
            }
            let mut telecom: Vec<Value> = nk1
                .reps(5)
                .iter()
                .filter_map(|x| contact_point(x, Some("home")))
                .collect();
            telecom.extend(
                nk1.reps(6)
                    .iter()
                    .filter_map(|x| contact_point(x, Some("work"))),
            );
            if !telecom.is_empty() {
                c.insert("telecom".into(), json!(telecom));
            }
            (!c.is_empty()).then_some(Value::Object(c))
        })
        .collect()
}

/// PD1-3 primary facility (XON) → an Organization, PD1-4 primary care
/// providers (XCN) → Practitioners: Patient.generalPractitioner (IG PD1
/// map). The facility is found or created by its identifier (XON-10, else
/// XON-3) and is a display-only reference without one.
fn general_practitioners(message: &Message, b: &mut BundleBuilder) -> Vec<Value> {
    let Some(pd1) = message.first("PD1") else {
        return Vec::new();
    };
    let default = default_system(message);
    let mut out = Vec::new();
    for xon in pd1.reps(3) {
        let name = xon.comp(1);
        let id = xon.opt(10).or_else(|| xon.opt(3));
        match id {
            Some(id) => {
                let aa = xon.part(6);
                let system = super::datatypes::system_of(
                    &aa.sub_part(1).text(),
                    &aa.sub_part(2).text(),
                    &aa.sub_part(3).text(),
                )
                .unwrap_or_else(|| default.clone());
                let mut org = json!({
                    "resourceType": "Organization",
                    "identifier": [{"system": system, "value": id}],
                });
                if !name.is_empty() {
                    org["name"] = json!(name);
                }
                let url = b.create_if_none(identifier_query(&system, &id), org);
                let mut r = json!({"reference": url});
                if !name.is_empty() {
                    r["display"] = json!(name);
                }
                out.push(r);
            }
            None if !name.is_empty() => out.push(json!({"display": name})),
            None => {}
        }
    }
    out.extend(
        pd1.reps(4)
            .iter()
            .filter_map(|x| super::adt::practitioner(x, &default, b)),
    );
    out
}

/// How a message names its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientWrite {
    /// ADT: the message is the source of truth; update (or create).
    Update,
    /// Orders, results...: create the patient when unknown, else leave it.
    CreateIfMissing,
}

/// Adds the patient of the message's PID; returns its full URL and match key.
pub fn add_patient(
    message: &Message,
    b: &mut BundleBuilder,
    write: PatientWrite,
) -> Result<(String, (String, String)), Failure> {
    let pid = message
        .first("PID")
        .ok_or_else(|| Failure::missing("PID", 3, "patient identification segment"))?;
    let (mut resource, key) = patient(message, &pid)?;
    let contacts = contacts(message);
    if !contacts.is_empty() {
        resource["contact"] = json!(contacts);
    }
    let gps = general_practitioners(message, b);
    if !gps.is_empty() {
        resource["generalPractitioner"] = json!(gps);
    }
    let query = identifier_query(&key.0, &key.1);
    let url = match write {
        PatientWrite::Update => b.upsert(query, resource),
        PatientWrite::CreateIfMissing => b.create_if_none(query, resource),
    };
    b.focus.push(url.clone());
    Ok((url, key))
}
