//! ORU^R01 (observation results) → ServiceRequest, DiagnosticReport,
//! Observation, Specimen; NTE → notes.
//!
//! Each OBR starts an order group: the OBXs, NTEs and SPMs after it belong
//! to it. Observations are keyed by the report's filler number, OBX-3 and
//! OBX-4, so a corrected result (status C) updates the same Observation.
//!
//! The visit: with a PV1-19 visit number, the ServiceRequest, the
//! DiagnosticReport (IG ORU_R01: DiagnosticReport.encounter = Encounter[1])
//! and the Observations name that Encounter (found, or created with status
//! unknown). ORC-28 → meta.security of the ServiceRequest and the
//! DiagnosticReport (IG ORC[DiagnosticReport]) and, our rule, of the
//! Observations too: the results are as confidential as their report.

use serde_json::{json, Map, Value};

use super::adt::practitioner;
use super::datatypes::{codeable_concept, date_time, derived_key, identifier_ei, key_of};
use super::patient::{add_patient, default_system, PatientWrite};
use super::{BundleBuilder, DERIVED_KEY_SYSTEM};
use crate::hl7v2::ack::{ErrorCode, Failure, Location};
use crate::hl7v2::message::{Message, SegmentRef};

/// OBR-25 / OBX-11 result status → DiagnosticReport.status.
fn report_status(code: &str) -> &'static str {
    match code {
        "F" => "final",
        "P" => "preliminary",
        "C" => "corrected",
        "X" => "cancelled",
        "R" | "S" => "partial",
        "I" | "O" => "registered",
        "A" => "partial",
        _ => "final",
    }
}

/// OBX-11 → Observation.status (IG ObservationResultStatusCodes).
fn observation_status(code: &str) -> &'static str {
    match code {
        "C" => "corrected",
        "D" | "W" => "entered-in-error",
        "F" => "final",
        "I" | "O" => "registered",
        "P" | "R" | "S" => "preliminary",
        "X" => "cancelled",
        "U" => "final",
        _ => "final",
    }
}

/// OBX-8 abnormal flags → Observation.interpretation (v3-ObservationInterpretation).
fn interpretation(code: &str) -> Option<Value> {
    let known = [
        "L", "H", "LL", "HH", "N", "A", "AA", "<", ">", "S", "R", "I", "U", "D", "B", "W", "POS",
        "NEG", "IND", "HU", "LU",
    ];
    known.contains(&code).then(|| {
        json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": code
        }]})
    })
}

/// OBX-6 units → Quantity fields (UCUM when the units' system says so or
/// when the unit is written as UCUM commonly is).
fn quantity(value: f64, raw: &str, units: &crate::hl7v2::message::Rep) -> Value {
    let mut q = Map::new();
    q.insert(
        "value".into(),
        serde_json::from_str::<Value>(raw.trim().trim_start_matches('+')).unwrap_or(json!(value)),
    );
    super::datatypes::put_units(&mut q, units);
    Value::Object(q)
}

/// OBX-7 reference range: `low-high`, `<high`, `>low`, or text.
fn reference_range(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let num = |s: &str| {
        let s = s.trim();
        s.parse::<f64>()
            .ok()
            .and_then(|_| serde_json::from_str::<Value>(s.trim_start_matches('+')).ok())
    };
    if let Some((lo, hi)) = t.split_once('-').filter(|(lo, _)| !lo.is_empty()) {
        if let (Some(lo), Some(hi)) = (num(lo), num(hi)) {
            return Some(json!({"low": {"value": lo}, "high": {"value": hi}}));
        }
    }
    if let Some(hi) = t
        .strip_prefix('<')
        .and_then(|h| num(h.trim_start_matches('=')))
    {
        return Some(json!({"high": {"value": hi}}));
    }
    if let Some(lo) = t
        .strip_prefix('>')
        .and_then(|l| num(l.trim_start_matches('=')))
    {
        return Some(json!({"low": {"value": lo}}));
    }
    Some(json!({"text": t}))
}

