//! The shared pool: provider Organizations, payor Organizations and
//! Practitioners that every patient Bundle references. They are derived from
//! the seed alone and written once, to the first file of the output
//! (`000000-shared.json`), as `PUT Type/id` entries, so loading the
//! files again updates them (a new version) instead of duplicating them.

use serde_json::{json, Value};

use super::names;
use super::rng::{Rng, SHARED_STREAM};

/// Provider organizations; the first [`HOSPITALS`] have emergency rooms and beds.
pub const PROVIDERS: usize = 10;
pub const HOSPITALS: usize = 4;
pub const PRACTITIONERS: usize = 50;

/// A city and its time zone: standard offset in hours, and whether it keeps
/// US daylight saving time.
pub struct City {
    pub name: &'static str,
    pub state: &'static str,
    pub zip: &'static str,
    pub offset: i32,
    pub dst: bool,
}

pub const CITIES: &[City] = &[
    City {
        name: "Boston",
        state: "MA",
        zip: "021",
        offset: -5,
        dst: true,
    },
    City {
        name: "Chicago",
        state: "IL",
        zip: "606",
        offset: -6,
        dst: true,
    },
    City {
        name: "Denver",
        state: "CO",
        zip: "802",
        offset: -7,
        dst: true,
    },
    City {
        name: "Phoenix",
        state: "AZ",
        zip: "850",
        offset: -7,
        dst: false,
    },
    City {
        name: "Los Angeles",
        state: "CA",
        zip: "900",
        offset: -8,
        dst: true,
    },
    City {
        name: "Honolulu",
        state: "HI",
        zip: "968",
        offset: -10,
        dst: false,
    },
    City {
        name: "San Juan",
        state: "PR",
        zip: "009",
        offset: -4,
        dst: false,
    },
    City {
        name: "Anchorage",
        state: "AK",
        zip: "995",
        offset: -9,
        dst: true,
    },
    City {
        name: "Houston",
        state: "TX",
        zip: "770",
        offset: -6,
        dst: true,
    },
    City {
        name: "Seattle",
        state: "WA",
        zip: "981",
        offset: -8,
        dst: true,
    },
];

const PROVIDER_NAMES: [&str; PROVIDERS] = [
    "Beacon Hill General Hospital",
    "Lakeshore Medical Center",
    "Front Range Regional Hospital",
    "Desert Sun Hospital",
    "Pacific Family Medicine",
    "Kōkua Community Health Center",
    "Clínica Familiar San José",
    "Northern Lights Primary Care",
    "Bayou City Internal Medicine",
    "Evergreen Pediatrics & Family Practice",
];

