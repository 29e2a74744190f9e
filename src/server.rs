//! One listener for everything: gRPC (HTTP/2), gRPC-web (HTTP/1.1 and HTTP/2) and the HTTP
//! routes, wrapped in the tower stack (request id, tracing, CORS, rate limit).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, Request};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::apps::origins::AllowedOrigins;
use crate::services::Services;
use crate::{api, http as http_routes, metrics, proto, ratelimit};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen request id kept; longer ones are replaced by a generated one.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client-chosen request id may travel into logs and audit rows as it is: at most
/// [`MAX_REQUEST_ID_LEN`] characters of `[A-Za-z0-9._:-]`.
pub fn acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Drops a client-chosen request id that is too long or carries other characters, so that the
/// next layer generates one instead.
async fn sanitize_request_id(mut request: Request<axum::body::Body>, next: Next) -> Response {
    if request
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !acceptable_request_id(v.as_bytes()))
    {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// A request message over `max_request_bytes` is INVALID_ARGUMENT, as the contract says of an
/// oversize input; the gRPC library answers OUT_OF_RANGE for it, in the headers of an answer
/// with no message or in its trailers.
async fn oversize_is_invalid_argument(request: Request<axum::body::Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    restate_oversize(response.headers_mut());
    response.map(|inner| axum::body::Body::new(OversizeTrailers { inner }))
}

fn restate_oversize(status: &mut http::HeaderMap) {
    // grpc-message is percent-encoded on the wire.
    let oversize = status.get("grpc-status").is_some_and(|s| s == "11")
        && status.get("grpc-message").is_some_and(|m| {
            String::from_utf8_lossy(m.as_bytes())
                .replace("%20", " ")
                .starts_with("Error, decoded message length too large")
        });
    if oversize {
        status.insert("grpc-status", HeaderValue::from_static("3"));
        status.insert(
            "grpc-message",
            HeaderValue::from_static("request: larger than max_request_bytes"),
        );
    }
}

/// A response body whose trailers go through [`restate_oversize`].
struct OversizeTrailers {
    inner: axum::body::Body,
}

impl http_body::Body for OversizeTrailers {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(mut frame))) = polled {
            if let Some(trailers) = frame.trailers_mut() {
                restate_oversize(trailers);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn cors(origins: AllowedOrigins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| origins.contains(o))
        }))
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            http::header::CONTENT_TYPE,
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            // Not x-service-key: a service key never belongs in a browser (browsers call through
            // the origin tier), so a page cannot send one cross-origin.
            REQUEST_ID,
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            http::header::RETRY_AFTER,
            REQUEST_ID,
        ])
        .max_age(Duration::from_secs(3600))
}

/// The complete application service.
pub fn router(
    state: &Services,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> anyhow::Result<Router> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let grpc = api::routes(state)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .layer(axum::middleware::from_fn(oversize_is_invalid_argument))
        .layer(from_fn_with_state(
            // Behind one Arc: the layer's state is cloned per request.
            Arc::new(state.clone()),
            crate::credentials::principal::enforce,
        ))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::grpc_metrics,
        ))
        // gRPC-web only on gRPC routes: it answers 400 to plain HTTP/1.1 requests.
        .layer(tonic_web::GrpcWebLayer::new());

    let http = http_routes::router(state.clone())
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::http_metrics,
        ))
        .layer(RequestBodyLimitLayer::new(state.config.max_request_bytes));

    let stack = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(sanitize_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    request_id = %request_id,
                    method = %request.method(),
                    path = %request.uri().path(),
                    user = tracing::field::Empty,
                    workspace = tracing::field::Empty,
                    service = tracing::field::Empty,
                )
            }),
        )
        .layer(cors(state.origins.clone()))
        .layer(from_fn_with_state(
            state.limiter.clone(),
            ratelimit::limit_by_address,
        ));

    Ok(grpc
        .merge(http)
        .fallback(http_routes::not_found)
        .layer(stack))
}
