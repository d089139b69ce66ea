//! A third-party sender unchanged: python-hl7's `mllp_send` (PyPI `hl7`,
//! which `.ci/run` installs) sends a file of messages to the MLLP port.

use super::adt;
use crate::harness::TestServer;

const MRN_SYSTEM: &str = "urn:oid:1.2.840.99";

/// `mllp_send` on the PATH, or None (a failure in CI).
fn mllp_send() -> Option<&'static str> {
    let found = std::process::Command::new("mllp_send")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("mllp_send");
    }
    if std::env::var("CI").is_ok() {
        panic!("mllp_send (pip install hl7) must be installed in CI");
    }
    eprintln!("NOT RUN: mllp_send not found (pip install hl7)");
    None
}

async fn python_hl7_mllp_send_works_unchanged(s: &TestServer) {
    let Some(program) = mllp_send() else { return };
    // Its --loose file format: one message after another, segments on
    // lines of their own.
    let messages: Vec<String> = (0..3)
        .map(|i| adt("A01", &format!("PY-{i}"), &format!("PY{i}"), "Sender").replace('\r', "\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages.hl7");
    std::fs::write(&file, messages.join("\n")).unwrap();
    let addr = s.mllp_addr();
    let output = tokio::process::Command::new(program)
        .args(["--loose", "--file"])
        .arg(&file)
        .args(["--port", &addr.port().to_string(), &addr.ip().to_string()])
        .output()
        .await
        .expect("mllp_send runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mllp_send failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for i in 0..3 {
        assert!(stdout.contains(&format!("MSA|AA|PY-{i}")), "{stdout}");
        let found = s
            .get(&format!("Patient?identifier={MRN_SYSTEM}|PY{i}"))
            .await
            .json();
        assert_eq!(found["entry"].as_array().map_or(0, Vec::len), 1, "{found}");
    }
}

crate::on_both_databases!(python_hl7_mllp_send_works_unchanged);
