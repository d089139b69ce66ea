//! Server configuration: defaults, an optional TOML file, then environment
//! variables and flags (see `cli`), in rising order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Everything the server needs to start. Every field has a default, so an
/// empty TOML file (or none at all) gives a working development server.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Public base URL of the FHIR endpoint, used in `Location` headers and
    /// Bundle links. Default: `http://{listen}/fhir`.
    pub base_url: Option<String>,
    /// `sqlite://PATH` (default `sqlite://./data/charaka.db`) or `postgres://...`.
    pub database_url: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Connections in the pool (PostgreSQL) or read connections (SQLite).
    pub db_max_connections: u32,
    /// SQLite `synchronous` pragma: `full` (durable on power loss) or `normal`
    /// (durable on process crash; the last commits may be lost on power loss).
    pub sqlite_synchronous: String,
    /// Page size of history bundles when the client gives no `_count`.
    pub default_page_size: u32,
    /// Upper bound for `_count`.
    pub max_page_size: u32,
    /// Upper bound on resources removed by one conditional delete.
    pub max_conditional_delete: u32,
    /// Largest number of entries in a transaction or batch Bundle.
    pub max_bundle_entries: usize,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Current versions kept in memory for reads. Default: 100,000 on SQLite;
    /// 0 (off) on PostgreSQL, where other nodes may write. Turn it on for
    /// PostgreSQL only when this is the one Charaka node.
    pub read_cache_entries: Option<usize>,
    /// SMART on FHIR authorization: `on` (default) or `off`. Off is for a
    /// development server and is refused unless `listen` is a loopback
    /// address.
    pub auth: String,
    /// Lifetime of access tokens in seconds.
    pub access_token_seconds: u64,
    /// Lifetime of refresh tokens in seconds.
    pub refresh_token_seconds: u64,
    /// How often (milliseconds) a node checks whether a client was revoked
    /// or an account disabled elsewhere (another node, the command line);
    /// its access tokens stop within this time. 0: on every request.
    pub auth_revocation_check_ms: u64,
    /// Address of the HL7 v2 MLLP listener; None: no listener.
    pub mllp_listen: Option<SocketAddr>,
    /// Largest accepted HL7 v2 message (MLLP frame or HTTP body), in bytes.
    pub mllp_max_message_bytes: usize,
    /// An MLLP connection with no complete message for this long is closed
    /// (and a TLS handshake not done within it).
    pub mllp_idle_timeout_secs: u64,
    /// PEM certificate chain of the MLLP listener; with `mllp_tls_key`, it
    /// speaks TLS only. May be the same file as `tls_cert`.
    pub mllp_tls_cert: Option<PathBuf>,
    /// PEM private key of `mllp_tls_cert`.
    pub mllp_tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs that MLLP clients' certificates must chain to:
    /// when given, a client certificate is required (mutual TLS).
    pub mllp_tls_client_ca: Option<PathBuf>,
    /// Mutual TLS only: a message is applied only when MSH-3 or MSH-4
    /// (first component) is the client certificate's Common Name or one of
    /// its DNS names (case-insensitive); otherwise `AR`, logged as rejected.
    pub mllp_tls_bind_sender: bool,
    /// Most MLLP connections open at once; one beyond is closed at once.
    pub mllp_max_connections: usize,
    /// The HL7 v2 processing ids (MSH-11.1, table 0103: `P` production,
    /// `T` training, `D` debugging) this server applies; a message with
    /// another gets `AR` (error 202). Default `["P"]`; a test system sets
    /// `["T"]`, a sandbox fed from several systems all three.
    pub hl7v2_processing_ids: Vec<String>,
    /// ICD-10-CM codings on write: `strict` (unknown codes and non-billable
    /// claim diagnoses are rejected), `warn` (accepted, logged) or `off`.
    pub icd10cm_validation: String,

    // --- Audit trail ---
    /// `on` (default): every interaction is recorded as an AuditEvent in the
    /// hash chain; `off` records nothing (tests of other concerns, benches).
    pub audit: String,
    /// How often the server signs a checkpoint of the audit chain's head.
    pub audit_checkpoint_seconds: u64,
    // ---- Abuse resistance: rate limits, request limits, TLS, CORS ----
    // (http/rate_limit.rs, http/guard.rs, tls.rs; README "Limits and TLS")
    /// Requests per second of one address (every route); 0: no limit.
    pub rate_limit_ip_per_second: u32,
    /// Burst of the per-address limit (requests allowed at once).
    pub rate_limit_ip_burst: u32,
    /// FHIR API requests per second of one OAuth client (the address when
    /// unauthenticated); 0: no limit.
    pub rate_limit_client_per_second: u32,
    /// Burst of the per-client limit.
    pub rate_limit_client_burst: u32,
    /// Failed `/auth/*` requests (400/401) allowed per address in
    /// `rate_limit_auth_window_secs`; 0: no limit.
    pub rate_limit_auth_failures: u32,
    /// The window of `rate_limit_auth_failures`, in seconds.
    pub rate_limit_auth_window_secs: u64,
    /// A read (GET/HEAD) still running after this many milliseconds is
    /// abandoned and answered 503 (OperationOutcome `timeout`); writes are
    /// never cut. 0: no limit.
    pub request_timeout_ms: u64,
    /// Most resources one search page adds through `_include` and
    /// `_revinclude`; beyond it the page is cut with a warning.
    pub max_included: u32,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Origins browser apps may call from (CORS), e.g.
    /// `["https://app.example.org"]`, or `["*"]` for any. Default: the
    /// origins of registered clients' redirect URIs and the server's own.
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` is
    /// believed: the client address for rate limits, sign-in limits and
    /// the audit trail is then the right-most untrusted hop. Default: none.
    pub trusted_proxies: Vec<String>,
    // --- Encryption at rest (store/codec.rs, store/keyring.rs) ---
    /// `on` (default): resource bodies, HL7 v2 messages and token signing
    /// keys are sealed with AES-256-GCM; `off`: new values are stored plain
    /// (values already sealed still need their key).
    pub encryption: String,
    /// The data key file (`charaka keys generate`). Default on SQLite:
    /// `<database file>.keys` beside the database, made on first start; on
    /// PostgreSQL a key file or `CHARAKA_DATA_KEYS` is required.
    pub data_keys_file: Option<PathBuf>,
    /// The key file's content, from `CHARAKA_DATA_KEYS` (never from the
    /// TOML file); wins over `data_keys_file`.
    #[serde(skip)]
    pub data_keys: Option<SecretText>,
    /// Identifier systems (e.g. `urn:oid:2.16.840.1.113883.4.1`) whose token
    /// index rows hold an HMAC of `system|value` instead of the value.
    pub blind_index_systems: Vec<String>,
    /// Seal values still under older keys (or plain) in the background when
    /// the server starts.
    pub reencrypt_on_start: bool,
}

/// Text that must not appear in logs or `Debug` output (key material).
#[derive(Clone)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(***)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            base_url: None,
            database_url: "sqlite://./data/charaka.db".to_string(),
            max_body_bytes: 16 * 1024 * 1024,
            db_max_connections: 16,
            sqlite_synchronous: "full".to_string(),
            default_page_size: 50,
            max_page_size: 1000,
            max_conditional_delete: 1000,
            max_bundle_entries: 10_000,
            log_format: "text".to_string(),
            read_cache_entries: None,
            auth: "on".to_string(),
            access_token_seconds: 3600,
            refresh_token_seconds: 90 * 24 * 3600,
            auth_revocation_check_ms: 1000,
            mllp_listen: None,
            mllp_max_message_bytes: 1024 * 1024,
            mllp_idle_timeout_secs: 300,
            mllp_tls_cert: None,
            mllp_tls_key: None,
            mllp_tls_client_ca: None,
            mllp_tls_bind_sender: false,
            mllp_max_connections: 256,
            hl7v2_processing_ids: vec!["P".to_string()],
            icd10cm_validation: "strict".to_string(),
            audit: "on".to_string(),
            audit_checkpoint_seconds: 60,

            // ---- Abuse resistance ----
            rate_limit_ip_per_second: 500,
            rate_limit_ip_burst: 1000,
            rate_limit_client_per_second: 100,
            rate_limit_client_burst: 200,
            rate_limit_auth_failures: 5,
            rate_limit_auth_window_secs: 60,
            request_timeout_ms: 30_000,
            max_included: 1000,
            tls_cert: None,
            tls_key: None,
            cors_allowed_origins: None,
            trusted_proxies: Vec::new(),
            encryption: "on".to_string(),
            data_keys_file: None,
            data_keys: None,
            blind_index_systems: Vec::new(),
            reencrypt_on_start: true,
        }
    }
}

impl Config {
    /// Reads a TOML configuration file; keys not given keep their defaults.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("parsing configuration file {}", path.display()))
    }

    /// The FHIR base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if self.tls_enabled() => format!("https://{}/fhir", self.listen),
            None => format!("http://{}/fhir", self.listen),
        }
    }

    /// Whether interactions are recorded in the audit trail.
    pub fn audit_enabled(&self) -> bool {
        self.audit != "off"
    }

    /// Whether the server speaks HTTPS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Turns every rate limit off (test servers, benchmarks).
    pub fn without_rate_limits(mut self) -> Self {
        self.rate_limit_ip_per_second = 0;
        self.rate_limit_client_per_second = 0;
        self.rate_limit_auth_failures = 0;
        self
    }

    /// Whether requests need a token.
    pub fn auth_enabled(&self) -> bool {
        self.auth != "off"
    }

    /// Whether new values are sealed.
    pub fn encryption_enabled(&self) -> bool {
        self.encryption != "off"
    }

    /// Checks values that the type system cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.sqlite_synchronous.as_str(), "full" | "normal"),
            "sqlite_synchronous must be `full` or `normal`, not `{}`",
            self.sqlite_synchronous
        );
        anyhow::ensure!(
            matches!(self.log_format.as_str(), "text" | "json"),
            "log_format must be `text` or `json`, not `{}`",
            self.log_format
        );
        anyhow::ensure!(
            matches!(self.auth.as_str(), "on" | "off"),
            "auth must be `on` or `off`, not `{}`",
            self.auth
        );
        anyhow::ensure!(
            self.auth_enabled() || self.listen.ip().is_loopback(),
            "auth off is for development only: listen on a loopback address (127.0.0.1 or ::1), not {}",
            self.listen
        );
        anyhow::ensure!(
            self.auth_revocation_check_ms <= 60_000,
            "auth_revocation_check_ms must be at most 60000"
        );
        anyhow::ensure!(
            (60..=86_400).contains(&self.access_token_seconds),
            "access_token_seconds must be between 60 and 86400"
        );
        anyhow::ensure!(
            matches!(self.icd10cm_validation.as_str(), "strict" | "warn" | "off"),
            "icd10cm_validation must be `strict`, `warn` or `off`, not `{}`",
            self.icd10cm_validation
        );
        anyhow::ensure!(
            matches!(self.audit.as_str(), "on" | "off"),
            "audit must be `on` or `off`, not `{}`",
            self.audit
        );
        anyhow::ensure!(
            self.audit_checkpoint_seconds >= 1,
            "audit_checkpoint_seconds must be at least 1"
        );
        anyhow::ensure!(
            matches!(self.encryption.as_str(), "on" | "off"),
            "encryption must be `on` or `off`, not `{}`",
            self.encryption
        );
        anyhow::ensure!(self.max_page_size >= 1, "max_page_size must be at least 1");
        anyhow::ensure!(
            self.default_page_size >= 1 && self.default_page_size <= self.max_page_size,
            "default_page_size must be between 1 and max_page_size"
        );
        anyhow::ensure!(
            self.mllp_max_message_bytes >= 64 && self.mllp_idle_timeout_secs >= 1,
            "mllp_max_message_bytes must be at least 64 and mllp_idle_timeout_secs at least 1"
        );
        anyhow::ensure!(
            self.mllp_max_connections >= 1,
            "mllp_max_connections must be at least 1"
        );
        anyhow::ensure!(
            !self.hl7v2_processing_ids.is_empty()
                && self
                    .hl7v2_processing_ids
                    .iter()
                    .all(|p| matches!(p.as_str(), "P" | "T" | "D")),
            "hl7v2_processing_ids must list one or more of `P`, `T` and `D`, not {:?}",
            self.hl7v2_processing_ids
        );
        anyhow::ensure!(
            self.db_max_connections >= 1,
            "db_max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together: give both or neither"
        );
        anyhow::ensure!(
            self.mllp_tls_cert.is_some() == self.mllp_tls_key.is_some(),
            "mllp_tls_cert and mllp_tls_key go together: give both or neither"
        );
        anyhow::ensure!(
            self.mllp_tls_client_ca.is_none() || self.mllp_tls_cert.is_some(),
            "mllp_tls_client_ca needs mllp_tls_cert and mllp_tls_key (client certificates are asked for in the TLS handshake)"
        );
        anyhow::ensure!(
            !self.mllp_tls_bind_sender || self.mllp_tls_client_ca.is_some(),
            "mllp_tls_bind_sender needs mllp_tls_client_ca (the sender is bound to the client certificate of mutual TLS)"
        );
        anyhow::ensure!(self.max_included >= 1, "max_included must be at least 1");
        anyhow::ensure!(
            self.rate_limit_auth_window_secs >= 1,
            "rate_limit_auth_window_secs must be at least 1"
        );
        crate::http::client_addr::parse_trusted(&self.trusted_proxies)?;
        if let Some(origins) = &self.cors_allowed_origins {
            for origin in origins {
                anyhow::ensure!(
                    origin == "*" || crate::http::guard::is_origin(origin),
                    "cors_allowed_origins: `{origin}` is not an origin such as https://app.example.org (scheme, host and port only) or `*`"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn mllp_tls_files_go_together() {
        let with = |cert: bool, key: bool, ca: bool| Config {
            mllp_tls_cert: cert.then(|| "cert.pem".into()),
            mllp_tls_key: key.then(|| "key.pem".into()),
            mllp_tls_client_ca: ca.then(|| "ca.pem".into()),
            ..Config::default()
        };
        assert!(with(false, false, false).validate().is_ok());
        assert!(with(true, true, false).validate().is_ok());
        assert!(with(true, true, true).validate().is_ok());
        let err = with(true, false, false).validate().unwrap_err().to_string();
        assert!(err.contains("mllp_tls_cert and mllp_tls_key"), "{err}");
        assert!(with(false, true, false).validate().is_err());
        let err = with(false, false, true).validate().unwrap_err().to_string();
        assert!(err.contains("mllp_tls_client_ca needs"), "{err}");
    }

    #[test]
    fn mllp_sender_binding_needs_mutual_tls_and_the_cap_one_connection() {
        let bind = |ca: bool| Config {
            mllp_tls_cert: Some("cert.pem".into()),
            mllp_tls_key: Some("key.pem".into()),
            mllp_tls_client_ca: ca.then(|| "ca.pem".into()),
            mllp_tls_bind_sender: true,
            ..Config::default()
        };
        assert!(bind(true).validate().is_ok());
        let err = bind(false).validate().unwrap_err().to_string();
        assert!(err.contains("mllp_tls_bind_sender needs"), "{err}");
        let cap = |n: usize| Config {
            mllp_max_connections: n,
            ..Config::default()
        };
        assert_eq!(Config::default().mllp_max_connections, 256);
        assert!(cap(1).validate().is_ok());
        let err = cap(0).validate().unwrap_err().to_string();
        assert!(err.contains("mllp_max_connections"), "{err}");
    }
}
