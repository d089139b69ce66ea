//! Reading an official ICD-10-CM tabular XML file into a release: the one
//! place the terminology module touches files (for `charaka terminology`).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::codesystem::CodeSystem;
use super::icd10cm::{self, Origin};

/// A release read from an XML file: its derived form and code system.
pub struct Imported {
    pub derived: Vec<u8>,
    pub code_system: CodeSystem,
    pub origin: Origin,
    pub items: usize,
    pub billable: usize,
}

/// Reads `path`, reporting progress (share done, 0..=1) to `progress`.
pub fn import_xml(
    path: &Path,
    version: Option<&str>,
    progress: &mut dyn FnMut(&str, f64),
) -> anyhow::Result<Imported> {
    progress("reading", 0.0);
    let xml = std::fs::read(path)?;
    let sha256 = Sha256::digest(&xml)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    progress("parsing", 0.1);
    let release =
        icd10cm::parse_tabular(&xml).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let origin = Origin {
        version: version
            .map(str::to_string)
            .unwrap_or_else(|| release.version.clone()),
        source_file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: sha256,
    };
    anyhow::ensure!(
        !origin.version.is_empty(),
        "the file has no <version>; give --version"
    );
    progress("compressing", 0.4);
    let derived = icd10cm::write_derived(&release, &origin);
    progress("indexing", 0.7);
    let (code_system, _) = icd10cm::read_derived(&derived).map_err(|e| anyhow::anyhow!(e))?;
    progress("done", 1.0);
    Ok(Imported {
        derived,
        items: release.items.len(),
        billable: release.billable(),
        code_system,
        origin,
    })
}
