//! SMART on FHIR: Charaka's own OAuth 2 authorization server and the
//! checks every FHIR interaction passes.
//!
//! - `scopes`: SMART v1/v2 scopes → one model
//! - `access`: the caller of a request and what its scopes reach
//! - `tokens`: signed JWT access tokens, verification with a cache
//! - `keys`: the server's signing keys (ES256), rotation, JWKS
//! - `secrets`: random tokens, hashes, PKCE, passwords (argon2id)
//! - `clients`: client registration and client authentication
//!   (`client_secret_basic/post`, `private_key_jwt`)
//! - `jwks_fetch`: backend clients' keys from their `jwks_uri`, cached
//! - `grants`: the token endpoint (authorization code, refresh token,
//!   client credentials), introspection and revocation
//! - `authorize`, `pages`: the authorization endpoint with its login,
//!   consent and patient-picker pages
//! - `discovery`: `.well-known/smart-configuration`, OpenID configuration
//! - `accounts`: users and clients for the command line and first start
//! - `mfa`: two-step sign-in (TOTP codes, backup codes, QR enrolment)
//! - `account`: the account pages and their sessions (two-step sign-in
//!   set-up, the apps a user allowed)
//!
//! The SQL is in `store::auth`; the HTTP routes in `http::auth`; the FHIR
//! checks in `service::authz`.

pub mod access;
pub mod account;
pub mod accounts;
pub mod authorize;
pub mod clients;
pub mod discovery;
pub mod grants;
pub mod jwks_fetch;
pub mod keys;
pub mod mfa;
pub mod pages;
pub mod scopes;
pub mod secrets;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

pub use access::Access;
use keys::SigningKey;
use tokens::{AccessClaims, TokenCache, TokenError};

use crate::config::Config;
use crate::store::{Store, StoreError};

/// The authorization server's state.
pub struct Auth {
    /// Off only for a loopback development server (`--auth off`).
    pub enabled: bool,
    /// The FHIR base URL: issuer of tokens and their audience.
    pub issuer: String,
    /// Where the authorization endpoints live (`{origin}/auth`).
    pub auth_base: String,
    pub access_token_seconds: i64,
    pub refresh_token_seconds: i64,
    keys: RwLock<Arc<Vec<SigningKey>>>,
    cache: TokenCache,
    /// Revoked access token ids and their expiry (seconds).
    revoked: RwLock<HashMap<String, i64>>,
    /// Failed sign-ins by account and by address (brute-force slowing).
    pub login_limiter: accounts::LoginLimiter,
    /// Revoked clients and disabled accounts: their access tokens are
    /// refused even while the verified-token cache holds them.
    blocked: RwLock<Blocked>,
    /// When (ms since the epoch) the revocation counter was last read.
    blocked_checked_ms: AtomicI64,
    /// How often the counter is read (`auth_revocation_check_ms`).
    revocation_check_ms: i64,
}

/// Whose tokens are refused, as of a revocation counter value.
#[derive(Default)]
struct Blocked {
    generation: i64,
    clients: HashSet<String>,
    users: HashSet<String>,
}

impl Blocked {
    /// Whether a caller's client is revoked or its account disabled (a
    /// token with a role is a user's; without, a backend client's).
    fn refuses(&self, client_id: Option<&str>, role: Option<&str>, subject: &str) -> bool {
        client_id.is_some_and(|c| self.clients.contains(c))
            || (role.is_some() && self.users.contains(subject))
    }
}

/// Seconds since the Unix epoch.
pub fn now_seconds() -> i64 {
    crate::fhir::datetime::now_micros() / 1_000_000
}

impl Auth {
    /// Loads (or on first start makes) the signing keys and the revoked
    /// tokens.
    pub async fn start(store: &Store, config: &Config) -> anyhow::Result<Auth> {
        let issuer = config.base_url();
        let auth_base = format!("{}/auth", origin_of(&issuer));
        let auth = Auth {
            enabled: config.auth_enabled(),
            issuer,
            auth_base,
            access_token_seconds: config.access_token_seconds as i64,
            refresh_token_seconds: config.refresh_token_seconds as i64,
            keys: RwLock::new(Arc::new(Vec::new())),
            cache: TokenCache::default(),
            revoked: RwLock::new(HashMap::new()),
            login_limiter: accounts::LoginLimiter::default(),
            blocked: RwLock::new(Blocked {
                generation: -1,
                ..Default::default()
            }),
            blocked_checked_ms: AtomicI64::new(0),
            revocation_check_ms: config.auth_revocation_check_ms as i64,
        };
        auth.check_revocations(store).await?;
        if store.signing_keys().await?.is_empty() {
            store
                .insert_signing_key(&keys::generate(now_micros()))
                .await?;
        }
        auth.reload_keys(store).await?;
        let now = now_seconds();
        let revoked = store.revoked_access_tokens(now).await?;
        *auth.revoked.write().expect("revoked lock") = revoked.into_iter().collect();
        store.purge_expired(now).await?;
        Ok(auth)
    }

    /// Reads the signing keys again (after a rotation, or on an unknown kid).
    pub async fn reload_keys(&self, store: &Store) -> anyhow::Result<()> {
        let rows = store.signing_keys().await?;
        let loaded = rows
            .iter()
            .map(keys::load)
            .collect::<anyhow::Result<Vec<_>>>()?;
        *self.keys.write().expect("keys lock") = Arc::new(loaded);
        Ok(())
    }