/// Payors: (name, kind) where kind picks who they cover.
pub const PAYORS: &[(&str, Payor)] = &[
    ("Medicare", Payor::Medicare),
    ("Medicaid", Payor::Medicaid),
    ("Harborlight Health Plan", Payor::Private),
    ("Summit Mutual Insurance", Payor::Private),
    ("Cascadia Health Assurance", Payor::Private),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payor {
    Medicare,
    Medicaid,
    Private,
}

/// Ids and home cities of the pool, which patients draw from.
pub struct Pool {
    /// Provider organization ids; provider `i` is in `CITIES[i]`.
    pub providers: Vec<String>,
    pub payors: Vec<String>,
    /// (id, index of the provider the practitioner works at).
    pub practitioners: Vec<(String, usize)>,
    resources: Vec<Value>,
}

impl Pool {
    pub fn new(seed: u64) -> Pool {
        let mut rng = Rng::new(seed, SHARED_STREAM);
        let mut resources = Vec::new();
        let mut providers = Vec::new();
        for (i, name) in PROVIDER_NAMES.iter().enumerate() {
            let id = rng.uuid();
            let city = &CITIES[i];
            let kind = if i < HOSPITALS { "Hospital" } else { "Clinic" };
            resources.push(json!({
                "resourceType": "Organization",
                "id": id,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi(&mut rng)}],
                "active": true,
                "type": [{
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}],
                    "text": kind
                }],
                "name": name,
                "telecom": [{"system": "phone", "value": phone(&mut rng), "use": "work"}],
                "address": [address(&mut rng, city, "work")]
            }));
            providers.push(id);
        }
        let mut payors = Vec::new();
        for (name, _) in PAYORS {
            let id = rng.uuid();
            resources.push(json!({
                "resourceType": "Organization",
                "id": id,
                "active": true,
                "type": [{
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay", "display": "Payer"}]
                }],
                "name": name,
                "telecom": [{"system": "phone", "value": phone(&mut rng), "use": "work"}]
            }));
            payors.push(id);
        }
        let mut practitioners = Vec::new();
        for i in 0..PRACTITIONERS {
            let id = rng.uuid();
            let provider = i % PROVIDERS;
            let female = rng.chance(0.5);
            let person = names::person(&mut rng, female);
            let mut name = person.names.into_iter().next().expect("one name");
            name["prefix"] = json!(["Dr."]);
            resources.push(json!({
                "resourceType": "Practitioner",
                "id": id,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi(&mut rng)}],
                "active": true,
                "name": [name],
                "telecom": [{"system": "email", "value": format!("{}@{}.example.org", person.email_user, "clinicians"), "use": "work"}],
                "address": [address(&mut rng, &CITIES[provider], "work")],
                "gender": if female { "female" } else { "male" }
            }));
            practitioners.push((id, provider));
        }
        Pool {
            providers,
            payors,
            practitioners,
            resources,
        }
    }

    /// The pool's resources, Organizations first.
    pub fn resources(&self) -> &[Value] {
        &self.resources
    }

    /// Practitioners working at provider `provider`.
    pub fn staff(&self, provider: usize) -> impl Iterator<Item = &str> {
        self.practitioners
            .iter()
            .filter(move |(_, p)| *p == provider)
            .map(|(id, _)| id.as_str())
    }
}

/// A US National Provider Identifier with a valid Luhn check digit
/// (computed over the `80840` prefix, as the NPI standard says).
pub fn npi(rng: &mut Rng) -> String {
    let body = format!("{}{}", 1 + rng.below(2), rng.digits(8));
    let mut sum = 24; // the prefix 80840 contributes 24
    for (i, d) in body.bytes().rev().enumerate() {
        let mut d = u32::from(d - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A fictional North American phone number (555-01xx are reserved for fiction).
pub fn phone(rng: &mut Rng) -> String {
    format!("555-01{:02}-{}", rng.below(100), rng.digits(4))
}

pub fn address(rng: &mut Rng, city: &City, use_: &str) -> Value {
    const STREETS: &[&str] = &[
        "Maple Street",
        "Oak Avenue",
        "Main Street",
        "Cedar Lane",
        "Elm Street",
        "Washington Avenue",
        "Lake View Drive",
        "Park Road",
        "Hillside Terrace",
        "Calle del Sol",
        "Kamehameha Highway",
        "Avenida Ponce de León",
        "Birch Court",
    ];
    json!({
        "use": use_,
        "line": [format!("{} {}", rng.range(1, 9999), rng.pick(STREETS))],
        "city": city.name,
        "state": city.state,
        "postalCode": format!("{}{:02}", city.zip, rng.below(100)),
        "country": "US"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npis_pass_the_luhn_check() {
        let mut rng = Rng::new(3, 3);
        for _ in 0..100 {
            let n = npi(&mut rng);
            assert_eq!(n.len(), 10);
            let digits: Vec<u32> = format!("80840{n}")
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .collect();
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, d)| {
                    if i % 2 == 1 {
                        let x = d * 2;
                        if x > 9 {
                            x - 9
                        } else {
                            x
                        }
                    } else {
                        *d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{n}");
        }
    }

    #[test]
    fn pool_depends_on_the_seed_only() {
        let a = Pool::new(9);
        let b = Pool::new(9);
        assert_eq!(a.resources(), b.resources());
        assert_ne!(Pool::new(10).providers, a.providers);
        assert_eq!(
            a.resources().len(),
            PROVIDERS + PAYORS.len() + PRACTITIONERS
        );
        assert!((0..PROVIDERS).all(|p| a.staff(p).count() == PRACTITIONERS / PROVIDERS));
    }
}
