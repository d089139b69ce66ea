//! The visit of an order, result or immunization: a message with a PV1
//! whose PV1-19 names a visit links what it makes to that Encounter
//! (ServiceRequest.encounter, MedicationRequest.encounter,
//! Immunization.encounter, DiagnosticReport.encounter,
//! Observation.encounter, MedicationDispense.context), the one an ADT
//! feed made, or a new one (status unknown) when it is not known yet.

use serde_json::Value;

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, adt, seg, Mllp};
use crate::harness::TestServer;

fn msh(kind: &str, control: &str) -> String {
    format!("MSH|^~\\&|EHR|NORTH|CHARAKA|MAIN|20240305090000||{kind}|{control}|P|2.5.1")
}

fn pid(mrn: &str) -> String {
    format!("PID|1||{mrn}^^^NORTH&1.2.840.99&ISO^MR||Visit^Vera||19750505|F")
}

fn pv1(visit: &str) -> String {
    format!("PV1|1|I|WARD1||||||||||||||||{visit}^^^NORTH&1.2.840.99&ISO^VN")
}

fn reference_of(r: &Value, element: &str) -> String {
    r[element]["reference"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn orders_results_and_immunizations_name_the_visit(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // The ADT feed admits: Encounter VVIS1.
    let ack = c.send(&adt("A01", "VIS-0", "VIS1", "Visit")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VVIS1")).await;
    let encounter = format!("Encounter/{}", e["id"].as_str().unwrap());

    let orm = [
        msh("ORM^O01^ORM_O01", "VIS-1"),
        pid("VIS1"),
        pv1("VVIS1"),
        seg("ORC", &[(1, "NW"), (2, "VO-1^EHR")]),
        seg(
            "OBR",
            &[(1, "1"), (2, "VO-1^EHR"), (4, "71046^XR Chest 2 views^C4")],
        ),
        seg("ORC", &[(1, "NW"), (2, "VO-2^EHR")]),
        seg("RXO", &[(1, "^Aspirin 81 mg"), (2, "81"), (4, "mg^^UCUM")]),
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&orm).await), "AA");
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-1").await;
    assert_eq!(reference_of(&sr, "encounter"), encounter);
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-2",
    )
    .await;
    assert_eq!(reference_of(&mr, "encounter"), encounter);
    // Searchable through the encounter.
    assert_eq!(
        count(s, &format!("ServiceRequest?encounter={encounter}")).await,
        1
    );

    let rde = [
        msh("RDE^O11^RDE_O11", "VIS-2"),
        pid("VIS1"),
        pv1("VVIS1"),
        seg("ORC", &[(1, "NW"), (2, "VO-3^EHR")]),
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
    assert_eq!(ack_code(&c.send(&rde).await), "AA");
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-3",
    )
    .await;
    assert_eq!(reference_of(&mr, "encounter"), encounter);

    let vxu = [
        msh("VXU^V04^VXU_V04", "VIS-3"),
        pid("VIS1"),
        pv1("VVIS1"),
        seg("ORC", &[(1, "RE"), (3, "VIZ-1^NORTH")]),
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
    assert_eq!(ack_code(&c.send(&vxu).await), "AA");
    let imm = one(
        s,
        "Immunization?identifier=urn:charaka:hl7v2:aa:NORTH|VIZ-1",
    )
    .await;
    assert_eq!(reference_of(&imm, "encounter"), encounter);

    let oru = [
        msh("ORU^R01^ORU_R01", "VIS-4"),
        pid("VIS1"),
        pv1("VVIS1"),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, "VO-4^EHR"),
                (3, "VF-4^LAB"),
                (4, "57021-8^CBC^LN"),
                (25, "F"),
            ],
        ),
        "OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F".to_string(),
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&oru).await), "AA");
    let dr = one(
        s,
        "DiagnosticReport?identifier=urn:charaka:hl7v2:aa:LAB|VF-4",
    )
    .await;
    assert_eq!(reference_of(&dr, "encounter"), encounter);
    let obs = one(s, "Observation?code=718-7").await;
    assert_eq!(reference_of(&obs, "encounter"), encounter);
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-4").await;
    assert_eq!(reference_of(&sr, "encounter"), encounter);

    let rds = [
        msh("RDS^O13^RDS_O13", "VIS-5"),
        pid("VIS1"),
        pv1("VVIS1"),
        seg("ORC", &[(1, "RE"), (2, "VO-3^EHR")]),
        seg(
            "RXD",
            &[
                (1, "1"),
                (2, "197361^Amlodipine 5 MG Oral Tablet^RXNORM"),
                (3, "20240306"),
                (4, "30"),
            ],
        ),
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&rds).await), "AA");
    let md = one(s, &format!("MedicationDispense?context={encounter}")).await;
    assert_eq!(reference_of(&md, "context"), encounter);
    assert_eq!(md["subject"], e["subject"]);

    // Still the one Encounter: found, not duplicated nor rewritten.
    assert_eq!(
        count(s, &format!("Encounter?identifier={MRN_SYSTEM}|VVIS1")).await,
        1
    );
    let again = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VVIS1")).await;
    assert_eq!(again["meta"]["versionId"], e["meta"]["versionId"]);
    assert_eq!(again["status"], "in-progress");

    // A visit not known yet: created (status unknown), then referenced.
    let orm = [
        msh("ORM^O01^ORM_O01", "VIS-6"),
        pid("VIS1"),
        pv1("VNEW"),
        seg("ORC", &[(1, "NW"), (2, "VO-6^EHR")]),
        seg("OBR", &[(1, "1"), (2, "VO-6^EHR"), (4, "85025^CBC^C4")]),
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&orm).await), "AA");
    let new = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VNEW")).await;
    assert_eq!(new["status"], "unknown");
    assert_eq!(new["class"]["code"], "IMP");
    assert_eq!(new["subject"], e["subject"]);
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-6").await;
    assert_eq!(
        reference_of(&sr, "encounter"),
        format!("Encounter/{}", new["id"].as_str().unwrap())
    );

    // Without PV1: no encounter.
    let orm = [
        msh("ORM^O01^ORM_O01", "VIS-7"),
        pid("VIS1"),
        seg("ORC", &[(1, "NW"), (2, "VO-7^EHR")]),
        seg("OBR", &[(1, "1"), (2, "VO-7^EHR"), (4, "85025^CBC^C4")]),
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&orm).await), "AA");
    let sr = one(s, "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|VO-7").await;
    assert!(sr.get("encounter").is_none(), "{sr}");
}

crate::on_both_databases!(orders_results_and_immunizations_name_the_visit);
