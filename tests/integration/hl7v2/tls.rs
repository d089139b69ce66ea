//! MLLP over TLS: messages over a real TLS connection (rustls client), a
//! plain-TCP client and a silent client on the TLS port (refused, the
//! listener goes on), mutual TLS (a client certificate from the configured
//! CA is required), and certificate reload.

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
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "lab interface engine");
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
    s.mllp_tls().unwrap().reload().unwrap();
    let second = connector(&pki.server_cert, None);
    assert_eq!(send_over_tls(&s, &second, "TLS401").await, "AA");
    assert!(
        connect_tls(&s, &connector(&first, None)).await.is_err(),
        "the old certificate is no longer served"
    );

    std::fs::write(pki.server_key_file(), "not a key").unwrap();
    assert!(s.mllp_tls().unwrap().reload().is_err());
    assert_eq!(send_over_tls(&s, &second, "TLS402").await, "AA");
    s.stop().await;
}
