//! Encryption at rest, at start: where the data keys come from, and the
//! check that they are the keys the database's values were sealed with.
//!
//! Keys come from `CHARAKA_DATA_KEYS` (the key file's content), else
//! `data_keys_file`, else (SQLite) `<database file>.keys` beside the
//! database. A fresh SQLite database with no key anywhere gets a new key
//! file there (mode 0600) and a notice; PostgreSQL needs an explicit key or
//! `encryption = "off"`. Keys never enter the database or the logs.
//!
//! `encryption_probes` holds, per data key in use, a known value sealed with
//! it: every such value must open, or the start fails naming the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::codec::{Aad, Codec};
use super::db::Query;
use super::keyring::KeyFile;
use super::{Backend, Store};
use crate::config::Config;

const PROBE_TEXT: &[u8] = b"charaka data key check";
const INDEX_PROBE_TEXT: &[u8] = b"charaka blind index key check";
pub(crate) const UNSEALED: &str = "unsealed";
pub(crate) const INDEX_KEY: &str = "index-key";

pub(crate) fn probe_name(key_id: u32) -> String {
    format!("data-key-{key_id}")
}

/// The data key ids named by probe rows.
pub(crate) fn probed_keys(rows: &[(String, Vec<u8>)]) -> Vec<(u32, &[u8])> {
    rows.iter()
        .filter_map(|(name, value)| {
            let id = name.strip_prefix("data-key-")?.parse().ok()?;
            Some((id, value.as_slice()))
        })
        .collect()
}

pub(crate) async fn probes(store: &Store) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let rows = store
        .write_fetch_all(&Query::new("SELECT name, value FROM encryption_probes"))
        .await?;
    rows.iter()
        .map(|r| Ok((r.text(0)?, r.opt_bytes(1)?.unwrap_or_default())))
        .collect()
}

/// The key file beside an SQLite database (None for an in-memory one).
pub fn default_key_file(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(Path::new(path).with_extension("keys"))
}

fn index_probe(key: &ring::hmac::Key) -> Vec<u8> {
    ring::hmac::sign(key, INDEX_PROBE_TEXT).as_ref().to_vec()
}

/// Loads the keys, checks them against the database, and returns the codec.
pub(crate) async fn open(store: &Store, config: &Config) -> anyhow::Result<Codec> {
    let rows = probes(store).await?;
    let needed: Vec<u32> = probed_keys(&rows).iter().map(|(id, _)| *id).collect();
    let sqlite = matches!(store.backend, Backend::Sqlite { .. });
    let beside = sqlite
        .then(|| default_key_file(&config.database_url))
        .flatten();
    let file = if let Some(text) = &config.data_keys {
        Some(KeyFile::parse(&text.0).context("CHARAKA_DATA_KEYS")?)
    } else if let Some(path) = &config.data_keys_file {
        Some(KeyFile::load(path)?)
    } else if let Some(path) = beside.as_ref().filter(|p| p.exists()) {
        Some(KeyFile::load(path)?)
    } else if !needed.is_empty() {
        bail!(
            "the database holds data sealed with data key{} {} but no data key is configured: \
             set data_keys_file (--data-keys-file, CHARAKA_DATA_KEYS_FILE) or CHARAKA_DATA_KEYS{}",
            if needed.len() > 1 { "s" } else { "" },
            list(&needed),
            beside
                .map(|p| format!(", or restore {}", p.display()))
                .unwrap_or_default()
        );
    } else if !config.encryption_enabled() {
        None
    } else if sqlite {
        let file = KeyFile::generate();
        match &beside {
            Some(path) => {
                file.save(path, false)?;
                // A notice for the operator's console (no key material).
                eprintln!(
                    "\nCharaka made a new data key file {}: stored data is encrypted with it.\n\
                     Back it up now; without it the database cannot be read. In production keep\n\
                     it apart from the database (data_keys_file or CHARAKA_DATA_KEYS).\n",
                    path.display()
                );
                tracing::warn!(path = %path.display(), "made a new data key file; back it up");
            }
            None => tracing::info!("in-memory database: data keys live in memory only"),
        }
        Some(file)
    } else {
        bail!(
            "encryption at rest needs a data key on PostgreSQL: make one with \
             `charaka keys generate --out FILE` and set data_keys_file (--data-keys-file, \
             CHARAKA_DATA_KEYS_FILE) or CHARAKA_DATA_KEYS; or set encryption = \"off\""
        );
    };

    let Some(file) = file else {
        mark_unsealed(store, &rows).await?;
        return Ok(Codec::plain());
    };
    let ring = Arc::new(file.ring());
    let codec = Codec::new(Some(ring.clone()), config.encryption_enabled());
    for (id, value) in probed_keys(&rows) {
        if ring.cipher(id).is_none() {
            bail!(
                "data key {id} is missing: the database holds data sealed with it, and the \
                 configured key file has only key{} {}",
                if ring.ids().len() > 1 { "s" } else { "" },
                list(&ring.ids())
            );
        }
        let opened = codec.decode(value.to_vec(), &Aad::Probe { key_id: id });
        if !matches!(opened, Ok(ref v) if v.as_ref() == PROBE_TEXT) {
            bail!(
                "data key {id} of the configured key file is not the key the database's data \
                 was sealed with (wrong key file?)"
            );
        }
    }
    let index_check = index_probe(ring.index_key());
    match rows.iter().find(|(name, _)| name == INDEX_KEY) {
        Some((_, stored)) if *stored != index_check => bail!(
            "the index_key of the configured key file is not the one the blind index was built \
             with (wrong key file?)"
        ),
        Some(_) => {}
        None => insert_probe(store, INDEX_KEY, index_check).await?,
    }
    match codec.active_key() {
        Some(active) if !needed.contains(&active) => {
            let probe = codec.encode(PROBE_TEXT, &Aad::Probe { key_id: active });
            insert_probe(store, &probe_name(active), probe).await?;
        }
        Some(_) => {}
        None => mark_unsealed(store, &rows).await?,
    }
    tracing::info!(
        encryption = if codec.seals() { "on" } else { "off" },
        active_key = codec.active_key(),
        "encryption at rest"
    );
    Ok(codec)
}

/// Values written from now on may be plain: re-encryption has work to do
/// once encryption is on again.
async fn mark_unsealed(store: &Store, rows: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    if !rows.iter().any(|(name, _)| name == UNSEALED) {
        insert_probe(store, UNSEALED, vec![0]).await?;
    }
    Ok(())
}

async fn insert_probe(store: &Store, name: &str, value: Vec<u8>) -> anyhow::Result<()> {
    let q = Query::new(
        "INSERT INTO encryption_probes (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .text(name)
    .bytes(value);
    store.write(&q).await?;
    Ok(())
}

fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_beside_sqlite() {
        assert_eq!(
            default_key_file("sqlite://./data/charaka.db"),
            Some(PathBuf::from("./data/charaka.keys"))
        );
        assert_eq!(
            default_key_file("sqlite:///tmp/x/db.sqlite?mode=rwc"),
            Some(PathBuf::from("/tmp/x/db.keys"))
        );
        assert_eq!(default_key_file("sqlite::memory:"), None);
        assert_eq!(default_key_file("postgres://h/db"), None);
    }
}
