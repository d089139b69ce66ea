//! Terminology latency and throughput: `cargo bench --bench terminology`.
//! Loads the shipped ICD-10-CM (time, memory), then times `$lookup`,
//! `$validate-code` and `$expand` with a filter in-process through the
//! service layer, then over HTTP with wrk (when installed) on a server in
//! this process (SQLite in a temporary directory).

use std::time::{Duration, Instant};

use charaka::service::terminology::OpInput;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

fn query(pairs: &[(&str, &str)]) -> OpInput {
    let v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OpInput::from_query(&v)
}

const ICD: &str = "http://hl7.org/fhir/sid/icd-10-cm";

fn main() {
    let before = rss_kib();
    let started = Instant::now();
    let cs = charaka::terminology::shipped_icd10cm();
    println!(
        "load shipped ICD-10-CM: {} concepts in {:.2} s; resident memory +{} MiB",
        cs.concepts.len(),
        started.elapsed().as_secs_f64(),
        (rss_kib() - before) / 1024
    );
    let xml = std::env::var("ICD10CM_XML").ok();
    if let Some(path) = &xml {
        let t = Instant::now();
        let imported = charaka::terminology::release::import_xml(
            std::path::Path::new(path),
            None,
            &mut |_, _| {},
        )
        .unwrap();
        println!(
            "import {} ({} items): {:.2} s",
            path,
            imported.items,
            t.elapsed().as_secs_f64()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = charaka::config::Config {
            database_url: format!("sqlite://{}/charaka.db", dir.path().display()),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = charaka::server::start(&config, listener).await.unwrap();
        let fhir = &server.app.fhir;
        let codes: Vec<String> = cs
            .concepts
            .iter()
            .step_by(37)
            .map(|c| c.code.to_string())
            .collect();
        for (name, op) in [("$lookup", 0), ("$validate-code", 1)] {
            let mut times = Vec::new();
            for code in &codes {
                let input = query(&[("system", ICD), ("url", ICD), ("code", code)]);
                let t = Instant::now();
                let out = if op == 0 {
                    fhir.lookup(None, &input).await
                } else {
                    fhir.validate_code_system(None, &input).await
                };
                times.push(t.elapsed());
                assert!(out.is_ok());
            }
            let (p50, p99) = percentiles(times);
            println!(
                "{name} in-process ({} codes): p50 {p50:.3} ms, p99 {p99:.3} ms",
                codes.len()
            );
        }
        let filters = [
            "diabetes",
            "type 2 diab",
            "diabetes type 2",
            "E11.9",
            "fracture femur",
            "hypertension",
            "chronic kidney",
            "asthma",
            "pneumonia",
            "open wound hand",
            "initial encounter",
            "heart failure",
            "copd",
            "depress",
            "sepsis",
            "migraine",
        ];
        let url = format!("{ICD}?fhir_vs");
        let mut times = Vec::new();
        for _ in 0..20 {
            for f in filters {
                let input = query(&[("url", &url), ("filter", f), ("count", "20")]);
                let t = Instant::now();
                let out = fhir.expand(None, &input).await;
                times.push(t.elapsed());
                assert!(out.is_ok());
            }
        }
        let (p50, p99) = percentiles(times);
        println!(
            "$expand filter (1-3 words, count=20) in-process: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        let base = format!("http://{}/fhir", server.addr);
        if std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok()
        {
            for (name, path) in [
                (
                    "$lookup",
                    format!("{base}/CodeSystem/$lookup?system={ICD}&code=E11.9"),
                ),
                (
                    "$validate-code",
                    format!("{base}/CodeSystem/$validate-code?url={ICD}&code=S72.001A"),
                ),
                (
                    "$expand filter",
                    format!(
                        "{base}/ValueSet/$expand?url={ICD}?fhir_vs&filter=type%202%20diab&count=20"
                    ),
                ),
            ] {
                let out = tokio::process::Command::new("wrk")
                    .args(["-t2", "-c32", "-d5s", "--latency", &path])
                    .output()
                    .await
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                let rps = text
                    .lines()
                    .find(|l| l.starts_with("Requests/sec"))
                    .unwrap_or("")
                    .to_string();
                let p99 = text
                    .lines()
                    .find(|l| l.trim_start().starts_with("99%"))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                println!("{name} over HTTP (wrk -t2 -c32): {rps}; latency {p99}");
            }
        }
        server.stop().await;
    });
}
