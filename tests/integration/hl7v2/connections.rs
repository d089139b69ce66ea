//! The MLLP connection cap (`mllp_max_connections`) over a real TCP port:
//! a connection beyond the cap is closed at once, nothing read from it;
//! the open ones go on; a connection that closes frees its slot.

use std::time::Duration;

use charaka::config::Config;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{ack_code, adt, Mllp};
use crate::harness::TestServer;

fn cap_of_two(config: &mut Config) {
    config.mllp_max_connections = 2;
}

/// Whether the server closes `stream` within `wait` without being sent
/// anything (EOF, or a reset); false when it stays open, being served.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, stream.read(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("the server sent bytes unasked"),
    }
}

async fn ack_of(c: &mut Mllp, control: &str, mrn: &str) -> String {
    let ack = c.send(&adt("A01", control, mrn, "Capped")).await;
    ack_code(&ack)
}

async fn connection_cap(s: &TestServer) {
    let addr = s.mllp_addr();
    let mut first = Mllp::connect(addr).await;
    let mut second = Mllp::connect(addr).await;
    assert_eq!(ack_of(&mut first, "CAP-1", "CAP100").await, "AA");
    assert_eq!(ack_of(&mut second, "CAP-2", "CAP101").await, "AA");

    // The third: accepted and closed at once, nothing read.
    let mut third = TcpStream::connect(addr).await.expect("accepted");
    assert!(
        closed_within(&mut third, Duration::from_secs(10)).await,
        "a connection beyond the cap is closed"
    );

    // The first two are not disturbed.
    assert_eq!(ack_of(&mut first, "CAP-3", "CAP100").await, "AA");
    assert_eq!(ack_of(&mut second, "CAP-4", "CAP101").await, "AA");

    // One closes: its slot goes to the next connection (once the server
    // has seen the close; a connection refused meanwhile is tried again).
    first.stream_shutdown().await;
    assert!(first.read_ack().await.is_none(), "closed by the server");
    let mut next = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.expect("accepted");
        if !closed_within(&mut stream, Duration::from_millis(300)).await {
            next = Some(Mllp::over(stream));
            break;
        }
    }
    let mut next = next.expect("a slot is free once a connection has closed");
    assert_eq!(ack_of(&mut next, "CAP-5", "CAP102").await, "AA");
    assert_eq!(ack_of(&mut second, "CAP-6", "CAP101").await, "AA");

    // Full again: the next one is refused.
    let mut fourth = TcpStream::connect(addr).await.expect("accepted");
    assert!(closed_within(&mut fourth, Duration::from_secs(10)).await);
    let r = s
        .get("Patient?identifier=urn:oid:1.2.840.99|CAP102")
        .await
        .json();
    assert_eq!(r["entry"].as_array().map(Vec::len), Some(1), "{r}");
}

crate::on_both_databases_with!(cap_of_two; connection_cap);
