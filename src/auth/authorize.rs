//! The authorization endpoint (RFC 6749 §4.1, SMART App Launch): checks
//! the request, signs the user in, asks for consent (and a patient when the
//! app needs one), then sends the app a one-time code.
//!
//! The request waits between pages as a `pending` grant (10 minutes) known
//! by a random id in the forms; a CSRF token travels both in a cookie and in
//! each form and must match. Errors that cannot be trusted to go back to
//! the app (unknown client, redirect URI not registered) are shown to the
//! user; the others go back to the app as `error=...&state=...`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::grants::GrantContext;
use super::pages::{self, PatientChoice};
use super::scopes::Scopes;
use super::{now_seconds, secrets, Auth};
use crate::service::Fhir;
use crate::store::auth::{ClientRow, GrantRow};

/// What the endpoint answers.
pub enum Outcome {
    /// An HTML page; `csrf` is set as a cookie when given. `app_origin`:
    /// the origin of the app's redirect URI, where the page's form may end
    /// up (browsers apply the page's CSP `form-action` to the redirect
    /// after a form is sent).
    Page {
        status: u16,
        html: String,
        csrf: Option<String>,
        app_origin: Option<String>,
    },
    /// 303 to the app's redirect URI.
    Redirect(String),
    /// The page asking for the second factor (after a right password, or
    /// again after a wrong code).
    SecondFactor {
        status: u16,
        html: String,
        app_origin: Option<String>,
    },
}

/// A request waiting between pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    client_name: String,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    code_challenge: String,
    nonce: Option<String>,
    /// From an EHR launch.
    launch_patient: Option<String>,
    launch_encounter: Option<String>,
    launch_hash: Option<String>,
    csrf_hash: String,
    username: Option<String>,
    /// The account whose password was right, while its second factor is
    /// asked (`username` is set only once both passed).
    #[serde(default)]
    mfa_user: Option<String>,
}

const PENDING_SECONDS: i64 = 600;

fn page(status: u16, html: String) -> Outcome {
    Outcome::Page {
        status,
        html,
        csrf: None,
        app_origin: None,
    }
}

/// `redirect_uri` with `params` added to its query.
fn redirect_with(uri: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", q.finish())
}

fn error_redirect(uri: &str, state: Option<&str>, error: &str, description: &str) -> Outcome {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    Outcome::Redirect(redirect_with(uri, &params))
}

