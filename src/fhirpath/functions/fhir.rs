//! FHIR's `resolve()`: contained resources, Bundle entries, placeholders.

use serde_json::Value;

use super::super::eval::Evaluator;
use super::super::value::Node;

impl<'a> Evaluator<'a> {
    /// A reference to a contained resource (`#id`, among those of
    /// `%rootResource`: contained resources refer to each other through
    /// their container) or to a resource in the Bundle being evaluated (by
    /// fullUrl or `Type/id`). Any other literal
    /// reference `[base/]Type/id[/_history/v]` gives a placeholder of that
    /// type with no content, so `resolve() is Patient` works without a store.
    pub(super) fn resolve(&self, r: &'a str) -> Vec<Node<'a>> {
        let root = self.root_resource;
        let as_node = |v: &'a Value| Node::json(v, v.get("resourceType").and_then(Value::as_str));
        if let Some(id) = r.strip_prefix('#') {
            return root
                .get("contained")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| c.get("id").and_then(Value::as_str) == Some(id))
                .map(as_node)
                .collect();
        }
        let entries = root
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for e in entries {
            let Some(res) = e.get("resource") else {
                continue;
            };
            let full = e.get("fullUrl").and_then(Value::as_str).unwrap_or("");
            let local = format!(
                "{}/{}",
                res.get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                res.get("id").and_then(Value::as_str).unwrap_or("")
            );
            if full == r || local == r || (!full.is_empty() && full.ends_with(&format!("/{r}"))) {
                return vec![as_node(res)];
            }
        }
        let path = r.split_once("/_history/").map_or(r, |(p, _)| p);
        let mut segs = path.rsplit('/');
        let (_id, ty) = (segs.next(), segs.next());
        match ty {
            Some(ty) if crate::fhir::schema::schema().is_resource_type(ty) => {
                vec![Node::Json(super::super::value::JsonNode {
                    value: None,
                    ext: None,
                    ty: Some(ty),
                })]
            }
            _ => vec![],
        }
    }
}
