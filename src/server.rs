//! Starting and stopping the server: logging, the store, the router, the
//! listener, and graceful shutdown (in-flight requests finish).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;

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
    let auth = crate::auth::Auth::start(&fhir.store, config).await?;
    if let Some(password) = crate::auth::accounts::bootstrap_admin(&fhir.store).await? {
        // Printed once to the console, never to the log.
        eprintln!(
            "\nCharaka created the administrator account `admin` with the one-time password\n\n    {password}\n\nIt is shown only now. Change it with `charaka user password admin`.\n"
        );
    }
    let mut capabilities = crate::service::capabilities::capability_statement(&fhir.base_url);
    if !auth.enabled {
        capabilities["rest"][0]["security"] =
            crate::auth::discovery::capability_security(&auth.auth_base, false);
    }
    fhir.load_search_parameters().await?;
    let stale = fhir.index_is_stale().await?;
    let fhir = fhir.attach();
    let reencrypt = config.reencrypt_on_start && fhir.store.reencrypt_due().await?;
    let app = Arc::new(App {
        audit: crate::audit::writer::AuditWriter::start(fhir.clone()),
        fhir,
        capabilities,
        auth,
        guard: Arc::new(crate::http::guard::Guard::new(config)),
    });
    if app.fhir.audit {
        crate::audit::checkpoint::spawn_periodic(
            Arc::downgrade(&app),
            Duration::from_secs(config.audit_checkpoint_seconds),
        );
    }
    crate::http::guard::Guard::start(&app).await;
    if stale {
        // Searches see a partial index until this finishes (`/health/ready`
        // and `GET [base]/$reindex` show the progress).
        let app = app.clone();
        tokio::spawn(async move {
            let _ = app.fhir.reindex().await;
        });
    }
    if reencrypt {
        // Values under older data keys (or plain) are sealed again in small
        // batches while the server serves; they stay readable meanwhile.
        let app = app.clone();
        tokio::spawn(async move {
            match app.fhir.store.reencrypt(200, None, |_| {}).await {
                Ok(outcome) => tracing::info!(
                    rewritten = outcome.rewritten,
                    finished = outcome.finished,
                    "re-encryption under the active data key"
                ),
                Err(err) => tracing::error!(error = %err, "re-encryption stopped"),
            }
        });
    }
    Ok(app)
}

/// A server running in the background (used by tests and benchmarks).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// The HL7 v2 MLLP listener, when configured.
    pub mllp: Option<crate::hl7v2::listener::Running>,
    /// The TLS configuration, when the server speaks HTTPS.
    pub tls: Option<crate::tls::Tls>,
    tls_watch: Option<JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish, and
    /// closes the database.
    pub async fn stop(mut self) {
        if let Some(watch) = self.tls_watch.take() {
            watch.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Both edges drain together: no new connections, in-flight requests
        // and messages finish; then the database closes.
        let mllp = async {
            if let Some(mllp) = self.mllp.take() {
                mllp.stop().await;
            }
        };
        let http = async {
            let _ = (&mut self.task).await;
        };
        tokio::join!(mllp, http);
        // The last records are signed before the database closes.
        if self.app.fhir.audit {
            if let Err(e) =
                crate::audit::checkpoint::checkpoint(&self.app.fhir, &self.app.auth).await
            {
                tracing::warn!(error = %e, "final audit checkpoint failed");
            }
        }
        self.app.fhir.store.close().await;
    }
}

/// Starts the server on an already bound listener.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let app = build_app(config).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let mllp = match config.mllp_listen {
        Some(mllp_addr) => {
            let listener = crate::hl7v2::listener::bind(mllp_addr)
                .await
                .with_context(|| format!("MLLP listening on {mllp_addr}"))?;
            let settings = crate::hl7v2::listener::Settings {
                max_message_bytes: config.mllp_max_message_bytes,
                idle_timeout: std::time::Duration::from_secs(config.mllp_idle_timeout_secs),
                max_connections: config.mllp_max_connections,
                bind_sender: config.mllp_tls_bind_sender,
            };
            let tls = match (&config.mllp_tls_cert, &config.mllp_tls_key) {
                (Some(cert), Some(key)) => Some(crate::hl7v2::tls::MllpTls::load(
                    crate::hl7v2::tls::Files {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: config.mllp_tls_client_ca.clone(),
                    },
                )?),
                _ => None,
            };
            Some(crate::hl7v2::listener::Running::start(
                listener,
                app.clone(),
                settings,
                tls,
            )?)
        }
        None => None,
    };
    let service = router(app.clone(), config.max_body_bytes)
        .into_make_service_with_connect_info::<SocketAddr>();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key).await?),
        _ => None,
    };
    let task = match &tls {
        None => tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        }),
        Some(tls) => {
            // axum-server over rustls: the same service (with ConnectInfo),
            // the same graceful shutdown.
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = rx.await;
                stopper.graceful_shutdown(None);
            });
            let server = axum_server::from_tcp_rustls(listener.into_std()?, tls.config.clone())?
                .handle(handle);
            tokio::spawn(async move { server.serve(service).await })
        }
    };
    let tls_watch = tls.as_ref().map(crate::tls::Tls::watch);
    Ok(RunningServer {
        addr,
        app,
        mllp,
        tls,
        tls_watch,
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
    if let Some(mllp) = &server.mllp {
        tracing::info!(
            address = %mllp.addr,
            tls = mllp.tls.is_some(),
            client_certificates = mllp.tls.as_ref().is_some_and(|t| t.mutual()),
            "HL7 v2 MLLP listener ready"
        );
    }
    let mllp_tls = server.mllp.as_ref().and_then(|m| m.tls.clone());
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = reload_on_sighup(server.tls.clone(), mllp_tls) => {}
    }
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

/// Reloads the HTTPS and MLLP TLS certificates (those configured) on every
/// SIGHUP (never returns).
async fn reload_on_sighup(
    https: Option<crate::tls::Tls>,
    mllp: Option<crate::hl7v2::tls::MllpTls>,
) {
    #[cfg(unix)]
    if https.is_some() || mllp.is_some() {
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            while hup.recv().await.is_some() {
                if let Some(tls) = &https {
                    match tls.reload().await {
                        Ok(()) => tracing::info!("TLS certificate reloaded (SIGHUP)"),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in use")
                        }
                    }
                }
                if let Some(tls) = &mllp {
                    match tls.reload().await {
                        Ok(()) => tracing::info!("MLLP TLS certificate reloaded (SIGHUP)"),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "MLLP TLS reload failed; the previous configuration stays in use")
                        }
                    }
                }
            }
        }
    }
    let _ = (https, mllp);
    std::future::pending::<()>().await
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
