//! VXU^V04 (vaccination record update) → Immunization, after the IG
//! segment maps RXA[Immunization], RXR[Immunization] and ORC[Immunization].
//!
//! Our own rules where the IG has none:
//! - the record is matched by ORC-3 (the filler's, i.e. the registry's or
//!   the EHR's immunization id; the CDC implementation guide makes it the
//!   record's identity), else ORC-2, else a key from the patient, RXA-5
//!   and RXA-3, so a corrected record replaces the earlier one;
//! - RXA-6 `999` (CDC: amount unknown) gives no doseQuantity;
//! - RXA-9 `00` (new immunization record) → primarySource true, any other
//!   information source (historical) → false;
//! - RXA-20 `PA` (partially administered) → completed with isSubpotent;
//! - the OBX of the CDC guide that have a FHIR element: 64994-7 →
//!   programEligibility, 30963-3 → fundingSource, and the VIS group
//!   (69764-9 document type, 29768-9 publication date, 29769-7
//!   presentation date, grouped by OBX-4) → education. Other OBX are not
//!   mapped.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::adt::practitioner;
use super::datatypes::{code_system, codeable_concept, date, date_time, occurrence, quantity};
use super::order::{derived_order_key, groups, Group};
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, Rep, SegmentRef};

const V2_0443: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";

fn performer(function: &str, display: &str, who: Value) -> Value {
    json!({
        "function": {"coding": [{"system": V2_0443, "code": function, "display": display}]},
        "actor": who
    })
}

/// RXA-17 → an Organization found or created by its MVX code (display
/// only when the manufacturer is named but not coded).
fn manufacturer(mvx: &Rep, b: &mut BundleBuilder) -> Option<Value> {
    let code = mvx.comp(1);
    let name = mvx.opt(2);
    if code.is_empty() {
        return name.map(|n| json!({"display": n}));
    }
    let system = code_system(&mvx.comp(3)).unwrap_or_else(|| "http://hl7.org/fhir/sid/mvx".into());
    let mut org = json!({
        "resourceType": "Organization",
        "identifier": [{"system": system, "value": code}],
    });
    if let Some(n) = &name {
        org["name"] = json!(n);
    }
    let url = b.create_if_none(identifier_query(&system, &code), org);
    let mut r = json!({"reference": url});
    if let Some(n) = name {
        r["display"] = json!(n);
    }
    Some(r)
}

/// The OBX of the group with a FHIR element.
fn observations(group: &Group, imm: &mut Value) {
    let mut education: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for obx in group.all("OBX") {
        let value = obx.get(5);
        let sub_id = obx.get(4).comp(1);
        match obx.get(3).comp(1).as_str() {
            "64994-7" => {
                if let Some(cc) = codeable_concept(&value) {
                    imm["programEligibility"] = json!([cc]);
                }
            }
            "30963-3" => {
                if let Some(cc) = codeable_concept(&value) {
                    imm["fundingSource"] = cc;
                }
            }
            "69764-9" => {
                // The VIS bar code (CDC: GS1 string), else its text.
                let code = value.comp(1);
                let doc = if code.is_empty() { value.comp(2) } else { code };
                if !doc.is_empty() {
                    education
                        .entry(sub_id)
                        .or_default()
                        .insert("documentType".into(), json!(doc));
                }
            }
            code @ ("29768-9" | "29769-7") => {
                if let Some(d) = date_time(&value.comp(1)) {
                    let key = if code == "29768-9" {
                        "publicationDate"
                    } else {
                        "presentationDate"
                    };
                    education
                        .entry(sub_id)
                        .or_default()
                        .insert(key.into(), json!(d));
                }
            }
            _ => {}
        }
    }
    // imm-1: an education entry needs a document type (or a reference).
    let education: Vec<Value> = education
        .into_values()
        .filter(|e| e.contains_key("documentType"))
        .map(Value::Object)
        .collect();
    if !education.is_empty() {
        imm["education"] = json!(education);
    }
}

