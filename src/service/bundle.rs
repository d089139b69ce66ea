//! Writing Bundles (history, transaction-response, batch-response) straight
//! to JSON bytes: stored resource bodies are copied in, never re-parsed.

use bytes::Bytes;
use serde_json::Value;

use crate::fhir::datetime::format_instant;

/// `Bundle.entry.response`.
#[derive(Debug, Clone, Default)]
pub struct EntryResponse {
    pub status: String,
    pub location: Option<String>,
    /// Version for `etag`.
    pub version: Option<i64>,
    /// Microseconds since the Unix epoch.
    pub last_modified: Option<i64>,
    pub outcome: Option<Value>,
}

/// One `Bundle.entry`.
#[derive(Debug, Clone, Default)]
pub struct EntryOut {
    pub full_url: Option<String>,
    pub resource: Option<Bytes>,
    /// `(method, url)`.
    pub request: Option<(String, String)>,
    pub response: Option<EntryResponse>,
    /// `search.mode` of searchset entries: match, include or outcome.
    pub search_mode: Option<&'static str>,
    /// `search.extension` (with `search_mode`): the distance of a `near`
    /// match.
    pub search_extension: Vec<Value>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// A searchset entry (`search.mode = outcome`) holding an OperationOutcome
/// of `issues` (JSON issue objects): parameters ignored, results that may
/// be incomplete.
pub fn outcome_entry(issues: Vec<Value>) -> EntryOut {
    let outcome = serde_json::json!({"resourceType": "OperationOutcome", "issue": issues});
    EntryOut {
        resource: Some(
            serde_json::to_vec(&outcome)
                .expect("JSON values serialise")
                .into(),
        ),
        search_mode: Some("outcome"),
        ..Default::default()
    }
}

/// Renders a Bundle of `kind` with links and entries.
pub fn render(kind: &str, links: &[(&str, String)], entries: &[EntryOut]) -> Vec<u8> {
    render_with_total(kind, None, links, entries)
}

/// Renders a Bundle, with `total` when given (searchsets).
pub fn render_with_total(
    kind: &str,
    total: Option<i64>,
    links: &[(&str, String)],
    entries: &[EntryOut],
) -> Vec<u8> {
    let capacity = 256
        + entries
            .iter()
            .map(|e| e.resource.as_ref().map_or(200, |b| b.len() + 200))
            .sum::<usize>();
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(
        format!(r#"{{"resourceType":"Bundle","type":{}"#, json_str(kind)).as_bytes(),
    );
    if let Some(total) = total {
        out.extend_from_slice(format!(r#","total":{total}"#).as_bytes());
    }
    if !links.is_empty() {
        out.extend_from_slice(br#","link":["#);
        for (i, (relation, url)) in links.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(
                format!(
                    r#"{{"relation":{},"url":{}}}"#,
                    json_str(relation),
                    json_str(url)
                )
                .as_bytes(),
            );
        }
        out.push(b']');
    }
    if !entries.is_empty() {
        out.extend_from_slice(br#","entry":["#);
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_entry(&mut out, e);
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

fn write_entry(out: &mut Vec<u8>, e: &EntryOut) {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    if let Some(url) = &e.full_url {
        fields.push(format!(r#""fullUrl":{}"#, json_str(url)).into_bytes());
    }
    if let Some(body) = &e.resource {
        let mut f = br#""resource":"#.to_vec();
        f.extend_from_slice(body);
        fields.push(f);
    }
    if let Some(mode) = e.search_mode {
        let extension = if e.search_extension.is_empty() {
            String::new()
        } else {
            format!(
                r#""extension":{},"#,
                Value::Array(e.search_extension.clone())
            )
        };
        fields.push(format!(r#""search":{{{extension}"mode":{}}}"#, json_str(mode)).into_bytes());
    }
    if let Some((method, url)) = &e.request {
        fields.push(
            format!(
                r#""request":{{"method":{},"url":{}}}"#,
                json_str(method),
                json_str(url)
            )
            .into_bytes(),
        );
    }
    if let Some(r) = &e.response {
        let mut parts = vec![format!(r#""status":{}"#, json_str(&r.status))];
        if let Some(location) = &r.location {
            parts.push(format!(r#""location":{}"#, json_str(location)));
        }
        if let Some(v) = r.version {
            parts.push(format!(r#""etag":{}"#, json_str(&format!("W/\"{v}\""))));
        }
        if let Some(t) = r.last_modified {
            parts.push(format!(
                r#""lastModified":{}"#,
                json_str(&format_instant(t))
            ));
        }
        if let Some(outcome) = &r.outcome {
            parts.push(format!(r#""outcome":{outcome}"#));
        }
        fields.push(format!(r#""response":{{{}}}"#, parts.join(",")).into_bytes());
    }
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(f);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_valid_bundles() {
        let entries = vec![
            EntryOut {
                full_url: Some("http://x/fhir/Patient/a".into()),
                resource: Some(Bytes::from_static(
                    br#"{"resourceType":"Patient","id":"a"}"#,
                )),
                request: Some(("POST".into(), "Patient".into())),
                response: Some(EntryResponse {
                    status: "201 Created".into(),
                    location: Some("Patient/a/_history/1".into()),
                    version: Some(1),
                    last_modified: Some(0),
                    outcome: None,
                }),
                search_mode: None,
                search_extension: Vec::new(),
            },
            EntryOut {
                response: Some(EntryResponse {
                    status: "404 Not Found".into(),
                    outcome: Some(json!({"resourceType": "OperationOutcome"})),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let out = render("batch-response", &[("self", "http://x".into())], &entries);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "batch-response");
        assert_eq!(v["entry"][0]["resource"]["id"], "a");
        assert_eq!(v["entry"][0]["response"]["etag"], "W/\"1\"");
        assert_eq!(
            v["entry"][1]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        let empty: Value = serde_json::from_slice(&render("history", &[], &[])).unwrap();
        assert_eq!(empty, json!({"resourceType": "Bundle", "type": "history"}));
    }
}
