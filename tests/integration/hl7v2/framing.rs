//! MLLP framing: partial writes, coalesced frames, noise before the start
//! byte, oversize frames, several messages per connection, concurrency.

use super::{ack_code, adt, Mllp};
use crate::harness::TestServer;

async fn partial_writes_are_assembled(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let framed = charaka::hl7v2::mllp::frame(adt("A04", "PART-1", "P100", "Split").as_bytes());
    for chunk in framed.chunks(7) {
        c.write_raw(chunk).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(ack_code(&c.read_ack().await.unwrap()), "AA");
}

async fn coalesced_frames_each_get_an_ack(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend(charaka::hl7v2::mllp::frame(
            adt("A04", &format!("COAL-{i}"), &format!("C{i}"), "Joined").as_bytes(),
        ));
    }
    // Noise before a start byte is discarded.
    let mut noisy = b"\r\nnoise".to_vec();
    noisy.extend(bytes);
    c.write_raw(&noisy).await;
    for i in 0..3 {
        let ack = c.read_ack().await.unwrap();
        assert_eq!(ack_code(&ack), "AA", "{ack}");
        assert!(ack.contains(&format!("|COAL-{i}")), "ACKs in order: {ack}");
    }
}

async fn oversize_frame_is_rejected_and_closed(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let mut big = adt("A04", "BIG-1", "B1", "Large");
    big.push_str("\rNTE|1||");
    big.push_str(&"x".repeat(1024 * 1024 + 10));
    c.write_raw(&charaka::hl7v2::mllp::frame(big.as_bytes()))
        .await;
    let ack = c.read_ack().await.expect("an AR before closing");
    super::assert_oversize_ar(&ack, "BIG-1");
    assert!(c.read_ack().await.is_none(), "connection closed");
    // In the rejected queue, the raw bytes cut at the limit.
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    let row = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["controlId"] == "BIG-1")
        .unwrap_or_else(|| panic!("BIG-1 logged: {list}"))
        .clone();
    assert_eq!(row["ack"], "AR");
    assert_eq!(row["messageType"], "ADT^A04", "{row}");
    let id = row["id"].as_i64().unwrap();
    let stored = s.fhir().get_message(id).await.unwrap().unwrap();
    assert_eq!(stored.status, "rejected");
    let raw = stored.raw.unwrap();
    assert_eq!(raw.len(), s.config().mllp_max_message_bytes);
    assert!(big.as_bytes().starts_with(&raw));
    // Never replayed: what is stored is not the whole message.
    let r = super::replay(s, id).await;
    assert_eq!(r.status, 409, "{}", r.text);
    // Sent again (same control id): the original AR, as for any duplicate.
    let mut c = Mllp::connect(s.mllp_addr()).await;
    c.write_raw(&charaka::hl7v2::mllp::frame(big.as_bytes()))
        .await;
    assert_eq!(c.read_ack().await.unwrap(), ack);
    // `charaka hl7 list --failed` shows it.
    if s.config().database_url.starts_with("sqlite:") {
        let stdout = super::hl7_cli(s, &["list", "--failed"]);
        let line = stdout
            .lines()
            .find(|l| l.contains("BIG-1"))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            line.contains("AR")
                && line.contains("rejected")
                && line.contains("maximum message size"),
            "{line}"
        );
    }
    // A frame over the limit without an MSH: logged, no ACK, closed.
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let mut junk = vec![b'x'; 1024 * 1024 + 10];
    junk.insert(0, 0x0b);
    c.write_raw(&junk).await;
    assert!(c.read_ack().await.is_none(), "no ACK without an MSH");
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    assert_eq!(
        list["messages"].as_array().unwrap().len(),
        2,
        "both oversize frames logged: {list}"
    );
    // A truncated frame (EOF inside it) gets no ACK and writes nothing.
    let mut c = Mllp::connect(s.mllp_addr()).await;
    c.write_raw(b"\x0bMSH|^~\\&|A|B|C|D|2024||ADT^A04|TRUNC|P|2.5")
        .await;
    c.stream_shutdown().await;
    assert!(c.read_ack().await.is_none());
    let r = s
        .get("Patient?identifier=urn:oid:1.2.840.99|B1")
        .await
        .json();
    assert_eq!(r["entry"].as_array().map_or(0, Vec::len), 0);
}

async fn many_connections_at_once(s: &TestServer) {
    let addr = s.mllp_addr();
    let mut tasks = Vec::new();
    for conn in 0..6 {
        tasks.push(tokio::spawn(async move {
            let mut c = Mllp::connect(addr).await;
            for i in 0..5 {
                let ack = c
                    .send(&adt(
                        "A04",
                        &format!("CONC-{conn}-{i}"),
                        &format!("K{conn}"),
                        "Many",
                    ))
                    .await;
                assert_eq!(ack_code(&ack), "AA", "{ack}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = s
        .get("Patient?identifier=urn:oid:1.2.840.99|K3")
        .await
        .json();
    assert_eq!(
        r["entry"].as_array().unwrap().len(),
        1,
        "one patient per MRN"
    );
}

crate::on_both_databases!(
    partial_writes_are_assembled,
    coalesced_frames_each_get_an_ack,
    oversize_frame_is_rejected_and_closed,
    many_connections_at_once,
);
