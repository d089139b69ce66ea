//! The command line: `charaka [serve]`, `charaka migrate`, `charaka capabilities`,
//! `charaka import`, `charaka generate`.
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
    /// Code system releases: `charaka terminology import icd10cm FILE.xml`
    /// loads an official ICD-10-CM tabular XML file as a new version.
    Terminology {
        #[command(subcommand)]
        action: crate::service::terminology_cli::TerminologyCommand,
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
        Command::Terminology { action } => {
            runtime.block_on(crate::service::terminology_cli::run(config, action))
        }
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
