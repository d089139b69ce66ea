//! Messages end to end: resources created field by field, ACK codes,
//! duplicates, HTTP ingest, the failed queue and replay, merges, restarts,
//! and the shared sample messages.

use serde_json::Value;

use super::{ack_code, adt, oru, segment, Mllp};
use crate::harness::TestServer;

pub const MRN_SYSTEM: &str = "urn:oid:1.2.840.99";

pub async fn one(s: &TestServer, query: &str) -> Value {
    let r = s.get(query).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    let entries = b["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{query}: {b}");
    entries[0]["resource"].clone()
}

pub async fn count(s: &TestServer, query: &str) -> usize {
    s.get(query).await.json()["entry"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn adt_a01_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let ack = c.send(&adt("A01", "ADT-1", "M1", "O\\S\\Brien")).await;
    // ACK mirrors the sender's MSH.
    let msh = segment(&ack, "MSH").unwrap();
    assert!(
        msh.starts_with("MSH|^~\\&|CHARAKA|MAIN|REG|NORTH|"),
        "{msh}"
    );
    assert!(
        msh.contains("|ACK^A01^ACK|") && msh.ends_with("|P|2.5.1"),
        "{msh}"
    );
    assert_eq!(segment(&ack, "MSA").unwrap(), "MSA|AA|ADT-1");

    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|M1")).await;
    assert_eq!(p["identifier"][0]["system"], MRN_SYSTEM);
    assert_eq!(p["identifier"][0]["value"], "M1");
    assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(p["identifier"][1]["system"], "urn:charaka:hl7v2:aa:SSA");
    assert_eq!(p["name"][0]["family"], "O^Brien", "escape \\S\\ decoded");
    assert_eq!(p["name"][0]["given"], serde_json::json!(["Anne", "Q"]));
    assert_eq!(p["name"][0]["prefix"][0], "Dr");
    assert_eq!(p["name"][1]["use"], "maiden");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["birthDate"], "1980-02-02");
    assert_eq!(
        p["address"][0]["line"],
        serde_json::json!(["12 Main St", "Apt 4"])
    );
    assert_eq!(p["address"][0]["postalCode"], "62701");
    assert_eq!(p["address"][0]["use"], "home");
    assert_eq!(p["telecom"][0]["value"], "(217) 5551234");
    assert_eq!(p["telecom"][0]["use"], "home");
    assert_eq!(p["telecom"][1]["system"], "email");
    assert_eq!(p["telecom"][2]["use"], "work");
    assert_eq!(p["maritalStatus"]["coding"][0]["code"], "M");
    assert_eq!(p["contact"][0]["name"]["family"], "O'Neil");
    assert_eq!(
        p["contact"][0]["relationship"][0]["coding"][0]["code"],
        "SPO"
    );
    let pid = p["id"].as_str().unwrap().to_string();

    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VM1")).await;
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["class"]["code"], "IMP");
    assert_eq!(e["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(e["location"][0]["location"]["display"], "WARD1 101 B NORTH");
    assert_eq!(e["participant"][0]["type"][0]["coding"][0]["code"], "ATND");
    assert_eq!(e["participant"][1]["type"][0]["coding"][0]["code"], "ADM");
    assert_eq!(
        e["participant"][0]["individual"]["reference"],
        e["participant"][1]["individual"]["reference"],
        "one Practitioner for the attending who also admits"
    );
    let doc = one(s, &format!("Practitioner?identifier={MRN_SYSTEM}|1234")).await;
    assert_eq!(doc["name"][0]["family"], "Carter");

    let a = one(s, &format!("AllergyIntolerance?patient=Patient/{pid}")).await;
    assert_eq!(a["code"]["coding"][0]["code"], "70618");
    assert_eq!(
        a["code"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(a["category"][0], "medication");
    assert_eq!(a["criticality"], "high");
    assert_eq!(a["reaction"][0]["manifestation"][0]["text"], "Hives");
    let cnd = one(s, &format!("Condition?subject=Patient/{pid}")).await;
    assert_eq!(
        cnd["code"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10-cm"
    );
    assert_eq!(cnd["code"]["coding"][0]["code"], "J18.9");

    let prov = one(s, &format!("Provenance?target=Patient/{pid}")).await;
    assert_eq!(prov["activity"]["coding"][0]["code"], "A01");
    assert_eq!(prov["agent"][0]["who"]["display"], "REG");
    let header = one(s, "MessageHeader?event=A01").await;
    assert_eq!(header["source"]["name"], "REG");
    assert!(header["focus"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["reference"] == format!("Patient/{pid}")));

    // A08 updates the same patient (and the same encounter, status per IG).
    let ack = c.send(&adt("A08", "ADT-2", "M1", "Byrne")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|M1")).await;
    assert_eq!(p["id"], pid.as_str());
    assert_eq!(p["name"][0]["family"], "Byrne");
    assert_eq!(p["meta"]["versionId"], "2");
    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VM1")).await;
    assert_eq!(e["status"], "unknown");
    assert_eq!(
        count(s, &format!("AllergyIntolerance?patient=Patient/{pid}")).await,
        1
    );
    // A03 finishes it.
    let ack = c.send(&adt("A03", "ADT-3", "M1", "Byrne")).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let e = one(s, &format!("Encounter?identifier={MRN_SYSTEM}|VM1")).await;
    assert_eq!(e["status"], "finished");
}

async fn oru_r01_maps_field_by_field(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // The patient is not known yet: the ORU creates it from PID.
    let ack = c.send(&oru("ORU-1", "L1", "F100", 5)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|L1")).await;
    assert_eq!(p["name"][0]["family"], "Lab");
    let pid = p["id"].as_str().unwrap();
    let dr = one(
        s,
        "DiagnosticReport?identifier=urn:charaka:hl7v2:aa:LAB|F100",
    )
    .await;
    assert_eq!(dr["status"], "final");
    assert_eq!(dr["code"]["coding"][0]["code"], "24323-8");
    assert_eq!(dr["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(dr["subject"]["reference"], format!("Patient/{pid}"));
    assert_eq!(dr["effectiveDateTime"], "2024-03-01T11:30:00Z");
    assert_eq!(dr["issued"], "2024-03-01T11:59:00Z");
    assert_eq!(dr["result"].as_array().unwrap().len(), 5);
    let sr = one(s, &format!("ServiceRequest?subject=Patient/{pid}")).await;
    assert_eq!(sr["identifier"][0]["value"], "PF100");
    assert_eq!(sr["note"][0]["text"], "Fasting sample");
    assert_eq!(sr["requester"]["display"], "Mai Ng");
    let obs = s
        .get(&format!(
            "Observation?subject=Patient/{pid}&code=http://loinc.org|2345-7"
        ))
        .await
        .json();
    let o = &obs["entry"][0]["resource"];
    assert_eq!(o["status"], "final");
    assert_eq!(o["valueQuantity"]["value"], serde_json::json!(105));
    assert_eq!(o["valueQuantity"]["unit"], "mg/dL");
    assert_eq!(o["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(o["valueQuantity"]["code"], "mg/dL");
    assert_eq!(
        o["referenceRange"][0]["low"]["value"],
        serde_json::json!(70)
    );
    assert_eq!(
        o["referenceRange"][0]["high"]["value"],
        serde_json::json!(99)
    );
    assert_eq!(o["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(o["effectiveDateTime"], "2024-03-01T11:45:00Z");
    assert_eq!(
        o["basedOn"][0]["reference"],
        format!("ServiceRequest/{}", sr["id"].as_str().unwrap())
    );
    // The same report sent again under a new control id (a correction)
    // updates the same resources instead of duplicating them.
    let corrected = oru("ORU-2", "L1", "F100", 5).replace("|F|||2024", "|C|||2024");
    assert_eq!(ack_code(&c.send(&corrected).await), "AA");
    assert_eq!(
        count(s, &format!("Observation?subject=Patient/{pid}")).await,
        5
    );
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|L1")).await,
        1
    );
    let o = one(
        s,
        &format!("Observation?subject=Patient/{pid}&code=http://loinc.org|2345-7"),
    )
    .await;
    assert_eq!(o["status"], "corrected");
    // Other value types.
    let typed = [
        "MSH|^~\\&|LAB|NORTH|CHARAKA|MAIN|20240301120000||ORU^R01|ORU-3|P|2.3",
        "PID|1||L1^^^NORTH&1.2.840.99&ISO^MR",
        "OBR|1||F200^LAB|11502-2^Lab report^LN|||20240301",
        "OBX|1|SN|2160-0^Creatinine^LN||<^0.5|mg/dL|||||F",
        "OBX|2|ST|8251-1^Comment^LN||see \\T\\ note||||||F",
        "OBX|3|CWE|5778-6^Color^LN||Y^Yellow^HL70000||||||F",
        "OBX|4|TX|8251-1^Text^LN|2|line 1~line 2||||||F",
        "OBX|5|DT|8665-2^Date^LN||20240215||||||F",
        "OBX|6|ED|PDF^Report^L||^application^pdf^Base64^JVBERi0=||||||F",
    ]
    .join("\r");
    assert_eq!(ack_code(&c.send(&typed).await), "AA");
    let dr = one(
        s,
        "DiagnosticReport?identifier=urn:charaka:hl7v2:aa:LAB|F200",
    )
    .await;
    assert_eq!(dr["presentedForm"][0]["contentType"], "application/pdf");
    assert_eq!(dr["presentedForm"][0]["data"], "JVBERi0=");
    let mut values = Vec::new();
    for r in dr["result"].as_array().unwrap() {
        let o = s.get(r["reference"].as_str().unwrap()).await.json();
        values.push(o);
    }
    assert_eq!(values[0]["valueQuantity"]["comparator"], "<");
    assert_eq!(values[1]["valueString"], "see & note");
    assert_eq!(values[2]["valueCodeableConcept"]["coding"][0]["code"], "Y");
    assert_eq!(values[3]["valueString"], "line 1\nline 2");
    assert_eq!(values[4]["valueDateTime"], "2024-02-15");
}

async fn ack_codes_tell_the_truth(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    // Required field missing: AE with ERR, nothing written.
    let no_id = adt("A01", "BAD-1", "X", "Nobody").replace(
        "PID|1||X^^^NORTH&1.2.840.99&ISO^MR~999-11-2222^^^SSA^SS|",
        "PID|1|||",
    );
    let ack = c.send(&no_id).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    let err = segment(&ack, "ERR").expect("ERR segment");
    assert!(
        err.starts_with("ERR||PID^1^3|101^Required field missing^HL70357|E"),
        "{err}"
    );
    // Wrong value type: AE 102.
    let bad_nm = oru("BAD-2", "L9", "F9", 1).replace(
        "|NM|2345-7^Glucose^LN|0|105|",
        "|NM|2345-7^Glucose^LN|0|lots|",
    );
    let ack = c.send(&bad_nm).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(segment(&ack, "ERR").unwrap().contains("|102^"), "{ack}");
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|L9")).await,
        0,
        "nothing applied"
    );
    // Unsupported message type, event, version: AR.
    let ack = c
        .send("MSH|^~\\&|A|B|C|D|2024||QBP^Q22|BAD-3|P|2.5\rQPD|x")
        .await;
    assert_eq!(ack_code(&ack), "AR");
    assert!(segment(&ack, "ERR").unwrap().contains("|200^"), "{ack}");
    let ack = c
        .send("MSH|^~\\&|A|B|C|D|2024||ADT^A99|BAD-4|P|2.5\rPID|1||1")
        .await;
    assert_eq!(ack_code(&ack), "AR");
    assert!(segment(&ack, "ERR").unwrap().contains("|201^"), "{ack}");
    let ack = c
        .send("MSH|^~\\&|A|B|C|D|2024||ADT^A01|BAD-5|P|2.1\rPID|1||1")
        .await;
    assert_eq!(ack_code(&ack), "AR");
    assert!(
        segment(&ack, "ERR").unwrap().contains("^203&"),
        "ERR-1 before 2.5: {ack}"
    );
    // Unparseable: AR, still mirroring what could be read.
    let ack = c.send("this is not HL7").await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    // Every one of them is in the failed queue.
    let list = s.get("$hl7v2-messages?status=failed").await.json();
    assert_eq!(list["messages"].as_array().unwrap().len(), 2, "{list}");
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    assert_eq!(list["messages"].as_array().unwrap().len(), 4, "{list}");
    assert_eq!(list["messages"][0]["ack"], "AR");
}

async fn duplicates_get_the_original_ack(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let first = c.send(&adt("A04", "DUP-1", "D1", "Twice")).await;
    assert_eq!(ack_code(&first), "AA");
    // Same control id from the same sender, on another connection.
    let mut c2 = Mllp::connect(s.mllp_addr()).await;
    let again = c2.send(&adt("A04", "DUP-1", "D1", "Changed")).await;
    assert_eq!(again, first, "the original ACK, byte for byte");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|D1")).await;
    assert_eq!(p["meta"]["versionId"], "1", "not applied twice");
    assert_eq!(p["name"][0]["family"], "Twice");
    // A failed message answered again with its AE.
    let bad = c
        .send("MSH|^~\\&|A|B|C|D|2024||ADT^A99|DUP-2|P|2.5\rPID|1")
        .await;
    assert_eq!(
        c.send("MSH|^~\\&|A|B|C|D|2024||ADT^A99|DUP-2|P|2.5\rPID|1")
            .await,
        bad
    );
    // The same control id from another sender is another message.
    let other = adt("A04", "DUP-1", "D2", "Other").replace("|REG|NORTH|", "|REG2|NORTH|");
    assert_eq!(ack_code(&c.send(&other).await), "AA");
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|D2")).await,
        1
    );
}

async fn http_ingest_returns_the_ack(s: &TestServer) {
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(adt("A28", "HTTP-1", "H1", "Web").into_bytes()),
            &[("content-type", "x-application/hl7-v2+er7")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("x-application/hl7-v2+er7"));
    assert_eq!(ack_code(&r.text), "AA", "{}", r.text);
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|H1")).await,
        1
    );
    // A28 has no encounter.
    let pid = one(s, &format!("Patient?identifier={MRN_SYSTEM}|H1")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        count(s, &format!("Encounter?subject=Patient/{pid}")).await,
        0
    );
    // text/plain too; other media types are refused.
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(b"garbage".to_vec()),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(ack_code(&r.text), "AR");
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(b"{}".to_vec()),
            &[("content-type", "application/json")],
        )
        .await;
    r.outcome(415);
}

/// `adt(..)` padded with a Z segment to exactly `len` bytes.
fn adt_of_length(control: &str, mrn: &str, len: usize) -> String {
    let mut message = adt("A04", control, mrn, "Sized");
    message.push_str("\rZXX|");
    message.push_str(&"x".repeat(len - message.len()));
    assert_eq!(message.len(), len);
    message
}

/// The HTTP body is bounded by `mllp_max_message_bytes` (not the general
/// body limit) and a longer one is answered and logged as an oversize MLLP
/// frame is.
async fn http_ingest_has_the_mllp_size_limit(s: &TestServer) {
    let limit = s.config().mllp_max_message_bytes;
    assert!(limit < s.config().max_body_bytes);
    let er7 = [("content-type", "x-application/hl7-v2+er7")];
    let ingest = |body: String| async move {
        s.send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(body.into_bytes()),
            &er7,
        )
        .await
    };
    // At the limit: applied.
    let r = ingest(adt_of_length("HTTP-FIT", "HF1", limit)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ack_code(&r.text), "AA", "{}", r.text);
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|HF1")).await,
        1
    );
    let patients = s.get("Patient?_summary=count").await.json()["total"].clone();
    // One byte over: AR with error 207, answered with 200 like every ACK.
    let big = adt_of_length("HTTP-BIG", "HB1", limit + 1);
    let r = ingest(big.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("x-application/hl7-v2+er7"));
    let ack = r.text.clone();
    super::assert_oversize_ar(&ack, "HTTP-BIG");
    // Nothing applied.
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|HB1")).await,
        0
    );
    assert_eq!(
        s.get("Patient?_summary=count").await.json()["total"],
        patients
    );
    // One row in the log, rejected, the raw bytes cut at the limit.
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    let rows: Vec<&Value> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["controlId"] == "HTTP-BIG")
        .collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["ack"], "AR");
    assert_eq!(rows[0]["messageType"], "ADT^A04", "{}", rows[0]);
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("maximum message size"),
        "{}",
        rows[0]
    );
    let id = rows[0]["id"].as_i64().unwrap();
    let stored = s.fhir().get_message(id).await.unwrap().unwrap();
    assert_eq!(stored.status, "rejected");
    let raw = stored.raw.unwrap();
    assert_eq!(raw.len(), limit);
    assert!(big.as_bytes().starts_with(&raw));
    // Never replayed; sent again, the original AR, and no second row.
    let r = super::replay(s, id).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(ingest(big).await.text, ack);
    // Far over the limit (and over the general body limit): the same.
    let huge = adt_of_length("HTTP-HUGE", "HB2", s.config().max_body_bytes + 1);
    let r = ingest(huge).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("MSA|AR|HTTP-HUGE|the message exceeds"),
        "{}",
        r.text
    );
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    assert_eq!(list["messages"].as_array().unwrap().len(), 2, "{list}");
    // Without an MSH: still the AR (HTTP must answer), and logged.
    let r = ingest("x".repeat(limit + 10)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ack_code(&r.text), "AR", "{}", r.text);
    assert!(r.text.contains("maximum message size"), "{}", r.text);
    let list = s.get("$hl7v2-messages?status=rejected").await.json();
    assert_eq!(list["messages"].as_array().unwrap().len(), 3, "{list}");
}

