//! The HL7 v2 bridge: messages in over MLLP or HTTP, FHIR resources out, and
//! ACKs that tell the truth.
//!
//! Each message flows frame → parse → map → store → acknowledge:
//! - `mllp`: MLLP framing over TCP or TLS (partial and coalesced reads,
//!   size limit);
//! - `listener`: the accept loop, one task per connection, idle timeout,
//!   graceful shutdown, the TLS handshake when configured;
//! - `tls`: MLLP over TLS: the rustls configuration from PEM files (mutual
//!   TLS with a client CA bundle), reloaded like HTTPS's;
//! - `peer`: the names of a mutual-TLS client's certificate (logged with
//!   its messages) and the sender binding of MSH-3/MSH-4 to them;
//! - `message`: ER7 parsing (encoding characters, escapes, repetitions,
//!   components, subcomponents, character sets);
//! - `map/`: one file per message family, each producing one FHIR
//!   transaction Bundle (pure, no I/O);
//! - `ingest`: the pipeline shared by MLLP and HTTP; it applies the Bundle
//!   and logs the message in one commit through `service::messages`;
//! - `ack`: ACK and ERR building, MSH mirroring.

pub mod ack;
pub mod ingest;
pub mod listener;
pub mod map;
pub mod message;
pub mod mllp;
pub mod peer;
pub mod tls;
