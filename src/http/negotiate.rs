//! Content negotiation (http://hl7.org/fhir/R4/http.html#mime-type): the
//! response format from `_format` or `Accept`, and the request body format
//! from `Content-Type`.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::HeaderMap;

use crate::error::{FhirError, FhirResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }
    }
}

/// What a request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Fhir(Format),
    JsonPatch,
}

/// Splits `type/subtype; a=b` into the lower-case type and its parameters.
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (essence, params)
}

fn fhir_format(essence: &str) -> Option<Format> {
    match essence {
        "application/fhir+json"
        | "application/json"
        | "application/json+fhir"
        | "text/json"
        | "json" => Some(Format::Json),
        "application/fhir+xml"
        | "application/xml"
        | "application/xml+fhir"
        | "text/xml"
        | "xml" => Some(Format::Xml),
        _ => None,
    }
}

/// Only FHIR R4 (fhirVersion 4.0) is served.
fn check_fhir_version(params: &[(String, String)]) -> bool {
    params
        .iter()
        .find(|(k, _)| k == "fhirversion")
        .is_none_or(|(_, v)| v == "4.0" || v.starts_with("4.0."))
}

/// The response format: `_format` wins over `Accept`; JSON by default.
pub fn response_format(format_param: Option<&str>, headers: &HeaderMap) -> FhirResult<Format> {
    if let Some(requested) = format_param {
        let (essence, params) = media_type(requested);
        return fhir_format(&essence)
            .filter(|_| check_fhir_version(&params))
            .ok_or_else(|| {
                FhirError::not_acceptable(format!(
                    "_format `{requested}` is not supported; use json or xml"
                ))
            });
    }
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    let mut candidates: Vec<(f32, usize, Format)> = Vec::new();
    for (i, item) in accept.split(',').enumerate() {
        let (essence, params) = media_type(item);
        let q = params
            .iter()
            .find(|(k, _)| k == "q")
            .and_then(|(_, v)| v.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 || !check_fhir_version(&params) {
            continue;
        }
        let format = match essence.as_str() {
            "*/*" | "application/*" | "" => Some(Format::Json),
            other => fhir_format(other),
        };
        if let Some(f) = format {
            candidates.push((q, i, f));
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates.first().map(|c| c.2).ok_or_else(|| {
        FhirError::not_acceptable(format!(
            "none of the accepted types `{accept}` can be produced; use application/fhir+json or application/fhir+xml"
        ))
    })
}

/// The format of a request body, from `Content-Type` (sniffed when absent).
pub fn body_kind(headers: &HeaderMap, body: &[u8]) -> FhirResult<BodyKind> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        return Ok(BodyKind::Fhir(if first == Some(&b'<') {
            Format::Xml
        } else {
            Format::Json
        }));
    };
    let value = value
        .to_str()
        .map_err(|_| FhirError::unsupported_media_type("Content-Type is not readable text"))?;
    let (essence, params) = media_type(value);
    if let Some((_, charset)) = params.iter().find(|(k, _)| k == "charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(FhirError::unsupported_media_type(format!(
                "charset `{charset}` is not supported; FHIR bodies are UTF-8"
            )));
        }
    }
    if essence == "application/json-patch+json" {
        return Ok(BodyKind::JsonPatch);
    }
    match fhir_format(&essence) {
        Some(f) if check_fhir_version(&params) => Ok(BodyKind::Fhir(f)),
        _ => Err(FhirError::unsupported_media_type(format!(
            "Content-Type `{value}` is not supported; use application/fhir+json or application/fhir+xml"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> FhirResult<Format> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, v.parse().unwrap());
        response_format(None, &h)
    }

    #[test]
    fn negotiates_formats() {
        assert_eq!(
            response_format(None, &HeaderMap::new()).unwrap(),
            Format::Json
        );
        assert_eq!(accept("application/fhir+xml").unwrap(), Format::Xml);
        assert_eq!(
            accept("text/html, application/xml;q=0.9, */*;q=0.8").unwrap(),
            Format::Xml
        );
        assert_eq!(
            accept("application/fhir+json; fhirVersion=4.0").unwrap(),
            Format::Json
        );
        assert_eq!(accept("text/html").unwrap_err().status, 406);
        assert_eq!(
            accept("application/fhir+json; fhirVersion=3.0")
                .unwrap_err()
                .status,
            406
        );
        assert_eq!(
            response_format(Some("xml"), &HeaderMap::new()).unwrap(),
            Format::Xml
        );
        assert_eq!(
            response_format(Some("text/turtle"), &HeaderMap::new())
                .unwrap_err()
                .status,
            406
        );
    }

    #[test]
    fn reads_content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(
            body_kind(&h, b" <Patient/>").unwrap(),
            BodyKind::Fhir(Format::Xml)
        );
        h.insert(
            CONTENT_TYPE,
            "application/fhir+json;charset=UTF-8".parse().unwrap(),
        );
        assert_eq!(body_kind(&h, b"{}").unwrap(), BodyKind::Fhir(Format::Json));
        h.insert(CONTENT_TYPE, "application/json-patch+json".parse().unwrap());
        assert_eq!(body_kind(&h, b"[]").unwrap(), BodyKind::JsonPatch);
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(body_kind(&h, b"x").unwrap_err().status, 415);
        h.insert(
            CONTENT_TYPE,
            "application/fhir+json; charset=latin1".parse().unwrap(),
        );
        assert_eq!(body_kind(&h, b"{}").unwrap_err().status, 415);
    }
}