async fn merge_fails_then_replays(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let merge = [
        "MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240302||ADT^A40^ADT_A39|MRG-1|P|2.5",
        "EVN|A40|20240302",
        "PID|1||NEW1^^^NORTH&1.2.840.99&ISO^MR||Merged^Kim||19900101|F",
        "MRG|OLD1^^^NORTH&1.2.840.99&ISO^MR",
    ]
    .join("\r");
    // The prior patient does not exist: AE 204, queued as failed.
    let ack = c.send(&merge).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("MRG^1^1|204^"),
        "{ack}"
    );
    let list = s.get("$hl7v2-messages?status=failed").await.json();
    let id = list["messages"][0]["id"].as_i64().unwrap();
    assert_eq!(list["messages"][0]["controlId"], "MRG-1");
    // Once the prior patient exists, a replay applies it.
    assert_eq!(
        ack_code(&c.send(&adt("A04", "MRG-0", "OLD1", "Kim")).await),
        "AA"
    );
    let r = super::replay(s, id).await;
    assert_eq!(ack_code(&r.text), "AA", "{}", r.text);
    let old = one(s, &format!("Patient?identifier={MRN_SYSTEM}|OLD1")).await;
    let new = one(s, &format!("Patient?identifier={MRN_SYSTEM}|NEW1")).await;
    assert_eq!(old["active"], false);
    assert_eq!(old["link"][0]["type"], "replaced-by");
    assert_eq!(
        old["link"][0]["other"]["reference"],
        format!("Patient/{}", new["id"].as_str().unwrap())
    );
    let list = s.get("$hl7v2-messages?status=failed").await.json();
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);
    let list = s.get("$hl7v2-messages").await.json();
    assert_eq!(list["messages"][1]["controlId"], "MRG-1");
    assert_eq!(list["messages"][1]["attempts"], 2, "{list}");
    // A replay of an applied message is refused.
    let r = super::replay(s, id).await;
    r.outcome(409);
}

