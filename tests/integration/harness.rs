//! Starts a real Charaka server on a free loopback port, on SQLite or on
//! PostgreSQL, and gives tests a small HTTP client for it.

use charaka::config::Config;
use charaka::server::RunningServer;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    /// The server's origin (`http://127.0.0.1:PORT`): the authorization
    /// endpoints live under `{origin}/auth`.
    pub origin: String,
    /// A client carrying an administrator's token (`system/*.cruds`), so
    /// every test runs with authorization on.
    pub client: reqwest::Client,
    /// A client without any token.
    pub anonymous: reqwest::Client,
    server: Option<RunningServer>,
    _dir: Option<tempfile::TempDir>,
    config: Config,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OperationOutcome with the given status; returns it.
    pub fn outcome(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.header("content-type")
                .unwrap_or("")
                .starts_with("application/fhir+json"),
            "content type {:?}",
            self.header("content-type")
        );
        let oo = self.json();
        assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
        assert!(oo["issue"][0]["code"].is_string());
        oo
    }
}

async fn start(mut config: Config, dir: Option<tempfile::TempDir>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    config.listen = addr;
    config.db_max_connections = 8;
    // The HL7 v2 MLLP listener on a free port too.
    config.mllp_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = charaka::server::start(&config, listener)
        .await
        .expect("server starts");
    let origin = format!("http://{addr}");
    let anonymous = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    if config.auth_enabled() {
        let token = admin_token(&server, &origin, &anonymous).await;
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    TestServer {
        base: format!("{origin}/fhir"),
        origin,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .default_headers(headers)
            .build()
            .unwrap(),
        anonymous,
        server: Some(server),
        _dir: dir,
        config,
    }
}

/// Registers a backend client with every permission and gets its token
/// through the real token endpoint (client_credentials).
async fn admin_token(server: &RunningServer, origin: &str, http: &reqwest::Client) -> String {
    let spec = charaka::auth::accounts::ClientSpec {
        name: "test suite".into(),
        kind: "symmetric".into(),
        scope: "system/*.cruds".into(),
        ..Default::default()
    };
    let new = charaka::auth::accounts::add_client(&server.app.fhir.store, &spec)
        .await
        .expect("test client registers");
    let resp = http
        .post(format!("{origin}/auth/token"))
        .basic_auth(&new.client_id, new.secret.as_deref())
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.cruds"),
        ])
        .send()
        .await
        .expect("token request sent");
    assert_eq!(resp.status(), 200, "token endpoint refused the test client");
    let body: Value = resp.json().await.unwrap();
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

/// The data keys of the PostgreSQL tests (SQLite tests get a key file made
/// beside their database on first start, as a fresh installation does).
pub const TEST_DATA_KEYS: &str = "active = 1\n\
    index_key = \"FvfKZh-e7C3u5M6V0fCkmFitq4xhZrPPn1FIGT0GIo4\"\n\
    [keys]\n\
    1 = \"vz1RFXch44_91WKAlJwQlf6FLWCl7AuVuTAcYaxjQsU\"\n";

impl TestServer {
    /// A server on SQLite; `configure` adjusts the configuration. Rate
    /// limits are off unless `configure` turns them on (one test client
    /// makes thousands of requests; `limits.rs` tests the limits).
    pub async fn sqlite_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            database_url: format!("sqlite://{}/charaka.db", dir.path().display()),
            ..Config::default()
        }
        .without_rate_limits();
        configure(&mut config);
        start(config, Some(dir)).await
    }

    /// A server on the database of an earlier server's configuration
    /// (changed by `configure`); the caller keeps any directory alive.
    pub async fn restart_with(
        mut config: Config,
        configure: impl FnOnce(&mut Config),
    ) -> TestServer {
        configure(&mut config);
        start(config, None).await
    }

    pub async fn sqlite() -> TestServer {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn postgres() -> Option<TestServer> {
        Self::postgres_with(|_| {}).await
    }

    /// A server on a fresh PostgreSQL database; rate limits as in
    /// `sqlite_with`; data keys from `TEST_DATA_KEYS` (as `CHARAKA_DATA_KEYS`
    /// would give them).
    pub async fn postgres_with(configure: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let url = crate::pg::database().await?;
        let mut config = Config {
            database_url: url,
            data_keys: Some(charaka::config::SecretText(TEST_DATA_KEYS.into())),
            ..Config::default()
        }
        .without_rate_limits();
        configure(&mut config);
        Some(start(config, None).await)
    }

    /// The whole application (service layer and authorization server).
    pub fn app(&self) -> &charaka::http::App {
        &self.server.as_ref().expect("running").app
    }

    /// The server's service layer (for in-process entry points such as import).
    pub fn fhir(&self) -> &charaka::service::Fhir {
        &self.server.as_ref().expect("running").app.fhir
    }

    /// The address of the server's MLLP listener.
    pub fn mllp_addr(&self) -> std::net::SocketAddr {
        self.server
            .as_ref()
            .expect("running")
            .mllp
            .as_ref()
            .expect("MLLP listener")
            .addr
    }

    /// The TLS configuration of the server's MLLP listener, when it speaks
    /// TLS.
    pub fn mllp_tls(&self) -> Option<&charaka::hl7v2::tls::MllpTls> {
        self.server
            .as_ref()
            .expect("running")
            .mllp
            .as_ref()?
            .tls
            .as_ref()
    }

    /// Stops the server and starts it again on the same database.
    pub async fn restart(mut self) -> TestServer {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let dir = self._dir.take();
        start(self.config.clone(), dir).await
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Runs SQL directly on the server's database, behind its back (for
    /// tamper and fault tests).
    pub async fn sql(&self, statements: &str) {
        use sqlx::Connection;
        let url = &self.config.database_url;
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
        }
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Sends a request with optional body and headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.try_send(method, path, body, headers)
            .await
            .expect("request sent")
    }

    /// Sends a request; Err when the connection failed (e.g. the server
    /// answered 413 and closed it before the client finished sending a body
    /// over the limit).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await?;
        Ok(Resp {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await?,
        })
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, path, None, headers).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Sends a FHIR JSON body.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut all = vec![("content-type", "application/fhir+json")];
        all.extend_from_slice(headers);
        self.send(method, path, Some(serde_json::to_vec(body).unwrap()), &all)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::POST, path, body, &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.json(Method::PUT, path, body, &[]).await
    }

    /// Creates a resource and returns its JSON (asserting 201).
    pub async fn create(&self, body: &Value) -> Value {
        let rtype = body["resourceType"].as_str().unwrap();
        let r = self.post(rtype, body).await;
        assert_eq!(r.status, 201, "create failed: {}", r.text);
        r.json()
    }
}

/// Runs each named test function against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::harness::TestServer::sqlite().await;
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = $crate::harness::TestServer::postgres().await else { return };
                    super::$name(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

/// A folder of `../shared/data` (the external test data), found through
/// `CHARAKA_SHARED`. Unset: fails in CI, otherwise says the test did not run.
pub fn shared_data(name: &str) -> Option<std::path::PathBuf> {
    match std::env::var("CHARAKA_SHARED") {
        Ok(dir) => Some(std::path::Path::new(&dir).join("data").join(name)),
        Err(_) if std::env::var("CI").is_ok() => panic!("CHARAKA_SHARED must be set in CI"),
        Err(_) => {
            eprintln!("NOT RUN: set CHARAKA_SHARED to the shared/ folder beside the repository to use {name}");
            None
        }
    }
}
