//! A visit and what it leaves in the record: the Encounter, Conditions,
//! Observations (vital signs, labs, smoking status), MedicationRequests,
//! Procedures, Immunizations, and its Claim; and the patient's allergies.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};

use super::codes::{self, Acute, Code, LabSet, Measure, CHRONIC, LOINC, SNOMED, UCUM};
use super::patient::{Record, Visit};
use super::shared::HOSPITALS;
use super::time::{days, local, minutes, today};
use super::{billing, concept, reference};

/// What a visit produced that its Claim bills.
pub struct Visited {
    pub encounter: String,
    pub kind: Code,
    pub provider: usize,
    pub clinician: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// Condition ids diagnosed or followed up.
    pub conditions: Vec<String>,
    /// Billed items: system, code and display, and a price.
    pub items: Vec<(&'static str, Code, f64)>,
}

pub fn visit(r: &mut Record, at: NaiveDateTime, visit: Visit) {
    let date = at.date();
    let age = r.age_on(date);
    // A follow-up needs a condition to follow.
    let mut visit = visit;
    if visit == Visit::Problem(None) {
        let started = r.conditions_on(date);
        visit = if started.is_empty() {
            Visit::Checkup
        } else {
            Visit::Problem(Some(*r.rng.pick(&started)))
        };
    }
    let acute = match visit {
        Visit::Symptom => pick_acute(r, codes::SYMPTOM_VISIT, age, date),
        Visit::Emergency => pick_acute(r, codes::EMERGENCY_VISIT, age, date),
        Visit::Inpatient => pick_acute(r, codes::HOSPITAL_STAY, age, date),
        _ => None,
    };
    let (kind, class, length) = match visit {
        Visit::Checkup => (codes::CHECKUP, ("AMB", "ambulatory"), r.rng.range(20, 45)),
        Visit::Symptom => (codes::SYMPTOM, ("AMB", "ambulatory"), r.rng.range(15, 30)),
        Visit::Problem(_) => (codes::PROBLEM, ("AMB", "ambulatory"), r.rng.range(15, 40)),
        Visit::Emergency => (
            codes::EMERGENCY,
            ("EMER", "emergency"),
            r.rng.range(60, 360),
        ),
        Visit::Inpatient => (
            codes::ADMISSION,
            ("IMP", "inpatient encounter"),
            r.rng.range(1, 7) * 1440,
        ),
    };
    let end = at + minutes(length);
    let provider = match visit {
        Visit::Emergency | Visit::Inpatient if r.home >= HOSPITALS => {
            r.rng.below(HOSPITALS as u64) as usize
        }
        _ => r.home,
    };
    let clinician = r.clinician(provider);
    let encounter = r.rng.uuid();
    let mut v = Visited {
        encounter,
        kind,
        provider,
        clinician,
        start: at,
        end,
        conditions: Vec::new(),
        items: vec![(SNOMED, kind, price(r, visit))],
    };
    let mut enc = json!({
        "resourceType": "Encounter",
        "id": v.encounter,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class.0, "display": class.1},
        "type": [concept(SNOMED, kind)],
        "subject": r.patient_ref(),
        "participant": [{
            "type": [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", ("PPRF", "primary performer"))],
            "period": {"start": local(r.city, at), "end": local(r.city, end)},
            "individual": reference("Practitioner", &v.clinician)
        }],
        "period": {"start": local(r.city, at), "end": local(r.city, end)},
        "serviceProvider": reference("Organization", &r.pool.providers[provider])
    });
    if let Some(a) = acute {
        enc["reasonCode"] = json!([concept(codes::ICD10CM, a.icd)]);
    }
    if visit == Visit::Inpatient {
        enc["hospitalization"] = json!({
            "dischargeDisposition": concept("http://terminology.hl7.org/CodeSystem/discharge-disposition", ("home", "Home"))
        });
    }
    r.out.push(enc);

    // Long-term conditions are recorded at the first visit after they start.
    let started = r.conditions_on(date);
    for i in started {
        if !r.recorded.iter().any(|(j, _)| *j == i) {
            let id = condition(r, &v, CHRONIC[i].icd, true, None);
            r.recorded.push((i, id));
        }
    }
    if let Visit::Problem(Some(i)) = visit {
        if let Some((_, id)) = r.recorded.iter().find(|(j, _)| *j == i) {
            v.conditions.push(id.clone());
        }
    }
    let acute_condition = acute.map(|a| {
        let id = condition(r, &v, a.icd, false, Some(a.days));
        v.conditions.push(id.clone());
        id
    });

    vital_signs(r, &v, visit, age);
    match visit {
        Visit::Checkup => checkup(r, &mut v, age),
        Visit::Problem(Some(i)) => follow_up(r, &mut v, i),
        Visit::Inpatient => {
            labs(r, &v, codes::BLOOD_COUNT, 0.0);
            labs(r, &v, codes::METABOLIC, 0.0);
        }
        _ => {}
    }
    if let (Some(a), Some(cid)) = (acute, acute_condition) {
        for med in a.meds {
            if r.rng.chance(0.7) {
                medication(r, &mut v, med, &cid, false);
            }
        }
        if let Some(p) = a.procedure {
            procedure(r, &mut v, p, Some(&cid));
        }
    }
    billing::claim(r, &v);
}

/// An acute condition for the visit that fits the patient's age (COVID-19
/// only from 2020).
fn pick_acute(
    r: &mut Record,
    table: &'static [Acute],
    age: u32,
    date: NaiveDate,
) -> Option<&'static Acute> {
    let covid_start = NaiveDate::from_ymd_opt(2020, 3, 1).expect("a date");
    let fits: Vec<&'static Acute> = table
        .iter()
        .filter(|a| (a.ages.0..=a.ages.1).contains(&age))
        .filter(|a| a.icd.0 != "U07.1" || date >= covid_start)
        .filter(|a| a.icd.0 != "N39.0" || r.female || age > 60)
        .collect();
    if fits.is_empty() {
        return None;
    }
    Some(*r.rng.pick(&fits))
}

