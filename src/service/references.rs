//! References inside resources: finding every `Reference.reference` in a
//! resource tree (extensions and contained resources included) and
//! rewriting them, as transactions do for `urn:uuid:` and conditional
//! references.

use serde_json::{Map, Value};

/// Calls `rewrite` on every `reference` string anywhere in the tree; a
/// returned value replaces the reference. Stops at the first error.
pub fn rewrite_references<E>(
    value: &mut Map<String, Value>,
    rewrite: &mut dyn FnMut(&str) -> Result<Option<String>, E>,
) -> Result<(), E> {
    for (key, child) in value.iter_mut() {
        match child {
            Value::String(s) if key == "reference" => {
                if let Some(new) = rewrite(s)? {
                    *s = new;
                }
            }
            Value::Object(obj) => rewrite_references(obj, rewrite)?,
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(obj) = item {
                        rewrite_references(obj, rewrite)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Calls `visit` on every `reference` string anywhere in the tree, changing
/// nothing.
pub fn visit_references(value: &Map<String, Value>, visit: &mut dyn FnMut(&str)) {
    for (key, child) in value {
        match child {
            Value::String(s) if key == "reference" => visit(s),
            Value::Object(obj) => visit_references(obj, visit),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(obj) = item {
                        visit_references(obj, visit);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_references_everywhere() {
        let mut obs = json!({
            "resourceType": "Observation",
            "subject": {"reference": "urn:uuid:1"},
            "extension": [{"url": "http://x", "valueReference": {"reference": "urn:uuid:1"}}],
            "contained": [{"resourceType": "Provenance", "target": [{"reference": "urn:uuid:2"}]}],
            "note": [{"text": "reference"}],
            "code": {"text": "urn:uuid:1"}
        });
        let map = obs.as_object_mut().unwrap();
        rewrite_references::<()>(map, &mut |r| {
            Ok(match r {
                "urn:uuid:1" => Some("Patient/a".to_string()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(obs["subject"]["reference"], "Patient/a");
        assert_eq!(
            obs["extension"][0]["valueReference"]["reference"],
            "Patient/a"
        );
        assert_eq!(obs["contained"][0]["target"][0]["reference"], "urn:uuid:2");
        assert_eq!(obs["code"]["text"], "urn:uuid:1");
    }
}
