//! Discovery, client authentication at the token endpoint
//! (client_secret_basic/post, private_key_jwt RS384/ES384), bearer checks,
//! introspection and revocation.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::{json, Value};

use super::{post_form, register, send_as};
use crate::harness::TestServer;
use crate::on_both_databases;

on_both_databases!(
    discovery_documents_and_open_paths,
    requests_without_a_valid_token_get_401,
    client_secret_basic_and_post,
    private_key_jwt_rs384_and_es384,
    private_key_jwt_rules,
    introspection_and_revocation,
    dynamic_registration_needs_an_administrator,
);

async fn discovery_documents_and_open_paths(s: &TestServer) {
    let r = send_as(
        s,
        None,
        Method::GET,
        ".well-known/smart-configuration",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    for field in [
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
    ] {
        assert!(
            c[field].as_str().is_some_and(|v| v.starts_with("http")),
            "{field}: {c}"
        );
    }
    assert_eq!(c["code_challenge_methods_supported"], json!(["S256"]));
    let caps: Vec<&str> = c["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for cap in [
        "launch-standalone",
        "client-confidential-asymmetric",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(caps.contains(&cap), "{cap}");
    }
    assert_eq!(c["token_endpoint"], format!("{}/auth/token", s.origin));
    // CORS for browser apps: the origins of registered redirect URIs.
    let spec = charaka::auth::accounts::ClientSpec {
        name: "browser app".into(),
        kind: "public".into(),
        redirect_uris: vec!["https://app.example.org/callback".into()],
        scope: "launch/patient patient/*.rs".into(),
        ..Default::default()
    };
    charaka::auth::accounts::add_client(&s.fhir().store, &spec)
        .await
        .unwrap();
    s.app().guard.cors.refresh(&s.fhir().store).await;
    let cors = s
        .anonymous
        .get(s.url(".well-known/smart-configuration"))
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );

    let oidc = send_as(
        s,
        None,
        Method::GET,
        ".well-known/openid-configuration",
        None,
    )
    .await;
    assert_eq!(oidc.json()["issuer"], c["issuer"]);
    let jwks: Value = s
        .anonymous
        .get(format!("{}/auth/jwks", s.origin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "private key material leaked"
    );

    // The CapabilityStatement is open and names the same endpoints.
    let meta = send_as(s, None, Method::GET, "metadata", None).await;
    assert_eq!(meta.status, 200);
    let security = &meta.json()["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    let uris = security["extension"][0]["extension"].as_array().unwrap();
    assert!(uris
        .iter()
        .any(|u| u["url"] == "token" && u["valueUri"] == c["token_endpoint"]));
}

async fn requests_without_a_valid_token_get_401(s: &TestServer) {
    let none = send_as(s, None, Method::GET, "Patient", None).await;
    none.outcome(401);
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));

    let garbage = send_as(s, Some("not-a-jwt"), Method::GET, "Patient", None).await;
    garbage.outcome(401);
    assert!(garbage
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));

    // A real token, tampered with: its scope widened in the payload.
    let token = super::token_for(s, "system/Patient.rs", None, "practitioner");
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    payload["scope"] = json!("system/*.cruds");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    send_as(s, Some(&forged), Method::GET, "Patient", None)
        .await
        .outcome(401);

    // alg: none, unsigned.
    let header = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{header}.{}.", parts[1]);
    send_as(s, Some(&unsigned), Method::GET, "Patient", None)
        .await
        .outcome(401);

    // Expired.
    let auth = &s.app().auth;
    let now = charaka::auth::now_seconds();
    let expired = auth.sign(&json!({
        "iss": auth.issuer, "aud": auth.issuer, "sub": "x", "client_id": "x",
        "scope": "system/*.cruds", "iat": now - 7200, "exp": now - 3600, "jti": "old"
    }));
    let r = send_as(s, Some(&expired), Method::GET, "Patient", None).await;
    r.outcome(401);
    assert!(r.text.contains("expired"), "{}", r.text);

    // Signed by us but for another server (aud).
    let elsewhere = auth.sign(&json!({
        "iss": auth.issuer, "aud": "https://other.example.org/fhir", "sub": "x", "client_id": "x",
        "scope": "system/*.cruds", "iat": now, "exp": now + 60, "jti": "aud"
    }));
    send_as(s, Some(&elsewhere), Method::GET, "Patient", None)
        .await
        .outcome(401);

    // The valid token still works.
    assert_eq!(
        send_as(s, Some(&token), Method::GET, "Patient", None)
            .await
            .status,
        200
    );
}

