//! The account pages (`/auth/account`, `/auth/mfa/setup`): where a user
//! signs in on their own (not for an app) to manage two-step sign-in and the
//! apps they allowed.
//!
//! Signing in makes a session: a random token in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/auth`, stored as the SHA-256 of the
//! token in `auth_grants` (kind `session`, 30 minutes). The session keeps its
//! own CSRF token, which every form of the pages carries back; the sign-in
//! form itself (before there is a session) is checked by double submit
//! against the CSRF cookie of the authorization pages. With two-step
//! sign-in on, the session is only good for the pages once the code is
//! given. Sign-in failures count against the same limits as the
//! authorization endpoint's.

use serde::{Deserialize, Serialize};

use super::pages;
use super::{mfa, now_seconds, secrets, Auth};
use crate::store::auth::GrantRow;
use crate::store::Store;

/// How long a session lasts.
pub const SESSION_SECONDS: i64 = 1800;

/// What the session row keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionContext {
    /// Put in every form of the pages; a form without it is refused.
    csrf: String,
    /// False between the password and the second factor.
    verified: bool,
}

/// A session read from its cookie.
pub struct Session {
    pub username: String,
    pub csrf: String,
    pub verified: bool,
    token_hash: String,
}

/// A cookie to set with an answer.
pub enum Cookie {
    /// The CSRF cookie of the sign-in form (double submit).
    Csrf(String),
    /// A new session.
    Session(String),
    /// The session ends.
    ClearSession,
}

/// What an account page answers.
pub struct Answer {
    pub status: u16,
    pub html: String,
    /// 303 to this place (relative to `/auth/`) instead of a page.
    pub location: Option<&'static str>,
    pub cookie: Option<Cookie>,
    /// A sign-in step to record in the audit trail: (success, detail).
    pub audit: Option<(bool, &'static str)>,
}

impl Answer {
    fn page(status: u16, html: String) -> Answer {
        Answer {
            status,
            html,
            location: None,
            cookie: None,
            audit: None,
        }
    }

    fn redirect(to: &'static str) -> Answer {
        Answer {
            status: 303,
            html: String::new(),
            location: Some(to),
            cookie: None,
            audit: None,
        }
    }

    fn with_cookie(mut self, cookie: Cookie) -> Answer {
        self.cookie = Some(cookie);
        self
    }

