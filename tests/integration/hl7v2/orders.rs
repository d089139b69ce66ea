//! Orders and immunizations over MLLP, field by field: RDE^O11 and OMP^O09
//! → MedicationRequest (+ Medication), VXU^V04 → Immunization, ORM^O01 and
//! OML^O21 → ServiceRequest.

use serde_json::{json, Value};

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, seg, segment, Mllp};
use crate::harness::TestServer;

const PRACTITIONERS: &str = "NORTH&1.2.840.99&ISO";

fn msh(kind: &str, control: &str) -> String {
    format!("MSH|^~\\&|PHARM|NORTH|CHARAKA|MAIN|20240305090000||{kind}|{control}|P|2.5.1")
}

fn pid_segment(mrn: &str, family: &str) -> String {
    format!("PID|1||{mrn}^^^NORTH&1.2.840.99&ISO^MR||{family}^Paula||19750505|F")
}

/// The resource a reference points at.
async fn follow(s: &TestServer, reference: &Value) -> Value {
    let r = s.get(reference.as_str().expect("a reference")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn rde(control: &str, control_code: &str, give_code: &str) -> String {
    let ordering = format!("5678^Ng^Mai^^^^^^{PRACTITIONERS}");
    [
        msh("RDE^O11^RDE_O11", control),
        pid_segment("RX1", "Pill"),
        seg(
            "ORC",
            &[
                (1, control_code),
                (2, "PO-1^EHR"),
                (3, "FO-1^PHARM"),
                (9, "20240305085500"),
                (12, &ordering),
            ],
        ),
        seg(
            "RXE",
            &[
                (1, "^^^20240305^20240405^R"),
                (2, give_code),
                (3, "5"),
                (4, "10"),
                (5, "mg^milligram^UCUM"),
                (6, "TAB^Tablet^HL70292"),
                (7, "^Take with water"),
                (10, "30"),
                (11, "TAB^Tablet^HL70292"),
                (12, "3"),
            ],
        ),
        seg(
            "TQ1",
            &[
                (1, "1"),
                (3, "BID"),
                (7, "20240305080000"),
                (8, "20240405"),
                (9, "S"),
            ],
        ),
        seg("RXR", &[(1, "PO^Oral^HL70162")]),
        seg("NTE", &[(1, "1"), (3, "Patient prefers mornings")]),
    ]
    .join("\r")
}

async fn rde_o11_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let amlodipine = "197361^Amlodipine 5 MG Oral Tablet^RXNORM";
    // The patient is not known: the order creates it from PID.
    let ack = c.send(&rde("RDE-1", "NW", amlodipine)).await;
    assert_eq!(segment(&ack, "MSA").unwrap(), "MSA|AA|RDE-1", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|RX1")).await;
    assert_eq!(p["name"][0]["family"], "Pill");
    let pid = p["id"].as_str().unwrap();

    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-1",
    )
    .await;
    assert_eq!(mr["status"], "active", "ORC-1 NW");
    assert_eq!(mr["intent"], "order");
    assert_eq!(mr["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(mr["authoredOn"], "2024-03-05T08:55:00Z", "ORC-9");
    assert_eq!(mr["priority"], "stat", "TQ1-9 wins over RXE-1.6");
    assert_eq!(mr["identifier"][0]["type"]["coding"][0]["code"], "PLAC");
    assert_eq!(mr["identifier"][1]["system"], "urn:charaka:hl7v2:aa:PHARM");
    assert_eq!(mr["identifier"][1]["value"], "FO-1");
    assert_eq!(mr["identifier"][1]["type"]["coding"][0]["code"], "FILL");
    assert_eq!(mr["requester"]["display"], "Mai Ng");
    let doc = follow(s, &mr["requester"]["reference"]).await;
    assert_eq!(doc["identifier"][0]["value"], "5678");
    // RXE-2 is coded: a Medication.
    let med = follow(s, &mr["medicationReference"]["reference"]).await;
    assert_eq!(
        med["code"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(med["code"]["coding"][0]["code"], "197361");
    assert_eq!(med["form"]["coding"][0]["code"], "TAB");
    let d = &mr["dosageInstruction"][0];
    let range = &d["doseAndRate"][0]["doseRange"];
    assert_eq!(range["low"]["value"], json!(5));
    assert_eq!(range["high"]["value"], json!(10));
    assert_eq!(range["low"]["system"], "http://unitsofmeasure.org");
    assert_eq!(range["low"]["code"], "mg");
    assert_eq!(range["low"]["unit"], "milligram");
    assert_eq!(d["timing"]["code"]["coding"][0]["code"], "BID");
    assert_eq!(
        d["timing"]["code"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0335"
    );
    assert_eq!(
        d["timing"]["repeat"]["boundsPeriod"]["start"],
        "2024-03-05T08:00:00Z"
    );
    assert_eq!(d["timing"]["repeat"]["boundsPeriod"]["end"], "2024-04-05");
    assert_eq!(d["route"]["coding"][0]["code"], "PO");
    assert_eq!(d["additionalInstruction"][0]["text"], "Take with water");
    let dr = &mr["dispenseRequest"];
    assert_eq!(dr["quantity"]["value"], json!(30));
    assert_eq!(dr["quantity"]["unit"], "Tablet");
    assert_eq!(
        dr["quantity"]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0292"
    );
    assert_eq!(dr["numberOfRepeatsAllowed"], json!(3));
    assert_eq!(mr["note"][0]["text"], "Patient prefers mornings");
    // Provenance and MessageHeader name it.
    let mr_ref = format!("MedicationRequest/{}", mr["id"].as_str().unwrap());
    let prov = one(s, &format!("Provenance?target={mr_ref}")).await;
    assert_eq!(prov["activity"]["coding"][0]["code"], "O11");
    let header = one(s, "MessageHeader?event=O11").await;
    assert!(header["focus"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["reference"] == mr_ref));

    // Discontinued (ORC-1 DC): the same MedicationRequest, stopped; the
    // patient and the Medication are not written again.
    let ack = c.send(&rde("RDE-2", "DC", amlodipine)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let again = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-1",
    )
    .await;
    assert_eq!(again["id"], mr["id"]);
    assert_eq!(again["status"], "stopped");
    assert_eq!(again["medicationReference"], mr["medicationReference"]);
    assert_eq!(count(s, "Medication?code=197361").await, 1);
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|RX1")).await;
    assert_eq!(p["meta"]["versionId"], "1");

    // RXE-2 empty: AE 101 naming RXE-2, nothing written.
    let before = count(s, "MedicationRequest").await;
    let ack = c.send(&rde("RDE-3", "NW", "")).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    let err = segment(&ack, "ERR").unwrap();
    assert!(err.starts_with("ERR||RXE^1^2|101^"), "{err}");
    assert_eq!(count(s, "MedicationRequest").await, before);
    // A refill count that is not a whole number: AE 102.
    let bad = rde("RDE-4", "NW", amlodipine)
        .replace("|30|TAB^Tablet^HL70292|3", "|30|TAB^Tablet^HL70292|2.5");
    let ack = c.send(&bad).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("RXE^1^12|102^"),
        "{ack}"
    );
}

async fn omp_o09_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ordering = format!("5678^Ng^Mai^^^^^^{PRACTITIONERS}");
    let omp = [
        msh("OMP^O09^OMP_O09", "OMP-1"),
        pid_segment("RX2", "Order"),
        seg(
            "ORC",
            &[
                (1, "NW"),
                (2, "PO-2^EHR"),
                (7, "^^^^^A"),
                (9, "20240306100000"),
            ],
        ),
        seg(
            "RXO",
            &[
                (1, "^Ibuprofen 400 mg tablet"),
                (2, ".5"),
                (4, "g^gram^UCUM"),
                (11, "20"),
                (12, "{tbl}^tablet^UCUM"),
                (13, "0"),
                (14, &ordering),
            ],
        ),
        seg("RXR", &[(1, "PO^Oral^HL70162"), (2, "MTH^Mouth^HL70163")]),
    ]
    .join("\r");
    let ack = c.send(&omp).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-2",
    )
    .await;
    assert_eq!(mr["status"], "active");
    assert_eq!(mr["authoredOn"], "2024-03-06T10:00:00Z");
    assert_eq!(mr["priority"], "asap", "ORC-7.6");
    // RXO-1 has text but no code: no Medication.
    assert_eq!(
        mr["medicationCodeableConcept"]["text"],
        "Ibuprofen 400 mg tablet"
    );
    assert!(mr.get("medicationReference").is_none());
    let d = &mr["dosageInstruction"][0];
    assert_eq!(d["doseAndRate"][0]["doseQuantity"]["value"], json!(0.5));
    assert_eq!(d["doseAndRate"][0]["doseQuantity"]["code"], "g");
    assert_eq!(d["route"]["coding"][0]["code"], "PO");
    assert_eq!(d["site"]["coding"][0]["code"], "MTH");
    assert_eq!(mr["dispenseRequest"]["quantity"]["value"], json!(20));
    assert_eq!(mr["dispenseRequest"]["numberOfRepeatsAllowed"], json!(0));
    assert_eq!(
        mr["requester"]["display"], "Mai Ng",
        "RXO-14 without ORC-12"
    );
    // ORC-5 CM: completed.
    let done = omp
        .replace("OMP-1", "OMP-2")
        .replace("ORC|NW|PO-2^EHR|||", "ORC|SC|PO-2^EHR|||CM");
    assert_eq!(ack_code(&c.send(&done).await), "AA");
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-2",
    )
    .await;
    assert_eq!(mr["status"], "completed");
}

fn vxu(control: &str, completion: &str, refusal: &str) -> String {
    let admin = format!("9999^Admin^Ann^^^^^^{PRACTITIONERS}");
    let ordering = format!("1234^Carter^John^^^Dr^^^{PRACTITIONERS}");
    [
        msh("VXU^V04^VXU_V04", control),
        "PID|1||IM1^^^NORTH&1.2.840.99&ISO^MR||Shot^Sam||20200101|M".to_string(),
        seg(
            "ORC",
            &[
                (1, "RE"),
                (3, "IZ-100^NORTH"),
                (9, "20240310100000"),
                (12, &ordering),
            ],
        ),
        seg(
            "RXA",
            &[
                (1, "0"),
                (2, "1"),
                (3, "20240310093000"),
                (4, "20240310093000"),
                (5, "08^Hep B, adolescent or pediatric^CVX"),
                (6, "0.5"),
                (7, "mL^milliliter^UCUM"),
                (9, "00^New immunization record^NIP001"),
                (10, &admin),
                (15, "LOT42"),
                (16, "20251231"),
                (17, "MSD^Merck and Co., Inc.^MVX"),
                (18, refusal),
                (20, completion),
                (21, "A"),
            ],
        ),
        "RXR|C28161^Intramuscular^NCIT|LA^Left Arm^HL70163".to_string(),
        "OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC eligible - Medicaid^HL70064||||||F".to_string(),
        "OBX|2|CE|30963-3^Vaccine funding source^LN|2|VXC1^Medicaid^CDCPHINVS||||||F".to_string(),
        "OBX|3|CE|69764-9^Document type^LN|3|253088698300012711120420^Hep B VIS^cdcgs1vis||||||F".to_string(),
        "OBX|4|TS|29768-9^Date VIS published^LN|3|20120202||||||F".to_string(),
        "OBX|5|TS|29769-7^Date VIS presented^LN|3|20240310||||||F".to_string(),
    ]
    .join("\r")
}

async fn vxu_v04_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&vxu("VXU-1", "CP", "")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|IM1")).await;
    let pid = p["id"].as_str().unwrap();
    let imm = one(
        s,
        "Immunization?identifier=urn:charaka:hl7v2:aa:NORTH|IZ-100",
    )
    .await;
    assert_eq!(imm["status"], "completed", "RXA-20 CP");
    assert_eq!(imm["patient"]["reference"], format!("Patient/{pid}"));
    assert_eq!(imm["identifier"][0]["type"]["coding"][0]["code"], "FILL");
    assert_eq!(
        imm["vaccineCode"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/cvx"
    );
    assert_eq!(imm["vaccineCode"]["coding"][0]["code"], "08");
    assert_eq!(imm["occurrenceDateTime"], "2024-03-10T09:30:00Z");
    assert_eq!(imm["recorded"], "2024-03-10T10:00:00Z", "ORC-9");
    assert_eq!(imm["doseQuantity"]["value"], json!(0.5));
    assert_eq!(imm["doseQuantity"]["code"], "mL");
    assert_eq!(imm["doseQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(imm["lotNumber"], "LOT42");
    assert_eq!(imm["expirationDate"], "2025-12-31");
    assert_eq!(imm["primarySource"], true, "RXA-9 00");
    assert_eq!(imm["manufacturer"]["display"], "Merck and Co., Inc.");
    let org = follow(s, &imm["manufacturer"]["reference"]).await;
    assert_eq!(
        org["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/mvx"
    );
    assert_eq!(org["identifier"][0]["value"], "MSD");
    assert_eq!(org["name"], "Merck and Co., Inc.");
    assert_eq!(imm["performer"][0]["function"]["coding"][0]["code"], "AP");
    assert_eq!(imm["performer"][0]["actor"]["display"], "Ann Admin");
    assert_eq!(imm["performer"][1]["function"]["coding"][0]["code"], "OP");
    assert_eq!(imm["performer"][1]["actor"]["display"], "John Carter");
    assert_eq!(imm["route"]["coding"][0]["code"], "C28161");
    assert_eq!(imm["site"]["coding"][0]["code"], "LA");
    assert_eq!(imm["programEligibility"][0]["coding"][0]["code"], "V02");
    assert_eq!(imm["fundingSource"]["coding"][0]["code"], "VXC1");
    assert_eq!(
        imm["education"][0]["documentType"],
        "253088698300012711120420"
    );
    assert_eq!(imm["education"][0]["publicationDate"], "2012-02-02");
    assert_eq!(imm["education"][0]["presentationDate"], "2024-03-10");

    // The same record (ORC-3) now refused: updated in place, not-done.
    let ack = c
        .send(&vxu("VXU-2", "RE", "00^Parental decision^NIP002"))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let again = one(
        s,
        "Immunization?identifier=urn:charaka:hl7v2:aa:NORTH|IZ-100",
    )
    .await;
    assert_eq!(again["id"], imm["id"]);
    assert_eq!(again["status"], "not-done");
    assert_eq!(again["statusReason"]["coding"][0]["code"], "00");
    assert_eq!(
        count(s, "Organization?identifier=http://hl7.org/fhir/sid/mvx|MSD").await,
        1
    );
    // A completion status outside table 0322: AE 103, nothing written.
    let ack = c.send(&vxu("VXU-3", "ZZ", "")).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("RXA^1^20|103^"),
        "{ack}"
    );
    let still = one(
        s,
        "Immunization?identifier=urn:charaka:hl7v2:aa:NORTH|IZ-100",
    )
    .await;
    assert_eq!(still["meta"]["versionId"], "2");
    // RXA-3 missing: AE 101.
    let ack = c
        .send(&vxu("VXU-4", "CP", "").replace("|20240310093000|20240310093000|", "|||"))
        .await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("RXA^1^3|101^"),
        "{ack}"
    );
}

async fn orm_and_oml_map_to_service_requests(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ordering = format!("5678^Ng^Mai^^^^^^{PRACTITIONERS}");
    let referring = format!("4321^Ruiz^Rosa^^^^^^{PRACTITIONERS}");
    let orm = [
        msh("ORM^O01^ORM_O01", "ORM-1"),
        pid_segment("SR1", "Order"),
        "PV1|1|O".to_string(),
        seg(
            "ORC",
            &[
                (1, "NW"),
                (2, "ORD-1^EHR"),
                (4, "GRP-1&EHR"),
                (7, "^^^20240308^^S"),
                (9, "20240307080000"),
                (12, &ordering),
            ],
        ),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, "ORD-1^EHR"),
                (4, "71046^XR Chest 2 views^C4"),
                (31, "R07.9^Chest pain, unspecified^I10"),
            ],
        ),
        "NTE|1||Rule out pneumonia".to_string(),
        seg("ORC", &[(1, "NW"), (2, "ORD-2^EHR"), (3, "LAB-2^LAB")]),
        seg("OBR", &[(1, "2"), (4, "85025^CBC^C4"), (16, &referring)]),
        seg("ORC", &[(1, "NW"), (2, "ORD-3^EHR")]),
        seg("RXO", &[(1, "^Aspirin 81 mg"), (11, "90")]),
    ]
    .join("\r");
    let ack = c.send(&orm).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|SR1")).await;
    let pid = p["id"].as_str().unwrap();
    let sr = one(
        s,
        "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|ORD-1",
    )
    .await;
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(
        sr["code"]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(sr["code"]["coding"][0]["code"], "71046");
    assert_eq!(sr["identifier"][0]["type"]["coding"][0]["code"], "PLAC");
    assert_eq!(sr["requisition"]["value"], "GRP-1");
    assert_eq!(sr["requisition"]["system"], "urn:charaka:hl7v2:aa:EHR");
    assert_eq!(sr["requisition"]["type"]["coding"][0]["code"], "PGN");
    assert_eq!(sr["authoredOn"], "2024-03-07T08:00:00Z");
    assert_eq!(sr["priority"], "stat", "ORC-7.6");
    assert_eq!(sr["occurrenceDateTime"], "2024-03-08");
    assert_eq!(sr["requester"]["display"], "Mai Ng");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "R07.9");
    assert_eq!(sr["note"][0]["text"], "Rule out pneumonia");
    // The second order: ORC-2/ORC-3 as identifiers, OBR-16 as requester.
    let sr2 = one(
        s,
        "ServiceRequest?identifier=urn:charaka:hl7v2:aa:LAB|LAB-2",
    )
    .await;
    assert_eq!(sr2["identifier"][0]["value"], "ORD-2");
    assert_eq!(sr2["identifier"][1]["type"]["coding"][0]["code"], "FILL");
    assert_eq!(sr2["code"]["coding"][0]["code"], "85025");
    assert_eq!(sr2["requester"]["display"], "Rosa Ruiz");
    // The RXO order: a MedicationRequest.
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|ORD-3",
    )
    .await;
    assert_eq!(mr["medicationCodeableConcept"]["text"], "Aspirin 81 mg");
    assert_eq!(mr["dispenseRequest"]["quantity"]["value"], json!(90));
    assert_eq!(
        count(s, &format!("ServiceRequest?subject=Patient/{pid}")).await,
        2
    );

    // OML^O21 cancels the first order (ORC-5 CA): revoked, same resource.
    let oml = [
        msh("OML^O21^OML_O21", "OML-1"),
        pid_segment("SR1", "Order"),
        seg("ORC", &[(1, "CA"), (2, "ORD-1^EHR"), (5, "CA")]),
        seg(
            "OBR",
            &[(1, "1"), (2, "ORD-1^EHR"), (4, "71046^XR Chest 2 views^C4")],
        ),
    ]
    .join("\r");
    let ack = c.send(&oml).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let again = one(
        s,
        "ServiceRequest?identifier=urn:charaka:hl7v2:aa:EHR|ORD-1",
    )
    .await;
    assert_eq!(again["id"], sr["id"]);
    assert_eq!(again["status"], "revoked");
    let header = one(s, "MessageHeader?event=O21").await;
    assert!(header["focus"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["reference"] == format!("ServiceRequest/{}", sr["id"].as_str().unwrap())));

    // An order without detail segment: AE 101 at the ORC.
    let bare = [
        msh("ORM^O01^ORM_O01", "ORM-2"),
        pid_segment("SR2", "Bare"),
        seg("ORC", &[(1, "NW"), (2, "ORD-9^EHR")]),
    ]
    .join("\r");
    let ack = c.send(&bare).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("ORC^1^1|101^"),
        "{ack}"
    );
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|SR2")).await,
        0
    );
    // OBR-4 missing: AE 101 at OBR-4.
    let ack = c
        .send(
            &oml.replace("OML-1", "OML-2")
                .replace("|71046^XR Chest 2 views^C4", "|"),
        )
        .await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("OBR^1^4|101^"),
        "{ack}"
    );
}

