//! Killed mid-stream: the real server binary takes ADT messages over MLLP
//! and is killed (SIGKILL) while some are in flight; restarted on the same
//! database, the sender sends again every message it has no ACK for, and
//! some it has. Every acknowledged message is stored exactly once, none is
//! lost, and one sent again gets its original ACK back, byte for byte.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use charaka::config::{Config, SecretText};

use super::ingest::count;
use super::{ack_code, adt, Mllp};
use crate::harness::{TestServer, TEST_DATA_KEYS};

const MESSAGES: usize = 40;
/// Messages sent one by one (each ACK awaited) before the rest are sent
/// all at once and the server is killed.
const SEQUENTIAL: usize = 15;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary on `database_url` (data keys from the environment,
/// as the in-process servers of the tests get them); its output in `log`.
fn spawn(database_url: &str, log: &std::path::Path) -> (Child, SocketAddr) {
    let mllp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_charaka"))
        .args(["serve", "--database-url", database_url, "--listen", &http])
        .args(["--mllp-listen", &mllp.to_string()])
        .env("CHARAKA_DATA_KEYS", TEST_DATA_KEYS)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the server binary starts");
    (child, mllp)
}

/// Waits until the MLLP port takes connections.
async fn ready(addr: SocketAddr, child: &mut Child, log: &std::path::Path) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the server did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn control(i: usize) -> String {
    format!("KILL-{i}")
}

fn mrn(i: usize) -> String {
    format!("K{i:03}")
}

async fn killed_mid_stream(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let messages: Vec<String> = (0..MESSAGES)
        .map(|i| adt("A01", &control(i), &mrn(i), "Crash"))
        .collect();
    let mut acks: BTreeMap<usize, String> = BTreeMap::new();

    let (mut child, addr) = spawn(&database_url, &log);
    ready(addr, &mut child, &log).await;
    let mut c = Mllp::connect(addr).await;
    for (i, m) in messages.iter().enumerate().take(SEQUENTIAL) {
        let ack = c.send(m).await;
        assert_eq!(ack_code(&ack), "AA", "{ack}");
        acks.insert(i, ack);
    }
    // The rest at once; read a few ACKs, then kill while the others are in
    // flight (some committed without their ACK read, some not yet).
    let mut rest = Vec::new();
    for m in &messages[SEQUENTIAL..] {
        rest.extend(charaka::hl7v2::mllp::frame(m.as_bytes()));
    }
    c.write_raw(&rest).await;
    for i in SEQUENTIAL..SEQUENTIAL + 3 {
        let ack = c.read_ack().await.expect("an ACK before the kill");
        assert!(
            ack.contains(&format!("|{}\r", control(i))),
            "in order: {ack}"
        );
        acks.insert(i, ack);
    }
    // The next ACK is lost on the way (the sender never sees it): its
    // message is committed without the sender knowing.
    let lost = c.read_ack().await.expect("one more ACK");
    assert!(
        lost.contains(&format!("|{}\r", control(SEQUENTIAL + 3))),
        "{lost}"
    );
    // A moment for a few more to commit, then the kill; ACKs not read by
    // then are lost with the connection.
    tokio::time::sleep(Duration::from_millis(20)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    drop(c);
    assert!(acks.len() < MESSAGES, "the kill came before the last ACK");
    eprintln!(
        "killed with {} of {MESSAGES} messages acknowledged",
        acks.len()
    );

    // Restarted on the same database.
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let (mut child, addr) = spawn(&database_url, &log);
    ready(addr, &mut child, &log).await;
    let mut c = Mllp::connect(addr).await;
    let mut committed_unacknowledged = 0;
    for (i, m) in messages.iter().enumerate() {
        if let Some(original) = acks.get(&i) {
            // Some acknowledged ones again: the original ACK.
            if i % 5 == 0 || i >= SEQUENTIAL {
                let again = c.send(m).await;
                assert_eq!(&again, original, "message {i}: the original ACK");
            }
        } else {
            let ack = c.send(m).await;
            assert_eq!(ack_code(&ack), "AA", "message {i}: {ack}");
            // The ACK's own control id is `C` and the receive time: one from
            // before the restart is the stored ACK of a message committed
            // whose ACK never reached the sender.
            let received: u128 = ack.split('|').nth(9).unwrap()[1..].parse().unwrap();
            if received < restarted {
                committed_unacknowledged += 1;
            }
        }
    }
    eprintln!("{committed_unacknowledged} committed before the kill without their ACK");
    assert!(
        committed_unacknowledged >= 1,
        "the message whose ACK was lost was committed: its original ACK came back"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Every message stored exactly once.
    let config = Config {
        database_url,
        data_keys: Some(SecretText(TEST_DATA_KEYS.to_string())),
        ..Config::default()
    }
    .without_rate_limits();
    let s = TestServer::restart_with(config, |_| {}).await;
    for i in 0..MESSAGES {
        let m = mrn(i);
        assert_eq!(
            count(&s, &format!("Patient?identifier=urn:oid:1.2.840.99|{m}")).await,
            1,
            "one Patient {m}"
        );
        assert_eq!(
            count(&s, &format!("Encounter?identifier=urn:oid:1.2.840.99|V{m}")).await,
            1,
            "one Encounter V{m}"
        );
    }
    let list = s
        .get(&format!("$hl7v2-messages?_count={}", MESSAGES * 2))
        .await
        .json();
    let rows = list["messages"].as_array().unwrap();
    assert_eq!(rows.len(), MESSAGES, "one log row per message: {list}");
    assert!(rows.iter().all(|r| r["status"] == "applied"), "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/charaka.db", dir.path().display());
    killed_mid_stream(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_mid_stream() {
    let Some(url) = crate::pg::database().await else {
        return;
    };
    killed_mid_stream(url).await;
}
