//! SIU^S12–S22 and S26 over MLLP → Appointment, field by field, through the life
//! of one appointment: booked, rescheduled, modified, cancelled, deleted.

use serde_json::json;

use super::ingest::{count, one, MRN_SYSTEM};
use super::{ack_code, seg, segment, Mllp};
use crate::harness::TestServer;

const APPOINTMENT: &str = "Appointment?identifier=urn:charaka:hl7v2:aa:SCHED|FAPT-1";

/// An SIU: `sch` the SCH fields after the two ids, `ais` the AIS start and
/// duration.
fn siu(trigger: &str, control: &str, sch: &[(usize, &str)], ais: (&str, &str)) -> String {
    let mut fields = vec![(1, "APT-1^EHR"), (2, "FAPT-1^SCHED")];
    fields.extend_from_slice(sch);
    [
        format!(
            "MSH|^~\\&|SCHED|NORTH|CHARAKA|MAIN|20240315080000||SIU^{trigger}^SIU_S12|{control}|P|2.5.1"
        ),
        seg("SCH", &fields),
        "NTE|1||Bring your medication list".to_string(),
        "PID|1||AP1^^^NORTH&1.2.840.99&ISO^MR||Visit^Vera||19600101|F".to_string(),
        "RGS|1|A".to_string(),
        seg(
            "AIS",
            &[
                (1, "1"),
                (2, "A"),
                (3, "99213^Office visit^C4"),
                (4, ais.0),
                (7, ais.1),
                (8, "min"),
            ],
        ),
        seg(
            "AIP",
            &[
                (1, "1"),
                (2, "A"),
                (3, "1234^Carter^John^^^Dr^^^NORTH&1.2.840.99&ISO"),
                (4, "ATND^Attending^HL70443"),
                (6, ais.0),
                (9, ais.1),
                (10, "min"),
            ],
        ),
        seg("AIL", &[(1, "1"), (2, "A"), (3, "CLINIC^2^^NORTH"), (6, ais.0)]),
    ]
    .join("\r")
}

