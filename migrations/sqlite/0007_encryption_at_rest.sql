-- Encryption at rest (store/encryption.rs, store/reencrypt.rs). One row per
-- data key the database holds values sealed with: `data-key-N` is a known
-- value sealed with key N, opened at start so a missing or wrong key fails
-- there, naming the key, and never later as garbage. `index-key` is an
-- HMAC of a fixed text under the blind index key. `unsealed` marks that
-- values written without encryption may exist (re-encryption seals them).
-- No key is ever stored here.
CREATE TABLE encryption_probes (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
INSERT INTO encryption_probes (name, value)
SELECT 'unsealed', X'00'
WHERE EXISTS (SELECT 1 FROM resource_versions WHERE body IS NOT NULL)
   OR EXISTS (SELECT 1 FROM hl7v2_messages)
   OR EXISTS (SELECT 1 FROM auth_signing_keys);
