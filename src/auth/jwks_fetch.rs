//! Keys of `private_key_jwt` clients registered by `jwks_uri` (SMART
//! Backend Services): fetched over HTTPS (plain HTTP only to a loopback
//! address), 5-second time limit, at most 64 KiB, no redirects; cached per
//! URI for five minutes; fetched again, once, when an assertion names a key
//! id the cached set lacks (the client rotated its keys). How often that
//! can happen is bounded by the limit on failed `/auth/*` requests per
//! address.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

/// How long a fetched key set is used before it is fetched again.
const TTL: Duration = Duration::from_secs(300);
/// Time limit of one fetch.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest accepted key set document.
const MAX_BYTES: usize = 64 * 1024;

/// The process's key sets by URI.
static CACHE: LazyLock<Fetcher> = LazyLock::new(Fetcher::new);

struct Fetcher {
    http: reqwest::Client,
    sets: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

/// Whether `uri` may be registered as a `jwks_uri`: HTTPS, or HTTP to a
/// loopback address (a key server on the same machine, and the tests).
pub fn allowed_uri(uri: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(uri).map_err(|e| format!("jwks_uri `{uri}`: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "jwks_uri `{uri}` must be an https URL (http only for a loopback address)"
        )),
    }
    .and_then(|()| {
        if parsed.fragment().is_some() {
            Err(format!("jwks_uri `{uri}` must not have a fragment"))
        } else {
            Ok(())
        }
    })
}

impl Fetcher {
    fn new() -> Fetcher {
        Fetcher {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("charaka/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("the HTTP client builds"),
            sets: Mutex::new(HashMap::new()),
        }
    }

    async fn fetch(&self, uri: &str) -> Result<Arc<JwkSet>, String> {
        allowed_uri(uri)?;
        let fail = |why: String| format!("the client's jwks_uri could not be read: {why}");
        let mut response = self
            .http
            .get(uri)
            .header("accept", "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| fail(without_url(e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status().as_u16())));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_BYTES)
        {
            return Err(fail(format!("larger than {MAX_BYTES} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(without_url(e)))? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(fail(format!("larger than {MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("not a JSON Web Key Set ({e})")))?;
        let set = Arc::new(set);
        self.sets
            .lock()
            .expect("jwks cache lock")
            .insert(uri.to_string(), (Instant::now(), set.clone()));
        Ok(set)
    }

    fn cached(&self, uri: &str) -> Option<Arc<JwkSet>> {
        let sets = self.sets.lock().expect("jwks cache lock");
        sets.get(uri)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, set)| set.clone())
    }
}

fn without_url(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    if timeout {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else {
        e.to_string()
    }
}

/// The key set at `uri` with a key `kid` (any key when None): the cached
/// set when it has one, else fetched (again).
pub async fn key_set(uri: &str, kid: Option<&str>) -> Result<Arc<JwkSet>, String> {
    let has = |set: &JwkSet| kid.is_none_or(|k| set.find(k).is_some());
    if let Some(set) = CACHE.cached(uri) {
        if has(&set) {
            return Ok(set);
        }
    }
    CACHE.fetch(uri).await
}

#[cfg(test)]
mod tests {
    use super::allowed_uri;

    #[test]
    fn https_or_loopback_http_only() {
        assert!(allowed_uri("https://keys.example.org/jwks.json").is_ok());
        assert!(allowed_uri("http://127.0.0.1:8443/jwks").is_ok());
        assert!(allowed_uri("http://[::1]/jwks").is_ok());
        assert!(allowed_uri("http://localhost/jwks").is_ok());
        assert!(allowed_uri("http://keys.example.org/jwks.json").is_err());
        assert!(allowed_uri("file:///etc/passwd").is_err());
        assert!(allowed_uri("https://keys.example.org/jwks#x").is_err());
        assert!(allowed_uri("not a url").is_err());
    }
}
