//! Data keys: the key file (or `CHARAKA_DATA_KEYS`, same content), the
//! ring of AES-256-GCM ciphers built from it, and the blind index key.
//!
//! The key file is TOML:
//!
//! ```toml
//! active = 2
//! index_key = "base64url of 32 bytes"
//! [keys]
//! 1 = "base64url of 32 bytes"
//! 2 = "base64url of 32 bytes"
//! ```
//!
//! `active` names the key new writes are sealed with; the others stay
//! readable. `index_key` keys the blind index of configured identifier
//! systems; it never rotates with the data keys (that would need a reindex).
//! Keys never enter the database or the logs: `Debug` shows key ids only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use aes_gcm::{Aes256Gcm, KeyInit};
use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The secret bytes of one key; wiped when dropped.
type KeyBytes = zeroize::Zeroizing<[u8; 32]>;

/// The contents of a key file.
pub struct KeyFile {
    pub active: u32,
    keys: BTreeMap<u32, KeyBytes>,
    index_key: KeyBytes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileToml {
    active: u32,
    index_key: String,
    keys: BTreeMap<String, String>,
}

fn random_key() -> KeyBytes {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key[..])
        .expect("the OS random source works");
    key
}

fn decode_key(what: &str, text: &str) -> anyhow::Result<KeyBytes> {
    let bytes = zeroize::Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("{what} is not base64url"))?,
    );
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    anyhow::ensure!(
        bytes.len() == 32,
        "{what} must be 32 bytes (256 bits), not {}",
        bytes.len()
    );
    key.copy_from_slice(&bytes);
    Ok(key)
}

impl KeyFile {
    /// A new key file with one data key (id 1, active) and an index key.
    pub fn generate() -> KeyFile {
        KeyFile {
            active: 1,
            keys: BTreeMap::from([(1, random_key())]),
            index_key: random_key(),
        }
    }

    /// Parses key file content.
    pub fn parse(text: &str) -> anyhow::Result<KeyFile> {
        let raw: KeyFileToml = toml::from_str(text).map_err(|e| {
            // The TOML error may quote the file; keep key material out of it.
            anyhow::anyhow!("the data key file is not valid: {}", e.message())
        })?;
        let mut keys = BTreeMap::new();
        for (id, key) in &raw.keys {
            let id: u32 = id
                .parse()
                .ok()
                .filter(|id| *id >= 1)
                .with_context(|| format!("data key id `{id}` is not a positive integer"))?;
            keys.insert(id, decode_key(&format!("data key {id}"), key)?);
        }
        anyhow::ensure!(
            keys.contains_key(&raw.active),
            "the active data key {} is not among the keys of the key file",
            raw.active
        );
        Ok(KeyFile {
            active: raw.active,
            keys,
            index_key: decode_key("index_key", &raw.index_key)?,
        })
    }

    /// Reads a key file, refusing one that others than its owner may read.
    pub fn load(path: &Path) -> anyhow::Result<KeyFile> {
        check_permissions(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading data key file {}", path.display()))?;
        KeyFile::parse(&text).with_context(|| format!("data key file {}", path.display()))
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let raw = KeyFileToml {
            active: self.active,
            index_key: URL_SAFE_NO_PAD.encode(&self.index_key[..]),
            keys: self
                .keys
                .iter()
                .map(|(id, k)| (id.to_string(), URL_SAFE_NO_PAD.encode(&k[..])))
                .collect(),
        };
        format!(
            "# Charaka data keys. Without this file the encrypted data cannot be read:\n\
             # back it up, apart from the database backups.\n{}",
            toml::to_string(&raw).expect("a key file serialises")
        )
    }

    /// Writes the file with mode 0600, replacing it atomically; refuses to
    /// overwrite unless `replace`.
    pub fn save(&self, path: &Path, replace: bool) -> anyhow::Result<()> {
        if !replace && path.exists() {
            bail!("{} exists already; not overwriting it", path.display());
        }
        let tmp = path.with_extension("keys-new");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&tmp)
                .with_context(|| format!("writing data key file {}", tmp.display()))?;
            std::io::Write::write_all(&mut file, self.to_toml().as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing data key file {}", path.display()))?;
        Ok(())
    }

    /// Adds a new data key and makes it the active one; returns its id.
    pub fn add_active(&mut self) -> u32 {
        let id = self.keys.keys().max().copied().unwrap_or(0) + 1;
        self.keys.insert(id, random_key());
        self.active = id;
        id
    }

    /// Removes a data key that is no longer active.
    pub fn remove(&mut self, id: u32) -> anyhow::Result<()> {
        anyhow::ensure!(id != self.active, "data key {id} is the active key");
        anyhow::ensure!(
            self.keys.remove(&id).is_some(),
            "there is no data key {id} in the key file"
        );
        Ok(())
    }

    /// The ids of the data keys, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The ciphers of this file.
    pub fn ring(&self) -> KeyRing {
        KeyRing {
            active: self.active,
            ciphers: self
                .keys
                .iter()
                .map(|(id, k)| (*id, Aes256Gcm::new(k[..].into())))
                .collect(),
            index_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.index_key[..]),
        }
    }
}

/// Refuses a key file that group or others may read or write (like ssh).
pub fn check_permissions(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading data key file {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "data key file {} is accessible by others (mode {mode:o}); \
             make it private with `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The data keys in use: the one new writes are sealed with and every key
/// still readable, plus the blind index key.
pub struct KeyRing {
    pub active: u32,
    ciphers: BTreeMap<u32, Aes256Gcm>,
    index_key: ring::hmac::Key,
}

impl KeyRing {
    pub fn cipher(&self, id: u32) -> Option<&Aes256Gcm> {
        self.ciphers.get(&id)
    }

    pub fn ids(&self) -> Vec<u32> {
        self.ciphers.keys().copied().collect()
    }

    /// The key of the blind index (HMAC-SHA256).
    pub fn index_key(&self) -> &ring::hmac::Key {
        &self.index_key
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip() {
        let mut file = KeyFile::generate();
        assert_eq!(file.add_active(), 2);
        let back = KeyFile::parse(&file.to_toml()).unwrap();
        assert_eq!(back.active, 2);
        assert_eq!(back.ids(), vec![1, 2]);
        assert_eq!(&back.index_key[..], &file.index_key[..]);
    }

    #[test]
    fn bad_key_files_are_refused_without_echoing_keys() {
        let err = KeyFile::parse("active = 3\nindex_key = \"AAAA\"\n[keys]\n1 = \"AAAA\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("32 bytes") || err.contains("active"), "{err}");
        let err = KeyFile::parse("active = 1\nindex_key = \"secret!\"\n[keys]\n")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("secret!"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.keys");
        KeyFile::generate().save(&path, false).unwrap();
        assert!(KeyFile::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyFile::load(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
