//! Sessions and tokens over the wire, on both backends: refresh rotation with grace and reuse
//! detection, revocation (also across instances), introspection, strict verification.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::wait::{eventually, next, within};
use common::{
    Backend, TestApp, TestDatabase, audit_count, service_key, sign_in, with_bearer,
    with_service_key,
};
use sentinel::model::Clock;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::{
    GetJwksRequest, IntrospectRequest, ListSessionsRequest, LogoutRequest, RefreshRequest,
    RevokeSessionRequest, RotateSigningKeyRequest, WatchRevocationsRequest,
};
use sentinel::tokens::jwt::{AccessClaims, sign};
use tonic::Code;

both_backends!(
    refresh_rotates_and_carries_workspace_context,
    concurrent_refreshes_inside_the_grace_all_succeed,
    reuse_after_the_grace_revokes_the_family_and_its_access_tokens,
    logout_revokes_live_access_tokens,
    sessions_are_listed_and_revoked,
    introspect_requires_a_valid_service_key,
    forged_and_malformed_tokens_are_rejected,
    watch_revocations_replays_then_follows,
    signing_key_rotation_keeps_old_tokens_valid_for_the_overlap,
    a_rotated_key_is_published_before_it_signs,
    every_signing_algorithm_issues_verifiable_tokens,
    admins_revoke_every_token_of_a_user,
    authz_tokens_work_only_with_their_service_key,
    role_and_group_changes_show_in_the_next_refresh,
    a_stale_refresh_token_reveals_no_membership,
    revocation_watch_resets_a_foreign_cursor_and_ends_on_deactivation,
    switching_workspace_and_profile,
);

fn auth(app: &TestApp) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::new(app.channel.clone())
}

async fn introspect(
    app: &TestApp,
    key: &str,
    token: &str,
) -> sentinel::proto::v1::IntrospectResponse {
    auth(app)
        .introspect(with_service_key(
            IntrospectRequest {
                token: token.into(),
            },
            key,
        ))
        .await
        .expect("introspect answers")
        .into_inner()
}

async fn refresh(
    app: &TestApp,
    token: &str,
) -> Result<sentinel::proto::v1::TokenPair, tonic::Status> {
    auth(app)
        .refresh(RefreshRequest {
            refresh_token: token.into(),
            workspace_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().tokens.expect("token pair"))
}

async fn refresh_rotates_and_carries_workspace_context(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let issued = sign_in(&app, "ada@example.com", "acme", "editor").await;
    let pair = refresh(&app, &issued.refresh_token).await.unwrap();
    assert_ne!(pair.refresh_token, issued.refresh_token);
    assert_eq!(pair.session_id, issued.session.id.to_string());
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    let workspace = pair.workspace.expect("scoped").workspace.unwrap();
    assert_eq!(workspace.slug, "acme");

    let claims = introspect(&app, &key, &pair.access_token).await;
    assert!(claims.active);
    assert_eq!(claims.typ, "access");
    assert_eq!(claims.email, "ada@example.com");
    assert_eq!(claims.wslug, "acme");
    assert_eq!(
        claims.wrole,
        sentinel::proto::v1::WorkspaceRole::Editor as i32
    );
    assert_eq!(claims.sid, pair.session_id);
    assert_eq!(claims.aud, vec!["sentinel".to_string()]);
    assert_eq!(claims.amr, vec!["cli".to_string()]);

    // The new refresh token rotates again; a garbage one is refused without detail.
    let again = refresh(&app, &pair.refresh_token).await.unwrap();
    assert_ne!(again.refresh_token, pair.refresh_token);
    let err = refresh(&app, "rt_not-a-token").await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = refresh(&app, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("refresh_token"));
    app.stop().await;
}

async fn concurrent_refreshes_inside_the_grace_all_succeed(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    // Long enough that a slow run stays inside it; the clock is moved past it below.
    config.refresh_reuse_grace = Duration::from_secs(600);
    // 300+ token calls from one address in a few seconds: over the default per-address limit.
    config.rate_limit.enabled = false;
    let app = TestApp::start(config).await;
    let key = service_key(&app, "docs").await;
    let issued = sign_in(&app, "tabs@example.com", "acme", "viewer").await;
    let app = Arc::new(app);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            let token = issued.refresh_token.clone();
            tokio::spawn(async move { refresh(&app, &token).await })
        })
        .collect();
    let mut pairs = Vec::new();
    for call in calls {
        pairs.push(
            call.await
                .unwrap()
                .expect("every refresh inside the grace succeeds"),
        );
    }
    // One family survives: every pair belongs to the original session, which is still live.
    assert!(
        pairs
            .iter()
            .all(|p| p.session_id == issued.session.id.to_string())
    );
    for pair in pairs.iter().step_by(17) {
        assert!(introspect(&app, &key, &pair.access_token).await.active);
        refresh(&app, &pair.refresh_token)
            .await
            .expect("descendants keep rotating");
    }
    // The same after the grace: every replay is refused, the family is revoked, and no pair
    // handed out before is usable any more.
    app.clock.advance(Duration::from_secs(601));
    let replays: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            let token = issued.refresh_token.clone();
            tokio::spawn(async move { refresh(&app, &token).await })
        })
        .collect();
    for replay in replays {
        let err = replay.await.unwrap().expect_err("replay after the grace");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    for pair in &pairs {
        assert_eq!(
            refresh(&app, &pair.refresh_token).await.unwrap_err().code(),
            Code::Unauthenticated
        );
    }
    for pair in pairs.iter().step_by(10) {
        eventually("the revoked family's access tokens are refused", || async {
            !introspect(&app, &key, &pair.access_token).await.active
        })
        .await;
    }
    assert_eq!(audit_count(&db, "token.reuse_detected").await, 1);
    Arc::try_unwrap(app).ok().expect("sole owner").stop().await;
}

