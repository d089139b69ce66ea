//! The command line: `charaka [serve]`, `charaka migrate`, `charaka capabilities`.
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
        Command::Capabilities => {
            let statement = crate::service::capabilities::capability_statement(&config.base_url());
            println!("{}", serde_json::to_string_pretty(&statement)?);
            Ok(())
        }
    }
}
