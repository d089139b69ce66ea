//! The authorization server's HTTP side: discovery documents, JWKS, token,
//! introspection, revocation, client registration, EHR launch contexts;
//! and the bearer-token check in front of the FHIR API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::negotiate::Format;
use super::response::error;
use super::App;
use crate::audit::event::AuthFacts;
use crate::auth::account::{Answer, Cookie, Session};
use crate::auth::accounts::{self, ClientSpec};
use crate::auth::authorize::Outcome;
use crate::auth::grants::{GrantContext, OAuthError};
use crate::auth::{clients, secrets, Access};
use crate::error::FhirError;
use crate::fhir::outcome::IssueType;

type AppState = State<Arc<App>>;

/// Paths of the FHIR API open without a token: the CapabilityStatement and
/// the discovery documents.
fn is_open(path: &str) -> bool {
    let p = path.strip_prefix(super::FHIR_PREFIX).unwrap_or(path);
    matches!(
        p,
        "/metadata" | "/.well-known/smart-configuration" | "/.well-known/openid-configuration"
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3).
fn unauthorized(error_code: Option<&str>, message: &str) -> Response {
    let mut response = error(
        FhirError::new(401, IssueType::Login, message.to_string()),
        Format::Json,
    );
    let challenge = match error_code {
        Some(code) => format!(
            "Bearer realm=\"charaka\", error=\"{code}\", error_description=\"{}\"",
            message.replace('"', "'")
        ),
        None => "Bearer realm=\"charaka\"".to_string(),
    };
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
    );
    response
}

/// Checks the bearer token of every FHIR request and attaches the caller
/// (`Access`) to it. With auth off, every caller is unrestricted.
pub async fn require_token(State(app): AppState, mut request: Request, next: Next) -> Response {
    if !app.auth.enabled {
        let access = Arc::new(Access::unrestricted("anonymous"));
        note_caller(&request, &access);
        request.extensions_mut().insert(access);
        return next.run(request).await;
    }
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(token) = bearer(request.headers()) else {
        return unauthorized(
            None,
            "this server needs an access token (Authorization: Bearer ...)",
        );
    };
    match app.auth.authenticate(&app.fhir.store, token).await {
        Ok(access) => {
            note_caller(&request, &access);
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Err(e) => unauthorized(Some("invalid_token"), &e.to_string()),
    }
}

/// Tells the request's audit record who is calling.
fn note_caller(request: &Request, access: &Arc<Access>) {
    if let Some(slot) = request.extensions().get::<Arc<crate::audit::AuditSlot>>() {
        slot.set_access(access.clone());
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(e: OAuthError) -> Response {
    let mut response = (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(e.body()),
    )
        .into_response();
    if e.status == 401 {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"charaka\""),
        );
    }
    no_store(response)
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub async fn smart_configuration(State(app): AppState) -> Response {
    Json(app.auth.smart_configuration()).into_response()
}

pub async fn openid_configuration(State(app): AppState) -> Response {
    Json(app.auth.openid_configuration()).into_response()
}

pub async fn jwks(State(app): AppState) -> Response {
    Json(app.auth.jwks()).into_response()
}

/// `POST /auth/token` (form-encoded).
pub async fn token(State(app): AppState, request: Request) -> Response {
    let peer = peer_ip(&request);
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return oauth_error(OAuthError::invalid_request("the form is too large"));
    };
    let form = form(&body);
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let result = app.auth.token(&app.fhir.store, &form, authorization).await;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| authorization.and_then(basic_user));
    let grant = field("grant_type").unwrap_or("none");
    let detail = match &result {
        Ok(_) => format!("{grant}: issued"),
        Err(e) => format!("{grant}: {}", e.error),
    };
    let audited = record_auth(
        &app,
        AuthFacts {
            kind: "token",
            subject: None,
            client_id: client_id.as_deref(),
            source: peer,
            success: result.is_ok(),
            detail: Some(&detail),
            recorded: crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
        },
    )
    .await;
    match result {
        Ok(_) if audited.is_err() => oauth_error(OAuthError::new(
            503,
            "temporarily_unavailable",
            "the audit trail could not record the token request",
        )),
        Ok(body) => no_store(Json(body).into_response()),
        Err(e) => oauth_error(e),
    }
}