async fn sample_messages_are_all_answered(s: &TestServer) {
    let Some(dir) = crate::harness::shared_data("hl7v2-samples") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let (mut aa, mut ae, mut ar) = (0, 0, 0);
    let mut adt_oru = 0;
    let mut orders = 0;
    for f in &files {
        let text = std::fs::read(f).unwrap();
        let first = String::from_utf8_lossy(&text[..text.len().min(200)]).to_string();
        c.write_raw(&charaka::hl7v2::mllp::frame(&text)).await;
        let ack = c.read_ack().await.expect("an ACK for every sample");
        match ack_code(&ack).as_str() {
            "AA" => aa += 1,
            "AE" => ae += 1,
            "AR" => ar += 1,
            other => panic!("{}: MSA-1 {other}", f.display()),
        }
        // The order, immunization, scheduling, financial and document
        // families: every sample that has a control id (MSH-10), a version
        // (MSH-12) and a patient (PID-3) applies, except one whose RXA-3
        // is a malformed date (201501011) and an MDM without its TXA. (Many
        // samples share a sender and control id: those after the first
        // are answered with its ACK, as duplicates.)
        if [
            "|RDE^", "|OMP^", "|VXU^", "|ORM^", "|OML^", "|RDS^", "|SIU^", "|DFT^", "|MDM^",
        ]
        .iter()
        .any(|t| first.contains(t))
        {
            match ack_code(&ack).as_str() {
                "AA" => orders += 1,
                _ => {
                    let err = segment(&ack, "ERR").unwrap_or_default().to_string();
                    let known = err.contains("MSH^1^10|101^")
                        || err.contains("MSH^1^12|203^")
                        || err.contains("PID^1^3|101^")
                        || (f.ends_with("0010_IssueFixTest_L51.hl7")
                            && err.contains("RXA^1^3|102^"))
                        || (f.ends_with("0380_Hl7OrderRequestFHIRConversionTest_L378.hl7")
                            && err.contains("TXA^1^2|101^"));
                    assert!(known, "{}: {err}", f.display());
                }
            }
        }
        if (first.contains("|ADT^A01") || first.contains("|ORU^R01")) && ack_code(&ack) == "AA" {
            adt_oru += 1;
        }
    }
    eprintln!("samples: {aa} AA, {ae} AE, {ar} AR");
    assert_eq!(aa + ae + ar, files.len());
    assert!(
        adt_oru >= 50,
        "most ADT^A01 and ORU^R01 samples apply ({adt_oru})"
    );
    eprintln!("order, immunization, scheduling, financial and document samples applied: {orders}");
    assert!(orders >= 100, "{orders}");
}

