//! The pipeline every message takes, from MLLP or HTTP:
//! parse → check → map → store (apply and log in one commit) → acknowledge.
//!
//! - `AA` only once the transaction and the log row have committed;
//! - `AE` (with ERR) when the message is understood but cannot be applied:
//!   a required field missing, a value of the wrong type, a merge naming an
//!   unknown patient, a resource the FHIR rules refuse. Nothing is written
//!   but the log row, with status `failed`, which `charaka hl7 replay` can
//!   apply later;
//! - `AR` for what cannot be understood: unparseable messages, unsupported
//!   types, events or versions (log status `rejected`);
//! - a message already seen (same sender MSH-3/MSH-4 and control id MSH-10)
//!   is answered with its original ACK and not applied again;
//! - over mutual TLS with the sender binding on (`peer::check_sender`), a
//!   message whose MSH-3/MSH-4 do not name the client certificate gets `AR`
//!   before anything else is checked, and is logged without its control id,
//!   so that it neither answers for nor blocks the named sender's own
//!   message with that id.
//!
//! When the database cannot be reached no ACK is produced (`Unavailable`):
//! the MLLP connection is closed and HTTP answers 503, so the sender
//! retries and nothing is lost. Message content is never logged.

use serde_json::Value;

use super::ack::{self, AckCode, ErrorCode, Failure, Header, Location};
use super::map::{self, Context};
use super::message::Message;
use super::peer::{self, Client};
use crate::error::FhirError;
use crate::service::messages::{Applied, Inbound, Recorded};
use crate::service::Fhir;

/// The versions accepted (MSH-12).
pub const VERSIONS: &[&str] = &[
    "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2",
];

/// The database could not record the message; no ACK was produced.
#[derive(Debug)]
pub struct Unavailable(pub FhirError);

/// The result of one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ack: Vec<u8>,
    pub code: AckCode,
    /// The log row (None for a duplicate answered from the log).
    pub id: Option<i64>,
    pub duplicate: bool,
}

fn now_ts() -> String {
    chrono::Utc::now().format("%Y%m%d%H%M%S+0000").to_string()
}

fn ack_id(received: i64) -> String {
    format!("C{received}")
}

fn sender_of(message: &Message) -> String {
    let msh = message.msh();
    format!("{}|{}", msh.get(3).comp(1), msh.get(4).comp(1))
}

/// Checks what can be checked before mapping: version and type.
fn check(message: &Message) -> Result<(), Failure> {
    let version = message.version();
    if !VERSIONS.contains(&version.as_str()) {
        return Err(Failure::reject(
            ErrorCode::UnsupportedVersion,
            Some(Location::new("MSH", 1, 12)),
            format!("version `{version}` is not supported (2.3 to 2.8)"),
        ));
    }
    if message.control_id().is_empty() {
        return Err(Failure::reject(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("MSH", 1, 10)),
            "MSH-10 (message control id) is required",
        ));
    }
    let (code, trigger, _) = message.message_type();
    map::supported(&code, &trigger)
}

/// The AE for a transaction the FHIR rules refused.
fn failure_of(err: &FhirError) -> Failure {
    let text = err
        .issues
        .first()
        .map(|i| i.diagnostics.clone())
        .unwrap_or_else(|| "the message could not be applied".into());
    let code = match err.status {
        404 | 410 | 412 => ErrorCode::UnknownKey,
        400 | 422 => ErrorCode::DataType,
        _ => ErrorCode::InternalError,
    };
    Failure::error(code, None, text)
}

/// The sender binding of a message from `client` (None: not over mutual
/// TLS) whose MSH-3/MSH-4 first components are `application` and
/// `facility`.
fn sender_binding(
    client: Option<&Client>,
    application: &str,
    facility: &str,
) -> Result<(), Failure> {
    let Some(client) = client else {
        return Ok(());
    };
    peer::check_sender(client, application, facility).inspect_err(|_| {
        tracing::warn!(
            certificate = %client.identity.summary(),
            "HL7 v2 message refused: MSH-3/MSH-4 do not name the client certificate; logged as rejected"
        )
    })
}

/// MSH-3/MSH-4 first components of a header read by position (the
/// default encoding: `Header::guess` keeps no other).
fn guessed_sender(header: &Header) -> (String, String) {
    let first = |v: &str| v.split('^').next().unwrap_or("").to_string();
    (first(&header.sending_app), first(&header.sending_facility))
}

/// Where a message came from: its network peer, and the mutual-TLS client
/// (MLLP over TLS with client certificates) or the OAuth client (HTTP) that
/// sent it. Empty for a replay. Checked for the sender binding and written
/// to the message's audit record.
#[derive(Clone, Copy, Default)]
pub struct Peer<'a> {
    pub client: Option<&'a Client>,
    pub address: Option<std::net::IpAddr>,
    pub client_id: Option<&'a str>,
}

