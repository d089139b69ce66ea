//! Server-set metadata: the id, `meta.versionId` and `meta.lastUpdated` of a
//! version, written into the canonical JSON that is stored and served.

use serde_json::{Map, Value};

use super::datetime;

/// Produces the canonical JSON of a version: `resourceType`, `id` and `meta`
/// first, then the client's elements in their order.
pub fn stamp(
    mut resource: Map<String, Value>,
    id: &str,
    version: i64,
    last_updated: i64,
) -> Vec<u8> {
    let rtype = resource.remove("resourceType").unwrap_or(Value::Null);
    resource.remove("id");
    let mut meta = Map::new();
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert(
        "lastUpdated".into(),
        Value::String(datetime::format_instant(last_updated)),
    );
    if let Some(Value::Object(old)) = resource.remove("meta") {
        for (k, v) in old {
            if k != "versionId" && k != "lastUpdated" {
                meta.insert(k, v);
            }
        }
    }
    let mut out = Map::with_capacity(resource.len() + 3);
    out.insert("resourceType".into(), rtype);
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert("meta".into(), Value::Object(meta));
    out.extend(resource);
    serde_json::to_vec(&Value::Object(out)).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_server_fields_first() {
        let r = json!({"name": [{"family": "X"}], "resourceType": "Patient", "id": "ignored",
                       "meta": {"versionId": "9", "profile": ["http://p"]}});
        let Value::Object(map) = r else {
            unreachable!()
        };
        let out = String::from_utf8(stamp(map, "p1", 3, 0)).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"1970-01-01T00:00:00.000000Z","profile":["http://p"]},"name":[{"family":"X"}]}"#
        );
    }
}
