//! ADT extras over MLLP: PD1 → Patient.generalPractitioner, NK1 →
//! RelatedPerson, GT1 → Account and guarantors, IAM → AllergyIntolerance.

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, seg, Mllp};
use crate::harness::TestServer;

fn adt(trigger: &str, control: &str, iam_action: &str) -> String {
    [
        format!("MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240313090000||ADT^{trigger}^ADT_A01|{control}|P|2.6"),
        format!("EVN|{trigger}|20240313090000"),
        "PID|1||PX1^^^NORTH&1.2.840.99&ISO^MR||Kin^Karl||19500505|M||||||||||ACC-42^^^NORTH".to_string(),
        seg(
            "PD1",
            &[
                (3, "North Family Practice^^^^^NORTH&1.2.840.99&ISO^^^^FP-9"),
                (4, "2222^Gupta^Gita^^^Dr^^^NORTH&1.2.840.99&ISO"),
            ],
        ),
        seg(
            "NK1",
            &[
                (1, "1"),
                (2, "Kin^Kara"),
                (3, "DAU^Daughter^HL70063"),
                (4, "1 Elm St^^Springfield^IL^62701"),
                (5, "^PRN^PH^^^217^5550101"),
                (7, "EP^Emergency contact person^HL70131"),
                (15, "F"),
                (16, "19800808"),
                (33, "NK-1^^^NORTH"),
            ],
        ),
        seg("NK1", &[(1, "2"), (2, "Kin^Kurt"), (3, "BRO^Brother^HL70063")]),
        "PV1|1|O".to_string(),
        seg(
            "GT1",
            &[
                (1, "1"),
                (2, "G-7^^^NORTH"),
                (3, "Kin^Kara"),
                (5, "1 Elm St^^Springfield^IL^62701"),
                (11, "DAU^Daughter^HL70063"),
                (13, "20240101"),
            ],
        ),
        seg(
            "GT1",
            &[(1, "2"), (3, "Kin^Karl"), (11, "SEL^Self^HL70063")],
        ),
        seg(
            "IAM",
            &[
                (1, "1"),
                (2, "FA^Food allergy^HL70127"),
                (3, "91935009^Allergy to peanuts^SCT"),
                (4, "SV^Severe^HL70128"),
                (5, "Anaphylaxis"),
                (6, iam_action),
                (7, "ALG-1^NORTH"),
                (11, "20100101"),
                (13, "20240313080000"),
            ],
        ),
    ]
    .join("\r")
}

async fn adt_extras_map_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&adt("A04", "PX-1", "A")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|PX1")).await;
    let pid = p["id"].as_str().unwrap();
    // PD1-3 facility and PD1-4 provider.
    let gp = p["generalPractitioner"].as_array().unwrap();
    assert_eq!(gp.len(), 2);
    assert_eq!(gp[0]["display"], "North Family Practice");
    let org = s.get(gp[0]["reference"].as_str().unwrap()).await.json();
    assert_eq!(org["identifier"][0]["system"], MRN_SYSTEM);
    assert_eq!(org["identifier"][0]["value"], "FP-9");
    assert_eq!(gp[1]["display"], "Gita Gupta");
    assert!(gp[1]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Practitioner/"));
    // NK1 → RelatedPerson (Patient.contact stays too).
    assert_eq!(p["contact"].as_array().unwrap().len(), 2);
    let kara = one(
        s,
        "RelatedPerson?identifier=urn:charaka:hl7v2:aa:NORTH|NK-1",
    )
    .await;
    assert_eq!(kara["patient"]["reference"], format!("Patient/{pid}"));
    assert_eq!(kara["active"], true);
    assert_eq!(kara["name"][0]["family"], "Kin");
    assert_eq!(kara["name"][0]["given"][0], "Kara");
    assert_eq!(kara["relationship"][0]["coding"][0]["code"], "DAU");
    assert_eq!(kara["relationship"][1]["coding"][0]["code"], "EP");
    assert_eq!(kara["address"][0]["city"], "Springfield");
    assert_eq!(kara["telecom"][0]["value"], "(217) 5550101");
    assert_eq!(kara["gender"], "female");
    assert_eq!(kara["birthDate"], "1980-08-08");
    assert_eq!(
        count(s, &format!("RelatedPerson?patient=Patient/{pid}")).await,
        3,
        "two NK1 and a GT1 guarantor"
    );
    // GT1 → the Account (PID-18) with its guarantors.
    let acct = one(s, "Account?identifier=urn:charaka:hl7v2:aa:NORTH|ACC-42").await;
    assert_eq!(acct["status"], "active");
    assert_eq!(acct["subject"][0]["reference"], format!("Patient/{pid}"));
    let guarantor = one(s, "RelatedPerson?identifier=urn:charaka:hl7v2:aa:NORTH|G-7").await;
    assert_eq!(guarantor["name"][0]["given"][0], "Kara");
    assert_eq!(guarantor["relationship"][0]["coding"][0]["code"], "DAU");
    assert_eq!(
        acct["guarantor"][0]["party"]["reference"],
        format!("RelatedPerson/{}", guarantor["id"].as_str().unwrap())
    );
    assert_eq!(acct["guarantor"][0]["period"]["start"], "2024-01-01");
    assert_eq!(
        acct["guarantor"][1]["party"]["reference"],
        format!("Patient/{pid}"),
        "GT1-11 SEL: the patient is the guarantor"
    );
    // IAM → AllergyIntolerance.
    let a = one(
        s,
        "AllergyIntolerance?identifier=urn:charaka:hl7v2:aa:NORTH|ALG-1",
    )
    .await;
    assert_eq!(a["patient"]["reference"], format!("Patient/{pid}"));
    assert_eq!(a["code"]["coding"][0]["system"], "http://snomed.info/sct");
    assert_eq!(a["code"]["coding"][0]["code"], "91935009");
    assert_eq!(a["clinicalStatus"]["coding"][0]["code"], "active");
    assert_eq!(a["category"][0], "food");
    assert_eq!(a["criticality"], "high");
    assert_eq!(a["reaction"][0]["manifestation"][0]["text"], "Anaphylaxis");
    assert_eq!(a["onsetDateTime"], "2010-01-01");
    assert_eq!(a["recordedDate"], "2024-03-13T08:00:00Z");

    // A08 again: nothing duplicated; IAM-6 D marks the allergy an error.
    let ack = c.send(&adt("A08", "PX-2", "D")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(
        count(s, &format!("RelatedPerson?patient=Patient/{pid}")).await,
        3
    );
    assert_eq!(count(s, &format!("Account?subject=Patient/{pid}")).await, 1);
    assert_eq!(count(s, "Organization?identifier=FP-9").await, 1);
    let a = one(
        s,
        "AllergyIntolerance?identifier=urn:charaka:hl7v2:aa:NORTH|ALG-1",
    )
    .await;
    assert_eq!(
        a["verificationStatus"]["coding"][0]["code"],
        "entered-in-error"
    );
    assert!(a.get("clinicalStatus").is_none(), "R4 ait-2");
}

crate::on_both_databases!(adt_extras_map_field_by_field);
