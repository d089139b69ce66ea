//! The HL7 v2 bridge over a real MLLP connection and over HTTP: ACK codes,
//! the resources created (field by field), duplicates, framing, the failed
//! message queue and replay, restarts, and the shared sample messages.

mod connections;
mod crash;
mod document;
mod financial;
mod framing;
mod ingest;
mod orders;
mod patient_extras;
mod processing;
mod scheduling;
mod security;
mod third_party;
mod tls;
mod visits;

use std::time::Duration;

/// Like `on_both_databases!`, on servers whose configuration `$configure`
/// (a `fn(&mut Config)`) adjusts.
#[macro_export]
macro_rules! on_both_databases_with {
    ($configure:ident; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::harness::TestServer::sqlite_with(super::$configure).await;
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) =
                        $crate::harness::TestServer::postgres_with(super::$configure).await
                    else {
                        return;
                    };
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// An MLLP client connection, over plain TCP or over TLS.
pub struct Mllp<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl Mllp<TcpStream> {
    pub async fn connect(addr: std::net::SocketAddr) -> Mllp {
        Mllp::over(TcpStream::connect(addr).await.expect("MLLP connect"))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Mllp<S> {
    /// MLLP over an open stream (a TLS client stream).
    pub fn over(stream: S) -> Mllp<S> {
        Mllp {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Reads one framed reply; None when the server closed the connection.
    pub async fn read_ack(&mut self) -> Option<String> {
        loop {
            if let Some(start) = self.buf.iter().position(|b| *b == 0x0b) {
                if let Some(end) = self.buf[start..].windows(2).position(|w| w == [0x1c, 0x0d]) {
                    let msg = self.buf[start + 1..start + end].to_vec();
                    self.buf.drain(..start + end + 2);
                    return Some(String::from_utf8(msg).unwrap());
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut chunk))
                .await
                .expect("ACK within 20 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Closes the writing half (the server sees EOF).
    pub async fn stream_shutdown(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    /// Sends one message and returns its ACK.
    pub async fn send(&mut self, message: &str) -> String {
        self.write_raw(&charaka::hl7v2::mllp::frame(message.as_bytes()))
            .await;
        self.read_ack().await.expect("an ACK")
    }
}

/// `POST [base]/$hl7v2-replay?id=ID` as the test's administrator.
pub async fn replay(s: &crate::harness::TestServer, id: i64) -> crate::harness::Resp {
    s.send(
        reqwest::Method::POST,
        &format!("$hl7v2-replay?id={id}"),
        None,
        &[],
    )
    .await
}

/// The AR answering a message over the size limit: MSA names it, ERR
/// carries error 207.
pub fn assert_oversize_ar(ack: &str, control: &str) {
    assert_eq!(ack_code(ack), "AR", "{ack}");
    assert!(
        ack.contains(&format!(
            "MSA|AR|{control}|the message exceeds the maximum message size"
        )),
        "{ack}"
    );
    assert!(
        segment(ack, "ERR")
            .unwrap()
            .contains("|207^Application internal error^HL70357|E"),
        "{ack}"
    );
}

/// MSA-1 of an ACK.
/// Runs `charaka hl7 ARGS --database-url <the server's>` and returns its
/// output, asserting it succeeded.
pub fn hl7_cli(s: &crate::harness::TestServer, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_charaka"))
        .arg("hl7")
        .args(args)
        .args(["--database-url", &s.config().database_url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub fn ack_code(ack: &str) -> String {
    ack.split('\r')
        .find(|s| s.starts_with("MSA"))
        .and_then(|s| s.split('|').nth(1))
        .unwrap_or("")
        .to_string()
}

/// A segment of an ACK by name.
pub fn segment<'a>(ack: &'a str, name: &str) -> Option<&'a str> {
    ack.split('\r').find(|s| s.starts_with(name))
}

/// A segment from (field number, value) pairs; the fields not named are
/// empty.
pub fn seg(name: &str, fields: &[(usize, &str)]) -> String {
    let max = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut out = vec![String::new(); max];
    for (n, v) in fields {
        out[n - 1] = (*v).to_string();
    }
    format!("{name}|{}", out.join("|"))
}

/// An ADT message for a patient with MRN `mrn`.
pub fn adt(trigger: &str, control: &str, mrn: &str, family: &str) -> String {
    [
        format!("MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^{trigger}^ADT_A01|{control}|P|2.5.1"),
        format!("EVN|{trigger}|20240301101500"),
        format!("PID|1||{mrn}^^^NORTH&1.2.840.99&ISO^MR~999-11-2222^^^SSA^SS||{family}^Anne^Q^^Dr~Smith^Anne^^^^^M||19800202|F|||12 Main St^Apt 4^Springfield^IL^62701^USA^H||^PRN^PH^^^217^5551234~^NET^Internet^anne@example.org|^WPN^PH^^^217^5559999||M|||||||N"),
        "NK1|1|O'Neil^Tom|SPO^Spouse^HL70063|12 Main St^^Springfield^IL^62701|^PRN^PH^^^217^5551235".to_string(),
        format!("PV1|1|I|WARD1^101^B^NORTH||||1234^Carter^John^^^Dr^^^NORTH&1.2.840.99&ISO|||MED||||7|||1234^Carter^John^^^Dr^^^NORTH&1.2.840.99&ISO||V{mrn}^^^NORTH&1.2.840.99&ISO^VN||||||||||||||||||01||||||||20240301100000"),
        "AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives~Wheezing|20200101".to_string(),
        "DG1|1||J18.9^Pneumonia, unspecified organism^I10||20240301|A".to_string(),
        "ZXX|kept|but ignored".to_string(),
    ]
    .join("\r")
}

/// An ORU^R01 with `n` numeric OBX.
pub fn oru(control: &str, mrn: &str, filler: &str, n: usize) -> String {
    let mut segs = vec![
        format!("MSH|^~\\&|LAB|NORTH|CHARAKA|MAIN|20240301120000||ORU^R01^ORU_R01|{control}|P|2.5.1"),
        format!("PID|1||{mrn}^^^NORTH&1.2.840.99&ISO^MR||Lab^Only||19700101|M"),
        format!("OBR|1|P{filler}^ORDERS|{filler}^LAB|24323-8^Comprehensive metabolic panel^LN|||20240301113000|||||||||5678^Ng^Mai^^^^^^NORTH&1.2.840.99&ISO||||||20240301115900|||F"),
        "NTE|1||Fasting sample".to_string(),
    ];
    let codes = [
        ("2345-7", "Glucose", "mg/dL", "70-99", "H", "105"),
        ("2160-0", "Creatinine", "mg/dL", "0.6-1.3", "N", "0.9"),
        ("2951-2", "Sodium", "mmol/L", "136-145", "N", "140"),
        ("2823-3", "Potassium", "mmol/L", "3.5-5.1", "L", "3.2"),
        ("17861-6", "Calcium", "mg/dL", "8.5-10.5", "N", "9.4"),
    ];
    for i in 0..n {
        let (code, name, unit, range, flag, value) = codes[i % codes.len()];
        segs.push(format!(
            "OBX|{}|NM|{code}^{name}^LN|{i}|{value}|{unit}^^UCUM|{range}|{flag}|||F|||20240301114500"
        , i + 1));
    }
    segs.join("\r")
}
