//! The HTTP routes, above all the sign-in steps' query strings: any path and query is answered
//! with a page or a redirect, never a server error (a provider that cannot be reached is 502).
//! Input: [route][x-forwarded-for length][x-forwarded-for…][query…].

#![no_main]

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use sentinel_fuzz::harness;

const ROUTES: &[&str] = &[
    "/oauth/github/login",
    "/oauth/github/callback",
    "/oauth/nope/login",
    "/oauth/nope/callback",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/nothing-here",
];

fuzz_target!(init: sentinel_fuzz::init(), |data: &[u8]| {
    let [route, forwarded_len, rest @ ..] = data else {
        return;
    };
    let split = usize::from(*forwarded_len).min(rest.len());
    let (forwarded, query) = rest.split_at(split);
    let route = ROUTES[usize::from(*route) % ROUTES.len()];
    let query: String = query
        .iter()
        .map(|b| match b {
            // Bytes a URI cannot hold are sent percent-encoded, as a client would.
            b'!'..=b'~' if *b != b'#' => char::from(*b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Ok(request) = http::Request::builder()
        .uri(format!("{route}?{query}"))
        .header("x-forwarded-for", forwarded)
        .header("accept", if split % 2 == 0 { "text/html" } else { "application/json" })
        .body(Body::empty())
    else {
        return;
    };
    let (status, _) = harness().http(request);
    if std::env::var_os("SENTINEL_FUZZ_VERBOSE").is_some() {
        eprintln!("{route}?{query} -> {status}");
    }
    assert!(
        status < 500 || status == 502 || status == 503,
        "{route}?{query}: HTTP {status}"
    );
});
