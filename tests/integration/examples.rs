//! The official R4 examples round trip: every example of npm
//! `hl7.fhir.r4.examples@4.0.1` is written as JSON, read back equal, read as
//! XML, written back as XML and read back equal again.
//!
//! The examples directory (the package's `package/`) comes from
//! `CHARAKA_R4_EXAMPLES`. Without it the test says so and passes, except in CI
//! (`CI` set), where it fails: the round trip must run there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::harness::{Resp, TestServer};

const ENV_VAR: &str = "CHARAKA_R4_EXAMPLES";

/// The examples that are genuinely invalid R4 and must be rejected with 400:
/// the file, why it is invalid, and what the OperationOutcome must say: a
/// prefix of one of its issue expressions, or else words of a diagnostic.
const KNOWN_INVALID: &[(&str, &str, &str)] = &[
    (
        "Questionnaire-qs1.json",
        "nested items have no linkId (Questionnaire.item.linkId is 1..1)",
        "Questionnaire.item[0].item[0].linkId",
    ),
    (
        "ImplementationGuide-fhir.json",
        "has neither name nor status (both 1..1)",
        "ImplementationGuide.name",
    ),
    (
        "ig-r4.json",
        "a copy of ImplementationGuide-fhir.json: no name, no status",
        "ImplementationGuide.name",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-author.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-effective.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-end.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-keyword.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-workflow.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-author.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-effective.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-end.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-keyword.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-workflow.json",
        "no base (SearchParameter.base is 1..*)",
        "SearchParameter.base",
    ),
    (
        "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json",
        "its id has 67 characters; an R4 id has at most 64",
        "is not a valid id",
    ),
    (
        "CodeSystem-v2-0550.json",
        "mis-encoded codes `CHESTÂ\u{a0}`, `KIDNÂ\u{a0}`, `\u{a0}` and `Â\u{a0}`: a code must not \
         begin or end with whitespace (U+00A0 is whitespace to the JSON schema's \\s)",
        "CodeSystem.concept[74].code",
    ),
    (
        "Bundle-v2-valuesets.json",
        "holds CodeSystem-v2-0550 with its mis-encoded codes (see there)",
        "Bundle.entry[814].resource.concept[74].code",
    ),
];

/// Optional: a file to write every failure to (only the first few are printed).
const REPORT_VAR: &str = "CHARAKA_R4_EXAMPLES_REPORT";

/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Failures printed in full.
const SHOWN_FAILURES: usize = 20;
/// Body limit of the SQLite server: above the largest example (Bundle-resources
/// is 30 MB as compact JSON, more as XML), so every example is round-tripped.
const SQLITE_BODY_LIMIT: usize = 128 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_examples_round_trip_on_sqlite() {
    let Some(dir) = examples_dir() else { return };
    let server = TestServer::sqlite_with(|c| c.max_body_bytes = SQLITE_BODY_LIMIT).await;
    round_trip(&server, "SQLite", &dir, SQLITE_BODY_LIMIT).await;
    server.stop().await;
}

/// On PostgreSQL with the default body limit (the harness has no way to
/// change it there): bodies above it must be refused with 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_examples_round_trip_on_postgres() {
    let Some(dir) = examples_dir() else { return };
    let Some(server) = TestServer::postgres().await else {
        return;
    };
    round_trip(
        &server,
        "PostgreSQL",
        &dir,
        charaka::config::Config::default().max_body_bytes,
    )
    .await;
    server.stop().await;
}

fn examples_dir() -> Option<PathBuf> {
    match std::env::var_os(ENV_VAR) {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!(
            "{ENV_VAR} is not set: in CI the R4 examples round trip must run; set it to the \
             package/ directory of npm hl7.fhir.r4.examples@4.0.1"
        ),
        None => {
            eprintln!(
                "R4 examples round trip NOT RUN: set {ENV_VAR} to the package/ directory of npm \
                 hl7.fhir.r4.examples@4.0.1"
            );
            None
        }
    }
}

/// The start of an example: enough to know where it goes.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    id: Option<String>,
}

struct Example {
    file: String,
    path: PathBuf,
    rtype: String,
    id: Option<String>,
    size: u64,
}

/// The example files of the directory with their type and id, skipping the
/// package's own files and anything that is not a resource.
fn scan(dir: &Path) -> (Vec<Example>, usize) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{ENV_VAR}={}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "package.json" && n != ".index.json")
        .collect();
    names.sort();
    let mut examples = Vec::new();
    let mut not_resources = 0;
    for file in names {
        let path = dir.join(&file);
        let bytes = std::fs::read(&path).unwrap();
        match serde_json::from_slice::<Head>(&bytes) {
            Ok(Head {
                resource_type: Some(rtype),
                id,
            }) => examples.push(Example {
                file,
                path,
                rtype,
                id,
                size: bytes.len() as u64,
            }),
            _ => not_resources += 1,
        }
    }
    (examples, not_resources)
}

