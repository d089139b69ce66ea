//! Blind indexing of configured identifier systems (`blind_index_systems`):
//! a token index row whose system is one of them holds
//! `base64url(HMAC-SHA256(index key, system|value))` instead of the value,
//! and a token search for `system|value` (or a bare `value`) is hashed the
//! same way, so exact matches still work while the database never shows
//! the value. The system itself stays in clear (`identifier=system|` still
//! finds every resource with such an identifier).
//!
//! Not supported on such values: `:text`, `:contains`, `:below`/`:above`,
//! `:of-type` (those rows are left out), sorting. The index key is not a
//! data key: it never rotates with them (that would need a reindex).

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::index::{IndexRows, TokenRow};
use super::keyring::KeyRing;
use super::query::{Cond, Filter, SearchQuery, Table};

pub struct BlindIndex {
    key: ring::hmac::Key,
    systems: HashSet<String>,
    /// Marks the search index fingerprint with the blinded systems, so a
    /// change of the list rebuilds the index.
    pub fingerprint_suffix: String,
}

impl BlindIndex {
    /// None when no system is configured.
    pub fn new(ring: &KeyRing, systems: &[String]) -> Option<BlindIndex> {
        if systems.is_empty() {
            return None;
        }
        let mut sorted: Vec<&str> = systems.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let digest = ring::digest::digest(&ring::digest::SHA256, sorted.join("\n").as_bytes());
        Some(BlindIndex {
            key: ring.index_key().clone(),
            systems: systems.iter().cloned().collect(),
            fingerprint_suffix: format!("+blind-{}", &URL_SAFE_NO_PAD.encode(digest)[..16]),
        })
    }

    pub fn covers(&self, system: &str) -> bool {
        self.systems.contains(system)
    }

    /// The stored form of `system|value`.
    pub fn hash(&self, system: &str, value: &str) -> String {
        let mut msg = Vec::with_capacity(system.len() + value.len() + 1);
        msg.extend_from_slice(system.as_bytes());
        msg.push(b'|');
        msg.extend_from_slice(value.as_bytes());
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.key, &msg))
    }

    /// The rows as stored: values of covered systems hashed, and the
    /// `:of-type` rows (`type|value`) of those values left out. None when
    /// nothing changes.
    pub fn rows(&self, rows: &IndexRows) -> Option<IndexRows> {
        let blinded: Vec<&str> = rows
            .tokens
            .iter()
            .filter(|t| self.covers(&t.system))
            .map(|t| t.code.as_str())
            .collect();
        if blinded.is_empty() {
            return None;
        }
        let of_blinded = |t: &TokenRow| {
            blinded.iter().any(|v| {
                t.code.len() > v.len() + 1
                    && t.code.ends_with(v)
                    && t.code.as_bytes()[t.code.len() - v.len() - 1] == b'|'
            })
        };
        let mut out = rows.clone();
        out.tokens = rows
            .tokens
            .iter()
            .filter(|t| self.covers(&t.system) || !of_blinded(t))
            .map(|t| {
                if self.covers(&t.system) {
                    TokenRow {
                        code: self.hash(&t.system, &t.code),
                        ..t.clone()
                    }
                } else {
                    t.clone()
                }
            })
            .collect();
        Some(out)
    }

    /// A search with its token conditions on covered systems hashed.
    pub fn query(&self, q: &SearchQuery) -> SearchQuery {
        SearchQuery {
            filters: self.filters(&q.filters),
            ..q.clone()
        }
    }

    /// A `_containedType=contained` search with its token conditions on
    /// covered systems hashed.
    pub fn contained_query(
        &self,
        q: &super::contained::ContainedQuery,
    ) -> super::contained::ContainedQuery {
        super::contained::ContainedQuery {
            filters: self.filters(&q.filters),
            plain: q.plain.as_ref().map(|f| self.filters(f)),
            outer: self.filters(&q.outer),
            ..q.clone()
        }
    }

    pub fn filters(&self, filters: &[Filter]) -> Vec<Filter> {
        filters.iter().map(|f| self.filter(f)).collect()
    }

    fn filter(&self, f: &Filter) -> Filter {
        match f {
            Filter::Index {
                table,
                pids,
                alts,
                negate,
            } => Filter::Index {
                table: *table,
                pids: pids.clone(),
                alts: alts
                    .iter()
                    .flat_map(|c| self.alternatives(*table, c))
                    .collect(),
                negate: *negate,
            },
            Filter::Composite(groups) => Filter::Composite(
                groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|(t, pid, c)| (*t, *pid, self.cond(c)))
                            .collect()
                    })
                    .collect(),
            ),
            Filter::Has {
                rtype,
                pids,
                filters,
            } => Filter::Has {
                rtype: rtype.clone(),
                pids: pids.clone(),
                filters: self.filters(filters),
            },
            Filter::Or(groups) => Filter::Or(groups.iter().map(|g| self.filters(g)).collect()),
            Filter::Either(parts) => Filter::Either(self.filters(parts)),
            Filter::Contained { rtype, filters } => Filter::Contained {
                rtype: rtype.clone(),
                filters: self.filters(filters),
            },
            other => other.clone(),
        }
    }

    /// One condition: hashed when its system is covered.
    fn cond(&self, c: &Cond) -> Cond {
        match c {
            Cond::Token {
                system: Some(system),
                code: Some(code),
            } if self.covers(system) => Cond::Token {
                system: Some(system.clone()),
                code: Some(self.hash(system, code)),
            },
            Cond::Chain { types, filters } => Cond::Chain {
                types: types.clone(),
                filters: self.filters(filters),
            },
            Cond::LocalChain {
                pid,
                types,
                filters,
            } => Cond::LocalChain {
                pid: *pid,
                types: types.clone(),
                filters: self.filters(filters),
            },
            Cond::Codes(set) => {
                let mut set = set.clone();
                for (system, code) in set.codes.iter_mut().flatten() {
                    if self.covers(system) {
                        *code = self.hash(system, code);
                    }
                }
                Cond::Codes(set)
            }
            other => other.clone(),
        }
    }

    /// The alternatives a condition becomes: a bare code may be the value
    /// of any covered system too.
    fn alternatives(&self, table: Table, c: &Cond) -> Vec<Cond> {
        match c {
            Cond::Token {
                system: None,
                code: Some(code),
            } if table == Table::Token => {
                let mut alts = vec![c.clone()];
                let mut systems: Vec<&String> = self.systems.iter().collect();
                systems.sort();
                alts.extend(systems.into_iter().map(|s| Cond::Token {
                    system: Some(s.clone()),
                    code: Some(self.hash(s, code)),
                }));
                alts
            }
            _ => vec![self.cond(c)],
        }
    }
}
