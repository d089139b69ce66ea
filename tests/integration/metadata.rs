//! The CapabilityStatement, health checks and request ids.

use serde_json::Value;

use crate::harness::TestServer;

async fn metadata_describes_the_server(s: &TestServer) {
    let r = s.get("metadata").await;
    assert_eq!(r.status, 200);
    let cs = r.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 146);
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let interactions: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for code in [
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
    ] {
        assert!(interactions.contains(&code), "{code}");
    }
    assert_eq!(patient["conditionalDelete"], "multiple");
    assert_eq!(cs["implementation"]["url"], s.base);
    let xml = s.get("metadata?_format=xml").await;
    assert!(
        xml.text.contains("<CapabilityStatement"),
        "{}",
        &xml.text[..200.min(xml.text.len())]
    );
    s.get("metadata?mode=nonsense").await.outcome(400);
    let tc = s.get("metadata?mode=terminology").await;
    assert_eq!(tc.json()["resourceType"], "TerminologyCapabilities");
}

async fn health_checks(s: &TestServer) {
    let base = s.base.trim_end_matches("/fhir");
    assert_eq!(s.get(&format!("{base}/health/live")).await.status, 200);
    let ready = s.get(&format!("{base}/health/ready")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ok");
}

crate::on_both_databases!(metadata_describes_the_server, health_checks);

/// The committed conformance/CapabilityStatement.json is what the server
/// generates (apart from the date and base URL): regenerate it with
/// `cargo run -- capabilities > conformance/CapabilityStatement.json`.
#[test]
fn committed_capability_statement_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conformance/CapabilityStatement.json"
    );
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let generated = charaka::service::capabilities::capability_statement(
        committed["implementation"]["url"].as_str().unwrap(),
    );
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("date");
        v
    };
    assert!(
        strip(committed) == strip(generated),
        "conformance/CapabilityStatement.json is stale: regenerate it with \
         `cargo run -- capabilities > conformance/CapabilityStatement.json`"
    );
}
