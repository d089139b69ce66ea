//! The body codec: every stored resource body passes through here on its way
//! into and out of the database. A one-byte envelope tag says how the rest is
//! encoded, so compression and encryption can be added without rewriting
//! existing rows.
//!
//! Tag `0x00`: the canonical JSON the server returns, as is.

use bytes::Bytes;

use super::StoreError;

const PLAIN_JSON: u8 = 0x00;

/// Wraps canonical JSON for storage.
pub fn encode(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(PLAIN_JSON);
    out.extend_from_slice(json);
    out
}

/// Recovers the canonical JSON from a stored body without copying it.
pub fn decode(stored: Vec<u8>) -> Result<Bytes, StoreError> {
    match stored.first() {
        Some(&PLAIN_JSON) => Ok(Bytes::from(stored).slice(1..)),
        Some(tag) => Err(StoreError::Corrupt(format!(
            "unknown body envelope tag {tag:#04x}"
        ))),
        None => Err(StoreError::Corrupt("empty stored body".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let json = br#"{"resourceType":"Patient"}"#;
        assert_eq!(&decode(encode(json)).unwrap()[..], &json[..]);
    }

    #[test]
    fn rejects_unknown_envelopes() {
        assert!(decode(vec![0x7f, b'{', b'}']).is_err());
        assert!(decode(Vec::new()).is_err());
    }
}
