//! The command line: `charaka [serve]`, `charaka migrate`, `charaka capabilities`,
//! `charaka import`, `charaka generate`, `charaka keys` (`keys_cli`).
//! Every option can also come from an environment variable or the TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Charaka, a FHIR R4 server on SQLite or PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "charaka", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the FHIR server (the default when no subcommand is given).
    /// Pending database migrations run first.
    Serve,
    /// Run pending database migrations, then exit.
    Migrate,
    /// Print the server's CapabilityStatement (JSON) and exit.
    Capabilities,
    /// Load transaction/batch/collection Bundles, single resources (.json)
    /// and NDJSON files (.ndjson), or every such file of a directory, into
    /// the database, with progress and a summary. Exits non-zero when
    /// anything failed.
    Import {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The log of received HL7 v2 messages: list them, replay failed ones.
    Hl7 {
        #[command(subcommand)]
        command: Hl7Command,
    },
    /// Write synthetic patients as FHIR transaction Bundles (JSON) into a
    /// directory: a shared file of Organizations and Practitioners, then
    /// `--per-bundle` patients per file. The same seed gives the same bytes.
    Generate {
        /// Number of patients.
        #[arg(long)]
        patients: u64,
        /// Output directory (created; must not hold .json files yet).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Patients per Bundle file.
        #[arg(long, default_value_t = 1)]
        per_bundle: u64,
        /// Approximate mean number of resources per patient (a few have
        /// several times as many).
        #[arg(long, default_value_t = 180)]
        resources_per_patient: u32,
    },
    /// Manage user accounts (sign-in for SMART apps).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients (SMART apps and backend services).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Make a new token signing key; older keys keep verifying until their
    /// tokens expire.
    RotateSigningKey,
    /// Code system releases: `charaka terminology import icd10cm FILE.xml`
    /// loads an official ICD-10-CM tabular XML file as a new version.
    Terminology {
        #[command(subcommand)]
        action: crate::service::terminology_cli::TerminologyCommand,
    },
    /// The audit trail: `charaka audit verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        action: crate::audit::cli::AuditCommand,
    },
    /// Data keys of encryption at rest: generate, rotate, reencrypt,
    /// status, remove.
    Keys {
        #[command(subcommand)]
        command: crate::keys_cli::KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account. The password is read from CHARAKA_NEW_PASSWORD, or
    /// a one-time password is generated and printed.
    Add {
        username: String,
        /// admin, practitioner or patient.
        #[arg(long)]
        role: String,
        /// The account's FHIR resource, e.g. Practitioner/123 or Patient/9.
        #[arg(long)]
        fhir_user: Option<String>,
    },
    /// List accounts.
    List,
    /// Disable an account (its sign-ins and refresh tokens stop working).
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Set a new password (CHARAKA_NEW_PASSWORD, or a generated one).
    Password { username: String },
    /// Turn off an account's two-step sign-in (a lost phone and backup
    /// codes); the user can set it up again after signing in.
    MfaReset { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, for symmetric clients, the
    /// secret (shown once).
    Add {
        /// A name shown on consent pages.
        #[arg(long)]
        name: String,
        /// public (browser/mobile app, PKCE), symmetric (client secret) or
        /// asymmetric (private_key_jwt with --jwks-file or --jwks-uri).
        #[arg(long)]
        kind: String,
        /// Redirect URIs, matched exactly (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// The scopes the client may be granted, e.g. "launch/patient patient/*.rs openid fhirUser offline_access".
        #[arg(long)]
        scope: String,
        /// A JSON Web Key Set file with the client's public keys.
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// Or where the asymmetric client publishes its public keys (https;
        /// fetched when it authenticates, cached five minutes).
        #[arg(long, conflicts_with = "jwks_file")]
        jwks_uri: Option<String>,
        /// A chosen client id (default: random).
        #[arg(long)]
        client_id: Option<String>,
    },
    /// List clients.
    List,
    /// Revoke a client and every token it holds.
    Revoke { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum Hl7Command {
    /// List received messages, newest first (no message content is shown).
    List {
        /// Only messages that failed (AE) or were rejected (AR).
        #[arg(long)]
        failed: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Apply a failed message again; prints the new ACK code.
    Replay {
        /// The message id shown by `charaka hl7 list`.
        id: i64,
    },
}

/// Options shared by every subcommand. Flags beat environment variables,
/// which beat the configuration file, which beats the built-in defaults.
#[derive(Debug, Args)]
pub struct Options {
    /// TOML configuration file. Default: ./charaka.toml when it exists.
    #[arg(long, env = "CHARAKA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CHARAKA_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Public base URL of the FHIR API [default: http://{listen}/fhir].
    #[arg(long, env = "CHARAKA_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://./data/charaka.db].
    #[arg(long, env = "CHARAKA_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Largest accepted request body in bytes [default: 16777216].
    #[arg(long, env = "CHARAKA_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Database pool size [default: 16].
    #[arg(long, env = "CHARAKA_DB_MAX_CONNECTIONS", global = true)]
    pub db_max_connections: Option<u32>,
    /// SQLite synchronous mode: full or normal [default: full].
    #[arg(long, env = "CHARAKA_SQLITE_SYNCHRONOUS", global = true)]
    pub sqlite_synchronous: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "CHARAKA_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// SMART authorization: on, or off for a loopback-only development
    /// server [default: on].
    #[arg(long, env = "CHARAKA_AUTH", global = true)]
    pub auth: Option<String>,
    /// Start the HL7 v2 MLLP listener on this address (given alone:
    /// 127.0.0.1:2575) [default: no listener].
    #[arg(long, env = "CHARAKA_MLLP_LISTEN", global = true, num_args = 0..=1,
          default_missing_value = "127.0.0.1:2575")]
    pub mllp_listen: Option<SocketAddr>,
    /// Most MLLP connections open at once; one beyond is closed at once
    /// [default: 256].
    #[arg(long, env = "CHARAKA_MLLP_MAX_CONNECTIONS", global = true)]
    pub mllp_max_connections: Option<usize>,
    /// HL7 v2 processing ids (MSH-11) applied, comma-separated: P
    /// (production), T (training), D (debugging); others get AR
    /// [default: P].
    #[arg(
        long,
        env = "CHARAKA_HL7V2_PROCESSING_IDS",
        global = true,
        value_delimiter = ','
    )]
    pub hl7v2_processing_ids: Option<Vec<String>>,
    /// Audit trail: on, or off (nothing recorded) [default: on].
    #[arg(long, env = "CHARAKA_AUDIT", global = true)]
    pub audit: Option<String>,
    /// ICD-10-CM codings on write: strict (refused with 422), warn
    /// (accepted with warnings), or off [default: strict].
    #[arg(long, env = "CHARAKA_ICD10CM_VALIDATION", global = true)]
    pub icd10cm_validation: Option<String>,

    // ---- TLS ----
    /// PEM certificate chain: serve HTTPS (with --tls-key). Reloaded on
    /// SIGHUP and when the file changes.
    #[arg(long, env = "CHARAKA_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHARAKA_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain of the MLLP listener: MLLP over TLS only (with
    /// --mllp-tls-key; may be the --tls-cert file). Reloaded on SIGHUP and
    /// when the file changes.
    #[arg(long, env = "CHARAKA_MLLP_TLS_CERT", global = true)]
    pub mllp_tls_cert: Option<PathBuf>,
    /// PEM private key of --mllp-tls-cert.
    #[arg(long, env = "CHARAKA_MLLP_TLS_KEY", global = true)]
    pub mllp_tls_key: Option<PathBuf>,
    /// PEM bundle of CAs for MLLP client certificates: mutual TLS, a client
    /// certificate signed by one of them is required.
    #[arg(long, env = "CHARAKA_MLLP_TLS_CLIENT_CA", global = true)]
    pub mllp_tls_client_ca: Option<PathBuf>,
    /// With --mllp-tls-client-ca: apply a message only when MSH-3 or MSH-4
    /// names the client certificate (its Common Name or a DNS name);
    /// others get AR.
    #[arg(long, env = "CHARAKA_MLLP_TLS_BIND_SENDER", global = true)]
    pub mllp_tls_bind_sender: bool,

    // --- Encryption at rest ---
    /// Encryption at rest of stored bodies: on or off [default: on].
    #[arg(long, env = "CHARAKA_ENCRYPTION", global = true)]
    pub encryption: Option<String>,
    /// The data key file [default on SQLite: beside the database; the
    /// content may instead come from CHARAKA_DATA_KEYS].
    #[arg(long, env = "CHARAKA_DATA_KEYS_FILE", global = true)]
    pub data_keys_file: Option<PathBuf>,
}