fn price(r: &mut Record, visit: Visit) -> f64 {
    let base = match visit {
        Visit::Checkup => 145.0,
        Visit::Symptom | Visit::Problem(_) => 110.0,
        Visit::Emergency => 780.0,
        Visit::Inpatient => 9800.0,
    };
    (base * r.rng.normal(1.0, 0.15, 0.6, 1.6)).round()
}

/// Writes a Condition; returns its id.
fn condition(r: &mut Record, v: &Visited, icd: Code, chronic: bool, lasts: Option<u32>) -> String {
    let id = r.rng.uuid();
    let recorded = local(r.city, v.start);
    let (category, onset) = if chronic {
        let onset = r
            .chronic
            .iter()
            .find(|(i, _)| CHRONIC[*i].icd == icd)
            .map(|(_, d)| *d)
            .unwrap_or(v.start.date());
        (
            ("problem-list-item", "Problem List Item"),
            onset.format("%Y-%m-%d").to_string(),
        )
    } else {
        (
            ("encounter-diagnosis", "Encounter Diagnosis"),
            recorded.clone(),
        )
    };
    let mut c = json!({
        "resourceType": "Condition",
        "id": id,
        "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", ("active", "Active")),
        "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", ("confirmed", "Confirmed")),
        "category": [concept("http://terminology.hl7.org/CodeSystem/condition-category", category)],
        "code": concept(codes::ICD10CM, icd),
        "subject": r.patient_ref(),
        "encounter": reference("Encounter", &v.encounter),
        "onsetDateTime": onset,
        "recordedDate": recorded,
        "recorder": reference("Practitioner", &v.clinician)
    });
    if let Some(n) = lasts {
        let end = v.start + days(i64::from(n));
        if end.date() < today() {
            c["clinicalStatus"] = concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical",
                ("resolved", "Resolved"),
            );
            c["abatementDateTime"] = json!(local(r.city, end));
        }
    }
    r.out.push(c);
    id
}

fn observation(
    r: &mut Record,
    v: &Visited,
    category: (&str, &str),
    code: Code,
    at: NaiveDateTime,
) -> Value {
    let id = r.rng.uuid();
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", category)],
        "code": concept(LOINC, code),
        "subject": r.patient_ref(),
        "encounter": reference("Encounter", &v.encounter),
        "effectiveDateTime": local(r.city, at),
        "issued": local(r.city, at),
        "performer": [reference("Practitioner", &v.clinician)]
    })
}

fn quantity(value: f64, unit: &str, ucum: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": ucum})
}

const VITAL_SIGNS: (&str, &str) = ("vital-signs", "Vital Signs");
const LABORATORY: (&str, &str) = ("laboratory", "Laboratory");

fn vital(r: &mut Record, v: &Visited, code: Code, value: f64, unit: &str, ucum: &str) {
    let mut o = observation(r, v, VITAL_SIGNS, code, v.start + minutes(5));
    o["valueQuantity"] = quantity(value, unit, ucum);
    r.out.push(o);
}

