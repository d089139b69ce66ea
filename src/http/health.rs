//! Health checks for load balancers: liveness (the process answers) and
//! readiness (the database answers).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::negotiate::Format;
use super::response::error;
use super::App;
use crate::error::FhirError;

pub async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.fhir.store.ping().await {
        Ok(()) => {
            let p = app.fhir.reindex_job.progress();
            let index = if p.running {
                format!("rebuilding ({} of {})", p.processed, p.total)
            } else {
                "current".to_string()
            };
            Json(json!({"status": "ok", "searchIndex": index})).into_response()
        }
        Err(err) => error(FhirError::from(err), Format::Json),
    }
}
