//! Token checking cost per request (`cargo bench --bench auth`): a token's
//! first use (ES256 signature, issuer, audience, expiry) and every later use
//! (the verified-token cache), each followed by building the caller's
//! `Access` from the claims.

use std::time::Instant;

use charaka::auth::access::Access;
use charaka::auth::keys;
use charaka::auth::tokens::{self, AccessClaims, TokenCache};

fn main() {
    let key = keys::load(&keys::generate(0)).expect("key loads");
    let now = charaka::auth::now_seconds();
    let claims = AccessClaims {
        iss: "http://localhost/fhir".into(),
        aud: "http://localhost/fhir".into(),
        sub: "bench".into(),
        client_id: "bench".into(),
        scope: "launch/patient openid fhirUser patient/*.rs user/Observation.cruds".into(),
        iat: now,
        exp: now + 3600,
        jti: "j".into(),
        patient: Some("p1".into()),
        encounter: None,
        fhir_user: None,
        role: Some("practitioner".into()),
    };
    let token = tokens::sign(&claims, &key);
    let keys = vec![key];
    let n = 20_000;

    let started = Instant::now();
    for _ in 0..n {
        let c = tokens::verify(&token, &keys, &claims.iss, &claims.aud).expect("valid");
        std::hint::black_box(Access::from_claims(&c));
    }
    let first_use = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    let cache = TokenCache::default();
    cache.put(&token, &claims);
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cache.get(&token, now).expect("cached").access);
    }
    let cached = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    println!("token check, first use (ES256 verify + claims + Access): {first_use:.1} µs");
    println!("token check, cached (lookup of the verified caller):    {cached:.2} µs");
}
