//! `charaka terminology import icd10cm FILE.xml`: reads an official
//! ICD-10-CM tabular XML release and stores its derived form in the
//! database (or, with `--out`, in a file: how `terminology/` is made).

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::terminology::icd10cm::SYSTEM;
use crate::terminology::release::import_xml;

#[derive(Debug, Subcommand)]
pub enum TerminologyCommand {
    /// Load a release of a code system (`icd10cm`: the CDC/NCHS tabular
    /// XML) as a new version; several versions coexist, the newest is the
    /// default.
    Import {
        /// The code system: icd10cm.
        system: String,
        /// The release file (e.g. icd10cm-tabular-2026.xml).
        file: PathBuf,
        /// The version to record [default: the file's <version>].
        #[arg(long)]
        version: Option<String>,
        /// Write the derived form to this file instead of the database.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn bar(step: &str, share: f64) {
    let width = 30;
    let done = (share * width as f64).round() as usize;
    eprint!(
        "\r[{}{}] {:>3.0}% {step:<12}",
        "#".repeat(done),
        " ".repeat(width - done),
        share * 100.0
    );
    let _ = std::io::stderr().flush();
    if share >= 1.0 {
        eprintln!();
    }
}

pub async fn run(config: Config, command: TerminologyCommand) -> anyhow::Result<()> {
    let TerminologyCommand::Import {
        system,
        file,
        version,
        out,
    } = command;
    anyhow::ensure!(
        system == "icd10cm",
        "unknown code system `{system}`; supported: icd10cm"
    );
    let started = std::time::Instant::now();
    let imported = import_xml(&file, version.as_deref(), &mut bar)?;
    match out {
        Some(path) => std::fs::write(&path, &imported.derived)?,
        None => {
            let store = crate::store::Store::connect(&config).await?;
            store
                .save_release(
                    SYSTEM,
                    &imported.origin.version,
                    &imported.origin.source_sha256,
                    imported.derived.clone(),
                )
                .await?;
            store.close().await;
        }
    }
    println!(
        "ICD-10-CM {}: {} items, {} billable codes, {} KiB derived, sha256 {} of {}, in {:.1} s",
        imported.origin.version,
        imported.items,
        imported.billable,
        imported.derived.len() / 1024,
        imported.origin.source_sha256,
        imported.origin.source_file,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
