//! Terminology: code systems in memory and the FHIR terminology operations
//! over them (http://hl7.org/fhir/R4/terminology-service.html).
//!
//! - `icd10cm`: the official ICD-10-CM tabular XML → the shipped derived form
//!   → a [`CodeSystem`].
//! - `codesystem`: the in-memory model (hierarchy, pre-order numbering,
//!   properties, designations) and CodeSystem resources read into it.
//! - `textindex`: word-prefix and code-prefix search with ranking (`filter`).
//! - `valueset`: `compose` (include/exclude, concept lists, filters) and
//!   expansions.
//!
//! Pure: no I/O beyond decoding the release embedded in the binary.

pub mod codesystem;
pub mod icd10cm;
pub mod release;
pub mod textindex;
pub mod valueset;

use std::sync::{Arc, OnceLock, RwLock};

use codesystem::CodeSystem;

/// The shipped ICD-10-CM release (see `terminology/README.md`).
static SHIPPED_ICD10CM: &[u8] = include_bytes!("../../terminology/icd10cm-2026.tsv.gz");

/// The shipped ICD-10-CM release, decoded once per process.
pub fn shipped_icd10cm() -> Arc<CodeSystem> {
    static LOADED: OnceLock<Arc<CodeSystem>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let started = std::time::Instant::now();
            let (cs, _) = icd10cm::read_derived(SHIPPED_ICD10CM)
                .expect("the shipped ICD-10-CM release is readable");
            tracing::info!(
                concepts = cs.concepts.len(),
                millis = started.elapsed().as_millis() as u64,
                "ICD-10-CM loaded"
            );
            Arc::new(cs)
        })
        .clone()
}

/// The code systems the server holds in memory: every loaded ICD-10-CM
/// version; the newest is the default.
#[derive(Debug)]
pub struct Terminology {
    icd10cm: RwLock<Vec<Arc<CodeSystem>>>,
}

impl Default for Terminology {
    fn default() -> Self {
        Terminology {
            icd10cm: RwLock::new(vec![shipped_icd10cm()]),
        }
    }
}

impl Terminology {
    /// An ICD-10-CM version, or the newest.
    pub fn icd10cm(&self, version: Option<&str>) -> Option<Arc<CodeSystem>> {
        let versions = self.icd10cm.read().expect("not poisoned");
        match version {
            None => versions.last().cloned(),
            Some(v) => versions
                .iter()
                .find(|cs| cs.version.as_deref() == Some(v))
                .cloned(),
        }
    }

    /// Adds (or replaces) a version, keeping versions in order.
    pub fn add_icd10cm(&self, cs: CodeSystem) {
        let mut versions = self.icd10cm.write().expect("not poisoned");
        versions.retain(|v| v.version != cs.version);
        versions.push(Arc::new(cs));
        versions.sort_by(|a, b| a.version.cmp(&b.version));
    }

    pub fn icd10cm_versions(&self) -> Vec<String> {
        let versions = self.icd10cm.read().expect("not poisoned");
        versions.iter().filter_map(|v| v.version.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_release_is_complete() {
        let cs = shipped_icd10cm();
        assert_eq!(cs.concepts.len(), 98_466);
        let billable = cs.concepts.iter().filter(|c| cs.is_billable(c)).count();
        assert_eq!(billable, 74_719);
        assert_eq!(cs.version.as_deref(), Some("2026"));
        let e119 = cs.concept("E11.9").expect("E11.9");
        assert_eq!(
            e119.display.as_ref(),
            "Type 2 diabetes mellitus without complications"
        );
        assert!(cs.concept("S06.1X7D").is_none());
        assert!(cs.concept("S72.001A").is_some());
    }

    #[test]
    fn filter_ranking_on_the_shipped_release() {
        let cs = shipped_icd10cm();
        for text in ["E11.9", "diabetes type 2", "type 2 diab"] {
            let found = cs.index.search(text, &cs.concepts);
            let first = cs.get(found[0]).code.as_ref();
            assert!(
                first == "E11.9" || first == "E11",
                "{text}: first is {first}"
            );
        }
        let found = cs.index.search("E119", &cs.concepts);
        assert_eq!(cs.get(found[0]).code.as_ref(), "E11.9");
    }
}
