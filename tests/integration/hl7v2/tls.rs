//! MLLP over TLS: messages over a real TLS connection (rustls client), a
//! plain-TCP client and a silent client on the TLS port (refused, the
//! listener goes on), mutual TLS (a client certificate from the configured
//! CA is required; its names are logged with each message), the sender
//! binding of MSH-3/MSH-4 to the certificate, and certificate reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use charaka::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::ingest::count;
use super::{ack_code, adt, Mllp};
use crate::harness::TestServer;

const MRN_SYSTEM: &str = "urn:oid:1.2.840.99";

/// A client certificate and its key (DER).
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl ClientCert {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

/// The test PKI: the server's self-signed certificate for 127.0.0.1 and a
/// CA of client certificates, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    /// The server certificate in use (what clients trust).
    server_cert: CertificateDer<'static>,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Charaka test interface CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-ca.pem"), ca.pem()).unwrap();
        let mut pki = Pki {
            dir,
            server_cert: CertificateDer::from(Vec::new()),
            ca,
        };
        pki.issue_server_cert();
        pki
    }

    fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    fn client_ca_file(&self) -> PathBuf {
        self.dir.path().join("client-ca.pem")
    }

    /// A new self-signed server certificate, written over the files.
    fn issue_server_cert(&mut self) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(self.server_cert_file(), made.cert.pem()).unwrap();
        std::fs::write(self.server_key_file(), made.signing_key.serialize_pem()).unwrap();
        self.server_cert = made.cert.der().clone();
    }

    /// A client certificate signed by the test CA.
    fn client_cert(&self) -> ClientCert {
        client_cert_from(Some(&self.ca))
    }

    /// A client certificate signed by the test CA with this Common Name and
    /// these DNS names.
    fn client_cert_named(&self, cn: &str, dns: &[&str]) -> ClientCert {
        client_cert_with(Some(&self.ca), cn, dns)
    }

    /// Configures MLLP over TLS; with `mutual`, client certificates from the
    /// test CA are required.
    fn configure(&self, config: &mut Config, mutual: bool) {
        config.mllp_tls_cert = Some(self.server_cert_file());
        config.mllp_tls_key = Some(self.server_key_file());
        config.mllp_tls_client_ca = mutual.then(|| self.client_ca_file());
        config.validate().unwrap();
    }
}

/// A client certificate signed by `ca`, or self-signed.
fn client_cert_from(ca: Option<&CertifiedIssuer<'static, KeyPair>>) -> ClientCert {
    client_cert_with(ca, "lab interface engine", &[])
}

