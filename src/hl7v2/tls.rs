//! MLLP over TLS: the listener's rustls configuration (the ring provider, as
//! HTTPS in `crate::tls`), built from PEM files: the certificate chain, its
//! private key and, for mutual TLS, the CA bundle that client certificates
//! must chain to (a client without such a certificate is refused).
//!
//! Reloaded like the HTTPS certificate: on SIGHUP (`serve`), when a file's
//! modification time changes (checked every minute), or by
//! `MllpTls::reload`. New connections get the new configuration, open ones
//! keep theirs; a reload that fails keeps the configuration in use. A
//! reload reads the files (and the watch their modification times) on
//! tokio's blocking pool, as HTTPS reads its own through tokio's file I/O,
//! so that slow storage never holds up a runtime worker serving messages.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle of client certificates; None: no client certificate asked.
    pub client_ca: Option<PathBuf>,
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// Modification times of the files, in `paths` order.
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths().map(crate::tls::modified).collect()
    }
}

/// The listener's TLS configuration, shared with the reload paths.
#[derive(Clone)]
pub struct MllpTls {
    files: Arc<Files>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    /// Modification times at the last load.
    loaded: Arc<Mutex<Vec<Option<SystemTime>>>>,
}

impl MllpTls {
    /// Reads the files; an error names the file at fault.
    pub fn load(files: Files) -> anyhow::Result<MllpTls> {
        let stamps = files.stamps();
        let config = server_config(&files)?;
        Ok(MllpTls {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(Arc::new(config))),
            loaded: Arc::new(Mutex::new(stamps)),
        })
    }

    /// Reads the files again; new connections get the new configuration.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let files = self.files.clone();
        let (stamps, config) = tokio::task::spawn_blocking(move || {
            let stamps = files.stamps();
            server_config(&files).map(|config| (stamps, config))
        })
        .await
        .context("reading the MLLP TLS files")??;
        *self.current.write().expect("mllp tls lock") = Arc::new(config);
        *self.loaded.lock().expect("mllp tls lock") = stamps;
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().expect("mllp tls lock").clone())
    }

    /// Whether client certificates are required.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Reloads when a file changed since the last load.
    async fn reload_if_changed(&self) {
        let files = self.files.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || files.stamps()).await else {
            return;
        };
        if *self.loaded.lock().expect("mllp tls lock") == now {
            return;
        }
        match self.reload().await {
            Ok(()) => tracing::info!("MLLP TLS certificate reloaded (files changed)"),
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "MLLP TLS reload failed; the previous configuration stays in use"
            ),
        }
    }

    /// Watches the files (as HTTPS's are); the task runs until aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        crate::tls::every_watch_interval(move || {
            let tls = tls.clone();
            async move { tls.reload_if_changed().await }
        })
    }
}

/// Builds the rustls configuration from the files.
fn server_config(files: &Files) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the MLLP TLS key {}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("MLLP TLS protocol versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a CA certificate of {}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("the client CA bundle {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "the MLLP TLS certificate {} and key {}",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// Every certificate of a PEM file; none is an error.
fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn missing_or_empty_files_are_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let empty = write(dir, "empty.pem", "");
        let files = Files {
            cert: empty.clone(),
            key: empty.clone(),
            client_ca: None,
        };
        let err = format!("{:#}", MllpTls::load(files).err().unwrap());
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let files = Files {
            cert: dir.join("absent.pem"),
            key: empty,
            client_ca: None,
        };
        let err = format!("{:#}", MllpTls::load(files).err().unwrap());
        assert!(err.contains("absent.pem"), "{err}");
    }
}
