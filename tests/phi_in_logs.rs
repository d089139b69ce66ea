//! No PHI in application logs. Runs a workload full of one recognisable
//! patient's data through every path that logs (create, read, search,
//! update, patch, conditional create, a transaction, rejected resources,
//! refused tokens, failed sign-ins, HL7 v2 messages good and bad) with the
//! server's logs captured at `debug`, on SQLite and PostgreSQL, then scans
//! the captured logs for that patient's names, birth date and identifiers.

#[allow(dead_code)]
#[path = "integration/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "integration/pg.rs"]
mod pg;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use harness::TestServer;

const FAMILY: &str = "Quorblethorpe";
const GIVEN: &str = "Zyxwanda";
const BIRTH: &str = "1931-07-19";
const BIRTH_V2: &str = "19310719";
const MRN: &str = "MRN-PHI-778812";
const PHONE: &str = "555-0199-4411";

/// Everything the server logged, as JSON lines.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn mllp(addr: std::net::SocketAddr, message: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).await.unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.ends_with(&[0x1c, 0x0d]) {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

async fn workload(s: &TestServer) {
    let patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": MRN}],
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "telecom": [{"system": "phone", "value": PHONE}],
        "birthDate": BIRTH,
    });
    let created = s.create(&patient).await;
    let id = created["id"].as_str().unwrap().to_string();
    s.get(&format!("Patient/{id}")).await;
    s.get(&format!("Patient?name={FAMILY}&birthdate={BIRTH}"))
        .await;
    s.get(&format!("Patient?identifier=urn:oid:1.2.3.4|{MRN}"))
        .await;
    s.get(&format!("Patient?name:bogus={FAMILY}")).await;
    let mut updated = created.clone();
    updated["gender"] = json!("female");
    s.put(&format!("Patient/{id}"), &updated).await;
    s.client
        .patch(s.url(&format!("Patient/{id}")))
        .header("content-type", "application/json-patch+json")
        .body(format!(
            r#"[{{"op":"replace","path":"/name/0/family","value":"{FAMILY}"}}]"#
        ))
        .send()
        .await
        .unwrap();
    s.client
        .post(s.url("Patient"))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("identifier=urn:oid:1.2.3.4|{MRN}"))
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    // Rejected content that carries the PHI.
    let mut bad = patient.clone();
    bad["birthDate"] = json!(format!("{BIRTH}-{FAMILY}"));
    s.post("Patient", &bad).await;
    s.client
        .post(s.url("Patient"))
        .header("content-type", "application/fhir+json")
        .body(format!(
            r#"{{"resourceType":"Patient","name":[{{"family":"{FAMILY}"#
        ))
        .send()
        .await
        .unwrap();
    s.post(
        "",
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:6a1e4e3a-3f70-4c6e-9e2f-3c1f5a7b9d11", "resource": patient,
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": FAMILY},
                          "subject": {"reference": "urn:uuid:nowhere"}},
             "request": {"method": "POST", "url": "Observation"}}
        ]}),
    )
    .await;
    // Without a token, with PHI in the query.
    s.anonymous
        .get(s.url(&format!("Patient?name={FAMILY}")))
        .send()
        .await
        .unwrap();
    // A failed sign-in whose user name is the patient's name.
    s.anonymous
        .post(format!("{}/auth/token", s.origin))
        .basic_auth(FAMILY, Some(GIVEN))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    // HL7 v2: one good ADT, one that cannot be applied, one unparseable.
    let pid = format!(
        "PID|1||{MRN}^^^NORTH&1.2.840.99&ISO^MR||{FAMILY}^{GIVEN}||{BIRTH_V2}|F|||12 Main St^^Springfield^IL^62701||^PRN^PH^^^555^01994411"
    );
    let good = format!(
        "MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^A01^ADT_A01|PHI1|P|2.5.1\rEVN|A01|20240301101500\r{pid}\rPV1|1|I|WARD1^101^B^NORTH"
    );
    let addr = s.mllp_addr();
    assert!(mllp(addr, &good).await.contains("MSA|AA"));
    let bad_code = format!(
        "MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^A01^ADT_A01|PHI2|P|2.5.1\rEVN|A01|20240301101500\r{pid}\rPV1|1|I\rDG1|1||ZZZ.{FAMILY}^{FAMILY}^I10||20240301|A"
    );
    mllp(addr, &bad_code).await;
    let merge = format!(
        "MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^A40^ADT_A39|PHI3|P|2.5.1\rEVN|A40|20240301101500\r{pid}\rMRG|NOPE-{MRN}^^^NORTH&1.2.840.99&ISO^MR"
    );
    mllp(addr, &merge).await;
    mllp(addr, &format!("garbage {FAMILY} {MRN}")).await;
}

fn scan(label: &str) {
    let log = String::from_utf8_lossy(&captured().lock().unwrap()).to_lowercase();
    assert!(
        log.contains("\"status\":201") && log.contains("\"status\":400"),
        "{label}: the server's request logs were not captured"
    );
    for secret in [FAMILY, GIVEN, BIRTH, BIRTH_V2, MRN, PHONE] {
        if let Some(at) = log.find(&secret.to_lowercase()) {
            let start = log[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = log[at..].find('\n').map_or(log.len(), |n| at + n);
            panic!("{label}: `{secret}` is in the logs: {}", &log[start..end]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_in_logs_sqlite() {
    captured();
    let s = TestServer::sqlite().await;
    workload(&s).await;
    s.stop().await;
    scan("SQLite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_in_logs_postgres() {
    captured();
    let Some(s) = TestServer::postgres().await else {
        return;
    };
    workload(&s).await;
    s.stop().await;
    scan("PostgreSQL");
}
