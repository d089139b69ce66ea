//! MDM^T01–T11 (document notifications) → DocumentReference, after the
//! IG segment map TXA[DocumentReference] (the IG maps MDM^T02; the other
//! events follow the v2 standard's scenarios, table 0003).
//!
//! Events (our rules):
//! - T01/T02 original: the document, created or replaced by its key;
//! - T03/T04 status change: T04 (with content) replaces the document; T03
//!   patches status (TXA-19), docStatus (TXA-17) and the confidentiality
//!   (TXA-18) of the known document, leaving its content;
//! - T05/T06 addendum: a document of its own (TXA-12) with relatesTo
//!   `appends` the parent (TXA-13, required);
//! - T07/T08 edit: in place (as T03 without content, as T04 with it); an
//!   edit with a parent (TXA-13) other than itself is a new version of that
//!   parent: as a replacement;
//! - T09/T10 replacement: a document of its own with relatesTo `replaces`
//!   the parent (TXA-13, required), whose status turns `superseded`;
//! - T11 cancel: the known document turns `entered-in-error` (v2: removed
//!   from the record with no replacement, e.g. wrong patient).
//!
//! A parent or a document to patch that is not known gets AE 204. The odd
//! events carry no content: a new document made from one (T01, T05, T09)
//! gets an attachment without data titled by TXA-16 (file name), else
//! TXA-25 (R4 needs one content); the even ones without OBX get AE 101.
//!
//! Fields:
//! - status from TXA-19 availability: AV or empty → current (IG), OB
//!   (obsolete) → superseded, CA (cancelled) → entered-in-error, UN
//!   (unavailable) → current;
//! - docStatus from TXA-17 completion: AU, LA → final; DI, DO, IN, IP, PA
//!   → preliminary;
//! - date: TXA-6 when it has a time (R4 `date` is an instant);
//! - author TXA-9, else TXA-5; authenticator TXA-10;
//! - TXA-18 confidentiality (table 0272, IG map DocumentConfidentialityStatus)
//!   → securityLabel (IG) and the same Coding in meta.security (our rule:
//!   the content is inline, so the resource is as confidential as the
//!   document); a code outside the table gets AE 103;
//! - content from the OBX: TX, FT, ST lines → one `text/plain` attachment
//!   (UTF-8, lines joined by newlines), each ED → its own attachment with
//!   its data, each RP → an attachment by URL;
//! - identity: TXA-12 unique document number (masterIdentifier), else
//!   TXA-16 file name, else a key from the patient, TXA-2 and TXA-6, so a
//!   document sent again replaces the earlier version.

use serde_json::{json, Value};

use super::adt::{known_encounter, practitioner};
use super::datatypes::{
    attachment_ed, codeable_concept, date_time, document_confidentiality, identifier_ei, key_of,
};
use super::order::derived_order_key;
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, SegmentRef};

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

/// The events mapped (table 0003): T01/T02 original, T03/T04 status
/// change, T05/T06 addendum, T07/T08 edit, T09/T10 replacement, T11
/// cancel; the even ones carry the content (OBX), the odd ones need not.
pub const TRIGGERS: &[&str] = &[
    "T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08", "T09", "T10", "T11",
];

fn with_content(trigger: &str) -> bool {
    matches!(trigger, "T02" | "T04" | "T06" | "T08" | "T10")
}

/// TXA-19 availability → DocumentReference.status (T11 cancels).
fn status_of(trigger: &str, availability: &str) -> &'static str {
    if trigger == "T11" {
        return "entered-in-error";
    }
    match availability {
        "OB" => "superseded",
        "CA" => "entered-in-error",
        _ => "current",
    }
}

/// TXA-17 completion → docStatus.
fn doc_status(completion: &str) -> Option<&'static str> {
    match completion {
        "AU" | "LA" => Some("final"),
        "DI" | "DO" | "IN" | "IP" | "PA" => Some("preliminary"),
        _ => None,
    }
}

/// TXA-18 → the security label, or AE 103.
fn label(txa: &SegmentRef) -> Result<Option<Value>, Failure> {
    document_confidentiality(&txa.get(18).comp(1)).map_err(|code| {
        Failure::error(
            ErrorCode::TableValueNotFound,
            Some(Location::new("TXA", 1, 18)),
            format!(
                "TXA-18 document confidentiality status `{}` is not in table 0272",
                code.chars().take(20).collect::<String>()
            ),
        )
    })
}

