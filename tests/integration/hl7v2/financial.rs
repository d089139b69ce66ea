//! DFT^P03 over MLLP → ChargeItem, field by field.

use serde_json::json;

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, seg, segment, Mllp};
use crate::harness::TestServer;

fn dft(control: &str, kind: &str, code: &str) -> String {
    [
        format!(
            "MSH|^~\\&|BILL|NORTH|CHARAKA|MAIN|20240311130000||DFT^P03^DFT_P03|{control}|P|2.5.1"
        ),
        "EVN|P03|20240311130000".to_string(),
        "PID|1||FT1M^^^NORTH&1.2.840.99&ISO^MR||Bill^Betty||19700101|F".to_string(),
        "PV1|1|O|CLINIC^1^^NORTH||||||||||||||||VFT1^^^NORTH&1.2.840.99&ISO^VN".to_string(),
        seg(
            "FT1",
            &[
                (1, "1"),
                (2, "TX-1"),
                (4, "20240311093000^20240311100000"),
                (5, "20240311120000"),
                (6, kind),
                (7, code),
                (8, "Office visit, established"),
                (10, "2"),
                (11, "300.00&USD"),
                (19, "R07.9^Chest pain, unspecified^I10"),
                (20, "1234^Carter^John^^^Dr^^^NORTH&1.2.840.99&ISO"),
                (24, "9999^Admin^Ann^^^^^^NORTH&1.2.840.99&ISO"),
            ],
        ),
        seg(
            "FT1",
            &[
                (1, "2"),
                (4, "20240311"),
                (6, "CG"),
                (7, "85025^CBC^C4"),
                (10, "3"),
                (12, "25.10&USD"),
            ],
        ),
    ]
    .join("\r")
}

async fn dft_p03_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&dft("DFT-1", "CG", "99213^^C4")).await;
    assert_eq!(segment(&ack, "MSA").unwrap(), "MSA|AA|DFT-1", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|FT1M")).await;
    let pid = p["id"].as_str().unwrap();
    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VFT1")).await;
    assert_eq!(
        e["status"], "unknown",
        "an encounter first named by the DFT"
    );
    assert_eq!(e["class"]["code"], "AMB");

    let ci = one(s, "ChargeItem?identifier=urn:charaka:hl7v2:aa:NORTH|TX-1").await;
    assert_eq!(ci["status"], "billable");
    assert_eq!(
        ci["code"]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(ci["code"]["coding"][0]["code"], "99213");
    assert_eq!(ci["code"]["text"], "Office visit, established", "FT1-8");
    assert_eq!(ci["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(
        ci["context"]["reference"],
        format!("Encounter/{}", e["id"].as_str().unwrap())
    );
    assert_eq!(ci["occurrencePeriod"]["start"], "2024-03-11T09:30:00Z");
    assert_eq!(ci["occurrencePeriod"]["end"], "2024-03-11T10:00:00Z");
    assert_eq!(ci["enteredDate"], "2024-03-11T12:00:00Z");
    assert_eq!(ci["quantity"]["value"], json!(2));
    assert_eq!(
        ci["priceOverride"]["value"].to_string(),
        "300.00",
        "the decimal as sent"
    );
    assert_eq!(ci["priceOverride"]["currency"], "USD");
    assert_eq!(ci["performer"][0]["actor"]["display"], "John Carter");
    assert_eq!(ci["enterer"]["display"], "Ann Admin");
    assert_eq!(ci["reason"][0]["coding"][0]["code"], "R07.9");
    // The second FT1: no transaction id, unit amount times quantity.
    let all = s
        .get(&format!("ChargeItem?subject=Patient/{pid}&code=85025"))
        .await
        .json();
    let cbc = &all["entry"][0]["resource"];
    assert_eq!(cbc["occurrenceDateTime"], "2024-03-11");
    assert_eq!(cbc["priceOverride"]["value"].to_string(), "75.3");
    assert_eq!(
        count(s, &format!("ChargeItem?subject=Patient/{pid}")).await,
        2
    );

    // Sent again under a new control id: updated, not duplicated.
    assert_eq!(
        ack_code(&c.send(&dft("DFT-2", "CG", "99213^^C4")).await),
        "AA"
    );
    assert_eq!(
        count(s, &format!("ChargeItem?subject=Patient/{pid}")).await,
        2
    );
    assert_eq!(
        count(s, &format!("Encounter?subject=Patient/{pid}")).await,
        1
    );
    // A credit is not a charge: AE 103; a charge without code: AE 101.
    let ack = c.send(&dft("DFT-3", "CD", "99213^^C4")).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("FT1^1^6|103^"),
        "{ack}"
    );
    let ack = c.send(&dft("DFT-4", "CG", "")).await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("FT1^1^7|101^"),
        "{ack}"
    );
    let ci = one(s, "ChargeItem?identifier=urn:charaka:hl7v2:aa:NORTH|TX-1").await;
    assert_eq!(
        ci["meta"]["versionId"], "2",
        "the refused messages wrote nothing"
    );
}

crate::on_both_databases!(dft_p03_maps_field_by_field);
