//! The body codec: every stored resource body, HL7 v2 message, ACK and
//! token signing key passes through here on its way into and out of the
//! database. A one-byte envelope tag says how the rest is encoded:
//!
//! - `0x00`: the bytes as they are (canonical JSON for bodies). Written
//!   when encryption is off; read without copying.
//! - `0x01`: sealed. `[0x01][key id: u32 BE][flags: u8][nonce: 12 bytes]
//!   [AES-256-GCM ciphertext + 16-byte tag]`. Flag bit 0: the plaintext was
//!   LZ4-compressed (bodies under 256 bytes, or that do not shrink, are
//!   not). The associated data is the header (tag, key id, flags) and the
//!   row's identity (`Aad`), so a sealed value moved to another row, or
//!   with its header altered, fails to open with a `StoreError` naming the
//!   row, never with garbage.
//!
//! Nonces are random (96 bits from the OS); a key should seal fewer than
//! 2³² values (NIST SP 800-38D), far beyond a rotation interval.

use std::sync::Arc;

use aes_gcm::aead::{AeadCore, AeadInPlace, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;

use super::keyring::KeyRing;
use super::StoreError;

pub const PLAIN: u8 = 0x00;
pub const SEALED: u8 = 0x01;
const COMPRESSED: u8 = 0x01;
const HEADER: usize = 6;
const NONCE: usize = 12;
const TAG: usize = 16;
/// Bodies shorter than this are sealed without compression.
const MIN_COMPRESS: usize = 256;

/// The identity of the row a stored value belongs to: bound into the
/// ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub enum Aad<'a> {
    /// A version of a resource (`resource_versions.body`).
    Version {
        tenant: i64,
        rtype: &'a str,
        id: &'a str,
        version: i64,
    },
    /// The raw message or the ACK of an HL7 v2 message row.
    Message {
        tenant: i64,
        sender: &'a str,
        control_id: Option<&'a str>,
        received: i64,
        part: MessagePart,
    },
    /// The private key of a token signing key.
    SigningKey { kid: &'a str },
    /// The TOTP secret of an account (`auth_mfa.secret`).
    MfaSecret { username: &'a str },
    /// The start-up check value of a data key.
    Probe { key_id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePart {
    Raw,
    Ack,
}

impl Aad<'_> {
    fn bytes(&self, header: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b"charaka.v1\0");
        out.extend_from_slice(header);
        let mut put = |field: &[u8]| {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        };
        match *self {
            Aad::Version {
                tenant,
                rtype,
                id,
                version,
            } => {
                put(b"version");
                put(&tenant.to_be_bytes());
                put(rtype.as_bytes());
                put(id.as_bytes());
                put(&version.to_be_bytes());
            }
            Aad::Message {
                tenant,
                sender,
                control_id,
                received,
                part,
            } => {
                put(match part {
                    MessagePart::Raw => b"hl7v2.raw",
                    MessagePart::Ack => b"hl7v2.ack",
                });
                put(&tenant.to_be_bytes());
                put(sender.as_bytes());
                match control_id {
                    Some(c) => {
                        put(b"1");
                        put(c.as_bytes());
                    }
                    None => put(b"0"),
                }
                put(&received.to_be_bytes());
            }
            Aad::SigningKey { kid } => {
                put(b"signing-key");
                put(kid.as_bytes());
            }
            Aad::MfaSecret { username } => {
                put(b"mfa-secret");
                put(username.as_bytes());
            }
            Aad::Probe { key_id } => {
                put(b"probe");
                put(&key_id.to_be_bytes());
            }
        }
        out
    }

    /// The row, for error messages (no content, no control ids).
    pub fn describe(&self) -> String {
        match self {
            Aad::Version {
                rtype, id, version, ..
            } => format!("{rtype}/{id}/_history/{version}"),
            Aad::Message { sender, part, .. } => format!(
                "the {} of an HL7 v2 message from {sender}",
                if *part == MessagePart::Raw {
                    "raw bytes"
                } else {
                    "ACK"
                }
            ),
            Aad::SigningKey { kid } => format!("token signing key {kid}"),
            Aad::MfaSecret { .. } => "the TOTP secret of an account".to_string(),
            Aad::Probe { key_id } => format!("the check value of data key {key_id}"),
        }
    }
}

/// Seals (or not) and opens stored values with the configured keys.
#[derive(Debug, Clone)]
pub struct Codec {
    ring: Option<Arc<KeyRing>>,
    /// Whether new values are sealed (`encryption = "on"`).
    seal: bool,
}

impl Codec {
    /// No keys: writes tag 0x00, reads only tag 0x00.
    pub fn plain() -> Codec {
        Codec {
            ring: None,
            seal: false,
        }
    }

    /// Seals new values under the ring's active key when `seal`; opens
    /// values under any key of the ring.
    pub fn new(ring: Option<Arc<KeyRing>>, seal: bool) -> Codec {
        let seal = seal && ring.is_some();
        Codec { ring, seal }
    }

    pub fn ring(&self) -> Option<&KeyRing> {
        self.ring.as_deref()
    }

    pub fn seals(&self) -> bool {
        self.seal
    }

    /// The data key new values are sealed with (None: written plain).
    pub fn active_key(&self) -> Option<u32> {
        self.ring.as_ref().filter(|_| self.seal).map(|r| r.active)
    }

    /// The first 5 bytes every value written now begins with (tag and key
    /// id), or `[0x00]` when written plain: values not starting so are due
    /// for re-encryption.
    pub fn current_prefix(&self) -> Vec<u8> {
        match self.active_key() {
            Some(id) => {
                let mut p = vec![SEALED];
                p.extend_from_slice(&id.to_be_bytes());
                p
            }
            None => vec![PLAIN],
        }
    }

    /// Wraps a value for storage.
    pub fn encode(&self, data: &[u8], aad: &Aad) -> Vec<u8> {
        let (Some(ring), true) = (&self.ring, self.seal) else {
            let mut out = Vec::with_capacity(data.len() + 1);
            out.push(PLAIN);
            out.extend_from_slice(data);
            return out;
        };
        let key_id = ring.active;
        let cipher = ring.cipher(key_id).expect("the active key is in the ring");
        seal(cipher, key_id, data, aad)
    }

    /// Recovers a stored value; tag 0x00 without copying.
    pub fn decode(&self, stored: Vec<u8>, aad: &Aad) -> Result<Bytes, StoreError> {
        match stored.first() {
            Some(&PLAIN) => Ok(Bytes::from(stored).slice(1..)),
            Some(&SEALED) => {
                let key_id = key_of(&stored).ok_or_else(|| {
                    StoreError::Corrupt(format!("{}: truncated sealed value", aad.describe()))
                })?;
                let cipher = self.ring.as_ref().and_then(|r| r.cipher(key_id));
                let Some(cipher) = cipher else {
                    return Err(StoreError::Corrupt(format!(
                        "{} is sealed with data key {key_id}, which is not configured",
                        aad.describe()
                    )));
                };
                open(cipher, stored, aad).map(Bytes::from)
            }
            Some(tag) => Err(StoreError::Corrupt(format!(
                "{}: unknown envelope tag {tag:#04x}",
                aad.describe()
            ))),
            None => Err(StoreError::Corrupt(format!(
                "{}: empty stored value",
                aad.describe()
            ))),
        }
    }
}

/// The data key a stored value is sealed with (None: not sealed).
pub fn key_of(stored: &[u8]) -> Option<u32> {
    if stored.first() != Some(&SEALED) || stored.len() < HEADER + NONCE + TAG {
        return None;
    }
    Some(u32::from_be_bytes(stored[1..5].try_into().ok()?))
}

fn seal(cipher: &Aes256Gcm, key_id: u32, data: &[u8], aad: &Aad) -> Vec<u8> {
    let compressed = (data.len() >= MIN_COMPRESS)
        .then(|| lz4_flex::compress_prepend_size(data))
        .filter(|c| c.len() < data.len());
    let plaintext = compressed.as_deref().unwrap_or(data);
    let mut out = Vec::with_capacity(HEADER + NONCE + plaintext.len() + TAG);
    out.push(SEALED);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.push(if compressed.is_some() { COMPRESSED } else { 0 });
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let associated = aad.bytes(&out[..HEADER]);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &associated, &mut out[HEADER + NONCE..])
        .expect("a stored value is far below the AES-GCM length limit");
    out.extend_from_slice(&tag);
    out
}

fn open(cipher: &Aes256Gcm, mut stored: Vec<u8>, aad: &Aad) -> Result<Vec<u8>, StoreError> {
    let key_id = key_of(&stored).unwrap_or_default();
    let flags = stored[5];
    let associated = aad.bytes(&stored[..HEADER]);
    let nonce = *Nonce::from_slice(&stored[HEADER..HEADER + NONCE]);
    stored.drain(..HEADER + NONCE);
    cipher
        .decrypt_in_place(&nonce, &associated, &mut stored)
        .map_err(|_| {
            StoreError::Corrupt(format!(
                "{} does not open with data key {key_id}: the value belongs to another row, \
                 was altered, or the key is not the one it was sealed with",
                aad.describe()
            ))
        })?;
    if flags & COMPRESSED != 0 {
        lz4_flex::decompress_size_prepended(&stored)
            .map_err(|e| StoreError::Corrupt(format!("{}: decompressing: {e}", aad.describe())))
    } else {
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keyring::KeyFile;

    fn aad(version: i64) -> Aad<'static> {
        Aad::Version {
            tenant: 1,
            rtype: "Patient",
            id: "p1",
            version,
        }
    }

    fn sealing() -> Codec {
        Codec::new(Some(Arc::new(KeyFile::generate().ring())), true)
    }

    #[test]
    fn plain_round_trip() {
        let json = br#"{"resourceType":"Patient"}"#;
        let codec = Codec::plain();
        assert_eq!(
            &codec.decode(codec.encode(json, &aad(1)), &aad(1)).unwrap()[..],
            &json[..]
        );
    }

    #[test]
    fn sealed_round_trip_small_and_large() {
        let codec = sealing();
        let small = br#"{"resourceType":"Patient","name":[{"family":"Chalmers"}]}"#.to_vec();
        let large = format!(
            r#"{{"resourceType":"Patient","text":"{}"}}"#,
            "Chalmers ".repeat(300)
        )
        .into_bytes();
        for json in [small, large] {
            let stored = codec.encode(&json, &aad(1));
            assert_eq!(stored[0], SEALED);
            assert_eq!(key_of(&stored), Some(1));
            assert!(!stored.windows(8).any(|w| w == b"Chalmers"));
            assert_eq!(&codec.decode(stored, &aad(1)).unwrap()[..], &json[..]);
        }
        // Same plaintext twice: different nonces, different bytes.
        assert_ne!(codec.encode(b"{}", &aad(1)), codec.encode(b"{}", &aad(1)));
    }

    #[test]
    fn moved_altered_or_foreign_values_fail() {
        let codec = sealing();
        let stored = codec.encode(b"{\"resourceType\":\"Patient\"}", &aad(1));
        let err = codec.decode(stored.clone(), &aad(2)).unwrap_err();
        assert!(err.to_string().contains("Patient/p1/_history/2"), "{err}");
        let mut flipped = stored.clone();
        flipped[5] ^= COMPRESSED;
        assert!(codec.decode(flipped, &aad(1)).is_err());
        let other = sealing();
        assert!(other.decode(stored.clone(), &aad(1)).is_err());
        let err = Codec::plain().decode(stored, &aad(1)).unwrap_err();
        assert!(err.to_string().contains("not configured"), "{err}");
    }

    #[test]
    fn rejects_unknown_envelopes() {
        let codec = sealing();
        assert!(codec.decode(vec![0x7f, b'{', b'}'], &aad(1)).is_err());
        assert!(codec.decode(Vec::new(), &aad(1)).is_err());
        assert!(codec.decode(vec![SEALED, 0, 0, 0, 1], &aad(1)).is_err());
    }
}