fn measured(r: &mut Record, v: &Visited, m: &Measure, category: (&str, &str), shift: f64) {
    let at = v.start + minutes(if category == LABORATORY { 30 } else { 5 });
    let mut o = observation(r, v, category, m.loinc, at);
    let value = r
        .rng
        .measure(m.mean + shift, m.sd, m.lo + shift, m.hi + shift, m.decimals);
    o["valueQuantity"] = quantity(value, m.unit, m.ucum);
    r.out.push(o);
}

fn vital_signs(r: &mut Record, v: &Visited, visit: Visit, age: u32) {
    let hypertensive = r.has("I10", v.start.date());
    let (sys, dia) = if age < 13 {
        (
            r.rng.measure(102.0, 7.0, 80.0, 125.0, 0),
            r.rng.measure(62.0, 6.0, 45.0, 80.0, 0),
        )
    } else {
        let shift = if hypertensive { 16.0 } else { 0.0 } + f64::from(age.saturating_sub(30)) * 0.3;
        (
            r.rng.measure(116.0 + shift, 9.0, 90.0, 200.0, 0),
            r.rng.measure(75.0 + shift / 2.0, 6.0, 55.0, 120.0, 0),
        )
    };
    let mut bp = observation(
        r,
        v,
        VITAL_SIGNS,
        codes::BLOOD_PRESSURE,
        v.start + minutes(5),
    );
    bp["component"] = json!([
        {"code": concept(LOINC, codes::SYSTOLIC), "valueQuantity": quantity(sys, "mmHg", "mm[Hg]")},
        {"code": concept(LOINC, codes::DIASTOLIC), "valueQuantity": quantity(dia, "mmHg", "mm[Hg]")}
    ]);
    r.out.push(bp);
    let hr_shift = match age {
        0..=1 => 50.0,
        2..=11 => 18.0,
        _ => 0.0,
    };
    measured(r, v, &codes::HEART_RATE, VITAL_SIGNS, hr_shift);
    if visit != Visit::Checkup || r.rng.chance(0.5) {
        measured(
            r,
            v,
            &codes::RESPIRATORY_RATE,
            VITAL_SIGNS,
            if age < 12 { 8.0 } else { 0.0 },
        );
    }
    if matches!(visit, Visit::Symptom | Visit::Emergency | Visit::Inpatient) {
        let fever = if r.rng.chance(0.3) { 1.5 } else { 0.0 };
        measured(r, v, &codes::TEMPERATURE, VITAL_SIGNS, fever);
        measured(r, v, &codes::OXYGEN_SATURATION, VITAL_SIGNS, 0.0);
        let mut pain = observation(
            r,
            v,
            ("survey", "Survey"),
            codes::PAIN,
            v.start + minutes(5),
        );
        pain["valueQuantity"] = json!({"value": r.rng.range(0, 9), "unit": "{score}", "system": UCUM, "code": "{score}"});
        r.out.push(pain);
    }
    if matches!(visit, Visit::Checkup | Visit::Problem(_)) {
        body_size(r, v, age);
    }
}

/// Height (at check-ups), weight and BMI, following growth in childhood.
fn body_size(r: &mut Record, v: &Visited, age: u32) {
    let years = (v.start.date() - r.birth).num_days() as f64 / 365.25;
    // Share of adult height by age (years), linearly between the points.
    const GROWTH: &[(f64, f64)] = &[
        (0.0, 0.29),
        (1.0, 0.44),
        (2.0, 0.51),
        (5.0, 0.63),
        (10.0, 0.80),
        (14.0, 0.93),
        (18.0, 1.0),
    ];
    let share = GROWTH
        .windows(2)
        .find(|w| years < w[1].0)
        .map(|w| w[0].1 + (w[1].1 - w[0].1) * (years - w[0].0) / (w[1].0 - w[0].0))
        .unwrap_or(1.0);
    let height = (r.adult_height * share * 10.0).round() / 10.0;
    let bmi_mean = if age < 2 {
        16.5
    } else if age < 18 {
        17.5
    } else {
        r.bmi
    };
    let bmi = r.rng.measure(bmi_mean, 0.8, 12.0, 60.0, 1);
    let weight = (bmi * (height / 100.0) * (height / 100.0) * 10.0).round() / 10.0;
    if v.kind == codes::CHECKUP || age < 18 {
        vital(r, v, codes::HEIGHT, height, "cm", "cm");
    }
    vital(r, v, codes::WEIGHT, weight, "kg", "kg");
    if age >= 2 {
        vital(r, v, codes::BMI, bmi, "kg/m2", "kg/m2");
    }
}

fn labs(r: &mut Record, v: &Visited, set: &[Measure], shift: f64) {
    for m in set {
        measured(r, v, m, LABORATORY, shift);
    }
}

