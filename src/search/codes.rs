//! Token searches answered through the terminology service: `:in` and
//! `:not-in` (the codes of a value set), `:below` (a code and its
//! descendants), `:above` (a code and its ancestors).
//!
//! Parsing stays pure: the parser records what a condition asks for
//! ([`CodeSource`]) in a [`CodeSet`] without codes; the service layer
//! resolves every set of a plan ([`code_sets_mut`]) into `(system, code)`
//! pairs before the plan reaches the store, which binds them as one JSON
//! array. A set has at most [`MAX_CODES`] codes.

use crate::store::query::{Cond, Filter};

/// The most codes one `:in`/`:not-in`/`:below`/`:above` value may stand for
/// (a value set's expansion, a code's descendants). Of ICD-10-CM only two
/// chapters are over it (19, injuries: 54,283 codes; 20, external causes:
/// 10,636); the next largest (13) has 8,694.
pub const MAX_CODES: usize = 10_000;

/// What a terminology-backed token condition asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeSource {
    /// `:in` / `:not-in`: a value set by canonical URL (with an optional
    /// `|version`), implicit URL (`{system}?fhir_vs=isa/{code}`) or
    /// reference (`ValueSet/{id}`).
    ValueSet(String),
    /// `:below=system|code`: the code and everything it subsumes.
    Below { system: String, code: String },
    /// `:above=system|code`: the code and everything that subsumes it.
    Above { system: String, code: String },
}

/// A set of codes from the terminology service.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeSet {
    /// The parameter as written (`code:in`), for error messages.
    pub param: String,
    pub source: CodeSource,
    /// `(system, code)` pairs; None until the service layer resolved them.
    pub codes: Option<Vec<(String, String)>>,
}

impl CodeSet {
    pub fn new(param: &str, source: CodeSource) -> Self {
        CodeSet {
            param: param.to_string(),
            source,
            codes: None,
        }
    }
}

/// Every code set in `filters`, chains, `_has` and OR groups included.
pub fn code_sets_mut(filters: &mut [Filter]) -> Vec<&mut CodeSet> {
    let mut out = Vec::new();
    for f in filters {
        collect_filter(f, &mut out);
    }
    out
}

fn collect_filter<'a>(f: &'a mut Filter, out: &mut Vec<&'a mut CodeSet>) {
    match f {
        Filter::Index { alts, .. } => {
            for c in alts {
                collect_cond(c, out);
            }
        }
        Filter::Composite(groups) => {
            for (_, _, c) in groups.iter_mut().flatten() {
                collect_cond(c, out);
            }
        }
        Filter::Has { filters, .. }
        | Filter::Contained { filters, .. }
        | Filter::Either(filters) => {
            for f in filters {
                collect_filter(f, out);
            }
        }
        Filter::Or(groups) => {
            for f in groups.iter_mut().flatten() {
                collect_filter(f, out);
            }
        }
        _ => {}
    }
}

fn collect_cond<'a>(c: &'a mut Cond, out: &mut Vec<&'a mut CodeSet>) {
    match c {
        Cond::Codes(set) => out.push(set),
        Cond::Chain { filters, .. } | Cond::LocalChain { filters, .. } => {
            for f in filters {
                collect_filter(f, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query::Table;

    #[test]
    fn finds_sets_in_chains_and_groups() {
        let set = |u: &str| Cond::Codes(CodeSet::new("code:in", CodeSource::ValueSet(u.into())));
        let mut filters = vec![
            Filter::Index {
                table: Table::Token,
                pids: vec![1],
                alts: vec![set("a"), set("b")],
                negate: false,
            },
            Filter::Or(vec![vec![Filter::Index {
                table: Table::Reference,
                pids: vec![2],
                alts: vec![Cond::Chain {
                    types: vec!["Patient".into()],
                    filters: vec![Filter::Index {
                        table: Table::Token,
                        pids: vec![3],
                        alts: vec![set("c")],
                        negate: true,
                    }],
                }],
                negate: false,
            }]]),
        ];
        let sets = code_sets_mut(&mut filters);
        let urls: Vec<_> = sets
            .iter()
            .map(|s| match &s.source {
                CodeSource::ValueSet(u) => u.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(urls, ["a", "b", "c"]);
    }
}