async fn reuse_after_the_grace_revokes_the_family_and_its_access_tokens(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.refresh_reuse_grace = Duration::from_secs(600);
    let app = TestApp::start(config.clone()).await;
    // In clustered mode the access token is checked on a second instance.
    let other = match backend {
        Backend::Clustered => Some(TestApp::start(config).await),
        Backend::Embedded => None,
    };
    let verifier = other.as_ref().unwrap_or(&app);
    let key = service_key(&app, "docs").await;
    let issued = sign_in(&app, "victim@example.com", "acme", "viewer").await;
    let rotated = refresh(&app, &issued.refresh_token).await.unwrap();
    assert!(
        introspect(verifier, &key, &issued.access_token)
            .await
            .active
    );
    assert!(
        introspect(verifier, &key, &rotated.access_token)
            .await
            .active
    );

    app.clock.advance(Duration::from_secs(601));
    // The stolen, already-rotated token comes back after the grace.
    let err = refresh(&app, &issued.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The family is gone: the legitimate newest refresh token no longer works either.
    let err = refresh(&app, &rotated.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Live access tokens of the family are rejected everywhere.
    eventually(
        "the family's access tokens are refused on every instance",
        || async {
            let first = introspect(verifier, &key, &issued.access_token).await;
            let second = introspect(verifier, &key, &rotated.access_token).await;
            !first.active && !second.active
        },
    )
    .await;
    // And it was audited once.
    let count = audit_count(&db, "token.reuse_detected").await;
    assert_eq!(count, 1);
    // Another family's reuse is its own event, naming its own session.
    let second = sign_in(&app, "other@example.com", "acme", "viewer").await;
    refresh(&app, &second.refresh_token).await.unwrap();
    app.clock.advance(Duration::from_secs(601));
    let before = app.clock.now();
    let err = refresh(&app, &second.refresh_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let filter = sentinel::store::AuditFilter {
        action: Some("token.reuse_detected".into()),
        ..sentinel::store::AuditFilter::default()
    };
    let events = app
        .app
        .state()
        .store
        .list_audit(&filter, None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let sessions: std::collections::HashSet<String> =
        events.iter().filter_map(|e| e.target_id.clone()).collect();
    assert!(
        sessions.contains(&second.session.id.to_string()),
        "{sessions:?}"
    );
    assert!(
        sessions.contains(&issued.session.id.to_string()),
        "{sessions:?}"
    );
    let latest = events
        .iter()
        .find(|e| e.target_id.as_deref() == Some(&second.session.id.to_string()))
        .unwrap();
    assert_eq!(latest.actor_user_id, Some(second.user.id), "{latest:?}");
    assert_eq!(latest.target_type.as_deref(), Some("session"), "{latest:?}");
    assert_eq!(latest.outcome, "failure", "{latest:?}");
    assert!(
        latest.occurred_at >= before,
        "stamped by the server's clock: {latest:?}"
    );
    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;
}

async fn logout_revokes_live_access_tokens(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let first = sign_in(&app, "bob@example.com", "acme", "admin").await;
    let second = sign_in(&app, "bob@example.com", "acme", "admin").await;
    let out = auth(&app)
        .logout(with_bearer(
            LogoutRequest {
                all_sessions: false,
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.revoked_session_count, 1);
    assert!(!introspect(&app, &key, &first.access_token).await.active);
    assert!(introspect(&app, &key, &second.access_token).await.active);
    assert_eq!(
        refresh(&app, &first.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The revoked token cannot call user-tier RPCs any more.
    let err = auth(&app)
        .logout(with_bearer(
            LogoutRequest { all_sessions: true },
            &first.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let out = auth(&app)
        .logout(with_bearer(
            LogoutRequest { all_sessions: true },
            &second.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.revoked_session_count, 1);
    assert!(!introspect(&app, &key, &second.access_token).await.active);
    app.stop().await;
}

async fn sessions_are_listed_and_revoked(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(sign_in(&app, "carol@example.com", "acme", "viewer").await);
    }
    let me = &sessions[4];
    // Paged listing, newest first, never repeating.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = auth(&app)
            .list_sessions(with_bearer(
                ListSessionsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..ListSessionsRequest::default()
                },
                &me.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.sessions.iter().map(|s| (s.id.clone(), s.current)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen.len(), 5);
    let mut ids: Vec<_> = seen.iter().map(|s| s.0.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no session on two pages");
    let mut expected: Vec<_> = sessions.iter().map(|s| s.session.id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "exactly the user's sessions");
    assert_eq!(
        seen.iter().filter(|s| s.1).count(),
        1,
        "exactly one is current"
    );

    let target = sessions[0].session.id.to_string();
    let revoked = auth(&app)
        .revoke_session(with_bearer(
            RevokeSessionRequest { id: target.clone() },
            &me.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        refresh(&app, &sessions[0].refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Another user's session is not visible to a non-admin.
    let stranger = sign_in(&app, "mallory@example.com", "other", "owner").await;
    let err = auth(&app)
        .revoke_session(with_bearer(
            RevokeSessionRequest {
                id: sessions[1].session.id.to_string(),
            },
            &stranger.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = auth(&app)
        .list_sessions(with_bearer(
            ListSessionsRequest {
                user_id: me.user.id.to_string(),
                ..ListSessionsRequest::default()
            },
            &stranger.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = auth(&app)
        .revoke_session(with_bearer(
            RevokeSessionRequest { id: "nope".into() },
            &me.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("id:"));
    app.stop().await;
}

async fn introspect_requires_a_valid_service_key(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let issued = sign_in(&app, "dan@example.com", "acme", "viewer").await;
    let key = service_key(&app, "docs").await;
    let no_key = auth(&app)
        .introspect(IntrospectRequest {
            token: issued.access_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_key.code(), Code::Unauthenticated);
    let mut tampered = key.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let forged = sentinel::apps::generate_key().unwrap();
    for bad in [String::from_utf8(tampered).unwrap(), forged, "sk_".into()] {
        let err = auth(&app)
            .introspect(with_service_key(
                IntrospectRequest {
                    token: issued.access_token.clone(),
                },
                &bad,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(err.message(), "invalid service key");
    }
    assert!(introspect(&app, &key, &issued.access_token).await.active);
    let err = auth(&app)
        .introspect(with_service_key(
            IntrospectRequest {
                token: String::new(),
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    app.stop().await;
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn forged_and_malformed_tokens_are_rejected(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let issued = sign_in(&app, "eve@example.com", "acme", "viewer").await;
    let state = app.app.state();
    let signing_key = state.keys.active();
    let valid: AccessClaims = {
        let payload = issued.access_token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert!(
        introspect(&app, &key, &sign(&signing_key, &valid).unwrap())
            .await
            .active
    );

    let now = chrono::Utc::now().timestamp();
    let mut forged: Vec<(&str, String)> = Vec::new();
    let with = |change: &dyn Fn(&mut AccessClaims)| {
        let mut claims = valid.clone();
        change(&mut claims);
        sign(&signing_key, &claims).unwrap()
    };
    forged.push((
        "wrong iss",
        with(&|c| c.iss = "https://evil.example".into()),
    ));
    forged.push(("wrong aud", with(&|c| c.aud = vec!["someone-else".into()])));
    forged.push((
        "expired",
        with(&|c| {
            c.iat = now - 3600;
            c.nbf = now - 3600;
            c.exp = now - 600;
        }),
    ));
    forged.push(("not yet valid", with(&|c| c.nbf = now + 600)));
    forged.push(("refresh typ", with(&|c| c.typ = "refresh".into())));
    forged.push(("authz typ", with(&|c| c.typ = "authz".into())));

    let payload = b64(&serde_json::to_value(&valid).unwrap());
    forged.push((
        "alg none",
        format!(
            "{}.{payload}.",
            b64(&serde_json::json!({"alg":"none","typ":"JWT","kid":signing_key.kid}))
        ),
    ));
    // HS256 signed with the public key as the HMAC secret (key confusion).
    let jwks = state.keys.jwks();
    let public = serde_json::to_vec(&jwks.keys[0]).unwrap();
    let header = b64(&serde_json::json!({"alg":"HS256","typ":"JWT","kid":signing_key.kid}));
    let message = format!("{header}.{payload}");
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public),
        message.as_bytes(),
    );
    forged.push((
        "hs256 key confusion",
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac)),
    ));
    // A valid signature under a kid the server does not know.
    let mut parts: Vec<String> = issued.access_token.split('.').map(String::from).collect();
    parts[0] = b64(&serde_json::json!({"alg":"RS256","typ":"JWT","kid":"unknown-kid"}));
    forged.push(("unknown kid", parts.join(".")));
    let mut truncated = issued.access_token.clone();
    truncated.truncate(truncated.len() - 10);
    forged.push(("truncated", truncated));
    forged.push(("garbage", "not.a.jwt".into()));
    let mut parts: Vec<String> = issued.access_token.split('.').map(String::from).collect();
    parts[0] = b64(&serde_json::json!({"alg":"RS256","typ":"JWT"}));
    forged.push(("no kid", parts.join(".")));
    forged.push((
        "9 KiB",
        format!("{}{}", issued.access_token, "A".repeat(9 * 1024)),
    ));

    for (what, token) in &forged {
        let response = introspect(&app, &key, token).await;
        assert!(!response.active, "{what} must be inactive");
        assert_eq!(
            response,
            Default::default(),
            "{what}: inactive says nothing more"
        );
        let err = auth(&app)
            .list_sessions(with_bearer(ListSessionsRequest::default(), token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
    }
    app.stop().await;
}

async fn watch_revocations_replays_then_follows(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let early = sign_in(&app, "fay@example.com", "acme", "viewer").await;
    auth(&app)
        .logout(with_bearer(LogoutRequest::default(), &early.access_token))
        .await
        .unwrap();
    let mut stream = auth(&app)
        .watch_revocations(with_service_key(WatchRevocationsRequest::default(), &key))
        .await
        .unwrap()
        .into_inner();
    let replay = next(&mut stream, "the replay").await.unwrap().unwrap();
    assert!(replay.caught_up);
    assert_eq!(replay.revocations.len(), 1);
    assert_eq!(
        replay.revocations[0].session_id,
        early.session.id.to_string()
    );
    assert_eq!(
        replay.revocations[0].reason,
        sentinel::proto::v1::RevocationReason::Logout as i32
    );

    let later = sign_in(&app, "fay@example.com", "acme", "viewer").await;
    auth(&app)
        .logout(with_bearer(LogoutRequest::default(), &later.access_token))
        .await
        .unwrap();
    let live = next(&mut stream, "the live revocation")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.revocations[0].session_id, later.session.id.to_string());
    assert!(live.revision > replay.revision);

    // Resuming from the last revision delivers nothing old.
    let mut resumed = auth(&app)
        .watch_revocations(with_service_key(
            WatchRevocationsRequest {
                since_revision: live.revision,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut resumed, "the resumed replay")
        .await
        .unwrap()
        .unwrap();
    assert!(first.caught_up);
    assert!(first.revocations.is_empty());
    let err = auth(&app)
        .watch_revocations(WatchRevocationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    app.stop().await;
}

async fn signing_key_rotation_keeps_old_tokens_valid_for_the_overlap(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.access_token_ttl = Duration::from_secs(30);
    config.key_publish_delay = Duration::ZERO;
    let app = TestApp::start(config.clone()).await;
    let other = match backend {
        Backend::Clustered => Some(TestApp::start(config).await),
        Backend::Embedded => None,
    };
    let key = service_key(&app, "docs").await;
    let admin = sign_in(&app, "root@example.com", "ops", "owner").await;
    app.app
        .state()
        .store
        .set_user_flags(admin.user.id, true, true)
        .await
        .unwrap();
    let user = sign_in(&app, "user@example.com", "ops", "viewer").await;
    let rotate = |token: String, overlap: u64| {
        let mut client = auth(&app);
        async move {
            client
                .rotate_signing_key(with_bearer(
                    RotateSigningKeyRequest {
                        overlap: Some(prost_types::Duration {
                            seconds: overlap as i64,
                            nanos: 0,
                        }),
                        ..RotateSigningKeyRequest::default()
                    },
                    &token,
                ))
                .await
        }
    };
    // Only platform admins rotate, and the overlap must cover an access token's life.
    let err = rotate(user.access_token.clone(), 60).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = rotate(admin.access_token.clone(), 5).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("overlap:"), "{}", err.message());

    let before = auth(&app)
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    // A token of the old key that outlives the overlap: refused once the overlap ends, though
    // its own `exp` is an hour ahead.
    let long_lived = {
        let mut claims: AccessClaims = {
            let payload = user.access_token.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
        };
        claims.exp += 3600;
        sign(&app.app.state().keys.active(), &claims).unwrap()
    };
    let rotated = rotate(admin.access_token.clone(), 30)
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.kid, before.keys[0].kid);
    assert_eq!(rotated.previous_keys.len(), 1);
    assert_eq!(rotated.previous_keys[0].kid, before.keys[0].kid);
    let during = auth(&app)
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let kids: Vec<_> = during.keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(
        kids,
        vec![rotated.kid.clone(), before.keys[0].kid.clone()],
        "new key first"
    );

    // New tokens use the new key, and verify on every instance (one that has not reloaded yet
    // loads the new key on first sight of its kid).
    let fresh = sign_in(&app, "user@example.com", "ops", "viewer").await;
    let header = fresh.access_token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], rotated.kid.as_str());
    let verifier = other.as_ref().unwrap_or(&app);
    assert!(introspect(verifier, &key, &fresh.access_token).await.active);
    // The old key's tokens keep verifying during the overlap…
    assert!(introspect(&app, &key, &user.access_token).await.active);
    assert!(introspect(verifier, &key, &user.access_token).await.active);
    assert!(introspect(&app, &key, &long_lived).await.active);

    if let Some(other) = &other {
        // Concurrent rotations on two instances leave exactly one active key.
        let mut other_client = auth(other);
        let token = admin.access_token.clone();
        let (a, b) = tokio::join!(
            rotate(admin.access_token.clone(), 30),
            other_client.rotate_signing_key(with_bearer(
                RotateSigningKeyRequest {
                    overlap: Some(prost_types::Duration {
                        seconds: 30,
                        nanos: 0
                    }),
                    ..RotateSigningKeyRequest::default()
                },
                &token,
            )),
        );
        a.unwrap();
        b.unwrap();
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE status = 'active'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(active, 1);
    }

    // …and stop verifying once the overlap ends (this server's clock moves past it), however
    // long the token itself would live.
    app.clock.advance(Duration::from_secs(31));
    assert!(!introspect(&app, &key, &long_lived).await.active);
    assert!(!introspect(&app, &key, &user.access_token).await.active);
    if other.is_none() {
        // The new key goes on verifying, for a token minted now and for `fresh` (inside its
        // lifetime and leeway). With two instances the concurrent rotations above retired the
        // new key too.
        let newer = sign_in(&app, "user@example.com", "ops", "viewer").await;
        let header = newer.access_token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["kid"], rotated.kid.as_str());
        for token in [&newer.access_token, &fresh.access_token] {
            if !introspect(&app, &key, token).await.active {
                // Say why (GetMe names the refusal) before failing.
                let status = sentinel::proto::v1::user_service_client::UserServiceClient::new(
                    app.channel.clone(),
                )
                .get_me(with_bearer(sentinel::proto::v1::GetMeRequest {}, token))
                .await
                .map(drop);
                panic!("a token of the new key is refused after the overlap: {status:?}");
            }
        }
    }
    app.app.state().keys.reload().await.unwrap();
    let after = auth(&app)
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.keys.iter().all(|k| k.kid != before.keys[0].kid),
        "the old key left the JWKS"
    );
    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn a_rotated_key_is_published_before_it_signs(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    // Long enough that no slow run reaches it; the server's clock is moved past it below.
    config.key_publish_delay = Duration::from_secs(600);
    let app = TestApp::start(config).await;
    let admin = sign_in(&app, "root@example.com", "ops", "owner").await;
    let state = app.app.state();
    state
        .store
        .set_user_flags(admin.user.id, true, true)
        .await
        .unwrap();
    let old_kid = kid_of(&admin.access_token);
    let rotated = auth(&app)
        .rotate_signing_key(with_bearer(
            RotateSigningKeyRequest {
                algorithm: "ES256".into(),
                ..RotateSigningKeyRequest::default()
            },
            &admin.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.algorithm, "ES256");
    let activates = rotated.activated_at.unwrap().seconds;
    assert!(
        activates > chrono::Utc::now().timestamp(),
        "signs only after the delay"
    );

    // Published at once (the signing key first), not yet signing.
    let jwks: serde_json::Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![old_kid.as_str(), rotated.kid.as_str()]);
    assert_eq!(jwks["keys"][1]["kty"], "EC");
    assert_eq!(jwks["keys"][1]["crv"], "P-256");
    let before = sign_in(&app, "user@example.com", "ops", "viewer").await;
    assert_eq!(kid_of(&before.access_token), old_kid);

    // After the delay the new key signs, without a restart (at the key ring's next reload).
    app.clock.advance(Duration::from_secs(601));
    state.keys.reload().await.unwrap();
    let after = sign_in(&app, "user@example.com", "ops", "viewer").await;
    assert_eq!(kid_of(&after.access_token), rotated.kid);
    let key = service_key(&app, "docs").await;
    assert!(introspect(&app, &key, &after.access_token).await.active);
    assert!(introspect(&app, &key, &before.access_token).await.active);

    // The server reloads on its own when a pending key's time comes.
    let (next, _) = state
        .keys
        .rotate(
            sentinel::tokens::keys::SigningAlgorithm::EdDSA,
            Duration::from_millis(200),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    eventually("the scheduled key signs once its time comes", || async {
        let issued = sign_in(&app, "user@example.com", "ops", "viewer").await;
        kid_of(&issued.access_token) == next.kid
    })
    .await;
    app.stop().await;
}

async fn every_signing_algorithm_issues_verifiable_tokens(backend: Backend) {
    use sentinel::tokens::keys::SigningAlgorithm;
    for (algorithm, kty) in [
        (SigningAlgorithm::ES256, "EC"),
        (SigningAlgorithm::EdDSA, "OKP"),
        (SigningAlgorithm::RS256, "RSA"),
    ] {
        let db = TestDatabase::create(backend).await;
        let mut config = db.config();
        config.signing_algorithm = algorithm;
        let app = TestApp::start(config).await;
        let key = service_key(&app, "docs").await;
        let issued = sign_in(&app, "alg@example.com", "acme", "viewer").await;
        let header = issued.access_token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], algorithm.as_str());
        let jwks = auth(&app)
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(jwks.keys[0].kty, kty);
        assert!(
            introspect(&app, &key, &issued.access_token).await.active,
            "{algorithm:?}"
        );
        // A signature by the right key under another algorithm name is refused.
        let mut parts: Vec<String> = issued.access_token.split('.').map(String::from).collect();
        let other = if algorithm == SigningAlgorithm::RS256 {
            "ES256"
        } else {
            "RS256"
        };
        parts[0] = b64(&serde_json::json!({"alg": other, "typ": "JWT", "kid": header["kid"]}));
        assert!(!introspect(&app, &key, &parts.join(".")).await.active);
        app.stop().await;
    }
}

async fn admins_revoke_every_token_of_a_user(backend: Backend) {
    use sentinel::proto::v1::RevokeUserTokensRequest;
    use sentinel::proto::v1::user_service_client::UserServiceClient;
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let admin = sign_in(&app, "root@example.com", "ops", "owner").await;
    app.app
        .state()
        .store
        .set_user_flags(admin.user.id, true, true)
        .await
        .unwrap();
    let phone = sign_in(&app, "gus@example.com", "ops", "viewer").await;
    let laptop = sign_in(&app, "gus@example.com", "ops", "viewer").await;
    let mut users = UserServiceClient::new(app.channel.clone());
    let request = |id: String, token: &str| with_bearer(RevokeUserTokensRequest { id }, token);
    let err = users
        .revoke_user_tokens(request(admin.user.id.to_string(), &phone.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = users
        .revoke_user_tokens(request(
            uuid::Uuid::new_v4().to_string(),
            &admin.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let revoked = users
        .revoke_user_tokens(request(phone.user.id.to_string(), &admin.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked_session_count, 2);
    for issued in [&phone, &laptop] {
        assert!(!introspect(&app, &key, &issued.access_token).await.active);
        assert_eq!(
            refresh(&app, &issued.refresh_token)
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
    }
    // The admin's own tokens are untouched, and the action is audited.
    assert!(introspect(&app, &key, &admin.access_token).await.active);
    assert_eq!(audit_count(&db, "user.tokens_revoked").await, 1);
    // A new sign-in after the revocation works, also within the second of the revocation (its
    // tokens carry an `iat` past the revocation's).
    let fresh = sign_in(&app, "gus@example.com", "ops", "viewer").await;
    assert!(introspect(&app, &key, &fresh.access_token).await.active);
    app.stop().await;
}

async fn authz_tokens_work_only_with_their_service_key(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let docs = service_key(&app, "docs").await;
    let billing = service_key(&app, "billing").await;
    let issued = sign_in(&app, "hal@example.com", "acme", "editor").await;
    let state = app.app.state();
    let scope = issued.scope.clone().expect("scoped");
    let (token, expires) = state
        .tokens
        .issue_authz(
            &issued.user,
            "google|123",
            "docs",
            &scope,
            vec!["docs.write".into(), "docs.read".into(), "docs.read".into()],
        )
        .unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::seconds(200));
    let claims = introspect(&app, &docs, &token).await;
    assert!(claims.active);
    assert_eq!(claims.typ, "authz");
    assert_eq!(claims.svc, "docs");
    assert_eq!(claims.idp_sub, "google|123");
    assert_eq!(claims.aud, vec!["docs".to_string()], "the service alone");
    assert_eq!(
        claims.actions,
        vec!["docs.read".to_string(), "docs.write".to_string()]
    );
    assert_eq!(claims.wslug, "acme");
    assert_eq!(
        claims.wrole,
        sentinel::proto::v1::WorkspaceRole::Editor as i32
    );
    // Another service's key sees nothing; an authz token is never an access token.
    assert_eq!(introspect(&app, &billing, &token).await, Default::default());
    let err = auth(&app)
        .list_sessions(with_bearer(ListSessionsRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    app.stop().await;
}

/// Puts a user in a new group directly in the database (group management is not an RPC yet).
async fn add_to_new_group(
    db: &TestDatabase,
    workspace: uuid::Uuid,
    user: uuid::Uuid,
) -> uuid::Uuid {
    use sqlx::Connection;
    let group = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let insert_group = "INSERT INTO groups (id, workspace_id, name, created_at, updated_at) \
                        VALUES ($1, $2, $3, $4, $4)";
    let insert_member =
        "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3)";
    match db.backend {
        Backend::Embedded => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(insert_group)
                .bind(group)
                .bind(workspace)
                .bind(group.to_string())
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(insert_member)
                .bind(group)
                .bind(user)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Backend::Clustered => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(insert_group)
                .bind(group)
                .bind(workspace)
                .bind(group.to_string())
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(insert_member)
                .bind(group)
                .bind(user)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    group
}

async fn role_and_group_changes_show_in_the_next_refresh(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let issued = sign_in(&app, "ivy@example.com", "acme", "viewer").await;
    let state = app.app.state();
    let workspace = issued.scope.as_ref().unwrap().workspace.id;
    state
        .store
        .upsert_membership(
            workspace,
            issued.user.id,
            sentinel::model::WorkspaceRole::Admin,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let pair = refresh(&app, &issued.refresh_token).await.unwrap();
    let claims = introspect(&app, &key, &pair.access_token).await;
    assert_eq!(
        claims.wrole,
        sentinel::proto::v1::WorkspaceRole::Admin as i32
    );
    assert!(claims.groups.is_empty());

    // Groups of this workspace appear in the next token; groups elsewhere do not.
    let mut groups = [
        add_to_new_group(&db, workspace.into(), issued.user.id.into()).await,
        add_to_new_group(&db, workspace.into(), issued.user.id.into()).await,
    ];
    groups.sort();
    let elsewhere = sign_in(&app, "ivy@example.com", "other", "viewer").await;
    add_to_new_group(
        &db,
        elsewhere.scope.unwrap().workspace.id.into(),
        issued.user.id.into(),
    )
    .await;
    let pair = refresh(&app, &pair.refresh_token).await.unwrap();
    let claims = introspect(&app, &key, &pair.access_token).await;
    let expected: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    assert_eq!(claims.groups, expected);
    app.stop().await;
}

async fn a_stale_refresh_token_reveals_no_membership(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.refresh_reuse_grace = Duration::from_secs(600);
    let app = TestApp::start(config).await;
    let issued = sign_in(&app, "jo@example.com", "acme", "viewer").await;
    let foreign = sign_in(&app, "kim@example.com", "secret-team", "owner").await;
    let foreign_id = foreign.scope.unwrap().workspace.id.to_string();
    let rotated = refresh(&app, &issued.refresh_token).await.unwrap();
    app.clock.advance(Duration::from_secs(601));
    // A replay after the grace, aimed at a workspace the user is not in: the answer is the
    // reuse verdict, never a membership verdict.
    let err = auth(&app)
        .refresh(RefreshRequest {
            refresh_token: issued.refresh_token.clone(),
            workspace_id: foreign_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(audit_count(&db, "token.reuse_detected").await, 1);
    // The family is revoked: its newest token says the same, whatever workspace it names.
    let err = auth(&app)
        .refresh(RefreshRequest {
            refresh_token: rotated.refresh_token,
            workspace_id: foreign_id,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    app.stop().await;
}

async fn revocation_watch_resets_a_foreign_cursor_and_ends_on_deactivation(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let state = app.app.state();
    let (service, key) = state.apps.create("watcher", "watcher", &[]).await.unwrap();
    let issued = sign_in(&app, "lu@example.com", "acme", "viewer").await;
    auth(&app)
        .logout(with_bearer(LogoutRequest::default(), &issued.access_token))
        .await
        .unwrap();
    let mut stream = auth(&app)
        .watch_revocations(with_service_key(
            WatchRevocationsRequest {
                since_revision: 1_000_000,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream, "the replay").await.unwrap().unwrap();
    assert!(first.reset, "a cursor beyond the log restarts the replay");
    assert!(first.caught_up);
    assert_eq!(first.revocations.len(), 1);

    state
        .store
        .set_service_app_active(service.id, false)
        .await
        .unwrap();
    let end = within("the stream ends after the deactivation", async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert_eq!(end.unwrap_err().code(), Code::Unauthenticated);
    app.stop().await;
}

async fn switching_workspace_and_profile(backend: Backend) {
    use sentinel::proto::v1::user_service_client::UserServiceClient;
    use sentinel::proto::v1::{GetMeRequest, SwitchWorkspaceRequest, UpdateMeRequest};
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let first = sign_in(&app, "max@example.com", "acme", "viewer").await;
    let second = sign_in(&app, "max@example.com", "globex", "admin").await;
    let stranger = sign_in(&app, "zed@example.com", "initech", "owner").await;
    let globex = second.scope.unwrap().workspace.id.to_string();
    let switched = auth(&app)
        .switch_workspace(with_bearer(
            SwitchWorkspaceRequest {
                workspace_id: globex.clone(),
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(
        switched.session_id,
        first.session.id.to_string(),
        "same session"
    );
    let claims = introspect(&app, &key, &switched.access_token).await;
    assert_eq!(claims.wslug, "globex");
    assert_eq!(
        claims.wrole,
        sentinel::proto::v1::WorkspaceRole::Admin as i32
    );
    // No refresh token is minted from an access token; the session's own refresh token now
    // refreshes into globex, and Refresh with a workspace_id re-scopes explicitly.
    assert!(switched.refresh_token.is_empty());
    let refreshed = refresh(&app, &first.refresh_token).await.unwrap();
    assert_eq!(
        introspect(&app, &key, &refreshed.access_token).await.wslug,
        "globex"
    );
    // Not a member: refused without saying whether the workspace exists.
    for target in [
        stranger.scope.unwrap().workspace.id.to_string(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        let err = auth(&app)
            .switch_workspace(with_bearer(
                SwitchWorkspaceRequest {
                    workspace_id: target,
                },
                &first.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }

    let mut users = UserServiceClient::new(app.channel.clone());
    let me = users
        .get_me(with_bearer(GetMeRequest {}, &first.access_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.email, "max@example.com");
    let updated = users
        .update_me(with_bearer(
            UpdateMeRequest {
                name: Some("Max Mustermann".into()),
                avatar_url: Some("https://cdn.example.com/max.png".into()),
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(updated.name, "Max Mustermann");
    assert_eq!(updated.avatar_url, "https://cdn.example.com/max.png");
    for bad in [
        "javascript:alert(1)",
        "ftp://x",
        "https://",
        "http://cdn.example.com/a.png",
    ] {
        let err = users
            .update_me(with_bearer(
                UpdateMeRequest {
                    name: None,
                    avatar_url: Some(bad.into()),
                },
                &first.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with("avatar_url"));
    }
    // The new name is in the next refreshed token.
    let refreshed = refresh(&app, &refreshed.refresh_token).await.unwrap();
    assert_eq!(
        introspect(&app, &key, &refreshed.access_token).await.name,
        "Max Mustermann"
    );
    app.stop().await;
}
