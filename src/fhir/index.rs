//! Values extracted from a resource for its index rows. The core indexes
//! `identifier` (for conditional interactions); the search issue adds the
//! full set of R4 search parameters.

use serde_json::{Map, Value};

use crate::store::TokenRow;

/// Token rows for the resource's top-level `identifier` element.
pub fn tokens(resource: &Map<String, Value>) -> Vec<TokenRow> {
    let identifiers = match resource.get("identifier") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    let mut rows: Vec<TokenRow> = identifiers
        .into_iter()
        .filter_map(|identifier| {
            let code = identifier.get("value")?.as_str()?;
            let system = identifier
                .get("system")
                .and_then(Value::as_str)
                .unwrap_or("");
            Some(TokenRow {
                param: "identifier",
                system: system.to_string(),
                code: code.to_string(),
            })
        })
        .collect();
    rows.dedup();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_identifiers() {
        let p = json!({"resourceType": "Patient", "identifier": [
            {"system": "urn:mrn", "value": "1"}, {"value": "2"}, {"system": "urn:x"}
        ]});
        let rows = tokens(p.as_object().unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].system.as_str(), rows[0].code.as_str()),
            ("urn:mrn", "1")
        );
        assert_eq!((rows[1].system.as_str(), rows[1].code.as_str()), ("", "2"));
    }
}