fn lab_set(r: &mut Record, v: &Visited, set: LabSet) {
    let date = v.start.date();
    match set {
        LabSet::None => {}
        LabSet::Metabolic => labs(r, v, codes::METABOLIC, 0.0),
        LabSet::Lipids => {
            let high = if r.has("E78.5", date) || r.has("E78.00", date) {
                45.0
            } else {
                0.0
            };
            measured(r, v, &codes::CHOLESTEROL, LABORATORY, high);
            measured(r, v, &codes::TRIGLYCERIDE, LABORATORY, high);
            measured(r, v, &codes::LDL, LABORATORY, high * 0.8);
            measured(r, v, &codes::HDL, LABORATORY, 0.0);
        }
        LabSet::Diabetes => {
            let (a1c, glucose) = if r.has("E11.9", date) {
                (2.2, 55.0)
            } else if r.has("R73.03", date) {
                (0.8, 15.0)
            } else {
                (0.0, 0.0)
            };
            measured(r, v, &codes::HBA1C, LABORATORY, a1c);
            measured(r, v, &codes::GLUCOSE, LABORATORY, glucose);
        }
        LabSet::Renal => labs(r, v, codes::RENAL, 0.0),
        LabSet::Blood => labs(r, v, codes::BLOOD_COUNT, -2.5),
        LabSet::Thyroid => {
            let shift = if r.rng.chance(0.5) { 2.5 } else { 0.0 };
            measured(r, v, &codes::TSH, LABORATORY, shift);
        }
    }
}

fn checkup(r: &mut Record, v: &mut Visited, age: u32) {
    let date = v.start.date();
    if age >= 12 {
        let status = if r.has("F17.210", date) {
            codes::SMOKER
        } else if r.former_smoker {
            codes::EX_SMOKER
        } else {
            codes::NEVER_SMOKER
        };
        let mut o = observation(
            r,
            v,
            ("social-history", "Social History"),
            codes::SMOKING_STATUS,
            v.start + minutes(5),
        );
        o["valueCodeableConcept"] = concept(SNOMED, status);
        r.out.push(o);
    }
    if age >= 18 && r.rng.chance(0.5) {
        lab_set(r, v, LabSet::Lipids);
        labs(r, v, codes::METABOLIC, 0.0);
    }
    if age >= 45 && r.rng.chance(0.03) {
        procedure(r, v, "73761001", None);
    }
    if r.female && (18..=45).contains(&age) && r.rng.chance(0.02) {
        procedure(r, v, "65200003", None);
    }
    immunizations(r, v, age);
}

fn follow_up(r: &mut Record, v: &mut Visited, i: usize) {
    let c = &CHRONIC[i];
    lab_set(r, v, c.labs);
    let Some(cid) = r
        .recorded
        .iter()
        .find(|(j, _)| *j == i)
        .map(|(_, id)| id.clone())
    else {
        return;
    };
    match c.icd.0 {
        "J45.909" | "J44.9" if r.rng.chance(0.3) => procedure(r, v, "127783003", Some(&cid)),
        "J30.9" if r.rng.chance(0.2) => procedure(r, v, "180256009", Some(&cid)),
        _ => {}
    }
    // Renew every long-term medication of the patient's conditions.
    let meds: Vec<(&str, String)> = r
        .recorded
        .iter()
        .flat_map(|(j, id)| CHRONIC[*j].meds.iter().map(move |m| (*m, id.clone())))
        .collect();
    if !meds.is_empty() {
        procedure(r, v, "430193006", Some(&cid));
    }
    for (med, reason) in meds {
        medication(r, v, med, &reason, true);
    }
}

fn immunizations(r: &mut Record, v: &mut Visited, age: u32) {
    let date = v.start.date();
    let mut due: Vec<Code> = Vec::new();
    for ((lo, hi), vaccine) in codes::VACCINE_SCHEDULE {
        if (*lo..=*hi).contains(&age) && !r.vaccines.contains(&vaccine.0) && r.rng.chance(0.8) {
            r.vaccines.push(vaccine.0);
            due.push(*vaccine);
        }
    }
    if age >= 1 && r.rng.chance(0.55) {
        due.push(codes::FLU);
    }
    if age >= 19 && r.rng.chance(0.1) {
        due.push(codes::TD);
    }
    if age >= 12
        && date >= NaiveDate::from_ymd_opt(2021, 1, 1).expect("a date")
        && r.rng.chance(0.25)
    {
        due.push(codes::COVID);
    }
    for vaccine in due {
        let id = r.rng.uuid();
        let lot = format!(
            "{}{}",
            char::from(b'A' + r.rng.below(26) as u8),
            r.rng.digits(6)
        );
        r.out.push(json!({
            "resourceType": "Immunization",
            "id": id,
            "status": "completed",
            "vaccineCode": concept(codes::CVX, vaccine),
            "patient": r.patient_ref(),
            "encounter": reference("Encounter", &v.encounter),
            "occurrenceDateTime": local(r.city, v.start + minutes(20)),
            "primarySource": true,
            "lotNumber": lot,
            "performer": [{"actor": reference("Practitioner", &v.clinician)}]
        }));
        v.items.push((codes::CVX, vaccine, 140.0));
    }
}

