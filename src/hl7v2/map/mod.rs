//! Mapping a parsed message to one FHIR transaction Bundle (JSON), following
//! the HL7 v2-to-FHIR IG 1.0.0 where it has a table and our own documented
//! rules where it has none (README, "HL7 v2 bridge"). Pure: no I/O; what the
//! Bundle does is decided here, and the transaction service applies it.
//!
//! One file per message family: `adt.rs`, `oru.rs`, `order.rs` (ORM, OML,
//! and the ORC and order groups every order family shares), `pharmacy.rs`
//! (RDE, OMP, RDS), `immunization.rs` (VXU),
//! `scheduling.rs` (SIU), `financial.rs` (DFT), `document.rs` (MDM); `datatypes.rs` maps the
//! v2 data types (CX, XPN, XAD, XTN, CWE, XCN, DTM, ...), `patient.rs` the
//! PID segment shared by every family.
//!
//! Identity rules, so that a message applied again (or a later message about
//! the same thing) updates rather than duplicates:
//! - Patient: matched by its first PID-3 identifier (type `MR` preferred),
//!   system + value. ADT messages update it (conditional PUT); other
//!   messages create it when unknown and otherwise leave it as it is
//!   (conditional create).
//! - Encounter by PV1-19; Practitioner by XCN-1 and its assigning authority;
//!   orders and reports by their placer/filler numbers; other resources by an
//!   identifier derived from the message's keys (`urn:charaka:hl7v2:key`).

pub mod adt;
pub mod datatypes;
pub mod document;
pub mod financial;
pub mod immunization;
pub mod order;
pub mod oru;
pub mod patient;
pub mod pharmacy;
pub mod scheduling;

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::ack::{ErrorCode, Failure};
use super::message::Message;

/// The identifier system of keys derived from message content.
pub const DERIVED_KEY_SYSTEM: &str = "urn:charaka:hl7v2:key";

/// Builds the transaction Bundle of one message.
#[derive(Default)]
pub struct BundleBuilder {
    entries: Vec<Value>,
    /// Conditional entries already added, by `Type?query`, so a resource
    /// named twice in a message (an attending who also admits) is written
    /// once.
    by_query: HashMap<String, String>,
    /// The full URLs of the resources the message is about (MessageHeader.focus).
    pub focus: Vec<String>,
}

fn new_full_url() -> String {
    format!("urn:uuid:{}", crate::fhir::meta::new_id())
}

/// `identifier=system|value` as a URL query (token escapes, then percent
/// encoding).
pub fn identifier_query(system: &str, value: &str) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('|', "\\|")
            .replace(',', "\\,")
            .replace('$', "\\$")
    };
    let token = format!("{}|{}", esc(system), esc(value));
    form_urlencoded::Serializer::new(String::new())
        .append_pair("identifier", &token)
        .finish()
}

