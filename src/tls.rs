//! HTTPS: the certificate and key (PEM files) served through rustls (ring
//! provider), and their reload without a restart: on SIGHUP (`serve`), when
//! either file's modification time changes (checked every minute), or by
//! `Tls::reload`. A reload that fails keeps the certificate in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

/// How often the files' modification times are compared.
const WATCH_INTERVAL: Duration = Duration::from_secs(60);

/// The server's TLS configuration and where it came from.
#[derive(Clone)]
pub struct Tls {
    pub config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    /// Modification times of (cert, key) at the last load.
    loaded: Arc<Mutex<(Option<SystemTime>, Option<SystemTime>)>>,
}

/// Runs `check` once per `WATCH_INTERVAL` (the first time one interval
/// after the start) until the task is aborted: how certificate files are
/// watched, here and for MLLP (`hl7v2::tls`).
pub(crate) fn every_watch_interval<F, Fut>(check: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            check().await;
        }
    })
}

/// A file's modification time, None when it cannot be read.
pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Tls {
    /// Reads the certificate chain and key.
    pub async fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        // The process-wide provider; a second install (tests start several
        // servers) keeps the first, which is the same.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let stamps = (modified(cert), modified(key));
        let config = RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "reading TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Tls {
            config,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            loaded: Arc::new(Mutex::new(stamps)),
        })
    }

    /// Reads the files again; new connections get the new certificate.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let stamps = (modified(&self.cert), modified(&self.key));
        self.config
            .reload_from_pem_file(&self.cert, &self.key)
            .await
            .with_context(|| {
                format!(
                    "reloading TLS certificate {} and key {}",
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        *self.loaded.lock().expect("tls lock") = stamps;
        Ok(())
    }

    /// Reloads when either file changed since the last load.
    async fn reload_if_changed(&self) {
        let now = (modified(&self.cert), modified(&self.key));
        if *self.loaded.lock().expect("tls lock") == now {
            return;
        }
        match self.reload().await {
            Ok(()) => tracing::info!("TLS certificate reloaded (files changed)"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in use")
            }
        }
    }

    /// Watches the files; the task runs until aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        every_watch_interval(move || {
            let tls = tls.clone();
            async move { tls.reload_if_changed().await }
        })
    }
}