fn medication(r: &mut Record, v: &mut Visited, rxnorm: &str, reason: &str, long_term: bool) {
    let med = codes::medication(rxnorm);
    let id = r.rng.uuid();
    let authored = v.start + minutes(15);
    let age_days = (today() - authored.date()).num_days();
    let status = match (long_term, age_days) {
        (true, d) if d < 365 => "active",
        (false, d) if d < 30 => "active",
        _ => "completed",
    };
    let dosage = if long_term {
        json!({"sequence": 1, "text": "Take 1 dose daily.", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "asNeededBoolean": false})
    } else {
        json!({"sequence": 1, "text": "Take as needed, at most 3 doses a day.", "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}, "asNeededBoolean": true})
    };
    r.out.push(json!({
        "resourceType": "MedicationRequest",
        "id": id,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept(codes::RXNORM, med),
        "subject": r.patient_ref(),
        "encounter": reference("Encounter", &v.encounter),
        "authoredOn": local(r.city, authored),
        "requester": reference("Practitioner", &v.clinician),
        "reasonReference": [reference("Condition", reason)],
        "dosageInstruction": [dosage]
    }));
    let price = (r.rng.normal(40.0, 20.0, 4.0, 300.0) * 100.0).round() / 100.0;
    v.items.push((codes::RXNORM, med, price));
}

fn procedure(r: &mut Record, v: &mut Visited, snomed: &str, reason: Option<&str>) {
    let code = codes::procedure(snomed);
    let id = r.rng.uuid();
    let start = v.start + minutes(10);
    let end = start + minutes(r.rng.range(10, 45));
    let mut p = json!({
        "resourceType": "Procedure",
        "id": id,
        "status": "completed",
        "code": concept(SNOMED, code),
        "subject": r.patient_ref(),
        "encounter": reference("Encounter", &v.encounter),
        "performedPeriod": {"start": local(r.city, start), "end": local(r.city, end)},
        "performer": [{"actor": reference("Practitioner", &v.clinician)}]
    });
    if let Some(reason) = reason {
        p["reasonReference"] = json!([reference("Condition", reason)]);
    }
    r.out.push(p);
    let price = (r.rng.normal(450.0, 200.0, 50.0, 3000.0)).round();
    v.items.push((SNOMED, code, price));
}

/// Some patients' allergies, recorded by their own doctor.
pub fn allergies(r: &mut Record) {
    if !r.rng.chance(0.25) {
        return;
    }
    let n = r.rng.range(1, 3);
    let mut had: Vec<usize> = Vec::new();
    for _ in 0..n {
        let i = r.rng.below(codes::ALLERGIES.len() as u64) as usize;
        if had.contains(&i) {
            continue;
        }
        had.push(i);
        let (code, category) = codes::ALLERGIES[i];
        let (manifestation, severity, criticality) = match r.rng.below(10) {
            0 => (("39579001", "Anaphylaxis (disorder)"), "severe", "high"),
            1..=4 => (
                ("271807003", "Eruption of skin (disorder)"),
                "moderate",
                "low",
            ),
            5..=7 => (("247472004", "Wheal (finding)"), "mild", "low"),
            _ => (("418290006", "Itching (finding)"), "mild", "low"),
        };
        let recorded = r.birth.max(today() - days(3650)) + days(r.rng.range(0, 1000));
        let at = recorded.min(today()).and_hms_opt(10, 0, 0).expect("a time");
        let id = r.rng.uuid();
        r.out.push(json!({
            "resourceType": "AllergyIntolerance",
            "id": id,
            "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", ("active", "Active")),
            "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", ("confirmed", "Confirmed")),
            "type": "allergy",
            "category": [category],
            "criticality": criticality,
            "code": concept(SNOMED, code),
            "patient": r.patient_ref(),
            "recordedDate": local(r.city, at),
            "recorder": reference("Practitioner", &r.gp),
            "reaction": [{
                "manifestation": [concept(SNOMED, manifestation)],
                "severity": severity
            }]
        }));
    }
}