/// The peer's address, when the server was started with connect info.
fn peer_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The user name of an HTTP Basic `Authorization` header.
fn basic_user(header: &str) -> Option<String> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?;
    percent_encoding::percent_decode_str(user)
        .decode_utf8()
        .ok()
        .map(|u| u.into_owned())
}

/// Records an authentication event; a failure to record is logged and
/// returned (callers refuse to hand out credentials then).
async fn record_auth(app: &App, facts: AuthFacts<'_>) -> Result<(), ()> {
    if !app.audit.enabled() {
        return Ok(());
    }
    app.audit
        .record(crate::audit::event::auth_event(&facts))
        .await
        .map_err(|e| tracing::error!(error = %e, "authentication event not recorded"))
}

/// Records a sign-in step; a successful sign-in that cannot be recorded
/// does not happen (503).
async fn record_sign_in(
    app: &App,
    subject: Option<&str>,
    source: Option<std::net::IpAddr>,
    success: bool,
    detail: &str,
) -> Result<(), Response> {
    let audited = record_auth(
        app,
        AuthFacts {
            kind: "login",
            subject,
            client_id: None,
            source,
            success,
            detail: Some(detail),
            recorded: crate::fhir::datetime::format_instant(crate::fhir::datetime::now_micros()),
        },
    )
    .await;
    if success && audited.is_err() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail could not record the sign-in",
        )
            .into_response());
    }
    Ok(())
}

/// Who may introspect or revoke: an authenticated client, or a caller
/// with an administrator's bearer token.
async fn caller_client(
    app: &App,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Option<crate::store::auth::ClientRow>, OAuthError> {
    if let Some(token) = bearer(headers) {
        let access = app
            .auth
            .authenticate(&app.fhir.store, token)
            .await
            .map_err(|e| OAuthError::invalid_client(&e.to_string()))?;
        if access.is_administrator() {
            return Ok(None);
        }
        return Err(OAuthError::new(
            403,
            "access_denied",
            "an administrator's token is needed",
        ));
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let (client, _) = clients::authenticate(
        &app.fhir.store,
        form,
        authorization,
        &app.auth.token_endpoint(),
    )
    .await?;
    Ok(Some(client))
}

/// `POST /auth/introspect` (RFC 7662).
pub async fn introspect(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let form = form(&body);
    let caller = match caller_client(&app, &headers, &form).await {
        Ok(c) => c,
        Err(e) => return oauth_error(e),
    };
    let Some(token) = field(&form, "token") else {
        return oauth_error(OAuthError::invalid_request("token is missing"));
    };
    let mut answer = app.auth.introspect(&app.fhir.store, token).await;
    // A client may only learn about its own tokens; administrators about all.
    if let Some(client) = caller {
        if client.kind == "public" {
            return oauth_error(OAuthError::invalid_client(
                "public clients cannot introspect",
            ));
        }
        if answer["client_id"].as_str() != Some(client.client_id.as_str()) {
            answer = json!({ "active": false });
        }
    }
    no_store(Json(answer).into_response())
}

/// `POST /auth/revoke` (RFC 7009).
pub async fn revoke(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let form = form(&body);
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let client = match clients::authenticate(
        &app.fhir.store,
        &form,
        authorization,
        &app.auth.token_endpoint(),
    )
    .await
    {
        Ok((c, _)) => c,
        Err(e) => return oauth_error(e),
    };
    let Some(token) = field(&form, "token") else {
        return oauth_error(OAuthError::invalid_request("token is missing"));
    };
    match app.auth.revoke(&app.fhir.store, &client, token).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => oauth_error(e),
    }
}

async fn administrator(app: &App, headers: &HeaderMap) -> Result<Arc<Access>, Response> {
    if !app.auth.enabled {
        return Ok(Arc::new(Access::unrestricted("anonymous")));
    }
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(
            None,
            "an administrator's access token is needed",
        ));
    };
    let access = app
        .auth
        .authenticate(&app.fhir.store, token)
        .await
        .map_err(|e| unauthorized(Some("invalid_token"), &e.to_string()))?;
    Ok(access)
}

