//! The FHIR model: the R4 schema, validation, primitive formats, JSON/XML
//! conversion, OperationOutcome, `_summary`/`_elements`, and index extraction.
//! Pure functions only: no I/O.

pub mod datetime;
pub mod invariants;
pub mod meta;
pub mod outcome;
pub mod primitive;
pub mod profile;
pub mod schema;
mod shipped_profiles;
pub mod summary;
pub mod validate;
pub mod xml;
