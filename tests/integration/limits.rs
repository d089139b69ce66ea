//! Abuse resistance: rate limits (headers, 429, recovery, per-client
//! isolation, the authorization failure limit), request limits (chain
//! depth, include fan-out, `_count`), trusted proxies, security headers,
//! CORS and TLS.
//! Rate limits live in the HTTP layer, so their tests run on SQLite; the
//! search limits run on both databases.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Resp, TestServer};

async fn resp(r: reqwest::Response) -> Resp {
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

fn number(r: &Resp, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers))
        .parse()
        .unwrap()
}

/// Sends `send` until it answers 429 (at most `max` times); returns the
/// allowed responses and the refusal.
async fn until_throttled<F, Fut>(max: usize, mut send: F) -> (Vec<Resp>, Resp)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let mut allowed = Vec::new();
    for _ in 0..max {
        let r = send().await;
        if r.status == 429 {
            return (allowed, r);
        }
        allowed.push(r);
    }
    panic!("no 429 after {max} requests");
}

fn assert_throttled(r: &Resp) -> u64 {
    let oo = r.outcome(429);
    assert_eq!(oo["issue"][0]["code"], "throttled", "{oo}");
    let retry_after = number(r, "retry-after");
    assert!(retry_after >= 1);
    assert_eq!(number(r, "x-ratelimit-remaining"), 0);
    retry_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_limit_headers_429_recovery_and_isolation() {
    let s = TestServer::sqlite_with(|c| {
        c.rate_limit_client_per_second = 1;
        c.rate_limit_client_burst = 3;
    })
    .await;
    let first = s.get("Patient?_count=1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(number(&first, "x-ratelimit-limit"), 3);
    assert!(number(&first, "x-ratelimit-remaining") <= 2);
    assert!(number(&first, "x-ratelimit-reset") >= 1);

    let (allowed, refused) = until_throttled(50, || s.get("Patient?_count=1")).await;
    let remaining: Vec<u64> = allowed
        .iter()
        .map(|r| number(r, "x-ratelimit-remaining"))
        .collect();
    assert!(
        remaining.windows(2).all(|w| w[1] <= w[0]),
        "remaining never grows during a quick burst: {remaining:?}"
    );
    assert_eq!(number(&refused, "x-ratelimit-limit"), 3);
    let retry_after = assert_throttled(&refused);

    // Another client has its own budget.
    let other = crate::auth::token_for(&s, "system/*.rs", None, "admin");
    let r = crate::auth::send_as(
        &s,
        Some(&other),
        reqwest::Method::GET,
        "Patient?_count=1",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // After the advertised wait, the first client is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = s.get("Patient?_count=1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_limit_applies_to_every_route() {
    let s = TestServer::sqlite_with(|c| {
        c.rate_limit_ip_per_second = 1;
        c.rate_limit_ip_burst = 2;
    })
    .await;
    let url = format!("{}/health/live", s.origin);
    let (_, refused) = until_throttled(50, || async {
        resp(s.anonymous.get(&url).send().await.unwrap()).await
    })
    .await;
    assert_throttled(&refused);
    s.stop().await;
}

/// Behind a trusted proxy each forwarded client has its own address limit
/// and is named in the audit trail; an untrusted peer's header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_forward_the_client_address() {
    let s = TestServer::sqlite_with(|c| {
        c.rate_limit_ip_per_second = 1;
        c.rate_limit_ip_burst = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let url = format!("{}/health/live", s.origin);
    let from = |client: &'static str| {
        let req = s
            .anonymous
            .get(&url)
            .header("x-forwarded-for", format!("6.6.6.6, {client}"));
        async move { resp(req.send().await.unwrap()).await }
    };
    let (_, refused) = until_throttled(50, || from("198.51.100.7")).await;
    assert_throttled(&refused);
    // Another client behind the same proxy is not throttled.
    assert_eq!(from("198.51.100.8").await.status, 200);

    // The audit trail names the forwarded client, not the proxy (nor the
    // forged left-most hop).
    let r = s
        .get_with(
            "Patient/nobody",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.5")],
        )
        .await;
    assert_eq!(r.status, 404);
    let found = s.get("AuditEvent?address=203.0.113.5").await.json();
    assert_eq!(found["entry"].as_array().map_or(0, Vec::len), 1, "{found}");
    assert_eq!(
        s.get("AuditEvent?address=6.6.6.6").await.json()["entry"]
            .as_array()
            .map_or(0, Vec::len),
        0
    );
    s.stop().await;

    // Without trusted proxies the header changes nothing.
    let s = TestServer::sqlite_with(|_| {}).await;
    let r = s
        .get_with("Patient/nobody", &[("x-forwarded-for", "203.0.113.5")])
        .await;
    assert_eq!(r.status, 404);
    let found = s.get("AuditEvent?address=203.0.113.5").await.json();
    assert_eq!(found["entry"].as_array().map_or(0, Vec::len), 0, "{found}");
    assert!(s.get("AuditEvent?address=127.0.0.1").await.json()["entry"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_token_requests_are_limited_per_address() {
    let s = TestServer::sqlite_with(|c| {
        c.rate_limit_auth_failures = 3;
        c.rate_limit_auth_window_secs = 3;
    })
    .await;
    let (id, secret) = crate::auth::register(&s, "symmetric", "system/*.rs", None).await;
    let token = |secret: &str| {
        let req = s
            .anonymous
            .post(format!("{}/auth/token", s.origin))
            .basic_auth(&id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "system/*.rs"),
            ]);
        async move { resp(req.send().await.unwrap()).await }
    };
    for _ in 0..3 {
        let r = token("wrong secret").await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // The window is spent: even the right secret waits.
    let refused = token(secret.as_deref().unwrap()).await;
    let retry_after = assert_throttled(&refused);
    // Successful requests are not counted, and the address recovers.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let r = token(secret.as_deref().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_response() {
    let s = TestServer::sqlite().await;
    for path in ["metadata", "Patient/nothing-here"] {
        let r = s.get(path).await;
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("strict-transport-security"), None, "plain HTTP");
        assert_eq!(r.header("x-ratelimit-limit"), None, "limits are off");
    }
    s.stop().await;
}

async fn preflight(s: &TestServer, origin: &str) -> Resp {
    let r = s
        .anonymous
        .request(reqwest::Method::OPTIONS, s.url("Patient"))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type,if-match",
        )
        .send()
        .await
        .unwrap();
    resp(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_configured_origins_only() {
    let s = TestServer::sqlite_with(|c| {
        c.cors_allowed_origins = Some(vec!["https://app.example.org".into()]);
        c.rate_limit_client_per_second = 1000;
    })
    .await;
    let ok = preflight(&s, "https://app.example.org").await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.org")
    );
    let headers = ok.header("access-control-allow-headers").unwrap();
    for h in ["authorization", "content-type", "if-match", "prefer"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert!(ok
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    assert_eq!(ok.header("access-control-max-age"), Some("3600"));
    assert_eq!(ok.header("x-content-type-options"), Some("nosniff"));

    let other = preflight(&s, "https://evil.example.com").await;
    assert_eq!(other.header("access-control-allow-origin"), None);

    // An actual request exposes what apps read.
    let r = s
        .get_with("metadata", &[("origin", "https://app.example.org")])
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.org")
    );
    let exposed = r.header("access-control-expose-headers").unwrap();
    for h in ["location", "etag", "x-ratelimit-remaining"] {
        assert!(exposed.contains(h), "{exposed}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_default_is_registered_redirect_origins() {
    let s = TestServer::sqlite().await;
    assert_eq!(
        preflight(&s, "https://smart.example.net")
            .await
            .header("access-control-allow-origin"),
        None
    );
    // Registration through the API makes the origin allowed at once.
    let r = s
        .client
        .post(format!("{}/auth/register", s.origin))
        .json(&json!({
            "client_name": "browser app",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://smart.example.net/app/callback"],
            "scope": "launch/patient patient/*.rs openid fhirUser",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let ok = preflight(&s, "https://smart.example.net").await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://smart.example.net")
    );
    // The server's own origin is allowed; others are not.
    let own = preflight(&s, &s.origin).await;
    assert_eq!(
        own.header("access-control-allow-origin"),
        Some(s.origin.as_str())
    );
    assert_eq!(
        preflight(&s, "https://smart.example.net:8443")
            .await
            .header("access-control-allow-origin"),
        None
    );
    s.stop().await;
}

// ---- Search limits, on both databases ----

async fn chain_depth_is_limited(s: &TestServer) {
    // Four links deep is accepted ...
    let r = s
        .get("Observation?subject:Patient.organization.partof.partof.name=x")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ... five is refused, naming the parameter.
    let name = "subject:Patient.organization.partof.partof.partof.name";
    let r = s.get(&format!("Observation?{name}=x")).await;
    let oo = r.outcome(400);
    let text = oo.to_string();
    assert!(text.contains(name) && text.contains("at most 4"), "{text}");
}

async fn include_fan_out_is_cut_with_a_warning(s: &TestServer) {
    let patient = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Fan"}]}))
        .await;
    let pid = patient["id"].as_str().unwrap();
    for i in 0..4 {
        s.create(&json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": format!("o{i}")},
            "subject": {"reference": format!("Patient/{pid}")},
        }))
        .await;
    }
    let bundle = |r: Resp| -> Value {
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let mode = |b: &Value, m: &str| -> Vec<Value> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == m)
            .cloned()
            .collect()
    };
    // The servers of this test allow 3 included resources per page.
    let b = bundle(
        s.get(&format!(
            "Patient?_id={pid}&_revinclude=Observation:subject"
        ))
        .await,
    );
    assert_eq!(mode(&b, "match").len(), 1);
    assert_eq!(mode(&b, "include").len(), 3);
    let outcome = &mode(&b, "outcome")[0]["resource"];
    assert_eq!(outcome["issue"][0]["severity"], "warning", "{outcome}");
    assert_eq!(outcome["issue"][0]["code"], "too-costly", "{outcome}");

    // Under the limit: everything, no warning.
    let b = bundle(
        s.get(&format!(
            "Observation?subject=Patient/{pid}&_count=1&_include=Observation:subject"
        ))
        .await,
    );
    assert_eq!(mode(&b, "include").len(), 1);
    assert!(mode(&b, "outcome").is_empty(), "{b}");
}

async fn count_above_the_maximum_is_clamped(s: &TestServer) {
    for i in 0..3 {
        s.create(&json!({"resourceType": "Group", "type": "person", "actual": true, "name": format!("g{i}")}))
            .await;
    }
    let r = s.get("Group?_count=500").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["entry"].as_array().unwrap().len(), 2, "max_page_size");
    let next = b["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("next link");
    assert!(next["url"].as_str().unwrap().contains("_count=2"), "{next}");
}

async fn search_limits(s: &TestServer) {
    chain_depth_is_limited(s).await;
    include_fan_out_is_cut_with_a_warning(s).await;
    count_above_the_maximum_is_clamped(s).await;
}

fn limited(c: &mut charaka::config::Config) {
    c.max_included = 3;
    c.max_page_size = 2;
    c.default_page_size = 2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_limits_sqlite() {
    let s = TestServer::sqlite_with(limited).await;
    search_limits(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_limits_postgres() {
    let Some(s) = TestServer::postgres_with(limited).await else {
        return;
    };
    search_limits(&s).await;
    s.stop().await;
}

// ---- TLS ----

struct CertFiles {
    dir: tempfile::TempDir,
    pem: String,
}

impl CertFiles {
    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }
    /// A new self-signed certificate for 127.0.0.1, written over the files.
    fn issue(&mut self) {
        let made =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
        self.pem = made.cert.pem();
        std::fs::write(self.cert(), &self.pem).unwrap();
        std::fs::write(self.key(), made.signing_key.serialize_pem()).unwrap();
    }
}

/// A client that trusts only `pem`.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_hsts_and_certificate_reload() {
    let mut files = CertFiles {
        dir: tempfile::tempdir().unwrap(),
        pem: String::new(),
    };
    files.issue();
    let first_pem = files.pem.clone();
    let db = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = charaka::config::Config {
        listen: listener.local_addr().unwrap(),
        database_url: format!("sqlite://{}/charaka.db", db.path().display()),
        tls_cert: Some(files.cert()),
        tls_key: Some(files.key()),
        ..Default::default()
    };
    config.validate().unwrap();
    let server = charaka::server::start(&config, listener).await.unwrap();
    let url = format!("https://{}/fhir/metadata", server.addr);

    let r = resp(trusting(&first_pem).get(&url).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert!(
        r.json()["implementation"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "the default base URL is https"
    );
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/fhir/metadata", server.addr))
        .send()
        .await;
    assert!(plain.map_or(true, |r| r.status() != 200));

    // New files, then a reload: new connections get the new certificate.
    files.issue();
    server.tls.as_ref().unwrap().reload().await.unwrap();
    let r = resp(trusting(&files.pem).get(&url).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        trusting(&first_pem).get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken file: the reload fails and the current certificate stays.
    std::fs::write(files.key(), "not a key").unwrap();
    assert!(server.tls.as_ref().unwrap().reload().await.is_err());
    let r = resp(trusting(&files.pem).get(&url).send().await.unwrap()).await;
    assert_eq!(r.status, 200);

    server.stop().await;
}