    /// Makes a new signing key; older keys verify until their tokens expire.
    pub async fn rotate_keys(&self, store: &Store) -> anyhow::Result<String> {
        let now = now_micros();
        let row = keys::generate(now);
        store.insert_signing_key(&row).await?;
        store.retire_signing_keys(&row.kid, now).await?;
        store
            .delete_signing_keys_retired_before(now - self.access_token_seconds * 2_000_000)
            .await?;
        self.reload_keys(store).await?;
        Ok(row.kid)
    }

    /// The signing keys this node holds (current and retired).
    pub fn keys(&self) -> Arc<Vec<SigningKey>> {
        self.keys.read().expect("keys lock").clone()
    }

    /// The public keys (JWKS document).
    pub fn jwks(&self) -> serde_json::Value {
        keys::jwks(self.keys().iter())
    }

    /// Signs claims with the newest key.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> String {
        let keys = self.keys();
        let key = keys
            .iter()
            .find(|k| k.retired.is_none())
            .or(keys.first())
            .expect("a signing key is loaded at start");
        tokens::sign(claims, key)
    }

    /// Checks a bearer token; returns the caller.
    pub async fn authenticate(
        &self,
        store: &Store,
        token: &str,
    ) -> Result<Arc<Access>, TokenError> {
        let now = now_seconds();
        let verified = match self.cache.get(token, now) {
            Some(c) => c,
            None => {
                let verified = match tokens::verify(token, &self.keys(), &self.issuer, &self.issuer)
                {
                    Err(TokenError::UnknownKey) => {
                        // Perhaps another node rotated the keys.
                        let _ = self.reload_keys(store).await;
                        tokens::verify(token, &self.keys(), &self.issuer, &self.issuer)
                    }
                    other => other,
                }?;
                self.cache.put(token, &verified)
            }
        };
        if self
            .revoked
            .read()
            .expect("revoked lock")
            .contains_key(&verified.jti)
        {
            return Err(TokenError::Revoked);
        }
        let due = now_micros() / 1000 - self.blocked_checked_ms.load(Ordering::Relaxed)
            >= self.revocation_check_ms;
        if due {
            // A failed read keeps the sets as they were (and is retried on
            // the next request).
            if let Err(e) = self.check_revocations(store).await {
                tracing::warn!(error = %e, "revocation counter not read");
            }
        }
        let access = &verified.access;
        if self.blocked.read().expect("blocked lock").refuses(
            access.client_id.as_deref(),
            access.role.as_deref(),
            &access.subject,
        ) {
            return Err(TokenError::Blocked);
        }
        Ok(verified.access)
    }

    /// Reads the revocation counter; when it moved, the revoked clients and
    /// disabled accounts again.
    pub async fn check_revocations(&self, store: &Store) -> Result<(), StoreError> {
        let generation = store.revocation_generation().await?;
        self.blocked_checked_ms
            .store(now_micros() / 1000, Ordering::Relaxed);
        if generation == self.blocked.read().expect("blocked lock").generation {
            return Ok(());
        }
        let (clients, users) = store.blocked_principals().await?;
        let mut blocked = self.blocked.write().expect("blocked lock");
        if generation > blocked.generation {
            *blocked = Blocked {
                generation,
                clients: clients.into_iter().collect(),
                users: users.into_iter().collect(),
            };
        }
        Ok(())
    }

    /// Revokes a client: its grants at once, its access tokens on this node
    /// at once and on the others within `auth_revocation_check_ms`.
    pub async fn revoke_client(&self, store: &Store, client_id: &str) -> Result<bool, StoreError> {
        let found = store.revoke_client(client_id).await?;
        self.check_revocations(store).await?;
        Ok(found)
    }

    /// Disables or enables an account, like [`Auth::revoke_client`].
    pub async fn set_user_disabled(
        &self,
        store: &Store,
        username: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let found = store.set_user_disabled(username, disabled).await?;
        self.check_revocations(store).await?;
        Ok(found)
    }

    /// Verifies a token without the cache (introspection).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = tokens::verify(token, &self.keys(), &self.issuer, &self.issuer)?;
        if self
            .revoked
            .read()
            .expect("revoked lock")
            .contains_key(&claims.jti)
        {
            return Err(TokenError::Revoked);
        }
        if self.blocked.read().expect("blocked lock").refuses(
            Some(&claims.client_id),
            claims.role.as_deref(),
            &claims.sub,
        ) {
            return Err(TokenError::Blocked);
        }
        Ok(claims)
    }

    /// Revokes an access token until it would have expired.
    pub async fn revoke_access(
        &self,
        store: &Store,
        claims: &AccessClaims,
    ) -> Result<(), StoreError> {
        store.revoke_access_token(&claims.jti, claims.exp).await?;
        self.revoked
            .write()
            .expect("revoked lock")
            .insert(claims.jti.clone(), claims.exp);
        self.cache.forget_jti(&claims.jti);
        Ok(())
    }
}

fn now_micros() -> i64 {
    crate::fhir::datetime::now_micros()
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_string(),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins() {
        assert_eq!(super::origin_of("http://h:8080/fhir"), "http://h:8080");
        assert_eq!(super::origin_of("https://h"), "https://h");
    }
}
