//! The consents page: a signed-in user sees the apps they allowed, with
//! every scope in plain words, and withdraws one; its refresh tokens stop
//! and the app asks again.

use super::flows::{
    authorize_url, hidden, location, query_param, seed, Browsing, PASSWORD, REDIRECT,
};
use super::mfa::Account;
use super::post_form;
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(users_see_and_withdraw_their_consents);

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SCOPE: &str = "user/Observation.rs offline_access";

async fn app(s: &TestServer, name: &str) -> String {
    let spec = charaka::auth::accounts::ClientSpec {
        name: name.into(),
        kind: "public".into(),
        redirect_uris: vec![REDIRECT.into()],
        scope: SCOPE.into(),
        ..Default::default()
    };
    charaka::auth::accounts::add_client(&s.fhir().store, &spec)
        .await
        .unwrap()
        .client_id
}

/// Signs `dr` in for the app; returns the first page after the password
/// (status, page) and the browsing.
async fn sign_in_for(s: &TestServer, client_id: &str) -> (u16, Browsing) {
    let f = [
        ("redirect_uri", REDIRECT),
        ("scope", SCOPE),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("aud", s.base.as_str()),
    ];
    let mut b = Browsing::open(&authorize_url(s, client_id, &f)).await;
    let r = b
        .post(
            &s.origin,
            &[
                ("step", "login"),
                ("username", "dr"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let status = r.status().as_u16();
    if status == 200 {
        b.html = r.text().await.unwrap();
    }
    (status, b)
}

/// Allows the app; returns its refresh token.
async fn allow(s: &TestServer, client_id: &str) -> String {
    let (status, mut b) = sign_in_for(s, client_id).await;
    assert_eq!(status, 200);
    assert!(b.html.contains("Allow access?"), "{}", b.html);
    let to = location(&b.post(&s.origin, &[("step", "approve")]).await);
    let code = query_param(&to, "code").unwrap();
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap().to_string()
}

async fn refresh(s: &TestServer, client_id: &str, token: &str) -> (u16, serde_json::Value) {
    post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
        None,
    )
    .await
}

async fn users_see_and_withdraw_their_consents(s: &TestServer) {
    seed(s).await;
    let chart = app(s, "Growth <chart>").await;
    let diary = app(s, "Diary").await;
    let chart_refresh = allow(s, &chart).await;
    let diary_refresh = allow(s, &diary).await;

    // The consents page needs a signed-in user.
    let anonymous = super::flows::browser();
    let r = anonymous
        .get(format!("{}/auth/consents", s.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let (mut a, status, _, _) = Account::sign_in(s, "dr").await;
    assert_eq!(status, 303);
    let (status, page) = a.get(s, "/auth/consents").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Growth &lt;chart&gt;"), "escaped: {page}");
    assert!(page.contains("Diary"));
    assert!(
        page.contains("Read and search Observation resources"),
        "{page}"
    );
    assert!(page.contains("Keep access after you sign out"), "{page}");
    let csrf = hidden(&page, "csrf");

    // Without the session's CSRF token nothing changes.
    let (status, _, _) = a
        .post(
            s,
            "/auth/consents",
            &[
                ("step", "withdraw"),
                ("client_id", &chart),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(s
        .fhir()
        .store
        .consent("dr", &chart)
        .await
        .unwrap()
        .is_some());

    let (status, _, page) = a
        .post(
            s,
            "/auth/consents",
            &[("step", "withdraw"), ("client_id", &chart), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Access withdrawn"), "{page}");
    assert!(!page.contains("Growth"), "{page}");
    assert!(page.contains("Diary"));

    // The withdrawn app's refresh token stops; the other's still works.
    let (status, body) = refresh(s, &chart, &chart_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = refresh(s, &diary, &diary_refresh).await;
    assert_eq!(status, 200, "{body}");

    // Withdrawing twice: nothing to withdraw.
    let (status, _, _) = a
        .post(
            s,
            "/auth/consents",
            &[("step", "withdraw"), ("client_id", &chart), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 404);

    // The app asks again; the one still allowed does not.
    let (status, b) = sign_in_for(s, &chart).await;
    assert_eq!(status, 200);
    assert!(b.html.contains("Allow access?"));
    let (status, _) = sign_in_for(s, &diary).await;
    assert_eq!(status, 303);

    // Another user sees only their own.
    let (a2, status, _, _) = Account::sign_in(s, "ann").await;
    assert_eq!(status, 303);
    let (_, page) = a2.get(s, "/auth/consents").await;
    assert!(page.contains("You have not allowed any app"), "{page}");
}
