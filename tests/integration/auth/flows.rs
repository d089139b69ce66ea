//! The authorization code flow end to end, with the `oauth2` crate as the
//! app: sign-in page, consent with patient picker, code + PKCE, tokens with
//! launch context, refresh rotation; EHR launch; and the negative cases.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{post_form, register, send_as};
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(
    standalone_launch_with_oauth2_client,
    patient_user_gets_own_record_and_consent_is_remembered,
    ehr_launch_carries_its_context,
    authorization_request_errors,
    code_and_pkce_rules,
    sign_in_failures_are_limited,
);

pub(super) const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub(super) const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SmartFields {
    patient: Option<String>,
    encounter: Option<String>,
    need_patient_banner: Option<bool>,
    id_token: Option<String>,
    #[serde(rename = "fhirUser")]
    fhir_user: Option<String>,
}
impl ExtraTokenFields for SmartFields {}

type SmartToken = StandardTokenResponse<SmartFields, BasicTokenType>;
type SmartClient = oauth2::Client<
    BasicErrorResponse,
    SmartToken,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn app(s: &TestServer, client_id: &str) -> SmartClient {
    oauth2::Client::new(ClientId::new(client_id.to_string()))
        .set_auth_uri(AuthUrl::new(format!("{}/auth/authorize", s.origin)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/auth/token", s.origin)).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_string()).unwrap())
}

/// A browser: keeps no redirects, carries the CSRF cookie by hand.
pub(super) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(super) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

pub(super) async fn seed(s: &TestServer) {
    for (id, family) in [("p1", "Alpha"), ("p2", "Beta")] {
        s.put(
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": ["Ann"]}], "birthDate": "1970-01-01"}),
        )
        .await;
    }
    s.put(
        "Encounter/e1",
        &json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}),
    )
    .await;
    let store = &s.fhir().store;
    charaka::auth::accounts::add_user(
        store,
        "dr",
        PASSWORD,
        "practitioner",
        Some("Practitioner/doc"),
    )
    .await
    .unwrap();
    charaka::auth::accounts::add_user(store, "ann", PASSWORD, "patient", Some("Patient/p1"))
        .await
        .unwrap();
}

/// The pages of one sign-in: returns the final HTTP response (a redirect
/// to the app, or a page).
pub(super) struct Browsing {
    pub(super) http: reqwest::Client,
    pub(super) cookie: String,
    pub(super) request: String,
    pub(super) csrf: String,
    pub(super) html: String,
    pub(super) status: u16,
}

impl Browsing {
    pub(super) async fn open(url: &str) -> Browsing {
        let http = browser();
        let r = http.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
            .unwrap_or_default();
        let html = r.text().await.unwrap();
        let (request, csrf) = if status == 200 {
            (hidden(&html, "request"), hidden(&html, "csrf"))
        } else {
            Default::default()
        };
        Browsing {
            http,
            cookie,
            request,
            csrf,
            html,
            status,
        }
    }

