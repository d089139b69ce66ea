//! history at instance, type and system level
//! (http://hl7.org/fhir/R4/http.html#history): a Bundle of type `history`,
//! newest first, with `_count`, `_since`, `_at` and cursor paging links.

use super::bundle::{self, EntryOut, EntryResponse};
use super::{check_type, Fhir};
use crate::error::{FhirError, FhirResult};
use crate::fhir::datetime::range_micros;
use crate::store::{HistoryEntry, HistoryQuery, HistoryScope};

/// The cursor parameter of `next` links: only versions older than this.
pub const CURSOR_PARAM: &str = "_before";

/// Parameters that only shape the rendering; accepted and ignored here.
const RENDERING: &[&str] = &["_format", "_pretty", "_summary", "_elements"];

impl Fhir {
    /// One page of history as a Bundle (canonical JSON bytes).
    pub async fn history(
        &self,
        scope: HistoryScope,
        params: &[(String, String)],
    ) -> FhirResult<Vec<u8>> {
        match &scope {
            HistoryScope::Instance { rtype, .. } | HistoryScope::Type { rtype } => {
                check_type(rtype)?
            }
            HistoryScope::System => {}
        }
        let mut count = i64::from(self.default_page_size);
        let mut since = None;
        let mut at = None;
        let mut before = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "_count" => count = self.page_size(value)?,
                "_since" => {
                    let (start, _) = range_micros(value).ok_or_else(|| {
                        FhirError::invalid(format!("_since must be an instant, not `{value}`"))
                    })?;
                    since = Some(start);
                    kept.push((name.clone(), value.clone()));
                }
                "_at" => {
                    at = Some(range_micros(value).ok_or_else(|| {
                        FhirError::invalid(format!("_at must be a date or dateTime, not `{value}`"))
                    })?);
                    kept.push((name.clone(), value.clone()));
                }
                CURSOR_PARAM => {
                    before = Some(value.parse::<i64>().map_err(|_| {
                        FhirError::invalid(format!("`{value}` is not a valid history page cursor"))
                    })?);
                }
                n if RENDERING.contains(&n) => kept.push((name.clone(), value.clone())),
                // Unknown parameters are ignored (lenient handling).
                _ => {}
            }
        }
        let mut entries = if count == 0 {
            Vec::new()
        } else {
            self.store
                .history(
                    self.tenant,
                    &HistoryQuery {
                        scope: scope.clone(),
                        since,
                        at,
                        before,
                        limit: count + 1,
                    },
                )
                .await?
        };
        let has_next = entries.len() as i64 > count;
        entries.truncate(count as usize);

        let path = match &scope {
            HistoryScope::Instance { rtype, id } => {
                format!("{}/{rtype}/{id}/_history", self.base_url)
            }
            HistoryScope::Type { rtype } => format!("{}/{rtype}/_history", self.base_url),
            HistoryScope::System => format!("{}/_history", self.base_url),
        };
        let link = |cursor: Option<i64>| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("_count", &count.to_string());
            for (k, v) in &kept {
                q.append_pair(k, v);
            }
            if let Some(c) = cursor {
                q.append_pair(CURSOR_PARAM, &c.to_string());
            }
            format!("{path}?{}", q.finish())
        };
        let mut links = vec![("self", link(before)), ("first", link(None))];
        if has_next {
            if let Some(last) = entries.last() {
                links.push(("next", link(Some(last.seq))));
            }
        }
        Ok(render_bundle(&self.base_url, &links, &entries))
    }
}

/// History entries as Bundle entries.
fn render_bundle(base: &str, links: &[(&str, String)], entries: &[HistoryEntry]) -> Vec<u8> {
    let entries: Vec<EntryOut> = entries
        .iter()
        .map(|e| {
            let reference = format!("{}/{}", e.rtype, e.id);
            let (url, status) = match e.method.as_str() {
                "POST" => (e.rtype.clone(), "201 Created"),
                "DELETE" => (reference.clone(), "204 No Content"),
                _ if e.version == 1 => (reference.clone(), "201 Created"),
                _ => (reference.clone(), "200 OK"),
            };
            EntryOut {
                full_url: Some(format!("{base}/{reference}")),
                resource: e.body.clone(),
                request: Some((e.method.clone(), url)),
                response: Some(EntryResponse {
                    status: status.to_string(),
                    location: None,
                    version: Some(e.version),
                    last_modified: Some(e.last_updated),
                    outcome: None,
                }),
                search_mode: None,
                search_extension: Vec::new(),
            }
        })
        .collect();
    bundle::render("history", links, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_json() {
        let entries = vec![
            HistoryEntry {
                seq: 2,
                rtype: "Patient".into(),
                id: "a".into(),
                version: 2,
                last_updated: 0,
                method: "DELETE".into(),
                body: None,
            },
            HistoryEntry {
                seq: 1,
                rtype: "Patient".into(),
                id: "a".into(),
                version: 1,
                last_updated: 0,
                method: "POST".into(),
                body: Some(bytes::Bytes::from_static(
                    br#"{"resourceType":"Patient","id":"a"}"#,
                )),
            },
        ];
        let out = render_bundle(
            "http://x/fhir",
            &[("self", "http://x/fhir/_history".into())],
            &entries,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["entry"][0]["request"]["method"], "DELETE");
        assert!(v["entry"][0].get("resource").is_none());
        assert_eq!(v["entry"][1]["resource"]["id"], "a");
        assert_eq!(v["entry"][1]["request"]["url"], "Patient");
        assert_eq!(v["entry"][1]["response"]["etag"], "W/\"1\"");
    }
}
