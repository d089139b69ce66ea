//! SQL of the authorization server's tables (`0004_auth.sql`): accounts,
//! clients, signing keys, grants (codes, refresh tokens, launch contexts),
//! assertion ids, revoked tokens and consents; the TOTP secrets and backup
//! codes of two-step sign-in (`0009_auth_mfa.sql`). The rules live in `auth`.

use super::codec::{Aad, Codec};
use super::db::{Query, Row};
use super::{Store, StoreError};

/// The first byte of a DER SEQUENCE: a PKCS#8 key stored before keys were
/// sealed (read as is; `charaka keys reencrypt` seals it).
const UNSEALED_PKCS8: u8 = 0x30;

/// Opens a stored private key (sealed, or from before sealing).
pub(crate) fn open_private_key(
    codec: &Codec,
    kid: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if stored.first() == Some(&UNSEALED_PKCS8) {
        return Ok(stored);
    }
    Ok(codec.decode(stored, &Aad::SigningKey { kid })?.to_vec())
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub fhir_user: Option<String>,
    pub disabled: bool,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub kind: String,
    pub secret_hash: Option<String>,
    /// JSON array.
    pub redirect_uris: String,
    pub scope: String,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub revoked: bool,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created: i64,
    pub retired: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct GrantRow {
    pub token_hash: String,
    pub kind: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub scope: String,
    /// JSON object.
    pub context: String,
    pub family: String,
    pub expires: i64,
    pub used: bool,
    pub revoked: bool,
}

/// An account's TOTP enrolment.
#[derive(Clone)]
pub struct MfaRow {
    /// The opened secret (never logged: no `Debug`).
    pub secret: Vec<u8>,
    /// Confirmed with a first code: sign-ins ask for a code.
    pub enabled: bool,
    /// The last time step accepted.
    pub last_step: i64,
}

fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    Ok(if row.is_null(i)? {
        None
    } else {
        Some(row.text(i)?)
    })
}

fn opt_param(q: Query, v: Option<&str>) -> Query {
    match v {
        Some(v) => q.text(v),
        None => q.null(),
    }
}

const USER_COLUMNS: &str = "username, password_hash, role, fhir_user, disabled, created";

fn user(row: &Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        username: row.text(0)?,
        password_hash: row.text(1)?,
        role: row.text(2)?,
        fhir_user: opt_text(row, 3)?,
        disabled: row.int(4)? != 0,
        created: row.int(5)?,
    })
}

const CLIENT_COLUMNS: &str =
    "client_id, name, kind, secret_hash, redirect_uris, scope, jwks, jwks_uri, revoked, created";

fn client(row: &Row) -> Result<ClientRow, StoreError> {
    Ok(ClientRow {
        client_id: row.text(0)?,
        name: row.text(1)?,
        kind: row.text(2)?,
        secret_hash: opt_text(row, 3)?,
        redirect_uris: row.text(4)?,
        scope: row.text(5)?,
        jwks: opt_text(row, 6)?,
        jwks_uri: opt_text(row, 7)?,
        revoked: row.int(8)? != 0,
        created: row.int(9)?,
    })
}

const GRANT_COLUMNS: &str =
    "token_hash, kind, client_id, username, scope, context, family, expires, used, revoked";

fn grant(row: &Row) -> Result<GrantRow, StoreError> {
    Ok(GrantRow {
        token_hash: row.text(0)?,
        kind: row.text(1)?,
        client_id: opt_text(row, 2)?,
        username: opt_text(row, 3)?,
        scope: row.text(4)?,
        context: row.text(5)?,
        family: row.text(6)?,
        expires: row.int(7)?,
        used: row.int(8)? != 0,
        revoked: row.int(9)? != 0,
    })
}