#[derive(Debug)]
struct Failure {
    file: String,
    step: &'static str,
    status: u16,
    detail: String,
}

enum Outcome {
    /// Accepted, and equal after the JSON and the XML round trips.
    RoundTripped,
    /// Rejected with 400, as a known-invalid example must be.
    Rejected,
    /// A body above the server's limit, refused with 413 at this step.
    TooLarge(&'static str),
    /// An AuditEvent, refused with 405: only the server records them.
    ServerWritten,
    Failed(Failure),
}

/// `meta` without the server-set `versionId` and `lastUpdated` (and without
/// `meta` when nothing else is left in it).
fn without_server_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        let empty = match obj.get_mut("meta") {
            Some(Value::Object(meta)) => {
                meta.remove("versionId");
                meta.remove("lastUpdated");
                meta.is_empty()
            }
            _ => false,
        };
        if empty {
            obj.remove("meta");
        }
    }
    v
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(150) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Where two strings part: the character offset and a little of each from there.
fn string_difference(path: &str, a: &str, b: &str) -> String {
    let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(20);
    let piece = |s: &str| {
        let p: String = s.chars().skip(from).take(60).collect();
        format!("{:?}", p)
    };
    format!(
        "{path}: strings differ at character {at} (of {} expected, {} got): expected …{}…, got …{}…",
        a.chars().count(),
        b.chars().count(),
        piece(a),
        piece(b)
    )
}

/// The first place where two JSON values differ, as `path: expected …, got …`.
fn first_difference(expected: &Value, got: &Value, path: &str) -> Option<String> {
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    None => return Some(format!("{p}: missing (expected {})", short(va))),
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &p) {
                            return Some(d);
                        }
                    }
                }
            }
            b.iter()
                .find(|(k, _)| !a.contains_key(*k))
                .map(|(k, vb)| format!("{path}.{k}: unexpected {}", short(vb)))
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                if let Some(d) = first_difference(va, vb, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (a.len() != b.len())
                .then(|| format!("{path}: {} items expected, got {}", a.len(), b.len()))
        }
        (Value::String(a), Value::String(b)) if a != b => Some(string_difference(path, a, b)),
        _ if expected == got => None,
        _ => Some(format!(
            "{path}: expected {}, got {}",
            short(expected),
            short(got)
        )),
    }
}

/// The kind of a failure, to count alike ones together: the step, the status
/// and the element (without the resource type and list indices) or message.
fn kind(f: &Failure) -> String {
    let what = f.detail.split(": ").next().unwrap_or("");
    let element = match what.split_once('.') {
        Some((_, rest)) if !what.contains(' ') => {
            let mut out = String::new();
            let mut depth = 0;
            for c in rest.chars() {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    c if depth == 0 => out.push(c),
                    _ => {}
                }
            }
            out
        }
        _ => f.detail.chars().take(80).collect(),
    };
    format!("[{}] {} {element}", f.step, f.status)
}

/// A short account of an error response: its issues, or the start of its body.
fn describe(r: &Resp) -> String {
    let issues = serde_json::from_str::<Value>(&r.text)
        .ok()
        .and_then(|oo| oo["issue"].as_array().cloned())
        .map(|issues| {
            let mut parts: Vec<String> = issues
                .iter()
                .take(3)
                .map(|i| {
                    let at = i["expression"][0].as_str().unwrap_or("-");
                    format!("{at}: {}", i["diagnostics"].as_str().unwrap_or(""))
                })
                .collect();
            if issues.len() > 3 {
                parts.push(format!("… {} issues in all", issues.len()));
            }
            parts.join("; ")
        });
    issues.unwrap_or_else(|| r.text.chars().take(300).collect())
}

