//! Charaka, a FHIR R4 server.
//!
//! Layers, each depending only on those below it (see ARCHITECTURE.md):
//! `fhir` (the model, pure) → `store` (persistence) → `service` (one module per
//! FHIR interaction) → `http` (the axum edge) and `cli`.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod fhir;
pub mod fhirpath;
pub mod generate;
pub mod hl7v2;
pub mod http;
pub mod keys_cli;
pub mod search;
pub mod server;
pub mod service;
pub mod store;
pub mod terminology;
pub mod tls;
pub mod ucum;
