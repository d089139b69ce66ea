//! Integration tests: a real Charaka server over HTTP, every test on SQLite
//! and on a throwaway PostgreSQL cluster.

mod harness;
mod pg;

mod audit;
mod auth;
mod concurrency;
mod conditional;
mod crud;
mod encryption;
mod errors;
mod everything;
mod examples;
mod fhirpath_patch;
mod formats;
mod generate;
mod history;
mod hl7v2;
mod import;
mod limits;
mod metadata;
mod operations;
mod search;
mod terminology;
mod transaction;
mod validate_profiles;