fn expressions(r: &Resp) -> Vec<String> {
    serde_json::from_str::<Value>(&r.text)
        .ok()
        .and_then(|oo| oo["issue"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

/// Runs the round trip of one example.
async fn one(s: &TestServer, ex: &Example, limit: usize) -> Outcome {
    let fail = |step: &'static str, status: u16, detail: String| {
        Outcome::Failed(Failure {
            file: ex.file.clone(),
            step,
            status,
            detail,
        })
    };
    let bytes = tokio::fs::read(&ex.path).await.unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    drop(bytes);
    // Compact JSON (numbers and member order kept exactly).
    let body = serde_json::to_vec(&original).unwrap();
    let known_invalid = KNOWN_INVALID.iter().find(|(f, _, _)| *f == ex.file);

    // 1. The JSON in: PUT to its id, or POST without one.
    let (step, method, path) = match &ex.id {
        Some(id) => ("PUT json", Method::PUT, format!("{}/{id}", ex.rtype)),
        None => ("POST json", Method::POST, ex.rtype.clone()),
    };
    let too_large = body.len() > limit;
    // 503 (a transient "busy") is retried, as FHIR clients do: under the
    // full suite on 2 cores a large resource can wait out the SQLite
    // writer's acquire timeout.
    let mut attempts = 0;
    let r = loop {
        attempts += 1;
        let sent = s
            .try_send(
                method.clone(),
                &path,
                Some(body.clone()),
                &[("content-type", "application/fhir+json")],
            )
            .await;
        let r = match sent {
            Ok(r) => r,
            // The server answers 413 as soon as the body passes the limit
            // and closes the connection; the client may then fail writing
            // the rest before it reads the answer.
            Err(e) if too_large && e.is_request() => return Outcome::TooLarge(step),
            Err(e) => return fail(step, 0, format!("the request failed: {e}")),
        };
        if r.status != 503 || attempts == 3 {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    if ex.rtype == "AuditEvent" {
        return match r.status {
            405 => Outcome::ServerWritten,
            _ => fail(
                step,
                r.status,
                "an AuditEvent written through the API, not refused with 405".into(),
            ),
        };
    }
    if too_large {
        return match r.status {
            413 => Outcome::TooLarge(step),
            _ => fail(
                step,
                r.status,
                format!("a body over the limit of {limit} bytes was not refused with 413"),
            ),
        };
    }
    if let Some((_, reason, at)) = known_invalid {
        if r.status != 400 {
            return fail(
                step,
                r.status,
                format!("known invalid ({reason}) but not rejected with 400"),
            );
        }
        let found = expressions(&r);
        let said = |d: &Value| d["diagnostics"].as_str().is_some_and(|d| d.contains(at));
        let diagnosed = serde_json::from_str::<Value>(&r.text)
            .ok()
            .and_then(|oo| oo["issue"].as_array().map(|issues| issues.iter().any(said)))
            .unwrap_or(false);
        if !found.iter().any(|e| e.starts_with(at)) && !diagnosed {
            return fail(
                step,
                r.status,
                format!("rejected, but not at `{at}` ({reason}): {}", describe(&r)),
            );
        }
        return Outcome::Rejected;
    }
    if r.status != 200 && r.status != 201 {
        return fail(step, r.status, describe(&r));
    }
    let path = match &ex.id {
        Some(_) => path,
        None => match serde_json::from_str::<Value>(&r.text)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from))
        {
            Some(id) => format!("{}/{id}", ex.rtype),
            None => return fail(step, r.status, "the answer to the POST has no id".into()),
        },
    };
    let mut expected = without_server_meta(&original);
    if ex.id.is_none() {
        // The server assigned the id.
        expected["id"] = Value::String(path.rsplit('/').next().unwrap_or_default().to_string());
    }
    let compare = |got: &Value| -> Option<String> {
        let got = without_server_meta(got);
        (got != expected).then(|| {
            first_difference(&expected, &got, &ex.rtype).unwrap_or_else(|| "values differ".into())
        })
    };

    // 2. The JSON back.
    let r = s.get(&path).await;
    if r.status != 200 {
        return fail("GET json", r.status, describe(&r));
    }
    let got: Value = match serde_json::from_str(&r.text) {
        Ok(v) => v,
        Err(e) => return fail("GET json", r.status, format!("not JSON: {e}")),
    };
    if let Some(diff) = compare(&got) {
        return fail("compare after JSON", r.status, diff);
    }
    drop(got);

    // 3. As XML.
    let r = s.get(&format!("{path}?_format=xml")).await;
    if r.status != 200 {
        return fail("GET xml", r.status, describe(&r));
    }
    if !r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/fhir+xml")
    {
        return fail(
            "GET xml",
            r.status,
            format!("content type {:?}", r.header("content-type")),
        );
    }
    let xml = r.text.into_bytes();

    // 4. The XML back in.
    let too_large = xml.len() > limit;
    let r = s
        .send(
            Method::PUT,
            &path,
            Some(xml),
            &[("content-type", "application/fhir+xml")],
        )
        .await;
    if too_large {
        return match r.status {
            413 => Outcome::TooLarge("PUT xml"),
            _ => fail(
                "PUT xml",
                r.status,
                format!("a body over the limit of {limit} bytes was not refused with 413"),
            ),
        };
    }
    if r.status != 200 {
        return fail("PUT xml", r.status, describe(&r));
    }

    // 5. The JSON again: still the original.
    let r = s.get(&path).await;
    if r.status != 200 {
        return fail("GET json after xml", r.status, describe(&r));
    }
    let got: Value = match serde_json::from_str(&r.text) {
        Ok(v) => v,
        Err(e) => return fail("GET json after xml", r.status, format!("not JSON: {e}")),
    };
    if let Some(diff) = compare(&got) {
        return fail("compare after XML", r.status, diff);
    }
    Outcome::RoundTripped
}

async fn round_trip(s: &TestServer, db: &str, dir: &Path, limit: usize) {
    let started = Instant::now();
    let (examples, not_resources) = scan(dir);
    assert!(
        examples.len() > 1000,
        "{ENV_VAR}={} holds only {} examples: is it the package/ directory of hl7.fhir.r4.examples@4.0.1?",
        dir.display(),
        examples.len()
    );
    for (file, _, _) in KNOWN_INVALID {
        assert!(
            examples.iter().any(|e| e.file == *file),
            "{file} is not among the examples"
        );
    }
    let files = examples.len();

    // Files of the same type and id go one after another, in file order (each
    // compared with itself); groups run concurrently, largest first so the
    // big bundles do not finish last.
    let mut groups: BTreeMap<(String, String), Vec<Example>> = BTreeMap::new();
    let mut without_id = Vec::new();
    for ex in examples {
        match &ex.id {
            Some(id) => groups
                .entry((ex.rtype.clone(), id.clone()))
                .or_default()
                .push(ex),
            None => without_id.push(vec![ex]),
        }
    }
    let duplicates: Vec<String> = groups
        .values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            g.iter()
                .map(|e| e.file.as_str())
                .collect::<Vec<_>>()
                .join(" = ")
        })
        .collect();
    let mut groups: Vec<Vec<Example>> = groups.into_values().chain(without_id).collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.iter().map(|e| e.size).max().unwrap_or(0)));

    let outcomes: Vec<Vec<Outcome>> = stream::iter(groups.iter())
        .map(|group| async move {
            let mut outcomes = Vec::with_capacity(group.len());
            for ex in group {
                outcomes.push(one(s, ex, limit).await);
            }
            outcomes
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let (mut accepted, mut rejected, mut server_written) = (0, 0, 0);
    let mut too_large = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Outcome::RoundTripped => accepted += 1,
            Outcome::Rejected => rejected += 1,
            Outcome::ServerWritten => server_written += 1,
            Outcome::TooLarge(step) => too_large.push(step),
            Outcome::Failed(f) => failures.push(f),
        }
    }
    failures.sort_by(|a, b| a.file.cmp(&b.file));
    let elapsed = started.elapsed();
    let mut summary = format!(
        "R4 examples ({db}): {files} files, {accepted} accepted and round-tripped through JSON and XML, \
         {rejected} rejected as known-invalid, {server_written} AuditEvent(s) refused with 405 \
         (recorded by the server only)"
    );
    if !too_large.is_empty() {
        summary += &format!(
            ", {} refused with 413 as larger than the body limit of {limit} bytes (at {})",
            too_large.len(),
            too_large.join(", ")
        );
    }
    if !failures.is_empty() {
        summary += &format!(", {} FAILED", failures.len());
    }
    summary += &format!(
        "; {} file(s) with the same type and id as another ({}); {not_resources} non-resource file(s) skipped; {:.1} s",
        duplicates.len(),
        duplicates.join("; "),
        elapsed.as_secs_f64()
    );
    eprintln!("{summary}");
    if !failures.is_empty() {
        let line = |f: &Failure| {
            format!(
                "  {} [{}] status {}: {}\n",
                f.file, f.step, f.status, f.detail
            )
        };
        if let Some(out) = std::env::var_os(REPORT_VAR) {
            let all: String = failures.iter().map(line).collect();
            std::fs::write(&out, all).unwrap_or_else(|e| panic!("{REPORT_VAR}: {e}"));
        }
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for f in &failures {
            *kinds.entry(kind(f)).or_default() += 1;
        }
        let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut report = String::new();
        for f in failures.iter().take(SHOWN_FAILURES) {
            report += &line(f);
        }
        if failures.len() > SHOWN_FAILURES {
            report += &format!(
                "  … and {} more (set {REPORT_VAR} to a file name to get them all)\n",
                failures.len() - SHOWN_FAILURES
            );
        }
        report += "failures by step and element:\n";
        for (k, n) in kinds.iter().take(SHOWN_FAILURES) {
            report += &format!("  {n:5}  {k}\n");
        }
        panic!(
            "{} of {files} R4 examples failed the round trip:\n{report}{summary}",
            failures.len()
        );
    }
    assert_eq!(
        accepted + rejected + server_written + too_large.len(),
        files
    );
}
