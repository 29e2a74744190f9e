//! The tier matrix: every RPC of the contract, called with every kind of credential, answers as
//! the `Tier:` line of its proto comment says. RPCs are enumerated from the compiled descriptor
//! set and their tiers read from the proto text, so an RPC added to the contract without a
//! `Tier:` line, or a table entry in `src/credentials/tiers.rs` that disagrees with its line,
//! fails here.

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestApp, sign_in};
use prost::Message;
use sentinel::credentials::tiers::{Tier, tiers_of};

both_backends!(
    every_rpc_answers_each_credential_as_its_tier_says,
    keys_users_and_sensitive_rpcs_have_their_own_limits,
);

/// Every RPC's tiers as its proto comment's `Tier:` line states them (`/pkg.Service/Method` →
/// tiers), normalised as the credential rules read them: a public RPC needs nothing else, and
/// "admin" beside "user" adds no caller (a platform admin's token is a user's access token).
fn contract_tiers() -> BTreeMap<String, Vec<Tier>> {
    common::protodoc::rpc_docs()
        .into_iter()
        .map(|rpc| {
            let text = rpc.section("Tier");
            assert!(!text.is_empty(), "{} has no Tier: line", rpc.name);
            (rpc.path.clone(), parse_tiers(text))
        })
        .collect()
}

/// The tier names of a `Tier:` text: the first word of each clause, parenthesised remarks left
/// out ("user (admin+); dual (…), or service" → user, dual, service).
fn parse_tiers(text: &str) -> Vec<Tier> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut tiers = Vec::new();
    for clause in plain.split([';', ',']).flat_map(|c| c.split(" or ")) {
        let word = clause
            .trim()
            .trim_start_matches("or ")
            .split(|c: char| !c.is_alphabetic())
            .next()
            .unwrap_or("");
        let tier = [
            Tier::Public,
            Tier::User,
            Tier::Dual,
            Tier::Service,
            Tier::Browser,
            Tier::Admin,
        ]
        .into_iter()
        .find(|t| t.name() == word);
        if let Some(tier) = tier
            && !tiers.contains(&tier)
        {
            tiers.push(tier);
        }
    }
    assert!(!tiers.is_empty(), "no tier named in {text:?}");
    if tiers.contains(&Tier::Public) {
        return vec![Tier::Public];
    }
    if tiers.contains(&Tier::User) {
        tiers.retain(|t| *t != Tier::Admin);
    }
    tiers.sort_by_key(|t| t.name());
    tiers
}

