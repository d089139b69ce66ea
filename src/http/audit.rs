//! The audit layer: opens the audit slot of every FHIR request, runs the
//! request inside it, and, unless the request's writes were recorded in
//! their own transaction, records it through the audit writer before the
//! response leaves. If the record cannot be written the client gets 503,
//! not the data: an answered request is always on record.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::{App, FHIR_PREFIX};
use crate::audit::event::{self, RestFacts};
use crate::audit::{AuditSlot, RequestFacts};

pub async fn record(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    if !app.audit.enabled() {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let path = path.strip_prefix(FHIR_PREFIX).unwrap_or(path).to_string();
    let method = request.method().as_str().to_string();
    let Some(interaction) = event::classify(&method, &path) else {
        return next.run(request).await;
    };
    let facts = RequestFacts {
        method,
        query: request.uri().query().map(str::to_string),
        source: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        request_id: request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        path,
    };
    let slot = Arc::new(AuditSlot::new(facts));
    request.extensions_mut().insert(slot.clone());
    let response = crate::audit::context::scope(slot.clone(), next.run(request)).await;
    if slot.is_recorded() {
        return response;
    }
    let access = slot.access();
    let mut interaction = interaction;
    if let Some(code) = slot.subtype() {
        interaction.code = code;
    }
    let mut patients = slot.patients();
    patients.extend(interaction.patient.clone());
    patients.extend(access.as_ref().and_then(|a| a.patient.clone()));
    if let Some(q) = &slot.request.query {
        patients.extend(event::patients_in_query(&slot.request.path, q));
    }
    patients.sort();
    patients.dedup();
    let entities = slot.entities();
    let event = event::rest_event(&RestFacts {
        request: &slot.request,
        interaction: &interaction,
        access: access.as_deref(),
        status: response.status().as_u16(),
        recorded: crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
        entities: &entities,
        patients: &patients,
    });
    match app.audit.record(event).await {
        Ok(()) => response,
        Err(err) => super::response::error(err, super::negotiate::Format::Json),
    }
}
