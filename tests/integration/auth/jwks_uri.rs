//! `private_key_jwt` clients registered with a `jwks_uri`: the token
//! endpoint fetches their keys from a small local key server, caches them,
//! fetches again once when an assertion names a new key id, and refuses
//! what it cannot use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::backend::{assertion, claims, es384_key, jwt_token_request};
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(keys_come_from_the_jwks_uri, jwks_uri_rules);

/// A key server on a loopback port: `/jwks.json` serves what `jwks` holds
/// (counting the fetches), `/big.json` a document over the size limit.
struct KeyServer {
    base: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn key_server(jwks: Value) -> KeyServer {
    let jwks = Arc::new(Mutex::new(jwks));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (j, f) = (jwks.clone(), fetches.clone());
    let router = axum::Router::new()
        .route(
            "/jwks.json",
            get(move || {
                let (j, f) = (j.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.lock().unwrap().clone())
                }
            }),
        )
        .route(
            "/big.json",
            get(|| async { axum::Json(json!({"keys": [], "pad": "x".repeat(100_000)})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    KeyServer {
        base,
        jwks,
        fetches,
    }
}

/// Registers a backend client through `/auth/register` (the suite's
/// administrator token): (status, body).
async fn register(s: &TestServer, meta: Value) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}/auth/register", s.origin))
        .json(&meta)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn backend_meta(jwks_uri: &str) -> Value {
    json!({
        "client_name": "Payer",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": jwks_uri,
        "scope": "system/Patient.rs"
    })
}

async fn keys_come_from_the_jwks_uri(s: &TestServer) {
    let aud = format!("{}/auth/token", s.origin);
    let (der1, jwk1) = es384_key("k1");
    let (der2, jwk2) = es384_key("k2");
    let (key1, key2) = (
        EncodingKey::from_ec_der(&der1),
        EncodingKey::from_ec_der(&der2),
    );
    let keys = key_server(json!({ "keys": [jwk1] })).await;
    let (status, body) = register(s, backend_meta(&format!("{}/jwks.json", keys.base))).await;
    assert_eq!(status, 201, "{body}");
    let id = body["client_id"].as_str().unwrap().to_string();

    let sign = |key: &EncodingKey, kid: &str, jti: &str| {
        assertion(key, Algorithm::ES384, kid, &claims(&id, &aud, 60, jti))
    };
    let (status, body) = jwt_token_request(s, &sign(&key1, "k1", "a1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
    // Cached: no second fetch.
    let (status, _) = jwt_token_request(s, &sign(&key1, "k1", "a2")).await;
    assert_eq!(status, 200);
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);

    // The client rotates its keys: a new kid makes one fetch, and works.
    *keys.jwks.lock().unwrap() = json!({ "keys": [jwk2] });
    let (status, body) = jwt_token_request(s, &sign(&key2, "k2", "a3")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    // An unknown kid: one fetch more, then 401 naming the cause.
    let (status, body) = jwt_token_request(s, &sign(&key1, "k9", "a4")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"].as_str().unwrap().contains("kid"),
        "{body}"
    );
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 3);
    // The old key is gone from the set: its signature no longer verifies.
    let (status, _) = jwt_token_request(s, &sign(&key1, "k2", "a5")).await;
    assert_eq!(status, 401);
}

async fn jwks_uri_rules(s: &TestServer) {
    let aud = format!("{}/auth/token", s.origin);
    // https required (plain http only to a loopback address).
    let (status, body) = register(s, backend_meta("http://keys.example.org/jwks.json")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("https"));
    // Not both jwks and jwks_uri.
    let (_, jwk) = es384_key("k1");
    let mut both = backend_meta("https://keys.example.org/jwks.json");
    both["jwks"] = json!({ "keys": [jwk] });
    let (status, body) = register(s, both).await;
    assert_eq!(status, 400, "{body}");

    // A key set over 64 KiB is refused, and nothing answering neither.
    let keys = key_server(json!({ "keys": [] })).await;
    let (der, _) = es384_key("k1");
    let key = EncodingKey::from_ec_der(&der);
    for (path, cause) in [("/big.json", "larger than"), ("/missing", "HTTP 404")] {
        let (status, body) = register(s, backend_meta(&format!("{}{path}", keys.base))).await;
        assert_eq!(status, 201, "{body}");
        let id = body["client_id"].as_str().unwrap();
        let a = assertion(&key, Algorithm::ES384, "k1", &claims(id, &aud, 60, "j"));
        let (status, body) = jwt_token_request(s, &a).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(cause),
            "{body}"
        );
    }
}
