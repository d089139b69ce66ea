//! HL7 v2 over MLLP: sustained throughput and ACK latency of a running
//! server. `benches/mllp.sh` starts the server and runs this sender:
//!
//!   MLLP_ADDR=127.0.0.1:2575 KIND=adt|oru CONNECTIONS=4 SECONDS=10 \
//!     cargo bench --bench mllp
//!
//! Each connection sends one message, waits for its ACK, and sends the next
//! (original mode, as interface engines do). ADT^A01 messages name a new
//! patient each (PID, PV1, a DG1, an AL1); ORU^R01 messages carry an OBR
//! and 5 OBX. Every ACK must be AA; anything else is counted as an error.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn adt(n: u64, run: u64) -> String {
    [
        format!("MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^A01^ADT_A01|B{run}-{n}|P|2.5.1"),
        "EVN|A01|20240301101500".to_string(),
        format!("PID|1||M{run}-{n}^^^NORTH&1.2.840.99&ISO^MR||Bench^Anne^Q||19800202|F|||12 Main St^^Springfield^IL^62701^USA^H||^PRN^PH^^^217^5551234"),
        format!("PV1|1|I|WARD1^101^B^NORTH||||1234^Carter^John^^^Dr||||MED|||||||||V{run}-{n}^^^NORTH&1.2.840.99&ISO^VN||||||||||||||||||||||||||20240301100000"),
        "AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives".to_string(),
        "DG1|1||J18.9^Pneumonia, unspecified organism^I10||20240301|A".to_string(),
    ]
    .join("\r")
}

fn oru(n: u64, run: u64) -> String {
    let mut segs = vec![
        format!("MSH|^~\\&|LAB|NORTH|CHARAKA|MAIN|20240301120000||ORU^R01^ORU_R01|L{run}-{n}|P|2.5.1"),
        format!("PID|1||L{run}-{}^^^NORTH&1.2.840.99&ISO^MR||Lab^Only||19700101|M", n % 1000),
        format!("OBR|1|P{run}-{n}^ORDERS|F{run}-{n}^LAB|24323-8^Comprehensive metabolic panel^LN|||20240301113000|||||||||5678^Ng^Mai||||||20240301115900|||F"),
    ];
    let codes = [
        ("2345-7", "Glucose", "mg/dL", "70-99", "H", "105"),
        ("2160-0", "Creatinine", "mg/dL", "0.6-1.3", "N", "0.9"),
        ("2951-2", "Sodium", "mmol/L", "136-145", "N", "140"),
        ("2823-3", "Potassium", "mmol/L", "3.5-5.1", "L", "3.2"),
        ("17861-6", "Calcium", "mg/dL", "8.5-10.5", "N", "9.4"),
    ];
    for (i, (code, name, unit, range, flag, value)) in codes.iter().enumerate() {
        segs.push(format!(
            "OBX|{}|NM|{code}^{name}^LN||{value}|{unit}^^UCUM|{range}|{flag}|||F|||20240301114500",
            i + 1
        ));
    }
    segs.join("\r")
}

/// Sends messages until `until`; returns (ACK latencies, errors).
async fn connection(
    addr: String,
    kind: String,
    first: u64,
    stride: u64,
    run: u64,
    until: Instant,
) -> (Vec<Duration>, u64) {
    let mut stream = TcpStream::connect(&addr)
        .await
        .expect("connect to the MLLP port");
    stream.set_nodelay(true).unwrap();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut n = first;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < until {
        let message = if kind == "oru" {
            oru(n, run)
        } else {
            adt(n, run)
        };
        let mut frame = Vec::with_capacity(message.len() + 3);
        frame.push(0x0b);
        frame.extend_from_slice(message.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        let start = Instant::now();
        stream.write_all(&frame).await.expect("send");
        buf.clear();
        loop {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.expect("read the ACK");
            assert!(read > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..read]);
            if buf.ends_with(&[0x1c, 0x0d]) {
                break;
            }
        }
        latencies.push(start.elapsed());
        if !String::from_utf8_lossy(&buf).contains("MSA|AA|") {
            errors += 1;
        }
        n += stride;
    }
    (latencies, errors)
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let addr = env("MLLP_ADDR", "127.0.0.1:2575");
    let kind = env("KIND", "adt");
    let connections: u64 = env("CONNECTIONS", "4").parse().unwrap();
    let seconds: u64 = env("SECONDS", "10").parse().unwrap();
    // Distinct control ids and patients per run, so a run never repeats an
    // earlier one's messages (which would be answered as duplicates).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(connection(
                addr.clone(),
                kind.clone(),
                c,
                connections,
                run,
                until,
            ))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "RESULT kind={kind} connections={connections} messages={} msg_per_s={:.0} ack_p50_ms={:.2} ack_p99_ms={:.2} errors={errors}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