/// Handles one message from `peer`; `replay_of` names a logged message
/// applied again.
pub async fn handle(
    fhir: &Fhir,
    raw: &[u8],
    peer: Peer<'_>,
    replay_of: Option<i64>,
) -> Result<Outcome, Unavailable> {
    let client = peer.client;
    let received = crate::fhir::datetime::now_micros();
    let timestamp = now_ts();
    let peer_identity = client.map(|c| c.identity.summary());
    let peer_identity = peer_identity.as_deref();
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(err) => {
            let header = Header::guess(raw);
            let (application, facility) = guessed_sender(&header);
            let binding = sender_binding(client, &application, &facility);
            let bound = binding.is_ok();
            let failure = binding.err().unwrap_or_else(|| {
                Failure::reject(ErrorCode::SegmentSequence, None, err.0.clone())
            });
            let sender = format!("{}|{}", header.sending_app, header.sending_facility);
            let control =
                (bound && !header.control_id.is_empty()).then(|| header.control_id.clone());
            let inbound = Inbound {
                sender: &sender,
                control_id: control.as_deref(),
                message_type: "",
                received,
                raw,
                peer_identity,
                peer_address: peer.address,
                client_id: peer.client_id,
            };
            return record(
                fhir, &inbound, &header, failure, replay_of, received, &timestamp,
            )
            .await;
        }
    };
    let header = Header::of(&message);
    let sender = sender_of(&message);
    let msh = message.msh();
    let binding = sender_binding(client, &msh.get(3).comp(1), &msh.get(4).comp(1));
    let control = message.control_id();
    let (code, trigger, _) = message.message_type();
    let message_type = format!("{code}^{trigger}");
    let inbound = Inbound {
        sender: &sender,
        control_id: (binding.is_ok() && !control.is_empty()).then_some(control.as_str()),
        message_type: &message_type,
        received,
        raw,
        peer_identity,
        peer_address: peer.address,
        client_id: peer.client_id,
    };
    let processing = |m: &Message| ack::check_processing_id(m, &fhir.hl7v2_processing_ids);
    if let Err(failure) = binding
        .and_then(|()| check(&message))
        .and_then(|()| processing(&message))
    {
        return record(
            fhir, &inbound, &header, failure, replay_of, received, &timestamp,
        )
        .await;
    }
    let mut context = Context::default();
    if code == "ADT" && trigger == "A40" {
        if let Some((system, value)) = map::adt::merge_prior_key(&message) {
            context.prior_patient = fhir
                .patient_by_identifier(&system, &value)
                .await
                .map_err(Unavailable)?;
        }
    }
    let recorded = crate::fhir::datetime::format_instant(received);
    let bundle: Value = match map::map(&message, &context, &recorded) {
        Ok(b) => b,
        Err(failure) => {
            return record(
                fhir, &inbound, &header, failure, replay_of, received, &timestamp,
            )
            .await
        }
    };
    let ack = ack::build(
        &header,
        AckCode::Accept,
        None,
        &ack_id(received),
        &timestamp,
    );
    match fhir
        .apply_message(&inbound, &bundle, &ack, replay_of)
        .await
        .map_err(Unavailable)?
    {
        Applied::Committed { id, .. } => Ok(Outcome {
            ack,
            code: AckCode::Accept,
            id: Some(id),
            duplicate: false,
        }),
        Applied::Duplicate { ack } => Ok(duplicate(ack)),
        Applied::Failed(err) => {
            let failure = failure_of(&err);
            record(
                fhir, &inbound, &header, failure, replay_of, received, &timestamp,
            )
            .await
        }
    }
}

fn duplicate(ack: Vec<u8>) -> Outcome {
    let code = if ack
        .windows(6)
        .any(|w| &w[..3] == b"MSA" && &w[4..6] == b"AA")
    {
        AckCode::Accept
    } else if ack
        .windows(6)
        .any(|w| &w[..3] == b"MSA" && &w[4..6] == b"AR")
    {
        AckCode::Reject
    } else {
        AckCode::Error
    };
    Outcome {
        ack,
        code,
        id: None,
        duplicate: true,
    }
}

/// Logs a message that was not applied and builds its AE/AR.
async fn record(
    fhir: &Fhir,
    inbound: &Inbound<'_>,
    header: &Header,
    failure: Failure,
    replay_of: Option<i64>,
    received: i64,
    timestamp: &str,
) -> Result<Outcome, Unavailable> {
    let ack = ack::build(
        header,
        failure.ack,
        Some(&failure),
        &ack_id(received),
        timestamp,
    );
    let status = if failure.ack == AckCode::Reject {
        "rejected"
    } else {
        "failed"
    };
    let error = failure.summary();
    match fhir
        .record_message(
            inbound,
            status,
            failure.ack.as_str(),
            &ack,
            &error,
            replay_of,
        )
        .await
        .map_err(Unavailable)?
    {
        Recorded::Stored(id) => Ok(Outcome {
            ack,
            code: failure.ack,
            id: Some(id),
            duplicate: false,
        }),
        Recorded::Duplicate { ack } => Ok(duplicate(ack)),
    }
}

/// Marks the log row of a message cut at the size limit (its error text);
/// such a row is never replayed, since what is stored is not the whole
/// message.
pub const OVERSIZE: &str = "the message exceeds the maximum message size";