impl BundleBuilder {
    /// Adds a plain create; returns its full URL.
    pub fn create(&mut self, resource: Value) -> String {
        let url = new_full_url();
        let rtype = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.entries.push(json!({
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "POST", "url": rtype}
        }));
        url
    }

    /// Creates the resource unless one matches `query` (then nothing is
    /// written and references point at the match).
    pub fn create_if_none(&mut self, query: String, resource: Value) -> String {
        let rtype = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = format!("{rtype}?{query}");
        if let Some(url) = self.by_query.get(&key) {
            return url.clone();
        }
        let url = new_full_url();
        self.entries.push(json!({
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": query}
        }));
        self.by_query.insert(key, url.clone());
        url
    }

    /// Creates or replaces the resource matching `query` (conditional PUT).
    pub fn upsert(&mut self, query: String, resource: Value) -> String {
        let rtype = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = format!("{rtype}?{query}");
        if let Some(url) = self.by_query.get(&key) {
            return url.clone();
        }
        let url = new_full_url();
        self.entries.push(json!({
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "PUT", "url": key}
        }));
        self.by_query.insert(key, url.clone());
        url
    }

    /// Creates or replaces by a single identifier; a resource without one is
    /// created.
    pub fn upsert_by(&mut self, identifier: Option<(String, String)>, resource: Value) -> String {
        match identifier {
            Some((system, value)) => self.upsert(identifier_query(&system, &value), resource),
            None => self.create(resource),
        }
    }

    /// Replaces a resource by id (with the version it must still have).
    pub fn update(
        &mut self,
        rtype: &str,
        id: &str,
        if_match: Option<i64>,
        resource: Value,
    ) -> String {
        let url = new_full_url();
        let mut request = json!({"method": "PUT", "url": format!("{rtype}/{id}")});
        if let Some(v) = if_match {
            request["ifMatch"] = json!(format!("W/\"{v}\""));
        }
        self.entries
            .push(json!({"fullUrl": url, "resource": resource, "request": request}));
        url
    }

    /// Applies a JSON Patch (RFC 6902) to the one resource matching `query`
    /// (conditional PATCH); the transaction fails (404) when none matches.
    /// Returns the conditional reference to that resource (the entry has no
    /// fullUrl of its own: the resource already exists).
    pub fn patch(&mut self, rtype: &str, query: String, operations: Value) -> String {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&operations).expect("JSON serialises"));
        let target = format!("{rtype}?{query}");
        self.entries.push(json!({
            "resource": {
                "resourceType": "Binary",
                "contentType": "application/json-patch+json",
                "data": data,
            },
            "request": {"method": "PATCH", "url": target}
        }));
        target
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the MessageHeader and the Provenance (target: every resource the
    /// message wrote), and returns the transaction Bundle.
    pub fn finish(mut self, message: &Message, recorded: &str) -> Value {
        let msh = message.msh();
        let (code, trigger, _) = message.message_type();
        let targets: Vec<Value> = self
            .entries
            .iter()
            .map(|e| match e.get("fullUrl") {
                Some(url) => json!({"reference": url}),
                // A PATCH: the conditional reference to what it changes.
                None => json!({"reference": e["request"]["url"]}),
            })
            .collect();
        let sender = msh.get(3).comp(1);
        let facility = msh.get(4).comp(1);
        let endpoint = format!(
            "urn:charaka:hl7v2:sender:{}",
            datatypes::uri_part(&format!("{sender}|{facility}"))
        );
        let mut header = json!({
            "resourceType": "MessageHeader",
            "eventCoding": {
                "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                "code": trigger,
            },
            "source": {"endpoint": endpoint},
            "focus": self.focus.iter().map(|u| json!({"reference": u})).collect::<Vec<_>>(),
        });
        if !sender.is_empty() {
            header["source"]["name"] = json!(sender);
        }
        if header["focus"].as_array().is_some_and(Vec::is_empty) {
            header.as_object_mut().map(|o| o.remove("focus"));
        }
        let header_url = self.create(header);
        let mut who = Map::new();
        who.insert(
            "display".into(),
            json!(if sender.is_empty() {
                "unknown sender".to_string()
            } else {
                sender
            }),
        );
        let provenance = json!({
            "resourceType": "Provenance",
            "target": targets,
            "recorded": recorded,
            "activity": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                "code": trigger,
                "display": format!("{code}^{trigger}"),
            }]},
            "agent": [{
                "type": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                    "code": "author"
                }]},
                "who": Value::Object(who),
            }],
            "entity": [{"role": "source", "what": {"reference": header_url}}],
        });
        self.create(provenance);
        json!({"resourceType": "Bundle", "type": "transaction", "entry": self.entries})
    }
}

/// What a mapper needs besides the message: lookups done before mapping.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// For a merge (A40): the prior patient's id, version and body, when found.
    pub prior_patient: Option<(String, i64, Value)>,
}

/// The message types this server maps.
pub fn supported(code: &str, trigger: &str) -> Result<(), Failure> {
    let ok = match code {
        "ADT" => adt::TRIGGERS.contains(&trigger),
        "ORU" => trigger == "R01",
        "ORM" => trigger == "O01",
        "OML" => trigger == "O21",
        "RDE" => trigger == "O11",
        "OMP" => trigger == "O09",
        "RDS" => trigger == "O13",
        "VXU" => trigger == "V04",
        "SIU" => scheduling::TRIGGERS.contains(&trigger),
        "DFT" => trigger == "P03",
        "MDM" => document::TRIGGERS.contains(&trigger),
        _ => {
            return Err(Failure::reject(
                ErrorCode::UnsupportedMessageType,
                Some(super::ack::Location::new("MSH", 1, 9)),
                format!("message type {code} is not supported"),
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Failure::reject(
            ErrorCode::UnsupportedEvent,
            Some(super::ack::Location::new("MSH", 1, 9)),
            format!("event {code}^{trigger} is not supported"),
        ))
    }
}

/// Maps a message to a transaction Bundle.
pub fn map(message: &Message, context: &Context, recorded: &str) -> Result<Value, Failure> {
    let (code, trigger, _) = message.message_type();
    supported(&code, &trigger)?;
    let mut b = BundleBuilder::default();
    match code.as_str() {
        "ADT" => adt::map(message, &trigger, context, &mut b)?,
        "ORU" => oru::map(message, &mut b)?,
        "ORM" | "OML" => order::map(message, &mut b)?,
        "RDE" | "OMP" => pharmacy::map(message, &mut b)?,
        "RDS" => pharmacy::map_dispense(message, &mut b)?,
        "VXU" => immunization::map(message, &mut b)?,
        "SIU" => scheduling::map(message, &trigger, &mut b)?,
        "DFT" => financial::map(message, &mut b)?,
        "MDM" => document::map(message, &trigger, &mut b)?,
        _ => unreachable!("checked by supported()"),
    }
    Ok(b.finish(message, recorded))
}