async fn client_secret_basic_and_post(s: &TestServer) {
    let (id, secret) = register(
        s,
        "symmetric",
        "system/Patient.rs system/Observation.cruds",
        None,
    )
    .await;
    let secret = secret.unwrap();

    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "system/Patient.rs");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        send_as(s, Some(&token), Method::GET, "Patient", None)
            .await
            .status,
        200
    );
    // The token does not reach what it was not granted.
    let r = send_as(s, Some(&token), Method::GET, "Observation", None).await;
    let oo = r.outcome(403);
    assert!(oo["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("Observation"));

    // client_secret_post; asking beyond the allowed scopes is cut down.
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "system/Patient.cruds system/Encounter.rs"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs");

    // Wrong secret, unknown client, user scopes, no grantable scope.
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "client_credentials")],
        Some((&id, "wrong")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "client_credentials")],
        Some(("nobody", "x")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "user/Patient.rs"),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Claim.rs"),
        ],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "password")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // A public client cannot use client_credentials.
    let (public, _) = register(s, "public", "system/Patient.rs", None).await;
    let (status, body) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "client_credentials"), ("client_id", &public)],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    // A revoked client is refused.
    assert!(s.fhir().store.revoke_client(&id).await.unwrap());
    let (status, _) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 401);
}

/// An ES384 key pair: (PKCS#8 DER, public JWK).
pub(super) fn es384_key(kid: &str) -> (Vec<u8>, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({
        "kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384",
        "x": engine.encode(&point[1..49]), "y": engine.encode(&point[49..97])
    });
    (pkcs8.as_ref().to_vec(), jwk)
}

fn rsa_key() -> (EncodingKey, Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let pem = std::fs::read(dir.join("rsa-test-key.pem")).unwrap();
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rsa-test-jwks.json")).unwrap())
            .unwrap();
    (EncodingKey::from_rsa_pem(&pem).unwrap(), jwks)
}

pub(super) fn assertion(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub(super) fn claims(client_id: &str, aud: &str, exp_in: i64, jti: &str) -> Value {
    let now = charaka::auth::now_seconds();
    json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in, "jti": jti})
}

pub(super) async fn jwt_token_request(s: &TestServer, assertion: &str) -> (u16, Value) {
    post_form(
        s,
        "/auth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

async fn private_key_jwt_rs384_and_es384(s: &TestServer) {
    let aud = format!("{}/auth/token", s.origin);
    let (rsa, rsa_jwks) = rsa_key();
    let (rsa_client, _) = register(s, "asymmetric", "system/Patient.rs", Some(rsa_jwks)).await;
    let a = assertion(
        &rsa,
        Algorithm::RS384,
        "rsa-test",
        &claims(&rsa_client, &aud, 240, "r1"),
    );
    let (status, body) = jwt_token_request(s, &a).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        send_as(s, Some(token), Method::GET, "Patient", None)
            .await
            .status,
        200
    );

    let (der, jwk) = es384_key("ec-1");
    let (ec_client, _) = register(
        s,
        "asymmetric",
        "system/Patient.rs",
        Some(json!({"keys": [jwk]})),
    )
    .await;
    let key = EncodingKey::from_ec_der(&der);
    let a = assertion(
        &key,
        Algorithm::ES384,
        "ec-1",
        &claims(&ec_client, &aud, 120, "e1"),
    );
    let (status, body) = jwt_token_request(s, &a).await;
    assert_eq!(status, 200, "{body}");
}

async fn private_key_jwt_rules(s: &TestServer) {
    let aud = format!("{}/auth/token", s.origin);
    let (der, jwk) = es384_key("ec-2");
    let (client, _) = register(
        s,
        "asymmetric",
        "system/Patient.rs",
        Some(json!({"keys": [jwk]})),
    )
    .await;
    let key = EncodingKey::from_ec_der(&der);
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        body["error_description"].as_str().unwrap().to_string()
    };

    // Used once: fine. The same jti again: replay.
    let a = assertion(
        &key,
        Algorithm::ES384,
        "ec-2",
        &claims(&client, &aud, 60, "once"),
    );
    assert_eq!(jwt_token_request(s, &a).await.0, 200);
    let why = refused(jwt_token_request(s, &a).await);
    assert!(why.contains("used before"), "{why}");

    // exp more than five minutes ahead.
    let a = assertion(
        &key,
        Algorithm::ES384,
        "ec-2",
        &claims(&client, &aud, 600, "long"),
    );
    assert!(refused(jwt_token_request(s, &a).await).contains("five minutes"));

    // Expired.
    let a = assertion(
        &key,
        Algorithm::ES384,
        "ec-2",
        &claims(&client, &aud, -10, "late"),
    );
    assert!(refused(jwt_token_request(s, &a).await).contains("expired"));

    // Wrong audience.
    let a = assertion(
        &key,
        Algorithm::ES384,
        "ec-2",
        &claims(&client, "https://elsewhere/token", 60, "aud"),
    );
    assert!(refused(jwt_token_request(s, &a).await).contains("aud"));

    // Signed by a key that is not registered.
    let (other_der, _) = es384_key("ec-2");
    let a = assertion(
        &EncodingKey::from_ec_der(&other_der),
        Algorithm::ES384,
        "ec-2",
        &claims(&client, &aud, 60, "forged"),
    );
    refused(jwt_token_request(s, &a).await);

    // HS256 (a shared-secret algorithm) is not accepted.
    let a = assertion(
        &EncodingKey::from_secret(b"secret"),
        Algorithm::HS256,
        "ec-2",
        &claims(&client, &aud, 60, "hs"),
    );
    assert!(refused(jwt_token_request(s, &a).await).contains("RS384 or ES384"));
}

