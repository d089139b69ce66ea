//! Encryption at rest: stored bodies, HL7 v2 messages and signing keys are
//! sealed (read back raw through sqlx); a value moved to another row fails
//! cleanly; a missing or wrong key stops the start with a clear message;
//! key rotation interrupted and resumed; blind index search.

use charaka::config::{Config, SecretText};
use charaka::keys_cli::{KeysCommand, RunOptions};
use charaka::store::keyring::KeyFile;
use charaka::store::Store;
use serde_json::json;

use crate::harness::TestServer;
use crate::on_both_databases;

const FAMILY: &str = "Quetzalcoatlova";

/// Rows of the first column of `sql`, read straight from the database.
pub(crate) async fn raw(config: &Config, sql: &str) -> Vec<Vec<u8>> {
    let url = &config.database_url;
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|r| r.0).collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|r| r.0).collect()
    }
}

async fn raw_text(config: &Config, sql: &str) -> Vec<String> {
    let url = &config.database_url;
    let rows: Vec<(String,)> = if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    };
    rows.into_iter().map(|r| r.0).collect()
}

async fn execute(config: &Config, sql: &str) -> u64 {
    let url = &config.database_url;
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let n = sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let n = sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
        pool.close().await;
        n
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn patient(id: &str, family: &str) -> serde_json::Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "name": [{"family": family, "given": ["Anne"]}],
        "birthDate": "1980-02-02",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"}],
        "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{} {}</div>", family, "x".repeat(400))}
    })
}

async fn stored_values_are_sealed(s: &TestServer) {
    assert_eq!(
        s.put("Patient/enc1", &patient("enc1", FAMILY)).await.status,
        201
    );
    let mut p = patient("enc1", FAMILY);
    p["gender"] = json!("female");
    assert_eq!(s.put("Patient/enc1", &p).await.status, 200);

    let bodies = raw(
        s.config(),
        "SELECT body FROM resource_versions WHERE body IS NOT NULL",
    )
    .await;
    assert!(bodies.len() >= 2);
    for body in &bodies {
        assert_eq!(body[0], 0x01, "sealed envelope");
        assert!(!contains(body, FAMILY), "a name in clear in a body");
        assert!(!contains(body, "123-45-6789"));
    }

    // Read, vread, history and search see the plain resource.
    let r = s.get("Patient/enc1").await.json();
    assert_eq!(r["name"][0]["family"], FAMILY);
    let v1 = s.get("Patient/enc1/_history/1").await.json();
    assert!(v1.get("gender").is_none());
    let h = s.get("Patient/enc1/_history").await.json();
    assert_eq!(h["entry"].as_array().unwrap().len(), 2);
    assert_eq!(h["entry"][0]["resource"]["gender"], "female");
    let found = s.get(&format!("Patient?family={FAMILY}")).await.json();
    assert_eq!(found["entry"][0]["resource"]["id"], "enc1");
    let sys = s.get("_history").await.json();
    assert!(!sys["entry"].as_array().unwrap().is_empty());

    // HL7 v2 messages and their ACKs.
    let message = format!(
        "MSH|^~\\&|REG|NORTH|CHARAKA|MAIN|20240301101500||ADT^A28^ADT_A05|ENC-1|P|2.5.1\r\
         EVN|A28|20240301101500\rPID|1||E1^^^NORTH&1.2.840.99&ISO^MR||{FAMILY}^Bea||19800202|F"
    );
    let r = s
        .send(
            reqwest::Method::POST,
            "$hl7v2-ingest",
            Some(message.into_bytes()),
            &[("content-type", "x-application/hl7-v2+er7")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for column in ["raw", "ack"] {
        let values = raw(s.config(), &format!("SELECT {column} FROM hl7v2_messages")).await;
        assert_eq!(values.len(), 1);
        assert_eq!(values[0][0], 0x01, "{column} sealed");
        assert!(!contains(&values[0], "MSH|"), "{column} in clear");
    }
    // The message reads back (duplicate detection opens the stored ACK).
    let list = s.fhir().list_messages(None, 10).await.unwrap();
    let one = s.fhir().store.get_message(1, list[0].id).await.unwrap();
    assert!(contains(one.unwrap().raw.as_deref().unwrap(), FAMILY));

    // Token signing keys.
    let keys = raw(s.config(), "SELECT private_key FROM auth_signing_keys").await;
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k[0] == 0x01), "signing keys sealed");
}

