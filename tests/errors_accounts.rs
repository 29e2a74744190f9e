//! The documented errors of the account RPCs, on both backends: UserService (own profile, user
//! administration), AdminService (audit trail, CSV import and export) and the AuthService RPCs
//! outside the sign-in flow (refresh, workspace switch, introspection, sessions, the revocation
//! stream, signing keys). Each refusal is asserted with the documented code, the field an
//! INVALID_ARGUMENT names, and a follow-up read showing the refused call changed nothing.

mod common;

use common::clients::{auth, unknown_id, users};
use std::time::Duration;

use common::contract::refused;
use common::{
    Backend, TestApp, TestDatabase, platform_admin, service_key, sign_in, with_bearer,
    with_service_key,
};
use sentinel::proto::v1::admin_service_client::AdminServiceClient;
use sentinel::proto::v1::{
    ExportCsvRequest, GetJwksRequest, GetMeRequest, GetStatsRequest, GetUserRequest,
    ImportCsvRequest, IntrospectRequest, ListAuditEventsRequest, ListSessionsRequest,
    ListUsersRequest, LogoutRequest, RefreshRequest, RetireSigningKeyRequest, RevokeSessionRequest,
    RevokeUserTokensRequest, RotateSigningKeyRequest, SwitchWorkspaceRequest, UpdateMeRequest,
    UpdateUserRequest, WatchRevocationsRequest,
};
use tonic::Code;
use tonic::transport::Channel;

both_backends!(
    profile_and_user_administration_refusals,
    audit_and_csv_refusals,
    refresh_switch_and_introspect_refusals,
    session_refusals,
    revocation_stream_and_signing_key_refusals,
);

fn admin_service(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel.clone())
}

fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

async fn me(app: &TestApp, token: &str) -> sentinel::proto::v1::User {
    let request = with_bearer(GetMeRequest {}, token);
    users(app)
        .get_me(request)
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
}

