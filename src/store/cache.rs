//! An in-memory cache of current versions, in front of `Store::read`.
//!
//! Filled by reads and by committed writes. An entry is only ever replaced by
//! a newer version of the same resource, so a slow reader can never put back
//! a version older than one a writer has already published. Entries are
//! published after commit, so a rolled-back write is never seen.
//!
//! The cache is only coherent when this process is the database's only
//! writer: always true for SQLite (one file, one server); on PostgreSQL it is
//! off unless the operator runs a single Charaka node and turns it on.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::StoredVersion;

const SHARDS: usize = 64;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: i64,
    rtype: String,
    id: String,
}

pub struct VersionCache {
    shards: Vec<Mutex<HashMap<Key, StoredVersion>>>,
    per_shard: usize,
    hasher: RandomState,
}

/// The version of an erased resource's tombstone.
const ERASED: i64 = i64::MAX;

impl VersionCache {
    /// A cache holding about `capacity` resources; None when `capacity` is 0.
    pub fn new(capacity: usize) -> Option<VersionCache> {
        (capacity > 0).then(|| VersionCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, StoredVersion>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub fn get(&self, tenant: i64, rtype: &str, id: &str) -> Option<StoredVersion> {
        let key = Key {
            tenant,
            rtype: rtype.to_string(),
            id: id.to_string(),
        };
        let shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&key).filter(|v| v.version != ERASED).cloned()
    }

    /// Forgets an erased resource for good: a tombstone newer than any
    /// version, so a read racing the erasure cannot publish the old
    /// version again. Reads treat it as a miss.
    pub fn erase(&self, tenant: i64, rtype: &str, id: &str) {
        let key = Key {
            tenant,
            rtype: rtype.to_string(),
            id: id.to_string(),
        };
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        shard.insert(
            key,
            StoredVersion {
                version: ERASED,
                last_updated: 0,
                deleted: true,
                body: None,
            },
        );
    }

    /// Publishes a version unless a newer one is already cached.
    pub fn publish(&self, tenant: i64, rtype: &str, id: &str, version: StoredVersion) {
        let key = Key {
            tenant,
            rtype: rtype.to_string(),
            id: id.to_string(),
        };
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = shard.get(&key) {
            if existing.version >= version.version {
                return;
            }
        } else if shard.len() >= self.per_shard {
            // Full: drop an arbitrary half of the shard. Cheap, and a miss
            // only costs one indexed lookup.
            let drop: Vec<Key> = shard.keys().take(self.per_shard / 2 + 1).cloned().collect();
            for k in drop {
                shard.remove(&k);
            }
        }
        shard.insert(key, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: i64) -> StoredVersion {
        StoredVersion {
            version,
            last_updated: version,
            deleted: false,
            body: None,
        }
    }

    #[test]
    fn never_goes_back_in_versions() {
        let c = VersionCache::new(10).unwrap();
        c.publish(1, "Patient", "a", v(2));
        c.publish(1, "Patient", "a", v(1));
        assert_eq!(c.get(1, "Patient", "a").unwrap().version, 2);
        c.publish(1, "Patient", "a", v(3));
        assert_eq!(c.get(1, "Patient", "a").unwrap().version, 3);
        assert!(c.get(2, "Patient", "a").is_none());
        assert!(VersionCache::new(0).is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = VersionCache::new(128).unwrap();
        for i in 0..10_000 {
            c.publish(1, "Patient", &i.to_string(), v(1));
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 128 + SHARDS, "{total}");
    }
}
