//! Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523,
//! SMART Backend Services): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RS384 or ES384, keys from the registered JWKS or
//! fetched from the registered `jwks_uri`,
//! `exp` at most five minutes ahead, each `jti` once), or none for public
//! clients.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::grants::OAuthError;
use super::secrets;
use crate::store::auth::ClientRow;
use crate::store::Store;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest accepted lifetime of a client assertion, in seconds.
const MAX_ASSERTION_SECONDS: i64 = 300;

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: only its id.
    None,
    Secret,
    PrivateKeyJwt,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    jti: String,
}

/// Finds and authenticates the client of a token request.
/// `form` is the request body; `authorization` the header, if any.
pub async fn authenticate(
    store: &Store,
    form: &[(String, String)],
    authorization: Option<&str>,
    token_endpoint: &str,
) -> Result<(ClientRow, ClientAuth), OAuthError> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let invalid = |why: &str| OAuthError::invalid_client(why);

    // client_secret_basic
    if let Some(basic) = authorization.and_then(|h| h.strip_prefix("Basic ")) {
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("malformed Basic credentials"))?;
        let id = percent_decode(id);
        let secret = percent_decode(secret);
        let client = load(store, &id).await?;
        check_secret(&client, &secret)?;
        return Ok((client, ClientAuth::Secret));
    }

    // private_key_jwt
    if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(invalid("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        }
        let client = verify_assertion(store, assertion, token_endpoint).await?;
        if let Some(id) = get("client_id") {
            if id != client.client_id {
                return Err(invalid("client_id does not match the assertion"));
            }
        }
        return Ok((client, ClientAuth::PrivateKeyJwt));
    }

    let id = get("client_id").ok_or_else(|| invalid("no client authentication given"))?;
    let client = load(store, id).await?;
    // client_secret_post
    if let Some(secret) = get("client_secret") {
        check_secret(&client, secret)?;
        return Ok((client, ClientAuth::Secret));
    }
    if client.kind != "public" {
        return Err(invalid(
            "this client must authenticate (client secret or private_key_jwt)",
        ));
    }
    Ok((client, ClientAuth::None))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn load(store: &Store, id: &str) -> Result<ClientRow, OAuthError> {
    match store.client(id).await.map_err(OAuthError::server)? {
        Some(c) if !c.revoked => Ok(c),
        Some(_) => Err(OAuthError::invalid_client("the client has been revoked")),
        None => Err(OAuthError::invalid_client("unknown client")),
    }
}

fn check_secret(client: &ClientRow, secret: &str) -> Result<(), OAuthError> {
    let ok = client.kind == "symmetric"
        && client
            .secret_hash
            .as_deref()
            .is_some_and(|h| secrets::constant_time_eq(h, &secrets::token_hash(secret)));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_client("wrong client secret"))
    }
}

async fn verify_assertion(
    store: &Store,
    assertion: &str,
    token_endpoint: &str,
) -> Result<ClientRow, OAuthError> {
    let invalid = |why: String| OAuthError::invalid_client(&why);
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| invalid(format!("malformed client assertion ({e})")))?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(invalid(format!(
            "client assertions must be signed with RS384 or ES384, not {:?}",
            header.alg
        )));
    }
    // Who claims to be signing: read `iss` before the signature is checked,
    // only to find the key to check it with.
    let mut peek = Validation::new(header.alg);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    peek.set_required_spec_claims::<&str>(&[]);
    let unverified =
        jsonwebtoken::decode::<serde_json::Value>(assertion, &DecodingKey::from_secret(b""), &peek)
            .map_err(|e| invalid(format!("malformed client assertion ({e})")))?;
    let iss = unverified.claims["iss"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let client = load(store, &iss).await?;
    if client.kind != "asymmetric" {
        return Err(invalid(
            "this client is not registered for private_key_jwt".into(),
        ));
    }
    let fetched;
    let registered: jsonwebtoken::jwk::JwkSet;
    let jwks = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => {
            registered = serde_json::from_str(j)
                .map_err(|_| invalid("the client has no usable JWKS registered".into()))?;
            &registered
        }
        (None, Some(uri)) => {
            fetched = super::jwks_fetch::key_set(uri, header.kid.as_deref())
                .await
                .map_err(invalid)?;
            &*fetched
        }
        (None, None) => {
            return Err(invalid(
                "the client has no JWKS or jwks_uri registered".into(),
            ))
        }
    };
    let candidates: Vec<&jsonwebtoken::jwk::Jwk> = jwks
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(invalid(
            "no registered key matches the assertion's kid".into(),
        ));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_endpoint]);
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 0;
    let mut last_error = "bad signature".to_string();
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            Ok(data) => {
                let c = data.claims;
                if c.sub != client.client_id || c.iss != client.client_id {
                    return Err(invalid("iss and sub must both be the client id".into()));
                }
                let now = super::now_seconds();
                if c.exp - now > MAX_ASSERTION_SECONDS {
                    return Err(invalid(
                        "the assertion's exp is more than five minutes ahead".into(),
                    ));
                }
                if c.jti.is_empty() {
                    return Err(invalid("the assertion has no jti".into()));
                }
                let fresh = store
                    .record_assertion(&client.client_id, &c.jti, c.exp + 60)
                    .await
                    .map_err(OAuthError::server)?;
                if !fresh {
                    return Err(invalid("this assertion (jti) was used before".into()));
                }
                return Ok(client);
            }
            Err(e) => {
                last_error = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the assertion has expired".into()
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        format!("the assertion's aud must be the token endpoint {token_endpoint}")
                    }
                    _ => format!("the assertion does not verify ({e})"),
                }
            }
        }
    }
    Err(invalid(last_error))
}