async fn a_value_moved_to_another_row_fails_cleanly(s: &TestServer) {
    s.put("Patient/mover", &patient("mover", "Mover")).await;
    s.put("Patient/victim", &patient("victim", "Victim")).await;
    let changed = execute(
        s.config(),
        "UPDATE resource_versions SET body = \
         (SELECT v.body FROM resource_versions v JOIN resources r ON r.rid = v.rid WHERE r.id = 'mover') \
         WHERE rid = (SELECT rid FROM resources WHERE id = 'victim')",
    )
    .await;
    assert_eq!(changed, 1);
    // vread passes any cache of current versions.
    let r = s.get("Patient/victim/_history/1").await;
    let oo = r.outcome(500);
    assert!(!r.text.contains("Mover"), "no content of the moved body");
    assert_eq!(oo["issue"][0]["severity"], "error");
    // The row it came from still reads.
    assert_eq!(s.get("Patient/mover/_history/1").await.status, 200);
}

on_both_databases!(
    stored_values_are_sealed,
    a_value_moved_to_another_row_fails_cleanly
);

/// A server on a database of its own with its data keys in a key file.
async fn server_with_key_file(dir: &std::path::Path, pg: bool) -> Option<TestServer> {
    let keys = dir.join("test.keys");
    KeyFile::parse(crate::harness::TEST_DATA_KEYS)
        .unwrap()
        .save(&keys, false)
        .unwrap();
    let set = |c: &mut Config| {
        c.data_keys = None;
        c.data_keys_file = Some(keys.clone());
    };
    if pg {
        TestServer::postgres_with(set).await
    } else {
        let url = format!("sqlite://{}/charaka.db", dir.display());
        Some(
            TestServer::sqlite_with(|c| {
                c.database_url = url;
                set(c);
            })
            .await,
        )
    }
}

async fn start_error(config: &Config) -> String {
    match Store::connect(config).await {
        Ok(store) => {
            store.close().await;
            panic!("the store opened");
        }
        Err(err) => format!("{err:#}"),
    }
}

