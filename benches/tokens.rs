//! Token hot paths: signing, first-sight verification and cached verification, per algorithm.
//! Figures are kept in docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sentinel::model::SystemClock;
use sentinel::tokens::jwt::{AccessClaims, VerificationKey, Verifier, sign};
use sentinel::tokens::kek::Kek;
use sentinel::tokens::keys::{Jwk, SigningAlgorithm, generate};

fn claims() -> AccessClaims {
    let now = chrono::Utc::now().timestamp();
    AccessClaims {
        iss: "https://sentinel.example.com".into(),
        sub: "2f0c8a8e-9d1e-4c1c-9d55-0b4c1d0b7a11".into(),
        aud: vec!["sentinel".into(), "docs".into()],
        exp: now + 900,
        iat: now,
        nbf: now,
        jti: "0d1e5c2a-1f3b-4a4e-8b6f-6c0d2b9e7f10".into(),
        sid: "7a3c9d2e-5b1f-4e6a-9c8d-1e2f3a4b5c6d".into(),
        email: "ada@example.com".into(),
        name: "Ada Lovelace".into(),
        wid: Some("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d".into()),
        wslug: Some("acme".into()),
        wrole: Some(sentinel::model::WorkspaceRole::Editor),
        groups: vec!["5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9".into()],
        groups_truncated: false,
        auth_time: now,
        amr: vec!["oidc".into()],
        typ: "access".into(),
    }
}

fn bench(c: &mut Criterion) {
    let kek = Kek::from_bytes(&[7u8; 32]);
    let claims = claims();
    for algorithm in [
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ] {
        let name = algorithm.as_str();
        let (new, key) = generate(algorithm, &kek).expect("key");
        let jwk: Jwk = serde_json::from_str(&new.public_jwk).expect("jwk");
        let verifier = Verifier::new(claims.iss.clone(), Arc::new(SystemClock));
        let mut keys = HashMap::new();
        keys.insert(
            jwk.kid.clone(),
            VerificationKey::from_jwk(&jwk, None).expect("verification key"),
        );
        verifier.set_keys(keys);
        let token = sign(&key, &claims).expect("token");
        let now = chrono::Utc::now().timestamp();

        c.bench_function(&format!("sign/{name}"), |b| {
            b.iter(|| sign(&key, std::hint::black_box(&claims)).expect("token"))
        });
        c.bench_function(&format!("verify_first_sight/{name}"), |b| {
            b.iter(|| {
                verifier
                    .verify_uncached(std::hint::black_box(&token), now)
                    .expect("valid")
            })
        });
        verifier.verify_access(&token).expect("valid");
        c.bench_function(&format!("verify_cached/{name}"), |b| {
            b.iter(|| {
                verifier
                    .verify_access(std::hint::black_box(&token))
                    .expect("valid")
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
