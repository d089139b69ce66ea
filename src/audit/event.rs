//! AuditEvent resources following the IHE Basic Audit Log Patterns (BALP):
//! RESTful interactions, HL7 v2 imports and authentication events. The
//! events name who (user, client, fhirUser, source address), what (the
//! resources, or the query as base64 per BALP), which patients, when and
//! the outcome; they never copy resource content.

use std::net::IpAddr;

use base64::Engine;
use serde_json::{json, Value};

use super::context::RequestFacts;
use crate::auth::Access;

const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
/// Identifier systems of the server's own users and OAuth clients.
pub const USER_SYSTEM: &str = "urn:charaka:user";
pub const CLIENT_SYSTEM: &str = "urn:charaka:client";
/// Subtypes the standard code systems lack (token endpoint events).
pub const CHARAKA_SUBTYPE: &str = "urn:charaka:audit-subtype";

/// A RESTful interaction as the audit trail names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// A code of http://hl7.org/fhir/restful-interaction.
    pub code: &'static str,
    /// C, R, U, D or E.
    pub action: &'static str,
    /// The resource the path names (`Type/id` or `Type/id/_history/v`).
    pub target: Option<String>,
    /// Whether the request is a query (its query string is recorded).
    pub query: bool,
    /// A patient the path names (`Patient/123`, `Patient/123/Observation`).
    pub patient: Option<String>,
}

/// Classifies a request by method and path below the FHIR base; None for
/// requests that are not audited (the CapabilityStatement and discovery).
pub fn classify(method: &str, path: &str) -> Option<Interaction> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = method == "GET" || method == "HEAD";
    let op = |s: &str| s.starts_with('$');
    let mut patient = None;
    let (code, action, target, query) = match segs.as_slice() {
        [] if get => ("search-system", "E", None, true),
        [] => ("transaction", "E", None, false),
        ["metadata"] | [".well-known", ..] => return None,
        ["_history"] => ("history-system", "R", None, true),
        [o] if op(o) => ("operation", "E", None, true),
        [t] if get => ("search-type", "E", Some(t.to_string()), true),
        [t] => match method {
            "POST" => ("create", "C", Some(t.to_string()), false),
            "PUT" => ("update", "U", Some(t.to_string()), true),
            "PATCH" => ("patch", "U", Some(t.to_string()), true),
            "DELETE" => ("delete", "D", Some(t.to_string()), true),
            _ => return None,
        },
        [t, "_search"] => ("search-type", "E", Some(t.to_string()), true),
        [t, "_history"] => ("history-type", "R", Some(t.to_string()), true),
        [t, o] if op(o) => ("operation", "E", Some(t.to_string()), true),
        [t, id] => {
            if *t == "Patient" {
                patient = Some(id.to_string());
            }
            let target = Some(format!("{t}/{id}"));
            match method {
                "GET" | "HEAD" => ("read", "R", target, false),
                "PUT" => ("update", "U", target, false),
                "PATCH" => ("patch", "U", target, false),
                "DELETE" => ("delete", "D", target, false),
                _ => return None,
            }
        }
        [t, id, "_history"] => {
            if *t == "Patient" {
                patient = Some(id.to_string());
            }
            ("history-instance", "R", Some(format!("{t}/{id}")), true)
        }
        [t, id, "_history", v] => {
            if *t == "Patient" {
                patient = Some(id.to_string());
            }
            ("vread", "R", Some(format!("{t}/{id}/_history/{v}")), false)
        }
        [t, id, o] if op(o) => {
            if *t == "Patient" {
                patient = Some(id.to_string());
            }
            ("operation", "E", Some(format!("{t}/{id}")), true)
        }
        [t, id, _compartment_type] => {
            if *t == "Patient" {
                patient = Some(id.to_string());
            }
            ("search-type", "E", Some(format!("{t}/{id}")), true)
        }
        _ => return None,
    };
    Some(Interaction {
        code,
        action,
        target,
        query,
        patient,
    })
}