fn immunization(
    message: &Message,
    group: &Group,
    rxa: &SegmentRef,
    patient: &str,
    patient_key: &(String, String),
    b: &mut BundleBuilder,
) -> Result<(), Failure> {
    let default = default_system(message);
    let at = occurrence(message, rxa);
    let required = |field: usize, what: &str| {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("RXA", at, field)),
            format!("RXA-{field} ({what}) is required"),
        )
    };
    let vaccine = codeable_concept(&rxa.get(5)).ok_or_else(|| required(5, "administered code"))?;
    let when = rxa.get(3).comp(1);
    let when = date_time(&when).ok_or_else(|| {
        if when.is_empty() {
            required(3, "date/time start of administration")
        } else {
            Failure::error(
                ErrorCode::DataType,
                Some(Location::new("RXA", at, 3)),
                "RXA-3 is not a valid date/time",
            )
        }
    })?;
    let completion = rxa.get(20).comp(1);
    let status = if rxa.get(21).comp(1) == "D" {
        "entered-in-error"
    } else {
        match completion.as_str() {
            "" | "CP" | "PA" => "completed",
            "RE" | "NA" => "not-done",
            other => {
                return Err(Failure::error(
                    ErrorCode::TableValueNotFound,
                    Some(Location::new("RXA", at, 20)),
                    format!("RXA-20 completion status `{other}` is not in table 0322"),
                ))
            }
        }
    };
    let mut imm = json!({
        "resourceType": "Immunization",
        "status": status,
        "vaccineCode": vaccine,
        "patient": {"reference": patient},
        "occurrenceDateTime": when,
    });
    if let Some(meta) = super::order::security(message, group.orc)? {
        imm["meta"] = meta;
    }
    if let Some(e) = super::adt::known_encounter(message, patient, b) {
        imm["encounter"] = json!({"reference": e});
    }
    if completion == "PA" {
        imm["isSubpotent"] = json!(true);
    }
    if status == "not-done" {
        if let Some(r) = codeable_concept(&rxa.get(18)) {
            imm["statusReason"] = r;
        }
    }
    let reasons: Vec<Value> = rxa.reps(19).iter().filter_map(codeable_concept).collect();
    if !reasons.is_empty() {
        imm["reasonCode"] = json!(reasons);
    }
    let amount = rxa.get(6).comp(1);
    if !amount.is_empty() && amount != "999" {
        let q = quantity(&amount, &rxa.get(7)).ok_or_else(|| {
            Failure::error(
                ErrorCode::DataType,
                Some(Location::new("RXA", at, 6)),
                "RXA-6 (administered amount) is not a number",
            )
        })?;
        imm["doseQuantity"] = q;
    }
    if let Some(lot) = rxa.get(15).opt(1) {
        imm["lotNumber"] = json!(lot);
    }
    if let Some(d) = date(&rxa.get(16).comp(1)) {
        imm["expirationDate"] = json!(d);
    }
    if let Some(m) = manufacturer(&rxa.get(17), b) {
        imm["manufacturer"] = m;
    }
    match rxa.get(9).comp(1).as_str() {
        "" => {}
        "00" => imm["primarySource"] = json!(true),
        _ => {
            imm["primarySource"] = json!(false);
            if let Some(origin) = codeable_concept(&rxa.get(9)) {
                imm["reportOrigin"] = origin;
            }
        }
    }
    let recorded = date_time(&rxa.get(22).comp(1)).or_else(|| date_time(&group.orc(9)));
    if let Some(r) = recorded {
        imm["recorded"] = json!(r);
    }
    let mut performers = Vec::new();
    for xcn in rxa.reps(10) {
        if let Some(who) = practitioner(&xcn, &default, b) {
            performers.push(performer("AP", "Administering Provider", who));
        }
    }
    if let Some(who) = group
        .orc
        .and_then(|o| practitioner(&o.get(12), &default, b))
    {
        performers.push(performer("OP", "Ordering Provider", who));
    }
    if !performers.is_empty() {
        imm["performer"] = json!(performers);
    }
    if let Some(rxr) = group.first("RXR") {
        if let Some(r) = codeable_concept(&rxr.get(1)) {
            imm["route"] = r;
        }
        if let Some(s) = codeable_concept(&rxr.get(2)) {
            imm["site"] = s;
        }
    }
    observations(group, &mut imm);
    // Identifiers: ORC-3 (filler, the record's id) first, then ORC-2.
    let mut identifiers = Vec::new();
    for (field, code) in [(3, "FILL"), (2, "PLAC")] {
        if let Some(mut id) = group
            .orc
            .and_then(|o| super::datatypes::identifier_ei(&o.get(field), &default))
        {
            id["type"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": code
            }]});
            identifiers.push(id);
        }
    }
    let key = identifiers
        .first()
        .and_then(super::datatypes::key_of)
        .unwrap_or_else(|| {
            let key = derived_order_key(
                "RXA",
                patient_key,
                &[&rxa.get(5).comp(1), &rxa.get(3).comp(1)],
            );
            identifiers.push(json!({"system": key.0, "value": key.1}));
            key
        });
    imm["identifier"] = json!(identifiers);
    let url = b.upsert(identifier_query(&key.0, &key.1), imm);
    b.focus.push(url);
    Ok(())
}

/// VXU^V04. The order group is optional in VXU_V04: a VXU without RXA
/// names its patient only (created when unknown).
pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    for g in &groups(message, &["RXA"]) {
        if let Some(rxa) = g.first("RXA") {
            immunization(message, g, &rxa, &patient, &patient_key, b)?;
        }
    }
    Ok(())
}
