//! Bulk loading from files (`charaka import`): transaction/batch Bundles,
//! collection Bundles, single resources (`.json`) and NDJSON (`.ndjson`,
//! one resource a line, streamed). Everything goes through the same service
//! functions as the REST API, so validation and indexing are the same.
//!
//! Re-running an import: resources with an id are updated in place (a new
//! version, no duplicate); resources without one are created again, except
//! in Bundles whose entries use `ifNoneExist`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::transaction::EntryReturn;
use super::{input, Fhir};
use crate::error::{FhirError, FhirResult};

/// NDJSON lines written per database transaction.
const NDJSON_GROUP: usize = 500;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportStats {
    /// Resources written, by type.
    pub written: BTreeMap<String, u64>,
    /// `file:line` or file, and the reason.
    pub failures: Vec<(String, String)>,
    pub bytes: u64,
}

impl ImportStats {
    pub fn total(&self) -> u64 {
        self.written.values().sum()
    }
}

/// Files to import under `paths`, in load order: referenced Bundles first
/// (Synthea's `hospitalInformation*` and `practitionerInformation*`), then by name.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("json" | "ndjson")
                        )
                })
                .collect();
            entries.sort_by_key(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let referenced = name.starts_with("hospitalInformation")
                    || name.starts_with("practitionerInformation");
                (!referenced, name)
            });
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

impl Fhir {
    /// Imports one file, adding to `stats`; `progress` is called after each
    /// unit of work with the bytes of the file processed so far.
    pub async fn import_file(
        &self,
        path: &Path,
        stats: &mut ImportStats,
        progress: &mut dyn FnMut(&ImportStats, u64),
    ) -> std::io::Result<()> {
        let name = path.display().to_string();
        if path.extension().and_then(|e| e.to_str()) == Some("ndjson") {
            return self.import_ndjson(path, &name, stats, progress).await;
        }
        let bytes = std::fs::read(path)?;
        let len = bytes.len() as u64;
        match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => stats.failures.push((name, format!("not JSON: {e}"))),
            Ok(value) => {
                if let Err(err) = self.import_value(value, stats).await {
                    stats.failures.push((name, err.to_string()));
                }
            }
        }
        stats.bytes += len;
        progress(stats, len);
        Ok(())
    }

    async fn import_value(&self, value: Value, stats: &mut ImportStats) -> FhirResult<()> {
        let rtype = value
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if rtype == "Bundle" && (kind == "transaction" || kind == "batch") {
            let response = self
                .transaction_or_batch(
                    value,
                    EntryReturn::Minimal,
                    &crate::auth::Access::unrestricted("import"),
                    false,
                )
                .await?;
            let response: Value = serde_json::from_slice(&response).expect("the server's own JSON");
            let mut failed = Vec::new();
            for (i, e) in response["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let status = e["response"]["status"].as_str().unwrap_or_default();
                let location = e["response"]["location"].as_str().unwrap_or_default();
                if status.starts_with('2') {
                    if let Some(t) = location.split('/').next().filter(|t| !t.is_empty()) {
                        *stats.written.entry(t.to_string()).or_default() += 1;
                    }
                } else if !status.is_empty() {
                    let why = e["response"]["outcome"]["issue"][0]["diagnostics"]
                        .as_str()
                        .unwrap_or(status);
                    failed.push(format!("entry {i}: {why}"));
                }
            }
            if !failed.is_empty() {
                return Err(FhirError::invalid(failed.join("; ")));
            }
            return Ok(());
        }
        if rtype == "Bundle" && matches!(kind.as_str(), "collection" | "searchset") {
            let resources: Vec<Value> = value["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("resource").cloned())
                .collect();
            return self.import_resources(resources, stats).await;
        }
        self.import_resources(vec![value], stats).await
    }

    /// Writes resources in one transaction: update for those with an id,
    /// create for the others.
    async fn import_resources(
        &self,
        resources: Vec<Value>,
        stats: &mut ImportStats,
    ) -> FhirResult<()> {
        let prepared: Vec<(String, super::prepared::Prepared)> = resources
            .into_iter()
            .map(|r| {
                let rtype = r
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                super::check_type(&rtype)?;
                super::check_writable(&rtype)?;
                let resource = input::prepare(&rtype, r)?;
                Ok((rtype.clone(), self.prepare_write(&rtype, resource)?))
            })
            .collect::<FhirResult<_>>()?;
        let mut attempt = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let result = async {
                for (rtype, resource) in &prepared {
                    match resource.resource.get("id").and_then(Value::as_str) {
                        Some(id) => {
                            super::update::check_id(id)?;
                            self.update_in(&mut tx, rtype, id, resource, None).await?;
                        }
                        None => {
                            self.create_in(&mut tx, rtype, resource, None).await?;
                        }
                    }
                }
                Ok(())
            }
            .await;
            if let Some(done) = self.finish(tx, result, &mut attempt).await {
                done?;
                break;
            }
        }
        for (rtype, _) in prepared {
            *stats.written.entry(rtype).or_default() += 1;
        }
        Ok(())
    }

    /// NDJSON, streamed: lines are written in groups of `NDJSON_GROUP`; a
    /// group that fails is retried line by line to name the bad lines.
    async fn import_ndjson(
        &self,
        path: &Path,
        name: &str,
        stats: &mut ImportStats,
        progress: &mut dyn FnMut(&ImportStats, u64),
    ) -> std::io::Result<()> {
        let reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut group: Vec<(usize, Value)> = Vec::new();
        let mut done_bytes = 0u64;
        let mut group_bytes = 0u64;
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            group_bytes += line.len() as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => group.push((n + 1, v)),
                Err(e) => stats
                    .failures
                    .push((format!("{name}:{}", n + 1), format!("not JSON: {e}"))),
            }
            if group.len() >= NDJSON_GROUP {
                self.import_ndjson_group(name, std::mem::take(&mut group), stats)
                    .await;
                done_bytes += std::mem::take(&mut group_bytes);
                progress(stats, done_bytes);
            }
        }
        self.import_ndjson_group(name, group, stats).await;
        stats.bytes += done_bytes + group_bytes;
        progress(stats, done_bytes + group_bytes);
        Ok(())
    }

    async fn import_ndjson_group(
        &self,
        name: &str,
        group: Vec<(usize, Value)>,
        stats: &mut ImportStats,
    ) {
        if group.is_empty() {
            return;
        }
        let values: Vec<Value> = group.iter().map(|(_, v)| v.clone()).collect();
        if self.import_resources(values, stats).await.is_ok() {
            return;
        }
        for (line, value) in group {
            if let Err(err) = self.import_resources(vec![value], stats).await {
                stats
                    .failures
                    .push((format!("{name}:{line}"), err.to_string()));
            }
        }
    }
}