fn rds(control: &str, placer: &str, with_rxe: bool) -> String {
    let pharmacist = format!("7777^Chen^Lee^^^^^^{PRACTITIONERS}");
    let mut segs = vec![
        msh("RDS^O13^RDS_O13", control),
        pid_segment("RX3", "Dispense"),
        seg("ORC", &[(1, "RE"), (2, placer), (3, "FD-1^PHARM")]),
    ];
    if with_rxe {
        segs.push(seg(
            "RXE",
            &[
                (2, "310965^Ibuprofen 200 MG Oral Tablet^RXNORM"),
                (3, "1"),
                (5, "{tbl}^tablet^UCUM"),
            ],
        ));
    }
    segs.push(seg(
        "RXD",
        &[
            (1, "1"),
            (2, "310965^Ibuprofen 200 MG Oral Tablet^RXNORM"),
            (3, "20240309143000"),
            (4, "60"),
            (5, "{tbl}^tablet^UCUM"),
            (6, "TAB^Tablet^HL70292"),
            (7, "RX-555"),
            (9, "^Counselled on dosing"),
            (10, &pharmacist),
            (12, "3^{tbl}"),
        ],
    ));
    segs.join("\r")
}

async fn rds_o13_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // The order is known (an RDE): the dispense points at it.
    let order = rde("RDS-0", "NW", "310965^Ibuprofen 200 MG Oral Tablet^RXNORM")
        .replace("RX1^^^", "RX3^^^")
        .replace("PO-1^EHR", "PO-7^EHR");
    assert_eq!(ack_code(&c.send(&order).await), "AA");
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-7",
    )
    .await;
    let ack = c.send(&rds("RDS-1", "PO-7^EHR", false)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|RX3")).await;
    let md = one(
        s,
        &format!(
            "MedicationDispense?subject=Patient/{}",
            p["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(md["status"], "completed");
    assert_eq!(
        md["authorizingPrescription"][0]["reference"],
        format!("MedicationRequest/{}", mr["id"].as_str().unwrap())
    );
    assert_eq!(
        md["medicationReference"], mr["medicationReference"],
        "one Medication per code"
    );
    assert_eq!(md["quantity"]["value"], json!(60));
    assert_eq!(md["quantity"]["code"], "{tbl}");
    assert_eq!(
        md["daysSupply"]["value"],
        json!(20),
        "60 tablets at 3 a day"
    );
    assert_eq!(md["daysSupply"]["code"], "d");
    assert_eq!(md["whenHandedOver"], "2024-03-09T14:30:00Z");
    assert_eq!(md["performer"][0]["actor"]["display"], "Lee Chen");
    assert_eq!(md["note"][0]["text"], "Counselled on dosing");
    assert_eq!(md["identifier"][1]["value"], "RX-555");
    let again = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-7",
    )
    .await;
    assert_eq!(
        again["meta"]["versionId"], "1",
        "the order is not rewritten"
    );
    // Sent again: the same dispense, updated.
    assert_eq!(
        ack_code(&c.send(&rds("RDS-2", "PO-7^EHR", false)).await),
        "AA"
    );
    assert_eq!(count(s, "MedicationDispense?identifier=RX-555").await, 1);

    // The order is not known: it is created from the RXE.
    assert_eq!(
        ack_code(&c.send(&rds("RDS-3", "PO-8^EHR", true)).await),
        "AA"
    );
    let mr = one(
        s,
        "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-8",
    )
    .await;
    assert_eq!(
        mr["status"], "unknown",
        "ORC-1 RE says nothing of the order's status"
    );
    assert_eq!(
        mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"],
        json!(1)
    );
    let md = one(
        s,
        &format!(
            "MedicationDispense?prescription=MedicationRequest/{}",
            mr["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(md["whenHandedOver"], "2024-03-09T14:30:00Z");

    // RXD-2 empty: AE 101, nothing written.
    let ack = c
        .send(
            &rds("RDS-4", "PO-9^EHR", false)
                .replace("|310965^Ibuprofen 200 MG Oral Tablet^RXNORM|2024", "||2024"),
        )
        .await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("RXD^1^2|101^"),
        "{ack}"
    );
    assert_eq!(
        count(
            s,
            "MedicationRequest?identifier=urn:charaka:hl7v2:aa:EHR|PO-9"
        )
        .await,
        0
    );
}

crate::on_both_databases!(
    rds_o13_maps_field_by_field,
    rde_o11_maps_field_by_field,
    omp_o09_maps_field_by_field,
    vxu_v04_maps_field_by_field,
    orm_and_oml_map_to_service_requests,
);
