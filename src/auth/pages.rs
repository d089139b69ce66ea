//! Server-rendered pages of the authorization endpoint: sign-in, consent
//! (every scope in plain words), patient picker, errors. Plain HTML forms:
//! no script, labelled fields, readable on a phone. Every value is escaped.

use super::scopes::Scopes;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input[type=text],input[type=password],input[type=search]{width:100%;padding:.6rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.2rem;padding:.7rem 1.2rem;font-size:1rem;margin-right:.5rem}\
.error{background:#fde8e8;border-left:4px solid #c81e1e;padding:.6rem}\
ul.scopes li{margin:.3rem 0}fieldset{border:1px solid #ccc;margin-top:1rem}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Charaka</title><style>{STYLE}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

fn error_box(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

/// The sign-in page.
pub fn login(client_name: &str, request: &str, csrf: &str, error: Option<&str>) -> String {
    page(
        "Sign in",
        &format!(
            "<p><strong>{}</strong> asks to use your health records on this server.</p>{}\
             <form method=\"post\" action=\"authorize\">{}{}{}\
             <label for=\"username\">Username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            escape(client_name),
            error_box(error),
            hidden("step", "login"),
            hidden("request", request),
            hidden("csrf", csrf),
        ),
    )
}

/// The second step of a sign-in: a code from the authenticator app or a
/// backup code. `fields` are the form's hidden fields.
pub fn second_factor(action: &str, fields: &[(&str, &str)], error: Option<&str>) -> String {
    let hidden_fields: String = fields.iter().map(|(k, v)| hidden(k, v)).collect();
    page(
        "Enter your code",
        &format!(
            "<p>Open your authenticator app and enter the 6-digit code it shows for Charaka, \
             or one of your backup codes.</p>{}\
             <form method=\"post\" action=\"{}\">{hidden_fields}\
             <label for=\"code\">Code</label>\
             <input type=\"text\" id=\"code\" name=\"code\" autocomplete=\"one-time-code\" \
             autocapitalize=\"characters\" spellcheck=\"false\" required autofocus>\
             <button type=\"submit\">Continue</button></form>",
            error_box(error),
            escape(action),
        ),
    )
}

/// The sign-in page of the account pages (`/auth/account`).
pub fn account_login(csrf: &str, error: Option<&str>) -> String {
    page(
        "Sign in to your account",
        &format!(
            "{}<form method=\"post\" action=\"account\">{}{}\
             <label for=\"username\">Username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            error_box(error),
            hidden("step", "login"),
            hidden("csrf", csrf),
        ),
    )
}

/// The account page: what a signed-in user can manage.
pub fn account_home(username: &str, mfa_on: bool, csrf: &str) -> String {
    let mfa = if mfa_on {
        "<p>Two-step sign-in is <strong>on</strong>.</p>".to_string()
    } else {
        "<p>Two-step sign-in is <strong>off</strong>. \
         <a href=\"mfa/setup\">Turn on two-step sign-in</a></p>"
            .to_string()
    };
    page(
        "Your account",
        &format!(
            "<p>Signed in as <strong>{}</strong>.</p>{mfa}\
             <p><a href=\"consents\">Apps you allowed</a></p>\
             <form method=\"post\" action=\"account\">{}{}\
             <button type=\"submit\">Sign out</button></form>",
            escape(username),
            hidden("step", "logout"),
            hidden("csrf", csrf),
        ),
    )
}

/// The start of two-step sign-in set-up.
pub fn mfa_start(csrf: &str) -> String {
    page(
        "Two-step sign-in",
        &format!(
            "<p>With two-step sign-in, signing in needs your password and a code from an \
             authenticator app on your phone.</p>\
             <form method=\"post\" action=\"setup\">{}{}\
             <button type=\"submit\">Set up two-step sign-in</button></form>\
             <p><a href=\"../account\">Back to your account</a></p>",
            hidden("step", "begin"),
            hidden("csrf", csrf),
        ),
    )
}

/// The enrolment page: the QR code, the secret, the backup codes (shown
/// this once) and the form confirming a first code.
pub fn mfa_enrol(
    uri: &str,
    secret_base32: &str,
    qr_png_base64: &str,
    backup_codes: &[String],
    csrf: &str,
    error: Option<&str>,
) -> String {
    let codes: String = backup_codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", escape(c)))
        .collect();
    page(
        "Set up two-step sign-in",
        &format!(
            "{}<p>1. Scan this code with your authenticator app.</p>\
             <p><img src=\"data:image/png;base64,{}\" alt=\"QR code of your two-step sign-in key\" width=\"240\" height=\"240\"></p>\
             <p>Or enter this key by hand: <code id=\"secret\">{}</code></p>\
             <p><small>Link for apps on this device: <a id=\"otpauth\" href=\"{}\">{}</a></small></p>\
             <p>2. Keep these backup codes somewhere safe. Each works once, in place of a code, \
             if you lose your phone. They are not shown again.</p><ul class=\"codes\">{codes}</ul>\
             <p>3. Enter the code your app shows now.</p>\
             <form method=\"post\" action=\"setup\">{}{}\
             <label for=\"code\">Code</label>\
             <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
             <button type=\"submit\">Turn on two-step sign-in</button></form>",
            error_box(error),
            escape(qr_png_base64),
            escape(secret_base32),
            escape(uri),
            escape(uri),
            hidden("step", "confirm"),
            hidden("csrf", csrf),
        ),
    )
}

/// Two-step sign-in is on.
pub fn mfa_on(just_now: bool) -> String {
    page(
        "Two-step sign-in",
        &format!(
            "<p>{}</p><p>If you lose your phone and your backup codes, an administrator can \
             reset it for you.</p><p><a href=\"../account\">Back to your account</a></p>",
            if just_now {
                "Two-step sign-in is now on. From your next sign-in you will be asked for a code."
            } else {
                "Two-step sign-in is on."
            }
        ),
    )
}

/// A message page with a link back to the account page.
pub fn account_message(title: &str, message: &str, back: &str) -> String {
    page(
        title,
        &format!(
            "{}<p><a href=\"{}\">Continue</a></p>",
            error_box(Some(message)),
            escape(back)
        ),
    )
}

/// A patient to choose from.
pub struct PatientChoice {
    pub id: String,
    pub label: String,
}

/// The consent page, with the patient picker when a patient must be chosen.
pub fn consent(
    client_name: &str,
    scopes: &Scopes,
    request: &str,
    csrf: &str,
    picker: Option<(&str, &[PatientChoice])>,
    error: Option<&str>,
) -> String {
    let items = scope_items(scopes);
    let picker_html = match picker {
        Some((query, choices)) => {
            let mut list = String::new();
            for (i, c) in choices.iter().enumerate() {
                list.push_str(&format!(
                    "<div><input type=\"radio\" id=\"p{i}\" name=\"patient\" value=\"{}\"{}>\
                     <label for=\"p{i}\" style=\"display:inline;font-weight:400\">{}</label></div>",
                    escape(&c.id),
                    if choices.len() == 1 { " checked" } else { "" },
                    escape(&c.label)
                ));
            }
            if choices.is_empty() {
                list.push_str("<p>No patient matches. Search by family or given name.</p>");
            }
            format!(
                "<fieldset><legend>Choose the patient</legend>\
                 <label for=\"q\">Search patients by name</label>\
                 <input type=\"search\" id=\"q\" name=\"q\" value=\"{}\">\
                 <button type=\"submit\" name=\"step\" value=\"search\">Search</button>{list}</fieldset>",
                escape(query)
            )
        }
        None => String::new(),
    };
    page(
        "Allow access?",
        &format!(
            "<p><strong>{}</strong> asks to:</p><ul class=\"scopes\">{items}</ul>{}\
             <form method=\"post\" action=\"authorize\">{}{}{picker_html}\
             <button type=\"submit\" name=\"step\" value=\"approve\">Allow</button>\
             <button type=\"submit\" name=\"step\" value=\"deny\">Deny</button></form>\
             <p><small>You can withdraw this permission later; the app is then asked again.</small></p>",
            escape(client_name),
            error_box(error),
            hidden("request", request),
            hidden("csrf", csrf),
        ),
    )
}

/// Every scope of a grant in plain words, as list items.
fn scope_items(scopes: &Scopes) -> String {
    let mut items = String::new();
    for r in &scopes.resources {
        items.push_str(&format!("<li>{}</li>", escape(&r.describe())));
    }
    let flags = [
        (
            scopes.openid && scopes.fhir_user,
            "Know who you are (your name and role)",
        ),
        (
            scopes.offline_access,
            "Keep access after you sign out, until you revoke it",
        ),
        (scopes.online_access, "Keep access while you are signed in"),
        (scopes.launch_patient, "Work with one patient you choose"),
    ];
    for (on, text) in flags {
        if on {
            items.push_str(&format!("<li>{}</li>", escape(text)));
        }
    }
    items
}

/// One app a user allowed, for the consents page.
pub struct ConsentItem {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Scopes,
    /// `YYYY-MM-DD`.
    pub allowed_on: String,
}

/// The apps a signed-in user allowed, each with a form withdrawing it.
pub fn consents(items: &[ConsentItem], csrf: &str, notice: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!("<p role=\"status\">{}</p>", escape(n)));
    }
    if items.is_empty() {
        body.push_str("<p>You have not allowed any app.</p>");
    }
    for item in items {
        body.push_str(&format!(
            "<section><h2>{}</h2><p>Allowed on {}. It may:</p><ul class=\"scopes\">{}</ul>\
             <form method=\"post\" action=\"consents\">{}{}{}\
             <button type=\"submit\">Withdraw access of {}</button></form></section>",
            escape(&item.client_name),
            escape(&item.allowed_on),
            scope_items(&item.scopes),
            hidden("step", "withdraw"),
            hidden("client_id", &item.client_id),
            hidden("csrf", csrf),
            escape(&item.client_name),
        ));
    }
    page(
        "Apps you allowed",
        &format!(
            "{body}<p><small>Withdrawing ends the app's long-lived access (its refresh \
             tokens) at once; an access token it holds still works until it expires \
             (within the hour, by default). The app asks you again next time.</small></p>\
             <p><a href=\"account\">Back to your account</a></p>"
        ),
    )
}

/// An error that cannot be sent back to the app (unknown client, wrong
/// redirect URI): shown to the user instead.
pub fn error(message: &str) -> String {
    page(
        "This sign-in request cannot be completed",
        &format!(
            "{}<p>Close this window and start again from the app. If this keeps happening, tell the app's provider.</p>",
            error_box(Some(message))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_it_shows() {
        let html = login("<script>alert(1)</script>", "r\"x", "c", Some("<b>"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("value=\"r&quot;x\""));
        assert!(html.contains("&lt;b&gt;"));
    }

    #[test]
    fn consent_lists_scopes_in_plain_words() {
        let s = Scopes::parse("patient/Observation.rs offline_access launch/patient").unwrap();
        let choices = [PatientChoice {
            id: "p1".into(),
            label: "Alpha, born 1970".into(),
        }];
        let html = consent("App", &s, "r", "c", Some(("al", &choices)), None);
        assert!(html.contains("Read and search Observation resources of the selected patient"));
        assert!(html.contains("Keep access after you sign out"));
        assert!(html.contains("value=\"p1\" checked"));
    }
}
