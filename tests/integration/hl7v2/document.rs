//! MDM^T02 over MLLP → DocumentReference, field by field.

use base64::Engine as _;

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, seg, segment, Mllp};
use crate::harness::TestServer;

const DOCUMENT: &str = "DocumentReference?identifier=urn:charaka:hl7v2:aa:NORTH|DOC-77";

fn mdm(control: &str, availability: &str, obx: &[&str]) -> String {
    let mut segs = vec![
        format!(
            "MSH|^~\\&|TRANS|NORTH|CHARAKA|MAIN|20240312103000||MDM^T02^MDM_T02|{control}|P|2.6"
        ),
        "EVN|T02|20240312103000".to_string(),
        "PID|1||DOC1^^^NORTH&1.2.840.99&ISO^MR||Note^Nina||19850101|F".to_string(),
        "PV1|1|I|WARD1||||||||||||||||VDOC1^^^NORTH&1.2.840.99&ISO^VN".to_string(),
        seg(
            "TXA",
            &[
                (1, "1"),
                (2, "DS^Discharge summary^HL70270"),
                (3, "TX"),
                (6, "20240312101500"),
                (9, "1234^Carter^John^^^Dr^^^NORTH&1.2.840.99&ISO"),
                (10, "4321^Ruiz^Rosa^^^^^^NORTH&1.2.840.99&ISO"),
                (12, "DOC-77^NORTH"),
                (16, "ds-77.txt"),
                (17, "AU"),
                (19, availability),
                (25, "Discharge summary, ward 1"),
            ],
        ),
    ];
    segs.extend(obx.iter().map(|s| s.to_string()));
    segs.join("\r")
}

const CONTENT: &[&str] = &[
    "OBX|1|TX|18842-5^Discharge summary^LN||Admitted with pneumonia \\T\\ treated.||||||F",
    "OBX|2|TX|18842-5^Discharge summary^LN||Discharged home.||||||F",
    "OBX|3|ED|PDF^Display format^HL70834||^application^pdf^Base64^JVBERi0=||||||F",
];

async fn mdm_t02_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&mdm("MDM-1", "AV", CONTENT)).await;
    assert_eq!(segment(&ack, "MSA").unwrap(), "MSA|AA|MDM-1", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|DOC1")).await;
    let d = one(s, DOCUMENT).await;
    assert_eq!(d["status"], "current", "TXA-19 AV");
    assert_eq!(d["docStatus"], "final", "TXA-17 AU");
    assert_eq!(
        d["subject"]["reference"],
        format!("Patient/{}", p["id"].as_str().unwrap())
    );
    assert_eq!(
        d["type"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0270"
    );
    assert_eq!(d["type"]["coding"][0]["code"], "DS");
    assert_eq!(d["date"], "2024-03-12T10:15:00Z");
    assert_eq!(d["author"][0]["display"], "John Carter");
    assert_eq!(d["authenticator"]["display"], "Rosa Ruiz");
    assert_eq!(d["masterIdentifier"]["value"], "DOC-77");
    assert_eq!(d["identifier"][0]["value"], "ds-77.txt");
    assert_eq!(d["description"], "Discharge summary, ward 1");
    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VDOC1")).await;
    assert_eq!(
        d["context"]["encounter"][0]["reference"],
        format!("Encounter/{}", e["id"].as_str().unwrap())
    );
    let text = &d["content"][0]["attachment"];
    assert_eq!(text["contentType"], "text/plain; charset=utf-8");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "Admitted with pneumonia & treated.\nDischarged home."
    );
    let pdf = &d["content"][1]["attachment"];
    assert_eq!(pdf["contentType"], "application/pdf");
    assert_eq!(pdf["data"], "JVBERi0=");

    // The same document, now obsolete: superseded, in place.
    let ack = c.send(&mdm("MDM-2", "OB", CONTENT)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let again = one(s, DOCUMENT).await;
    assert_eq!(again["id"], d["id"]);
    assert_eq!(again["status"], "superseded");
    assert_eq!(count(s, "DocumentReference").await, 1);
    // No content: AE 101; content of a type a document cannot hold: AE 102.
    let ack = c.send(&mdm("MDM-3", "AV", &[])).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("OBX^1^5|101^"),
        "{ack}"
    );
    let ack = c
        .send(&mdm("MDM-4", "AV", &["OBX|1|NM|1-8^Count^LN||5||||||F"]))
        .await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("OBX^1^2|102^"),
        "{ack}"
    );
    assert_eq!(one(s, DOCUMENT).await["meta"]["versionId"], "2");
}

crate::on_both_databases!(mdm_t02_maps_field_by_field);