/// Sends from `conns` connections at once (they start together), `rounds`
/// rounds each; in each round a connection sends `messages(conn, round)`
/// one after the other, waiting for each ACK. The ACKs, by connection,
/// round and message.
async fn send_together(
    s: &TestServer,
    conns: usize,
    rounds: usize,
    messages: fn(usize, usize) -> Vec<String>,
) -> Vec<Vec<Vec<String>>> {
    let addr = s.mllp_addr();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(conns));
    let mut tasks = Vec::new();
    for conn in 0..conns {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Mllp::connect(addr).await;
            start.wait().await;
            let mut acks = Vec::new();
            for round in 0..rounds {
                let mut sent = Vec::new();
                for m in messages(conn, round) {
                    sent.push(c.send(&m).await);
                }
                acks.push(sent);
            }
            acks
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    all
}

/// Messages arriving together commit together, each on its own: a
/// refused one (AE) leaves the others applied, and one message delivered
/// on several connections at once is applied once, every delivery answered
/// with the same ACK.
async fn messages_sent_together_succeed_and_fail_on_their_own(s: &TestServer) {
    let acks = send_together(s, 6, 3, |conn, round| {
        let good = adt(
            "A01",
            &format!("TOG-G{conn}-{round}"),
            &format!("TOGG{conn}{round}"),
            "Together",
        );
        let bad = adt(
            "A01",
            &format!("TOG-B{conn}-{round}"),
            &format!("TOGB{conn}{round}"),
            "Together",
        )
        .replace("J18.9^Pneumonia", "J18.99X^Not a code");
        let same = adt(
            "A01",
            &format!("TOG-SAME-{round}"),
            &format!("TOGSAME{round}"),
            "Together",
        );
        vec![good, bad, same]
    })
    .await;
    let mut same_acks = vec![Vec::new(); 3];
    for rounds in acks {
        for (round, sent) in rounds.into_iter().enumerate() {
            let [good, bad, same] = <[String; 3]>::try_from(sent).expect("three ACKs");
            assert_eq!(ack_code(&good), "AA", "{good}");
            assert_eq!(ack_code(&bad), "AE", "{bad}");
            assert_eq!(ack_code(&same), "AA", "{same}");
            same_acks[round].push(same);
        }
    }
    for conn in 0..6 {
        for round in 0..3 {
            assert_eq!(
                count(
                    s,
                    &format!("Patient?identifier={MRN_SYSTEM}|TOGG{conn}{round}")
                )
                .await,
                1,
                "applied beside a refused message"
            );
            assert_eq!(
                count(
                    s,
                    &format!("Patient?identifier={MRN_SYSTEM}|TOGB{conn}{round}")
                )
                .await,
                0,
                "nothing of a refused message is stored"
            );
        }
    }
    for (round, acks) in same_acks.iter().enumerate() {
        assert!(
            acks.iter().all(|a| a == &acks[0]),
            "every delivery of one message gets its one ACK: {acks:?}"
        );
        let p = one(
            s,
            &format!("Patient?identifier={MRN_SYSTEM}|TOGSAME{round}"),
        )
        .await;
        assert_eq!(
            count(
                s,
                &format!("Encounter?subject=Patient/{}", p["id"].as_str().unwrap())
            )
            .await,
            1,
            "a message delivered six times is applied once"
        );
    }
    let failed = s
        .get("$hl7v2-messages?status=failed&_count=100")
        .await
        .json();
    let refused = failed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.to_string().contains("TOG-B"))
        .count();
    assert_eq!(
        refused, 18,
        "every refused message is in the failed queue: {failed}"
    );
}

