//! Prometheus metrics: per-RPC request counts and latency histograms, HTTP routes, rate
//! limiting, and what the domain counts (check decisions, index freshness, tokens issued).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::authz::engine::Engine;
use crate::tokens::service::TokenService;

/// Latency buckets from 50 µs to 10 s: checks are microseconds, logins are hundreds of ms.
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    service: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcMethodLabels {
    service: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: String,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Reads the domain's own counters at scrape time.
struct DomainCollector {
    engine: Arc<Engine>,
    tokens: Arc<TokenService>,
}

impl std::fmt::Debug for DomainCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DomainCollector")
    }
}

impl Collector for DomainCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let (allowed, denied) = self.engine.decisions();
        let mut family = encoder.encode_descriptor(
            "check_decisions",
            "Check answers by result; each CheckBulk item counts once",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("allowed", allowed), ("denied", denied)] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        ConstGauge::new(self.engine.revision().0).encode(encoder.encode_descriptor(
            "permission_index_revision",
            "Changelog revision this replica's permission index has applied",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(self.engine.staleness().as_secs_f64()).encode(
            encoder.encode_descriptor(
                "permission_index_staleness_seconds",
                "Time since the permission index last read the changelog to its end",
                None,
                MetricType::Gauge,
            )?,
        )?;
        let mut family = encoder.encode_descriptor(
            "tokens_issued",
            "Tokens issued by this process, by kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in self.tokens.issued() {
            ConstCounter::new(n).encode(family.encode_family(&[("kind", kind.label())])?)?;
        }
        Ok(())
    }
}

/// All metric families of one process.
pub struct Metrics {
    registry: Registry,
    grpc_requests: Family<GrpcLabels, Counter>,
    grpc_duration: Family<GrpcMethodLabels, Histogram, fn() -> Histogram>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    rate_limited: Family<ScopeLabels, Counter>,
    /// gRPC calls started and not yet finished (what a graceful shutdown waits for).
    grpc_in_flight: Gauge,
    /// Whether a gRPC path is one of the contract's methods (the tier table knows them).
    served: fn(&str) -> bool,
}

