//! Security labels: ORC-28 (confidentiality code, table 0177) → meta.security
//! of what an order group makes, TXA-18 (document confidentiality status,
//! table 0272) → DocumentReference.securityLabel and meta.security, after
//! the IG ConceptMaps ConfidentialityCode and DocumentConfidentialityStatus.

use serde_json::{json, Value};

use super::ingest::{count, one};
use super::{ack_code, seg, segment, Mllp};
use crate::harness::TestServer;

const V3_CONF: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

fn msh(kind: &str, control: &str) -> String {
    format!("MSH|^~\\&|EHR|NORTH|CHARAKA|MAIN|20240305090000||{kind}|{control}|P|2.5.1")
}

const PID: &str = "PID|1||SEC1^^^NORTH&1.2.840.99&ISO^MR||Label^Lena||19750505|F";

fn orm(control: &str, placer: &str, confidentiality: &str) -> String {
    [
        msh("ORM^O01^ORM_O01", control),
        PID.to_string(),
        seg(
            "ORC",
            &[
                (1, "NW"),
                (2, &format!("{placer}^EHR")),
                (28, confidentiality),
            ],
        ),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, &format!("{placer}^EHR")),
                (4, "71046^XR Chest 2 views^C4"),
            ],
        ),
    ]
    .join("\r")
}

fn security(r: &Value) -> Value {
    r["meta"]["security"].clone()
}

async fn orc_28_labels_orders(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // R (restricted) in table 0177 → v3-Confidentiality R.
    let ack = c.send(&orm("SEC-1", "SO-1", "R^Restricted^HL70177")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|SO-1").await;
    assert_eq!(
        security(&sr),
        json!([{"system": V3_CONF, "code": "R", "display": "restricted"}])
    );
    // Searchable by the label.
    assert_eq!(
        count(s, &format!("ServiceRequest?_security={V3_CONF}|R")).await,
        1
    );
    // A code of another system is kept as given.
    let ack = c
        .send(&orm(
            "SEC-2",
            "SO-2",
            "N^normal^http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
        ))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|SO-2").await;
    assert_eq!(
        security(&sr),
        json!([{"system": V3_CONF, "code": "N", "display": "normal"}])
    );
    // No ORC-28: no label.
    let ack = c.send(&orm("SEC-3", "SO-3", "")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|SO-3").await;
    assert!(sr["meta"].get("security").is_none(), "{sr}");
    // A table 0177 code the map does not have: AE 103, nothing written.
    let ack = c.send(&orm("SEC-4", "SO-4", "ZZ^Secret^HL70177")).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR")
            .unwrap()
            .starts_with("ERR||ORC^1^28|103^Table value not found^HL70357|E"),
        "{ack}"
    );
    assert_eq!(
        count(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|SO-4").await,
        0
    );

    // RDE: ETH (no coding system named: table 0177) → v3-ActCode ETHUD.
    let rde = [
        msh("RDE^O11^RDE_O11", "SEC-5"),
        PID.to_string(),
        seg("ORC", &[(1, "NW"), (2, "RX-9^EHR"), (28, "ETH")]),
        seg(
            "RXE",
            &[
                (2, "197361^Amlodipine 5 MG Oral Tablet^RXNORM"),
                (3, "5"),
                (5, "mg^^UCUM"),
            ],
        ),
    ]
    .join("\r");
    let ack = c.send(&rde).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|RX-9",
    )
    .await;
    assert_eq!(
        security(&mr),
        json!([{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "ETHUD",
            "display": "alcohol use disorder information sensitivity"
        }])
    );

    // VXU: VIP stays in v2-0177 (IG ORC[Immunization]).
    let vxu = [
        msh("VXU^V04^VXU_V04", "SEC-6"),
        PID.to_string(),
        seg(
            "ORC",
            &[
                (1, "RE"),
                (3, "IZ-9^NORTH"),
                (28, "VIP^Very important person^HL70177"),
            ],
        ),
        seg(
            "RXA",
            &[
                (1, "0"),
                (2, "1"),
                (3, "20240310093000"),
                (5, "08^Hep B^CVX"),
                (6, "999"),
            ],
        ),
    ]
    .join("\r");
    let ack = c.send(&vxu).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let imm = one(s, "Immunization?identifier=urn:charaka:hl7v2:aa:NORTH|IZ-9").await;
    assert_eq!(
        security(&imm),
        json!([{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0177",
            "code": "VIP",
            "display": "Very important person or celebrity"
        }])
    );

    // ORU: HIV → v3-Confidentiality HIV on the report and its results.
    let oru = [
        msh("ORU^R01^ORU_R01", "SEC-7"),
        PID.to_string(),
        seg("ORC", &[(1, "RE"), (2, "LO-1^EHR"), (28, "HIV")]),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, "LO-1^EHR"),
                (3, "LF-1^LAB"),
                (4, "57021-8^CBC^LN"),
                (25, "F"),
            ],
        ),
        "OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F".to_string(),
    ]
    .join("\r");
    let ack = c.send(&oru).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let hiv = json!([{"system": V3_CONF, "code": "HIV", "display": "HIV related"}]);
    let dr = one(
        s,
        "DiagnosticReport?identifier=urn:charaka:hl7v2:aa:LAB|LF-1",
    )
    .await;
    assert_eq!(security(&dr), hiv);
    let obs = one(s, "Observation?code=718-7").await;
    assert_eq!(security(&obs), hiv);
}

fn mdm(control: &str, confidentiality: &str) -> String {
    [
        msh("MDM^T02^MDM_T02", control),
        "EVN|T02|20240312103000".to_string(),
        PID.to_string(),
        seg(
            "TXA",
            &[
                (1, "1"),
                (2, "PN^Progress note^HL70270"),
                (3, "TX"),
                (12, &format!("DOC-{control}^NORTH")),
                (17, "AU"),
                (18, confidentiality),
                (19, "AV"),
            ],
        ),
        "OBX|1|TX|11506-3^Progress note^LN||Seen today.||||||F".to_string(),
    ]
    .join("\r")
}

async fn txa_18_labels_documents(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&mdm("SECD-1", "V")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let d = one(
        s,
        "DocumentReference?identifier=urn:charaka:hl7v2:aa:NORTH|DOC-SECD-1",
    )
    .await;
    let label = json!({
        "system": "http://terminology.hl7.org/CodeSystem/v2-0272",
        "code": "V",
        "display": "Very restricted"
    });
    assert_eq!(d["securityLabel"], json!([{"coding": [label.clone()]}]));
    assert_eq!(security(&d), json!([label]));
    // Searchable by either.
    assert_eq!(
        count(
            s,
            "DocumentReference?security-label=http://terminology.hl7.org/CodeSystem/v2-0272|V"
        )
        .await,
        1
    );
    // Empty: no label.
    let ack = c.send(&mdm("SECD-2", "")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let d = one(
        s,
        "DocumentReference?identifier=urn:charaka:hl7v2:aa:NORTH|DOC-SECD-2",
    )
    .await;
    assert!(d.get("securityLabel").is_none() && d["meta"].get("security").is_none());
    // Outside table 0272: AE 103 at TXA-18.
    let ack = c.send(&mdm("SECD-3", "X")).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR")
            .unwrap()
            .starts_with("ERR||TXA^1^18|103^"),
        "{ack}"
    );
    assert_eq!(
        count(
            s,
            "DocumentReference?identifier=urn:charaka:hl7v2:aa:NORTH|DOC-SECD-3"
        )
        .await,
        0
    );
}

crate::on_both_databases!(orc_28_labels_orders, txa_18_labels_documents);