/// OBX-5 by OBX-2 → Observation.value[x] (or, for ED, an attachment).
enum ObxValue {
    Value(&'static str, Value),
    Attachment(Value),
    None,
}

fn obx_value(obx: &SegmentRef, index: usize) -> Result<ObxValue, Failure> {
    let kind = obx.get(2).comp(1);
    let reps = obx.reps(5);
    let Some(first) = reps.first() else {
        return Ok(ObxValue::None);
    };
    let bad = |what: &str| {
        Failure::error(
            ErrorCode::DataType,
            Some(Location::new("OBX", index, 5)),
            format!("OBX-5 is not a valid {what}"),
        )
    };
    Ok(match kind.as_str() {
        "NM" => {
            let raw = first.comp(1);
            let v: f64 = raw.trim().parse().map_err(|_| bad("number (NM)"))?;
            ObxValue::Value("valueQuantity", quantity(v, &raw, &obx.get(6)))
        }
        "SN" => {
            let (cmp, n1, sep, n2) = (first.comp(1), first.comp(2), first.comp(3), first.comp(4));
            let v1: f64 = n1
                .trim()
                .parse()
                .map_err(|_| bad("structured numeric (SN)"))?;
            match sep.as_str() {
                ":" | "/" => {
                    let v2: f64 = n2
                        .trim()
                        .parse()
                        .map_err(|_| bad("structured numeric (SN)"))?;
                    ObxValue::Value(
                        "valueRatio",
                        json!({"numerator": quantity(v1, &n1, &obx.get(6)), "denominator": {"value": v2}}),
                    )
                }
                "-" => {
                    let v2: f64 = n2
                        .trim()
                        .parse()
                        .map_err(|_| bad("structured numeric (SN)"))?;
                    ObxValue::Value(
                        "valueRange",
                        json!({"low": quantity(v1, &n1, &obx.get(6)), "high": quantity(v2, &n2, &obx.get(6))}),
                    )
                }
                _ => {
                    let mut q = quantity(v1, &n1, &obx.get(6));
                    let comparator = match cmp.as_str() {
                        "<" | "<=" | ">" | ">=" => Some(cmp.as_str()),
                        "" | "=" => None,
                        _ => return Err(bad("structured numeric (SN)")),
                    };
                    if let Some(c) = comparator {
                        q["comparator"] = json!(c);
                    }
                    ObxValue::Value("valueQuantity", q)
                }
            }
        }
        "ST" | "TX" | "FT" => {
            let text = reps.iter().map(|r| r.text()).collect::<Vec<_>>().join("\n");
            ObxValue::Value("valueString", json!(text))
        }
        "CE" | "CWE" | "CNE" | "CF" => match codeable_concept(first) {
            Some(cc) => ObxValue::Value("valueCodeableConcept", cc),
            None => ObxValue::None,
        },
        "CX" => ObxValue::Value("valueString", json!(first.comp(1))),
        "DT" | "TS" | "DTM" => ObxValue::Value(
            "valueDateTime",
            json!(date_time(&first.comp(1)).ok_or_else(|| bad("date/time"))?),
        ),
        "TM" => ObxValue::Value("valueTime", json!(first.comp(1))),
        "ED" => ObxValue::Attachment(super::datatypes::attachment_ed(first)),
        other => {
            return Err(Failure::error(
                ErrorCode::DataType,
                Some(Location::new("OBX", index, 2)),
                format!("OBX-2 value type `{other}` is not supported"),
            ))
        }
    })
}

/// The segments of one OBR group.
struct Group<'a> {
    obr: SegmentRef<'a>,
    orc: Option<SegmentRef<'a>>,
    children: Vec<SegmentRef<'a>>,
}

fn groups(message: &Message) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    let mut orc = None;
    for seg in message.iter() {
        match seg.name() {
            "ORC" => orc = Some(seg),
            "OBR" => out.push(Group {
                obr: seg,
                orc: orc.take(),
                children: Vec::new(),
            }),
            "OBX" | "NTE" | "SPM" => {
                if let Some(g) = out.last_mut() {
                    g.children.push(seg);
                }
            }
            _ => {}
        }
    }
    out
}

