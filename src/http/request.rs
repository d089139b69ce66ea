//! What every FHIR request carries besides its path: query parameters, the
//! response shape (`_format`, `_pretty`, `_summary`, `_elements`), and the
//! headers the interactions read (Prefer, If-Match, If-None-Exist, ...).

use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;
use http::HeaderMap;
use serde_json::Value;

use super::negotiate::{body_kind, response_format, BodyKind, Format};
use super::response::{error, Shape};
use crate::error::{FhirError, FhirResult};
use crate::fhir::outcome::IssueType;
use crate::fhir::summary::Summary;
use crate::service::input::parse_json;

pub struct FhirRequest {
    pub params: Vec<(String, String)>,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub shape: Shape,
    /// The caller, attached by the bearer-token check.
    access: Option<std::sync::Arc<crate::auth::Access>>,
}

/// `Prefer: return=...` (http://hl7.org/fhir/R4/http.html#ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn shape(params: &[(String, String)], headers: &HeaderMap) -> FhirResult<Shape> {
    let format = response_format(param(params, "_format"), headers)?;
    let pretty = match param(params, "_pretty") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(FhirError::invalid(format!(
                "_pretty must be true or false, not `{other}`"
            )))
        }
    };
    let summary = param(params, "_summary")
        .map(|s| {
            Summary::parse(s).ok_or_else(|| {
                FhirError::invalid(format!(
                    "_summary must be true, text, data, count or false, not `{s}`"
                ))
            })
        })
        .transpose()?;
    let elements = param(params, "_elements").map(|list| {
        list.split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect()
    });
    Ok(Shape {
        format,
        pretty,
        summary,
        elements,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for FhirRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw_query = parts.uri.query().unwrap_or("").to_string();
        let params: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let shape = shape(&params, &parts.headers).map_err(|e| error(e, Format::Json))?;
        Ok(FhirRequest {
            params,
            raw_query,
            headers: parts.headers.clone(),
            shape,
            access: parts
                .extensions
                .get::<std::sync::Arc<crate::auth::Access>>()
                .cloned(),
        })
    }
}

impl FhirRequest {
    /// The caller; every FHIR route passes the token check, so a request
    /// without one is refused rather than served.
    pub fn access(&self) -> FhirResult<&crate::auth::Access> {
        self.access.as_deref().ok_or_else(|| {
            FhirError::new(
                401,
                IssueType::Login,
                "this request carries no valid access token",
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn prefer_return(&self) -> Return {
        let prefer = self.header("prefer").unwrap_or("");
        for token in prefer.split([',', ';']) {
            match token
                .trim()
                .strip_prefix("return=")
                .map(|v| v.trim_matches('"'))
            {
                Some("minimal") => return Return::Minimal,
                Some("OperationOutcome") => return Return::OperationOutcome,
                Some("representation") => return Return::Representation,
                _ => {}
            }
        }
        Return::Representation
    }

    /// `If-Match: W/"3"` → 3.
    pub fn if_match(&self) -> FhirResult<Option<i64>> {
        let Some(value) = self.header("if-match") else {
            return Ok(None);
        };
        parse_etag(value).map(Some).ok_or_else(|| {
            FhirError::invalid(format!(
                "If-Match `{value}` is not a version ETag such as W/\"3\""
            ))
        })
    }

    /// The body as a FHIR resource in JSON (XML bodies are converted).
    pub fn resource_body(&self, body: &[u8]) -> FhirResult<Value> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(FhirError::bad_request(
                IssueType::Required,
                "the request has no body",
            ));
        }
        match body_kind(&self.headers, body)? {
            BodyKind::Fhir(Format::Json) => parse_json(body),
            BodyKind::Fhir(Format::Xml) => crate::fhir::xml::xml_to_json(body).map_err(|e| {
                FhirError::bad_request(
                    IssueType::Structure,
                    format!("the body is not valid FHIR XML: {e}"),
                )
            }),
            BodyKind::JsonPatch => Err(FhirError::unsupported_media_type(
                "a JSON Patch body is only accepted by PATCH",
            )),
        }
    }
}

pub use crate::service::parse_etag;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etags() {
        assert_eq!(parse_etag("W/\"3\""), Some(3));
        assert_eq!(parse_etag("\"12\""), Some(12));
        assert_eq!(parse_etag("7"), Some(7));
        assert_eq!(parse_etag("W/\"x\""), None);
        assert_eq!(parse_etag("W/\"0\""), None);
    }
}