pub fn map(message: &Message, trigger: &str, b: &mut BundleBuilder) -> Result<(), Failure> {
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
    if content.is_empty() && with_content(trigger) {
        return Err(Failure::missing("OBX", 5, "document content"));
    }
    let label = label(&txa)?;
    let master = identifier_ei(&txa.get(12), &default);
    let file = txa
        .get(16)
        .opt(1)
        .map(|f| json!({"system": default, "value": f}));
    let mut derived = None;
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
            derived = Some(json!([{"system": key.0, "value": key.1}]));
            key
        });
    let parent = identifier_ei(&txa.get(13), &default)
        .as_ref()
        .and_then(key_of)
        .filter(|p| *p != key);
    let relation = match trigger {
        "T05" | "T06" => Some("appends"),
        "T09" | "T10" => Some("replaces"),
        "T07" | "T08" if parent.is_some() => Some("replaces"),
        _ => None,
    };
    if relation.is_some() && parent.is_none() {
        return Err(Failure::missing("TXA", 13, "parent document number"));
    }
    let status = status_of(trigger, &txa.get(19).comp(1));

    // A change to a known document that sends no content (T03, T07 in
    // place, T11): its status, completion and confidentiality are patched;
    // the rest, the content included, stays. Unknown document: AE 204.
    if content.is_empty() && relation.is_none() && trigger != "T01" {
        let mut ops = Vec::new();
        if trigger == "T11" || !txa.get(19).is_empty() {
            ops.push(json!({"op": "add", "path": "/status", "value": status}));
        }
        if let Some(d) = doc_status(&txa.get(17).comp(1)) {
            ops.push(json!({"op": "add", "path": "/docStatus", "value": d}));
        }
        if let Some(l) = &label {
            ops.push(json!({"op": "add", "path": "/securityLabel", "value": [{"coding": [l]}]}));
            ops.push(json!({"op": "add", "path": "/meta/security", "value": [l]}));
        }
        if ops.is_empty() {
            return Err(Failure::missing("TXA", 19, "document availability status"));
        }
        let url = b.patch(
            "DocumentReference",
            identifier_query(&key.0, &key.1),
            json!(ops),
        );
        b.focus.push(url);
        return Ok(());
    }

    let content = if content.is_empty() {
        // A notification without its content (T01, T05, T09): R4 needs
        // one content; an attachment naming the document, without data.
        let title = txa
            .get(16)
            .opt(1)
            .or_else(|| txa.get(25).opt(1))
            .unwrap_or_else(|| "content not sent".to_string());
        vec![json!({"attachment": {"title": title}})]
    } else {
        content
    };
    let mut d = json!({
        "resourceType": "DocumentReference",
        "status": status,
        "subject": {"reference": patient},
        "content": content,
    });
    // TXA-18 → securityLabel (IG); the same label in meta.security, since
    // the document's content travels inside this resource.
    if let Some(l) = label {
        d["securityLabel"] = json!([{"coding": [l.clone()]}]);
        d["meta"] = json!({"security": [l]});
    }
    if let Some(s) = doc_status(&txa.get(17).comp(1)) {
        d["docStatus"] = json!(s);
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
    if let Some(m) = &master {
        d["masterIdentifier"] = m.clone();
    }
    if let Some(f) = &file {
        d["identifier"] = json!([f]);
    }
    if let Some(ids) = derived {
        d["identifier"] = ids;
    }
    if let (Some(code), Some(parent)) = (relation, &parent) {
        let target = format!(
            "DocumentReference?{}",
            identifier_query(&parent.0, &parent.1)
        );
        d["relatesTo"] = json!([{"code": code, "target": {"reference": target}}]);
        if code == "replaces" {
            let url = b.patch(
                "DocumentReference",
                identifier_query(&parent.0, &parent.1),
                json!([{"op": "add", "path": "/status", "value": "superseded"}]),
            );
            b.focus.push(url);
        }
    }
    let url = b.upsert(identifier_query(&key.0, &key.1), d);
    b.focus.push(url);
    Ok(())
}