    fn audited(mut self, success: bool, detail: &'static str) -> Answer {
        self.audit = Some((success, detail));
        self
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn server_error() -> Answer {
    Answer::page(
        500,
        pages::error("the server could not complete this step; try again"),
    )
}

impl Auth {
    /// The session of a session cookie, if live and its account enabled.
    pub async fn session(&self, store: &Store, cookie: Option<&str>) -> Option<Session> {
        let token = cookie?;
        let hash = secrets::token_hash(token);
        let grant = store.grant(&hash, "session").await.ok()??;
        if grant.revoked || grant.used || grant.expires < now_seconds() {
            return None;
        }
        let ctx: SessionContext = serde_json::from_str(&grant.context).ok()?;
        let username = grant.username?;
        let user = store.user(&username).await.ok()??;
        if user.disabled {
            return None;
        }
        Some(Session {
            username,
            csrf: ctx.csrf,
            verified: ctx.verified,
            token_hash: hash,
        })
    }

    async fn new_session(
        &self,
        store: &Store,
        username: &str,
        verified: bool,
    ) -> Result<(String, String), crate::store::StoreError> {
        let token = secrets::random_token();
        let csrf = secrets::random_token();
        let ctx = SessionContext {
            csrf: csrf.clone(),
            verified,
        };
        let row = GrantRow {
            token_hash: secrets::token_hash(&token),
            kind: "session".into(),
            client_id: None,
            username: Some(username.to_string()),
            scope: String::new(),
            context: serde_json::to_string(&ctx).expect("session serialises"),
            family: secrets::random_token(),
            expires: now_seconds() + SESSION_SECONDS,
            used: false,
            revoked: false,
        };
        store
            .insert_grant(&row, crate::fhir::datetime::now_micros())
            .await?;
        Ok((token, csrf))
    }

    /// `GET /auth/account`: the account page, or its sign-in form.
    pub async fn account_page(&self, store: &Store, session: Option<Session>) -> Answer {
        match session {
            Some(s) if s.verified => match mfa::enabled(store, &s.username).await {
                Ok(on) => Answer::page(200, pages::account_home(&s.username, on, &s.csrf)),
                Err(_) => server_error(),
            },
            _ => {
                let csrf = secrets::random_token();
                Answer::page(200, pages::account_login(&csrf, None)).with_cookie(Cookie::Csrf(csrf))
            }
        }
    }

    /// `POST /auth/account`: sign-in (`login`), second factor (`code`),
    /// sign-out (`logout`).
    pub async fn account_submit(
        &self,
        store: &Store,
        form: &[(String, String)],
        session: Option<Session>,
        cookie_csrf: Option<&str>,
        peer: &str,
    ) -> Answer {
        let csrf = field(form, "csrf").unwrap_or_default();
        match field(form, "step").unwrap_or_default() {
            "login" => {
                let double_submit = !csrf.is_empty()
                    && cookie_csrf.is_some_and(|c| secrets::constant_time_eq(c, csrf));
                if !double_submit {
                    return Answer::page(
                        403,
                        pages::error(
                            "the form did not come from this sign-in page (CSRF check failed)",
                        ),
                    );
                }
                self.account_login(store, form, csrf, peer).await
            }
            "code" => {
                let Some(s) = session.filter(|s| !s.verified) else {
                    return Answer::redirect("account");
                };
                if !secrets::constant_time_eq(csrf, &s.csrf) {
                    return Answer::page(
                        403,
                        pages::error("the form did not come from this page (CSRF check failed)"),
                    );
                }
                self.account_code(store, form, s, peer).await
            }
            "logout" => {
                if let Some(s) = session {
                    if !secrets::constant_time_eq(csrf, &s.csrf) {
                        return Answer::page(
                            403,
                            pages::error(
                                "the form did not come from this page (CSRF check failed)",
                            ),
                        );
                    }
                    let _ = store.use_grant(&s.token_hash).await;
                }
                Answer::redirect("account").with_cookie(Cookie::ClearSession)
            }
            _ => Answer::page(400, pages::error("unknown step")),
        }
    }

    async fn account_login(
        &self,
        store: &Store,
        form: &[(String, String)],
        csrf: &str,
        peer: &str,
    ) -> Answer {
        let username = field(form, "username").unwrap_or_default().trim();
        let password = field(form, "password").unwrap_or_default();
        let now = now_seconds();
        let (user_key, ip_key) = (format!("user:{username}"), format!("ip:{peer}"));
        if let Some(wait) = self.locked_out(&user_key, &ip_key, now) {
            return Answer::page(429, pages::account_login(csrf, Some(&wait_message(wait))))
                .audited(false, "locked after repeated failures");
        }
        let user = store.user(username).await.ok().flatten();
        let ok = user
            .as_ref()
            .is_some_and(|u| !u.disabled && secrets::verify_password(password, &u.password_hash));
        let Some(user) = user.filter(|_| ok) else {
            self.count_failure(&user_key, &ip_key, username, now);
            return Answer::page(
                401,
                pages::account_login(csrf, Some("Wrong username or password.")),
            )
            .audited(false, "wrong username or password");
        };
        let second_factor = match mfa::enabled(store, &user.username).await {
            Ok(on) => on,
            Err(_) => return server_error(),
        };
        if !second_factor {
            // With a second factor, failures of the code still count.
            self.login_limiter.succeed(&user_key);
        }
        let Ok((token, session_csrf)) = self
            .new_session(store, &user.username, !second_factor)
            .await
        else {
            return server_error();
        };
        if second_factor {
            return Answer::page(
                200,
                pages::second_factor(
                    "account",
                    &[("step", "code"), ("csrf", &session_csrf)],
                    None,
                ),
            )
            .with_cookie(Cookie::Session(token))
            .audited(true, "password accepted; second factor asked");
        }
        Answer::redirect("account")
            .with_cookie(Cookie::Session(token))
            .audited(true, "signed in")
    }

    async fn account_code(
        &self,
        store: &Store,
        form: &[(String, String)],
        s: Session,
        peer: &str,
    ) -> Answer {
        let now = now_seconds();
        let (user_key, ip_key) = (format!("user:{}", s.username), format!("ip:{peer}"));
        let fields = [("step", "code"), ("csrf", s.csrf.as_str())];
        if let Some(wait) = self.locked_out(&user_key, &ip_key, now) {
            return Answer::page(
                429,
                pages::second_factor("account", &fields, Some(&wait_message(wait))),
            )
            .audited(false, "locked after repeated failures");
        }
        let code = field(form, "code").unwrap_or_default();
        match mfa::verify(store, &s.username, code, now).await {
            Ok(true) => {}
            Ok(false) => {
                self.count_failure(&user_key, &ip_key, &s.username, now);
                return Answer::page(
                    401,
                    pages::second_factor("account", &fields, Some(WRONG_CODE)),
                )
                .audited(false, "wrong second factor");
            }
            Err(_) => return server_error(),
        }
        self.login_limiter.succeed(&user_key);
        // A new session once fully signed in (the half-signed-in one ends).
        let _ = store.use_grant(&s.token_hash).await;
        match self.new_session(store, &s.username, true).await {
            Ok((token, _)) => Answer::redirect("account")
                .with_cookie(Cookie::Session(token))
                .audited(true, "signed in with a second factor"),
            Err(_) => server_error(),
        }
    }

    /// `GET /auth/mfa/setup`.
    pub async fn mfa_setup_page(&self, store: &Store, session: Option<Session>) -> Answer {
        let Some(s) = session.filter(|s| s.verified) else {
            return Answer::redirect("account");
        };
        match mfa::enabled(store, &s.username).await {
            Ok(true) => Answer::page(200, pages::mfa_on(false)),
            Ok(false) => Answer::page(200, pages::mfa_start(&s.csrf)),
            Err(_) => server_error(),
        }
    }

    /// `POST /auth/mfa/setup`: `begin` (a new secret, QR code and backup
    /// codes), `confirm` (a first code turns two-step sign-in on).
    pub async fn mfa_setup_submit(
        &self,
        store: &Store,
        form: &[(String, String)],
        session: Option<Session>,
        peer: &str,
    ) -> Answer {
        let s = match signed_in_form(session, form, "../account") {
            Ok(s) => s,
            Err(refused) => return refused,
        };
        match field(form, "step").unwrap_or_default() {
            "begin" => match mfa::enrol(store, &s.username).await {
                Ok(Some(e)) => Answer::page(
                    200,
                    pages::mfa_enrol(
                        &e.uri,
                        &e.secret_base32,
                        &e.qr_png_base64,
                        &e.backup_codes,
                        &s.csrf,
                        None,
                    ),
                ),
                Ok(None) => Answer::page(200, pages::mfa_on(false)),
                Err(_) => server_error(),
            },
            "confirm" => {
                let now = now_seconds();
                let (user_key, ip_key) = (format!("user:{}", s.username), format!("ip:{peer}"));
                if let Some(wait) = self.locked_out(&user_key, &ip_key, now) {
                    return Answer::page(
                        429,
                        pages::account_message("Wait a moment", &wait_message(wait), "setup"),
                    );
                }
                let code = field(form, "code").unwrap_or_default();
                match mfa::confirm(store, &s.username, code, now).await {
                    Ok(true) => Answer::page(200, pages::mfa_on(true)),
                    Ok(false) => {
                        self.count_failure(&user_key, &ip_key, &s.username, now);
                        Answer::page(
                            400,
                            pages::account_message(
                                "Two-step sign-in is not on yet",
                                "That code is not right. Check the time on your phone, then set up again.",
                                "setup",
                            ),
                        )
                    }
                    Err(_) => server_error(),
                }
            }
            _ => Answer::page(400, pages::error("unknown step")),
        }
    }

    /// `GET /auth/consents`: the apps the signed-in user allowed.
    pub async fn consents_page(&self, store: &Store, session: Option<Session>) -> Answer {
        let Some(s) = session.filter(|s| s.verified) else {
            return Answer::redirect("account");
        };
        self.render_consents(store, &s, None).await
    }

    async fn render_consents(&self, store: &Store, s: &Session, notice: Option<&str>) -> Answer {
        let Ok(rows) = store.consents_of(&s.username).await else {
            return server_error();
        };
        let items: Vec<pages::ConsentItem> = rows
            .into_iter()
            .map(
                |(client_id, client_name, scope, created)| pages::ConsentItem {
                    client_id,
                    client_name,
                    scopes: super::scopes::Scopes::parse(&scope).unwrap_or_default(),
                    allowed_on: crate::fhir::datetime::format_instant(created)
                        .chars()
                        .take(10)
                        .collect(),
                },
            )
            .collect();
        Answer::page(200, pages::consents(&items, &s.csrf, notice))
    }

    /// `POST /auth/consents`: withdraws a consent; the codes and refresh
    /// tokens the user's authorizations gave that app are revoked with it.
    pub async fn consents_submit(
        &self,
        store: &Store,
        form: &[(String, String)],
        session: Option<Session>,
    ) -> Answer {
        let s = match signed_in_form(session, form, "account") {
            Ok(s) => s,
            Err(refused) => return refused,
        };
        if field(form, "step") != Some("withdraw") {
            return Answer::page(400, pages::error("unknown step"));
        }
        let Some(client_id) = field(form, "client_id") else {
            return Answer::page(400, pages::error("the form names no app"));
        };
        match store.delete_consent(&s.username, client_id).await {
            Ok(true) => {}
            Ok(false) => {
                return Answer::page(
                    404,
                    pages::account_message(
                        "Nothing to withdraw",
                        "You have not allowed this app (or withdrew it already).",
                        "consents",
                    ),
                )
            }
            Err(_) => return server_error(),
        }
        if store
            .revoke_user_grants(&s.username, client_id)
            .await
            .is_err()
        {
            return server_error();
        }
        self.render_consents(
            store,
            &s,
            Some("Access withdrawn. The app will ask you again next time."),
        )
        .await
    }

    /// Seconds to wait when the account or the address is locked out.
    pub(crate) fn locked_out(&self, user_key: &str, ip_key: &str, now: i64) -> Option<i64> {
        self.login_limiter
            .locked(user_key, now)
            .or_else(|| self.login_limiter.locked(ip_key, now))
    }

    /// Counts a failed sign-in step against the account and the address.
    pub(crate) fn count_failure(&self, user_key: &str, ip_key: &str, username: &str, now: i64) {
        let a = self.login_limiter.fail(user_key, now);
        let b = self.login_limiter.fail(ip_key, now);
        if a || b {
            // The account name itself is not logged (it may be a person's
            // name); its hash identifies it.
            tracing::warn!(
                account = %&secrets::token_hash(username)[..12],
                "sign-in locked for a minute after repeated failures"
            );
        }
    }
}

/// Said when a code is wrong.
pub const WRONG_CODE: &str = "That code is not right, or was used already.";

pub(crate) fn wait_message(wait: i64) -> String {
    format!("Too many failed sign-ins. Wait {wait} seconds, then try again.")
}

/// The session of a form posted by a signed-in user (second factor done),
/// with its CSRF token checked; else the page to answer (`back`: the
/// account page, relative to the form's page).
fn signed_in_form(
    session: Option<Session>,
    form: &[(String, String)],
    back: &str,
) -> Result<Session, Answer> {
    let Some(s) = session.filter(|s| s.verified) else {
        return Err(Answer::page(
            401,
            pages::account_message(
                "Sign in first",
                "Your session has ended. Sign in again.",
                back,
            ),
        ));
    };
    if !secrets::constant_time_eq(field(form, "csrf").unwrap_or_default(), &s.csrf) {
        return Err(Answer::page(
            403,
            pages::error("the form did not come from this page (CSRF check failed)"),
        ));
    }
    Ok(s)
}