/// Different messages about one new patient, sent at once on several
/// connections: each was planned before the others committed (on SQLite
/// several commit together), and the patient is created once, the other
/// messages updating it.
async fn one_new_patient_sent_together_is_created_once(s: &TestServer) {
    let acks = send_together(s, 6, 4, |conn, round| {
        vec![adt(
            "A01",
            &format!("ONE-{conn}-{round}"),
            &format!("ONENEW{round}"),
            "Onenew",
        )]
    })
    .await;
    for ack in acks.iter().flatten().flatten() {
        assert_eq!(ack_code(ack), "AA", "{ack}");
    }
    for round in 0..4 {
        assert_eq!(
            count(s, &format!("Patient?identifier={MRN_SYSTEM}|ONENEW{round}")).await,
            1,
            "one patient for MRN ONENEW{round}"
        );
    }
}

crate::on_both_databases!(
    adt_a01_maps_field_by_field,
    one_new_patient_sent_together_is_created_once,
    oru_r01_maps_field_by_field,
    ack_codes_tell_the_truth,
    duplicates_get_the_original_ack,
    http_ingest_returns_the_ack,
    http_ingest_has_the_mllp_size_limit,
    merge_fails_then_replays,
    dg1_codes_are_validated,
    messages_sent_together_succeed_and_fail_on_their_own,
);

