//! Users and clients: creation (command line, first start, dynamic
//! registration), listing, disabling; and the brute-force slowing of
//! sign-ins.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::scopes::Scopes;
use super::secrets;
use crate::store::auth::{ClientRow, UserRow};
use crate::store::Store;

pub const ROLES: [&str; 3] = ["admin", "practitioner", "patient"];

/// Client kinds: `public` (no secret: browser and mobile apps, PKCE),
/// `symmetric` (client secret), `asymmetric` (`private_key_jwt`).
pub const CLIENT_KINDS: [&str; 3] = ["public", "symmetric", "asymmetric"];

/// A new account. Returns an error message for a bad role or a taken name.
pub async fn add_user(
    store: &Store,
    username: &str,
    password: &str,
    role: &str,
    fhir_user: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        ROLES.contains(&role),
        "role must be one of {}",
        ROLES.join(", ")
    );
    anyhow::ensure!(
        !username.is_empty() && username.len() <= 100 && !username.contains(char::is_whitespace),
        "a username is 1 to 100 characters without spaces"
    );
    anyhow::ensure!(
        password.len() >= 10,
        "a password has at least 10 characters"
    );
    if let Some(u) = fhir_user {
        let ok = u.split_once('/').is_some_and(|(t, id)| {
            matches!(
                t,
                "Practitioner" | "Patient" | "Person" | "RelatedPerson" | "PractitionerRole"
            ) && !id.is_empty()
        });
        anyhow::ensure!(ok, "fhirUser must be Practitioner/ID, Patient/ID, RelatedPerson/ID, Person/ID or PractitionerRole/ID");
    }
    anyhow::ensure!(
        role != "patient" || fhir_user.is_some_and(|u| u.starts_with("Patient/")),
        "a patient account needs --fhir-user Patient/ID (their own record)"
    );
    let row = UserRow {
        username: username.to_string(),
        password_hash: secrets::hash_password(password),
        role: role.to_string(),
        fhir_user: fhir_user.map(str::to_string),
        disabled: false,
        created: crate::fhir::datetime::now_micros(),
    };
    anyhow::ensure!(
        store.insert_user(&row).await?,
        "user `{username}` exists already"
    );
    Ok(())
}

/// On an empty database, makes the administrator account `admin` and
/// returns its one-time password (to be printed once, never logged).
pub async fn bootstrap_admin(store: &Store) -> anyhow::Result<Option<String>> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = secrets::one_time_password();
    add_user(store, "admin", &password, "admin", None).await?;
    Ok(Some(password))
}

/// What registering a client gives back: its id and, for symmetric
/// clients, the secret (shown once; only its hash is kept).
pub struct NewClient {
    pub client_id: String,
    pub secret: Option<String>,
}

/// A client registration request (RFC 7591 metadata subset).
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub name: String,
    pub kind: String,
    pub redirect_uris: Vec<String>,
    pub scope: String,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub client_id: Option<String>,
}

pub async fn add_client(store: &Store, spec: &ClientSpec) -> anyhow::Result<NewClient> {
    anyhow::ensure!(
        CLIENT_KINDS.contains(&spec.kind.as_str()),
        "client kind must be one of {}",
        CLIENT_KINDS.join(", ")
    );
    anyhow::ensure!(!spec.name.trim().is_empty(), "a client needs a name");
    Scopes::parse(&spec.scope).map_err(|e| anyhow::anyhow!("{e}"))?;
    for uri in &spec.redirect_uris {
        anyhow::ensure!(
            (uri.starts_with("https://") || uri.starts_with("http://")) && !uri.contains('#'),
            "redirect URI `{uri}` must be an absolute http(s) URL without a fragment"
        );
    }
    if spec.kind == "public" {
        anyhow::ensure!(
            !spec.redirect_uris.is_empty(),
            "a public client needs at least one redirect URI"
        );
    }
    if spec.kind == "asymmetric" {
        match (&spec.jwks, &spec.jwks_uri) {
            (Some(_), Some(_)) => anyhow::bail!("give jwks or jwks_uri, not both"),
            (None, Some(uri)) => {
                super::jwks_fetch::allowed_uri(uri).map_err(|e| anyhow::anyhow!(e))?
            }
            (jwks, None) => {
                let keys = jwks.as_ref().and_then(|j| j["keys"].as_array());
                anyhow::ensure!(
                    keys.is_some_and(|k| !k.is_empty()),
                    "an asymmetric client needs a JWKS with at least one public key, or a jwks_uri"
                );
            }
        }
    } else {
        anyhow::ensure!(
            spec.jwks.is_none() && spec.jwks_uri.is_none(),
            "only private_key_jwt clients have keys (jwks, jwks_uri)"
        );
    }
    let client_id = spec
        .client_id
        .clone()
        .unwrap_or_else(|| secrets::random_token()[..22].to_string());
    let secret = (spec.kind == "symmetric").then(secrets::random_token);
    let row = ClientRow {
        client_id: client_id.clone(),
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        secret_hash: secret.as_deref().map(secrets::token_hash),
        redirect_uris: json!(spec.redirect_uris).to_string(),
        scope: spec.scope.clone(),
        jwks: spec.jwks.as_ref().map(Value::to_string),
        jwks_uri: spec.jwks_uri.clone(),
        revoked: false,
        created: crate::fhir::datetime::now_micros(),
    };
    anyhow::ensure!(
        store.insert_client(&row).await?,
        "client `{client_id}` exists already"
    );
    Ok(NewClient { client_id, secret })
}

/// Failed sign-ins per key (account or address) in the current minute.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

/// Failed attempts allowed per account and per address each minute.
pub const MAX_FAILURES_PER_MINUTE: u32 = 5;

impl LoginLimiter {
    /// Seconds to wait when `key` is locked out, else None.
    pub fn locked(&self, key: &str, now: i64) -> Option<i64> {
        let map = self.failures.lock().expect("limiter lock");
        match map.get(key) {
            Some((start, n)) if *n >= MAX_FAILURES_PER_MINUTE && now - start < 60 => {
                Some(60 - (now - start))
            }
            _ => None,
        }
    }

    /// Counts a failure; true when this one locks the key.
    pub fn fail(&self, key: &str, now: i64) -> bool {
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now - *start < 60);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= 60 {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 == MAX_FAILURES_PER_MINUTE
    }

    pub fn succeed(&self, key: &str) {
        self.failures.lock().expect("limiter lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_the_rest_of_the_minute() {
        let l = LoginLimiter::default();
        for i in 0..4 {
            assert!(!l.fail("u", 100 + i));
            assert_eq!(l.locked("u", 100 + i), None);
        }
        assert!(l.fail("u", 104));
        assert_eq!(l.locked("u", 110), Some(50));
        assert_eq!(l.locked("u", 160), None);
        assert_eq!(l.locked("other", 110), None);
    }
}
