//! The client's address behind trusted reverse proxies. Behind a proxy
//! every request arrives from the proxy's address, so per-IP rate limits
//! would throttle all clients as one and the audit trail would name the
//! proxy. When the peer is listed in `trusted_proxies`, the client is the
//! right-most address of `X-Forwarded-For` that is not itself a trusted
//! proxy (addresses further left were written by the client and can be
//! forged). This layer runs first and replaces the request's `ConnectInfo`
//! with that address, so every later layer (rate limits, sign-in limits,
//! the audit trail) sees the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// Parses `trusted_proxies` entries: addresses (`10.0.0.5`) or networks
/// (`10.0.0.0/8`).
pub fn parse_trusted(entries: &[String]) -> anyhow::Result<Vec<IpNet>> {
    entries
        .iter()
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "trusted_proxies: `{e}` is not an IP address or network such as 10.0.0.0/8"
                    )
                })
        })
        .collect()
}

/// The client address of a request that arrived from `peer` with these
/// `X-Forwarded-For` values.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // A malformed hop: stop at the last address known to be good.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The layer: rewrites `ConnectInfo` to the client's address when the
/// request came through a trusted proxy.
pub async fn resolve(
    State(trusted): State<Arc<Vec<IpNet>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !trusted.is_empty() {
        if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
            let peer = *peer;
            let values = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            let client = client_ip(peer.ip(), values, &trusted);
            if client != peer.ip() {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let trusted = parse_trusted(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = parse_trusted(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        // The client forged 6.6.6.6; 198.51.100.4 is what the first proxy saw.
        let hops = ["6.6.6.6, 198.51.100.4", "192.0.2.7"];
        assert_eq!(
            client_ip(ip("10.1.1.1"), hops.into_iter(), &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), std::iter::empty(), &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), ["garbage"].into_iter(), &trusted),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(parse_trusted(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_trusted(&["proxy.local".into()]).is_err());
        assert_eq!(parse_trusted(&["::1".into()]).unwrap().len(), 1);
    }
}
