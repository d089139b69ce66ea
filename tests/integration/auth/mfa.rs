//! Two-step sign-in: enrolment on the account pages (QR code read back,
//! backup codes), the code asked after the password at the authorization
//! endpoint and on the account pages, replayed and used-up codes refused,
//! the same sign-in limits, and the administrator's reset.

use totp_rs::{Algorithm, Secret, TOTP};

use super::flows::{
    authorize_url, browser, hidden, location, query_param, seed, Browsing, PASSWORD, REDIRECT,
};
use super::register;
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(
    two_step_sign_in_end_to_end,
    second_factor_failures_are_limited,
);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn totp(secret_base32: &str) -> TOTP {
    let secret = Secret::Encoded(secret_base32.to_string())
        .to_bytes()
        .unwrap();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret, None, String::new())
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The text between `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"))
        + start.len();
    &html[i..i + html[i..].find(end).unwrap()]
}

/// Reads the QR code of a PNG (base64) back to its text.
fn read_qr(png_base64: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png_base64)
        .unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// A browser on the account pages: the cookies it holds.
pub(super) struct Account {
    http: reqwest::Client,
    csrf_cookie: String,
    session: String,
}

impl Account {
    fn cookies(&self) -> String {
        format!("{}; {}", self.csrf_cookie, self.session)
    }

    pub(super) async fn get(&self, s: &TestServer, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", s.origin))
            .header("cookie", self.cookies())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POSTs a form; keeps a new session cookie. (status, location, page)
    pub(super) async fn post(
        &mut self,
        s: &TestServer,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let r = self
            .http
            .post(format!("{}{path}", s.origin))
            .header("cookie", self.cookies())
            .form(form)
            .send()
            .await
            .unwrap();
        if let Some(c) = r.headers().get("set-cookie") {
            let c = c.to_str().unwrap();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            self.session = c.split(';').next().unwrap().to_string();
        }
        let status = r.status().as_u16();
        let to = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, to, r.text().await.unwrap())
    }

    /// Opens the sign-in form and signs in with the password.
    pub(super) async fn sign_in(
        s: &TestServer,
        username: &str,
    ) -> (Account, u16, Option<String>, String) {
        let http = browser();
        let r = http
            .get(format!("{}/auth/account", s.origin))
            .send()
            .await
            .unwrap();
        let csrf_cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = r.text().await.unwrap();
        assert!(html.contains("Sign in to your account"), "{html}");
        let csrf = hidden(&html, "csrf");
        let mut a = Account {
            http,
            csrf_cookie,
            session: String::new(),
        };
        let (status, to, page) = a
            .post(
                s,
                "/auth/account",
                &[
                    ("step", "login"),
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await;
        (a, status, to, page)
    }
}

/// Enrols `dr` through the account pages; returns the TOTP secret (base32)
/// and the backup codes.
/// Turns two-step sign-in on for "dr": the secret, the backup codes and the
/// time whose code confirmed the enrolment (that step is then used up).
async fn enrol(s: &TestServer) -> (String, Vec<String>, u64) {
    let (mut a, status, to, _) = Account::sign_in(s, "dr").await;
    assert_eq!(status, 303);
    assert_eq!(
        to.as_deref(),
        Some(format!("{}/auth/account", s.origin).as_str())
    );
    let (_, home) = a.get(s, "/auth/account").await;
    assert!(
        home.contains("Two-step sign-in is <strong>off</strong>"),
        "{home}"
    );
    let (status, start) = a.get(s, "/auth/mfa/setup").await;
    assert_eq!(status, 200, "{start}");
    let csrf = hidden(&start, "csrf");

    // A form without the session's CSRF token is refused.
    let (status, _, _) = a
        .post(
            s,
            "/auth/mfa/setup",
            &[("step", "begin"), ("csrf", "forged")],
        )
        .await;
    assert_eq!(status, 403);

    let (status, _, page) = a
        .post(s, "/auth/mfa/setup", &[("step", "begin"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 200, "{page}");
    let uri = unescape(between(&page, "id=\"otpauth\" href=\"", "\""));
    assert!(uri.starts_with("otpauth://totp/Charaka:dr?"), "{uri}");
    let secret = between(&page, "<code id=\"secret\">", "<").to_string();
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=Charaka"), "{uri}");
    // The QR code holds the same URI.
    let qr = read_qr(between(&page, "data:image/png;base64,", "\""));
    assert_eq!(qr, uri);
    let codes: Vec<String> = page
        .split("<li><code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{page}");

    // Not on until a right code confirms it.
    let (status, _, _) = a
        .post(
            s,
            "/auth/mfa/setup",
            &[("step", "confirm"), ("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(!charaka::auth::mfa::enabled(&s.fhir().store, "dr")
        .await
        .unwrap());
    let confirmed_at = now();
    let code = totp(&secret).generate(confirmed_at);
    let (status, _, page) = a
        .post(
            s,
            "/auth/mfa/setup",
            &[("step", "confirm"), ("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Two-step sign-in is now on"), "{page}");
    let (_, again) = a.get(s, "/auth/mfa/setup").await;
    assert!(again.contains("Two-step sign-in is on"), "{again}");

    // The secret is stored sealed (envelope tag 0x01), never in clear.
    let stored = crate::encryption::raw(s.config(), "SELECT secret FROM auth_mfa").await;
    let raw = Secret::Encoded(secret.clone()).to_bytes().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0][0], 0x01, "sealed");
    assert!(!stored[0].windows(raw.len()).any(|w| w == raw.as_slice()));
    (secret, codes, confirmed_at)
}

/// Starts an authorization and gives the password: the second-factor page.
async fn password_step(s: &TestServer, client_id: &str) -> Browsing {
    let f = [
        ("redirect_uri", REDIRECT),
        ("scope", "user/*.rs"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("aud", s.base.as_str()),
    ];
    let mut b = Browsing::open(&authorize_url(s, client_id, &f)).await;
    assert_eq!(b.status, 200, "{}", b.html);
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
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Enter your code"), "{page}");
    assert!(!page.contains("Allow access?"));
    b
}

async fn two_step_sign_in_end_to_end(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "user/*.rs", None).await;
    let (secret, backup, confirmed_at) = enrol(s).await;

    // Approval needs the second factor: the password alone is not enough.
    let mut b = password_step(s, &client_id).await;
    let (status, page) = b.page(&s.origin, &[("step", "approve")]).await;
    assert_eq!(status, 400, "{page}");

    // The code that confirmed the enrolment cannot be used again, even
    // when the clock has since moved to the next step.
    let t = totp(&secret);
    let (status, page) = b
        .page(
            &s.origin,
            &[("step", "mfa"), ("code", &t.generate(confirmed_at))],
        )
        .await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("not right, or was used"), "{page}");
    // The next step's code works (one step of drift is allowed) ...
    let next = t.generate(confirmed_at + 30);
    let (status, page) = b.page(&s.origin, &[("step", "mfa"), ("code", &next)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Allow access?"), "{page}");
    let r = b.post(&s.origin, &[("step", "approve")]).await;
    let to = location(&r);
    assert!(query_param(&to, "code").is_some(), "{to}");
    // ... once.
    let mut b = password_step(s, &client_id).await;
    let (status, _) = b.page(&s.origin, &[("step", "mfa"), ("code", &next)]).await;
    assert_eq!(status, 401);

    // A backup code, typed loosely, works once.
    let typed = backup[0].to_lowercase().replace('-', " ");
    let (status, page) = b
        .page(&s.origin, &[("step", "mfa"), ("code", &typed)])
        .await;
    assert_eq!(status, 303, "remembered consent goes straight back: {page}");
    let mut b = password_step(s, &client_id).await;
    let (status, _) = b
        .page(&s.origin, &[("step", "mfa"), ("code", &backup[0])])
        .await;
    assert_eq!(status, 401);
    let (status, _) = b
        .page(&s.origin, &[("step", "mfa"), ("code", &backup[1])])
        .await;
    assert_eq!(status, 303);

    // The account pages ask for the code too; the half-signed-in session
    // does not open them.
    let (mut a, status, _, page) = Account::sign_in(s, "dr").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Enter your code"), "{page}");
    let (_, home) = a.get(s, "/auth/account").await;
    assert!(home.contains("Sign in to your account"), "{home}");
    let (status, _) = a.get(s, "/auth/mfa/setup").await;
    assert_eq!(status, 303);
    let csrf = hidden(&page, "csrf");
    let (status, to, _) = a
        .post(
            s,
            "/auth/account",
            &[("step", "code"), ("csrf", &csrf), ("code", &backup[2])],
        )
        .await;
    assert_eq!((status, to.is_some()), (303, true));
    let (_, home) = a.get(s, "/auth/account").await;
    assert!(
        home.contains("Two-step sign-in is <strong>on</strong>"),
        "{home}"
    );
    assert_eq!(
        s.fhir().store.backup_codes_left("dr").await.unwrap(),
        7,
        "three backup codes used"
    );

    // The administrator's reset: the password alone signs in again.
    charaka::cli::user(
        s.config().clone(),
        charaka::cli::UserCommand::MfaReset {
            username: "dr".into(),
        },
    )
    .await
    .unwrap();
    let f = [
        ("redirect_uri", REDIRECT),
        ("scope", "user/*.rs"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("aud", s.base.as_str()),
    ];
    let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
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
    assert_eq!(r.status(), 303, "straight back to the app");
}

async fn second_factor_failures_are_limited(s: &TestServer) {
    seed(s).await;
    let (client_id, _) = register(s, "public", "user/*.rs", None).await;
    let (secret, _, _) = enrol(s).await;
    let mut b = password_step(s, &client_id).await;
    // The wrong code of the enrolment counted already: four more lock.
    for _ in 0..4 {
        let (status, page) = b
            .page(&s.origin, &[("step", "mfa"), ("code", "123456x")])
            .await;
        assert_eq!(status, 401, "{page}");
    }
    // Locked for the rest of the minute, even with a right code; a right
    // password does not unlock it.
    let right = totp(&secret).generate(now() + 30);
    let (status, page) = b
        .page(&s.origin, &[("step", "mfa"), ("code", &right)])
        .await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Too many failed sign-ins"));
    let f = [
        ("redirect_uri", REDIRECT),
        ("scope", "user/*.rs"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("aud", s.base.as_str()),
    ];
    let mut b = Browsing::open(&authorize_url(s, &client_id, &f)).await;
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
    assert_eq!(status, 429);
}
