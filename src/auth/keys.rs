//! The server's token signing keys: ECDSA P-256 (ES256), generated with
//! ring, stored in the database (so every node over one PostgreSQL signs
//! and checks with the same keys), published as a JWKS.
//!
//! Rotation: a new key signs from the moment it is made; older keys stay in
//! the JWKS and keep verifying until every token they signed has expired,
//! then they are dropped. Nodes that meet an unknown `kid` reload the keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::store::auth::KeyRow;

/// A key the server signs or verifies with.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub public_jwk: Value,
    pub created: i64,
    pub retired: Option<i64>,
}

/// Makes a new ES256 key pair.
pub fn generate(now: i64) -> KeyRow {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("the OS random source works");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("a key just generated parses");
    // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key().as_ref();
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    // RFC 7638 thumbprint as the key id.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": kid, "alg": "ES256", "use": "sig"
    });
    KeyRow {
        kid,
        alg: "ES256".into(),
        private_key: pkcs8.as_ref().to_vec(),
        public_jwk: jwk.to_string(),
        created: now,
        retired: None,
    }
}

/// Turns a stored key into signing and verifying keys.
pub fn load(row: &KeyRow) -> anyhow::Result<SigningKey> {
    anyhow::ensure!(
        row.alg == "ES256",
        "unsupported signing key algorithm {}",
        row.alg
    );
    let jwk: Value = serde_json::from_str(&row.public_jwk)?;
    let (x, y) = (
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default(),
    );
    Ok(SigningKey {
        kid: row.kid.clone(),
        encoding: EncodingKey::from_ec_der(&row.private_key),
        decoding: DecodingKey::from_ec_components(x, y)?,
        public_jwk: jwk,
        created: row.created,
        retired: row.retired,
    })
}

/// The JWKS document of the given keys.
pub fn jwks<'a>(keys: impl Iterator<Item = &'a SigningKey>) -> Value {
    json!({ "keys": keys.map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
}
