//! The MLLP listener: an accept loop, one task per connection, and graceful
//! shutdown in one place.
//!
//! With TLS (`super::tls`), each connection task first completes the TLS
//! handshake (within 15 s, or the idle timeout when shorter), then runs the same loop over the
//! TLS stream: the loop is generic over the stream. A failed handshake
//! closes that connection only.
//!
//! Each connection reads frames one after the other (original mode: the
//! sender waits for each ACK), runs each through `ingest::handle`, and
//! writes the ACK. A connection idle for longer than the idle timeout is
//! closed. On shutdown the listener stops accepting; each connection
//! finishes the message it is processing, sends its ACK, then closes;
//! `Listener::run` returns once every connection task has ended.
//!
//! At most `max_connections` connections are open at once: each task holds
//! a permit of one semaphore for its whole life (the TLS handshake
//! included), so a connection that ends frees its slot. A connection beyond
//! the cap is accepted and closed at once, nothing read from it, with one
//! warning naming the peer address; the open ones go on undisturbed.
//!
//! Over mutual TLS, the names of the client's verified certificate
//! (`super::peer`) go with each of its messages to `ingest::handle`, which
//! logs them and, with `bind_sender`, checks MSH-3/MSH-4 against them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::ingest;
use super::mllp::{Connection, Frame};
use super::peer::{Client, ClientIdentity};
use super::tls::MllpTls;
use crate::service::Fhir;

/// How long closing a connection may take (a TLS close_notify to a peer
/// that reads nothing more).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a TLS client may take over its handshake: an unauthenticated
/// peer holds a task and a socket for that long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the listener.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    /// Most connections open at once (`mllp_max_connections`, at least 1).
    pub max_connections: usize,
    /// Over mutual TLS: MSH-3/MSH-4 must name the client certificate
    /// (`mllp_tls_bind_sender`).
    pub bind_sender: bool,
}

/// The accept loop.
pub struct Listener {
    listener: TcpListener,
    fhir: Arc<dyn AsRef<Fhir> + Send + Sync>,
    settings: Settings,
    /// None: plain TCP.
    tls: Option<MllpTls>,
    /// One permit per open connection.
    connections: Arc<Semaphore>,
}

/// How often refusals past the connection cap are logged at most.
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

impl Listener {
    pub fn new(
        listener: TcpListener,
        fhir: Arc<dyn AsRef<Fhir> + Send + Sync>,
        settings: Settings,
        tls: Option<MllpTls>,
    ) -> Listener {
        let connections = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        Listener {
            listener,
            fhir,
            settings,
            tls,
            connections,
        }
    }

    /// Accepts connections until `shutdown` turns true, then waits for the
    /// connections to finish their in-flight message.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        // Each connection task holds a clone of `done_tx`; when the last is
        // dropped, `done_rx.recv()` returns None: everything has finished.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        // Refusals are logged at most once per REFUSALS_LOGGED_EVERY, with
        // how many there were: a flood of connections cannot flood the log.
        let mut refused: u64 = 0;
        let mut refusal_logged: Option<std::time::Instant> = None;
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %err, "MLLP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                refused += 1;
                if refusal_logged.is_none_or(|at| at.elapsed() >= REFUSALS_LOGGED_EVERY) {
                    tracing::warn!(
                        peer = %peer,
                        max_connections = self.settings.max_connections,
                        refused,
                        "MLLP connection refused: the connection limit is reached; closed (refused: connections refused since the last such line)"
                    );
                    refused = 0;
                    refusal_logged = Some(std::time::Instant::now());
                }
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let task = Task {
                fhir: self.fhir.clone(),
                settings: self.settings.clone(),
                shutdown: shutdown.clone(),
                peer,
                _done: done_tx.clone(),
                _permit: permit,
            };
            match &self.tls {
                None => tokio::spawn(task.serve(stream, None)),
                Some(tls) => tokio::spawn(task.serve_tls(tls.acceptor(), stream)),
            };
        }
        drop(done_tx);
        let _ = done_rx.recv().await;
    }
}

/// What one connection's task holds besides its stream.
struct Task {
    fhir: Arc<dyn AsRef<Fhir> + Send + Sync>,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    /// Dropped when the task ends (see `Listener::run`).
    _done: mpsc::Sender<()>,
    /// This connection's slot under `max_connections`, freed when the task
    /// ends.
    _permit: OwnedSemaphorePermit,
}

