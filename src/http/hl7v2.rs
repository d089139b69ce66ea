//! HTTP edge of the HL7 v2 bridge: `POST [base]/$hl7v2-ingest` (one ER7
//! message in, its ACK out), `GET [base]/$hl7v2-messages` (the message log;
//! `?status=failed|rejected|applied`, `_count`; each row with the client
//! certificate of a mutual-TLS MLLP message, `peerIdentity`) and
//! `POST [base]/$hl7v2-replay?id=N`. Thin: the pipeline is `hl7v2::ingest`.
//!
//! The ingest body is bounded by `mllp_max_message_bytes`, as an MLLP frame
//! is (not by the general `max_body_bytes`): it is read only as far as the
//! limit, and a longer one is logged and answered as MLLP does
//! (`ingest::oversize`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::response::error;
use super::App;
use crate::error::FhirError;
use crate::hl7v2::ingest;

/// The media type of ER7-encoded messages.
pub const ER7: &str = "x-application/hl7-v2+er7";

fn fail(err: FhirError) -> Response {
    error(err, crate::http::negotiate::Format::Json)
}

fn ack_response(ack: Vec<u8>) -> Response {
    (StatusCode::OK, [(http::header::CONTENT_TYPE, ER7)], ack).into_response()
}

/// The caller attached by the bearer check; feeds and the message log need
/// a system feed scope (see `Fhir::permit_feed`) or an administrator.
fn feed_access(
    app: &App,
    access: Option<&axum::Extension<Arc<crate::auth::Access>>>,
    admin_only: bool,
) -> Result<(), FhirError> {
    let Some(axum::Extension(access)) = access else {
        return Err(FhirError::new(
            401,
            crate::fhir::outcome::IssueType::Login,
            "this request carries no valid access token",
        ));
    };
    if admin_only {
        app.fhir.permit_admin(access, "the HL7 v2 message log")
    } else {
        app.fhir.permit_feed(access)
    }
}

/// A request body read as far as a limit.
enum Read {
    Whole(Vec<u8>),
    /// Longer than the limit: its first `limit` bytes (the rest is not read).
    TooLarge(Vec<u8>),
}

/// Reads `body`, holding at most `limit` + one chunk in memory.
async fn read_limited(body: Body, limit: usize) -> Result<Read, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() > limit {
            buf.truncate(limit);
            return Ok(Read::TooLarge(buf));
        }
    }
    Ok(Read::Whole(buf))
}

/// Where a message sent over HTTP comes from: the request's address and
/// the OAuth client of its token.
fn peer(access: Option<&axum::Extension<Arc<crate::auth::Access>>>) -> ingest::Peer<'_> {
    ingest::Peer {
        client: None,
        address: crate::audit::current().and_then(|slot| slot.request.source),
        client_id: access.and_then(|a| a.client_id.as_deref()),
    }
}

fn not_stored(err: FhirError) -> Response {
    fail(FhirError::unavailable(format!(
        "the message was not stored; send it again ({})",
        err.status
    )))
}

pub async fn ingest(
    State(app): State<Arc<App>>,
    access: Option<axum::Extension<Arc<crate::auth::Access>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = feed_access(&app, access.as_ref(), false) {
        return fail(e);
    }
    let media = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        media.as_str(),
        ER7 | "text/plain" | "application/hl7-v2" | "application/edi-hl7"
    ) {
        return fail(FhirError::unsupported_media_type(format!(
            "send the message as {ER7} or text/plain"
        )));
    }
    let body = match read_limited(body, app.fhir.hl7v2_max_message_bytes).await {
        Ok(Read::Whole(body)) => body,
        Ok(Read::TooLarge(head)) => {
            tracing::warn!("HL7 v2 HTTP body over the size limit; logged as rejected");
            return match ingest::oversize(&app.fhir, &head, peer(access.as_ref())).await {
                Ok(answer) => ack_response(answer.ack),
                Err(ingest::Unavailable(err)) => not_stored(err),
            };
        }
        Err(err) => {
            return fail(FhirError::invalid(format!(
                "the request body could not be read: {err}"
            )))
        }
    };
    // No client certificate over HTTP: the log row's peer identity is empty.
    match ingest::handle(&app.fhir, &body, peer(access.as_ref()), None).await {
        Ok(outcome) => ack_response(outcome.ack),
        Err(ingest::Unavailable(err)) => not_stored(err),
    }
}

pub async fn list(
    State(app): State<Arc<App>>,
    access: Option<axum::Extension<Arc<crate::auth::Access>>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = feed_access(&app, access.as_ref(), true) {
        return fail(e);
    }
    let mut status = None;
    let mut limit = 100;
    for (k, v) in &params {
        match k.as_str() {
            "status" => status = Some(v.clone()),
            "_count" => match app.fhir.page_size(v) {
                Ok(n) => limit = n,
                Err(e) => return fail(e),
            },
            _ => {}
        }
    }
    match app.fhir.list_messages(status.as_deref(), limit).await {
        Ok(rows) => {
            let items: Vec<_> = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "sender": r.sender,
                        "controlId": r.control_id,
                        "messageType": r.message_type,
                        "received": crate::fhir::datetime::format_instant(r.received),
                        "status": r.status,
                        "ack": r.ack_code,
                        "error": r.error,
                        "resources": r.resources.map(|s| s.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>()),
                        "attempts": r.attempts,
                        "peerIdentity": r.peer_identity,
                    })
                })
                .collect();
            axum::Json(json!({ "messages": items })).into_response()
        }
        Err(e) => fail(e),
    }
}

pub async fn replay(
    State(app): State<Arc<App>>,
    access: Option<axum::Extension<Arc<crate::auth::Access>>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = feed_access(&app, access.as_ref(), true) {
        return fail(e);
    }
    let Some(id) = params
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<i64>().ok())
    else {
        return fail(FhirError::invalid("give the message id: ?id=N"));
    };
    match ingest::replay(&app.fhir, id).await {
        Ok(outcome) => ack_response(outcome.ack),
        Err(e) => fail(e),
    }
}
