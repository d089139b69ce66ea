//! SMART on FHIR: discovery, the token endpoint with every client
//! authentication, token checks, revocation, and scope enforcement on
//! every kind of interaction. Both databases.

mod backend;
mod browser;
mod consents;
mod enforcement;
mod flows;
mod jwks_uri;
mod mfa;
mod revocation;

use serde_json::Value;

use crate::harness::{Resp, TestServer};
use charaka::auth::tokens::AccessClaims;

/// Sends a request with the given bearer token (or none).
pub async fn send_as(
    server: &TestServer,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let mut req = server.anonymous.request(method, server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(b).unwrap());
    }
    let resp = req.send().await.unwrap();
    Resp {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// A token signed by the server for the given scope and launch context,
/// as the token endpoint would issue it after a user's consent.
pub fn token_for(server: &TestServer, scope: &str, patient: Option<&str>, role: &str) -> String {
    let auth = &server.app().auth;
    let now = charaka::auth::now_seconds();
    let claims = AccessClaims {
        iss: auth.issuer.clone(),
        aud: auth.issuer.clone(),
        sub: "someone".into(),
        client_id: "test-app".into(),
        scope: scope.into(),
        iat: now,
        exp: now + 600,
        jti: charaka::auth::secrets::random_token(),
        patient: patient.map(str::to_string),
        encounter: None,
        fhir_user: None,
        role: Some(role.into()),
    };
    auth.sign(&claims)
}

/// Registers a client directly; returns (client_id, secret).
pub async fn register(
    server: &TestServer,
    kind: &str,
    scope: &str,
    jwks: Option<Value>,
) -> (String, Option<String>) {
    let spec = charaka::auth::accounts::ClientSpec {
        name: format!("{kind} client"),
        kind: kind.into(),
        redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
        scope: scope.into(),
        jwks,
        ..Default::default()
    };
    let new = charaka::auth::accounts::add_client(&server.fhir().store, &spec)
        .await
        .unwrap();
    (new.client_id, new.secret)
}

/// POSTs a form to an authorization endpoint.
pub async fn post_form(
    server: &TestServer,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = server
        .anonymous
        .post(format!("{}{path}", server.origin))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}