impl Task {
    /// Runs the MLLP loop over `stream`, then closes it. `client`: the
    /// mutual-TLS client, when there is one.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, stream: S, client: Option<Client>) {
        let connection = Connection::new(stream, self.settings.max_message_bytes);
        let idle_timeout = self.settings.idle_timeout;
        let mut handler = Handler {
            connection,
            fhir: self.fhir,
            idle_timeout,
            shutdown: self.shutdown,
            peer: self.peer,
            client,
        };
        handler.run().await;
        // Over TLS: close_notify, so the peer knows the ACKs were whole.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, handler.connection.shutdown()).await;
        drop(self._done);
        drop(self._permit);
    }

    /// The client of a finished handshake: the names of its certificate
    /// when it presented one (mutual TLS; rustls has verified it). A
    /// certificate whose names cannot be read gives an identity without
    /// names, which the sender binding refuses.
    fn client_of(&self, tls: &tokio_rustls::server::TlsStream<TcpStream>) -> Option<Client> {
        let der = tls.get_ref().1.peer_certificates()?.first()?;
        let identity = ClientIdentity::from_der(der).unwrap_or_else(|err| {
            tracing::warn!(
                peer = %self.peer,
                reason = %err.0,
                "MLLP client certificate names could not be read"
            );
            ClientIdentity::default()
        });
        Some(Client {
            identity,
            bind_sender: self.settings.bind_sender,
        })
    }

    /// Completes the TLS handshake within `HANDSHAKE_TIMEOUT` (or the idle
    /// timeout when shorter), then serves the
    /// TLS stream. A failed handshake is logged with the peer address and
    /// rustls's reason (never message content) and closes this connection
    /// only.
    async fn serve_tls(mut self, acceptor: TlsAcceptor, stream: TcpStream) {
        if *self.shutdown.borrow() {
            return;
        }
        let handshake = tokio::select! {
            done = tokio::time::timeout(self.settings.idle_timeout.min(HANDSHAKE_TIMEOUT), acceptor.accept(stream)) => done,
            _ = self.shutdown.changed() => return,
        };
        match handshake {
            Ok(Ok(tls)) => {
                let client = self.client_of(&tls);
                self.serve(tls, client).await
            }
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                // A bare connect and close (a load balancer's health check).
                tracing::info!(peer = %self.peer, "MLLP connection closed during the TLS handshake");
            }
            Ok(Err(err)) => {
                tracing::warn!(peer = %self.peer, reason = %err, "MLLP TLS handshake failed; connection closed");
            }
            Err(_) => {
                tracing::warn!(peer = %self.peer, "MLLP TLS handshake not completed within the idle timeout; connection closed");
            }
        }
    }
}

/// One connection's MLLP loop.
struct Handler<S> {
    connection: Connection<S>,
    fhir: Arc<dyn AsRef<Fhir> + Send + Sync>,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
    /// The mutual-TLS client (None over plain TCP or one-way TLS).
    client: Option<Client>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handler<S> {
    /// Where this connection's messages come from.
    fn origin(&self) -> ingest::Peer<'_> {
        ingest::Peer {
            client: self.client.as_ref(),
            address: Some(self.peer.ip()),
            client_id: None,
        }
    }

    async fn run(&mut self) {
        let mut messages = 0u64;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let frame = tokio::select! {
                frame = tokio::time::timeout(self.idle_timeout, self.connection.read_frame()) => frame,
                _ = self.shutdown.changed() => break,
            };
            let frame = match frame {
                Err(_) => {
                    tracing::info!(peer = %self.peer, "MLLP connection idle; closing");
                    break;
                }
                Ok(Err(err)) => {
                    tracing::info!(peer = %self.peer, error = %err, "MLLP connection failed");
                    break;
                }
                Ok(Ok(frame)) => frame,
            };
            match frame {
                Frame::Message(raw) => {
                    let fhir: &Fhir = (*self.fhir).as_ref();
                    match ingest::handle(fhir, &raw, self.origin(), None).await {
                        Ok(outcome) => {
                            messages += 1;
                            if self.connection.write_frame(&outcome.ack).await.is_err() {
                                break;
                            }
                        }
                        Err(ingest::Unavailable(err)) => {
                            // Not stored, so not acknowledged: closing makes
                            // the sender retry.
                            tracing::error!(
                                status = err.status,
                                "HL7 v2 message not stored (database unavailable); closing the connection"
                            );
                            break;
                        }
                    }
                }
                Frame::TooLarge { head } => {
                    tracing::warn!(
                        peer = %self.peer,
                        "MLLP frame over the size limit; logged as rejected, closing"
                    );
                    let fhir: &Fhir = (*self.fhir).as_ref();
                    match ingest::oversize(fhir, &head, self.origin()).await {
                        Ok(answer) if answer.acknowledge => {
                            let _ = self.connection.write_frame(&answer.ack).await;
                        }
                        Ok(_) => {}
                        Err(ingest::Unavailable(err)) => {
                            tracing::error!(
                                status = err.status,
                                "oversize HL7 v2 message not logged (database unavailable)"
                            );
                        }
                    }
                    break;
                }
                Frame::Truncated => {
                    tracing::info!(peer = %self.peer, "MLLP connection closed inside a frame");
                    break;
                }
                Frame::Closed => break,
            }
        }
        tracing::debug!(peer = %self.peer, messages, "MLLP connection closed");
    }
}

/// A running listener (started by `server::start`).
pub struct Running {
    pub addr: SocketAddr,
    /// The TLS configuration, when the listener speaks TLS.
    pub tls: Option<MllpTls>,
    tls_watch: Option<tokio::task::JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the listener on a bound socket; with `tls`, it speaks TLS
    /// only, and watches the certificate files for changes.
    pub fn start(
        listener: TcpListener,
        fhir: Arc<dyn AsRef<Fhir> + Send + Sync>,
        settings: Settings,
        tls: Option<MllpTls>,
    ) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let tls_watch = tls.as_ref().map(MllpTls::watch);
        let task = tokio::spawn(Listener::new(listener, fhir, settings, tls.clone()).run(rx));
        Ok(Running {
            addr,
            tls,
            tls_watch,
            shutdown,
            task,
        })
    }

    /// Stops accepting and waits for in-flight messages.
    pub async fn stop(self) {
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds the listener's address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