/// The samples come from production, training and debugging systems
/// (MSH-11 P, T, D): a server applying all three.
fn every_processing_id(config: &mut charaka::config::Config) {
    config.hl7v2_processing_ids = ["P", "T", "D"].map(String::from).to_vec();
}

mod samples {
    use super::*;
    crate::on_both_databases_with!(every_processing_id; sample_messages_are_all_answered);
}

/// DG1 diagnoses are ICD-10-CM codings, checked like any write: an unknown
/// code is refused under the default strict policy with AE (ERR naming the
/// problem) and nothing of the message is stored; a known code is stored.
async fn dg1_codes_are_validated(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let bad = adt("A01", "DG-BAD", "DG1", "Coder").replace(
        "DG1|1||J18.9^Pneumonia, unspecified organism^I10",
        "DG1|1||J18.99X^Not a code^I10",
    );
    assert!(bad.contains("J18.99X"), "the test message has a DG1");
    let ack = c.send(&bad).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    let err = segment(&ack, "ERR").expect("an ERR segment");
    assert!(err.contains("J18.99X"), "{err}");
    assert_eq!(
        count(s, &format!("Patient?identifier={MRN_SYSTEM}|DG1")).await,
        0,
        "nothing of a refused message is stored"
    );
    let good = adt("A01", "DG-GOOD", "DG1", "Coder");
    assert_eq!(ack_code(&c.send(&good).await), "AA");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|DG1")).await;
    let cnd = one(
        s,
        &format!("Condition?subject=Patient/{}", p["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(cnd["code"]["coding"][0]["code"], "J18.9");
}

/// The server stops between messages (as a kill would, after the ACK of
/// the last one); the sender, not knowing which were applied, sends them
/// all again after the restart: each is answered with its original ACK and
/// none is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_database() {
    let s = TestServer::sqlite().await;
    let mut sent = Vec::new();
    let mut c = Mllp::connect(s.mllp_addr()).await;
    for i in 0..10 {
        let m = adt("A01", &format!("RS-{i}"), &format!("R{}", i % 3), "Restart");
        sent.push((m.clone(), c.send(&m).await));
    }
    drop(c);
    let s = s.restart().await;
    let mut c = Mllp::connect(s.mllp_addr()).await;
    for (m, ack) in &sent {
        assert_eq!(&c.send(m).await, ack);
    }
    for r in 0..3 {
        let p = one(&s, &format!("Patient?identifier={MRN_SYSTEM}|R{r}")).await;
        let expected = [4, 3, 3][r];
        assert_eq!(p["meta"]["versionId"], expected.to_string(), "R{r}");
    }
    s.stop().await;
}