/// The answer to a message over the size limit.
#[derive(Debug, Clone)]
pub struct Oversize {
    /// The AR (error 207), or the original ACK of a message seen before.
    pub ack: Vec<u8>,
    /// Whether the message starts with an MSH segment (or was seen before):
    /// otherwise there is nothing to acknowledge to, and MLLP sends no ACK
    /// (HTTP still answers the AR, as it does for any unparseable body).
    pub acknowledge: bool,
}

/// Logs a message over the size limit (an MLLP frame or an HTTP body, both
/// bounded by `mllp_max_message_bytes`) as a rejected message (`head`: the
/// raw bytes as far as the limit; status `rejected`, listed by `charaka hl7
/// list --failed`) and builds its AR (error 207). A message seen before
/// (same sender and control id) gets its original ACK. From a `client`
/// bound to its certificate whose MSH-3/MSH-4 name another, the binding's
/// AR instead, as in `handle`.
pub async fn oversize(fhir: &Fhir, head: &[u8], peer: Peer<'_>) -> Result<Oversize, Unavailable> {
    let client = peer.client;
    let received = crate::fhir::datetime::now_micros();
    let header = Header::guess(head);
    let has_msh = head.starts_with(b"MSH") && head.len() > 8;
    let (application, facility) = guessed_sender(&header);
    let binding = sender_binding(client, &application, &facility);
    let bound = binding.is_ok();
    let failure = binding.err().unwrap_or_else(|| {
        Failure::reject(
            ErrorCode::InternalError,
            None,
            format!("{OVERSIZE} ({} bytes); it was not applied", head.len()),
        )
    });
    let ack = ack::build(
        &header,
        AckCode::Reject,
        Some(&failure),
        &ack_id(received),
        &now_ts(),
    );
    let first = |v: &str| v.split('^').next().unwrap_or("").to_string();
    let sender = format!(
        "{}|{}",
        first(&header.sending_app),
        first(&header.sending_facility)
    );
    let message_type = if has_msh {
        message_type_of(head)
    } else {
        String::new()
    };
    let control = (bound && !header.control_id.is_empty()).then(|| header.control_id.clone());
    let peer_identity = client.map(|c| c.identity.summary());
    let inbound = Inbound {
        sender: &sender,
        control_id: control.as_deref(),
        message_type: &message_type,
        received,
        raw: head,
        peer_identity: peer_identity.as_deref(),
        peer_address: peer.address,
        client_id: peer.client_id,
    };
    let error = failure.summary();
    match fhir
        .record_message(&inbound, "rejected", "AR", &ack, &error, None)
        .await
        .map_err(Unavailable)?
    {
        Recorded::Stored(_) => Ok(Oversize {
            ack,
            acknowledge: has_msh,
        }),
        Recorded::Duplicate { ack } => Ok(Oversize {
            ack,
            acknowledge: true,
        }),
    }
}

/// MSH-9 code^trigger of a cut message's first segment, read by position
/// (the message is not parsed: it is cut); only letters and digits kept.
fn message_type_of(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]);
    let first = text.split(['\r', '\n']).next().unwrap_or("");
    let sep = first[3..].chars().next().unwrap_or('|');
    let nine = first.split(sep).nth(8).unwrap_or("");
    let parts: Vec<String> = nine
        .split('^')
        .take(2)
        .map(|p| {
            p.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(3)
                .collect()
        })
        .collect();
    parts.join("^")
}

/// Applies a logged message again (after the cause of its failure was
/// fixed); its row records the new outcome.
pub async fn replay(fhir: &Fhir, id: i64) -> Result<Outcome, FhirError> {
    let stored = fhir
        .get_message(id)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("no HL7 v2 message {id}")))?;
    if stored.status == "applied" {
        return Err(FhirError::conflict(format!(
            "HL7 v2 message {id} is already applied"
        )));
    }
    if stored
        .error
        .as_deref()
        .is_some_and(|e| e.contains(OVERSIZE))
    {
        return Err(FhirError::conflict(format!(
            "HL7 v2 message {id} was cut at the size limit; the sender must send it again"
        )));
    }
    if stored
        .error
        .as_deref()
        .is_some_and(|e| e.contains(peer::NOT_BOUND))
    {
        // A replay has no client certificate to check the sender against.
        return Err(FhirError::conflict(format!(
            "HL7 v2 message {id} was refused because its sender (MSH-3/MSH-4) does not name \
             the client certificate it came with; the named sender must send it over its own \
             connection"
        )));
    }
    let raw = stored.raw.unwrap_or_default();
    handle(fhir, &raw, Peer::default(), Some(id))
        .await
        .map_err(|u| u.0)
}

#[cfg(test)]
mod tests {
    use super::message_type_of;

    #[test]
    fn message_type_of_a_cut_frame() {
        assert_eq!(
            message_type_of(b"MSH|^~\\&|A|B|C|D|2024||ADT^A04^ADT_A01|X|P|2.5\rPID|1|xxxx"),
            "ADT^A04"
        );
        assert_eq!(message_type_of(b"MSH|^~\\&|A|B|C|D|2024||<b>^A04"), "b^A04");
        assert_eq!(message_type_of(b"MSH|^~\\&|A"), "");
    }
}
