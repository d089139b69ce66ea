//! Server-set metadata: the id, `meta.versionId` and `meta.lastUpdated` of a
//! version, written into the canonical JSON that is stored and served.

use serde_json::{Map, Value};

use super::datetime;

/// A new server-assigned id: a UUID version 7, whose leading bits are the
/// time. Ids made one after another sort together, so the indexes keyed on
/// ids (`resources` by type and id, references by target id) take new
/// entries at their end instead of in a random leaf each (a random leaf is
/// one more 4 KiB page in every commit's write-ahead log).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

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

/// Carries the stored version's tags and security labels into a new version
/// sent by an update (R4 resource.html#tag-updates: "Merge existing and new
/// tags", "Merge existing and new security labels"; profiles are replaced).
/// A stored tag or label whose `system`+`code` the new body does not have is
/// appended after the body's own; removing one takes `$meta-delete`.
/// Returns whether `resource` changed.
pub fn carry_tags_and_labels(resource: &mut Map<String, Value>, stored: &Value) -> bool {
    let mut changed = false;
    for key in ["tag", "security"] {
        let Some(old) = stored
            .get("meta")
            .and_then(|m| m.get(key))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let missing: Vec<Value> = {
            let new = resource
                .get("meta")
                .and_then(|m| m.get(key))
                .and_then(Value::as_array);
            old.iter()
                .filter(|o| {
                    !new.is_some_and(|n| {
                        n.iter().any(|x| {
                            x.get("system") == o.get("system") && x.get("code") == o.get("code")
                        })
                    })
                })
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            continue;
        }
        let meta = resource
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        let list = meta
            .as_object_mut()
            .expect("an object")
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        list.as_array_mut().expect("an array").extend(missing);
        changed = true;
    }
    changed
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

    fn obj(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    #[test]
    fn update_keeps_stored_tags_and_labels() {
        let stored = json!({"resourceType": "Patient", "meta": {
            "profile": ["http://old"],
            "tag": [{"system": "t", "code": "a"}],
            "security": [{"system": "s", "code": "R", "display": "restricted"}]}});
        // Without meta: both carried over, the profile is not.
        let mut r = obj(json!({"resourceType": "Patient"}));
        assert!(carry_tags_and_labels(&mut r, &stored));
        assert_eq!(
            Value::Object(r),
            json!({"resourceType": "Patient", "meta": {
                "tag": [{"system": "t", "code": "a"}],
                "security": [{"system": "s", "code": "R", "display": "restricted"}]}})
        );
        // Present already (display differs): the body's is kept, nothing added.
        let mut r = obj(json!({"resourceType": "Patient", "meta": {
            "profile": ["http://new"],
            "tag": [{"system": "t", "code": "a"}],
            "security": [{"system": "s", "code": "R"}]}}));
        let before = r.clone();
        assert!(!carry_tags_and_labels(&mut r, &stored));
        assert_eq!(r, before);
        // Other labels in the body: merged, the body's first.
        let mut r = obj(json!({"resourceType": "Patient", "meta": {
            "security": [{"system": "s", "code": "N"}]}}));
        assert!(carry_tags_and_labels(&mut r, &stored));
        assert_eq!(
            r["meta"]["security"],
            json!([{"system": "s", "code": "N"},
                   {"system": "s", "code": "R", "display": "restricted"}])
        );
        assert_eq!(r["meta"]["tag"], json!([{"system": "t", "code": "a"}]));
        // Nothing stored: nothing changes.
        let mut r = obj(json!({"resourceType": "Patient"}));
        assert!(!carry_tags_and_labels(
            &mut r,
            &json!({"resourceType": "Patient", "meta": {"versionId": "1"}})
        ));
        assert_eq!(Value::Object(r), json!({"resourceType": "Patient"}));
    }
}
