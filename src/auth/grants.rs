//! The token endpoint (RFC 6749 §3.2) and its neighbours, introspection
//! (RFC 7662) and revocation (RFC 7009).
//!
//! - `authorization_code`: one use per code (a second use revokes what the
//!   first issued), exact `redirect_uri`, PKCE S256 verifier.
//! - `refresh_token`: rotated on every use; reusing an old one revokes the
//!   whole chain; the scope may narrow, never widen.
//! - `client_credentials`: confidential clients only, `system/` scopes.

use serde_json::{json, Value};

use super::access::Access;
use super::clients::{self, ClientAuth};
use super::scopes::{Context, Scopes};
use super::tokens::AccessClaims;
use super::{now_seconds, secrets, Auth};
use crate::store::auth::{ClientRow, GrantRow};
use crate::store::{Store, StoreError};

/// An OAuth error response (`{"error": ..., "error_description": ...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    pub fn invalid_request(why: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", why)
    }

    pub fn invalid_client(why: &str) -> Self {
        Self::new(401, "invalid_client", why)
    }

    pub fn invalid_grant(why: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", why)
    }

    pub fn invalid_scope(why: impl Into<String>) -> Self {
        Self::new(400, "invalid_scope", why)
    }

    pub fn server(err: StoreError) -> Self {
        tracing::error!(error = %err, "authorization store error");
        Self::new(
            500,
            "server_error",
            "the authorization server could not complete the request",
        )
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

type OAuthResult<T> = Result<T, OAuthError>;

/// The context an authorization code or refresh token carries.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GrantContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Whether the app should show a patient banner (EHR launches: false).
    #[serde(default)]
    pub need_patient_banner: bool,
}

/// Authorization codes live this long (seconds).
pub const CODE_SECONDS: i64 = 60;

