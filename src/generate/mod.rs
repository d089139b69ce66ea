//! `charaka generate`: realistic synthetic patients as FHIR R4 transaction
//! Bundles, for demos, tests and benchmarks.
//!
//! Output, in `--out DIR`:
//! - `000000-shared.json`: the shared pool (provider and payor
//!   Organizations, Practitioners), derived from the seed alone;
//! - `000001-patients.json`, ...: `--per-bundle` patients each, with their
//!   Encounters, Conditions (ICD-10-CM), Observations (LOINC, UCUM),
//!   MedicationRequests (RxNorm), Procedures (SNOMED CT), Immunizations
//!   (CVX), AllergyIntolerances, Coverages and Claims.
//!
//! The numbers come first so that every ordering by name (`charaka
//! import DIR`, a shell glob) loads the shared file first.
//!
//! Every resource has a stable id (a UUID drawn from the seeded stream) and
//! is written as `PUT Type/id`: loading the files twice updates each
//! resource (version 2) and duplicates nothing, patients included.
//! References are plain `Type/id`.
//!
//! Deterministic: the same seed gives byte-identical files; patient `i`
//! depends only on the seed and `i` (see `rng.rs`), not on `--patients` or
//! `--per-bundle`. Dates end on a fixed day (`time::TODAY`).

mod billing;
mod bundle;
mod clinical;
mod codes;
mod names;
mod patient;
mod rng;
mod shared;
mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use bundle::BundleFile;
use shared::Pool;

/// The server's default `max_bundle_entries`.
const SERVER_BUNDLE_LIMIT: usize = 10_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub patients: u64,
    pub out: PathBuf,
    pub seed: u64,
    pub per_bundle: u64,
    /// Approximate mean number of resources per patient.
    pub resources_per_patient: u32,
}

/// What was generated.
#[derive(Debug, Default)]
pub struct Summary {
    pub patients: u64,
    /// Files written, the shared one included.
    pub files: Vec<PathBuf>,
    pub resources: BTreeMap<String, u64>,
    pub largest_bundle: usize,
    pub seconds: f64,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.resources.values().sum()
    }

    /// Prints the summary (to stderr: stdout stays free for pipes).
    pub fn print(&self) {
        eprintln!(
            "generated {} patients, {} resources in {} files in {:.1} s ({:.0} resources/s)",
            self.patients,
            self.total(),
            self.files.len(),
            self.seconds,
            self.total() as f64 / self.seconds.max(0.001)
        );
        for (rtype, n) in &self.resources {
            eprintln!("  {rtype:<28} {n:>9}");
        }
        if self.largest_bundle > SERVER_BUNDLE_LIMIT {
            eprintln!(
                "warning: the largest Bundle has {} entries; the server refuses more than max_bundle_entries ({} by default): use a smaller --per-bundle",
                self.largest_bundle, SERVER_BUNDLE_LIMIT
            );
        }
    }
}

/// Writes the shared file and the patient Bundles into `options.out`,
/// which must not contain `.json` files yet.
pub fn run(options: &Options) -> anyhow::Result<Summary> {
    anyhow::ensure!(options.per_bundle > 0, "--per-bundle must be at least 1");
    anyhow::ensure!(
        options.resources_per_patient >= 20,
        "--resources-per-patient must be at least 20"
    );
    let started = Instant::now();
    let dir = &options.out;
    std::fs::create_dir_all(dir)?;
    if let Some(existing) = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
    {
        anyhow::bail!(
            "{} already holds generated files ({}); choose an empty directory",
            dir.display(),
            existing.file_name().to_string_lossy()
        );
    }
    let bundles = options.patients.div_ceil(options.per_bundle);
    let width = bundles.to_string().len().max(6);
    let mut summary = Summary::default();
    let pool = Pool::new(options.seed);

    let path = dir.join(format!("{:0width$}-shared.json", 0));
    let mut file = BundleFile::create(&path)?;
    for resource in pool.resources() {
        file.put(resource, &mut summary.resources)?;
    }
    summary.largest_bundle = file.finish()?;
    summary.files.push(path);

    let mean = f64::from(options.resources_per_patient);
    for b in 0..bundles {
        let path = dir.join(format!("{:0width$}-patients.json", b + 1));
        let mut file = BundleFile::create(&path)?;
        let first = b * options.per_bundle;
        let last = (first + options.per_bundle).min(options.patients);
        for index in first..last {
            for resource in patient::generate(options.seed, index, &pool, mean) {
                file.put(&resource, &mut summary.resources)?;
            }
            summary.patients += 1;
        }
        summary.largest_bundle = summary.largest_bundle.max(file.finish()?);
        summary.files.push(path);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A reference to `Type/id`.
fn reference(rtype: &str, id: &str) -> Value {
    json!({"reference": format!("{rtype}/{id}")})
}

/// A CodeableConcept with one coding, its display as the text.
fn concept(system: &str, (code, display): (&str, &str)) -> Value {
    json!({
        "coding": [{"system": system, "code": code, "display": display}],
        "text": display
    })
}

/// The patient Bundles of `dir` in load order (for tests and tools).
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