    pub(super) async fn post(
        &mut self,
        origin: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = vec![("request", &self.request), ("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        self.http
            .post(format!("{origin}/auth/authorize"))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub(super) async fn page(&mut self, origin: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let r = self.post(origin, fields).await;
        let status = r.status().as_u16();
        self.html = r.text().await.unwrap();
        self.status = status;
        (status, self.html.clone())
    }
}

pub(super) fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "expected a redirect to the app");
    r.headers()["location"].to_str().unwrap().to_string()
}

pub(super) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn standalone_launch_with_oauth2_client(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(
        s,
        "public",
        "launch/patient patient/*.rs openid fhirUser offline_access",
        None,
    )
    .await;
    let client = app(s, &client_id);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(
            [
                "launch/patient",
                "patient/*.rs",
                "openid",
                "fhirUser",
                "offline_access",
            ]
            .map(|s| Scope::new(s.to_string())),
        )
        .add_extra_param("aud", &s.base)
        .set_pkce_challenge(challenge)
        .url();

    let mut b = Browsing::open(url.as_str()).await;
    assert_eq!(b.status, 200, "{}", b.html);
    assert!(b.html.contains("Sign in"));
    assert!(b.cookie.starts_with("charaka_csrf="));
    let (status, consent) = b
        .page(
            &s.origin,
            &[
                ("step", "login"),
                ("username", "dr"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{consent}");
    assert!(
        consent.contains("Read and search all kinds of data of the selected patient"),
        "{consent}"
    );
    assert!(
        consent.contains("Alpha, Ann"),
        "the picker lists patients: {consent}"
    );
    // The picker searches.
    let (_, found) = b
        .page(&s.origin, &[("step", "search"), ("q", "beta")])
        .await;
    assert!(
        found.contains("Beta") && !found.contains("Alpha"),
        "{found}"
    );
    // Approving without a patient asks again.
    let (_, again) = b.page(&s.origin, &[("step", "approve")]).await;
    assert!(again.contains("Choose a patient first"));
    let r = b
        .post(&s.origin, &[("step", "approve"), ("patient", "p1")])
        .await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(
        query_param(&to, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query_param(&to, "code").unwrap();

    let http = browser();
    let token: SmartToken = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let extra = token.extra_fields();
    assert_eq!(extra.patient.as_deref(), Some("p1"));
    assert_eq!(extra.need_patient_banner, Some(true));
    assert_eq!(
        extra.fhir_user.as_deref(),
        Some(format!("{}/Practitioner/doc", s.base).as_str())
    );
    assert!(
        extra.id_token.is_some(),
        "openid fhirUser gives an id_token"
    );
    let access = token.access_token().secret().clone();
    assert_eq!(
        send_as(s, Some(&access), Method::GET, "Patient/p1", None)
            .await
            .status,
        200
    );
    send_as(s, Some(&access), Method::GET, "Patient/p2", None)
        .await
        .outcome(404);

    // Refresh: widening refused (the token stays usable), narrowing works.
    let refresh = token
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .clone();
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", refresh.secret()),
            ("scope", "patient/*.cruds"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    let narrowed = client
        .exchange_refresh_token(&refresh)
        .add_scope(Scope::new("patient/Patient.r".into()))
        .request_async(&http)
        .await
        .expect("narrowing refresh");
    let narrow = narrowed.access_token().secret().clone();
    assert_eq!(
        send_as(s, Some(&narrow), Method::GET, "Patient/p1", None)
            .await
            .status,
        200
    );
    send_as(s, Some(&narrow), Method::GET, "Patient", None)
        .await
        .outcome(403);
    let next_refresh = narrowed.refresh_token().expect("rotated").clone();

    // The code works once; a second use revokes everything it led to.
    let reuse = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(reuse.is_err());
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", next_refresh.secret()),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

async fn patient_user_gets_own_record_and_consent_is_remembered(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(
        s,
        "public",
        "launch/patient patient/*.rs offline_access",
        None,
    )
    .await;
    let client = app(s, &client_id);
    let http = browser();
    for round in 0..2 {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(
                "launch/patient patient/*.rs offline_access".into(),
            ))
            .add_extra_param("aud", &s.base)
            .set_pkce_challenge(challenge)
            .url();
        let mut b = Browsing::open(url.as_str()).await;
        let r = b
            .post(
                &s.origin,
                &[
                    ("step", "login"),
                    ("username", "ann"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        let code_url = if round == 0 {
            // First time: consent, no patient picker (her own record).
            assert_eq!(r.status(), 200);
            let page = r.text().await.unwrap();
            assert!(
                page.contains("Allow access?") && !page.contains("Choose the patient"),
                "{page}"
            );
            location(&b.post(&s.origin, &[("step", "approve")]).await)
        } else {
            // Consent remembered: straight back to the app.
            location(&r)
        };
        let code = query_param(&code_url, "code").unwrap();
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap();
        assert_eq!(token.extra_fields().patient.as_deref(), Some("p1"));
        let refresh = token.refresh_token().unwrap().clone();
        if round == 1 {
            // Rotation: the new refresh token works; the old one, reused,
            // revokes the chain.
            let next = client
                .exchange_refresh_token(&refresh)
                .request_async(&http)
                .await
                .expect("refresh");
            let newer = next.refresh_token().unwrap().clone();
            assert_ne!(newer.secret(), refresh.secret());
            assert!(client
                .exchange_refresh_token(&refresh)
                .request_async(&http)
                .await
                .is_err());
            let revoked = client
                .exchange_refresh_token(&RefreshToken::new(newer.secret().clone()))
                .request_async(&http)
                .await;
            assert!(
                revoked.is_err(),
                "reuse of an old refresh token revokes the newer one"
            );
        }
    }
}

async fn ehr_launch_carries_its_context(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "launch patient/*.rs user/*.rs", None).await;
    // The EHR makes a launch context.
    let r = s
        .client
        .post(format!("{}/auth/launch", s.origin))
        .json(&json!({"patient": "p1", "encounter": "e1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let launch = r.json::<serde_json::Value>().await.unwrap()["launch"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = s
        .client
        .post(format!("{}/auth/launch", s.origin))
        .json(&json!({"patient": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let client = app(s, &client_id);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("launch patient/*.rs".into()))
        .add_extra_param("aud", &s.base)
        .add_extra_param("launch", &launch)
        .set_pkce_challenge(challenge)
        .url();
    let mut b = Browsing::open(url.as_str()).await;
    b.page(
        &s.origin,
        &[
            ("step", "login"),
            ("username", "dr"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert!(
        !b.html.contains("Choose the patient"),
        "the EHR chose the patient"
    );
    let to = location(&b.post(&s.origin, &[("step", "approve")]).await);
    let token = client
        .exchange_code(AuthorizationCode::new(query_param(&to, "code").unwrap()))
        .set_pkce_verifier(verifier)
        .request_async(&browser())
        .await
        .unwrap();
    assert_eq!(token.extra_fields().patient.as_deref(), Some("p1"));
    assert_eq!(token.extra_fields().encounter.as_deref(), Some("e1"));
    assert_eq!(token.extra_fields().need_patient_banner, Some(false));

    // The launch scope without a launch parameter is an error.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("launch patient/*.rs".into()))
        .add_extra_param("aud", &s.base)
        .set_pkce_challenge(challenge)
        .url();
    let r = browser().get(url.as_str()).send().await.unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
}

/// `good` with one field replaced (or added).
fn with_field<'a>(
    good: &[(&'a str, &'a str)],
    change: (&'a str, &'a str),
) -> Vec<(&'a str, &'a str)> {
    let mut f: Vec<(&str, &str)> = good
        .iter()
        .copied()
        .filter(|(k, _)| *k != change.0)
        .collect();
    f.push(change);
    f
}

pub(super) fn authorize_url(s: &TestServer, client_id: &str, fields: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code");
    q.append_pair("client_id", client_id);
    for (k, v) in fields {
        q.append_pair(k, v);
    }
    format!("{}/auth/authorize?{}", s.origin, q.finish())
}

async fn authorization_request_errors(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "patient/*.rs", None).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let good = [
        ("redirect_uri", REDIRECT),
        ("scope", "patient/*.rs"),
        ("state", "st"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let with = |change: (&'static str, &'static str)| with_field(&good, change);
    let http = browser();
    // Unknown client, unregistered redirect URI: a page, never a redirect.
    let r = http
        .get(authorize_url(s, "nobody", &good))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut f = with_field(&good, ("redirect_uri", "https://evil.example.org/cb"));
    f.push(("aud", &s.base));
    let r = http
        .get(authorize_url(s, &client_id, &f))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());

    // Errors sent back to the app, with the state.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            with(("aud", "https://other.example.org/fhir")),
            "invalid_request",
        ),
        (good.to_vec(), "invalid_request"), // no aud
        (
            {
                let mut f = with_field(&good, ("code_challenge_method", "plain"));
                f.push(("aud", &s.base));
                f
            },
            "invalid_request",
        ),
        (
            {
                let mut f: Vec<(&str, &str)> = with_field(&good, ("aud", &s.base))
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("code_challenge"))
                    .collect();
                f.push(("state", "st"));
                f
            },
            "invalid_request",
        ),
        (
            {
                let mut f = with_field(&good, ("scope", "patient/Observation.rad"));
                f.push(("aud", &s.base));
                f
            },
            "invalid_scope",
        ),
        (
            {
                let mut f = with_field(&good, ("scope", "user/*.cruds"));
                f.push(("aud", &s.base));
                f
            },
            "invalid_scope",
        ),
    ];
    for (fields, error) in cases {
        let r = http
            .get(authorize_url(s, &client_id, &fields))
            .send()
            .await
            .unwrap();
        let to = location(&r);
        assert_eq!(
            query_param(&to, "error").as_deref(),
            Some(error),
            "{fields:?} → {to}"
        );
        assert_eq!(query_param(&to, "state").as_deref(), Some("st"));
    }

    // A form without the CSRF cookie is refused.
    let mut f = good.to_vec();
    f.push(("aud", &s.base));
    let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
    b.cookie = "charaka_csrf=forged".into();
    let (status, _) = b
        .page(
            &s.origin,
            &[
                ("step", "login"),
                ("username", "dr"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 403);

    // Deny: access_denied back to the app.
    let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
    b.page(
        &s.origin,
        &[
            ("step", "login"),
            ("username", "ann"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let to = location(&b.post(&s.origin, &[("step", "deny")]).await);
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
}

async fn code_and_pkce_rules(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "patient/*.rs", None).await;
    let (other_client, _) = register(s, "public", "patient/*.rs", None).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let code = || async {
        let f = [
            ("redirect_uri", REDIRECT),
            ("scope", "patient/*.rs"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("aud", s.base.as_str()),
        ];
        let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
        let r = b
            .post(
                &s.origin,
                &[
                    ("step", "login"),
                    ("username", "ann"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        let to = if r.status() == 303 {
            location(&r)
        } else {
            location(&b.post(&s.origin, &[("step", "approve")]).await)
        };
        query_param(&to, "code").unwrap()
    };
    let exchange = |code: String,
                    client: String,
                    verifier: Option<&'static str>,
                    redirect: &'static str| async move {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", redirect.to_string()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_string()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(s, "/auth/token", &form, None).await
    };
    // Missing verifier, wrong verifier, wrong redirect, another client.
    let (status, body) = exchange(code().await, client_id.clone(), None, REDIRECT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (_, body) = exchange(
        code().await,
        client_id.clone(),
        Some("x23456789012345678901234567890123456789012345"),
        REDIRECT,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(
        code().await,
        client_id.clone(),
        Some(verifier),
        "http://127.0.0.1:9/other",
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = exchange(code().await, other_client.clone(), Some(verifier), REDIRECT).await;
    assert_eq!(body["error"], "invalid_grant");
    // The right one works, once.
    let c = code().await;
    let (status, body) = exchange(c.clone(), client_id.clone(), Some(verifier), REDIRECT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["patient"], "p1");
    let (_, again) = exchange(c, client_id.clone(), Some(verifier), REDIRECT).await;
    assert_eq!(again["error"], "invalid_grant");
}

async fn sign_in_failures_are_limited(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "patient/*.rs", None).await;
    let f = [
        ("redirect_uri", REDIRECT),
        ("scope", "patient/*.rs"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("aud", s.base.as_str()),
    ];
    let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
    for _ in 0..5 {
        let (status, page) = b
            .page(
                &s.origin,
                &[
                    ("step", "login"),
                    ("username", "dr"),
                    ("password", "wrong password"),
                ],
            )
            .await;
        assert_eq!(status, 401);
        assert!(page.contains("Wrong username or password"));
    }
    // Locked for the rest of the minute, even with the right password.
    let (status, page) = b
        .page(
            &s.origin,
            &[
                ("step", "login"),
                ("username", "dr"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Too many failed sign-ins"));
}