/// A client certificate with Common Name `cn` and DNS names `dns`, signed
/// by `ca`, or self-signed.
fn client_cert_with(
    ca: Option<&CertifiedIssuer<'static, KeyPair>>,
    cn: &str,
    dns: &[&str],
) -> ClientCert {
    let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    let mut params = CertificateParams::new(dns).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = match ca {
        Some(ca) => params.signed_by(&key, ca).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    ClientCert {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
    }
}

/// A TLS client that trusts only `server_cert`, presenting `client` if
/// given.
fn connector(server_cert: &CertificateDer<'static>, client: Option<&ClientCert>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Opens MLLP over TLS; Err when the handshake fails on the client's side.
async fn connect_tls(
    s: &TestServer,
    connector: &TlsConnector,
) -> std::io::Result<Mllp<TlsStream<TcpStream>>> {
    let tcp = TcpStream::connect(s.mllp_addr()).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    Ok(Mllp::over(connector.connect(name, tcp).await?))
}

/// Sends an ADT^A01 for `mrn` over TLS and returns the ACK code.
async fn send_over_tls(s: &TestServer, connector: &TlsConnector, mrn: &str) -> String {
    let mut c = connect_tls(s, connector).await.expect("TLS handshake");
    let ack = c
        .send(&adt("A01", &format!("TLS-{mrn}"), mrn, "Secure"))
        .await;
    ack_code(&ack)
}

/// Whether a message over this client is refused: the handshake fails, or
/// (TLS 1.3, where the server checks the client certificate after the
/// client has finished) the server closes without an ACK.
async fn refused(s: &TestServer, connector: &TlsConnector, mrn: &str) -> bool {
    let Ok(mut c) = connect_tls(s, connector).await else {
        return true;
    };
    let message =
        charaka::hl7v2::mllp::frame(adt("A01", &format!("TLS-{mrn}"), mrn, "No").as_bytes());
    // The write may already fail once the server's alert has arrived.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c.stream, &message).await;
    let _ = tokio::io::AsyncWriteExt::flush(&mut c.stream).await;
    c.read_ack().await.is_none()
}

async fn patients(s: &TestServer, mrn: &str) -> usize {
    count(s, &format!("Patient?identifier={MRN_SYSTEM}|{mrn}")).await
}

/// An ADT^A01 over TLS is applied and acknowledged AA; the connection
/// carries the next message too.
async fn adt_over_tls(s: &TestServer, pki: &Pki) {
    let mut c = connect_tls(s, &connector(&pki.server_cert, None))
        .await
        .expect("TLS handshake");
    let ack = c.send(&adt("A01", "TLS-1", "TLS100", "Secure")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert!(ack.contains("|TLS-1"), "MSA-2 echoes the control id: {ack}");
    let ack = c.send(&adt("A08", "TLS-2", "TLS100", "Secured")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let r = s
        .get(&format!("Patient?identifier={MRN_SYSTEM}|TLS100"))
        .await;
    let bundle = r.json();
    let entries = bundle["entry"].as_array().expect("a Patient");
    assert_eq!(entries.len(), 1, "{bundle}");
    assert_eq!(entries[0]["resource"]["name"][0]["family"], "Secured");
}

async fn adt_over_tls_sqlite_or_postgres(server: Option<TestServer>, pki: Pki) {
    let Some(s) = server else { return };
    adt_over_tls(&s, &pki).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adt_over_tls_on_sqlite() {
    let pki = Pki::new();
    let s = TestServer::sqlite_with(|c| pki.configure(c, false)).await;
    adt_over_tls_sqlite_or_postgres(Some(s), pki).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adt_over_tls_on_postgres() {
    let pki = Pki::new();
    let s = TestServer::postgres_with(|c| pki.configure(c, false)).await;
    adt_over_tls_sqlite_or_postgres(s, pki).await;
}

/// Plain MLLP on the TLS port gets no ACK and nothing is stored; a client
/// that never starts the handshake is closed after the idle timeout; the
/// listener serves the next TLS client all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_silent_clients_are_closed_and_the_listener_goes_on() {
    let pki = Pki::new();
    let s = TestServer::sqlite_with(|c| {
        pki.configure(c, false);
        c.mllp_idle_timeout_secs = 1;
    })
    .await;

    let mut plain = Mllp::connect(s.mllp_addr()).await;
    plain
        .write_raw(&charaka::hl7v2::mllp::frame(
            adt("A01", "PLAIN-1", "TLS200", "Plain").as_bytes(),
        ))
        .await;
    assert_eq!(plain.read_ack().await, None, "no ACK over plain TCP");
    assert_eq!(patients(&s, "TLS200").await, 0);

    // Connects, sends nothing: closed once the idle timeout has passed.
    let started = Instant::now();
    let mut silent = TcpStream::connect(s.mllp_addr()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(15), silent.read(&mut byte))
        .await
        .expect("the silent client is closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    let tls = connector(&pki.server_cert, None);
    assert_eq!(send_over_tls(&s, &tls, "TLS201").await, "AA");
    assert_eq!(patients(&s, "TLS201").await, 1);
    s.stop().await;
}

/// With a client CA: no client certificate, or one from another CA, is
/// refused (no ACK, nothing stored); a certificate from the CA gets AA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let s = TestServer::sqlite_with(|c| pki.configure(c, true)).await;
    assert!(s.mllp_tls().unwrap().mutual());

    let anonymous = connector(&pki.server_cert, None);
    assert!(
        refused(&s, &anonymous, "TLS300").await,
        "no client certificate"
    );
    let stranger = client_cert_from(None);
    let stranger = connector(&pki.server_cert, Some(&stranger));
    assert!(
        refused(&s, &stranger, "TLS301").await,
        "a certificate of another CA"
    );
    assert_eq!(patients(&s, "TLS300").await, 0);
    assert_eq!(patients(&s, "TLS301").await, 0);

    let member = connector(&pki.server_cert, Some(&pki.client_cert()));
    assert_eq!(send_over_tls(&s, &member, "TLS302").await, "AA");
    assert_eq!(patients(&s, "TLS302").await, 1);
    s.stop().await;
}

/// New files and a reload: new connections get the new certificate; a
/// broken file fails the reload and the certificate in use stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload() {
    let mut pki = Pki::new();
    let s = TestServer::sqlite_with(|c| pki.configure(c, false)).await;
    let first = pki.server_cert.clone();
    assert_eq!(
        send_over_tls(&s, &connector(&first, None), "TLS400").await,
        "AA"
    );

    pki.issue_server_cert();
    s.mllp_tls().unwrap().reload().await.unwrap();
    let second = connector(&pki.server_cert, None);
    assert_eq!(send_over_tls(&s, &second, "TLS401").await, "AA");
    assert!(
        connect_tls(&s, &connector(&first, None)).await.is_err(),
        "the old certificate is no longer served"
    );

    std::fs::write(pki.server_key_file(), "not a key").unwrap();
    assert!(s.mllp_tls().unwrap().reload().await.is_err());
    assert_eq!(send_over_tls(&s, &second, "TLS402").await, "AA");
    s.stop().await;
}

/// Sends `message` over a TLS connection of `connector`; returns the ACK.
async fn send_message(s: &TestServer, connector: &TlsConnector, message: &str) -> String {
    let mut c = connect_tls(s, connector).await.expect("TLS handshake");
    c.send(message).await
}

/// The message log's row of `control` (the admin endpoint).
/// The sending agent of the AuditEvent recorded for the message with
/// control id `control`.
async fn audit_sender(s: &TestServer, control: &str) -> serde_json::Value {
    let r = s
        .get("AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110107&_count=1000")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bundle = r.json();
    let event =
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .find(|e| {
                e["entity"].as_array().into_iter().flatten().any(|entity| {
                    entity["what"]["identifier"]["value"] == serde_json::json!(control)
                })
            })
            .unwrap_or_else(|| panic!("no AuditEvent for {control}"));
    assert_eq!(event["agent"][0]["requestor"], true, "{event}");
    event["agent"][0].clone()
}

async fn log_row(s: &TestServer, control: &str) -> serde_json::Value {
    let list = s.get("$hl7v2-messages?_count=1000").await.json();
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["controlId"] == control)
        .unwrap_or_else(|| panic!("{control} logged: {list}"))
        .clone()
}

/// Mutual TLS without the sender binding: the client certificate's names
/// are logged with each message (CN, DNS and URI SANs) and shown by the
/// message log and `charaka hl7 list`; a client whose certificate names
/// another sender than MSH-3/MSH-4 is applied all the same; a message over
/// HTTP has no peer identity.
async fn peer_identity_logged(s: &TestServer, pki: &Pki) {
    let north = connector(
        &pki.server_cert,
        Some(&pki.client_cert_named("NORTH", &["north.example.org"])),
    );
    let south = connector(&pki.server_cert, Some(&pki.client_cert_named("SOUTH", &[])));
    // MSH-3 REG, MSH-4 NORTH.
    let ack = send_message(s, &north, &adt("A01", "PEER-1", "TLS500", "Peer")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let ack = send_message(s, &south, &adt("A01", "PEER-2", "TLS501", "Peer")).await;
    assert_eq!(ack_code(&ack), "AA", "binding off: {ack}");
    assert_eq!(patients(s, "TLS500").await, 1);
    assert_eq!(patients(s, "TLS501").await, 1);

    let row = log_row(s, "PEER-1").await;
    assert_eq!(
        row["peerIdentity"], "CN=NORTH; DNS=north.example.org",
        "{row}"
    );
    assert_eq!(log_row(s, "PEER-2").await["peerIdentity"], "CN=SOUTH");
    // The message's audit record names the certificate and the address.
    let sender = audit_sender(s, "PEER-1").await;
    assert_eq!(
        sender["who"]["identifier"],
        serde_json::json!({
            "system": "urn:charaka:tls-client-certificate",
            "value": "CN=NORTH; DNS=north.example.org"
        }),
        "{sender}"
    );
    assert_eq!(sender["who"]["display"], "REG|NORTH", "{sender}");
    assert_eq!(sender["network"]["address"], "127.0.0.1", "{sender}");
    assert_eq!(
        audit_sender(s, "PEER-2").await["who"]["identifier"]["value"],
        "CN=SOUTH"
    );
    // A failed message (AE: PID-3 missing) keeps it too.
    let bad = adt("A01", "PEER-3", "TLS502", "Peer").replace(
        "PID|1||TLS502^^^NORTH&1.2.840.99&ISO^MR~999-11-2222^^^SSA^SS|",
        "PID|1|||",
    );
    let ack = send_message(s, &north, &bad).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert_eq!(
        log_row(s, "PEER-3").await["peerIdentity"],
        "CN=NORTH; DNS=north.example.org"
    );

    // Over HTTP: no client certificate.
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(adt("A01", "PEER-4", "TLS503", "Peer").into_bytes()),
            &[("content-type", "x-application/hl7-v2+er7")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ack_code(&r.text), "AA", "{}", r.text);
    let row = log_row(s, "PEER-4").await;
    assert!(row["peerIdentity"].is_null(), "{row}");
    // Its audit record names the OAuth client whose token sent it instead.
    let sender = audit_sender(s, "PEER-4").await;
    assert_eq!(
        sender["who"]["identifier"]["system"], "urn:charaka:client",
        "{sender}"
    );
    assert!(
        sender["who"]["identifier"]["value"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{sender}"
    );
    assert_eq!(sender["network"]["address"], "127.0.0.1", "{sender}");

    if s.config().database_url.starts_with("sqlite:") {
        let stdout = super::hl7_cli(s, &["list"]);
        let line = |control: &str| {
            stdout
                .lines()
                .find(|l| l.contains(control))
                .unwrap_or_else(|| panic!("{stdout}"))
                .to_string()
        };
        assert!(
            line("PEER-1").ends_with(" [CN=NORTH; DNS=north.example.org]"),
            "{stdout}"
        );
        assert!(!line("PEER-4").contains("[CN="), "{stdout}");
    }
}

/// The sender binding: a certificate named as MSH-4 (its CN or a DNS name,
/// any case) gets AA; another gets AR with ERR 103 at MSH-4, nothing
/// applied, the message logged as rejected without its control id (so the
/// named sender's own message with that id is still applied), and never
/// replayed.
async fn sender_binding(s: &TestServer, pki: &Pki) {
    let north = connector(&pki.server_cert, Some(&pki.client_cert_named("NORTH", &[])));
    let south = connector(
        &pki.server_cert,
        Some(&pki.client_cert_named("SOUTH", &["south.example.org"])),
    );
    let by_dns = connector(
        &pki.server_cert,
        Some(&pki.client_cert_named("interface engine", &["north"])),
    );

    let ack = send_message(s, &north, &adt("A01", "BIND-1", "TLS600", "Bound")).await;
    assert_eq!(ack_code(&ack), "AA", "CN = MSH-4: {ack}");
    assert_eq!(patients(s, "TLS600").await, 1);
    let ack = send_message(s, &by_dns, &adt("A01", "BIND-2", "TLS601", "Bound")).await;
    assert_eq!(
        ack_code(&ack),
        "AA",
        "a DNS name = MSH-4 (case ignored): {ack}"
    );

    let ack = send_message(s, &south, &adt("A01", "BIND-3", "TLS602", "Bound")).await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert!(ack.contains("MSA|AR|BIND-3|"), "{ack}");
    let err = super::segment(&ack, "ERR").unwrap();
    assert!(
        err.starts_with("ERR||MSH^1^4|103^Table value not found^HL70357|E||||"),
        "{err}"
    );
    assert!(
        err.contains(
            "MSH-3 (sending application) `REG` and MSH-4 (sending facility) `NORTH` do not \
             name the client certificate (CN `SOUTH`, DNS `south.example.org`)"
        ),
        "{err}"
    );
    assert_eq!(patients(s, "TLS602").await, 0, "nothing applied");
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    let rows = list["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    let row = &rows[0];
    assert_eq!(row["ack"], "AR");
    assert!(row["controlId"].is_null(), "{row}");
    assert_eq!(row["sender"], "REG|NORTH");
    assert_eq!(row["peerIdentity"], "CN=SOUTH; DNS=south.example.org");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .starts_with("103 Table value not found: MSH-3"),
        "{row}"
    );
    let r = super::replay(s, row["id"].as_i64().unwrap()).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(patients(s, "TLS602").await, 0, "not replayed");

    // The same control id from the sender MSH-4 names: applied, not
    // answered with the other client's AR.
    let ack = send_message(s, &north, &adt("A01", "BIND-3", "TLS602", "Bound")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(patients(s, "TLS602").await, 1);
    // And a message the refused client sends for itself is applied.
    let own = adt("A01", "BIND-4", "TLS603", "Bound").replacen("|REG|NORTH|", "|REG|SOUTH|", 1);
    let ack = send_message(s, &south, &own).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
}

async fn peer_identity_on(server: Option<TestServer>, pki: Pki) {
    let Some(s) = server else { return };
    peer_identity_logged(&s, &pki).await;
    s.stop().await;
}

async fn sender_binding_on(server: Option<TestServer>, pki: Pki) {
    let Some(s) = server else { return };
    sender_binding(&s, &pki).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_identity_logged_on_sqlite() {
    let pki = Pki::new();
    let s = TestServer::sqlite_with(|c| pki.configure(c, true)).await;
    peer_identity_on(Some(s), pki).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_identity_logged_on_postgres() {
    let pki = Pki::new();
    let s = TestServer::postgres_with(|c| pki.configure(c, true)).await;
    peer_identity_on(s, pki).await;
}

fn bind_sender(pki: &Pki, config: &mut Config) {
    pki.configure(config, true);
    config.mllp_tls_bind_sender = true;
    config.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_binding_on_sqlite() {
    let pki = Pki::new();
    let s = TestServer::sqlite_with(|c| bind_sender(&pki, c)).await;
    sender_binding_on(Some(s), pki).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_binding_on_postgres() {
    let pki = Pki::new();
    let s = TestServer::postgres_with(|c| bind_sender(&pki, c)).await;
    sender_binding_on(s, pki).await;
}
