//! MDM^T01–T11 over MLLP → DocumentReference, field by field.

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

/// An MDM of any event about document `number` (TXA-12) with parent
/// `parent` (TXA-13) and `content` OBX lines.
fn event(trigger: &str, control: &str, number: &str, parent: &str, content: &[&str]) -> String {
    let mut segs = vec![
        format!(
            "MSH|^~\\&|TRANS|NORTH|CHARAKA|MAIN|20240312103000||MDM^{trigger}^MDM_T02|{control}|P|2.6"
        ),
        format!("EVN|{trigger}|20240312103000"),
        "PID|1||DOC2^^^NORTH&1.2.840.99&ISO^MR||Note^Nina||19850101|F".to_string(),
        "PV1|1|O".to_string(),
        seg(
            "TXA",
            &[
                (1, "1"),
                (2, "PN^Progress note^HL70270"),
                (3, "TX"),
                (12, &format!("{number}^NORTH")),
                (13, parent),
                (16, &format!("{number}.txt")),
                (17, "AU"),
            ],
        ),
    ];
    segs.extend(content.iter().map(|s| s.to_string()));
    segs.join("\r")
}

fn doc(number: &str) -> String {
    format!("DocumentReference?identifier=urn:charaka:hl7v2:aa:NORTH|{number}")
}

fn text_of(d: &serde_json::Value) -> String {
    let data = d["content"][0]["attachment"]["data"]
        .as_str()
        .unwrap_or_default();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

const NOTE: &[&str] = &["OBX|1|TX|11506-3^Progress note^LN||Original text.||||||F"];

/// T01–T11: status change, addendum, replacement, edit, cancel, and the
/// notifications without content.
async fn mdm_events_map_to_document_changes(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // T02: the original.
    let ack = c.send(&event("T02", "EV-1", "A", "", NOTE)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a = one(s, &doc("A")).await;
    let a_ref = format!("DocumentReference/{}", a["id"].as_str().unwrap());

    // T03 without content: status, completion and confidentiality patched;
    // the content stays.
    let t03 = event("T03", "EV-2", "A", "", &[]).replace("|A.txt|AU", "|A.txt|LA|R|AV");
    let ack = c.send(&t03).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a2 = one(s, &doc("A")).await;
    assert_eq!(a2["id"], a["id"]);
    assert_eq!(a2["meta"]["versionId"], "2");
    assert_eq!(a2["status"], "current");
    assert_eq!(a2["docStatus"], "final");
    assert_eq!(a2["securityLabel"][0]["coding"][0]["code"], "R");
    assert_eq!(a2["meta"]["security"][0]["code"], "R");
    assert_eq!(text_of(&a2), "Original text.");
    assert_eq!(a2["type"], a["type"]);

    // T06: an addendum B appends to A.
    let add = ["OBX|1|TX|11506-3^Progress note^LN||Addendum text.||||||F"];
    let ack = c.send(&event("T06", "EV-3", "B", "A^NORTH", &add)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let b = one(s, &doc("B")).await;
    assert_eq!(b["relatesTo"][0]["code"], "appends");
    assert_eq!(b["relatesTo"][0]["target"]["reference"], a_ref);
    assert_eq!(text_of(&b), "Addendum text.");
    assert_eq!(one(s, &doc("A")).await["status"], "current", "A stays");

    // T10: C replaces A, which is superseded.
    let new = ["OBX|1|TX|11506-3^Progress note^LN||Corrected text.||||||F"];
    let ack = c.send(&event("T10", "EV-4", "C", "A^NORTH", &new)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let cdoc = one(s, &doc("C")).await;
    assert_eq!(cdoc["relatesTo"][0]["code"], "replaces");
    assert_eq!(cdoc["relatesTo"][0]["target"]["reference"], a_ref);
    assert_eq!(cdoc["status"], "current");
    let a3 = one(s, &doc("A")).await;
    assert_eq!(a3["status"], "superseded");
    assert_eq!(text_of(&a3), "Original text.");
    // The message's Provenance names both documents it wrote.
    let c_ref = format!("DocumentReference/{}", cdoc["id"].as_str().unwrap());
    let provenance = one(s, &format!("Provenance?target={c_ref}")).await;
    let targets: Vec<&str> = provenance["target"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["reference"].as_str())
        .collect();
    assert!(
        targets.contains(&a_ref.as_str()) && targets.contains(&c_ref.as_str()),
        "{provenance}"
    );

    // T08: an edit of C in place (no parent).
    let edited = ["OBX|1|TX|11506-3^Progress note^LN||Corrected text, edited.||||||F"];
    let ack = c.send(&event("T08", "EV-5", "C", "", &edited)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let c2 = one(s, &doc("C")).await;
    assert_eq!(c2["id"], cdoc["id"]);
    assert_eq!(text_of(&c2), "Corrected text, edited.");

    // T11: the addendum is cancelled; its content stays.
    let ack = c.send(&event("T11", "EV-6", "B", "", &[])).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let b2 = one(s, &doc("B")).await;
    assert_eq!(b2["status"], "entered-in-error");
    assert_eq!(text_of(&b2), "Addendum text.");

    // T01 without content: the document, its content named, not sent.
    let ack = c.send(&event("T01", "EV-7", "D", "", &[])).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let d = one(s, &doc("D")).await;
    assert_eq!(d["content"][0]["attachment"]["title"], "D.txt");
    assert!(d["content"][0]["attachment"].get("data").is_none());
    assert_eq!(d["status"], "current");
    assert_eq!(count(s, "DocumentReference").await, 4);

    // Errors: a change to an unknown document, a replacement of an
    // unknown parent (AE 204); an addendum without parent (AE 101); a
    // content event without content (AE 101). Nothing written.
    let ack = c.send(&event("T03", "EV-8", "NOPE", "", &[])).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(segment(&ack, "ERR").unwrap().contains("|204^"), "{ack}");
    let ack = c.send(&event("T10", "EV-9", "E", "NOPE^NORTH", &new)).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(segment(&ack, "ERR").unwrap().contains("|204^"), "{ack}");
    let ack = c.send(&event("T06", "EV-10", "F", "", &add)).await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("TXA^1^13|101^"),
        "{ack}"
    );
    let ack = c.send(&event("T04", "EV-11", "A", "", &[])).await;
    assert!(
        segment(&ack, "ERR").unwrap().contains("OBX^1^5|101^"),
        "{ack}"
    );
    assert_eq!(count(s, "DocumentReference").await, 4);
    assert_eq!(one(s, &doc("A")).await["meta"]["versionId"], "3");
}

crate::on_both_databases!(
    mdm_t02_maps_field_by_field,
    mdm_events_map_to_document_changes
);
