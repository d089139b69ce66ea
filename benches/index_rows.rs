//! Index extraction cost per resource type over the Synthea sample:
//! `cargo bench --bench index_rows` (needs ../shared or CHARAKA_SHARED).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() {
    let shared = std::env::var("CHARAKA_SHARED").unwrap_or_else(|_| "../shared".into());
    let dir = std::path::Path::new(&shared).join("data/synthea-sample");
    let Ok(files) = std::fs::read_dir(&dir) else {
        eprintln!(
            "no Synthea sample at {} (set CHARAKA_SHARED)",
            dir.display()
        );
        return;
    };
    let mut resources = Vec::new();
    for e in files {
        let b: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        for entry in b["entry"].as_array().unwrap() {
            resources.push(entry["resource"].clone());
        }
    }
    // Warm the registry and schema before timing.
    charaka::search::extract::index_rows(
        charaka::search::registry(),
        "Patient",
        &resources[0],
        "http://x/fhir",
    );
    let start = Instant::now();
    let mut rows = 0;
    let mut by_type: BTreeMap<String, (usize, Duration)> = BTreeMap::new();
    for r in &resources {
        let t = r["resourceType"].as_str().unwrap();
        let s = Instant::now();
        rows += charaka::search::extract::index_rows(
            charaka::search::registry(),
            t,
            r,
            "http://x/fhir",
        )
        .len();
        let e = by_type.entry(t.to_string()).or_default();
        e.0 += 1;
        e.1 += s.elapsed();
    }
    let el = start.elapsed();
    println!(
        "{} resources, {rows} index rows, {:.1} us/resource",
        resources.len(),
        el.as_micros() as f64 / resources.len() as f64
    );
    for (t, (n, d)) in by_type {
        println!("{t}: {n} x {:.1} us", d.as_micros() as f64 / n as f64);
    }
}
