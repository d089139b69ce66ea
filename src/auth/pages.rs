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