impl Auth {
    /// The first request of a flow (`GET` or `POST /auth/authorize`).
    pub async fn authorize_start(&self, fhir: &Fhir, params: &[(String, String)]) -> Outcome {
        let store = &fhir.store;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(client_id) = get("client_id") else {
            return page(400, pages::error("the request names no app (client_id)"));
        };
        let client: ClientRow = match store.client(client_id).await {
            Ok(Some(c)) if !c.revoked => c,
            Ok(_) => {
                return page(
                    400,
                    pages::error("the app is not registered on this server"),
                )
            }
            Err(_) => {
                return page(
                    500,
                    pages::error("the server could not read its app registry"),
                )
            }
        };
        let registered: Vec<String> =
            serde_json::from_str(&client.redirect_uris).unwrap_or_default();
        let redirect_uri = match get("redirect_uri") {
            Some(u) if registered.iter().any(|r| r == u) => u.to_string(),
            Some(_) => {
                return page(
                    400,
                    pages::error("the app's redirect URI is not the one it registered"),
                )
            }
            None if registered.len() == 1 => registered[0].clone(),
            None => return page(400, pages::error("the request names no redirect URI")),
        };
        let state = get("state");
        let fail = |error: &str, description: &str| {
            error_redirect(&redirect_uri, state, error, description)
        };
        if get("response_type") != Some("code") {
            return fail("unsupported_response_type", "response_type must be code");
        }
        match (get("code_challenge"), get("code_challenge_method")) {
            (Some(c), Some("S256")) if c.len() == 43 => {}
            (_, Some(m)) if m != "S256" => {
                return fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                )
            }
            _ => {
                return fail(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method=S256",
                )
            }
        }
        let aud = get("aud").map(|a| a.trim_end_matches('/'));
        if aud != Some(self.issuer.as_str()) {
            return fail("invalid_request", "aud must be this server's FHIR base URL");
        }
        let asked = match Scopes::parse(get("scope").unwrap_or_default()) {
            Ok(s) => s,
            Err(e) => return fail("invalid_scope", &e.to_string()),
        };
        let allowed = Scopes::parse(&client.scope).unwrap_or_default();
        let granted = asked.restricted_to(&allowed);
        if granted.raw.is_empty() {
            return fail(
                "invalid_scope",
                "none of the requested scopes is allowed for this app",
            );
        }
        if granted.has_context(super::scopes::Context::System) {
            return fail(
                "invalid_scope",
                "system/ scopes are for client_credentials, not user sign-in",
            );
        }
        let (mut launch_patient, mut launch_encounter, mut launch_hash) = (None, None, None);
        if let Some(launch) = get("launch") {
            let hash = secrets::token_hash(launch);
            match store.grant(&hash, "launch").await {
                Ok(Some(g)) if !g.used && !g.revoked && g.expires >= now_seconds() => {
                    let ctx: GrantContext = serde_json::from_str(&g.context).unwrap_or_default();
                    launch_patient = ctx.patient;
                    launch_encounter = ctx.encounter;
                    launch_hash = Some(hash);
                }
                _ => {
                    return fail(
                        "invalid_request",
                        "the launch context is unknown or has expired",
                    )
                }
            }
        } else if granted.launch {
            return fail(
                "invalid_request",
                "the launch scope needs a launch parameter (EHR launch)",
            );
        }
        let request = secrets::random_token();
        let csrf = secrets::random_token();
        let pending = Pending {
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            redirect_uri,
            state: state.map(str::to_string),
            scope: granted.to_scope_string(),
            code_challenge: get("code_challenge").unwrap_or_default().to_string(),
            nonce: get("nonce").map(str::to_string),
            launch_patient,
            launch_encounter,
            launch_hash,
            csrf_hash: secrets::token_hash(&csrf),
            username: None,
            mfa_user: None,
        };
        if self.save_pending(store, &request, &pending).await.is_err() {
            return page(500, pages::error("the server could not start the sign-in"));
        }
        Outcome::Page {
            status: 200,
            html: pages::login(&client.name, &request, &csrf, None),
            csrf: Some(csrf),
            app_origin: Some(super::origin_of(&pending.redirect_uri)),
        }
    }

    async fn save_pending(
        &self,
        store: &crate::store::Store,
        request: &str,
        p: &Pending,
    ) -> Result<(), crate::store::StoreError> {
        let row = GrantRow {
            token_hash: secrets::token_hash(request),
            kind: "pending".into(),
            client_id: Some(p.client_id.clone()),
            username: p.username.clone(),
            scope: p.scope.clone(),
            context: serde_json::to_string(p).expect("pending serialises"),
            family: secrets::random_token(),
            expires: now_seconds() + PENDING_SECONDS,
            used: false,
            revoked: false,
        };
        store
            .insert_grant(&row, crate::fhir::datetime::now_micros())
            .await
    }

    /// A form posted from one of the pages. `cookie_csrf` is the CSRF
    /// cookie; `peer` the caller's address (for sign-in limits).
    pub async fn authorize_submit(
        &self,
        fhir: &Fhir,
        form: &[(String, String)],
        cookie_csrf: Option<&str>,
        peer: &str,
    ) -> Outcome {
        let store = &fhir.store;
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(request) = get("request") else {
            // An authorize-post first request.
            return self.authorize_start(fhir, form).await;
        };
        let hash = secrets::token_hash(request);
        let grant = match store.grant(&hash, "pending").await {
            Ok(Some(g)) if !g.used && !g.revoked && g.expires >= now_seconds() => g,
            _ => {
                return page(
                    400,
                    pages::error("this sign-in page has expired; start again from the app"),
                )
            }
        };
        let Ok(mut pending) = serde_json::from_str::<Pending>(&grant.context) else {
            return page(400, pages::error("this sign-in request is damaged"));
        };
        let csrf = get("csrf").unwrap_or_default();
        let csrf_ok = cookie_csrf.is_some_and(|c| secrets::constant_time_eq(c, csrf))
            && secrets::constant_time_eq(&secrets::token_hash(csrf), &pending.csrf_hash);
        if !csrf_ok {
            return page(
                403,
                pages::error("the form did not come from this sign-in page (CSRF check failed)"),
            );
        }
        let scopes = Scopes::parse(&pending.scope).unwrap_or_default();
        match get("step").unwrap_or_default() {
            "login" => {
                if pending.username.is_some() || pending.mfa_user.is_some() {
                    return page(
                        400,
                        pages::error("this sign-in has already passed this step"),
                    );
                }
                let username = get("username").unwrap_or_default().trim().to_string();
                let password = get("password").unwrap_or_default();
                let now = now_seconds();
                let user_key = format!("user:{username}");
                let ip_key = format!("ip:{peer}");
                if let Some(wait) = self.locked_out(&user_key, &ip_key, now) {
                    return Outcome::Page {
                        status: 429,
                        html: pages::login(
                            &pending.client_name,
                            request,
                            csrf,
                            Some(&super::account::wait_message(wait)),
                        ),
                        csrf: None,
                        app_origin: Some(super::origin_of(&pending.redirect_uri)),
                    };
                }
                let user = store.user(&username).await.ok().flatten();
                let ok = user.as_ref().is_some_and(|u| {
                    !u.disabled && secrets::verify_password(password, &u.password_hash)
                });
                if !ok {
                    self.count_failure(&user_key, &ip_key, &username, now);
                    return Outcome::Page {
                        status: 401,
                        html: pages::login(
                            &pending.client_name,
                            request,
                            csrf,
                            Some("Wrong username or password."),
                        ),
                        csrf: None,
                        app_origin: Some(super::origin_of(&pending.redirect_uri)),
                    };
                }
                let user = user.expect("checked");
                match super::mfa::enabled(store, &user.username).await {
                    Ok(true) => {
                        // The failures of the code count on from here: a
                        // right password does not reset them.
                        pending.mfa_user = Some(user.username.clone());
                        if store
                            .update_grant_context(
                                &hash,
                                None,
                                &serde_json::to_string(&pending).expect("serialises"),
                            )
                            .await
                            .is_err()
                        {
                            return page(
                                500,
                                pages::error("the server could not continue the sign-in"),
                            );
                        }
                        Outcome::SecondFactor {
                            status: 200,
                            app_origin: Some(super::origin_of(&pending.redirect_uri)),
                            html: second_factor_page(request, csrf, None),
                        }
                    }
                    Ok(false) => {
                        self.login_limiter.succeed(&user_key);
                        self.signed_in(fhir, &hash, pending, &user.username, &scopes, request, csrf)
                            .await
                    }
                    Err(_) => page(
                        500,
                        pages::error("the server could not continue the sign-in"),
                    ),
                }
            }
            "mfa" => {
                let Some(username) = pending
                    .mfa_user
                    .clone()
                    .filter(|_| pending.username.is_none())
                else {
                    return page(400, pages::error("sign in with your password first"));
                };
                let now = now_seconds();
                let user_key = format!("user:{username}");
                let ip_key = format!("ip:{peer}");
                if let Some(wait) = self.locked_out(&user_key, &ip_key, now) {
                    return Outcome::SecondFactor {
                        status: 429,
                        app_origin: Some(super::origin_of(&pending.redirect_uri)),
                        html: second_factor_page(
                            request,
                            csrf,
                            Some(&super::account::wait_message(wait)),
                        ),
                    };
                }
                let code = get("code").unwrap_or_default();
                match super::mfa::verify(store, &username, code, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.count_failure(&user_key, &ip_key, &username, now);
                        return Outcome::SecondFactor {
                            status: 401,
                            app_origin: Some(super::origin_of(&pending.redirect_uri)),
                            html: second_factor_page(
                                request,
                                csrf,
                                Some(super::account::WRONG_CODE),
                            ),
                        };
                    }
                    Err(_) => {
                        return page(
                            500,
                            pages::error("the server could not continue the sign-in"),
                        )
                    }
                }
                self.login_limiter.succeed(&user_key);
                match store.user(&username).await {
                    Ok(Some(u)) if !u.disabled => {}
                    _ => return page(400, pages::error("the account cannot sign in")),
                }
                self.signed_in(fhir, &hash, pending, &username, &scopes, request, csrf)
                    .await
            }
            "search" => {
                let q = get("q").unwrap_or_default();
                self.consent_page(fhir, &pending, &scopes, request, csrf, q, None)
                    .await
            }
            "deny" => {
                let _ = store.use_grant(&hash).await;
                error_redirect(
                    &pending.redirect_uri,
                    pending.state.as_deref(),
                    "access_denied",
                    "the user did not allow access",
                )
            }
            "approve" => {
                let Some(username) = pending.username.clone() else {
                    return page(400, pages::error("sign in first"));
                };
                let role = store
                    .user(&username)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.role)
                    .unwrap_or_default();
                let chosen = if self.needs_patient(&pending, &scopes, &role) {
                    match get("patient") {
                        Some(p) if fhir.read("Patient", p).await.is_ok() => Some(p.to_string()),
                        _ => {
                            return self
                                .consent_page(
                                    fhir,
                                    &pending,
                                    &scopes,
                                    request,
                                    csrf,
                                    "",
                                    Some("Choose a patient first."),
                                )
                                .await
                        }
                    }
                } else {
                    None
                };
                let _ = store
                    .save_consent(
                        &username,
                        &pending.client_id,
                        &pending.scope,
                        crate::fhir::datetime::now_micros(),
                    )
                    .await;
                self.issue_code(fhir, &hash, &pending, chosen).await
            }
            _ => page(400, pages::error("unknown step")),
        }
    }

    /// The user passed every sign-in step: the pending request carries
    /// their name from now on; a consent given before for at least these
    /// scopes (and no patient to pick) goes straight back to the app.
    #[allow(clippy::too_many_arguments)]
    async fn signed_in(
        &self,
        fhir: &Fhir,
        hash: &str,
        mut pending: Pending,
        username: &str,
        scopes: &Scopes,
        request: &str,
        csrf: &str,
    ) -> Outcome {
        let store = &fhir.store;
        pending.username = Some(username.to_string());
        if store
            .update_grant_context(
                hash,
                Some(username),
                &serde_json::to_string(&pending).expect("serialises"),
            )
            .await
            .is_err()
        {
            return page(
                500,
                pages::error("the server could not continue the sign-in"),
            );
        }
        let role = match store.user(username).await {
            Ok(Some(u)) => u.role,
            _ => return page(400, pages::error("the account is gone")),
        };
        let remembered = store
            .consent(username, &pending.client_id)
            .await
            .ok()
            .flatten()
            .and_then(|s| Scopes::parse(&s).ok())
            .is_some_and(|saved| scopes.within(&saved));
        if remembered && !self.needs_patient(&pending, scopes, &role) {
            return self.issue_code(fhir, hash, &pending, None).await;
        }
        self.consent_page(fhir, &pending, scopes, request, csrf, "", None)
            .await
    }

    /// Whether the user must pick a patient: the app asked for
    /// `launch/patient` (or patient scopes), no EHR launch gave one, and the
    /// user is not a patient (who gets their own record).
    fn needs_patient(&self, p: &Pending, scopes: &Scopes, role: &str) -> bool {
        let wants = scopes.launch_patient || scopes.has_context(super::scopes::Context::Patient);
        wants && p.launch_patient.is_none() && role != "patient"
    }

    #[allow(clippy::too_many_arguments)]
    async fn consent_page(
        &self,
        fhir: &Fhir,
        p: &Pending,
        scopes: &Scopes,
        request: &str,
        csrf: &str,
        query: &str,
        error: Option<&str>,
    ) -> Outcome {
        let role = match &p.username {
            Some(u) => fhir
                .store
                .user(u)
                .await
                .ok()
                .flatten()
                .map(|u| u.role)
                .unwrap_or_default(),
            None => String::new(),
        };
        let choices = if self.needs_patient(p, scopes, &role) {
            Some(patient_choices(fhir, query).await)
        } else {
            None
        };
        let picker = choices.as_ref().map(|c| (query, c.as_slice()));
        Outcome::Page {
            status: 200,
            html: pages::consent(&p.client_name, scopes, request, csrf, picker, error),
            csrf: None,
            app_origin: Some(super::origin_of(&p.redirect_uri)),
        }
    }

    async fn issue_code(
        &self,
        fhir: &Fhir,
        pending_hash: &str,
        p: &Pending,
        chosen_patient: Option<String>,
    ) -> Outcome {
        let store = &fhir.store;
        if !store.use_grant(pending_hash).await.unwrap_or(false) {
            return page(400, pages::error("this sign-in was already completed"));
        }
        let user = match store.user(p.username.as_deref().unwrap_or_default()).await {
            Ok(Some(u)) => u,
            _ => return page(400, pages::error("the account is gone")),
        };
        let own_patient = (user.role == "patient")
            .then(|| {
                user.fhir_user
                    .as_deref()
                    .and_then(|f| f.strip_prefix("Patient/"))
                    .map(str::to_string)
            })
            .flatten();
        let patient = p.launch_patient.clone().or(chosen_patient).or(own_patient);
        if let Some(h) = &p.launch_hash {
            let _ = store.use_grant(h).await;
        }
        let ctx = GrantContext {
            redirect_uri: Some(p.redirect_uri.clone()),
            code_challenge: Some(p.code_challenge.clone()),
            patient,
            encounter: p.launch_encounter.clone(),
            fhir_user: user.fhir_user.clone(),
            role: Some(user.role.clone()),
            nonce: p.nonce.clone(),
            need_patient_banner: p.launch_patient.is_none(),
        };
        let code = secrets::random_token();
        let row = GrantRow {
            token_hash: secrets::token_hash(&code),
            kind: "code".into(),
            client_id: Some(p.client_id.clone()),
            username: Some(user.username.clone()),
            scope: p.scope.clone(),
            context: serde_json::to_string(&ctx).expect("context serialises"),
            family: secrets::random_token(),
            expires: now_seconds() + super::grants::CODE_SECONDS,
            used: false,
            revoked: false,
        };
        if store
            .insert_grant(&row, crate::fhir::datetime::now_micros())
            .await
            .is_err()
        {
            return page(500, pages::error("the server could not issue the code"));
        }
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &p.state {
            params.push(("state", s));
        }
        Outcome::Redirect(redirect_with(&p.redirect_uri, &params))
    }
}

