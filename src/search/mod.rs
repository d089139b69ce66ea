//! FHIR search: the registry of search parameters, the index rows written
//! with every version, and the parsing of search requests into typed plans
//! that `store::query` turns into SQL.

pub mod codes;
pub mod contained;
pub mod extract;
pub mod filter;
pub mod normalize;
pub mod parse;
pub mod registry;
pub mod units;

pub use registry::{registry, ParamType, SearchParam};

/// The stable number of an index key (a parameter code, or `code$n` for a
/// composite's component, `code:text`, `code:identifier`, `code:of-type`) of
/// a resource type, as stored in the index tables: the 31-bit FNV-1a hash of
/// `type/key`. Stable across versions and servers; the registry test checks
/// that no two keys of the R4 parameters collide.
pub fn pid(rtype: &str, key: &str) -> i64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in rtype
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(key.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i64::from(h & 0x7fff_ffff)
}