pub fn map(message: &Message, b: &mut BundleBuilder) -> Result<(), Failure> {
    let (patient, patient_key) = add_patient(message, b, PatientWrite::CreateIfMissing)?;
    let default = default_system(message);
    let groups = groups(message);
    if groups.is_empty() {
        return Err(Failure::missing("OBR", 4, "observation request"));
    }
    let mut obx_index = 0;
    for (gi, g) in groups.iter().enumerate() {
        let obr = &g.obr;
        let code = codeable_concept(&obr.get(4)).ok_or_else(|| {
            Failure::error(
                ErrorCode::RequiredFieldMissing,
                Some(Location::new("OBR", gi + 1, 4)),
                "OBR-4 (universal service identifier) is required",
            )
        })?;
        let placer = identifier_ei(&obr.get(2), &default)
            .or_else(|| g.orc.and_then(|o| identifier_ei(&o.get(2), &default)));
        let filler = identifier_ei(&obr.get(3), &default)
            .or_else(|| g.orc.and_then(|o| identifier_ei(&o.get(3), &default)));
        // The report's key: the filler number, else placer, else derived.
        let report_key = filler
            .as_ref()
            .or(placer.as_ref())
            .and_then(key_of)
            .unwrap_or_else(|| {
                (
                    DERIVED_KEY_SYSTEM.to_string(),
                    format!(
                        "OBR-{}",
                        derived_key(&[
                            &patient_key.0,
                            &patient_key.1,
                            &obr.get(4).comp(1),
                            &obr.get(7).comp(1)
                        ])
                    ),
                )
            });
        let status_code = obr.get(25).comp(1);
        let effective = date_time(&obr.get(7).comp(1));
        // ServiceRequest.
        let mut sr = json!({
            "resourceType": "ServiceRequest",
            "status": if status_code == "X" { "revoked" } else { "completed" },
            "intent": "order",
            "code": code,
            "subject": {"reference": patient},
        });
        let security = super::order::security(message, g.orc)?;
        if let Some(meta) = &security {
            sr["meta"] = meta.clone();
        }
        let encounter = super::adt::known_encounter(message, &patient, b);
        if let Some(e) = &encounter {
            sr["encounter"] = json!({"reference": e});
        }
        let mut sr_ids = Vec::new();
        if let Some(p) = &placer {
            let mut p = p.clone();
            p["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]});
            sr_ids.push(p);
        }
        if let Some(f) = &filler {
            let mut f = f.clone();
            f["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}]});
            sr_ids.push(f);
        }
        if let Some(who) = practitioner(&obr.get(16), &default, b) {
            sr["requester"] = who;
        }
        let notes: Vec<Value> = g
            .children
            .iter()
            .take_while(|s| s.name() == "NTE")
            .map(|n| json!({"text": n.reps(3).iter().map(|r| r.text()).collect::<Vec<_>>().join("\n")}))
            .collect();
        if !notes.is_empty() {
            sr["note"] = json!(notes);
        }
        let sr_key = placer.as_ref().or(filler.as_ref()).and_then(key_of);
        if !sr_ids.is_empty() {
            sr["identifier"] = json!(sr_ids);
        }
        let sr_url = b.upsert_by(sr_key, sr);
        // Specimens.
        let mut specimens = Vec::new();
        for spm in g.children.iter().filter(|s| s.name() == "SPM") {
            let mut s = json!({"resourceType": "Specimen", "subject": {"reference": patient}});
            if let Some(t) = codeable_concept(&spm.get(4)) {
                s["type"] = t;
            }
            if let Some(t) = date_time(&spm.get(17).comp(1)) {
                s["collection"] = json!({"collectedDateTime": t});
            }
            let id = identifier_ei(&spm.get(2).part(1), &default)
                .or_else(|| identifier_ei(&spm.get(2).part(2), &default));
            if let Some(i) = &id {
                s["identifier"] = json!([i]);
            }
            specimens.push(json!({"reference": b.upsert_by(id.as_ref().and_then(key_of), s)}));
        }
        // Observations.
        let mut results = Vec::new();
        let mut presented = Vec::new();
        let children = &g.children;
        for (ci, obx) in children
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name() == "OBX")
        {
            obx_index += 1;
            let value = obx_value(obx, obx_index)?;
            if let ObxValue::Attachment(a) = value {
                presented.push(a);
                continue;
            }
            let code = codeable_concept(&obx.get(3)).ok_or_else(|| {
                Failure::error(
                    ErrorCode::RequiredFieldMissing,
                    Some(Location::new("OBX", obx_index, 3)),
                    "OBX-3 (observation identifier) is required",
                )
            })?;
            let mut o = json!({
                "resourceType": "Observation",
                "status": observation_status(&obx.get(11).comp(1)),
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory"
                }]}],
                "code": code,
                "subject": {"reference": patient},
                "basedOn": [{"reference": sr_url}],
            });
            if let ObxValue::Value(key, v) = value {
                o[key] = v;
            }
            if let Some(meta) = &security {
                o["meta"] = meta.clone();
            }
            if let Some(e) = &encounter {
                o["encounter"] = json!({"reference": e});
            }
            if let Some(e) = date_time(&obx.get(14).comp(1)).or_else(|| effective.clone()) {
                o["effectiveDateTime"] = json!(e);
            }
            if let Some(r) = reference_range(&obx.get(7).text()) {
                o["referenceRange"] = json!([r]);
            }
            let interp: Vec<Value> = obx
                .reps(8)
                .iter()
                .filter_map(|f| interpretation(&f.comp(1)))
                .collect();
            if !interp.is_empty() {
                o["interpretation"] = json!(interp);
            }
            let performers: Vec<Value> = obx
                .reps(16)
                .iter()
                .filter_map(|x| practitioner(x, &default, b))
                .collect();
            if !performers.is_empty() {
                o["performer"] = json!(performers);
            }
            if !specimens.is_empty() {
                o["specimen"] = specimens[0].clone();
            }
            let notes: Vec<Value> = children[ci + 1..]
                .iter()
                .take_while(|s| s.name() == "NTE")
                .map(|n| json!({"text": n.reps(3).iter().map(|r| r.text()).collect::<Vec<_>>().join("\n")}))
                .collect();
            if !notes.is_empty() {
                o["note"] = json!(notes);
            }
            let id_value = format!(
                "OBX-{}",
                derived_key(&[
                    &report_key.0,
                    &report_key.1,
                    &obx.get(3).comp(1),
                    &obx.get(4).comp(1),
                    &obx_index.to_string()
                ])
            );
            o["identifier"] = json!([{"system": DERIVED_KEY_SYSTEM, "value": id_value}]);
            let url = b.upsert_by(Some((DERIVED_KEY_SYSTEM.to_string(), id_value)), o);
            results.push(json!({"reference": url}));
        }
        // DiagnosticReport.
        let mut dr = json!({
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": report_key.0, "value": report_key.1}],
            "status": report_status(&status_code),
            "code": codeable_concept(&obr.get(4)),
            "subject": {"reference": patient},
            "basedOn": [{"reference": sr_url}],
        });
        if let Some(meta) = &security {
            dr["meta"] = meta.clone();
        }
        if let Some(e) = &encounter {
            dr["encounter"] = json!({"reference": e});
        }
        if let Some(e) = &effective {
            dr["effectiveDateTime"] = json!(e);
        }
        if let Some(i) = date_time(&obr.get(22).comp(1)) {
            if i.contains('T') {
                dr["issued"] = json!(i);
            }
        }
        if let Some(s) = codeable_concept(&obr.get(24)) {
            dr["category"] = json!([s]);
        }
        if !results.is_empty() {
            dr["result"] = json!(results);
        }
        if !specimens.is_empty() {
            dr["specimen"] = json!(specimens);
        }
        if !presented.is_empty() {
            dr["presentedForm"] = json!(presented);
        }
        let url = b.upsert(super::identifier_query(&report_key.0, &report_key.1), dr);
        b.focus.push(url);
    }
    Ok(())
}
