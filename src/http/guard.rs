//! The protective layers around every route, built from the configuration:
//! rate limits (`rate_limit`), the request time limit, security headers
//! (and HSTS when the server speaks TLS), and CORS for browser apps.

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::Method;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::negotiate::Format;
use super::rate_limit::RateLimits;
use super::response::error;
use crate::config::Config;
use crate::error::FhirError;
use crate::fhir::outcome::IssueType;
use crate::store::Store;

/// The guard's settings and state, shared by its layers.
pub struct Guard {
    pub limits: Arc<RateLimits>,
    /// None: no time limit.
    pub request_timeout: Option<Duration>,
    /// Send `Strict-Transport-Security` (the server speaks TLS).
    pub hsts: bool,
    pub cors: Arc<CorsOrigins>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`client_addr`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl Guard {
    pub fn new(config: &Config) -> Self {
        Guard {
            limits: Arc::new(RateLimits::new(config)),
            request_timeout: (config.request_timeout_ms > 0)
                .then(|| Duration::from_millis(config.request_timeout_ms)),
            hsts: config.tls_enabled(),
            cors: Arc::new(CorsOrigins::new(config)),
            // Checked by `Config::validate`.
            trusted_proxies: Arc::new(
                super::client_addr::parse_trusted(&config.trusted_proxies).unwrap_or_default(),
            ),
        }
    }

    /// Starts the background upkeep: pruning of rate-limit state, and the
    /// periodic refresh of the registered clients' origins (both end when
    /// the application is dropped).
    pub async fn start(app: &Arc<super::App>) {
        app.guard.limits.start_pruning();
        if !matches!(*app.guard.cors, CorsOrigins::Registered { .. }) {
            return;
        }
        app.guard.cors.refresh(&app.fhir.store).await;
        let weak: Weak<super::App> = Arc::downgrade(app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CORS_REFRESH);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { return };
                app.guard.cors.refresh(&app.fhir.store).await;
            }
        });
    }
}

/// Is `s` an origin: `scheme://host[:port]`, nothing more?
pub fn is_origin(s: &str) -> bool {
    origin_of(s).is_some_and(|o| o == s.to_ascii_lowercase())
}

/// The origin (`scheme://host[:port]`, lower case) of an http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

/// Which origins may call the server from a browser.
pub enum CorsOrigins {
    Any,
    /// The configured list.
    Fixed(HashSet<String>),
    /// The server's own origin and those of registered clients' redirect
    /// URIs, refreshed from the store.
    Registered {
        own: Option<String>,
        clients: RwLock<HashSet<String>>,
    },
}

/// How often the registered clients' origins are read again.
const CORS_REFRESH: Duration = Duration::from_secs(30);

impl CorsOrigins {
    fn new(config: &Config) -> Self {
        match &config.cors_allowed_origins {
            Some(list) if list.iter().any(|o| o == "*") => CorsOrigins::Any,
            Some(list) => CorsOrigins::Fixed(list.iter().map(|o| o.to_ascii_lowercase()).collect()),
            None => CorsOrigins::Registered {
                own: origin_of(&config.base_url()),
                clients: RwLock::default(),
            },
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::Fixed(set) => set.contains(&origin),
            CorsOrigins::Registered { own, clients } => {
                own.as_deref() == Some(origin.as_str())
                    || clients.read().expect("cors lock").contains(&origin)
            }
        }
    }

    /// Reads the registered clients' redirect URI origins again.
    pub async fn refresh(&self, store: &Store) {
        let CorsOrigins::Registered { clients, .. } = self else {
            return;
        };
        let rows = match store.clients().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "reading clients for CORS failed");
                return;
            }
        };
        let origins: HashSet<String> = rows
            .iter()
            .filter(|c| !c.revoked)
            .flat_map(|c| serde_json::from_str::<Vec<String>>(&c.redirect_uris).unwrap_or_default())
            .filter_map(|uri| origin_of(&uri))
            .collect();
        *clients.write().expect("cors lock") = origins;
    }
}

/// CORS for SMART browser apps: the API, the token endpoint and discovery
/// answer allowed origins; bearer tokens, not cookies, so no credentials.
pub fn cors_layer(origins: Arc<CorsOrigins>) -> CorsLayer {
    use http::header;
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, _: &Parts| {
        origin.to_str().is_ok_and(|o| origins.allows(o))
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            HeaderName::from_static("if-none-exist"),
            HeaderName::from_static("prefer"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_LOCATION,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// `X-Content-Type-Options` and `Referrer-Policy` on every response (the
/// sign-in pages add their CSP and frame rules), and HSTS under TLS.
pub async fn security_headers(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry("x-content-type-options")
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry("referrer-policy")
        .or_insert(HeaderValue::from_static("no-referrer"));
    if guard.hsts {
        headers.insert(
            http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The request time limit of reads (GET, HEAD: reads, searches, history,
/// operations): a read still running after it is abandoned and answered
/// 503 with an OperationOutcome `timeout`. Writes are not cut: dropping a
/// write while its commit is under way would leave its outcome unknown
/// (and the version cache unpublished); they are bounded by the body and
/// Bundle limits and the database's own timeouts instead.
pub async fn time_limit(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let Some(limit) = guard.request_timeout.filter(|_| read) else {
        return next.run(request).await;
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            FhirError::new(
                503,
                IssueType::Timeout,
                format!(
                    "the request took longer than the server's limit of {} ms and was abandoned",
                    limit.as_millis()
                ),
            ),
            Format::Json,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://App.example.org:8443/cb?x=1").as_deref(),
            Some("https://app.example.org:8443")
        );
        assert!(is_origin("https://app.example.org"));
        assert!(!is_origin("https://app.example.org/"));
        assert!(!is_origin("https://app.example.org/cb"));
        assert!(!is_origin("app.example.org"));
        assert!(!is_origin("ftp://app.example.org"));
    }

    fn guard(timeout_ms: u64) -> Arc<Guard> {
        let config = Config {
            request_timeout_ms: timeout_ms,
            ..Config::default()
        };
        Arc::new(Guard::new(&config))
    }

    #[tokio::test]
    async fn a_request_over_the_time_limit_gets_503_timeout() {
        // A handler that never finishes: the limit decides, not the clock.
        let app = axum::Router::new()
            .route("/slow", get(std::future::pending::<&'static str>))
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(guard(20), time_limit));
        let slow = app
            .clone()
            .oneshot(
                Request::get("/slow")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(slow.status(), 503);
        let body = axum::body::to_bytes(slow.into_body(), 4096).await.unwrap();
        let oo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["code"], "timeout");
        let fast = app
            .oneshot(
                Request::get("/fast")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(fast.status(), 200);
    }

    #[tokio::test]
    async fn writes_are_never_cut() {
        let app = axum::Router::new()
            .route(
                "/write",
                axum::routing::post(|| async {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    "written"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(guard(1), time_limit));
        let r = app
            .oneshot(
                Request::post("/write")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