impl Store {
    // --- users ---

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let row = self
            .fetch_one_row(&Query::new("SELECT COUNT(*) FROM auth_users"))
            .await?;
        row.int(0)
    }

    /// Adds an account; false when the username is taken.
    pub async fn insert_user(&self, u: &UserRow) -> Result<bool, StoreError> {
        let q = Query::dynamic(format!(
            "INSERT INTO auth_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
        ))
        .text(&u.username)
        .text(&u.password_hash)
        .text(&u.role);
        let q = opt_param(q, u.fhir_user.as_deref())
            .int(i64::from(u.disabled))
            .int(u.created);
        Ok(self.write(&q).await? == 1)
    }

    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let q = Query::dynamic(format!(
            "SELECT {USER_COLUMNS} FROM auth_users WHERE username = $1"
        ))
        .text(username);
        self.fetch_opt_row(&q).await?.map(|r| user(&r)).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let q = Query::dynamic(format!(
            "SELECT {USER_COLUMNS} FROM auth_users ORDER BY username"
        ));
        self.fetch_rows(&q).await?.iter().map(user).collect()
    }

    /// Returns false when there is no such user.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let q = Query::new("UPDATE auth_users SET disabled = $1 WHERE username = $2")
            .int(i64::from(disabled))
            .text(username);
        let found = self.write(&q).await? == 1;
        if found {
            self.bump_revocations().await?;
        }
        Ok(found)
    }

    pub async fn set_user_password(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let q = Query::new("UPDATE auth_users SET password_hash = $1 WHERE username = $2")
            .text(hash)
            .text(username);
        Ok(self.write(&q).await? == 1)
    }

    // --- clients ---

    /// Registers a client; false when the id is taken.
    pub async fn insert_client(&self, c: &ClientRow) -> Result<bool, StoreError> {
        let q = Query::dynamic(format!(
            "INSERT INTO auth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        ))
        .text(&c.client_id)
        .text(&c.name)
        .text(&c.kind);
        let q = opt_param(q, c.secret_hash.as_deref())
            .text(&c.redirect_uris)
            .text(&c.scope);
        let q = opt_param(q, c.jwks.as_deref());
        let q = opt_param(q, c.jwks_uri.as_deref())
            .int(i64::from(c.revoked))
            .int(c.created);
        Ok(self.write(&q).await? == 1)
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let q = Query::dynamic(format!(
            "SELECT {CLIENT_COLUMNS} FROM auth_clients WHERE client_id = $1"
        ))
        .text(client_id);
        self.fetch_opt_row(&q)
            .await?
            .map(|r| client(&r))
            .transpose()
    }

    pub async fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        let q = Query::dynamic(format!(
            "SELECT {CLIENT_COLUMNS} FROM auth_clients ORDER BY client_id"
        ));
        self.fetch_rows(&q).await?.iter().map(client).collect()
    }

    /// Revokes a client and every grant it holds; false when unknown.
    pub async fn revoke_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let q =
            Query::new("UPDATE auth_clients SET revoked = 1 WHERE client_id = $1").text(client_id);
        let found = self.write(&q).await? == 1;
        let q =
            Query::new("UPDATE auth_grants SET revoked = 1 WHERE client_id = $1").text(client_id);
        self.write(&q).await?;
        if found {
            self.bump_revocations().await?;
        }
        Ok(found)
    }

    // --- revocations every node watches ---

    /// Tells every node to read the revoked clients and disabled accounts
    /// again (after the change itself is written).
    pub async fn bump_revocations(&self) -> Result<(), StoreError> {
        let q = Query::new("UPDATE auth_revocations SET generation = generation + 1 WHERE id = 1");
        self.write(&q).await?;
        Ok(())
    }

    /// The revocation counter.
    pub async fn revocation_generation(&self) -> Result<i64, StoreError> {
        let q = Query::new("SELECT generation FROM auth_revocations WHERE id = 1");
        Ok(match self.fetch_opt_row(&q).await? {
            Some(r) => r.int(0)?,
            None => 0,
        })
    }

    /// Revoked clients' ids and disabled accounts' names.
    pub async fn blocked_principals(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let clients = self
            .fetch_rows(&Query::new(
                "SELECT client_id FROM auth_clients WHERE revoked = 1",
            ))
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_, _>>()?;
        let users = self
            .fetch_rows(&Query::new(
                "SELECT username FROM auth_users WHERE disabled = 1",
            ))
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_, _>>()?;
        Ok((clients, users))
    }

    // --- signing keys ---

    pub async fn insert_signing_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        let q = Query::new(
            "INSERT INTO auth_signing_keys (kid, alg, private_key, public_jwk, created, retired) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .text(&k.kid)
        .text(&k.alg)
        .bytes(
            self.codec
                .encode(&k.private_key, &Aad::SigningKey { kid: &k.kid }),
        )
        .text(&k.public_jwk)
        .int(k.created);
        self.write(&q).await?;
        Ok(())
    }

    /// Marks every key but `keep` as retired (no longer signing) at `now`.
    pub async fn retire_signing_keys(&self, keep: &str, now: i64) -> Result<(), StoreError> {
        let q = Query::new(
            "UPDATE auth_signing_keys SET retired = $1 WHERE kid <> $2 AND retired IS NULL",
        )
        .int(now)
        .text(keep);
        self.write(&q).await?;
        Ok(())
    }

    /// Drops keys retired before `before` (no token they signed is valid).
    pub async fn delete_signing_keys_retired_before(&self, before: i64) -> Result<(), StoreError> {
        let q =
            Query::new("DELETE FROM auth_signing_keys WHERE retired IS NOT NULL AND retired < $1")
                .int(before);
        self.write(&q).await?;
        Ok(())
    }

    /// Every key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let q = Query::new(
            "SELECT kid, alg, private_key, public_jwk, created, retired FROM auth_signing_keys ORDER BY created DESC, kid",
        );
        self.fetch_rows(&q)
            .await?
            .iter()
            .map(|r| {
                let kid = r.text(0)?;
                let private_key =
                    open_private_key(&self.codec, &kid, r.opt_bytes(2)?.unwrap_or_default())?;
                Ok(KeyRow {
                    kid,
                    alg: r.text(1)?,
                    private_key,
                    public_jwk: r.text(3)?,
                    created: r.int(4)?,
                    retired: if r.is_null(5)? { None } else { Some(r.int(5)?) },
                })
            })
            .collect()
    }

    // --- grants: codes, refresh tokens, launch contexts ---

    pub async fn insert_grant(&self, g: &GrantRow, now: i64) -> Result<(), StoreError> {
        let q = Query::dynamic(format!(
            "INSERT INTO auth_grants ({GRANT_COLUMNS}, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .text(&g.token_hash)
        .text(&g.kind);
        let q = opt_param(q, g.client_id.as_deref());
        let q = opt_param(q, g.username.as_deref())
            .text(&g.scope)
            .text(&g.context)
            .text(&g.family)
            .int(g.expires)
            .int(i64::from(g.used))
            .int(i64::from(g.revoked))
            .int(now);
        self.write(&q).await?;
        Ok(())
    }

    pub async fn grant(
        &self,
        token_hash: &str,
        kind: &str,
    ) -> Result<Option<GrantRow>, StoreError> {
        let q = Query::dynamic(format!(
            "SELECT {GRANT_COLUMNS} FROM auth_grants WHERE token_hash = $1 AND kind = $2"
        ))
        .text(token_hash)
        .text(kind);
        // Read through the writer: a grant written a moment ago must be seen.
        self.write_fetch_opt(&q)
            .await?
            .map(|r| grant(&r))
            .transpose()
    }

    /// Replaces a grant's context (a pending authorization moving on).
    pub async fn update_grant_context(
        &self,
        token_hash: &str,
        username: Option<&str>,
        context: &str,
    ) -> Result<(), StoreError> {
        let q =
            Query::new("UPDATE auth_grants SET username = $1, context = $2 WHERE token_hash = $3");
        let q = opt_param(q, username).text(context).text(token_hash);
        self.write(&q).await?;
        Ok(())
    }

    /// Marks a grant used; false when it already was (a second use of a
    /// one-time code or refresh token).
    pub async fn use_grant(&self, token_hash: &str) -> Result<bool, StoreError> {
        let q = Query::new("UPDATE auth_grants SET used = 1 WHERE token_hash = $1 AND used = 0")
            .text(token_hash);
        Ok(self.write(&q).await? == 1)
    }

    /// Revokes every grant of a family (a refresh token chain, or the codes
    /// and tokens issued from one authorization).
    pub async fn revoke_grant_family(&self, family: &str) -> Result<(), StoreError> {
        let q = Query::new("UPDATE auth_grants SET revoked = 1 WHERE family = $1").text(family);
        self.write(&q).await?;
        Ok(())
    }

    /// Removes grants that expired before `now`.
    pub async fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM auth_grants WHERE expires < $1",
            "DELETE FROM auth_assertions WHERE expires < $1",
            "DELETE FROM auth_revoked_tokens WHERE expires < $1",
        ] {
            self.write(&Query::new(sql).int(now)).await?;
        }
        Ok(())
    }

    // --- client assertions, revoked access tokens ---

    /// Records an assertion id; false when the client used it before.
    pub async fn record_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires: i64,
    ) -> Result<bool, StoreError> {
        let q = Query::new(
            "INSERT INTO auth_assertions (client_id, jti, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .text(client_id)
        .text(jti)
        .int(expires);
        Ok(self.write(&q).await? == 1)
    }

    pub async fn revoke_access_token(&self, jti: &str, expires: i64) -> Result<(), StoreError> {
        let q = Query::new(
            "INSERT INTO auth_revoked_tokens (jti, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .text(jti)
        .int(expires);
        self.write(&q).await?;
        Ok(())
    }

    /// Ids of revoked access tokens not yet expired at `now`.
    pub async fn revoked_access_tokens(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let q =
            Query::new("SELECT jti, expires FROM auth_revoked_tokens WHERE expires >= $1").int(now);
        self.fetch_rows(&q)
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?)))
            .collect()
    }

    // --- consents ---

    pub async fn consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let q =
            Query::new("SELECT scope FROM auth_consents WHERE username = $1 AND client_id = $2")
                .text(username)
                .text(client_id);
        self.fetch_opt_row(&q).await?.map(|r| r.text(0)).transpose()
    }

    pub async fn save_consent(
        &self,
        username: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let q = Query::new(
            "INSERT INTO auth_consents (username, client_id, scope, created) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username, client_id) DO UPDATE SET scope = excluded.scope, created = excluded.created",
        )
        .text(username)
        .text(client_id)
        .text(scope)
        .int(now);
        self.write(&q).await?;
        Ok(())
    }

    /// The consents of an account, with each client's name, newest first:
    /// (client id, client name, scope, created).
    pub async fn consents_of(
        &self,
        username: &str,
    ) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let q = Query::new(
            "SELECT c.client_id, COALESCE(k.name, c.client_id), c.scope, c.created \
             FROM auth_consents c LEFT JOIN auth_clients k ON k.client_id = c.client_id \
             WHERE c.username = $1 ORDER BY c.created DESC, c.client_id",
        )
        .text(username);
        self.fetch_rows(&q)
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.int(3)?)))
            .collect()
    }

    /// Revokes the codes and refresh tokens an account's authorizations
    /// gave a client.
    pub async fn revoke_user_grants(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<u64, StoreError> {
        let q = Query::new(
            "UPDATE auth_grants SET revoked = 1 WHERE username = $1 AND client_id = $2 \
             AND kind IN ('code', 'refresh') AND revoked = 0",
        )
        .text(username)
        .text(client_id);
        self.write(&q).await
    }

    pub async fn delete_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let q = Query::new("DELETE FROM auth_consents WHERE username = $1 AND client_id = $2")
            .text(username)
            .text(client_id);
        Ok(self.write(&q).await? == 1)
    }

    // --- two-step sign-in ---

    /// The account's TOTP enrolment, confirmed or not.
    pub async fn mfa(&self, username: &str) -> Result<Option<MfaRow>, StoreError> {
        let q = Query::new("SELECT secret, enabled, last_step FROM auth_mfa WHERE username = $1")
            .text(username);
        // Through the writer: a code accepted a moment ago must be seen.
        let Some(row) = self.write_fetch_opt(&q).await? else {
            return Ok(None);
        };
        let stored = row.opt_bytes(0)?.unwrap_or_default();
        let secret = self
            .codec
            .decode(stored, &Aad::MfaSecret { username })?
            .to_vec();
        Ok(Some(MfaRow {
            secret,
            enabled: row.int(1)? != 0,
            last_step: row.int(2)?,
        }))
    }

    /// Starts (or restarts) an enrolment: a new unconfirmed secret and new
    /// backup codes replace any earlier ones. False when two-step sign-in
    /// is already on for the account (only `charaka user mfa-reset` clears
    /// it).
    pub async fn begin_mfa(
        &self,
        username: &str,
        secret: &[u8],
        code_hashes: &[String],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let q = Query::new("SELECT enabled FROM auth_mfa WHERE username = $1").text(username);
        if let Some(row) = tx.tx.conn().fetch_optional(&q).await? {
            if row.int(0)? != 0 {
                return Ok(false);
            }
        }
        let sealed = self.codec.encode(secret, &Aad::MfaSecret { username });
        for q in [
            Query::new("DELETE FROM auth_mfa WHERE username = $1").text(username),
            Query::new("DELETE FROM auth_backup_codes WHERE username = $1").text(username),
            Query::new(
                "INSERT INTO auth_mfa (username, secret, enabled, last_step, created) VALUES ($1, $2, 0, 0, $3)",
            )
            .text(username)
            .bytes(sealed)
            .int(now),
        ] {
            tx.tx.conn().execute(&q).await?;
        }
        for hash in code_hashes {
            let q = Query::new(
                "INSERT INTO auth_backup_codes (username, code_hash, used) VALUES ($1, $2, 0)",
            )
            .text(username)
            .text(hash);
            tx.tx.conn().execute(&q).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a TOTP time step as used; false when it (or a later one)
    /// was used before (a replayed code). `enable` turns two-step sign-in
    /// on (the confirming first code).
    pub async fn accept_mfa_step(
        &self,
        username: &str,
        step: i64,
        enable: bool,
    ) -> Result<bool, StoreError> {
        let sql = if enable {
            "UPDATE auth_mfa SET last_step = $1, enabled = 1 WHERE username = $2 AND last_step < $1"
        } else {
            "UPDATE auth_mfa SET last_step = $1 WHERE username = $2 AND last_step < $1 AND enabled = 1"
        };
        let q = Query::new(sql).int(step).text(username);
        Ok(self.write(&q).await? == 1)
    }

    /// Uses a backup code of an account with two-step sign-in on; false
    /// when unknown or used before.
    pub async fn use_backup_code(
        &self,
        username: &str,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        let q = Query::new(
            "UPDATE auth_backup_codes SET used = 1 WHERE username = $1 AND code_hash = $2 AND used = 0 \
             AND EXISTS (SELECT 1 FROM auth_mfa m WHERE m.username = $1 AND m.enabled = 1)",
        )
        .text(username)
        .text(code_hash);
        Ok(self.write(&q).await? == 1)
    }

    /// Backup codes not yet used.
    pub async fn backup_codes_left(&self, username: &str) -> Result<i64, StoreError> {
        let q =
            Query::new("SELECT COUNT(*) FROM auth_backup_codes WHERE username = $1 AND used = 0")
                .text(username);
        self.fetch_one_row(&q).await?.int(0)
    }

    /// Removes an account's two-step sign-in (administrators, when a user
    /// lost their device and codes); false when it had none.
    pub async fn delete_mfa(&self, username: &str) -> Result<bool, StoreError> {
        let found = self
            .write(&Query::new("DELETE FROM auth_mfa WHERE username = $1").text(username))
            .await?
            == 1;
        self.write(&Query::new("DELETE FROM auth_backup_codes WHERE username = $1").text(username))
            .await?;
        Ok(found)
    }
}