/// `POST /auth/register` (RFC 7591 dynamic registration, administrators).
pub async fn register(
    State(app): AppState,
    headers: HeaderMap,
    Json(meta): Json<Value>,
) -> Response {
    let access = match administrator(&app, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !access.is_administrator() {
        return oauth_error(OAuthError::new(
            403,
            "access_denied",
            "client registration needs an administrator (system/*.cruds)",
        ));
    }
    let method = meta["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("client_secret_basic");
    let kind = match method {
        "none" => "public",
        "client_secret_basic" | "client_secret_post" => "symmetric",
        "private_key_jwt" => "asymmetric",
        other => {
            return oauth_error(OAuthError::new(
                400,
                "invalid_client_metadata",
                format!("token_endpoint_auth_method `{other}` is not supported"),
            ))
        }
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let spec = ClientSpec {
        name: meta["client_name"]
            .as_str()
            .unwrap_or("unnamed client")
            .to_string(),
        kind: kind.to_string(),
        redirect_uris: strings(&meta["redirect_uris"]),
        scope: meta["scope"].as_str().unwrap_or_default().to_string(),
        jwks: meta.get("jwks").filter(|v| !v.is_null()).cloned(),
        jwks_uri: meta["jwks_uri"].as_str().map(str::to_string),
        client_id: None,
    };
    match accounts::add_client(&app.fhir.store, &spec).await {
        Ok(new) => {
            // Its redirect URIs' origins may call from browsers at once.
            app.guard.cors.refresh(&app.fhir.store).await;
            let mut out = meta.clone();
            out["client_id"] = json!(new.client_id);
            out["client_id_issued_at"] = json!(crate::auth::now_seconds());
            out["token_endpoint_auth_method"] = json!(method);
            if let Some(secret) = new.secret {
                out["client_secret"] = json!(secret);
                out["client_secret_expires_at"] = json!(0);
            }
            no_store((StatusCode::CREATED, Json(out)).into_response())
        }
        Err(e) => oauth_error(OAuthError::new(
            400,
            "invalid_client_metadata",
            e.to_string(),
        )),
    }
}

/// `POST /auth/launch`: an EHR makes a launch context (patient, encounter)
/// and passes the returned `launch` to the app it starts.
pub async fn launch(State(app): AppState, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let access = match administrator(&app, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let allowed = access.is_administrator()
        || (access.scopes.launch
            && access
                .scopes
                .has_context(crate::auth::scopes::Context::System));
    if !allowed {
        return oauth_error(OAuthError::new(403, "access_denied", "making launch contexts needs an administrator or an EHR's system token with the launch scope"));
    }
    let Some(patient) = body["patient"].as_str() else {
        return oauth_error(OAuthError::invalid_request("patient is missing"));
    };
    let exists = app.fhir.read("Patient", patient).await.is_ok();
    if !exists {
        return oauth_error(OAuthError::invalid_request(format!(
            "Patient/{patient} does not exist"
        )));
    }
    let encounter = body["encounter"].as_str().map(str::to_string);
    if let Some(e) = &encounter {
        if app.fhir.read("Encounter", e).await.is_err() {
            return oauth_error(OAuthError::invalid_request(format!(
                "Encounter/{e} does not exist"
            )));
        }
    }
    let launch = secrets::random_token();
    let ctx = GrantContext {
        patient: Some(patient.to_string()),
        encounter,
        ..Default::default()
    };
    let row = crate::store::auth::GrantRow {
        token_hash: secrets::token_hash(&launch),
        kind: "launch".into(),
        client_id: None,
        username: None,
        scope: String::new(),
        context: serde_json::to_string(&ctx).expect("context serialises"),
        family: secrets::random_token(),
        expires: crate::auth::now_seconds() + 3600,
        used: false,
        revoked: false,
    };
    if let Err(e) = app
        .fhir
        .store
        .insert_grant(&row, crate::fhir::datetime::now_micros())
        .await
    {
        return oauth_error(OAuthError::server(e));
    }
    no_store((StatusCode::CREATED, Json(json!({ "launch": launch }))).into_response())
}

/// Name of the CSRF cookie of the authorization pages.
const CSRF_COOKIE: &str = "charaka_csrf";

fn render(outcome: crate::auth::authorize::Outcome, secure: bool) -> Response {
    use crate::auth::authorize::Outcome;
    match outcome {
        Outcome::Redirect(location) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            no_store(r)
        }
        Outcome::SecondFactor {
            status,
            html,
            app_origin,
        } => render(
            Outcome::Page {
                status,
                html,
                csrf: None,
                app_origin,
            },
            secure,
        ),
        Outcome::Page {
            status,
            html,
            csrf,
            app_origin,
        } => {
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                axum::response::Html(html),
            )
                .into_response();
            let h = r.headers_mut();
            // The app's origin (a registered redirect URI's, checked when
            // the request started) joins `form-action`: the last form of a
            // sign-in is answered with a redirect there.
            let form_action = match app_origin.as_deref() {
                Some(o) if !o.contains([';', ',', '\'', ' ']) => format!("'self' {o}"),
                _ => "'self'".to_string(),
            };
            let csp = format!(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
            );
            if let Ok(v) = HeaderValue::from_str(&csp) {
                h.insert("content-security-policy", v);
            }
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            if let Some(csrf) = csrf {
                let cookie = format!(
                    "{CSRF_COOKIE}={csrf}; Path=/auth; HttpOnly; SameSite=Lax{}",
                    if secure { "; Secure" } else { "" }
                );
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    h.insert(http::header::SET_COOKIE, v);
                }
            }
            no_store(r)
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /auth/authorize`: the start of a sign-in.
pub async fn authorize_get(State(app): AppState, uri: http::Uri) -> Response {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let secure = app.auth.issuer.starts_with("https://");
    render(app.auth.authorize_start(&app.fhir, &params).await, secure)
}

/// `POST /auth/authorize`: a first request (authorize-post) or a form of
/// the sign-in pages.
pub async fn authorize_post(State(app): AppState, request: Request) -> Response {
    let peer_addr = peer_ip(&request);
    let peer = peer_addr.map(|ip| ip.to_string()).unwrap_or_default();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let form = form(&body);
    let secure = app.auth.issuer.starts_with("https://");
    let outcome = app
        .auth
        .authorize_submit(&app.fhir, &form, cookie(&headers, CSRF_COOKIE), &peer)
        .await;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let step = field("step");
    if step == Some("login") || step == Some("mfa") {
        let (success, detail) = match (&outcome, step) {
            (Outcome::SecondFactor { status: 200, .. }, _) => {
                (true, "password accepted; second factor asked")
            }
            (Outcome::SecondFactor { status: 401, .. }, _) => (false, "wrong second factor"),
            (Outcome::Page { status: 401, .. }, _) => (false, "wrong username or password"),
            (Outcome::Page { status: 429, .. } | Outcome::SecondFactor { status: 429, .. }, _) => {
                (false, "locked after repeated failures")
            }
            (Outcome::Page { status, .. } | Outcome::SecondFactor { status, .. }, _)
                if *status >= 400 =>
            {
                (false, "sign-in failed")
            }
            (_, Some("mfa")) => (true, "signed in with a second factor"),
            _ => (true, "signed in"),
        };
        // The account of a second-factor step is the one that gave its
        // password (kept in the pending request, not in the form).
        let login_subject = field("username").map(str::trim);
        if let Err(refused) = record_sign_in(&app, login_subject, peer_addr, success, detail).await
        {
            return refused;
        }
    }
    render(outcome, secure)
}

/// Name of the session cookie of the account pages.
const SESSION_COOKIE: &str = "charaka_session";

/// An account page's answer as a response: the pages' security headers,
/// the redirect, the cookie.
fn render_answer(app: &App, answer: Answer) -> Response {
    let secure = app.auth.issuer.starts_with("https://");
    let mut r = match answer.location {
        Some(to) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{}/{to}", app.auth.auth_base)) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            no_store(r)
        }
        None => render(
            Outcome::Page {
                status: answer.status,
                html: answer.html,
                csrf: None,
                app_origin: None,
            },
            secure,
        ),
    };
    let flags = if secure { "; Secure" } else { "" };
    let cookie = match answer.cookie {
        None => None,
        Some(Cookie::Csrf(t)) => Some(format!(
            "{CSRF_COOKIE}={t}; Path=/auth; HttpOnly; SameSite=Lax{flags}"
        )),
        Some(Cookie::Session(t)) => Some(format!(
            "{SESSION_COOKIE}={t}; Path=/auth; HttpOnly; SameSite=Strict; Max-Age={}{flags}",
            crate::auth::account::SESSION_SECONDS
        )),
        Some(Cookie::ClearSession) => Some(format!(
            "{SESSION_COOKIE}=; Path=/auth; HttpOnly; SameSite=Strict; Max-Age=0{flags}"
        )),
    };
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(http::header::SET_COOKIE, v);
    }
    r
}

async fn session_of(app: &App, headers: &HeaderMap) -> Option<Session> {
    app.auth
        .session(&app.fhir.store, cookie(headers, SESSION_COOKIE))
        .await
}

/// A form posted to an account page: (peer address, headers, fields).
async fn account_form(
    request: Request,
) -> Result<(Option<std::net::IpAddr>, HeaderMap, Vec<(String, String)>), Response> {
    let peer = peer_ip(&request);
    let headers = request.headers().clone();
    match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(body) => Ok((peer, headers, form(&body))),
        Err(_) => Err((StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response()),
    }
}

/// Records a sign-in step of the account pages; a sign-in that cannot be
/// recorded does not happen.
async fn audit_answer(
    app: &App,
    answer: Answer,
    subject: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Response {
    if let Some((success, detail)) = answer.audit {
        if let Err(refused) = record_sign_in(app, subject, peer, success, detail).await {
            return refused;
        }
    }
    render_answer(app, answer)
}

/// `GET /auth/account`: the account page, or its sign-in form.
pub async fn account_get(State(app): AppState, headers: HeaderMap) -> Response {
    let session = session_of(&app, &headers).await;
    render_answer(&app, app.auth.account_page(&app.fhir.store, session).await)
}

/// `POST /auth/account`: sign-in, second factor, sign-out.
pub async fn account_post(State(app): AppState, request: Request) -> Response {
    let (peer, headers, form) = match account_form(request).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = session_of(&app, &headers).await;
    let subject = match field(&form, "username") {
        Some(u) => Some(u.trim().to_string()),
        None => session.as_ref().map(|s| s.username.clone()),
    };
    let peer_text = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let answer = app
        .auth
        .account_submit(
            &app.fhir.store,
            &form,
            session,
            cookie(&headers, CSRF_COOKIE),
            &peer_text,
        )
        .await;
    audit_answer(&app, answer, subject.as_deref(), peer).await
}

/// `GET /auth/mfa/setup`: two-step sign-in of the signed-in user.
pub async fn mfa_setup_get(State(app): AppState, headers: HeaderMap) -> Response {
    let session = session_of(&app, &headers).await;
    render_answer(
        &app,
        app.auth.mfa_setup_page(&app.fhir.store, session).await,
    )
}

/// `POST /auth/mfa/setup`: a new enrolment (QR code, backup codes), or the
/// first code confirming it.
pub async fn mfa_setup_post(State(app): AppState, request: Request) -> Response {
    let (peer, headers, form) = match account_form(request).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = session_of(&app, &headers).await;
    let peer_text = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let answer = app
        .auth
        .mfa_setup_submit(&app.fhir.store, &form, session, &peer_text)
        .await;
    render_answer(&app, answer)
}

/// `GET /auth/consents`: the apps the signed-in user allowed.
pub async fn consents_get(State(app): AppState, headers: HeaderMap) -> Response {
    let session = session_of(&app, &headers).await;
    render_answer(&app, app.auth.consents_page(&app.fhir.store, session).await)
}

/// `POST /auth/consents`: withdraws the access of one app.
pub async fn consents_post(State(app): AppState, request: Request) -> Response {
    let (_, headers, form) = match account_form(request).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = session_of(&app, &headers).await;
    let answer = app
        .auth
        .consents_submit(&app.fhir.store, &form, session)
        .await;
    render_answer(&app, answer)
}