async fn missing_or_wrong_keys_stop_the_start(pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = server_with_key_file(dir.path(), pg).await else {
        return;
    };
    s.put("Patient/k1", &patient("k1", FAMILY)).await;
    let config = s.config().clone();
    s.stop().await;

    // A key file without key 1.
    let mut other = KeyFile::generate();
    other.add_active();
    other.remove(1).unwrap();
    let mut c = config.clone();
    c.data_keys = Some(SecretText(other.to_toml()));
    let err = start_error(&c).await;
    assert!(err.contains("data key 1 is missing"), "{err}");

    // Another key under the same id.
    let mut c = config.clone();
    c.data_keys = Some(SecretText(KeyFile::generate().to_toml()));
    let err = start_error(&c).await;
    assert!(
        err.contains("data key 1") && err.contains("not the key"),
        "{err}"
    );

    // No key at all, encryption off: still refused (the data needs key 1).
    let mut c = config.clone();
    c.data_keys_file = None;
    c.encryption = "off".into();
    let err = start_error(&c).await;
    assert!(
        err.contains("data key 1") && err.contains("no data key"),
        "{err}"
    );

    // A key file others may read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = config.data_keys_file.clone().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = start_error(&config).await;
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    // The right key: the data reads.
    let store = Store::connect(&config).await.unwrap();
    let v = store.read(1, "Patient", "k1").await.unwrap().unwrap();
    assert!(contains(v.body.as_deref().unwrap(), FAMILY));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_keys_stop_the_start_sqlite() {
    missing_or_wrong_keys_stop_the_start(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_keys_stop_the_start_postgres() {
    missing_or_wrong_keys_stop_the_start(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_needs_an_explicit_key() {
    let Some(url) = crate::pg::database().await else {
        return;
    };
    let config = Config {
        database_url: url,
        ..Config::default()
    };
    let err = start_error(&config).await;
    assert!(err.contains("charaka keys generate"), "{err}");
    // Explicitly off: starts, stores plain.
    let config = Config {
        encryption: "off".into(),
        ..config
    };
    Store::connect(&config).await.unwrap().close().await;
}

async fn keys_per_id(config: &Config) -> Vec<(Option<u32>, i64)> {
    let store = Store::connect(config).await.unwrap();
    let mut out: Vec<(Option<u32>, i64)> = Vec::new();
    for c in store.rows_per_key().await.unwrap() {
        match out.iter_mut().find(|(k, _)| *k == c.key) {
            Some((_, n)) => *n += c.rows,
            None => out.push((c.key, c.rows)),
        }
    }
    store.close().await;
    out.sort();
    out
}

async fn rotation_is_resumable(pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = server_with_key_file(dir.path(), pg).await else {
        return;
    };
    for i in 0..6 {
        s.put(&format!("Patient/r{i}"), &patient(&format!("r{i}"), FAMILY))
            .await;
    }
    let mut p = patient("r0", FAMILY);
    p["gender"] = json!("male");
    s.put("Patient/r0", &p).await;
    let config = s.config().clone();
    s.stop().await;

    // Rotate, interrupted after two batches of two.
    let run = |max_batches| RunOptions {
        batch: 2,
        max_batches,
    };
    charaka::keys_cli::run(config.clone(), KeysCommand::Rotate { run: run(Some(2)) })
        .await
        .unwrap();
    let counts = keys_per_id(&config).await;
    let under = |k: u32| {
        counts
            .iter()
            .find(|(key, _)| *key == Some(k))
            .map_or(0, |c| c.1)
    };
    assert_eq!(under(2), 4, "{counts:?}");
    assert!(under(1) > 0, "{counts:?}");
    // Key 1 cannot go yet.
    let err = charaka::keys_cli::run(config.clone(), KeysCommand::Remove { id: 1 })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("still sealed with data key 1"),
        "{err}"
    );

    // Meanwhile the data reads and new writes use key 2.
    let s = TestServer::restart_with(config.clone(), |c| c.reencrypt_on_start = false).await;
    assert_eq!(
        s.get("Patient/r5").await.json()["name"][0]["family"],
        FAMILY
    );
    s.put("Patient/r6", &patient("r6", FAMILY)).await;
    s.stop().await;

    // Resume to the end.
    charaka::keys_cli::run(config.clone(), KeysCommand::Reencrypt { run: run(None) })
        .await
        .unwrap();
    let counts = keys_per_id(&config).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[0].0, Some(2), "{counts:?}");

    // Key 1 leaves the key file; everything still reads.
    charaka::keys_cli::run(config.clone(), KeysCommand::Remove { id: 1 })
        .await
        .unwrap();
    let file = KeyFile::load(config.data_keys_file.as_ref().unwrap()).unwrap();
    assert_eq!(file.ids(), vec![2]);
    let s = TestServer::restart_with(config.clone(), |_| {}).await;
    for i in 0..7 {
        let r = s.get(&format!("Patient/r{i}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        s.get("Patient/r0/_history/1").await.json()["name"][0]["family"],
        FAMILY
    );
    let found = s
        .get(&format!("Patient?family={FAMILY}&_count=100"))
        .await
        .json();
    assert_eq!(found["entry"].as_array().unwrap().len(), 7);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_resumable_sqlite() {
    rotation_is_resumable(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_resumable_postgres() {
    rotation_is_resumable(true).await;
}

/// Data written with encryption off is sealed by `keys reencrypt` once it
/// is on; a fresh SQLite database gets its key file beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_data_is_sealed_later() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/charaka.db", dir.path().display());
    let s = TestServer::sqlite_with(|c| {
        c.database_url = url.clone();
        c.encryption = "off".into();
    })
    .await;
    s.put("Patient/p1", &patient("p1", FAMILY)).await;
    let mut config = s.config().clone();
    s.stop().await;
    let bodies = raw(
        &config,
        "SELECT body FROM resource_versions WHERE type <> 'AuditEvent'",
    )
    .await;
    assert!(bodies.iter().all(|b| b[0] == 0x00 && contains(b, FAMILY)));
    assert!(!dir.path().join("charaka.keys").exists());

    config.encryption = "on".into();
    charaka::keys_cli::run(
        config.clone(),
        KeysCommand::Reencrypt {
            run: RunOptions {
                batch: 10,
                max_batches: None,
            },
        },
    )
    .await
    .unwrap();
    let keys = dir.path().join("charaka.keys");
    assert!(keys.exists(), "a key file made beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let bodies = raw(
        &config,
        "SELECT body FROM resource_versions WHERE type <> 'AuditEvent'",
    )
    .await;
    assert!(bodies.iter().all(|b| b[0] == 0x01 && !contains(b, FAMILY)));
    let keys = raw(&config, "SELECT private_key FROM auth_signing_keys").await;
    assert!(keys.iter().all(|k| k[0] == 0x01));
    let s = TestServer::restart_with(config, |_| {}).await;
    assert_eq!(
        s.get("Patient/p1").await.json()["name"][0]["family"],
        FAMILY
    );
    s.stop().await;
}

const SSN: &str = "urn:oid:2.16.840.1.113883.4.1";

async fn blind_index_matches_exactly(pg: bool) {
    let blind = |c: &mut Config| c.blind_index_systems = vec![SSN.to_string()];
    let s = if pg {
        match TestServer::postgres_with(blind).await {
            Some(s) => s,
            None => return,
        }
    } else {
        TestServer::sqlite_with(blind).await
    };
    let mut p = patient("b1", FAMILY);
    p["identifier"] = json!([
        {"system": SSN, "value": "123-45-6789",
         "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]}},
        {"system": "urn:mrn", "value": "MRN-77"}
    ]);
    assert_eq!(s.put("Patient/b1", &p).await.status, 201);
    s.put("Patient/b2", &patient("b2", "Other")).await; // SSN 123-45-6789 too
    let mut p3 = patient("b3", "Third");
    p3["identifier"] = json!([{"system": SSN, "value": "987-65-4321"}]);
    s.put("Patient/b3", &p3).await;

    let ids = |r: serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = r["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let q = |v: &str| format!("Patient?identifier={}", v.replace('|', "%7C"));
    assert_eq!(
        ids(s.get(&q(&format!("{SSN}|987-65-4321"))).await.json()),
        ["b3"]
    );
    assert_eq!(
        ids(s.get(&q(&format!("{SSN}|123-45-6789"))).await.json()),
        ["b1", "b2"]
    );
    assert_eq!(ids(s.get(&q("987-65-4321")).await.json()), ["b3"]);
    assert!(ids(s.get(&q(&format!("{SSN}|987-65-432"))).await.json()).is_empty());
    assert_eq!(ids(s.get(&q("urn:mrn|MRN-77")).await.json()), ["b1"]);
    assert_eq!(
        ids(s
            .get(&format!("Patient?identifier:not={SSN}%7C123-45-6789"))
            .await
            .json()),
        ["b3"]
    );
    // A value set's codes of a blinded system are hashed the same way.
    let vs = json!({"resourceType": "ValueSet", "id": "ssn", "status": "active", "compose": {"include": [
        {"system": SSN, "concept": [{"code": "987-65-4321"}]}]}});
    assert_eq!(s.put("ValueSet/ssn", &vs).await.status, 201);
    assert_eq!(
        ids(s.get("Patient?identifier:in=ValueSet/ssn").await.json()),
        ["b3"]
    );
    // (The ValueSet's own index rows hold the code in clear; gone with it.)
    s.delete("ValueSet/ssn").await;
    // A conditional create finds the match through the hash.
    let r = s
        .json(
            reqwest::Method::POST,
            "Patient",
            &patient("ignored", "Dup"),
            &[("if-none-exist", &format!("identifier={SSN}|987-65-4321"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The value is not in the index tables; the other system's is.
    let codes = raw_text(s.config(), "SELECT code FROM sp_token").await;
    assert!(codes
        .iter()
        .all(|c| !c.contains("123-45-6789") && !c.contains("987-65-4321")));
    assert!(codes.iter().any(|c| c == "MRN-77"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_index_matches_exactly_sqlite() {
    blind_index_matches_exactly(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_index_matches_exactly_postgres() {
    blind_index_matches_exactly(true).await;
}
