//! Access tokens of a revoked client or a disabled account stop working at
//! once, though the verified-token cache holds them: on the node that made
//! the change at once, and on any node (or after `charaka client revoke` /
//! `charaka user disable`) at its next revocation check.

use reqwest::Method;

use super::{post_form, register, send_as};
use crate::harness::TestServer;
use crate::on_both_databases;
use charaka::auth::tokens::AccessClaims;

on_both_databases!(
    revoked_client_tokens_stop_at_once,
    disabled_user_tokens_stop_at_once,
    changes_from_the_command_line_reach_the_server,
);

/// A backend client and its client_credentials token.
async fn backend_token(s: &TestServer) -> (String, String) {
    let (id, secret) = register(s, "symmetric", "system/*.rs", None).await;
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
        ],
        Some((&id, secret.as_deref().unwrap())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (id, body["access_token"].as_str().unwrap().to_string())
}

/// A token of the account `username` (as the token endpoint issues it after
/// sign-in and consent).
async fn user_token(s: &TestServer, username: &str) -> String {
    charaka::auth::accounts::add_user(
        &s.fhir().store,
        username,
        "correct horse battery",
        "practitioner",
        Some("Practitioner/doc"),
    )
    .await
    .unwrap();
    let (client_id, _) = register(s, "public", "user/*.rs", None).await;
    let auth = &s.app().auth;
    let now = charaka::auth::now_seconds();
    auth.sign(&AccessClaims {
        iss: auth.issuer.clone(),
        aud: auth.issuer.clone(),
        sub: username.into(),
        client_id,
        scope: "user/*.rs".into(),
        iat: now,
        exp: now + 600,
        jti: charaka::auth::secrets::random_token(),
        patient: None,
        encounter: None,
        fhir_user: Some("Practitioner/doc".into()),
        role: Some("practitioner".into()),
    })
}

async fn status_with(s: &TestServer, token: &str) -> u16 {
    send_as(s, Some(token), Method::GET, "Patient", None)
        .await
        .status
}

async fn revoked_client_tokens_stop_at_once(s: &TestServer) {
    let (id, token) = backend_token(s).await;
    let (_, other) = backend_token(s).await;
    // Used once: the token is in the verified-token cache.
    assert_eq!(status_with(s, &token).await, 200);
    assert!(s
        .app()
        .auth
        .revoke_client(&s.fhir().store, &id)
        .await
        .unwrap());
    let r = send_as(s, Some(&token), Method::GET, "Patient", None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(r.text.contains("revoked"), "{}", r.text);
    // Introspection says so too; another client's token is untouched.
    assert_eq!(introspect(s, &token).await["active"], false);
    assert_eq!(introspect(s, &other).await["active"], true);
    assert_eq!(status_with(s, &other).await, 200);
}

/// Introspection with an administrator's token.
async fn introspect(s: &TestServer, token: &str) -> serde_json::Value {
    let admin = super::token_for(s, "system/*.cruds", None, "admin");
    let r = s
        .anonymous
        .post(format!("{}/auth/introspect", s.origin))
        .bearer_auth(admin)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn disabled_user_tokens_stop_at_once(s: &TestServer) {
    let token = user_token(s, "dr").await;
    let other = user_token(s, "nurse").await;
    assert_eq!(status_with(s, &token).await, 200);
    let auth = &s.app().auth;
    let store = &s.fhir().store;
    assert!(auth.set_user_disabled(store, "dr", true).await.unwrap());
    let r = send_as(s, Some(&token), Method::GET, "Patient", None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("account disabled"), "{}", r.text);
    assert_eq!(status_with(s, &other).await, 200);
    // Enabled again, its unexpired token works again.
    assert!(auth.set_user_disabled(store, "dr", false).await.unwrap());
    assert_eq!(status_with(s, &token).await, 200);
}

/// The command line (like another node) changes only the database; the
/// server sees it at its next revocation check (every
/// `auth_revocation_check_ms`), run here by hand so the test does not wait.
async fn changes_from_the_command_line_reach_the_server(s: &TestServer) {
    let (id, token) = backend_token(s).await;
    let user = user_token(s, "dr").await;
    assert_eq!(status_with(s, &token).await, 200);
    assert_eq!(status_with(s, &user).await, 200);
    charaka::cli::client(
        s.config().clone(),
        charaka::cli::ClientCommand::Revoke { client_id: id },
    )
    .await
    .unwrap();
    charaka::cli::user(
        s.config().clone(),
        charaka::cli::UserCommand::Disable {
            username: "dr".into(),
        },
    )
    .await
    .unwrap();
    s.app()
        .auth
        .check_revocations(&s.fhir().store)
        .await
        .unwrap();
    assert_eq!(status_with(s, &token).await, 401);
    assert_eq!(status_with(s, &user).await, 401);
}
