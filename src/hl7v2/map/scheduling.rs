//! SIU^S12–S22 and S26 (scheduling notifications) → Appointment, after
//! the IG segment maps SCH, AIS, AIP and AIL [Appointment].
//!
//! Status (our rule, from the trigger, table 0003; the IG maps SCH-25
//! only):
//! - S15 (cancellation) and S16 (discontinuation) → `cancelled`;
//! - S17 (deletion) → `entered-in-error`: a deleted appointment is one that
//!   should not have been booked, unlike a cancelled one;
//! - S26 (the patient did not show up) → `noshow`;
//! - S12 (new), S13 (rescheduled), S14 (modified) and the service/resource
//!   events S18–S22 → SCH-25 filler status through the IG ConceptMap
//!   FillerStatusCodes[Appointment] when it has a match, else `booked`.
//!
//! Resource events (S18 added, S19 modified, S20 cancelled, S21
//! discontinued, S22 deleted): the message carries the appointment and the
//! resources the event is about; the AIP and AIL participants of an S20 or
//! S21 are `declined`, those of an S22 are left out (the appointment no
//! longer has them); an AIS/AIP/AIL whose segment action code (field 2,
//! table 0206) is `D` is left out in any event.
//!
//! Not mapped (AR 201): S23 and S24 (blocked and opened time slots: Slots
//! of a Schedule, not appointments), S25 (a query).
//!
//! Times: start from SCH-11 (TQ start), else the first of AIS-4, AIP-6,
//! AIL-6; end from SCH-11 (TQ end), else start + the duration (SCH-9/10,
//! else AIS-7/8, AIP-9/10, AIL-9/10; units minutes unless they say
//! seconds, hours or days). R4 (app-3) requires start and end unless the
//! appointment is proposed, cancelled or waitlisted: a booked appointment
//! without them gets AE 101; a deletion (S17) or no-show (S26) without them
//! changes only the status of the known appointment (conditional JSON
//! Patch; an unknown one gets AE 204).

use chrono::{DateTime, Duration, SecondsFormat};
use serde_json::{json, Value};

use super::adt::practitioner;
use super::datatypes::{codeable_concept, date_time, identifier_ei, key_of, number};
use super::order::derived_order_key;
use super::patient::{add_patient, default_system, PatientWrite};
use super::{identifier_query, BundleBuilder};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, Rep, SegmentRef};

pub const TRIGGERS: &[&str] = &[
    "S12", "S13", "S14", "S15", "S16", "S17", "S18", "S19", "S20", "S21", "S22", "S26",
];

fn status(trigger: &str, filler_status: &str) -> &'static str {
    match trigger {
        "S15" | "S16" => "cancelled",
        "S17" => "entered-in-error",
        "S26" => "noshow",
        _ => match filler_status {
            "Pending" => "pending",
            "Waitlist" => "waitlist",
            "Started" => "checked-in",
            "Complete" => "fulfilled",
            "Cancelled" => "cancelled",
            "Deleted" => "entered-in-error",
            "Noshow" => "noshow",
            _ => "booked",
        },
    }
}

/// A duration and its units (CWE) in minutes; None when not a number.
fn minutes(amount: &str, units: &Rep) -> Option<i64> {
    let n = number(amount)?.as_f64()?;
    let unit = units.comp(1).to_ascii_lowercase();
    let factor = match unit.as_str() {
        "s" | "sec" | "second" | "seconds" => 1.0 / 60.0,
        "h" | "hr" | "hour" | "hours" => 60.0,
        "d" | "day" | "days" => 1440.0,
        _ => 1.0,
    };
    let m = (n * factor).round();
    (0.0..1e9).contains(&m).then_some(m as i64)
}

/// A dateTime (with time) plus minutes.
fn plus_minutes(start: &str, m: i64) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(start).ok()? + Duration::minutes(m);
    Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The start and duration of an AIS/AIP/AIL (fields of start, duration,
/// duration units).
fn resource_time(seg: &SegmentRef, start: usize, duration: usize) -> (Option<String>, Option<i64>) {
    (
        date_time(&seg.get(start).comp(1)),
        minutes(&seg.get(duration).comp(1), &seg.get(duration + 1)),
    )
}

fn participant_period(start: &Option<String>, m: Option<i64>) -> Option<Value> {
    let start = start.as_ref()?;
    let mut p = json!({"start": start});
    if let Some(end) = m.and_then(|m| plus_minutes(start, m)) {
        p["end"] = json!(end);
    }
    Some(p)
}

/// Whether an AIS/AIP/AIL is left out: deleted by its segment action code,
/// or named by an S22 (deletion of the resource).
fn left_out(trigger: &str, seg: &SegmentRef) -> bool {
    trigger == "S22" || seg.get(2).comp(1) == "D"
}

/// The status of a resource participant: declined when the event cancels
/// or discontinues it (S20, S21).
fn resource_status(trigger: &str) -> &'static str {
    if matches!(trigger, "S20" | "S21") {
        "declined"
    } else {
        "accepted"
    }
}

