//! Every RPC of the tier table (plus health and reflection) with an arbitrary message and one of
//! the attacker's credentials, through the server's whole stack in-process.
//! Input: [method index][credential index][protobuf message…].

#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::credentials::tiers::TIERS;
use sentinel_fuzz::{assert_clear, harness};

const EXTRA: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/sentinel.v1.NoSuchService/Nothing",
];

fuzz_target!(init: sentinel_fuzz::init(), |data: &[u8]| {
    let [method, credential, message @ ..] = data else {
        return;
    };
    let harness = harness();
    let index = usize::from(*method) % (TIERS.len() + EXTRA.len());
    let path = match TIERS.get(index) {
        Some((path, _)) => *path,
        None => EXTRA[index - TIERS.len()],
    };
    let headers = &harness.credentials[usize::from(*credential) % harness.credentials.len()];
    let message = harness.substitute(message);
    let answer = harness.grpc(path, headers, &message);
    if std::env::var_os("SENTINEL_FUZZ_VERBOSE").is_some() {
        eprintln!("{path} -> {answer:?}");
    }
    assert_clear(path, &answer);
});
