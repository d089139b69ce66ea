//! Access tokens and id tokens: signed JWTs (ES256) with the SMART launch
//! context in their claims. Verification accepts ES256 only (so `alg: none`
//! and algorithm confusion fail), checks signature, issuer, audience and
//! expiry, and caches tokens it has verified until they expire, so a client
//! reusing its token pays one hash lookup per request.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The FHIR base URL the token is for.
    pub aud: String,
    /// The user's name, or the client id for backend services.
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The account's role when a user is signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Signs claims with the given key.
pub fn sign<T: Serialize>(claims: &T, key: &SigningKey) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("ES256 signing works")
}

/// Why a token was refused (said to the client in `WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT of ours, bad signature, wrong issuer or audience.
    Invalid(String),
    Expired,
    Revoked,
    /// The client's registration was revoked or the account disabled.
    Blocked,
    /// The `kid` is not one of ours (perhaps a key made by another node).
    UnknownKey,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Invalid(why) => write!(f, "the access token is invalid: {why}"),
            TokenError::Expired => f.write_str("the access token has expired"),
            TokenError::Revoked => f.write_str("the access token has been revoked"),
            TokenError::Blocked => f.write_str(
                "the access token's app registration has been revoked or its account disabled",
            ),
            TokenError::UnknownKey => f.write_str("the access token is signed by an unknown key"),
        }
    }
}

/// Checks signature, algorithm, issuer, audience and expiry.
pub fn verify(
    token: &str,
    keys: &[SigningKey],
    issuer: &str,
    audience: &str,
) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| TokenError::Invalid(format!("malformed token ({e})")))?;
    if header.alg != Algorithm::ES256 {
        return Err(TokenError::Invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| TokenError::Invalid("no key id".into()))?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                TokenError::Invalid("bad signature".into())
            }
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                TokenError::Invalid("the token is not for this server (aud)".into())
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                TokenError::Invalid("unknown issuer".into())
            }
            _ => TokenError::Invalid(e.to_string()),
        })
}

/// A verified token: its expiry, id, and the caller it stands for.
#[derive(Clone)]
pub struct Verified {
    pub exp: i64,
    pub jti: String,
    pub access: std::sync::Arc<super::Access>,
}

/// Verified tokens, by their text, until they expire; a later use costs a
/// lookup (no signature check, no scope parsing).
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, Verified>>,
}

/// Beyond this many cached tokens the cache starts again empty.
const CACHE_LIMIT: usize = 50_000;

impl TokenCache {
    /// A cached token if it has not expired at `now` (seconds).
    pub fn get(&self, token: &str, now: i64) -> Option<Verified> {
        let map = self.map.lock().expect("token cache lock");
        map.get(token).filter(|c| c.exp > now).cloned()
    }

    /// Caches a verified token; returns what was cached.
    pub fn put(&self, token: &str, claims: &AccessClaims) -> Verified {
        let verified = Verified {
            exp: claims.exp,
            jti: claims.jti.clone(),
            access: std::sync::Arc::new(super::Access::from_claims(claims)),
        };
        let mut map = self.map.lock().expect("token cache lock");
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(token.to_string(), verified.clone());
        verified
    }

    /// Forgets tokens with this id (revocation).
    pub fn forget_jti(&self, jti: &str) {
        let mut map = self.map.lock().expect("token cache lock");
        map.retain(|_, c| c.jti != jti);
    }
}
