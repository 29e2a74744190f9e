//! Token decoders: access tokens (as a bearer credential and through Introspect), the `kid`
//! header parser, consistency tokens (which must round-trip) and request ids.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::model::ConsistencyToken;
use sentinel::tokens::jwt::Verifier;
use sentinel_fuzz::{assert_clear, harness};

/// `Introspect{token}` as protobuf: field 1, length-delimited.
fn introspect_message(token: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    sentinel_fuzz::seeds::bytes_field(1, token, &mut message);
    message
}

fuzz_target!(init: sentinel_fuzz::init(), |data: &[u8]| {
    let harness = harness();
    let text = String::from_utf8_lossy(data);
    let _ = Verifier::kid_of(&text);
    let _ = sentinel::server::acceptable_request_id(data);
    if let Ok(token) = ConsistencyToken::parse("token", &text) {
        let again = ConsistencyToken::parse("token", &token.to_string());
        assert_eq!(again.ok(), Some(token), "consistency tokens round-trip");
    }
    let path = "/sentinel.v1.AuthService/Introspect";
    let key = &harness.credentials[3];
    let answer = harness.grpc(path, key, &introspect_message(data));
    if std::env::var_os("SENTINEL_FUZZ_VERBOSE").is_some() {
        eprintln!("Introspect -> {answer:?}");
    }
    assert_clear(path, &answer);
    let me = "/sentinel.v1.UserService/GetMe";
    let answer = harness.grpc(me, &[("authorization", format!("Bearer {text}"))], &[]);
    assert_clear(me, &answer);
    let answer = harness.grpc(
        "/sentinel.v1.PermissionService/CheckPermission",
        &[("x-service-key", text.to_string())],
        &[],
    );
    assert_clear("CheckPermission with a made-up key", &answer);
});