#[test]
fn the_tier_table_says_what_the_contract_says() {
    let contract = contract_tiers();
    let methods = contract_methods();
    let mut mismatches = Vec::new();
    for method in &methods {
        let Some(stated) = contract.get(method) else {
            mismatches.push(format!("{method}: no Tier: line in the proto"));
            continue;
        };
        let mut table = tiers_of(method).map(<[Tier]>::to_vec).unwrap_or_default();
        table.sort_by_key(|t| t.name());
        if &table != stated {
            mismatches.push(format!("{method}: table {table:?}, proto {stated:?}"));
        }
    }
    assert_eq!(contract.len(), methods.len(), "one Tier: line per RPC");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn tier_lines_parse_as_written() {
    use Tier::*;
    for (text, want) in [
        (
            " user (admin+); dual (admin+, own service's roles); service.",
            vec![Dual, Service, User],
        ),
        (" public (no credential).", vec![Public]),
        (
            " user; or public with a one-time login code (before ExchangeCode).",
            vec![Public],
        ),
        (
            " user for the caller's own sessions; admin for any session.",
            vec![User],
        ),
        (" admin (access token of a platform admin).", vec![Admin]),
        (
            " browser (an allowed origin) or service.",
            vec![Browser, Service],
        ),
        (
            " dual (the acting user must own it, with a token of that workspace), or service.",
            vec![Dual, Service],
        ),
    ] {
        assert_eq!(parse_tiers(text), want, "{text}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pass,
    Unauthenticated,
    PermissionDenied,
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    Nobody,
    GarbageBearer,
    User,
    Admin,
    Key,
    KeyAndUser,
    KeyAndForeignAuthz,
    InactiveKey,
    AllowedOrigin,
    ForeignOrigin,
}

const CALLERS: [Caller; 10] = [
    Caller::Nobody,
    Caller::GarbageBearer,
    Caller::User,
    Caller::Admin,
    Caller::Key,
    Caller::KeyAndUser,
    Caller::KeyAndForeignAuthz,
    Caller::InactiveKey,
    Caller::AllowedOrigin,
    Caller::ForeignOrigin,
];

/// What common.proto ("Credential tiers") says a caller gets, written independently of the server's code.
fn expected(tiers: &[Tier], caller: Caller) -> Expect {
    let has = |t: Tier| tiers.contains(&t);
    if has(Tier::Public) {
        return Expect::Pass;
    }
    let pass = match caller {
        Caller::Nobody
        | Caller::GarbageBearer
        | Caller::KeyAndForeignAuthz
        | Caller::InactiveKey
        | Caller::ForeignOrigin => false,
        Caller::User => has(Tier::User),
        Caller::Admin => has(Tier::User) || has(Tier::Admin),
        Caller::Key => has(Tier::Service),
        Caller::KeyAndUser => has(Tier::User) || has(Tier::Dual) || has(Tier::Service),
        Caller::AllowedOrigin => has(Tier::Browser),
    };
    if pass {
        Expect::Pass
    } else if matches!(caller, Caller::User | Caller::KeyAndUser) && tiers == [Tier::Admin] {
        Expect::PermissionDenied
    } else {
        Expect::Unauthenticated
    }
}

fn contract_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(sentinel::proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    methods
}

async fn every_rpc_answers_each_credential_as_its_tier_says(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let state = app.app.state();
    let (_, key) = state
        .apps
        .create("docs", "docs", &["https://docs.example.com".to_string()])
        .await
        .unwrap();
    let (billing, _) = state.apps.create("billing", "billing", &[]).await.unwrap();
    let (inactive, inactive_key) = state.apps.create("old", "old", &[]).await.unwrap();
    state
        .store
        .set_service_app_active(inactive.id, false)
        .await
        .unwrap();
    state.apps.refresh_origins().await.unwrap();
    let admin = sign_in(&app, "root@example.com", "ops", "owner").await;
    state
        .store
        .set_user_flags(admin.user.id, true, true)
        .await
        .unwrap();
    let scope = admin.scope.clone().unwrap();
    let (foreign_authz, _) = state
        .tokens
        .issue_authz(&admin.user, "idp|1", &billing.service_name, &scope, vec![])
        .unwrap();

    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let methods = contract_methods();
    assert!(methods.len() >= 70, "the whole contract: {}", methods.len());
    let contract = contract_tiers();
    for method in &methods {
        let tiers = contract
            .get(method)
            .unwrap_or_else(|| panic!("{method} has no Tier: line"));
        for caller in CALLERS {
            // Fresh user tokens per call: some RPCs (Logout) end the session they are called with.
            let user = sign_in(&app, "ann@example.com", "acme", "viewer").await;
            let admin = sign_in(&app, "root@example.com", "ops", "owner").await;
            let mut request = http
                .post(app.url(method))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(vec![0u8, 0, 0, 0, 0]);
            let bearer = |token: &str| format!("Bearer {token}");
            request = match caller {
                Caller::Nobody => request,
                Caller::GarbageBearer => request.header("authorization", "Bearer not-a-token"),
                Caller::User => request.header("authorization", bearer(&user.access_token)),
                Caller::Admin => request.header("authorization", bearer(&admin.access_token)),
                Caller::Key => request.header("x-service-key", &key),
                Caller::KeyAndUser => request
                    .header("x-service-key", &key)
                    .header("authorization", bearer(&user.access_token)),
                Caller::KeyAndForeignAuthz => request
                    .header("x-service-key", &key)
                    .header("authorization", bearer(&foreign_authz)),
                Caller::InactiveKey => request.header("x-service-key", &inactive_key),
                Caller::AllowedOrigin => request.header("origin", "https://docs.example.com"),
                Caller::ForeignOrigin => request.header("origin", "https://evil.example.com"),
            };
            let response = request.send().await.unwrap();
            // Errors arrive trailers-only (grpc-status in the headers); a success or an open
            // stream has none there.
            let code = response
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_string());
            let got = match code.as_deref() {
                Some("16") => Expect::Unauthenticated,
                Some("7") => Expect::PermissionDenied,
                // INTERNAL is never an answer, whatever the caller.
                Some("13") => {
                    failures.push(format!("{method} {caller:?}: INTERNAL"));
                    continue;
                }
                _ => Expect::Pass,
            };
            // ListMyWorkspaces is public because a login code may be the credential; a bearer
            // token it is given must still be valid.
            let want = if method.ends_with("/ListMyWorkspaces")
                && matches!(caller, Caller::GarbageBearer | Caller::KeyAndForeignAuthz)
            {
                Expect::Unauthenticated
            } else {
                expected(tiers, caller)
            };
            if got != want {
                failures.push(format!(
                    "{method} {caller:?}: got {got:?} ({code:?}), want {want:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

async fn keys_users_and_sensitive_rpcs_have_their_own_limits(backend: Backend) {
    use sentinel::proto::v1::auth_service_client::AuthServiceClient;
    use sentinel::proto::v1::{IntrospectRequest, ListSessionsRequest, RefreshRequest};
    use tonic::Code;

    let db = common::TestDatabase::create(backend).await;
    let mut config = db.config();
    config.rate_limit.per_key = 4;
    config.rate_limit.per_user = 3;
    config.rate_limit.sensitive_per_address = 2;
    config.rate_limit.window = std::time::Duration::from_secs(60);
    let app = TestApp::start(config).await;
    let key = common::service_key(&app, "docs").await;
    let user = sign_in(&app, "ann@example.com", "acme", "viewer").await;
    let mut auth = AuthServiceClient::new(app.channel.clone());

    let introspect = |key: &str| {
        common::with_service_key(
            IntrospectRequest {
                token: user.access_token.clone(),
            },
            key,
        )
    };
    for _ in 0..4 {
        auth.introspect(introspect(&key))
            .await
            .expect("inside the key's limit");
    }
    let err = auth.introspect(introspect(&key)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.metadata().get("retry-after").is_some());
    // Another key has its own budget.
    let other = common::service_key(&app, "billing").await;
    auth.introspect(introspect(&other))
        .await
        .expect("another key");

    let sessions = || common::with_bearer(ListSessionsRequest::default(), &user.access_token);
    for _ in 0..3 {
        auth.list_sessions(sessions())
            .await
            .expect("inside the user's limit");
    }
    let err = auth.list_sessions(sessions()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    // Token minting is limited per address, much lower than ordinary calls.
    let mut token = user.refresh_token.clone();
    for _ in 0..2 {
        token = auth
            .refresh(RefreshRequest {
                refresh_token: token,
                workspace_id: String::new(),
            })
            .await
            .expect("inside the sensitive limit")
            .into_inner()
            .tokens
            .unwrap()
            .refresh_token;
    }
    let err = auth
        .refresh(RefreshRequest {
            refresh_token: token,
            workspace_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    app.stop().await;
}