impl Auth {
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.auth_base)
    }

    /// Handles a token request (form-encoded body).
    pub async fn token(
        &self,
        store: &Store,
        form: &[(String, String)],
        authorization: Option<&str>,
    ) -> OAuthResult<Value> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let grant_type = get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
        let (client, how) =
            clients::authenticate(store, form, authorization, &self.token_endpoint()).await?;
        match grant_type {
            "client_credentials" => {
                self.client_credentials(store, &client, how, get("scope"))
                    .await
            }
            "authorization_code" => {
                self.authorization_code(
                    store,
                    &client,
                    get("code"),
                    get("redirect_uri"),
                    get("code_verifier"),
                )
                .await
            }
            "refresh_token" => {
                self.refresh(store, &client, get("refresh_token"), get("scope"))
                    .await
            }
            other => Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!("grant type `{other}` is not supported"),
            )),
        }
    }

    async fn client_credentials(
        &self,
        _store: &Store,
        client: &ClientRow,
        how: ClientAuth,
        scope: Option<&str>,
    ) -> OAuthResult<Value> {
        if how == ClientAuth::None {
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                "client_credentials needs a confidential client",
            ));
        }
        let asked = parse_scope(scope.unwrap_or(&client.scope))?;
        if let Some(r) = asked
            .resources
            .iter()
            .find(|r| r.context != Context::System)
        {
            return Err(OAuthError::invalid_scope(format!(
                "client_credentials grants system/ scopes only, not `{r}`"
            )));
        }
        let granted = asked.restricted_to(&parse_scope(&client.scope)?);
        if granted.resources.is_empty() {
            return Err(OAuthError::invalid_scope(format!(
                "none of the requested scopes is allowed for this client (allowed: {})",
                client.scope
            )));
        }
        let claims = self.access_claims(
            &client.client_id,
            &client.client_id,
            &granted,
            &GrantContext::default(),
        );
        Ok(self.token_response(&claims, &granted, None, None, &GrantContext::default()))
    }

    async fn authorization_code(
        &self,
        store: &Store,
        client: &ClientRow,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> OAuthResult<Value> {
        let code = code.ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let grant = find_grant(store, code, "code", "unknown authorization code").await?;
        let ctx = self.live_grant(store, &grant, client).await?;
        if ctx.redirect_uri.as_deref() != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let verifier = verifier.ok_or_else(|| {
            OAuthError::invalid_request("code_verifier is missing (PKCE is required)")
        })?;
        let challenge = ctx.code_challenge.as_deref().unwrap_or_default();
        if !secrets::pkce_matches(verifier, challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let scopes = parse_scope(&grant.scope)?;
        let username = grant.username.clone().unwrap_or_default();
        self.issue_for_user(
            store,
            client,
            &username,
            &scopes,
            &scopes,
            &ctx,
            &grant.family,
        )
        .await
    }

    async fn refresh(
        &self,
        store: &Store,
        client: &ClientRow,
        token: Option<&str>,
        scope: Option<&str>,
    ) -> OAuthResult<Value> {
        let token = token.ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let grant = find_grant(store, token, "refresh", "unknown refresh token").await?;
        // The scope is checked before the token is spent, so a refused
        // widening leaves the refresh token usable.
        let granted = parse_scope(&grant.scope)?;
        let scopes = match scope {
            Some(s) => {
                let asked = parse_scope(s)?;
                if !asked.within(&granted) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh may narrow the scope, not widen it",
                    ));
                }
                asked
            }
            None => granted.clone(),
        };
        let ctx = self.live_grant(store, &grant, client).await?;
        let username = grant.username.clone().unwrap_or_default();
        // RFC 6749 §6: the new refresh token keeps the scope of the old one.
        self.issue_for_user(
            store,
            client,
            &username,
            &scopes,
            &granted,
            &ctx,
            &grant.family,
        )
        .await
    }

    /// Checks a code or refresh token is unused, unrevoked, unexpired and
    /// the client's; marks it used. A second use revokes its family.
    async fn live_grant(
        &self,
        store: &Store,
        grant: &GrantRow,
        client: &ClientRow,
    ) -> OAuthResult<GrantContext> {
        if grant.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(OAuthError::invalid_grant(
                "the grant was issued to another client",
            ));
        }
        if grant.revoked {
            return Err(OAuthError::invalid_grant("the grant has been revoked"));
        }
        if grant.expires < now_seconds() {
            return Err(OAuthError::invalid_grant("the grant has expired"));
        }
        if grant.used
            || !store
                .use_grant(&grant.token_hash)
                .await
                .map_err(OAuthError::server)?
        {
            // RFC 6749 §4.1.2 / OAuth 2 security BCP: a replayed code or
            // refresh token may be stolen; revoke everything it led to.
            store
                .revoke_grant_family(&grant.family)
                .await
                .map_err(OAuthError::server)?;
            return Err(OAuthError::invalid_grant(
                "the grant was used before; every token issued from it is now revoked",
            ));
        }
        serde_json::from_str(&grant.context)
            .map_err(|_| OAuthError::invalid_grant("the grant is damaged"))
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_for_user(
        &self,
        store: &Store,
        client: &ClientRow,
        username: &str,
        scopes: &Scopes,
        refresh_scopes: &Scopes,
        ctx: &GrantContext,
        family: &str,
    ) -> OAuthResult<Value> {
        let user = store
            .user(username)
            .await
            .map_err(OAuthError::server)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| OAuthError::invalid_grant("the user's account is disabled"))?;
        let claims = self.access_claims(username, &client.client_id, scopes, ctx);
        let refresh = if refresh_scopes.offline_access || refresh_scopes.online_access {
            let token = secrets::random_token();
            let row = GrantRow {
                token_hash: secrets::token_hash(&token),
                kind: "refresh".into(),
                client_id: Some(client.client_id.clone()),
                username: Some(user.username.clone()),
                scope: refresh_scopes.to_scope_string(),
                context: serde_json::to_string(ctx).expect("context serialises"),
                family: family.to_string(),
                expires: now_seconds() + self.refresh_token_seconds,
                used: false,
                revoked: false,
            };
            store
                .insert_grant(&row, crate::fhir::datetime::now_micros())
                .await
                .map_err(OAuthError::server)?;
            Some(token)
        } else {
            None
        };
        let id_token = (scopes.openid && scopes.fhir_user).then(|| {
            self.sign(&json!({
                "iss": self.issuer,
                "sub": username,
                "aud": client.client_id,
                "iat": claims.iat,
                "exp": claims.exp,
                "fhirUser": ctx.fhir_user.as_deref().map(|u| format!("{}/{u}", self.issuer)),
                "nonce": ctx.nonce,
            }))
        });
        Ok(self.token_response(&claims, scopes, refresh, id_token, ctx))
    }

    fn access_claims(
        &self,
        sub: &str,
        client_id: &str,
        scopes: &Scopes,
        ctx: &GrantContext,
    ) -> AccessClaims {
        let now = now_seconds();
        AccessClaims {
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            sub: sub.to_string(),
            client_id: client_id.to_string(),
            scope: scopes.to_scope_string(),
            iat: now,
            exp: now + self.access_token_seconds,
            jti: secrets::random_token(),
            patient: ctx.patient.clone(),
            encounter: ctx.encounter.clone(),
            fhir_user: ctx.fhir_user.clone(),
            role: ctx.role.clone(),
        }
    }

    fn token_response(
        &self,
        claims: &AccessClaims,
        scopes: &Scopes,
        refresh: Option<String>,
        id_token: Option<String>,
        ctx: &GrantContext,
    ) -> Value {
        let mut body = json!({
            "access_token": self.sign(claims),
            "token_type": "Bearer",
            "expires_in": self.access_token_seconds,
            "scope": scopes.to_scope_string(),
        });
        let put = |body: &mut Value, k: &str, v: Value| {
            body.as_object_mut().expect("object").insert(k.into(), v);
        };
        if let Some(r) = refresh {
            put(&mut body, "refresh_token", json!(r));
        }
        if let Some(t) = id_token {
            put(&mut body, "id_token", json!(t));
        }
        if let Some(p) = &ctx.patient {
            put(&mut body, "patient", json!(p));
            put(
                &mut body,
                "need_patient_banner",
                json!(ctx.need_patient_banner),
            );
        }
        if let Some(e) = &ctx.encounter {
            put(&mut body, "encounter", json!(e));
        }
        if let Some(u) = &ctx.fhir_user {
            if scopes.fhir_user {
                put(&mut body, "fhirUser", json!(format!("{}/{u}", self.issuer)));
            }
        }
        if ctx.patient.is_some() || ctx.encounter.is_some() {
            put(
                &mut body,
                "smart_style_url",
                json!(format!("{}/smart-style.json", self.auth_base)),
            );
        }
        body
    }

    /// Token introspection: `active` and the token's claims. Needs an
    /// authenticated client (any registered confidential client) or an
    /// administrator's bearer token.
    pub async fn introspect(&self, store: &Store, token: &str) -> Value {
        if let Ok(claims) = self.verify(token) {
            let mut v = serde_json::to_value(&claims).expect("claims serialise");
            v["active"] = json!(true);
            v["token_type"] = json!("Bearer");
            return v;
        }
        // A refresh token?
        if let Ok(Some(g)) = store.grant(&secrets::token_hash(token), "refresh").await {
            if !g.used && !g.revoked && g.expires >= now_seconds() {
                return json!({
                    "active": true, "token_type": "refresh_token", "scope": g.scope,
                    "client_id": g.client_id, "sub": g.username, "exp": g.expires,
                });
            }
        }
        json!({ "active": false })
    }

    /// Revocation: an access token or a refresh token (with its chain).
    /// Unknown tokens are not an error (RFC 7009 §2.2).
    pub async fn revoke(&self, store: &Store, client: &ClientRow, token: &str) -> OAuthResult<()> {
        if let Ok(claims) = self.verify(token) {
            if claims.client_id == client.client_id {
                self.revoke_access(store, &claims)
                    .await
                    .map_err(OAuthError::server)?;
            }
            return Ok(());
        }
        if let Some(g) = store
            .grant(&secrets::token_hash(token), "refresh")
            .await
            .map_err(OAuthError::server)?
        {
            if g.client_id.as_deref() == Some(client.client_id.as_str()) {
                store
                    .revoke_grant_family(&g.family)
                    .await
                    .map_err(OAuthError::server)?;
            }
        }
        Ok(())
    }

    /// Whether a bearer caller may introspect other clients' tokens.
    pub fn may_introspect(access: &Access) -> bool {
        access.is_administrator()
    }
}

/// A grant by the token the client holds; `invalid_grant` when unknown.
async fn find_grant(
    store: &Store,
    token: &str,
    kind: &str,
    unknown: &str,
) -> OAuthResult<GrantRow> {
    store
        .grant(&secrets::token_hash(token), kind)
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(|| OAuthError::invalid_grant(unknown))
}

fn parse_scope(s: &str) -> OAuthResult<Scopes> {
    Scopes::parse(s).map_err(|e| OAuthError::invalid_scope(e.to_string()))
}