async fn siu_maps_the_life_of_an_appointment(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let booked = [
        (7, "FOLLOWUP^Follow-up visit^HL70276"),
        (8, "ROUTINE^Routine appointment^HL70277"),
        (9, "30"),
        (10, "min"),
        (11, "^^^20240320090000^20240320093000"),
    ];
    let ack = c
        .send(&siu("S12", "SIU-1", &booked, ("20240320090000", "30")))
        .await;
    assert_eq!(segment(&ack, "MSA").unwrap(), "MSA|AA|SIU-1", "{ack}");
    let p = one(s, &format!("Patient?identifier={MRN_SYSTEM}|AP1")).await;
    let a = one(s, APPOINTMENT).await;
    assert_eq!(a["status"], "booked");
    assert_eq!(a["identifier"][0]["value"], "APT-1");
    assert_eq!(a["identifier"][0]["type"]["coding"][0]["code"], "PLAC");
    assert_eq!(a["identifier"][1]["type"]["coding"][0]["code"], "FILL");
    assert_eq!(a["start"], "2024-03-20T09:00:00Z");
    assert_eq!(a["end"], "2024-03-20T09:30:00Z");
    assert_eq!(a["minutesDuration"], json!(30));
    assert_eq!(a["serviceType"][0]["coding"][0]["code"], "99213");
    assert_eq!(a["reasonCode"][0]["coding"][0]["code"], "FOLLOWUP");
    assert_eq!(a["appointmentType"]["coding"][0]["code"], "ROUTINE");
    assert_eq!(a["comment"], "Bring your medication list");
    let parts = a["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[0]["actor"]["reference"],
        format!("Patient/{}", p["id"].as_str().unwrap())
    );
    assert_eq!(parts[0]["status"], "accepted");
    assert_eq!(parts[1]["actor"]["display"], "John Carter");
    assert!(parts[1]["actor"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Practitioner/"));
    assert_eq!(parts[1]["type"][0]["coding"][0]["code"], "ATND");
    assert_eq!(parts[1]["period"]["start"], "2024-03-20T09:00:00Z");
    assert_eq!(parts[1]["period"]["end"], "2024-03-20T09:30:00Z");
    assert_eq!(parts[2]["actor"]["display"], "CLINIC 2 NORTH");
    let header = one(s, "MessageHeader?event=S12").await;
    assert_eq!(header["source"]["name"], "SCHED");

    // Rescheduled (S13) with the times only in AIS: start + duration.
    let ack = c
        .send(&siu("S13", "SIU-2", &[], ("20240321100000", "45")))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a2 = one(s, APPOINTMENT).await;
    assert_eq!(a2["id"], a["id"]);
    assert_eq!(a2["status"], "booked");
    assert_eq!(a2["start"], "2024-03-21T10:00:00Z");
    assert_eq!(a2["end"], "2024-03-21T10:45:00Z");
    assert_eq!(a2["minutesDuration"], json!(45));
    // Modified (S14) with SCH-25 Complete: fulfilled (IG FillerStatusCodes).
    let ack = c
        .send(&siu(
            "S14",
            "SIU-3",
            &[(25, "Complete^Complete^HL70278")],
            ("20240321100000", "45"),
        ))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(one(s, APPOINTMENT).await["status"], "fulfilled");
    // Cancelled (S15), whatever SCH-25 says; then deleted (S17).
    let ack = c
        .send(&siu(
            "S15",
            "SIU-4",
            &[(25, "Booked")],
            ("20240321100000", "45"),
        ))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    assert_eq!(one(s, APPOINTMENT).await["status"], "cancelled");
    let ack = c
        .send(&siu("S17", "SIU-5", &[], ("20240321100000", "45")))
        .await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let gone = one(s, APPOINTMENT).await;
    assert_eq!(gone["status"], "entered-in-error");
    assert_eq!(gone["meta"]["versionId"], "5");
    assert_eq!(count(s, "Appointment").await, 1);

    // Booked without start or end anywhere: AE 101, nothing written.
    let no_time = siu("S12", "SIU-6", &[], ("", "")).replace("FAPT-1^SCHED", "FAPT-2^SCHED");
    let ack = c.send(&no_time).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("SCH^1^11|101^"),
        "{ack}"
    );
    assert_eq!(count(s, "Appointment").await, 1);
    // S24 (opened time slots) is not mapped: AR 201.
    let ack = c
        .send(&siu("S24", "SIU-7", &[], ("20240321100000", "45")))
        .await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert!(segment(&ack, "ERR").unwrap().contains("|201^"), "{ack}");
}

/// Resource events (S20 cancelled, S22 deleted), the no-show (S26), and
/// the slot events this server does not map (S23: AR 201).
async fn siu_resource_events_and_no_show(s: &TestServer) {
    let mut c = Mllp::connect(s.mllp_addr()).await;
    let booked = [(11, "^^^20240320090000^20240320093000")];
    let times = ("20240320090000", "30");
    let ack = c.send(&siu("S12", "SIUR-1", &booked, times)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a = one(s, APPOINTMENT).await;
    assert_eq!(a["participant"].as_array().unwrap().len(), 3);

    // S20: the practitioner and the room are cancelled; the appointment
    // stays booked, the patient accepted.
    let ack = c.send(&siu("S20", "SIUR-2", &booked, times)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a2 = one(s, APPOINTMENT).await;
    assert_eq!(a2["id"], a["id"]);
    assert_eq!(a2["status"], "booked");
    let parts = a2["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[0]["actor"]["reference"],
        a["participant"][0]["actor"]["reference"]
    );
    assert_eq!(parts[0]["status"], "accepted", "the patient");
    assert_eq!(parts[1]["actor"]["display"], "John Carter");
    assert_eq!(parts[1]["status"], "declined");
    assert_eq!(parts[2]["actor"]["display"], "CLINIC 2 NORTH");
    assert_eq!(parts[2]["status"], "declined");

    // S22: the resources are deleted from the appointment.
    let ack = c.send(&siu("S22", "SIUR-3", &booked, times)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a3 = one(s, APPOINTMENT).await;
    let parts = a3["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{a3}");
    assert!(parts[0]["actor"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Patient/"));
    assert!(a3.get("serviceType").is_none(), "AIS deleted too");
    assert_eq!(a3["start"], "2024-03-20T09:00:00Z");

    // S26: the patient did not show up.
    let ack = c.send(&siu("S26", "SIUR-4", &booked, times)).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a4 = one(s, APPOINTMENT).await;
    assert_eq!(a4["id"], a["id"]);
    assert_eq!(a4["status"], "noshow");
    assert_eq!(a4["participant"].as_array().unwrap().len(), 3);
    assert_eq!(count(s, "Appointment").await, 1);

    // S17 without times: only the status of the known appointment changes
    // (R4 app-3 would refuse it without start and end).
    let ack = c.send(&siu("S17", "SIUR-6", &[], ("", ""))).await;
    assert_eq!(ack_code(&ack), "AA", "{ack}");
    let a5 = one(s, APPOINTMENT).await;
    assert_eq!(a5["status"], "entered-in-error");
    assert_eq!(a5["start"], "2024-03-20T09:00:00Z", "kept");
    assert_eq!(a5["participant"], a4["participant"], "kept");
    // About an appointment not known: AE 204, nothing written.
    let unknown = siu("S26", "SIUR-7", &[], ("", "")).replace("FAPT-1^SCHED", "FAPT-9^SCHED");
    let ack = c.send(&unknown).await;
    assert_eq!(ack_code(&ack), "AE", "{ack}");
    assert!(segment(&ack, "ERR").unwrap().contains("|204^"), "{ack}");
    assert_eq!(count(s, "Appointment").await, 1);

    // S23 (blocked time slots) is about slots, not appointments: AR 201.
    let ack = c.send(&siu("S23", "SIUR-5", &booked, times)).await;
    assert_eq!(ack_code(&ack), "AR", "{ack}");
    assert!(
        segment(&ack, "ERR").unwrap().contains("|MSH^1^9|201^"),
        "{ack}"
    );
    assert_eq!(one(s, APPOINTMENT).await["status"], "entered-in-error");
}

crate::on_both_databases!(
    siu_maps_the_life_of_an_appointment,
    siu_resource_events_and_no_show,
);
