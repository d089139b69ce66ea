//! The FHIRPath syntax tree.

use rust_decimal::Decimal;

use super::value::{DateTimeVal, Quantity};

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Str(String),
    Int(i64),
    Dec(Decimal),
    Date(DateTimeVal),
    DateTime(DateTimeVal),
    Time(DateTimeVal),
    Quantity(Quantity),
}

/// A type specifier: `Patient`, `FHIR.string`, `System.Integer`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSpec {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `{}`
    Empty,
    Literal(Literal),
    /// An identifier at the start of a path: a member of `$this`, or the
    /// type name of the context.
    Ident(String),
    /// `%name`
    Env(String),
    This,
    Index,
    Total,
    /// `target.name`
    Member(Box<Expr>, String),
    /// `target.name(args)`, or `name(args)` on `$this` when no target.
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    /// `target[index]`
    Indexer(Box<Expr>, Box<Expr>),
    /// `-x` (`+x` is parsed as `x`).
    Negate(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
}
