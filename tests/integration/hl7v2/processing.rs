//! MSH-11 processing id: a server applies the processing ids it is
//! configured for (`hl7v2_processing_ids`, default `P`); any other is
//! answered `AR` with ERR 202 at MSH-11, nothing is applied, and the
//! message is in the rejected queue. The ACK's MSH-11 mirrors the
//! message's.

use charaka::config::Config;

use super::ingest::{count, MRN_SYSTEM};
use super::{ack_code, adt, segment, Mllp};
use crate::harness::TestServer;

/// The same ADT with MSH-11 replaced.
fn with_processing(trigger: &str, control: &str, mrn: &str, processing: &str) -> String {
    adt(trigger, control, mrn, "Proc").replacen(
        &format!("|{control}|P|2.5.1"),
        &format!("|{control}|{processing}|2.5.1"),
        1,
    )
}

/// MSH-11 of an ACK.
fn msh_11(ack: &str) -> String {
    segment(ack, "MSH")
        .unwrap()
        .split('|')
        .nth(10)
        .unwrap()
        .to_string()
}

async fn production_server_rejects_training_and_debugging(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    for (i, p) in ["T", "D"].iter().enumerate() {
        let control = format!("PROC-{i}");
        let ack = c
            .send(&with_processing("A04", &control, &format!("PR{i}"), p))
            .await;
        assert_eq!(ack_code(&ack), "AR", "{ack}");
        assert_eq!(msh_11(&ack), *p, "the ACK mirrors MSH-11: {ack}");
        let name = if *p == "T" { "training" } else { "debugging" };
        assert_eq!(
            segment(&ack, "MSA").unwrap(),
            format!(
                "MSA|AR|{control}|processing id {p} ({name}) is not applied by this server, which applies P (production)"
            )
        );
        let err = segment(&ack, "ERR").unwrap();
        assert!(
            err.starts_with("ERR||MSH^1^11|202^Unsupported processing id^HL70357|E||||"),
            "{err}"
        );
        assert_eq!(
            count(s, &format!("Patient?identifier={MRN_SYSTEM}|PR{i}")).await,
            0,
            "nothing applied"
        );
    }
    // Empty MSH-11 (required): AR 101.
    let ack = c.send(&with_processing("A04", "PROC-E", "PRE", "")).await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("|MSH^1^11|101^"),
        "{ack}"
    );
    assert_eq!(msh_11(&ack), "P", "an ACK without a processing id says P");
    // Production with a processing mode (initial load): applied.
    let ack = c
        .send(&with_processing("A04", "PROC-I", "PRI", "P^I"))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(msh_11(&ack), "P^I");
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|PRI")).await,
        1
    );
    // A processing mode outside table 0207: AR 202.
    let ack = c
        .send(&with_processing("A04", "PROC-Z", "PRZ", "P^Z"))
        .await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("|MSH^1^11|202^"),
        "{ack}"
    );
    // Over HTTP the same rule.
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(with_processing("A04", "PROC-H", "PRH", "T").into_bytes()),
            &[("content-type", "x-application/hl7-v2+er7")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ack_code(&r.text), "AR", "{}", r.text);
    // All four rejections are in the rejected queue.
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    let controls: Vec<&str> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["controlId"].as_str().unwrap())
        .collect();
    for c in ["PROC-0", "PROC-1", "PROC-E", "PROC-Z", "PROC-H"] {
        assert!(controls.contains(&c), "{c} in {list}");
    }
}

fn training(config: &mut Config) {
    config.hl7v2_processing_ids = vec!["T".to_string()];
}

async fn training_server_applies_training_only(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&with_processing("A04", "TRN-1", "TR1", "T")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(msh_11(&ack), "T");
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|TR1")).await,
        1
    );
    let ack = c.send(&with_processing("A04", "TRN-2", "TR2", "P")).await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert_eq!(msh_11(&ack), "P");
    assert!(
        segment(&ack, "MSA")
            .unwrap()
            .ends_with("processing id P (production) is not applied by this server, which applies T (training)"),
        "{ack}"
    );
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|TR2")).await,
        0
    );
}

crate::on_both_databases!(production_server_rejects_training_and_debugging);

mod training_server {
    use super::*;
    crate::on_both_databases_with!(training; training_server_applies_training_only);
}