/// Patients a query string names: `patient=`, `subject=Patient/...`,
/// `subject:Patient=`, `beneficiary=` and `_id` on Patient searches, and
/// the same parameters tested in a `_filter`.
pub fn patients_in_query(path: &str, query: &str) -> Vec<String> {
    let on_patient = path.trim_matches('/').starts_with("Patient");
    let mut out = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "_filter" {
            if let Ok(expr) = crate::search::filter::parse(&value) {
                for (path, op, v) in expr.tests() {
                    if matches!(op, "eq" | "re") {
                        patients_named(on_patient, path, v, &mut out);
                    }
                }
            }
            continue;
        }
        for v in value.split(',') {
            patients_named(on_patient, &key, v, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The patient that parameter `key` with value `v` names, if any.
fn patients_named(on_patient: bool, key: &str, v: &str, out: &mut Vec<String>) {
    let name = key.split(':').next().unwrap_or_default();
    let typed_patient = key.ends_with(":Patient");
    let refers = matches!(name, "patient" | "subject" | "beneficiary");
    let v = v.trim();
    if v.is_empty() {
        return;
    }
    if on_patient && name == "_id" {
        out.push(v.to_string());
    } else if refers {
        let tail = v.rsplit_once("Patient/").map(|(_, id)| id);
        match tail {
            Some(id) => out.push(id.split('/').next().unwrap_or(id).to_string()),
            None if (name == "patient" || typed_patient) && !v.contains('/') => {
                out.push(v.to_string())
            }
            None => {}
        }
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// BALP outcome code of an HTTP status.
pub fn outcome_of(status: u16) -> &'static str {
    match status {
        0..=399 => "0",
        400..=499 => "4",
        _ => "8",
    }
}

/// The agents: the user (requestor), the client application and the
/// server.
fn agents(access: Option<&Access>, source: Option<IpAddr>) -> Vec<Value> {
    let network = source.map(|ip| json!({"address": ip.to_string(), "type": "2"}));
    let mut agents = Vec::new();
    match access {
        Some(a) if a.client_id.is_some() && a.fhir_user.is_none() && a.role.is_none() => {
            // A backend service: the client is the requestor.
        }
        Some(a) => {
            let mut who = json!({"identifier": {"system": USER_SYSTEM, "value": a.subject}});
            if let Some(fu) = &a.fhir_user {
                who["reference"] = json!(fu);
            }
            let mut user = json!({
                "type": {"coding": [coding(PARTICIPATION, "IRCP", "information recipient")]},
                "who": who,
                "altId": a.subject,
                "requestor": true,
            });
            if let Some(role) = &a.role {
                user["role"] = json!([{"text": role}]);
            }
            agents.push(user);
        }
        None => {}
    }
    let requestor_is_client = agents.is_empty();
    let mut client = json!({
        "type": {"coding": [coding(DCM, "110153", "Source Role ID")]},
        "requestor": requestor_is_client,
    });
    match access.and_then(|a| a.client_id.as_deref()) {
        Some(id) => client["who"] = json!({"identifier": {"system": CLIENT_SYSTEM, "value": id}}),
        None => {
            client["who"] = json!({"display": access.map_or("anonymous", |a| a.subject.as_str())})
        }
    }
    if let Some(n) = &network {
        client["network"] = n.clone();
    }
    agents.push(client);
    agents.push(json!({
        "type": {"coding": [coding(DCM, "110152", "Destination Role ID")]},
        "who": {"display": "Charaka FHIR server"},
        "requestor": false,
    }));
    agents
}

fn source() -> Value {
    json!({
        "observer": {"display": "Charaka FHIR server"},
        "type": [coding(SOURCE_TYPE, "4", "Application Server")],
    })
}

fn patient_entity(id: &str) -> Value {
    json!({
        "what": {"reference": format!("Patient/{id}")},
        "type": coding(ENTITY_TYPE, "1", "Person"),
        "role": coding(OBJECT_ROLE, "1", "Patient"),
    })
}

fn data_entity(reference: &str) -> Value {
    json!({
        "what": {"reference": reference},
        "type": coding(ENTITY_TYPE, "2", "System Object"),
        "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
    })
}

/// What one audited REST interaction did.
pub struct RestFacts<'a> {
    pub request: &'a RequestFacts,
    pub interaction: &'a Interaction,
    pub access: Option<&'a Access>,
    pub status: u16,
    pub recorded: String,
    /// Resources touched (from the service or the path).
    pub entities: &'a [String],
    pub patients: &'a [String],
}

/// The AuditEvent of a RESTful interaction.
pub fn rest_event(f: &RestFacts<'_>) -> Value {
    let i = f.interaction;
    let mut entities: Vec<Value> = f.patients.iter().map(|p| patient_entity(p)).collect();
    let mut named: Vec<&str> = f.entities.iter().map(String::as_str).collect();
    if named.is_empty() && !i.query {
        named.extend(i.target.as_deref());
    }
    for r in named {
        // A plain `Patient/id` already listed as the patient is not
        // repeated as data.
        let is_listed_patient = f.patients.iter().any(|p| r == format!("Patient/{p}"));
        if !is_listed_patient {
            entities.push(data_entity(r));
        }
    }
    if i.query {
        let text = match &f.request.query {
            Some(q) => format!("{}?{q}", f.request.path),
            None => f.request.path.clone(),
        };
        entities.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": base64::engine::general_purpose::STANDARD.encode(text),
        }));
    }
    if let Some(id) = &f.request.request_id {
        entities.push(json!({
            "what": {"identifier": {"value": id}},
            "type": coding(BALP_ENTITY, "XrequestId", "X-Request-Id"),
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "type": coding(EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [coding(INTERACTION, i.code, i.code)],
        "action": i.action,
        "recorded": f.recorded,
        "outcome": outcome_of(f.status),
        "agent": agents(f.access, f.request.source),
        "source": source(),
        "entity": entities,
    });
    if f.status >= 400 {
        event["outcomeDesc"] = json!(format!("HTTP {}", f.status));
    }
    event
}

/// The AuditEvent of an HL7 v2 message applied (or refused).
pub struct MessageFacts<'a> {
    pub sender: &'a str,
    pub message_type: &'a str,
    pub control_id: Option<&'a str>,
    pub recorded: String,
    /// HL7 acknowledgement code: AA, AE or AR.
    pub ack_code: &'a str,
    pub entities: &'a [String],
    pub patients: &'a [String],
    /// The network peer it came from (MLLP or HTTP).
    pub peer_address: Option<IpAddr>,
    /// The names of the mutual-TLS client certificate it came with.
    pub certificate: Option<&'a str>,
    /// Over HTTP, the OAuth client whose token sent it.
    pub client_id: Option<&'a str>,
}

/// Identifies a sender by the names of its mutual-TLS client certificate.
pub const CERTIFICATE_SYSTEM: &str = "urn:charaka:tls-client-certificate";

pub fn message_event(f: &MessageFacts<'_>) -> Value {
    let mut entities: Vec<Value> = f.patients.iter().map(|p| patient_entity(p)).collect();
    entities.extend(f.entities.iter().map(|r| data_entity(r)));
    let mut message = json!({
        "type": coding(ENTITY_TYPE, "2", "System Object"),
        "role": coding(OBJECT_ROLE, "3", "Report"),
        "name": f.message_type,
    });
    if let Some(c) = f.control_id {
        message["what"] =
            json!({"identifier": {"system": "urn:charaka:hl7v2:control-id", "value": c}});
    }
    entities.push(message);
    let outcome = if f.ack_code == "AA" { "0" } else { "4" };
    // The sender as it names itself (MSH-3|MSH-4), and as it was known to
    // the connection: its certificate or its OAuth client, and address.
    let mut sender = json!({
        "type": {"coding": [coding(DCM, "110153", "Source Role ID")]},
        "who": {"display": f.sender},
        "requestor": true,
    });
    if let Some(names) = f.certificate {
        sender["who"]["identifier"] = json!({"system": CERTIFICATE_SYSTEM, "value": names});
    } else if let Some(id) = f.client_id {
        sender["who"]["identifier"] = json!({"system": CLIENT_SYSTEM, "value": id});
    }
    if let Some(ip) = f.peer_address {
        sender["network"] = json!({"address": ip.to_string(), "type": "2"});
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "type": coding(DCM, "110107", "Import"),
        "subtype": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": f.message_type.split('^').nth(1).unwrap_or(f.message_type)}],
        "action": "C",
        "recorded": f.recorded,
        "outcome": outcome,
        "agent": [
            sender,
            {
                "type": {"coding": [coding(DCM, "110152", "Destination Role ID")]},
                "who": {"display": "Charaka HL7 v2 bridge"},
                "requestor": false,
            }
        ],
        "source": source(),
        "entity": entities,
    });
    if outcome != "0" {
        event["outcomeDesc"] = json!(format!("acknowledged {}", f.ack_code));
    }
    event
}

/// An authentication event: a sign-in on the login page or a token
/// request.
pub struct AuthFacts<'a> {
    /// `login` or `token`.
    pub kind: &'a str,
    /// The user name or client id the request claimed (may be unknown).
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub source: Option<IpAddr>,
    pub success: bool,
    /// Why it failed (no secrets).
    pub detail: Option<&'a str>,
    pub recorded: String,
}

