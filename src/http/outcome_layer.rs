//! Makes sure every error leaves as an OperationOutcome, including the ones
//! axum produces itself (unknown paths, wrong methods, oversized bodies,
//! unreadable bodies).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::CONTENT_TYPE;
use http::{Method, StatusCode, Uri};

use super::negotiate::Format;
use super::response::error;
use crate::error::FhirError;
use crate::fhir::outcome::IssueType;

/// Largest axum error text read back into an OperationOutcome.
const MAX_ERROR_TEXT: usize = 4096;

pub async fn ensure_outcome(request: Request, next: Next) -> Response {
    // The authorization server answers OAuth errors in OAuth's own JSON.
    let oauth = request.uri().path().starts_with("/auth/");
    let response = next.run(request).await;
    if oauth {
        return response;
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_fhir = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/fhir+"));
    if is_fhir {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match parts.status {
        StatusCode::PAYLOAD_TOO_LARGE => IssueType::TooLong,
        StatusCode::NOT_FOUND => IssueType::NotFound,
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            IssueType::NotSupported
        }
        s if s.is_server_error() => IssueType::Exception,
        _ => IssueType::Invalid,
    };
    let diagnostics = match parts.status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the server accepts".to_string()
        }
        _ if text.is_empty() => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string(),
        _ => text,
    };
    let mut rendered = error(
        FhirError::new(parts.status.as_u16(), code, diagnostics),
        Format::Json,
    );
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

pub async fn not_found(uri: Uri) -> Response {
    error(
        FhirError::not_found(format!("there is nothing at `{}`", uri.path())),
        Format::Json,
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let hint = if method == Method::GET && path.matches('/').count() == 2 {
        " (search is not supported yet)"
    } else {
        ""
    };
    error(
        FhirError::new(
            405,
            IssueType::NotSupported,
            format!("{method} is not supported on `{path}`{hint}"),
        ),
        Format::Json,
    )
}
