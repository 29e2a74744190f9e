//! Fixed-window rate limiting on the shared cache (Redis in clustered mode, so a limit holds
//! across replicas). When the cache is unreachable the limiter keeps counting per process
//! instead of failing requests.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::transport::server::TcpConnectInfo;

use crate::cache::memory::MemoryCache;
use crate::cache::{Cache, WindowCount};
use crate::config::RateLimitConfig;
use crate::error::Error;
use crate::metrics::Metrics;

/// Paths never limited: probes and scrapes must work when clients are throttled.
const EXEMPT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Counts requests per subject in fixed windows.
pub struct RateLimiter {
    cache: Arc<dyn Cache>,
    fallback: MemoryCache,
    metrics: Arc<Metrics>,
    config: RateLimitConfig,
}

impl RateLimiter {
    /// A limiter on `cache` with the address limit from `config`.
    pub fn new(cache: Arc<dyn Cache>, metrics: Arc<Metrics>, config: RateLimitConfig) -> Self {
        Self {
            cache,
            fallback: MemoryCache::new(),
            metrics,
            config,
        }
    }

    /// Counts one request of `subject` in `scope`; RESOURCE_EXHAUSTED once `limit` is passed.
    pub async fn check(
        &self,
        scope: &str,
        subject: &str,
        limit: u32,
        window: Duration,
    ) -> Result<(), Error> {
        let key = format!("rl:{scope}:{subject}");
        let counted: WindowCount = match self.cache.hit(&key, window).await {
            Ok(count) => count,
            Err(_) => match self.fallback.hit(&key, window).await {
                Ok(count) => count,
                Err(_) => return Ok(()),
            },
        };
        if counted.count > u64::from(limit) {
            self.metrics.record_rate_limited(scope);
            return Err(Error::ResourceExhausted {
                retry_after: counted.resets_in,
            });
        }
        Ok(())
    }
}

/// The client's address: with `trust_forwarded_for`, the last `x-forwarded-for` entry (the one
/// the trusted proxy in front of Sentinel appended; earlier entries are the client's own
/// claims), otherwise the TCP peer.
pub fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(forwarded) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(forwarded);
    }
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|addr| addr.ip())
}

/// The subject an address is counted as: an IPv4 address itself, an IPv6 address by its /64
/// (one host usually holds a whole /64, so counting single IPv6 addresses would let it rotate
/// through 2^64 of them), an IPv4-mapped IPv6 address as its IPv4 address.
pub fn address_bucket(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whether `request` speaks gRPC (native or gRPC-web), so errors must be gRPC statuses.
pub fn is_grpc(request_headers: &http::HeaderMap) -> bool {
    request_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Turns an error into a response in the caller's protocol: a trailers-only gRPC status for
/// gRPC and gRPC-web callers, JSON with the HTTP status otherwise.
pub fn error_response(request_headers: &http::HeaderMap, error: Error) -> Response {
    if is_grpc(request_headers) {
        let content_type = request_headers.get(http::header::CONTENT_TYPE).cloned();
        let mut response = tonic::Status::from(error).into_http::<axum::body::Body>();
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type);
        }
        response
    } else {
        error.into_response()
    }
}

/// Whether a request shows it came through a proxy that Sentinel is not told to trust, so that
/// every client behind that proxy counts as one address.
fn behind_untrusted_proxy(request: &Request, trust_forwarded_for: bool) -> bool {
    !trust_forwarded_for && request.headers().contains_key("x-forwarded-for")
}

/// Warns once per process when requests arrive through an untrusted proxy.
fn warn_untrusted_proxy_once() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "requests arrive through a proxy (x-forwarded-for) but \
             rate_limit.trust_forwarded_for is off: every client behind it shares one \
             rate-limit bucket and audit events name the proxy"
        );
    }
}

/// Middleware: the per-client-address limit.
pub async fn limit_by_address(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let exempt = EXEMPT_PATHS.contains(&path) || path.starts_with(EXEMPT_PREFIX);
    if behind_untrusted_proxy(&request, limiter.config.trust_forwarded_for) {
        warn_untrusted_proxy_once();
    }
    if limiter.config.enabled
        && !exempt
        && let Some(address) = client_address(&request, limiter.config.trust_forwarded_for)
        && let Err(error) = limiter
            .check(
                "address",
                &address_bucket(address),
                limiter.config.per_address,
                limiter.config.window,
            )
            .await
    {
        return error_response(request.headers(), error);
    }
    next.run(request).await
}

/// Middleware for the HTTP sign-in steps: the stricter per-address limit of the sensitive RPCs.
pub async fn limit_sensitive(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.config.enabled
        && let Some(address) = client_address(&request, limiter.config.trust_forwarded_for)
        && let Err(error) = limiter
            .check(
                "sensitive",
                &address_bucket(address),
                limiter.config.sensitive_per_address,
                limiter.config.window,
            )
            .await
    {
        return error_response(request.headers(), error);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_proxy_is_noticed() {
        let with_header = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9")
            .body(axum::body::Body::empty())
            .unwrap();
        let without = axum::http::Request::builder()
            .body(axum::body::Body::empty())
            .unwrap();
        assert!(behind_untrusted_proxy(&with_header, false));
        assert!(!behind_untrusted_proxy(&with_header, true));
        assert!(!behind_untrusted_proxy(&without, false));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_bucket(a), address_bucket(b));
        assert_ne!(address_bucket(a), address_bucket(other));
        assert_eq!(address_bucket(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_bucket(mapped), "192.0.2.7");
        assert_eq!(address_bucket("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
