//! The HTTP edge: the axum router, content negotiation, and rendering. Thin:
//! it translates requests into service calls and results into responses.
//!
//! Request flow: request id → security headers → CORS → trace span →
//! per-address rate limit → time limit → body limit → router → token check
//! → per-client rate limit → handler
//! (`handlers`) → service (`crate::service`) → store; errors of any layer
//! (including axum's own rejections) leave as OperationOutcomes.

mod audit;
mod auth;
pub mod client_addr;
pub mod guard;
mod handlers;
mod health;
mod hl7v2;
mod negotiate;
mod outcome_layer;
pub mod rate_limit;
mod request;
mod response;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use http::Request;
use serde_json::Value;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::service::Fhir;

/// Shared state of all handlers.
pub struct App {
    pub fhir: Arc<Fhir>,
    /// Records interactions that write nothing (reads, searches, refusals,
    /// sign-ins) in the audit trail.
    pub audit: crate::audit::writer::AuditWriter,
    /// The CapabilityStatement, generated once at start.
    pub capabilities: Value,
    /// The SMART authorization server.
    pub auth: crate::auth::Auth,
    /// Rate limits, time limit, security headers, CORS (`guard`).
    pub guard: Arc<guard::Guard>,
}

impl AsRef<Fhir> for App {
    fn as_ref(&self) -> &Fhir {
        &self.fhir
    }
}

/// The URL prefix of the FHIR API.
pub const FHIR_PREFIX: &str = "/fhir";

/// Builds the router with every route and layer.
pub fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    use handlers::*;
    let guard = app.guard.clone();
    let fhir = Router::new()
        .route("/metadata", get(metadata))
        .route("/$hl7v2-ingest", axum::routing::post(hl7v2::ingest))
        .route("/$hl7v2-messages", get(hl7v2::list))
        .route("/$hl7v2-replay", axum::routing::post(hl7v2::replay))
        .route("/_history", get(history_system))
        .route(
            "/{rtype}",
            get(search_type)
                .post(create)
                .put(conditional_update)
                .patch(conditional_patch)
                .delete(conditional_delete),
        )
        .route("/{rtype}/_history", get(history_type))
        .route(
            "/{rtype}/{id}",
            get(read)
                .put(update)
                .patch(patch)
                .delete(delete)
                .post(type_operation),
        )
        .route(
            "/{rtype}/{id}/{op}",
            get(instance_operation).post(instance_operation),
        )
        .route("/{rtype}/{id}/_history", get(history_instance))
        .route("/{rtype}/{id}/_history/{vid}", get(vread));

    let fhir = fhir
        .route(
            "/.well-known/smart-configuration",
            get(auth::smart_configuration),
        )
        .route(
            "/.well-known/openid-configuration",
            get(auth::openid_configuration),
        );
    let api = Router::new()
        .route(FHIR_PREFIX, get(search_system).post(transaction))
        .route("/fhir/", get(search_system).post(transaction))
        .nest(FHIR_PREFIX, fhir)
        .route_layer(axum::middleware::from_fn_with_state(
            guard.limits.clone(),
            rate_limit::per_client,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_token,
        ))
        // Outside the token check, so refused requests are recorded too.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            audit::record,
        ));
    let authorization = Router::new()
        .route(
            "/auth/authorize",
            get(auth::authorize_get).post(auth::authorize_post),
        )
        .route(
            "/auth/account",
            get(auth::account_get).post(auth::account_post),
        )
        .route(
            "/auth/mfa/setup",
            get(auth::mfa_setup_get).post(auth::mfa_setup_post),
        )
        .route(
            "/auth/consents",
            get(auth::consents_get).post(auth::consents_post),
        )
        .route("/auth/jwks", get(auth::jwks))
        .route("/auth/token", post(auth::token))
        .route("/auth/introspect", post(auth::introspect))
        .route("/auth/revoke", post(auth::revoke))
        .route("/auth/register", post(auth::register))
        .route("/auth/launch", post(auth::launch));

    Router::new()
        .merge(api)
        .merge(authorization)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(outcome_layer::not_found)
        .method_not_allowed_fallback(outcome_layer::method_not_allowed)
        .with_state(app)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            guard::time_limit,
        ))
        // A panic in a handler becomes a 500 (then an OperationOutcome)
        // instead of a dropped connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            guard.limits.clone(),
            rate_limit::per_address,
        ))
        .layer(axum::middleware::from_fn(outcome_layer::ensure_outcome))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    // Method and path only: query strings can carry PHI.
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_response(
                    |response: &http::Response<_>, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            micros = latency.as_micros() as u64,
                            "done"
                        );
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        // Browser apps on other origins (SMART): the allowed origins may
        // call the API, the token endpoint and discovery.
        .layer(guard::cors_layer(guard.cors.clone()))
        // On every response, preflights included.
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            guard::security_headers,
        ))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // First of all: the client's address behind trusted proxies.
        .layer(axum::middleware::from_fn_with_state(
            guard.trusted_proxies.clone(),
            client_addr::resolve,
        ))
}
