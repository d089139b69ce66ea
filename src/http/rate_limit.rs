//! Rate limits (GCRA, through `governor`'s keyed limiters), in three
//! classes, each configurable and each can be turned off (`rate_limit_*`):
//!
//! - **per address**: every request from one IP address (the peer of the
//!   connection), a backstop against floods, authenticated or not;
//! - **per client**: FHIR API requests per OAuth client (the token's
//!   `client_id`; the address when there is no token);
//! - **authorization failures**: failed requests to the `/auth/*`
//!   endpoints (token, introspection, revocation, registration, sign-in)
//!   per address, counted after the endpoint answered 400 or 401; once
//!   spent, every `/auth/*` POST from that address is refused until the
//!   window lets one more through.
//!
//! Allowed responses carry `X-RateLimit-Limit` (the burst), `-Remaining`
//! and `-Reset` (seconds until the bucket is full again) of the most
//! specific class that applied; refusals are 429 with `Retry-After` and an
//! OperationOutcome (`throttled`). Keyed state is pruned every minute
//! (`retain_recent`), so memory follows the number of recently active keys.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::negotiate::Format;
use super::response::error;
use crate::config::Config;
use crate::error::FhirError;
use crate::fhir::outcome::IssueType;

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One keyed limiter and its quota.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: Limiter<K>,
    quota: Quota,
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        /// Seconds until the bucket is full again.
        reset: u64,
    },
    Refused {
        limit: u32,
        /// Seconds until one more request is let through.
        retry_after: u64,
    },
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Keyed {
            limiter: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
            quota,
        }
    }

    fn check(&self, key: &K) -> Decision {
        let limit = self.quota.burst_size().get();
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let empty = limit.saturating_sub(remaining);
                Decision::Allowed {
                    limit,
                    remaining,
                    reset: ceil_secs(self.quota.replenish_interval() * empty),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Decision::Refused {
                    limit,
                    retry_after: ceil_secs(wait).max(1),
                }
            }
        }
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The rate limiters of one server.
pub struct RateLimits {
    per_ip: Option<Keyed<IpAddr>>,
    per_client: Option<Keyed<String>>,
    auth_failures: Option<Keyed<IpAddr>>,
    /// Addresses whose authorization failures are spent, until when.
    auth_blocked: Mutex<HashMap<IpAddr, Instant>>,
}

fn per_second(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        let auth = NonZeroU32::new(config.rate_limit_auth_failures).and_then(|n| {
            let window = Duration::from_secs(config.rate_limit_auth_window_secs.max(1));
            Quota::with_period(window / n.get()).map(|q| q.allow_burst(n))
        });
        RateLimits {
            per_ip: per_second(config.rate_limit_ip_per_second, config.rate_limit_ip_burst)
                .map(Keyed::new),
            per_client: per_second(
                config.rate_limit_client_per_second,
                config.rate_limit_client_burst,
            )
            .map(Keyed::new),
            auth_failures: auth.map(Keyed::new),
            auth_blocked: Mutex::default(),
        }
    }

    /// Drops the state of keys whose buckets are full again; runs every
    /// minute until the limits are dropped.
    pub fn start_pruning(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.prune();
            }
        });
    }

    fn prune(&self) {
        for keyed in [&self.per_ip, &self.auth_failures].into_iter().flatten() {
            keyed.prune();
        }
        if let Some(keyed) = &self.per_client {
            keyed.prune();
        }
        let now = Instant::now();
        let mut blocked = self.auth_blocked.lock().expect("rate limit lock");
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
    }

    /// Seconds until `ip` may try the authorization endpoints again.
    fn auth_blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let mut blocked = self.auth_blocked.lock().expect("rate limit lock");
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&ip);
            return None;
        }
        Some(ceil_secs(until - now).max(1))
    }

    /// Counts one authorization failure of `ip`; the failure that spends
    /// the window blocks the address until the next one is let through.
    fn auth_failed(&self, ip: IpAddr) {
        let Some(keyed) = &self.auth_failures else {
            return;
        };
        let wait = match keyed.check(&ip) {
            Decision::Allowed { remaining: 0, .. } => keyed.quota.replenish_interval(),
            Decision::Allowed { .. } => return,
            Decision::Refused { retry_after, .. } => Duration::from_secs(retry_after),
        };
        self.auth_blocked
            .lock()
            .expect("rate limit lock")
            .insert(ip, Instant::now() + wait);
    }
}