async fn profile_and_user_administration_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "editor").await;
    let before = me(&app, &ann.access_token).await;

    // UpdateMe: an empty (also after trimming) or over-long name, an avatar that is no http(s)
    // URL. Each names its field and changes nothing.
    let long_name = "n".repeat(201);
    let cases: [(Option<&str>, Option<&str>, &str); 6] = [
        (Some(""), None, "name"),
        (Some("   "), None, "name"),
        (Some(long_name.as_str()), None, "name"),
        (None, Some("ftp://img.example.com/ann.png"), "avatar_url"),
        (None, Some("javascript:alert(1)"), "avatar_url"),
        (None, Some("img.example.com/ann.png"), "avatar_url"),
    ];
    for (name, avatar_url, field) in cases {
        let request = UpdateMeRequest {
            name: name.map(str::to_string),
            avatar_url: avatar_url.map(str::to_string),
        };
        let status = refused(
            "UserService/UpdateMe",
            Code::InvalidArgument,
            users(&app)
                .update_me(with_bearer(request, &ann.access_token))
                .await,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    let after = me(&app, &ann.access_token).await;
    assert_eq!(
        (after.name, after.avatar_url),
        (before.name, before.avatar_url)
    );

    // A valid change goes through; GetUser shows it by id, with the user's name.
    let request = UpdateMeRequest {
        name: Some("Ann Example".into()),
        avatar_url: Some("https://img.example.com/ann.png".into()),
    };
    users(&app)
        .update_me(with_bearer(request, &ann.access_token))
        .await
        .unwrap();
    let fetched = users(&app)
        .get_user(with_bearer(
            GetUserRequest {
                id: ann.user.id.to_string(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let user = fetched.user.unwrap();
    assert_eq!(user.id, ann.user.id.to_string());
    assert_eq!(user.email, "ann@example.com");
    assert_eq!(user.name, "Ann Example");
    assert_eq!(user.avatar_url, "https://img.example.com/ann.png");
    assert!(user.is_active && !user.is_admin);

    // Unknown users are NOT_FOUND to every admin RPC addressing one.
    let ghost = unknown_id();
    refused(
        "UserService/GetUser",
        Code::NotFound,
        users(&app)
            .get_user(with_bearer(GetUserRequest { id: ghost.clone() }, &admin))
            .await,
    );
    let request = UpdateUserRequest {
        id: ghost.clone(),
        name: Some("Ghost".into()),
        is_active: Some(false),
        ..UpdateUserRequest::default()
    };
    refused(
        "UserService/UpdateUser",
        Code::NotFound,
        users(&app).update_user(with_bearer(request, &admin)).await,
    );
    refused(
        "UserService/RevokeUserTokens",
        Code::NotFound,
        users(&app)
            .revoke_user_tokens(with_bearer(RevokeUserTokensRequest { id: ghost }, &admin))
            .await,
    );
    // The last active platform admin can be neither deactivated nor demoted (here by themself);
    // once another admin exists, they may step down.
    let root = me(&app, &admin).await.id;
    let change = |id: &str, is_active: Option<bool>, is_admin: Option<bool>| UpdateUserRequest {
        id: id.to_string(),
        is_active,
        is_admin,
        ..UpdateUserRequest::default()
    };
    for request in [
        change(&root, Some(false), None),
        change(&root, None, Some(false)),
    ] {
        let status = refused(
            "UserService/UpdateUser",
            Code::FailedPrecondition,
            users(&app).update_user(with_bearer(request, &admin)).await,
        );
        assert!(status.message().contains("admin"), "{status:?}");
    }
    let unchanged = me(&app, &admin).await;
    assert!(unchanged.is_active && unchanged.is_admin, "nothing changed");
    let ann_id = ann.user.id.to_string();
    users(&app)
        .update_user(with_bearer(change(&ann_id, None, Some(true)), &admin))
        .await
        .unwrap();
    let stepped_down = users(&app)
        .update_user(with_bearer(change(&root, None, Some(false)), &admin))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(!stepped_down.is_admin);
    let listed = users(&app)
        .list_users(with_bearer(ListUsersRequest::default(), &ann.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.users.len(), 2, "nobody was created");
    assert!(
        me(&app, &ann.access_token).await.is_active,
        "ann's tokens were not touched"
    );
    app.stop().await;
}

async fn audit_and_csv_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;

    // ListAuditEvents: a window whose start is after its end.
    let now = chrono::Utc::now().timestamp();
    let request = ListAuditEventsRequest {
        start_time: Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: now - 3600,
            nanos: 0,
        }),
        ..ListAuditEventsRequest::default()
    };
    let status = refused(
        "AdminService/ListAuditEvents",
        Code::InvalidArgument,
        admin_service(&app)
            .list_audit_events(with_bearer(request, &admin))
            .await,
    );
    assert!(status.message().contains("start_time"), "{status:?}");

    // ImportCsv: file-level problems are a status naming `csv`, and nothing of the file is
    // written (each file below but the empty one holds a valid row for a new user).
    let row = "email,name\nnewcomer@example.com,Newcomer\n";
    let mut oversize = row.as_bytes().to_vec();
    oversize.resize(5 * 1024 * 1024 + 1, b'\n');
    let mut not_utf8 = row.as_bytes().to_vec();
    not_utf8.extend_from_slice(b"caf\xe9@example.com,Caf\xe9\n");
    let files: [(&str, Vec<u8>); 4] = [
        ("required", Vec::new()),
        ("5 MiB", oversize),
        ("UTF-8", not_utf8),
        ("email", b"name,workspace\nNewcomer,ops\n".to_vec()),
    ];
    for (what, csv) in files {
        let request = ImportCsvRequest {
            csv,
            dry_run: false,
        };
        let status = refused(
            "AdminService/ImportCsv",
            Code::InvalidArgument,
            admin_service(&app)
                .import_csv(with_bearer(request, &admin))
                .await,
        );
        assert!(status.message().starts_with("csv"), "{what}: {status:?}");
        assert!(status.message().contains(what), "{what}: {status:?}");
    }
    let stats = admin_service(&app)
        .get_stats(with_bearer(GetStatsRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.user_count, 1, "no row of a refused file was imported");
    // Exactly 5 MiB is within the limit.
    let mut at_limit = row.as_bytes().to_vec();
    at_limit.resize(5 * 1024 * 1024, b'\n');
    let report = admin_service(&app)
        .import_csv(with_bearer(
            ImportCsvRequest {
                csv: at_limit,
                dry_run: true,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.users_created, 1, "{report:?}");

    // ExportCsv without a kind.
    let request = ExportCsvRequest { kind: 0 };
    let status = refused(
        "AdminService/ExportCsv",
        Code::InvalidArgument,
        admin_service(&app)
            .export_csv(with_bearer(request, &admin))
            .await,
    );
    assert!(status.message().starts_with("kind"), "{status:?}");
    app.stop().await;
}

async fn refresh(app: &TestApp, refresh_token: &str, workspace_id: &str) -> RefreshResult {
    let request = RefreshRequest {
        refresh_token: refresh_token.into(),
        workspace_id: workspace_id.into(),
    };
    auth(app).refresh(request).await.map(|r| r.into_inner())
}

type RefreshResult = Result<sentinel::proto::v1::RefreshResponse, tonic::Status>;

async fn refresh_switch_and_introspect_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "bobs", "owner").await;
    let bobs = bob.scope.as_ref().unwrap().workspace.id.to_string();

    // Refresh: unknown tokens are UNAUTHENTICATED, whatever their shape.
    for unknown in [
        "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not-a-refresh-token",
    ] {
        refused(
            "AuthService/Refresh",
            Code::Unauthenticated,
            refresh(&app, unknown, "").await,
        );
    }
    // A workspace the user is not a member of is PERMISSION_DENIED, and does not consume the
    // token: it refreshes afterwards.
    let status = refused(
        "AuthService/Refresh",
        Code::PermissionDenied,
        refresh(&app, &ann.refresh_token, &bobs).await,
    );
    assert!(status.message().starts_with("workspace_id"), "{status:?}");
    let rotated = refresh(&app, &ann.refresh_token, "")
        .await
        .unwrap()
        .tokens
        .unwrap();
    assert!(!rotated.refresh_token.is_empty());

    // A revoked session's refresh token (its user logged out).
    let later = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let request = with_bearer(LogoutRequest::default(), &later.access_token);
    auth(&app).logout(request).await.unwrap();
    refused(
        "AuthService/Refresh",
        Code::Unauthenticated,
        refresh(&app, &later.refresh_token, "").await,
    );
    // A rotated token presented again after the reuse grace.
    let replayed = sign_in(&app, "ann@example.com", "acme", "owner").await;
    refresh(&app, &replayed.refresh_token, "").await.unwrap();
    app.clock.advance(Duration::from_secs(60));
    refused(
        "AuthService/Refresh",
        Code::Unauthenticated,
        refresh(&app, &replayed.refresh_token, "").await,
    );
    // A deactivated user's token.
    let dave = sign_in(&app, "dave@example.com", "acme", "viewer").await;
    let request = UpdateUserRequest {
        id: dave.user.id.to_string(),
        is_active: Some(false),
        ..UpdateUserRequest::default()
    };
    users(&app)
        .update_user(with_bearer(request, &admin))
        .await
        .unwrap();
    refused(
        "AuthService/Refresh",
        Code::Unauthenticated,
        refresh(&app, &dave.refresh_token, "").await,
    );

    // SwitchWorkspace: another user's workspace and a workspace that does not exist get the
    // same answer; a workspace of the caller's works.
    let fresh = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let switch = |workspace_id: String| {
        let request = with_bearer(SwitchWorkspaceRequest { workspace_id }, &fresh.access_token);
        let mut client = auth(&app);
        async move { client.switch_workspace(request).await }
    };
    let foreign = refused(
        "AuthService/SwitchWorkspace",
        Code::PermissionDenied,
        switch(bobs.clone()).await,
    );
    let missing = refused(
        "AuthService/SwitchWorkspace",
        Code::PermissionDenied,
        switch(unknown_id()).await,
    );
    assert_eq!(
        foreign.message(),
        missing.message(),
        "existence is not revealed"
    );
    let beta = sign_in(&app, "ann@example.com", "beta", "viewer").await;
    let beta_id = beta.scope.unwrap().workspace.id.to_string();
    let switched = switch(beta_id.clone())
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert!(switched.refresh_token.is_empty());

    // Introspect: an empty token, and one over 16 KiB; exactly 16 KiB is merely inactive.
    let key = service_key(&app, "docs").await;
    let introspect = |token: String| {
        let request = with_service_key(IntrospectRequest { token }, &key);
        let mut client = auth(&app);
        async move { client.introspect(request).await }
    };
    for token in [String::new(), "a".repeat(16 * 1024 + 1)] {
        let status = refused(
            "AuthService/Introspect",
            Code::InvalidArgument,
            introspect(token).await,
        );
        assert!(status.message().starts_with("token"), "{status:?}");
    }
    let at_limit = introspect("a".repeat(16 * 1024))
        .await
        .unwrap()
        .into_inner();
    assert!(!at_limit.active);
    app.stop().await;
}

async fn session_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let list = |token: String, user_id: String| {
        let request = ListSessionsRequest {
            user_id,
            ..ListSessionsRequest::default()
        };
        let mut client = auth(&app);
        async move { client.list_sessions(with_bearer(request, &token)).await }
    };

    // ListSessions: a non-admin (even an owner of bob's workspace) may not name another user;
    // naming themself works, and so does a platform admin naming bob.
    refused(
        "AuthService/ListSessions",
        Code::PermissionDenied,
        list(ann.access_token.clone(), bob.user.id.to_string()).await,
    );
    let own = list(ann.access_token.clone(), ann.user.id.to_string())
        .await
        .unwrap();
    assert_eq!(own.into_inner().sessions.len(), 1);
    let by_admin = list(admin.clone(), bob.user.id.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_admin.sessions.len(), 1);
    assert_eq!(by_admin.sessions[0].id, bob.session.id.to_string());

    // RevokeSession: another user's session is NOT_FOUND to a non-admin, exactly like a
    // session that does not exist.
    let revoke = |id: String| {
        let request = with_bearer(RevokeSessionRequest { id }, &ann.access_token);
        let mut client = auth(&app);
        async move { client.revoke_session(request).await }
    };
    let foreign = refused(
        "AuthService/RevokeSession",
        Code::NotFound,
        revoke(bob.session.id.to_string()).await,
    );
    let unknown = refused(
        "AuthService/RevokeSession",
        Code::NotFound,
        revoke(unknown_id()).await,
    );
    assert_eq!(
        foreign.message(),
        unknown.message(),
        "existence is not revealed"
    );
    // Bob's session is untouched: still listed as active, its refresh token still works.
    let still = list(bob.access_token.clone(), String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.sessions.len(), 1);
    assert!(still.sessions[0].revoked_at.is_none());
    refresh(&app, &bob.refresh_token, "").await.unwrap();
    app.stop().await;
}

async fn revocation_stream_and_signing_key_refusals(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.max_streams_per_key = 2;
    // Far beyond the test's run: the key rotated below stays pending.
    config.key_publish_delay = Duration::from_secs(600);
    let app = TestApp::start(config).await;
    let admin = platform_admin(&app).await;
    let key = service_key(&app, "docs").await;
    let other_key = service_key(&app, "billing").await;
    let watch = |key: &str, since_revision: i64| {
        let request = with_service_key(WatchRevocationsRequest { since_revision }, key);
        let mut client = auth(&app);
        async move { client.watch_revocations(request).await }
    };

    // WatchRevocations: a negative cursor, and a key already holding its two streams.
    let status = refused(
        "AuthService/WatchRevocations",
        Code::InvalidArgument,
        watch(&key, -1).await,
    );
    assert!(status.message().starts_with("since_revision"), "{status:?}");
    let first = watch(&key, 0).await.unwrap().into_inner();
    let second = watch(&key, 0).await.unwrap().into_inner();
    let status = refused(
        "AuthService/WatchRevocations",
        Code::ResourceExhausted,
        watch(&key, 0).await,
    );
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
    // The cap is per key: another service's key still opens a stream.
    let elsewhere = watch(&other_key, 0).await.unwrap().into_inner();
    drop((first, second, elsewhere));

    let kids = || async {
        let jwks = auth(&app)
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner();
        jwks.keys.into_iter().map(|k| k.kid).collect::<Vec<_>>()
    };
    let rotate = |algorithm: &str, overlap: Option<prost_types::Duration>| {
        let request = RotateSigningKeyRequest {
            overlap,
            algorithm: algorithm.into(),
            immediate: false,
        };
        let mut client = auth(&app);
        let request = with_bearer(request, &admin);
        async move { client.rotate_signing_key(request).await }
    };
    let initial = kids().await;
    assert_eq!(initial.len(), 1);
    let active = initial[0].clone();

    // RotateSigningKey: an unsupported algorithm; an overlap below the access-token lifetime
    // (15 minutes) or above 30 days. The JWKS stays as it was.
    let status = refused(
        "AuthService/RotateSigningKey",
        Code::InvalidArgument,
        rotate("HS256", None).await,
    );
    assert!(status.message().starts_with("algorithm"), "{status:?}");
    for overlap in [seconds(60), seconds(30 * 24 * 3600 + 1)] {
        let status = refused(
            "AuthService/RotateSigningKey",
            Code::InvalidArgument,
            rotate("", Some(overlap)).await,
        );
        assert!(status.message().starts_with("overlap"), "{status:?}");
    }
    assert_eq!(kids().await, initial);

    // RetireSigningKey: an unknown kid; the active key; a key still waiting for its publish
    // delay. Both keys stay published.
    let retire = |kid: String| {
        let request = with_bearer(RetireSigningKeyRequest { kid }, &admin);
        let mut client = auth(&app);
        async move { client.retire_signing_key(request).await }
    };
    refused(
        "AuthService/RetireSigningKey",
        Code::NotFound,
        retire("no-such-kid".into()).await,
    );
    refused(
        "AuthService/RetireSigningKey",
        Code::FailedPrecondition,
        retire(active.clone()).await,
    );
    let pending = rotate("", None).await.unwrap().into_inner();
    let activates = pending.activated_at.unwrap().seconds;
    assert!(
        activates > chrono::Utc::now().timestamp(),
        "the new key is pending"
    );
    refused(
        "AuthService/RetireSigningKey",
        Code::FailedPrecondition,
        retire(pending.kid.clone()).await,
    );
    assert_eq!(kids().await, vec![active, pending.kid]);
    app.stop().await;
}