impl Metrics {
    /// Registers every family. `served` tells the contract's gRPC paths from made-up ones.
    pub fn new(served: fn(&str) -> bool) -> Self {
        let mut registry = Registry::with_prefix("sentinel");
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        let grpc_duration =
            Family::<GrpcMethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                histogram,
            );
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        let grpc_in_flight = Gauge::default();
        registry.register(
            "grpc_requests_in_flight",
            "gRPC calls started and not yet finished",
            grpc_in_flight.clone(),
        );
        registry.register(
            "grpc_requests",
            "gRPC calls by service, method and status code",
            grpc_requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency until the final status",
            grpc_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by scope",
            rate_limited.clone(),
        );
        Self {
            registry,
            grpc_requests,
            grpc_duration,
            http_requests,
            http_duration,
            rate_limited,
            grpc_in_flight,
            served,
        }
    }

    /// Adds what the domain counts itself, read on each scrape: check decisions by result,
    /// the permission index's revision and staleness, tokens issued by kind.
    pub fn observe(&mut self, engine: Arc<Engine>, tokens: Arc<TokenService>) {
        self.registry
            .register_collector(Box::new(DomainCollector { engine, tokens }));
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }

    /// Counts one request refused by the rate limiter of `scope`.
    pub fn record_rate_limited(&self, scope: &str) {
        self.rate_limited
            .get_or_create(&ScopeLabels {
                scope: scope.to_string(),
            })
            .inc();
    }

    fn record_grpc(&self, service: &str, method: &str, code: &str, started: Instant) {
        self.grpc_requests
            .get_or_create(&GrpcLabels {
                service: service.to_string(),
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.grpc_duration
            .get_or_create(&GrpcMethodLabels {
                service: service.to_string(),
                method: method.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// gRPC methods served besides the contract's (which are those of the tier table).
const INFRASTRUCTURE_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Splits `/sentinel.v1.AuthService/GetJwks` into service and method. Only methods the server
/// serves get their own labels; any other path is `unknown`/`unknown`, so that requests for
/// made-up methods cannot grow the number of series.
fn grpc_names(served: fn(&str) -> bool, path: &str) -> (String, String) {
    let known = served(path) || INFRASTRUCTURE_METHODS.contains(&path);
    if !known {
        return ("unknown".into(), "unknown".into());
    }
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default().to_string();
    let method = parts.next().unwrap_or_default().to_string();
    (service, method)
}

/// Canonical gRPC code names for the `code` label.
fn code_name(value: &[u8]) -> &'static str {
    match value {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Records a finished gRPC call once: at the trailers, or when the body is dropped early.
struct GrpcCall {
    metrics: Arc<Metrics>,
    service: String,
    method: String,
    started: Instant,
    done: bool,
}

impl GrpcCall {
    fn start(metrics: Arc<Metrics>, service: String, method: String) -> Self {
        metrics.grpc_in_flight.inc();
        Self {
            metrics,
            service,
            method,
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, code: &str) {
        if !self.done {
            self.done = true;
            self.metrics.grpc_in_flight.dec();
            self.metrics
                .record_grpc(&self.service, &self.method, code, self.started);
        }
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

/// A response body that reports the gRPC status found in its trailers.
struct TrailerObserver {
    inner: Body,
    call: GrpcCall,
}

impl HttpBody for TrailerObserver {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .map_or("UNKNOWN", |v| code_name(v.as_bytes()));
                    self.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.call.finish("INTERNAL"),
            Poll::Ready(None) => self.call.finish("OK"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware for gRPC routes: counts every call with its final status code.
pub async fn grpc_metrics(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let (service, method) = grpc_names(metrics.served, request.uri().path());
    // Started before the handler runs: a call the client abandons before its answer is dropped
    // here and counted as CANCELLED.
    let mut call = GrpcCall::start(metrics, service, method);
    let response = next.run(request).await;
    if let Some(status) = response.headers().get("grpc-status") {
        // Trailers-only response (errors and empty streams).
        call.finish(code_name(status.as_bytes()));
        return response;
    }
    response.map(|inner| Body::new(TrailerObserver { inner, call }))
}

/// Middleware for HTTP routes: counts requests by matched route and status.
pub async fn http_metrics(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .http_duration
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's paths as the tier table answers them.
    fn served(path: &str) -> bool {
        crate::credentials::tiers::tiers_of(path).is_some()
    }

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(
            grpc_names(served, "/sentinel.v1.AuthService/GetJwks"),
            ("sentinel.v1.AuthService".into(), "GetJwks".into())
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        for path in [
            "/sentinel.v1.AuthService/NoSuchMethod",
            "/sentinel.v1.Made-Up/X",
            "/anything",
            "",
        ] {
            assert_eq!(
                grpc_names(served, path),
                ("unknown".into(), "unknown".into()),
                "{path}"
            );
        }
        assert_eq!(
            grpc_names(served, "/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health".into(), "Check".into())
        );
        let metrics = Metrics::new(served);
        for i in 0..200 {
            let (service, method) =
                grpc_names(served, &format!("/sentinel.v1.AuthService/Random{i}"));
            metrics.record_grpc(&service, &method, "UNIMPLEMENTED", Instant::now());
        }
        let text = metrics.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("sentinel_grpc_requests_total{"))
            .count();
        assert_eq!(series, 1, "{text}");
    }

    #[test]
    fn recorded_calls_appear_in_the_exposition() {
        let metrics = Metrics::new(served);
        metrics.record_grpc("sentinel.v1.AuthService", "GetJwks", "OK", Instant::now());
        metrics.record_rate_limited("address");
        let text = metrics.render();
        assert!(text.contains(
            r#"sentinel_grpc_requests_total{service="sentinel.v1.AuthService",method="GetJwks",code="OK"} 1"#
        ), "{text}");
        assert!(text.contains("sentinel_grpc_request_duration_seconds_bucket"));
        assert!(text.contains(r#"sentinel_rate_limited_total{scope="address"} 1"#));
    }
}
