//! Re-encryption: every stored value not sealed with the active data key
//! (older keys, or plain from before encryption) is opened and sealed again,
//! in small batches, each its own transaction, so serving goes on. Each row
//! is replaced by compare-and-swap on its old bytes, so a concurrent change
//! is never overwritten (the row is simply met again by the next run).
//! Rows carry their key id, so an interrupted run is resumed by running
//! again. When nothing is left under an older key, the probes of older keys
//! are dropped: from then on those keys may leave the key file.

use super::auth::open_private_key;
use super::codec::{self, Aad, MessagePart};
use super::db::{Query, Row};
use super::encryption::{self, probe_name, UNSEALED};
use super::messages::message_aad;
use super::{Store, StoreError};

/// Stored values per table and key (None: plain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCount {
    pub table: &'static str,
    pub key: Option<u32>,
    pub rows: i64,
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Rows sealed again.
    pub rewritten: u64,
    /// True when no value is left under another key (older probes dropped).
    pub finished: bool,
}

/// (table, column): every sealed column.
const COLUMNS: [(&str, &str); 5] = [
    ("resource_versions", "body"),
    ("hl7v2_messages", "raw"),
    ("hl7v2_messages", "ack"),
    ("auth_signing_keys", "private_key"),
    ("auth_mfa", "secret"),
];

/// The WHERE condition "not under the current prefix" for a column.
fn stale(column: &str, prefix_len: usize, ph: &str) -> String {
    format!("substr({column}, 1, {prefix_len}) <> {ph}")
}

impl Store {
    /// The data key new values are sealed with (None: encryption off).
    pub fn active_data_key(&self) -> Option<u32> {
        self.codec.active_key()
    }

    /// Drops the probe of a data key no stored value is sealed with, so
    /// the key may leave the key file (`charaka keys remove`).
    pub async fn forget_data_key(&self, id: u32) -> Result<(), StoreError> {
        if Some(id) == self.active_data_key() {
            return Err(StoreError::Database(format!(
                "data key {id} is the active key"
            )));
        }
        let q = Query::new("DELETE FROM encryption_probes WHERE name = $1").text(probe_name(id));
        self.write(&q).await?;
        Ok(())
    }

    /// How many stored values each data key seals, per table.
    pub async fn rows_per_key(&self) -> Result<Vec<KeyCount>, StoreError> {
        let mut out = Vec::new();
        for (table, column) in COLUMNS {
            let q = Query::dynamic(format!(
                "SELECT substr({column}, 1, 5), COUNT(*) FROM {table} \
                 WHERE {column} IS NOT NULL GROUP BY substr({column}, 1, 5)"
            ));
            let mut counts: Vec<KeyCount> = Vec::new();
            for row in self.fetch_rows(&q).await? {
                let head = row.opt_bytes(0)?.unwrap_or_default();
                let key = (head.first() == Some(&codec::SEALED) && head.len() == 5)
                    .then(|| u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
                let rows = row.int(1)?;
                match counts.iter_mut().find(|c| c.key == key) {
                    Some(c) => c.rows += rows,
                    None => counts.push(KeyCount { table, key, rows }),
                }
            }
            counts.sort_by_key(|c| c.key);
            // Both columns of hl7v2_messages count as one table.
            for c in counts {
                match out
                    .iter_mut()
                    .find(|o: &&mut KeyCount| o.table == c.table && o.key == c.key)
                {
                    Some(o) => o.rows += c.rows,
                    None => out.push(c),
                }
            }
        }
        Ok(out)
    }

    /// Stored values not sealed with the active key (what a run has to do).
    pub async fn reencrypt_pending(&self) -> Result<u64, StoreError> {
        let prefix = self.codec.current_prefix();
        let mut total = 0;
        for (table, column) in COLUMNS {
            let q = Query::dynamic(format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL AND {}",
                stale(column, prefix.len(), "$1")
            ))
            .bytes(prefix.clone());
            total += self.fetch_one_row(&q).await?.int(0)? as u64;
        }
        Ok(total)
    }