impl Options {
    /// Builds the effective configuration: file, then environment and flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let file = self.config.clone().or_else(|| {
            let default = PathBuf::from("charaka.toml");
            default.exists().then_some(default)
        });
        let mut config = match file {
            Some(path) => Config::from_toml_file(&path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.base_url {
            config.base_url = Some(v);
        }
        if let Some(v) = self.database_url {
            config.database_url = v;
        }
        if let Some(v) = self.max_body_bytes {
            config.max_body_bytes = v;
        }
        if let Some(v) = self.db_max_connections {
            config.db_max_connections = v;
        }
        if let Some(v) = self.sqlite_synchronous {
            config.sqlite_synchronous = v;
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(v) = self.auth {
            config.auth = v;
        }
        if let Some(v) = self.mllp_listen {
            config.mllp_listen = Some(v);
        }
        if let Some(v) = self.hl7v2_processing_ids {
            config.hl7v2_processing_ids = v;
        }
        if let Some(v) = self.audit {
            config.audit = v;
        }
        if let Some(v) = self.icd10cm_validation {
            config.icd10cm_validation = v;
        }
        if let Some(v) = self.tls_cert {
            config.tls_cert = Some(v);
        }
        if let Some(v) = self.tls_key {
            config.tls_key = Some(v);
        }
        if let Some(v) = self.mllp_tls_cert {
            config.mllp_tls_cert = Some(v);
        }
        if let Some(v) = self.mllp_tls_key {
            config.mllp_tls_key = Some(v);
        }
        if let Some(v) = self.mllp_tls_client_ca {
            config.mllp_tls_client_ca = Some(v);
        }
        if self.mllp_tls_bind_sender {
            config.mllp_tls_bind_sender = true;
        }
        if let Some(v) = self.mllp_max_connections {
            config.mllp_max_connections = v;
        }
        // Encryption at rest.
        if let Some(v) = self.encryption {
            config.encryption = v;
        }
        if let Some(v) = self.data_keys_file {
            config.data_keys_file = Some(v);
        }
        if let Ok(v) = std::env::var("CHARAKA_DATA_KEYS") {
            config.data_keys = Some(crate::config::SecretText(v));
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs the chosen subcommand to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.options.into_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            crate::server::init_tracing(&config);
            runtime.block_on(crate::server::serve(config))
        }
        Command::Migrate => runtime.block_on(async {
            let store = crate::store::Store::connect(&config).await?;
            store.close().await;
            println!("migrations are up to date");
            Ok(())
        }),
        Command::Hl7 { command } => runtime.block_on(crate::cli::hl7(config, command)),
        Command::Import { paths } => runtime.block_on(crate::cli::import(config, paths)),
        Command::Generate {
            patients,
            out,
            seed,
            per_bundle,
            resources_per_patient,
        } => {
            let options = crate::generate::Options {
                patients,
                out,
                seed,
                per_bundle,
                resources_per_patient,
            };
            crate::generate::run(&options)?.print();
            Ok(())
        }
        Command::User(cmd) => runtime.block_on(crate::cli::user(config, cmd)),
        Command::Client(cmd) => runtime.block_on(crate::cli::client(config, cmd)),
        Command::RotateSigningKey => runtime.block_on(async {
            let store = crate::store::Store::connect(&config).await?;
            let auth = crate::auth::Auth::start(&store, &config).await?;
            let kid = auth.rotate_keys(&store).await?;
            store.close().await;
            println!("new signing key {kid}; running servers pick it up when they meet it");
            Ok(())
        }),
        Command::Terminology { action } => {
            runtime.block_on(crate::service::terminology_cli::run(config, action))
        }
        Command::Audit { action } => runtime.block_on(crate::audit::cli::run(config, action)),
        Command::Keys { command } => runtime.block_on(crate::keys_cli::run(config, command)),
        Command::Capabilities => {
            let statement = crate::service::capabilities::capability_statement(&config.base_url());
            println!("{}", serde_json::to_string_pretty(&statement)?);
            Ok(())
        }
    }
}

/// `charaka import`: loads files through the service layer, printing
/// progress (resources/s, share of bytes, ETA) to stderr and a summary.
pub async fn import(config: Config, paths: Vec<PathBuf>) -> anyhow::Result<()> {
    use crate::service::import::{collect_files, ImportStats};
    use std::time::{Duration, Instant};

    let files = collect_files(&paths)?;
    anyhow::ensure!(!files.is_empty(), "no .json or .ndjson files found");
    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let store = crate::store::Store::connect(&config).await?;
    let fhir = crate::service::Fhir::new(store, &config);
    // Imported resources are indexed for the custom parameters too.
    fhir.load_search_parameters().await?;
    // An empty database is marked as indexed with this version's search
    // parameters (what the import writes), so the server's next start does
    // not rebuild the whole index it has just been given.
    if fhir.index_is_stale().await? {
        eprintln!(
            "note: the stored search index predates this version's parameters; \
             the server rebuilds it at its next start"
        );
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut stats = ImportStats::default();
    for file in &files {
        let before = stats.bytes;
        let mut report = |s: &ImportStats, file_bytes: u64| {
            if last.elapsed() < Duration::from_secs(1) {
                return;
            }
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let done = (before + file_bytes).min(total_bytes) as f64;
            let share = done / total_bytes.max(1) as f64;
            let eta = if share > 0.0 {
                secs / share - secs
            } else {
                0.0
            };
            eprintln!(
                "{:>9} resources  {:>7.0}/s  {:>5.1}%  ETA {:>4.0} s",
                s.total(),
                s.total() as f64 / secs,
                share * 100.0,
                eta
            );
        };
        fhir.import_file(file, &mut stats, &mut report).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} resources from {} file(s) in {:.1} s ({:.0} resources/s)",
        stats.total(),
        files.len(),
        secs,
        stats.total() as f64 / secs.max(0.001)
    );
    for (rtype, n) in &stats.written {
        println!("  {rtype:<28} {n:>9}");
    }
    if let Some(peak) = peak_memory_kib() {
        println!("peak memory: {} MiB", peak / 1024);
    }
    fhir.store.analyze().await?;
    fhir.store.close().await;
    if !stats.failures.is_empty() {
        for (place, why) in stats.failures.iter().take(20) {
            eprintln!("failed: {place}: {why}");
        }
        anyhow::bail!("{} item(s) failed to import", stats.failures.len());
    }
    Ok(())
}

/// The process's peak resident memory (Linux), in KiB.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A password for `user add|password`: CHARAKA_NEW_PASSWORD, or generated
/// (and then printed once).
fn new_password() -> (String, bool) {
    match std::env::var("CHARAKA_NEW_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (crate::auth::secrets::one_time_password(), true),
    }
}

/// `charaka user ...`
pub async fn user(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let store = crate::store::Store::connect(&config).await?;
    let result = async {
        match cmd {
            UserCommand::Add {
                username,
                role,
                fhir_user,
            } => {
                let (password, generated) = new_password();
                crate::auth::accounts::add_user(
                    &store,
                    &username,
                    &password,
                    &role,
                    fhir_user.as_deref(),
                )
                .await?;
                println!("added {role} `{username}`");
                if generated {
                    println!("one-time password: {password}");
                }
            }
            UserCommand::List => {
                for u in store.users().await? {
                    println!(
                        "{:<24} {:<13} {:<28} {}",
                        u.username,
                        u.role,
                        u.fhir_user.as_deref().unwrap_or("-"),
                        if u.disabled { "disabled" } else { "active" }
                    );
                }
            }
            UserCommand::Disable { username } => {
                anyhow::ensure!(
                    store.set_user_disabled(&username, true).await?,
                    "no user `{username}`"
                );
                println!("disabled `{username}`");
            }
            UserCommand::Enable { username } => {
                anyhow::ensure!(
                    store.set_user_disabled(&username, false).await?,
                    "no user `{username}`"
                );
                println!("enabled `{username}`");
            }
            UserCommand::MfaReset { username } => {
                anyhow::ensure!(
                    store.user(&username).await?.is_some(),
                    "no user `{username}`"
                );
                if store.delete_mfa(&username).await? {
                    println!("two-step sign-in of `{username}` turned off");
                } else {
                    println!("`{username}` had no two-step sign-in");
                }
            }
            UserCommand::Password { username } => {
                let (password, generated) = new_password();
                anyhow::ensure!(
                    password.len() >= 10,
                    "a password has at least 10 characters"
                );
                let hash = crate::auth::secrets::hash_password(&password);
                anyhow::ensure!(
                    store.set_user_password(&username, &hash).await?,
                    "no user `{username}`"
                );
                println!("password of `{username}` changed");
                if generated {
                    println!("one-time password: {password}");
                }
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `charaka client ...`
pub async fn client(config: Config, cmd: ClientCommand) -> anyhow::Result<()> {
    let store = crate::store::Store::connect(&config).await?;
    let result = async {
        match cmd {
            ClientCommand::Add {
                name,
                kind,
                redirect_uris,
                scope,
                jwks_file,
                jwks_uri,
                client_id,
            } => {
                let jwks = match jwks_file {
                    Some(path) => Some(serde_json::from_str(&std::fs::read_to_string(&path)?)?),
                    None => None,
                };
                let spec = crate::auth::accounts::ClientSpec {
                    name,
                    kind,
                    redirect_uris,
                    scope,
                    jwks,
                    jwks_uri,
                    client_id,
                };
                let new = crate::auth::accounts::add_client(&store, &spec).await?;
                println!("client_id: {}", new.client_id);
                if let Some(secret) = new.secret {
                    println!("client_secret: {secret}  (shown once; keep it safe)");
                }
            }
            ClientCommand::List => {
                for c in store.clients().await? {
                    println!(
                        "{:<24} {:<11} {:<8} {:<30} {}",
                        c.client_id,
                        c.kind,
                        if c.revoked { "revoked" } else { "active" },
                        c.name,
                        c.scope
                    );
                }
            }
            ClientCommand::Revoke { client_id } => {
                anyhow::ensure!(
                    store.revoke_client(&client_id).await?,
                    "no client `{client_id}`"
                );
                println!("revoked `{client_id}` and its tokens");
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `charaka hl7 list` / `charaka hl7 replay`.
pub async fn hl7(config: Config, command: Hl7Command) -> anyhow::Result<()> {
    let store = crate::store::Store::connect(&config).await?;
    let fhir = crate::service::Fhir::new(store, &config);
    fhir.load_search_parameters().await?;
    let result = async {
        match command {
            Hl7Command::List { failed, limit } => {
                let mut rows = Vec::new();
                if failed {
                    rows.extend(fhir.list_messages(Some("failed"), limit).await?);
                    rows.extend(fhir.list_messages(Some("rejected"), limit).await?);
                    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
                    rows.truncate(limit.max(0) as usize);
                } else {
                    rows = fhir.list_messages(None, limit).await?;
                }
                println!(
                    "{:>8}  {:<24}  {:<8}  {:<3}  {:<9}  {:>3}  sender / control id / error [client certificate]",
                    "id", "received", "type", "ack", "status", "try"
                );
                for r in rows {
                    // Over mutual TLS: the names of the client certificate.
                    let client = r
                        .peer_identity
                        .map(|p| format!(" [{p}]"))
                        .unwrap_or_default();
                    println!(
                        "{:>8}  {:<24}  {:<8}  {:<3}  {:<9}  {:>3}  {} / {} / {}{client}",
                        r.id,
                        crate::fhir::datetime::format_instant(r.received),
                        r.message_type,
                        r.ack_code,
                        r.status,
                        r.attempts,
                        r.sender,
                        r.control_id.unwrap_or_default(),
                        r.error.unwrap_or_default()
                    );
                }
                Ok(())
            }
            Hl7Command::Replay { id } => {
                let outcome = crate::hl7v2::ingest::replay(&fhir, id).await.map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        e.issues
                            .first()
                            .map(|i| i.diagnostics.clone())
                            .unwrap_or_default()
                    )
                })?;
                println!("message {id}: {}", outcome.code.as_str());
                anyhow::ensure!(
                    outcome.code == crate::hl7v2::ack::AckCode::Accept,
                    "message {id} was not applied"
                );
                Ok(())
            }
        }
    }
    .await;
    fhir.store.close().await;
    result
}