/// The peer address of a request (`ConnectInfo`), or 0.0.0.0 when the
/// router runs without one (in-process calls).
fn peer(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn set_headers(headers: &mut HeaderMap, decision: Decision) {
    if headers.contains_key("x-ratelimit-limit") {
        // A more specific class already reported.
        return;
    }
    let (limit, remaining, reset) = match decision {
        Decision::Allowed {
            limit,
            remaining,
            reset,
        } => (limit, remaining, reset),
        Decision::Refused { limit, retry_after } => (limit, 0, retry_after),
    };
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

/// 429 with `Retry-After` and an OperationOutcome.
fn throttled(what: &str, limit: u32, retry_after: u64) -> Response {
    let mut response = error(
        FhirError::new(
            StatusCode::TOO_MANY_REQUESTS.as_u16(),
            IssueType::Throttled,
            format!("too many {what}; try again in {retry_after} s"),
        ),
        Format::Json,
    );
    let headers = response.headers_mut();
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
    set_headers(headers, Decision::Refused { limit, retry_after });
    response
}

/// The outer layer: the per-address limit on every request, and the
/// failure limit of the authorization endpoints.
pub async fn per_address(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = peer(&request);
    let decision = limits.per_ip.as_ref().map(|k| k.check(&ip));
    if let Some(Decision::Refused { limit, retry_after }) = decision {
        return throttled("requests from this address", limit, retry_after);
    }
    let auth_post = limits.auth_failures.is_some()
        && request.method() == Method::POST
        && request.uri().path().starts_with("/auth/");
    if auth_post {
        if let Some(retry_after) = limits.auth_blocked_for(ip) {
            let limit = limits
                .auth_failures
                .as_ref()
                .map_or(0, |k| k.quota.burst_size().get());
            return throttled(
                "failed authorization requests from this address",
                limit,
                retry_after,
            );
        }
    }
    let mut response = next.run(request).await;
    if auth_post
        && matches!(
            response.status(),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
        )
    {
        limits.auth_failed(ip);
    }
    if let Some(decision) = decision {
        set_headers(response.headers_mut(), decision);
    }
    response
}

/// The per-client limit of the FHIR API; runs after the token check, so
/// the caller is known.
pub async fn per_client(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(keyed) = &limits.per_client else {
        return next.run(request).await;
    };
    let client = request
        .extensions()
        .get::<Arc<crate::auth::Access>>()
        .and_then(|access| access.client_id.as_deref());
    let key = match client {
        Some(client) => format!("client:{client}"),
        None => format!("ip:{}", peer(&request)),
    };
    match keyed.check(&key) {
        Decision::Refused { limit, retry_after } => {
            throttled("requests from this client", limit, retry_after)
        }
        allowed => {
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), allowed);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(configure: impl FnOnce(&mut Config)) -> RateLimits {
        let mut config = Config::default().without_rate_limits();
        configure(&mut config);
        RateLimits::new(&config)
    }

    #[test]
    fn a_burst_counts_down_then_refuses() {
        // Two an hour: no cell comes back while the test runs.
        let k: Keyed<String> = Keyed::new(Quota::per_hour(NonZeroU32::new(2).unwrap()));
        let key = "client:a".to_string();
        assert!(matches!(
            k.check(&key),
            Decision::Allowed {
                limit: 2,
                remaining: 1,
                reset: 1800,
            }
        ));
        assert!(matches!(
            k.check(&key),
            Decision::Allowed { remaining: 0, .. }
        ));
        match k.check(&key) {
            Decision::Refused { limit, retry_after } => {
                assert_eq!(limit, 2);
                assert!((1..=1800).contains(&retry_after), "{retry_after}");
            }
            other => panic!("{other:?}"),
        }
        // Another key has its own bucket.
        assert!(matches!(
            k.check(&"client:b".to_string()),
            Decision::Allowed { remaining: 1, .. }
        ));
    }

    #[test]
    fn spent_authorization_failures_block_the_address() {
        let l = limits(|c| {
            c.rate_limit_auth_failures = 2;
            c.rate_limit_auth_window_secs = 3600;
        });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        l.auth_failed(ip);
        assert_eq!(l.auth_blocked_for(ip), None);
        l.auth_failed(ip);
        let wait = l.auth_blocked_for(ip).expect("blocked");
        assert!((1..=1800).contains(&wait), "{wait}");
        assert_eq!(l.auth_blocked_for(other), None);
    }

    #[test]
    fn zero_turns_a_class_off() {
        let l = limits(|_| {});
        assert!(l.per_ip.is_none() && l.per_client.is_none() && l.auth_failures.is_none());
    }
}
