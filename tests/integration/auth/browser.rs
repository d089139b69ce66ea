//! A full standalone launch in real headless Chromium (through chromedriver
//! and fantoccini): the app's authorize URL, the sign-in page (typed
//! username and password), consent, the patient picker (search, choose),
//! the redirect to a loopback redirect URI this test listens on, the code
//! exchanged with the `oauth2` crate, and a FHIR read with the token.
//!
//! Needs Debian's `chromium` and `chromium-driver`. In CI (`CI` set) their
//! absence fails the test; elsewhere the test says it did not run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse, TokenUrl,
};
use serde_json::{json, Map};
use tokio::sync::mpsc;

use super::flows::{seed, PASSWORD};
use super::send_as;
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(standalone_launch_in_headless_chromium);

/// The flags headless Chromium needs in a container, and nothing that
/// talks to the network on its own.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

fn find_program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver on a free loopback port; returns it and its URL.
async fn start_driver(program: &std::path::Path) -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    // Ready when it accepts connections (polled; no assertion on time).
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, format!("http://127.0.0.1:{port}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start listening");
}

/// The app's redirect URI: a loopback server handing each callback's
/// query parameters to the test.
async fn callback_server() -> (String, mpsc::Receiver<Vec<(String, String)>>) {
    let (tx, rx) = mpsc::channel(4);
    let router = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |uri: http::Uri| {
            let tx = tx.clone();
            async move {
                let params = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let _ = tx.send(params).await;
                axum::response::Html("<p id=\"done\">Signed in. You can close this window.</p>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, rx)
}

async fn standalone_launch_in_headless_chromium(s: &TestServer) {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        if std::env::var_os("CI").is_some() {
            panic!("CI needs chromium and chromedriver (Debian: chromium chromium-driver)");
        }
        eprintln!(
            "standalone_launch_in_headless_chromium did NOT run: chromium or chromedriver is not installed (Debian: apt-get install chromium chromium-driver)"
        );
        return;
    };

    seed(s).await;
    let (redirect, mut callbacks) = callback_server().await;
    let spec = charaka::auth::accounts::ClientSpec {
        name: "Growth chart".into(),
        kind: "public".into(),
        redirect_uris: vec![redirect.clone()],
        scope: "launch/patient patient/*.rs openid fhirUser".into(),
        ..Default::default()
    };
    let client_id = charaka::auth::accounts::add_client(&s.fhir().store, &spec)
        .await
        .unwrap()
        .client_id;
    let oauth = BasicClient::new(ClientId::new(client_id))
        .set_auth_uri(AuthUrl::new(format!("{}/auth/authorize", s.origin)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/auth/token", s.origin)).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize, state) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(
            ["launch/patient", "patient/*.rs", "openid", "fhirUser"]
                .map(|s| Scope::new(s.to_string())),
        )
        .add_extra_param("aud", &s.base)
        .set_pkce_challenge(challenge)
        .url();

    let (_driver, driver_url) = start_driver(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut caps = Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a Chromium session");

    let steps = async {
        browser.goto(authorize.as_str()).await?;
        // The sign-in page.
        browser
            .find(Locator::Id("username"))
            .await?
            .send_keys("dr")
            .await?;
        browser
            .find(Locator::Id("password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        browser
            .find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        // Consent with the patient picker: search, choose, allow.
        let q = browser.wait().for_element(Locator::Id("q")).await?;
        let consent = browser.source().await?;
        assert!(consent.contains("Growth chart"), "{consent}");
        assert!(
            consent.contains("Read and search all kinds of data of the selected patient"),
            "{consent}"
        );
        q.send_keys("beta").await?;
        browser
            .find(Locator::Css("button[value=search]"))
            .await?
            .click()
            .await?;
        // The search reloads the page: wait for the new one (its search box
        // carries the query as an attribute, which typing never sets), so
        // that no element of the old page is used after it is gone.
        browser
            .wait()
            .for_element(Locator::Css("input#q[value=beta]"))
            .await?;
        browser
            .wait()
            .for_element(Locator::Css("input[name=patient][value=p2]"))
            .await?
            .click()
            .await?;
        assert!(!browser.source().await?.contains("Alpha"));
        browser
            .find(Locator::Css("button[value=approve]"))
            .await?
            .click()
            .await?;
        browser.wait().for_element(Locator::Id("done")).await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    if let Err(e) = &steps {
        let url = browser.current_url().await.map(|u| u.to_string());
        let page = browser.source().await.unwrap_or_default();
        let _ = browser.close().await;
        panic!("the browser steps: {e} (at {url:?}): {page}");
    }
    let _ = browser.close().await;

    let params = callbacks.recv().await.expect("the app's callback");
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("state").as_deref(), Some(state.secret().as_str()));
    let code = get("code").expect("a code");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange");
    let access = token.access_token().secret();
    let read = send_as(s, Some(access), reqwest::Method::GET, "Patient/p2", None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json()["name"][0]["family"], "Beta");
    // The token is for the chosen patient only.
    let other = send_as(s, Some(access), reqwest::Method::GET, "Patient/p1", None).await;
    assert_eq!(other.status, 404);
}
