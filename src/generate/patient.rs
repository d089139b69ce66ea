//! One synthetic patient: demographics, the plan of their long-term
//! conditions and visits, and the record that the visits fill in
//! (`clinical.rs`, `billing.rs`).

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};

use super::codes::{self, Sex, CHRONIC};
use super::rng::Rng;
use super::shared::{self, City, Pool, CITIES, PROVIDERS};
use super::time::{add_years, age_on, days, today};
use super::{billing, clinical, concept, names, reference};

/// Average resources per visit, measured; used to turn a patient's target
/// size into a number of visits.
const RESOURCES_PER_VISIT: f64 = 11.5;

/// The visits of a record span at most this many years before today.
const HISTORY_YEARS: i32 = 15;

/// What the generators of a patient's record share.
pub struct Record<'a> {
    pub rng: Rng,
    pub pool: &'a Pool,
    pub id: String,
    pub female: bool,
    pub birth: NaiveDate,
    pub city: &'static City,
    /// Index of the patient's usual provider organization.
    pub home: usize,
    /// The patient's own doctor.
    pub gp: String,
    /// Indices into [`CHRONIC`] with onset dates.
    pub chronic: Vec<(usize, NaiveDate)>,
    /// Conditions recorded so far: index into [`CHRONIC`], Condition id.
    pub recorded: Vec<(usize, String)>,
    /// Coverage ids with the dates they start and end.
    pub coverage: Vec<(String, NaiveDate, Option<NaiveDate>)>,
    /// One-time vaccines (CVX) given so far.
    pub vaccines: Vec<&'static str>,
    pub former_smoker: bool,
    /// Adult height in cm and usual body-mass index.
    pub adult_height: f64,
    pub bmi: f64,
    /// The generated resources, in order.
    pub out: Vec<Value>,
}

/// The kinds of visit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Visit {
    Checkup,
    Symptom,
    /// Follow-up of (or first diagnosis of) a long-term condition.
    Problem(Option<usize>),
    Emergency,
    Inpatient,
}

/// Generates patient `index` of the dataset of `seed`, about `mean`
/// resources on average over many patients.
pub fn generate(seed: u64, index: u64, pool: &Pool, mean: f64) -> Vec<Value> {
    let mut rng = Rng::new(seed, index);
    let id = rng.uuid();
    let female = rng.chance(0.51);
    let age_years = age(&mut rng);
    let birth = today() - days(i64::from(age_years) * 365 + rng.range(0, 364));
    let home = rng.below(PROVIDERS as u64) as usize;
    let staff: Vec<&str> = pool.staff(home).collect();
    let gp = rng.pick(&staff).to_string();
    let adult_height = if female {
        rng.measure(162.0, 6.5, 145.0, 185.0, 1)
    } else {
        rng.measure(176.0, 7.0, 155.0, 200.0, 1)
    };
    let bmi = rng.normal(26.5, 4.0, 18.0, 45.0);
    let mut record = Record {
        rng,
        pool,
        id,
        female,
        birth,
        city: &CITIES[home],
        home,
        gp,
        chronic: Vec::new(),
        recorded: Vec::new(),
        coverage: Vec::new(),
        vaccines: Vec::new(),
        former_smoker: false,
        adult_height,
        bmi,
        out: Vec::new(),
    };
    record.former_smoker = age_years >= 25 && record.rng.chance(0.2);
    let patient = record.patient(seed, index);
    record.out.push(patient);
    billing::coverage(&mut record);
    clinical::allergies(&mut record);
    record.plan_conditions();
    let target = mean * size_factor(&mut record.rng);
    let visits = ((target - record.out.len() as f64) / RESOURCES_PER_VISIT)
        .round()
        .max(1.0) as usize;
    for (at, visit) in record.schedule(visits) {
        clinical::visit(&mut record, at, visit);
    }
    record.out
}

/// A patient's size relative to the mean: most near it, one in seven with
/// about twice as much (the chronically ill), never below a quarter.
fn size_factor(rng: &mut Rng) -> f64 {
    // The mixture's mean is 0.86 * 1.0 + 0.14 * 2.2 = 1.168.
    let f = if rng.chance(0.14) {
        rng.normal(2.2, 0.6, 1.0, 5.0)
    } else {
        rng.normal(1.0, 0.35, 0.25, 2.0)
    };
    f / 1.168
}

/// An age in years, distributed roughly like the US population.
fn age(rng: &mut Rng) -> u32 {
    const BANDS: &[(u32, u32)] = &[(0, 4), (5, 17), (18, 44), (45, 64), (65, 84), (85, 100)];
    const WEIGHTS: &[u32] = &[6, 16, 36, 25, 14, 3];
    let (lo, hi) = BANDS[rng.weighted(WEIGHTS)];
    rng.range(i64::from(lo), i64::from(hi)) as u32
}

