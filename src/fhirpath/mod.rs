//! FHIRPath (http://hl7.org/fhirpath/N1/) over FHIR JSON, with the FHIR R4
//! additions (http://hl7.org/fhir/R4/fhirpath.html).
//!
//! `parse` turns an expression into an [`Expr`]; `evaluate` runs it against
//! a resource (`serde_json::Value`) and gives a collection of [`Node`]s:
//! nodes of the resource with their FHIR type from the R4 schema, or
//! computed System values (Boolean, Integer, Decimal, String, Date,
//! DateTime, Time, Quantity).
//!
//! ```
//! use charaka::fhirpath::{eval_str, Node};
//! let patient = serde_json::json!({"resourceType": "Patient", "active": true});
//! let out = eval_str("Patient.active", &patient).unwrap();
//! assert!(matches!(out[0].to_system(), Some(Node::Bool(true))));
//! ```

pub mod ast;
mod eval;
mod functions;
pub mod lexer;
pub mod parser;
pub mod patch;
pub mod types;
pub mod value;

use serde_json::Value;

pub use ast::Expr;
pub use value::{DateTimeVal, JsonNode, Node, Quantity};

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("FHIRPath syntax error: {0}")]
    Syntax(String),
    /// A static error: an unknown element or type, a wrong argument type.
    #[error("FHIRPath semantic error: {0}")]
    Semantic(String),
    #[error("FHIRPath evaluation error: {0}")]
    Execution(String),
}

impl Error {
    pub(crate) fn syntax(m: impl Into<String>) -> Error {
        Error::Syntax(m.into())
    }
    pub(crate) fn semantic(m: impl Into<String>) -> Error {
        Error::Semantic(m.into())
    }
    pub(crate) fn exec(m: impl Into<String>) -> Error {
        Error::Execution(m.into())
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Strict mode, as the official test suite expects: unknown elements of
    /// known types, choice elements named with their type suffix
    /// (`Observation.valueQuantity`), a resource type that does not match the
    /// context (`Encounter.name` on a Patient) and `as` on more than one item
    /// are errors. Lenient (the default): such paths are empty and `as`
    /// filters a collection like `ofType`, as R4's SearchParameter
    /// expressions need.
    pub strict: bool,
    /// Ordered functions (`first()`, `last()`, `tail()`, `skip()`, `take()`,
    /// `single()`) on collections
    /// without a defined order (`children()`, `descendants()`) are errors.
    pub check_ordered_functions: bool,
    /// The clock for `now()`, `today()`, `timeOfDay()`; the system clock when None.
    pub now: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Extra `%name` variables.
    pub variables: Vec<(String, Value)>,
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, Error> {
    parser::parse(src)
}

/// Evaluates `expr` with `resource` as `%resource`, `%context` and the focus.
pub fn evaluate<'a>(
    expr: &Expr,
    resource: &'a Value,
    ctx: &'a Context,
) -> Result<Vec<Node<'a>>, Error> {
    eval::Evaluator::new(resource, ctx).run(expr)
}

/// Evaluates `expr` on `focus`, items of `resource` (e.g. from an earlier
/// evaluation), with `resource` as `%resource`.
pub fn evaluate_on<'a>(
    expr: &Expr,
    resource: &'a Value,
    focus: Vec<Node<'a>>,
    ctx: &'a Context,
) -> Result<Vec<Node<'a>>, Error> {
    eval::Evaluator::new(resource, ctx).run_on(expr, focus)
}

/// `evaluate_on` inside a contained resource: `resource` is `%resource`,
/// `container` is `%rootResource` (and where `resolve()` looks up `#id`).
pub fn evaluate_contained<'a>(
    expr: &Expr,
    resource: &'a Value,
    container: &'a Value,
    focus: Vec<Node<'a>>,
    ctx: &'a Context,
) -> Result<Vec<Node<'a>>, Error> {
    eval::Evaluator::contained(resource, container, ctx).run_on(expr, focus)
}

/// Parses and evaluates in one step, leniently.
pub fn eval_str<'a>(src: &str, resource: &'a Value) -> Result<Vec<Node<'a>>, Error> {
    static DEFAULT: std::sync::LazyLock<Context> = std::sync::LazyLock::new(Context::default);
    evaluate(&parse(src)?, resource, &DEFAULT)
}

#[cfg(test)]
mod tests;