pub fn map(message: &Message, trigger: &str, b: &mut BundleBuilder) -> Result<(), Failure> {
    let sch = message
        .first("SCH")
        .ok_or_else(|| Failure::missing("SCH", 1, "schedule activity information"))?;
    let default = default_system(message);
    let filler_status = sch.get(25).comp(1);
    let status = status(trigger, &filler_status);
    let mut participants = Vec::new();
    let patient = match message.first("PID") {
        Some(_) => Some(add_patient(message, b, PatientWrite::CreateIfMissing)?),
        None => None,
    };
    if let Some((url, _)) = &patient {
        participants.push(json!({
            "actor": {"reference": url},
            "required": "required",
            "status": "accepted",
        }));
    }
    let mut a = json!({"resourceType": "Appointment", "status": status});
    // Identifiers: SCH-1 placer, SCH-2 filler; the filler's is the match key.
    let mut identifiers = Vec::new();
    for (field, code) in [(1, "PLAC"), (2, "FILL")] {
        if let Some(mut id) = identifier_ei(&sch.get(field), &default) {
            id["type"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": code
            }]});
            identifiers.push(id);
        }
    }
    // SCH-7 by its table: 0276 reasons, 0277 types (IG); SCH-8 type.
    let reason = sch.get(7);
    match reason.comp(3).to_ascii_uppercase().as_str() {
        "HL70277" => {
            if let Some(t) = codeable_concept(&reason) {
                a["appointmentType"] = t;
            }
        }
        _ => {
            if let Some(r) = codeable_concept(&reason) {
                a["reasonCode"] = json!([r]);
            }
        }
    }
    if let Some(t) = codeable_concept(&sch.get(8)) {
        a["appointmentType"] = t;
    }
    // Times.
    let tq = sch.get(11);
    let mut start = date_time(&tq.comp(4));
    let mut end = date_time(&tq.comp(5));
    let mut duration = minutes(&sch.get(9).comp(1), &sch.get(10));
    let mut services = Vec::new();
    for ais in message.all("AIS").filter(|s| !left_out(trigger, s)) {
        if let Some(s) = codeable_concept(&ais.get(3)) {
            services.push(s);
        }
        let (s, m) = resource_time(&ais, 4, 7);
        start = start.or(s);
        duration = duration.or(m);
    }
    if !services.is_empty() {
        a["serviceType"] = json!(services);
    }
    for aip in message.all("AIP").filter(|s| !left_out(trigger, s)) {
        let (s, m) = resource_time(&aip, 6, 9);
        let Some(who) = practitioner(&aip.get(3), &default, b) else {
            continue;
        };
        let mut p =
            json!({"actor": who, "required": "required", "status": resource_status(trigger)});
        if let Some(t) = codeable_concept(&aip.get(4)) {
            p["type"] = json!([t]);
        }
        if let Some(period) = participant_period(&s, m) {
            p["period"] = period;
        }
        participants.push(p);
        start = start.or(s);
        duration = duration.or(m);
    }
    for ail in message.all("AIL").filter(|s| !left_out(trigger, s)) {
        let (s, m) = resource_time(&ail, 6, 9);
        let place = ail.get(3);
        let name: Vec<String> = [1, 2, 3, 4, 9]
            .iter()
            .filter_map(|i| place.opt(*i))
            .collect();
        if name.is_empty() {
            continue;
        }
        let mut p = json!({
            "actor": {"display": name.join(" ")},
            "required": "required",
            "status": resource_status(trigger),
        });
        if let Some(t) = codeable_concept(&ail.get(4)) {
            p["type"] = json!([t]);
        }
        if let Some(period) = participant_period(&s, m) {
            p["period"] = period;
        }
        participants.push(p);
        start = start.or(s);
        duration = duration.or(m);
    }
    let mut status_only = false;
    if end.is_none() {
        end = match (&start, duration) {
            (Some(s), Some(m)) => plus_minutes(s, m),
            _ => None,
        };
    }
    if let (Some(s), Some(e)) = (&start, &end) {
        a["start"] = json!(s);
        a["end"] = json!(e);
        if duration.is_none() {
            let (s, e) = (
                DateTime::parse_from_rfc3339(s).ok(),
                DateTime::parse_from_rfc3339(e).ok(),
            );
            duration = s.zip(e).map(|(s, e)| (e - s).num_minutes());
        }
        if let Some(m) = duration.filter(|m| *m > 0) {
            a["minutesDuration"] = json!(m);
        }
    } else if matches!(status, "entered-in-error" | "noshow") {
        // A deletion (S17) or no-show (S26) without times is about a known
        // appointment: R4 (app-3) would refuse it without start and end,
        // so only its status changes (below).
        status_only = true;
    } else if !matches!(status, "proposed" | "cancelled" | "waitlist") {
        return Err(Failure::error(
            ErrorCode::RequiredFieldMissing,
            Some(Location::new("SCH", 1, 11)),
            "the appointment's start and end (SCH-11, or AIS/AIP/AIL start and duration) are required",
        ));
    }
    if participants.is_empty() {
        return Err(Failure::missing("PID", 3, "the appointment's patient"));
    }
    a["participant"] = json!(participants);
    let notes: Vec<String> = message
        .all("NTE")
        .map(|n| {
            n.reps(3)
                .iter()
                .map(|r| r.text())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|t| !t.is_empty())
        .collect();
    if !notes.is_empty() {
        a["comment"] = json!(notes.join("\n"));
    }
    let key = identifiers
        .iter()
        .rev()
        .find_map(key_of)
        .or_else(|| {
            let (_, pk) = patient.as_ref()?;
            let key = derived_order_key(
                "SCH",
                pk,
                &[&tq.comp(4), &start.clone().unwrap_or_default()],
            );
            identifiers.push(json!({"system": key.0, "value": key.1}));
            Some(key)
        })
        .ok_or_else(|| Failure::missing("SCH", 2, "filler appointment id"))?;
    if !identifiers.is_empty() {
        a["identifier"] = json!(identifiers);
    }
    let url = if status_only {
        b.patch(
            "Appointment",
            identifier_query(&key.0, &key.1),
            json!([{"op": "add", "path": "/status", "value": status}]),
        )
    } else {
        b.upsert(identifier_query(&key.0, &key.1), a)
    };
    b.focus.push(url);
    Ok(())
}