async fn introspection_and_revocation(s: &TestServer) {
    let (id, secret) = register(s, "symmetric", "system/Patient.rs", None).await;
    let secret = secret.unwrap();
    let (_, body) = post_form(
        s,
        "/auth/token",
        &[("grant_type", "client_credentials")],
        Some((&id, &secret)),
    )
    .await;
    let token = body["access_token"].as_str().unwrap().to_string();

    let (status, info) = post_form(
        s,
        "/auth/introspect",
        &[("token", &token)],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], id.as_str());
    assert_eq!(info["scope"], "system/Patient.rs");

    // Another client learns nothing about it.
    let (other, other_secret) = register(s, "symmetric", "system/Patient.rs", None).await;
    let (_, info) = post_form(
        s,
        "/auth/introspect",
        &[("token", &token)],
        Some((&other, other_secret.as_deref().unwrap())),
    )
    .await;
    assert_eq!(info["active"], false);
    // Nor does an anonymous caller.
    let (status, _) = post_form(s, "/auth/introspect", &[("token", &token)], None).await;
    assert_eq!(status, 401);

    // Revoke: the token stops working at once.
    let (status, _) = post_form(
        s,
        "/auth/revoke",
        &[("token", &token)],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200);
    send_as(s, Some(&token), Method::GET, "Patient", None)
        .await
        .outcome(401);
    let (_, info) = post_form(
        s,
        "/auth/introspect",
        &[("token", &token)],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(info["active"], false);
    // Revoking an unknown token is not an error (RFC 7009).
    let (status, _) = post_form(
        s,
        "/auth/revoke",
        &[("token", "unknown")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, 200);
}

async fn dynamic_registration_needs_an_administrator(s: &TestServer) {
    let meta = json!({
        "client_name": "Growth chart",
        "redirect_uris": ["https://apps.example.org/growth/callback"],
        "token_endpoint_auth_method": "none",
        "scope": "launch/patient patient/Observation.rs openid fhirUser"
    });
    // Anonymous: 401. A non-administrator: 403.
    let r = s
        .anonymous
        .post(format!("{}/auth/register", s.origin))
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let weak = super::token_for(s, "system/Patient.rs", None, "practitioner");
    let r = s
        .anonymous
        .post(format!("{}/auth/register", s.origin))
        .bearer_auth(&weak)
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The suite's administrator token registers it.
    let r = s
        .client
        .post(format!("{}/auth/register", s.origin))
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let out: Value = r.json().await.unwrap();
    assert!(out["client_id"].as_str().is_some());
    assert!(
        out.get("client_secret").is_none(),
        "public clients get no secret"
    );
    let stored = s
        .fhir()
        .store
        .client(out["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.kind, "public");

    // Bad metadata: a redirect URI with a fragment.
    let r = s
        .client
        .post(format!("{}/auth/register", s.origin))
        .json(&json!({"client_name": "x", "redirect_uris": ["https://a/b#c"], "token_endpoint_auth_method": "none", "scope": "openid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["error"], "invalid_client_metadata");
}
