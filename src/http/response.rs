//! Rendering answers: resources with their headers (ETag, Last-Modified,
//! Location), Bundles, and OperationOutcomes, in the negotiated format, with
//! `_pretty`, `_summary` and `_elements` applied. A plain JSON read serves the
//! stored bytes untouched.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION};
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::negotiate::Format;
use crate::error::FhirError;
use crate::fhir::datetime::format_http_date;
use crate::fhir::outcome::operation_outcome;
use crate::fhir::summary::{apply_elements, apply_summary, Summary};
use crate::service::VersionOut;

/// How the client asked for the response to be shaped.
#[derive(Debug, Clone)]
pub struct Shape {
    pub format: Format,
    pub pretty: bool,
    pub summary: Option<Summary>,
    pub elements: Option<Vec<String>>,
}

impl Shape {
    pub fn json() -> Shape {
        Shape {
            format: Format::Json,
            pretty: false,
            summary: None,
            elements: None,
        }
    }

    fn is_plain_json(&self) -> bool {
        self.format == Format::Json
            && !self.pretty
            && self.summary.is_none_or(|s| s == Summary::False)
            && self.elements.is_none()
    }

    /// Renders FHIR JSON (bytes) in this shape.
    pub fn render(&self, json: &Bytes, subset: bool) -> Result<Bytes, FhirError> {
        if self.is_plain_json() {
            return Ok(json.clone());
        }
        let mut value: Value = serde_json::from_slice(json)
            .map_err(|e| FhirError::internal(format!("stored JSON is unreadable: {e}")))?;
        if subset {
            if let Value::Object(obj) = &mut value {
                if let Some(summary) = self.summary {
                    apply_summary(obj, summary);
                } else if let Some(elements) = &self.elements {
                    let names: Vec<&str> = elements.iter().map(String::as_str).collect();
                    apply_elements(obj, &names);
                }
            }
        }
        self.render_value(&value)
    }

    /// Renders a JSON value in this shape (no subsetting).
    pub fn render_value(&self, value: &Value) -> Result<Bytes, FhirError> {
        match self.format {
            Format::Json if self.pretty => Ok(serde_json::to_vec_pretty(value)
                .expect("JSON values serialise")
                .into()),
            Format::Json => Ok(serde_json::to_vec(value)
                .expect("JSON values serialise")
                .into()),
            Format::Xml => {
                let json = serde_json::to_vec(value).expect("JSON values serialise");
                crate::fhir::xml::json_to_xml(&json)
                    .map(Bytes::from)
                    .map_err(|e| {
                        FhirError::internal(format!(
                            "the resource could not be rendered as XML: {e}"
                        ))
                    })
            }
        }
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub fn etag(version: i64) -> HeaderValue {
    header(&format!("W/\"{version}\""))
}

/// A response with a FHIR body.
pub fn fhir_body(status: StatusCode, format: Format, body: Bytes) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// Adds ETag and Last-Modified (and Location when given) for a version.
pub fn version_headers(response: &mut Response, v: &VersionOut, location: Option<&str>) {
    let headers = response.headers_mut();
    headers.insert(ETAG, etag(v.version));
    headers.insert(LAST_MODIFIED, header(&format_http_date(v.last_updated)));
    if let Some(base) = location {
        headers.insert(
            LOCATION,
            header(&format!(
                "{base}/{}/{}/_history/{}",
                v.rtype, v.id, v.version
            )),
        );
    }
}

/// A resource version as the body, with its headers.
pub fn resource(status: StatusCode, v: &VersionOut, shape: &Shape) -> Response {
    let Some(body) = &v.body else {
        return error(FhirError::internal("the version has no body"), shape.format);
    };
    match shape.render(body, true) {
        Ok(bytes) => {
            let mut response = fhir_body(status, shape.format, bytes);
            version_headers(&mut response, v, None);
            response
        }
        Err(err) => error(err, shape.format),
    }
}

/// An OperationOutcome built from the error, with its status.
pub fn error(err: FhirError, format: Format) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let outcome = operation_outcome(&err.issues);
    let shape = Shape {
        format,
        ..Shape::json()
    };
    let (format, body) = match shape.render_value(&outcome) {
        Ok(body) => (format, body),
        Err(_) => (
            Format::Json,
            serde_json::to_vec(&outcome).expect("serialises").into(),
        ),
    };
    let mut response = fhir_body(status, format, body);
    if let Some(version) = err.version {
        response.headers_mut().insert(ETAG, etag(version));
    }
    response
}