pub fn auth_event(f: &AuthFacts<'_>) -> Value {
    let subtype = match f.kind {
        "login" => coding(DCM, "110122", "Login"),
        _ => coding(CHARAKA_SUBTYPE, "token", "Access token request"),
    };
    let network = f
        .source
        .map(|ip| json!({"address": ip.to_string(), "type": "2"}));
    let mut agents = Vec::new();
    if let Some(s) = f.subject {
        let mut user = json!({
            "type": {"coding": [coding(PARTICIPATION, "IRCP", "information recipient")]},
            "who": {"identifier": {"system": USER_SYSTEM, "value": s}},
            "altId": s,
            "requestor": true,
        });
        if let Some(n) = &network {
            user["network"] = n.clone();
        }
        agents.push(user);
    }
    let mut client = json!({
        "type": {"coding": [coding(DCM, "110153", "Source Role ID")]},
        "requestor": f.subject.is_none(),
        "who": match f.client_id {
            Some(c) => json!({"identifier": {"system": CLIENT_SYSTEM, "value": c}}),
            None => json!({"display": "unknown client"}),
        },
    });
    if let Some(n) = &network {
        client["network"] = n.clone();
    }
    agents.push(client);
    let mut event = json!({
        "resourceType": "AuditEvent",
        "type": coding(DCM, "110114", "User Authentication"),
        "subtype": [subtype],
        "action": "E",
        "recorded": f.recorded,
        "outcome": if f.success { "0" } else { "4" },
        "agent": agents,
        "source": source(),
    });
    if let Some(d) = f.detail {
        event["outcomeDesc"] = json!(d);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_interactions() {
        let c = |m, p| classify(m, p).map(|i| (i.code, i.action));
        assert_eq!(c("GET", "/Patient/1"), Some(("read", "R")));
        assert_eq!(c("GET", "/Patient/1/_history/2"), Some(("vread", "R")));
        assert_eq!(c("GET", "/Observation"), Some(("search-type", "E")));
        assert_eq!(
            c("POST", "/Observation/_search"),
            Some(("search-type", "E"))
        );
        assert_eq!(c("POST", "/Observation"), Some(("create", "C")));
        assert_eq!(c("PUT", "/Observation/1"), Some(("update", "U")));
        assert_eq!(c("DELETE", "/Observation/1"), Some(("delete", "D")));
        assert_eq!(c("GET", "/Patient/1/$everything"), Some(("operation", "E")));
        assert_eq!(c("GET", "/Patient/$everything"), Some(("operation", "E")));
        assert_eq!(c("POST", "/Patient/$everything"), Some(("operation", "E")));
        assert_eq!(
            c("GET", "/Encounter/1/$everything"),
            Some(("operation", "E"))
        );
        assert_eq!(
            classify("GET", "/Patient/1/$everything")
                .unwrap()
                .patient
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            c("GET", "/Patient/1/Observation"),
            Some(("search-type", "E"))
        );
        assert_eq!(c("POST", ""), Some(("transaction", "E")));
        assert_eq!(c("GET", "/metadata"), None);
        assert_eq!(
            classify("GET", "/Patient/7/Observation")
                .unwrap()
                .patient
                .as_deref(),
            Some("7")
        );
    }

    #[test]
    fn finds_patients_in_queries() {
        assert_eq!(
            patients_in_query(
                "/Observation",
                "patient=1,Patient/2&subject=Patient/3&code=x"
            ),
            vec!["1", "2", "3"]
        );
        assert_eq!(patients_in_query("/Patient", "_id=9"), vec!["9"]);
        assert!(patients_in_query("/Observation", "subject=Group/1").is_empty());
        assert_eq!(
            patients_in_query(
                "/Observation",
                "_filter=subject%20re%20Patient%2F7%20or%20(patient%20eq%208%20and%20code%20eq%20x)"
            ),
            vec!["7", "8"]
        );
        assert_eq!(
            patients_in_query("/Patient", "_filter=_id%20eq%203"),
            vec!["3"]
        );
    }
}
