//! FHIR search (http://hl7.org/fhir/R4/search.html), tested through HTTP on
//! both databases: parameter types, modifiers and prefixes, common
//! parameters, chains, includes, result shaping, paging, errors, index
//! maintenance, and realistic searches over the Synthea sample.

use serde_json::Value;

use crate::harness::TestServer;

mod codes;
mod common;
mod contained;
mod custom;
mod errors;
mod filter;
mod near;
mod params;
mod results;
mod synthea;

/// Creates a resource and returns its id.
pub async fn create_id(s: &TestServer, body: Value) -> String {
    s.create(&body).await["id"].as_str().unwrap().to_string()
}

/// Creates (or replaces) a resource under a chosen id with PUT.
pub async fn put_id(s: &TestServer, mut body: Value, id: &str) -> String {
    let rtype = body["resourceType"].as_str().unwrap().to_string();
    body["id"] = Value::from(id);
    let r = s.put(&format!("{rtype}/{id}"), &body).await;
    assert!(r.status == 201 || r.status == 200, "PUT failed: {}", r.text);
    id.to_string()
}

/// Runs a search (a path with its query), asserting a 200 searchset Bundle.
pub async fn search(s: &TestServer, query: &str) -> Value {
    let r = s.get(query).await;
    assert_eq!(r.status, 200, "GET {query}: {}", r.text);
    let bundle = r.json();
    assert_eq!(bundle["resourceType"], "Bundle", "GET {query}: {bundle}");
    assert_eq!(bundle["type"], "searchset", "GET {query}: {bundle}");
    bundle
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

fn entries_in_mode(bundle: &Value, mode: &str) -> Vec<String> {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

/// Ids of the matches (`search.mode = match`), in the server's order.
pub fn match_ids(bundle: &Value) -> Vec<String> {
    entries_in_mode(bundle, "match")
        .into_iter()
        .map(|t| t.split_once('/').unwrap().1.to_string())
        .collect()
}

/// `Type/id` of the included entries (`search.mode = include`), in order.
pub fn included(bundle: &Value) -> Vec<String> {
    entries_in_mode(bundle, "include")
}

/// The sorted ids of the matches of a search.
pub async fn ids(s: &TestServer, query: &str) -> Vec<String> {
    let mut v = match_ids(&search(s, query).await);
    v.sort();
    v
}

/// Sorted owned copy of ids, to compare with `ids`.
pub fn set(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The URL of a Bundle link, by relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

/// Percent-encodes a value for a query string (`+` would otherwise be a space).
pub fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:|".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts a 400 OperationOutcome whose text names `param`.
pub fn assert_names_param(r: &crate::harness::Resp, param: &str, request: &str) {
    assert_eq!(
        r.status, 400,
        "{request}: expected 400, got {}: {}",
        r.status, r.text
    );
    let oo = r.outcome(400);
    assert!(
        oo.to_string().contains(param),
        "{request}: the OperationOutcome does not name `{param}`: {oo}"
    );
}