fn second_factor_page(request: &str, csrf: &str, error: Option<&str>) -> String {
    pages::second_factor(
        "authorize",
        &[("step", "mfa"), ("request", request), ("csrf", csrf)],
        error,
    )
}

/// Patients matching a name (or the first ones), for the picker.
async fn patient_choices(fhir: &Fhir, query: &str) -> Vec<PatientChoice> {
    let mut params = vec![
        ("_count".to_string(), "20".to_string()),
        ("_sort".to_string(), "family".to_string()),
    ];
    if !query.trim().is_empty() {
        params.push(("name".to_string(), query.trim().to_string()));
    }
    let scope = crate::service::search::SearchScope::Type("Patient".into());
    let access = super::Access::unrestricted("patient picker");
    let Ok(bundle) = fhir.search(&scope, &params, false, &access).await else {
        return Vec::new();
    };
    let bundle: Value = serde_json::from_slice(&bundle).unwrap_or_default();
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| {
                    let r = &e["resource"];
                    let name = &r["name"][0];
                    let given: Vec<&str> = name["given"]
                        .as_array()
                        .map(|g| g.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let label = format!(
                        "{}, {} — born {}",
                        name["family"].as_str().unwrap_or("(no name)"),
                        given.join(" "),
                        r["birthDate"].as_str().unwrap_or("unknown")
                    );
                    PatientChoice {
                        id: r["id"].as_str().unwrap_or_default().to_string(),
                        label,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