    /// Whether older keys or plain values may remain (the server then runs
    /// [`Store::reencrypt`] in the background at start).
    pub async fn reencrypt_due(&self) -> Result<bool, StoreError> {
        let Some(active) = self.codec.active_key() else {
            return Ok(false);
        };
        let rows = encryption::probes(self)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let current = probe_name(active);
        Ok(rows.iter().any(|(name, _)| {
            *name == UNSEALED || (name.starts_with("data-key-") && *name != current)
        }))
    }

    /// Seals again, under the active key, every value not yet under it:
    /// `batch` rows per transaction, at most `max_batches` transactions (None:
    /// to the end). `progress` is told the rows done after each batch.
    pub async fn reencrypt(
        &self,
        batch: i64,
        max_batches: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<Outcome, StoreError> {
        let mut outcome = Outcome::default();
        if self.codec.active_key().is_none() {
            return Ok(outcome);
        }
        let prefix = self.codec.current_prefix();
        let mut batches = 0u64;
        let within = |batches: u64| max_batches.is_none_or(|m| batches < m);
        let mut cursor = 0i64;
        while within(batches) {
            let (done, last) = self.version_batch(&prefix, cursor, batch).await?;
            batches += 1;
            outcome.rewritten += done;
            progress(outcome.rewritten);
            match last {
                Some(last) => cursor = last,
                None => break,
            }
        }
        let mut cursor = 0i64;
        while within(batches) {
            let (done, last) = self.message_batch(&prefix, cursor, batch).await?;
            batches += 1;
            outcome.rewritten += done;
            progress(outcome.rewritten);
            match last {
                Some(last) => cursor = last,
                None => break,
            }
        }
        if within(batches) {
            outcome.rewritten += self.signing_key_batch(&prefix).await?;
            outcome.rewritten += self.mfa_secret_batch(&prefix).await?;
            progress(outcome.rewritten);
            if self.reencrypt_pending().await? == 0 {
                self.drop_old_probes().await?;
                outcome.finished = true;
            }
        }
        Ok(outcome)
    }

    /// One batch of resource versions after `seq`; returns the rows
    /// rewritten and the last `seq` seen (None at the end).
    async fn version_batch(
        &self,
        prefix: &[u8],
        after: i64,
        batch: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::dynamic(format!(
            "SELECT v.seq, v.tenant, r.type, r.id, v.version, v.body \
             FROM resource_versions v JOIN resources r ON r.rid = v.rid \
             WHERE v.seq > $1 AND v.body IS NOT NULL AND {} ORDER BY v.seq LIMIT $3",
            stale("v.body", prefix.len(), "$2")
        ))
        .int(after)
        .bytes(prefix.to_vec())
        .int(batch);
        let rows = tx.tx.conn().fetch_all(&q).await?;
        let mut done = 0;
        let mut last = None;
        for row in &rows {
            let (seq, tenant) = (row.int(0)?, row.int(1)?);
            let (rtype, id, version) = (row.text(2)?, row.text(3)?, row.int(4)?);
            let old = row.opt_bytes(5)?.unwrap_or_default();
            let aad = Aad::Version {
                tenant,
                rtype: &rtype,
                id: &id,
                version,
            };
            let new = self
                .codec
                .encode(&self.codec.decode(old.clone(), &aad)?, &aad);
            let q =
                Query::new("UPDATE resource_versions SET body = $1 WHERE seq = $2 AND body = $3")
                    .bytes(new)
                    .int(seq)
                    .bytes(old);
            done += tx.tx.conn().execute(&q).await?;
            last = Some(seq);
        }
        tx.commit().await?;
        Ok((done, last))
    }

    async fn message_batch(
        &self,
        prefix: &[u8],
        after: i64,
        batch: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::dynamic(format!(
            "SELECT id, tenant, sender, control_id, received, raw, ack FROM hl7v2_messages \
             WHERE id > $1 AND ({} OR {}) ORDER BY id LIMIT $3",
            stale("raw", prefix.len(), "$2"),
            stale("ack", prefix.len(), "$2")
        ))
        .int(after)
        .bytes(prefix.to_vec())
        .int(batch);
        let rows = tx.tx.conn().fetch_all(&q).await?;
        let mut done = 0;
        let mut last = None;
        for row in &rows {
            let (id, tenant, sender) = (row.int(0)?, row.int(1)?, row.text(2)?);
            let control_id = opt_text(row, 3)?;
            let received = row.int(4)?;
            let reseal = |stored: Vec<u8>, part| -> Result<Vec<u8>, StoreError> {
                let aad = message_aad(tenant, &sender, control_id.as_deref(), received, part);
                Ok(self.codec.encode(&self.codec.decode(stored, &aad)?, &aad))
            };
            let (old_raw, old_ack) = (
                row.opt_bytes(5)?.unwrap_or_default(),
                row.opt_bytes(6)?.unwrap_or_default(),
            );
            let raw = reseal(old_raw.clone(), MessagePart::Raw)?;
            let ack = reseal(old_ack.clone(), MessagePart::Ack)?;
            let q = Query::new(
                "UPDATE hl7v2_messages SET raw = $1, ack = $2 WHERE id = $3 AND raw = $4 AND ack = $5",
            )
            .bytes(raw)
            .bytes(ack)
            .int(id)
            .bytes(old_raw)
            .bytes(old_ack);
            done += tx.tx.conn().execute(&q).await?;
            last = Some(id);
        }
        tx.commit().await?;
        Ok((done, last))
    }

    /// The signing keys (a handful of rows): one transaction.
    async fn signing_key_batch(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::dynamic(format!(
            "SELECT kid, private_key FROM auth_signing_keys WHERE {}",
            stale("private_key", prefix.len(), "$1")
        ))
        .bytes(prefix.to_vec());
        let rows = tx.tx.conn().fetch_all(&q).await?;
        let mut done = 0;
        for row in &rows {
            let kid = row.text(0)?;
            let old = row.opt_bytes(1)?.unwrap_or_default();
            let key = open_private_key(&self.codec, &kid, old.clone())?;
            let new = self.codec.encode(&key, &Aad::SigningKey { kid: &kid });
            let q = Query::new(
                "UPDATE auth_signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3",
            )
            .bytes(new)
            .text(&kid)
            .bytes(old);
            done += tx.tx.conn().execute(&q).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The TOTP secrets (one row per account with two-step sign-in): one
    /// transaction.
    async fn mfa_secret_batch(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::dynamic(format!(
            "SELECT username, secret FROM auth_mfa WHERE {}",
            stale("secret", prefix.len(), "$1")
        ))
        .bytes(prefix.to_vec());
        let rows = tx.tx.conn().fetch_all(&q).await?;
        let mut done = 0;
        for row in &rows {
            let username = row.text(0)?;
            let old = row.opt_bytes(1)?.unwrap_or_default();
            let aad = Aad::MfaSecret {
                username: &username,
            };
            let secret = self.codec.decode(old.clone(), &aad)?;
            let new = self.codec.encode(&secret, &aad);
            let q =
                Query::new("UPDATE auth_mfa SET secret = $1 WHERE username = $2 AND secret = $3")
                    .bytes(new)
                    .text(&username)
                    .bytes(old);
            done += tx.tx.conn().execute(&q).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Nothing is sealed with older keys any more: their probes go, so
    /// the keys may leave the key file.
    async fn drop_old_probes(&self) -> Result<(), StoreError> {
        let keep = probe_name(self.codec.active_key().unwrap_or_default());
        let q = Query::new(
            "DELETE FROM encryption_probes WHERE name <> $1 AND name <> $2 \
             AND (name = $3 OR name LIKE 'data-key-%')",
        )
        .text(keep)
        .text(encryption::INDEX_KEY)
        .text(UNSEALED);
        self.write(&q).await?;
        Ok(())
    }
}

fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    if row.is_null(i)? {
        Ok(None)
    } else {
        row.text(i).map(Some)
    }
}
