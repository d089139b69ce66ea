//! Starting and stopping the server: logging, the store, the router, the
//! listener, and graceful shutdown (in-flight requests finish).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{router, App};
use crate::service::Fhir;
use crate::store::Store;

/// Sets up `tracing` output (text or JSON), filtered by `RUST_LOG`
/// (default `info`).
pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = if config.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Opens the store and builds the application.
pub async fn build_app(config: &Config) -> anyhow::Result<Arc<App>> {
    let store = Store::connect(config).await?;
    let fhir = Fhir::new(store, config);
    fhir.load_releases().await?;
    let capabilities = crate::service::capabilities::capability_statement(&fhir.base_url);
    let stale = fhir.index_is_stale().await?;
    let app = Arc::new(App { fhir, capabilities });
    if stale {
        // Searches see a partial index until this finishes (`/health/ready`
        // and `GET [base]/$reindex` show the progress).
        let app = app.clone();
        tokio::spawn(async move {
            let _ = app.fhir.reindex().await;
        });
    }
    Ok(app)
}

/// A server running in the background (used by tests and benchmarks).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish, and
    /// closes the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        self.app.fhir.store.close().await;
    }
}

/// Starts the server on an already bound listener.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let app = build_app(config).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let service = router(app.clone(), config.max_body_bytes);
    let task = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        app,
        shutdown: Some(tx),
        task,
    })
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let server = start(&config, listener).await?;
    tracing::info!(
        address = %server.addr,
        base_url = %server.app.fhir.base_url,
        database = %redact(&config.database_url),
        "Charaka is serving FHIR R4"
    );
    shutdown_signal().await;
    tracing::info!("shutting down; waiting for in-flight requests");
    server.stop().await;
    Ok(())
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}
