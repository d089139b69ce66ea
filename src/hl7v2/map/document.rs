//! MDM^T02 (original document notification and content) →
//! DocumentReference, after the IG segment map TXA[DocumentReference].
//!
//! Our rules where the IG has none:
//! - status from TXA-19 availability: AV or empty → current (IG), OB
//!   (obsolete) → superseded, CA (cancelled) → entered-in-error, UN
//!   (unavailable) → current;
//! - docStatus from TXA-17 completion: AU, LA → final; DI, DO, IN, IP, PA
//!   → preliminary;
//! - date: TXA-6 when it has a time (R4 `date` is an instant);
//! - author TXA-9, else TXA-5; authenticator TXA-10;
//! - content from the OBX: TX, FT, ST lines → one `text/plain` attachment
//!   (UTF-8, lines joined by newlines), each ED → its own attachment with
//!   its data, each RP → an attachment by URL. A document without content
//!   gets AE 101 (R4 content is 1..*);
//! - identity: TXA-12 unique document number (masterIdentifier), else
//!   TXA-16 file name, else a key from the patient, TXA-2 and TXA-6, so a
//!   document sent again replaces the earlier version.

use serde_json::{json, Value};

use super::adt::{known_encounter, practitioner};
use super::datatypes::{attachment_ed, codeable_concept, date_time, identifier_ei, key_of};
use super::order::derived_order_key;
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::Message;

fn content(message: &Message) -> Result<Vec<Value>, Failure> {
    let mut text = Vec::new();
    let mut attachments = Vec::new();
    for (i, obx) in message.all("OBX").enumerate() {
        let kind = obx.get(2).comp(1);
        match kind.as_str() {
            "TX" | "FT" | "ST" => text.extend(obx.reps(5).iter().map(|r| r.text())),
            "ED" => {
                if let Some(ed) = obx.reps(5).first() {
                    attachments.push(attachment_ed(ed));
                }
            }
            "RP" => {
                if let Some(rp) = obx.reps(5).first() {
                    let url = rp.comp(1);
                    if !url.is_empty() {
                        let mut a = json!({"url": url});
                        let (t, s) = (rp.comp(3).to_ascii_lowercase(), rp.comp(4));
                        if !t.is_empty() && !s.is_empty() {
                            a["contentType"] = json!(format!("{t}/{}", s.to_ascii_lowercase()));
                        }
                        attachments.push(a);
                    }
                }
            }
            other => {
                return Err(Failure::error(
                    ErrorCode::DataType,
                    Some(Location::new("OBX", i + 1, 2)),
                    format!("OBX-2 value type `{other}` is not a document content type (TX, FT, ST, ED, RP)"),
                ))
            }
        }
    }
    let mut out = Vec::new();
    if !text.is_empty() {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(text.join("\n").as_bytes());
        out.push(json!({"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}}));
    }
    out.extend(attachments.into_iter().map(|a| json!({"attachment": a})));
    Ok(out)
}

pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let txa = message.first("TXA").ok_or_else(|| {
        Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("TXA", 1, 2)),
            "the TXA segment (document header) is required",
        )
    })?;
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let default = default_system(message);
    let content = content(message)?;
    if content.is_empty() {
        return Err(Failure::missing("OBX", 5, "document content"));
    }
    let status = match txa.get(19).comp(1).as_str() {
        "OB" => "superseded",
        "CA" => "entered-in-error",
        _ => "current",
    };
    let mut d = json!({
        "resourceType": "DocumentReference",
        "status": status,
        "subject": {"reference": patient},
        "content": content,
    });
    match txa.get(17).comp(1).as_str() {
        "AU" | "LA" => d["docStatus"] = json!("final"),
        "DI" | "DO" | "IN" | "IP" | "PA" => d["docStatus"] = json!("preliminary"),
        _ => {}
    }
    if let Some(t) = codeable_concept(&txa.get(2)) {
        d["type"] = t;
    }
    if let Some(when) = date_time(&txa.get(6).comp(1)).filter(|t| t.contains('T')) {
        d["date"] = json!(when);
    }
    let authors: Vec<Value> = txa
        .reps(9)
        .iter()
        .chain(txa.reps(5).iter())
        .filter_map(|x| practitioner(x, &default, b))
        .take(1)
        .collect();
    if !authors.is_empty() {
        d["author"] = json!(authors);
    }
    if let Some(who) = practitioner(&txa.get(10), &default, b) {
        d["authenticator"] = who;
    }
    if let Some(title) = txa.get(25).opt(1) {
        d["description"] = json!(title);
    }
    if let Some(e) = known_encounter(message, &patient, b) {
        d["context"] = json!({"encounter": [{"reference": e}]});
    }
    let master = identifier_ei(&txa.get(12), &default);
    let file = txa
        .get(16)
        .opt(1)
        .map(|f| json!({"system": default, "value": f}));
    if let Some(m) = &master {
        d["masterIdentifier"] = m.clone();
    }
    if let Some(f) = &file {
        d["identifier"] = json!([f]);
    }
    let key = master
        .as_ref()
        .or(file.as_ref())
        .and_then(key_of)
        .unwrap_or_else(|| {
            let key = derived_order_key(
                "TXA",
                &patient_key,
                &[&txa.get(2).comp(1), &txa.get(6).comp(1)],
            );
            d["identifier"] = json!([{"system": key.0, "value": key.1}]);
            key
        });
    let url = b.upsert(identifier_query(&key.0, &key.1), d);
    b.focus.push(url);
    Ok(())
}