impl Record<'_> {
    pub fn patient_ref(&self) -> Value {
        reference("Patient", &self.id)
    }

    pub fn age_on(&self, on: NaiveDate) -> u32 {
        age_on(self.birth, on)
    }

    /// A practitioner of provider `provider` (the patient's own doctor at home).
    pub fn clinician(&mut self, provider: usize) -> String {
        if provider == self.home && self.rng.chance(0.8) {
            return self.gp.clone();
        }
        let staff: Vec<&str> = self.pool.staff(provider).collect();
        self.rng.pick(&staff).to_string()
    }

    fn patient(&mut self, seed: u64, index: u64) -> Value {
        let person = names::person(&mut self.rng, self.female);
        let birth_date = match self.rng.below(100) {
            0..=89 => self.birth.format("%Y-%m-%d").to_string(),
            90..=96 => self.birth.format("%Y-%m").to_string(),
            _ => self.birth.format("%Y").to_string(),
        };
        let mut telecom = vec![json!({
            "system": "phone",
            "value": shared::phone(&mut self.rng),
            "use": if self.rng.chance(0.7) { "mobile" } else { "home" }
        })];
        if self.rng.chance(0.6) {
            telecom.push(json!({
                "system": "email",
                "value": format!("{}@example.com", person.email_user),
                "use": "home"
            }));
        }
        let language = match self.rng.below(10) {
            0 => ("es", "Spanish"),
            1 => ("zh", "Chinese"),
            _ => ("en", "English"),
        };
        let married = self.age_on(today()) >= 25 && self.rng.chance(0.5);
        json!({
            "resourceType": "Patient",
            "id": self.id,
            "identifier": [{
                "use": "usual",
                "type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", ("MR", "Medical record number")),
                "system": "urn:charaka:mrn",
                "value": format!("{seed}-{:08}", index + 1)
            }],
            "active": true,
            "name": person.names,
            "telecom": telecom,
            "gender": if self.female { "female" } else { "male" },
            "birthDate": birth_date,
            "address": [shared::address(&mut self.rng, self.city, "home")],
            "maritalStatus": concept(
                "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                if married { ("M", "Married") } else { ("S", "Never Married") }
            ),
            "communication": [{
                "language": concept("urn:ietf:bcp:47", language),
                "preferred": true
            }],
            "generalPractitioner": [reference("Practitioner", &self.gp)],
            "managingOrganization": reference("Organization", &self.pool.providers[self.home])
        })
    }

    /// Decides which long-term conditions the patient has and since when.
    fn plan_conditions(&mut self) {
        let age = self.age_on(today());
        for (i, c) in CHRONIC.iter().enumerate() {
            if age < c.min_age || (c.sex == Sex::Female && !self.female) {
                continue;
            }
            // Older patients are likelier to have them.
            let scale = (f64::from(age) / 60.0).clamp(0.3, 1.5);
            let p = if c.min_age < 18 {
                c.share
            } else {
                c.share * scale
            };
            if !self.rng.chance(p) {
                continue;
            }
            let onset_age = self.rng.range(i64::from(c.min_age), i64::from(age)) as i32;
            let onset = (add_years(self.birth, onset_age) + days(self.rng.range(0, 364)))
                .min(today() - days(1));
            self.chronic.push((i, onset));
        }
        if self
            .chronic
            .iter()
            .any(|(i, _)| CHRONIC[*i].icd.0 == "E66.9")
        {
            self.bmi = self.bmi.max(31.0);
        }
    }

    /// Visit times and kinds, in order: a first visit for each long-term
    /// condition that starts within the history, and `n` others.
    fn schedule(&mut self, n: usize) -> Vec<(NaiveDateTime, Visit)> {
        let start = self.birth.max(add_years(today(), -HISTORY_YEARS));
        let span = (today() - start).num_days().max(1);
        let mut visits = Vec::with_capacity(n + self.chronic.len());
        for (i, onset) in self.chronic.clone() {
            if onset >= start {
                visits.push((onset, Visit::Problem(Some(i))));
            }
        }
        let chronic = !self.chronic.is_empty();
        for _ in 0..n {
            let date = start + days(self.rng.range(0, span - 1));
            let age = self.age_on(date);
            let inpatient = if (2..60).contains(&age) { 1 } else { 4 };
            let weights = [34, 26, if chronic { 28 } else { 0 }, 8, inpatient];
            let visit = match self.rng.weighted(&weights) {
                0 => Visit::Checkup,
                1 => Visit::Symptom,
                2 => Visit::Problem(None),
                3 => Visit::Emergency,
                _ => Visit::Inpatient,
            };
            visits.push((date, visit));
        }
        visits.sort_by_key(|(date, _)| *date);
        visits
            .into_iter()
            .map(|(date, visit)| {
                let (from, to) = match visit {
                    Visit::Emergency | Visit::Inpatient => (0, 23 * 60),
                    _ => (8 * 60, 17 * 60),
                };
                let minute = self.rng.range(from, to);
                let at =
                    date.and_hms_opt(0, 0, 0).expect("midnight") + super::time::minutes(minute);
                (at, visit)
            })
            .collect()
    }

    /// The long-term conditions that have started by `on`.
    pub fn conditions_on(&self, on: NaiveDate) -> Vec<usize> {
        self.chronic
            .iter()
            .filter(|(_, onset)| *onset <= on)
            .map(|(i, _)| *i)
            .collect()
    }

    pub fn has(&self, code: &str, on: NaiveDate) -> bool {
        self.conditions_on(on)
            .iter()
            .any(|i| codes::CHRONIC[*i].icd.0 == code)
    }
}
