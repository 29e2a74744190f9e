//! Attacks from the security review, replayed over the wire on both backends: made-up method
//! names against the metrics, floods of sign-in starts, hostile names and timestamps, forged
//! page tokens, plain-http origins, and the headers of every HTTP answer.

mod common;

use base64::Engine;
use common::wait::{eventually, within};
use common::{
    Backend, TestApp, TestDatabase, dual, metrics_text, service_key, sign_in, with_bearer,
    with_service_key,
};
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::service_app_service_client::ServiceAppServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    CreateServiceAppRequest, CreateWorkspaceRequest, Grantee, LookupResourcesRequest, Permission,
    RegisterResourceRequest, ResourceRef, ShareRequest, Visibility, grantee,
};
use tonic::Code;

both_backends!(
    made_up_methods_do_not_grow_the_metrics,
    sign_in_starts_are_limited_per_address,
    hostile_names_are_refused_and_change_nothing,
    out_of_range_expiry_is_refused_not_made_permanent,
    forged_lookup_offsets_are_refused,
    plain_http_origins_are_refused_off_loopback,
    http_answers_carry_the_security_headers,
    revocations_outlive_the_longest_token,
    a_login_code_written_into_the_cache_is_refused,
    authz_tokens_act_in_their_workspace_only,
    tokens_say_when_their_lists_are_cut,
    a_shared_resource_does_not_move_to_another_workspace,
    a_role_change_ends_every_token_of_that_workspace,
    lookup_snapshots_are_bounded_per_user,
    streams_are_capped_per_key_and_end_with_it,
    a_leaked_signing_key_can_be_retired_at_once,
    metrics_can_stay_off_the_public_port,
    watch_shows_membership_only_where_the_service_is,
);

async fn made_up_methods_do_not_grow_the_metrics(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for i in 0..200 {
        let response = client
            .post(app.url(&format!("/sentinel.v1.AuthService/Made{i}")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
            .await
            .unwrap();
        drop(response.bytes().await);
    }
    let text = metrics_text(&app).await;
    let series = text
        .lines()
        .filter(|l| l.starts_with("sentinel_grpc_requests_total{"))
        .count();
    assert!(series <= 2, "{series} series after 200 made-up methods");
    assert!(!text.contains("Made1"), "made-up names are not labels");
    app.stop().await;
}

async fn sign_in_starts_are_limited_per_address(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.rate_limit.login_states_per_address = 5;
    config.providers.insert(
        "corp".into(),
        // Never reached: the flood is refused before any provider call would matter.
        common::oidc::provider_config(
            sentinel::config::ProviderKind::Oidc,
            Some("http://127.0.0.1:9".into()),
        ),
    );
    let app = TestApp::start(config).await;
    let redirect = "http://127.0.0.1:9/app";
    app.app
        .state()
        .client_apps
        .create(
            &sentinel::model::Caller::default(),
            "web",
            &[redirect.to_string()],
            &[],
        )
        .await
        .unwrap();
    let challenge = sentinel::login::s256(&"v".repeat(43));
    let url = reqwest::Url::parse_with_params(
        &app.url("/oauth/corp/login"),
        &[
            ("redirect_uri", redirect),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let start = || {
        app.http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
    };
    // The provider is unreachable, so each start fails after admission; past the cap of live
    // login states the address is refused up front with 429.
    let mut refused = 0;
    for _ in 0..8 {
        let response = start().await.unwrap();
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "5 admitted, 3 refused");
    app.stop().await;
}

async fn hostile_names_are_refused_and_change_nothing(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let mut workspaces = WorkspaceServiceClient::new(app.channel.clone());
    for name in [
        "Acme\u{0}Corp",
        "evil\u{202e}gnp.exe",
        "zero\u{200b}width",
        "line\nbreak",
        "esc\u{1b}[31m",
    ] {
        let err = workspaces
            .create_workspace(with_bearer(
                CreateWorkspaceRequest {
                    name: name.into(),
                    slug: "hostile".into(),
                    description: String::new(),
                },
                &ann.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        assert!(err.message().starts_with("name:"), "{}", err.message());
    }
    let err = workspaces
        .create_workspace(with_bearer(
            CreateWorkspaceRequest {
                name: "Fine".into(),
                slug: "fine".into(),
                description: "nul \u{0} inside".into(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("description:"),
        "{}",
        err.message()
    );
    // Nothing was created; a plain name with a multi-line description works.
    let created = workspaces
        .create_workspace(with_bearer(
            CreateWorkspaceRequest {
                name: "Acme Research".into(),
                slug: "hostile".into(),
                description: "line one\nline two".into(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.workspace.unwrap().slug, "hostile");
    app.stop().await;
}

fn doc(id: &str) -> Option<ResourceRef> {
    Some(ResourceRef {
        resource_type: "doc".into(),
        resource_id: id.into(),
    })
}

async fn register(app: &TestApp, key: &str, id: &str, workspace: uuid::Uuid) {
    PermissionServiceClient::new(app.channel.clone())
        .register_resource(with_service_key(
            RegisterResourceRequest {
                resource_type: "doc".into(),
                resource_id: id.into(),
                workspace_id: workspace.to_string(),
                owner_id: String::new(),
                visibility: Visibility::Workspace as i32,
                parent: None,
                upsert: false,
            },
            key,
        ))
        .await
        .unwrap();
}

async fn out_of_range_expiry_is_refused_not_made_permanent(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id;
    register(&app, &key, "a", workspace.into()).await;
    let mut perms = PermissionServiceClient::new(app.channel.clone());
    for expires in [
        prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: 4_102_444_800,
            nanos: -5,
        },
    ] {
        let err = perms
            .share(with_service_key(
                ShareRequest {
                    resource: doc("a"),
                    grantee: Some(Grantee {
                        grantee: Some(grantee::Grantee::UserId(bob.user.id.to_string())),
                    }),
                    permission: Permission::Edit as i32,
                    expires_at: Some(expires),
                },
                &key,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("expires_at:"),
            "{}",
            err.message()
        );
    }
    // No grant was made: bob (a viewer) still may not edit.
    assert!(!common::allowed(&app, &key, &bob.access_token, "doc", "a", "edit").await);
    app.stop().await;
}

async fn forged_lookup_offsets_are_refused(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let workspace = bob.scope.as_ref().unwrap().workspace.id;
    for i in 0..3 {
        register(&app, &key, &format!("d{i}"), workspace.into()).await;
    }
    let lookup = |token: String| {
        let request = dual(
            LookupResourcesRequest {
                resource_type: "doc".into(),
                action: "view".into(),
                workspace_id: workspace.to_string(),
                page_size: 1,
                page_token: token,
                ..Default::default()
            },
            &key,
            &bob.access_token,
        );
        let mut client = PermissionServiceClient::new(app.channel.clone());
        async move { client.lookup_resources(request).await }
    };
    let first = lookup(String::new()).await.unwrap().into_inner();
    assert_eq!(first.resource_ids.len(), 1);
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut cursor: serde_json::Value =
        serde_json::from_slice(&engine.decode(&first.next_page_token).unwrap()).unwrap();
    for offset in [serde_json::json!(u64::MAX), serde_json::json!(4)] {
        cursor["offset"] = offset;
        let forged = engine.encode(cursor.to_string());
        let err = lookup(forged).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().starts_with("page_token"), "{}", err.message());
    }
    // The genuine token still pages on.
    let second = lookup(first.next_page_token).await.unwrap().into_inner();
    assert_eq!(second.resource_ids.len(), 1);
    app.stop().await;
}

async fn plain_http_origins_are_refused_off_loopback(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = common::platform_admin(&app).await;
    let mut apps = ServiceAppServiceClient::new(app.channel.clone());
    let create = |origin: &str| {
        with_bearer(
            CreateServiceAppRequest {
                name: "Web".into(),
                service_name: format!("web{}", origin.len()),
                allowed_origins: vec![origin.into()],
            },
            &admin,
        )
    };
    let err = apps
        .create_service_app(create("http://app.example.com"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("allowed_origins"),
        "{}",
        err.message()
    );
    apps.create_service_app(create("http://localhost:3000"))
        .await
        .unwrap();
    // One origin, one service: a second app may not claim it, at creation or later.
    let claim = |service: &str| {
        with_bearer(
            CreateServiceAppRequest {
                name: "Other".into(),
                service_name: service.into(),
                allowed_origins: vec!["http://localhost:3000".into()],
            },
            &admin,
        )
    };
    let err = apps.create_service_app(claim("thief")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(
        err.message().contains("allowed_origins"),
        "{}",
        err.message()
    );
    let other = apps
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Other".into(),
                service_name: "other".into(),
                allowed_origins: vec![],
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    let err = apps
        .update_service_app(with_bearer(
            sentinel::proto::v1::UpdateServiceAppRequest {
                id: other.id,
                allowed_origins: Some(sentinel::proto::v1::StringList {
                    values: vec!["http://localhost:3000".into()],
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    app.stop().await;
}

async fn http_answers_carry_the_security_headers(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    for path in ["/oauth/nope/login", "/no/such/route", "/healthz"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        if path != "/no/such/route" {
            assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
    }
    // The sign-in error page keeps its stylesheet through a hash, not 'unsafe-inline'.
    let page = app
        .http
        .get(app.url("/oauth/nope/login"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // The JWKS stays cacheable.
    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        jwks.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"),
    );
    app.stop().await;
}

async fn revocations_outlive_the_longest_token(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.access_token_ttl = std::time::Duration::from_secs(60);
    config.authz_token_ttl = std::time::Duration::from_secs(1800);
    let app = TestApp::start(config).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let before = chrono::Utc::now();
    let rows = app
        .app
        .state()
        .tokens
        .revoke(
            sentinel::store::RevokeScope::User(ann.user.id),
            "test",
            None,
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        // An authz token issued just before lives 30 minutes: so must its revocation.
        assert!(
            row.expires_at >= before + chrono::Duration::seconds(1800),
            "revocation ends at {}",
            row.expires_at
        );
    }
    app.stop().await;
}

async fn a_login_code_written_into_the_cache_is_refused(backend: Backend) {
    use sentinel::proto::v1::ExchangeCodeRequest;
    use sentinel::proto::v1::auth_service_client::AuthServiceClient;
    let (app, _db) = TestApp::spawn(backend).await;
    let victim = sign_in(&app, "ceo@example.com", "acme", "owner").await;
    let state = app.app.state();
    let client = state
        .client_apps
        .create(
            &sentinel::model::Caller::default(),
            "web",
            &["http://127.0.0.1:9/app".to_string()],
            &[],
        )
        .await
        .unwrap();
    // Someone with write access to the cache (Redis) plants a one-time code for the victim.
    let verifier = "v".repeat(43);
    let code = "planted-code";
    let grant = serde_json::json!({
        "user_id": victim.user.id,
        "provider": "google",
        "client_challenge": sentinel::login::s256(&verifier),
        "client_app_id": client.id,
    });
    state
        .cache
        .set(
            &format!("login-code:{}", sentinel::login::s256(code)),
            grant.to_string().as_bytes(),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let err = AuthServiceClient::new(app.channel.clone())
        .exchange_code(ExchangeCodeRequest {
            code: code.into(),
            code_verifier: verifier,
            workspace_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    app.stop().await;
}

async fn authz_tokens_act_in_their_workspace_only(backend: Backend) {
    use sentinel::proto::v1::{CheckActionRequest, ListMembersRequest};
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    // Root is a platform admin and a member of both workspaces.
    let root = common::platform_admin(&app).await;
    let home = sign_in(&app, "root@example.com", "ops", "owner").await;
    let other = sign_in(&app, "root@example.com", "elsewhere", "viewer").await;
    let stranger = sign_in(&app, "zed@example.com", "zeds", "owner").await;
    let _ = root;
    let scope = home.scope.clone().unwrap();
    let (authz, _) = app
        .app
        .state()
        .tokens
        .issue_authz(&home.user, "google|root", "docs", &scope, Vec::new())
        .unwrap();
    let members = |workspace: uuid::Uuid| {
        let request = dual(
            ListMembersRequest {
                workspace_id: workspace.to_string(),
                ..Default::default()
            },
            &key,
            &authz,
        );
        let mut client = WorkspaceServiceClient::new(app.channel.clone());
        async move { client.list_members(request).await }
    };
    assert!(
        members(scope.workspace.id.into()).await.is_ok(),
        "its own workspace"
    );
    for workspace in [
        other.scope.as_ref().unwrap().workspace.id,
        // Not a member: a platform admin's authz token does not elevate either.
        stranger.scope.as_ref().unwrap().workspace.id,
    ] {
        let err = members(workspace.into()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("authz token"), "{}", err.message());
    }
    let err = PermissionServiceClient::new(app.channel.clone())
        .check_action(dual(
            CheckActionRequest {
                action: "docs.read".into(),
                workspace_id: other.scope.as_ref().unwrap().workspace.id.to_string(),
                consistency: None,
            },
            &key,
            &authz,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    app.stop().await;
}

async fn tokens_say_when_their_lists_are_cut(backend: Backend) {
    use sentinel::proto::v1::{AddGroupMemberRequest, CreateGroupRequest, IntrospectRequest};
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.token_max_groups = 2;
    config.token_max_actions = 1;
    let app = TestApp::start(config).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id;
    let mut workspaces = WorkspaceServiceClient::new(app.channel.clone());
    for name in ["a", "b", "c"] {
        let group = workspaces
            .create_group(with_bearer(
                CreateGroupRequest {
                    workspace_id: workspace.to_string(),
                    name: name.into(),
                    description: String::new(),
                },
                &ann.access_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .group
            .unwrap();
        workspaces
            .add_group_member(with_bearer(
                AddGroupMemberRequest {
                    group_id: group.id,
                    user_id: ann.user.id.to_string(),
                },
                &ann.access_token,
            ))
            .await
            .unwrap();
    }
    let fresh = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let introspect = |token: String| {
        let request = with_service_key(IntrospectRequest { token }, &key);
        let mut client =
            sentinel::proto::v1::auth_service_client::AuthServiceClient::new(app.channel.clone());
        async move { client.introspect(request).await.unwrap().into_inner() }
    };
    let claims = introspect(fresh.access_token.clone()).await;
    assert_eq!(claims.groups.len(), 2);
    assert!(claims.groups_truncated);
    let scope = fresh.scope.clone().unwrap();
    let (authz, _) = app
        .app
        .state()
        .tokens
        .issue_authz(
            &fresh.user,
            "google|ann",
            "docs",
            &scope,
            vec!["docs.read".into(), "docs.write".into()],
        )
        .unwrap();
    let claims = introspect(authz).await;
    assert_eq!(claims.actions, vec!["docs.read".to_string()]);
    assert!(claims.actions_truncated);
    // Within the caps nothing is said.
    let (authz, _) = app
        .app
        .state()
        .tokens
        .issue_authz(
            &fresh.user,
            "google|ann",
            "docs",
            &scope,
            vec!["docs.read".into()],
        )
        .unwrap();
    assert!(!introspect(authz).await.actions_truncated);
    app.stop().await;
}

async fn a_shared_resource_does_not_move_to_another_workspace(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let other = sign_in(&app, "zed@example.com", "other", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id;
    let elsewhere = other.scope.as_ref().unwrap().workspace.id;
    register(&app, &key, "moving", acme.into()).await;
    register(&app, &key, "plain", acme.into()).await;
    let mut perms = PermissionServiceClient::new(app.channel.clone());
    perms
        .share(with_service_key(
            ShareRequest {
                resource: doc("moving"),
                grantee: Some(Grantee {
                    grantee: Some(grantee::Grantee::UserId(bob.user.id.to_string())),
                }),
                permission: Permission::View as i32,
                expires_at: None,
            },
            &key,
        ))
        .await
        .unwrap();
    let upsert = |id: &str| {
        with_service_key(
            RegisterResourceRequest {
                resource_type: "doc".into(),
                resource_id: id.into(),
                workspace_id: elsewhere.to_string(),
                owner_id: String::new(),
                visibility: Visibility::Private as i32,
                parent: None,
                upsert: true,
            },
            &key,
        )
    };
    let err = perms.register_resource(upsert("moving")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().starts_with("workspace_id"),
        "{}",
        err.message()
    );
    // It stayed where it was; a resource with nothing attached moves.
    let got = perms
        .get_resource(with_service_key(
            sentinel::proto::v1::GetResourceRequest {
                resource: doc("moving"),
                enrich: false,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(got.workspace_id, acme.to_string());
    let moved = perms
        .register_resource(upsert("plain"))
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    assert_eq!(moved.workspace_id, elsewhere.to_string());
    app.stop().await;
}

async fn a_role_change_ends_every_token_of_that_workspace(backend: Backend) {
    use sentinel::proto::v1::auth_service_client::AuthServiceClient;
    use sentinel::proto::v1::{
        IntrospectRequest, RefreshRequest, SwitchWorkspaceRequest, UpdateMemberRoleRequest,
        WatchRevocationsRequest, WorkspaceRole,
    };
    use tokio_stream::StreamExt;
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "editor").await;
    let bob_elsewhere = sign_in(&app, "bob@example.com", "other", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id;
    let other = bob_elsewhere.scope.as_ref().unwrap().workspace.id;
    let auth = || AuthServiceClient::new(app.channel.clone());
    let active = |token: String| {
        let request = with_service_key(IntrospectRequest { token }, &key);
        let mut client = auth();
        async move {
            client
                .introspect(request)
                .await
                .unwrap()
                .into_inner()
                .active
        }
    };
    // Bob's acme token, then his session moves to another workspace; and an authz token of acme.
    let acme_token = bob.access_token.clone();
    auth()
        .switch_workspace(with_bearer(
            SwitchWorkspaceRequest {
                workspace_id: other.to_string(),
            },
            &bob.access_token,
        ))
        .await
        .unwrap();
    let (authz, _) = app
        .app
        .state()
        .tokens
        .issue_authz(
            &bob.user,
            "google|bob",
            "docs",
            bob.scope.as_ref().unwrap(),
            Vec::new(),
        )
        .unwrap();
    assert!(active(acme_token.clone()).await);
    assert!(active(authz.clone()).await);
    let mut watch = auth()
        .watch_revocations(with_service_key(
            WatchRevocationsRequest { since_revision: 0 },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();

    // Ann makes Bob a viewer: his acme tokens end, wherever his sessions are now.
    WorkspaceServiceClient::new(app.channel.clone())
        .update_member_role(with_bearer(
            UpdateMemberRoleRequest {
                workspace_id: acme.to_string(),
                user_id: bob.user.id.to_string(),
                role: WorkspaceRole::Viewer as i32,
            },
            &ann.access_token,
        ))
        .await
        .unwrap();
    assert!(
        !active(acme_token).await,
        "access token of a session switched away"
    );
    assert!(!active(authz).await, "authz token of that workspace");
    assert!(
        active(bob_elsewhere.access_token.clone()).await,
        "other workspaces untouched"
    );
    // A token issued right after carries the new role and works.
    let fresh = auth()
        .refresh(RefreshRequest {
            refresh_token: bob_elsewhere.refresh_token.clone(),
            workspace_id: acme.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let claims = auth()
        .introspect(with_service_key(
            IntrospectRequest {
                token: fresh.access_token,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(claims.active);
    assert_eq!(claims.wrole, WorkspaceRole::Viewer as i32);
    // SDKs learn it from the revocation stream.
    let mut seen = false;
    while let Some(message) = within("the workspace revocation is streamed", watch.next()).await {
        let message = message.unwrap();
        if message.revocations.iter().any(|r| {
            r.session_id.is_empty()
                && r.workspace_id == acme.to_string()
                && r.user_id == bob.user.id.to_string()
        }) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the workspace revocation is streamed");
    drop(watch);
    app.stop().await;
}

async fn lookup_snapshots_are_bounded_per_user(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let bob = sign_in(&app, "bob@example.com", "acme", "viewer").await;
    let workspace = bob.scope.as_ref().unwrap().workspace.id;
    for i in 0..5 {
        register(&app, &key, &format!("d{i}"), workspace.into()).await;
    }
    let lookup = |token: String| {
        let request = dual(
            LookupResourcesRequest {
                resource_type: "doc".into(),
                action: "view".into(),
                workspace_id: workspace.to_string(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            },
            &key,
            &bob.access_token,
        );
        let mut client = PermissionServiceClient::new(app.channel.clone());
        async move { client.lookup_resources(request).await.unwrap().into_inner() }
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pinned = |token: &str| -> bool {
        let cursor: serde_json::Value =
            serde_json::from_slice(&engine.decode(token).unwrap()).unwrap();
        !cursor["snapshot"].as_str().unwrap_or_default().is_empty()
    };
    // A loop of first pages pins at most 16 snapshots; the rest page by keyset.
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(lookup(String::new()).await.next_page_token);
    }
    let pinned_count = tokens.iter().filter(|t| pinned(t)).count();
    assert_eq!(pinned_count, 16);
    // Either kind of token pages through the complete answer, once each.
    for token in [tokens[0].clone(), tokens[19].clone()] {
        let mut ids = vec!["d0".to_string(), "d1".to_string()];
        let mut token = token;
        while !token.is_empty() {
            let page = lookup(token).await;
            ids.extend(page.resource_ids);
            token = page.next_page_token;
        }
        assert_eq!(ids, ["d0", "d1", "d2", "d3", "d4"]);
    }
    app.stop().await;
}

async fn streams_are_capped_per_key_and_end_with_it(backend: Backend) {
    use sentinel::proto::v1::{RotateServiceAppKeyRequest, WatchRequest};
    use tokio_stream::StreamExt;
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.max_streams_per_key = 2;
    let app = TestApp::start(config).await;
    let admin = common::platform_admin(&app).await;
    let created = ServiceAppServiceClient::new(app.channel.clone())
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Docs".into(),
                service_name: "docs".into(),
                allowed_origins: vec![],
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key;
    let open = || {
        let request = with_service_key(WatchRequest::default(), &key);
        let mut client = PermissionServiceClient::new(app.channel.clone());
        async move { client.watch(request).await }
    };
    let first = open().await.unwrap().into_inner();
    let mut second = open().await.unwrap().into_inner();
    let err = open().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // A closed stream frees its slot (the server notices the cancellation).
    drop(first);
    eventually("a slot is freed when a stream closes", || async {
        match open().await {
            Ok(_reopened) => true,
            Err(err) => {
                assert_eq!(err.code(), Code::ResourceExhausted);
                false
            }
        }
    })
    .await;
    // Rotating the key out ends the open stream with UNAUTHENTICATED.
    ServiceAppServiceClient::new(app.channel.clone())
        .rotate_service_app_key(with_bearer(
            RotateServiceAppKeyRequest {
                id: created.app.unwrap().id,
                grace_period: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
            },
            &admin,
        ))
        .await
        .unwrap();
    let ended = within("the stream ends", async {
        loop {
            match second.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status.code()),
                None => return None,
            }
        }
    })
    .await;
    assert_eq!(ended, Some(Code::Unauthenticated));
    app.stop().await;
}

async fn a_leaked_signing_key_can_be_retired_at_once(backend: Backend) {
    use sentinel::proto::v1::auth_service_client::AuthServiceClient;
    use sentinel::proto::v1::{
        GetJwksRequest, IntrospectRequest, RetireSigningKeyRequest, RotateSigningKeyRequest,
    };
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let admin = common::platform_admin(&app).await;
    let auth = || AuthServiceClient::new(app.channel.clone());
    let kids = || async {
        auth()
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect::<Vec<_>>()
    };
    let old_kid = kids().await[0].clone();
    let signed_by_old = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let rotated = auth()
        .rotate_signing_key(with_bearer(
            RotateSigningKeyRequest {
                overlap: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                algorithm: String::new(),
                immediate: true,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let active = |token: String| {
        let request = with_service_key(IntrospectRequest { token }, &key);
        let mut client = auth();
        async move {
            client
                .introspect(request)
                .await
                .unwrap()
                .into_inner()
                .active
        }
    };
    assert!(
        active(signed_by_old.access_token.clone()).await,
        "inside the overlap"
    );
    let retire = |kid: String| {
        let request = with_bearer(RetireSigningKeyRequest { kid }, &admin);
        let mut client = auth();
        async move { client.retire_signing_key(request).await }
    };
    // The signing key cannot be retired (rotate it away first); unknown kids are not found.
    let err = retire(rotated.kid.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        retire("nope".into()).await.unwrap_err().code(),
        Code::NotFound
    );
    // The leaked one ends now: out of the JWKS, its tokens refused, its private key gone.
    retire(old_kid.clone()).await.unwrap();
    assert!(!kids().await.contains(&old_kid));
    assert!(!active(signed_by_old.access_token).await);
    let sql = "SELECT length(private_key_encrypted) FROM signing_keys WHERE kid = $1";
    let length: i64 = match db.backend {
        Backend::Embedded => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            sqlx::query_scalar(sql)
                .bind(&old_kid)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Clustered => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let length: i32 = sqlx::query_scalar(sql)
                .bind(&old_kid)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            i64::from(length)
        }
    };
    assert_eq!(length, 0, "private key material deleted");
    // The admin's own token was signed by it too; a new one (new key) may retire it again.
    let admin = common::platform_admin(&app).await;
    auth()
        .retire_signing_key(with_bearer(
            RetireSigningKeyRequest { kid: old_kid },
            &admin,
        ))
        .await
        .unwrap();
    let fresh = sign_in(&app, "ann@example.com", "acme", "owner").await;
    assert!(active(fresh.access_token).await);
    assert_eq!(common::audit_count(&db, "signing_key.retired").await, 2);
    app.stop().await;
}

async fn metrics_can_stay_off_the_public_port(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.metrics_listen = Some("127.0.0.1:0".into());
    let app = TestApp::start(config).await;
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
    // Something to count.
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let addr = app.app.metrics_addr().expect("a metrics listener");
    let scraped = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(scraped.status().is_success());
    let text = scraped.text().await.unwrap();
    assert!(text.contains("sentinel_"), "{text}");
    let other = app
        .http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        reqwest::StatusCode::NOT_FOUND,
        "metrics only"
    );
    app.stop().await;
}

async fn watch_shows_membership_only_where_the_service_is(backend: Backend) {
    use sentinel::proto::v1::add_member_request::Invitee;
    use sentinel::proto::v1::add_member_response::MemberOrInvitation;
    use sentinel::proto::v1::{
        AcceptInvitationRequest, AddMemberRequest, ChangeOperation, WatchRequest, WorkspaceRole,
    };
    use tokio_stream::StreamExt;
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let zed = sign_in(&app, "zed@example.com", "other", "owner").await;
    let carl = sign_in(&app, "carl@example.com", "carl-home", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id;
    let other = zed.scope.as_ref().unwrap().workspace.id;
    register(&app, &key, "a", acme.into()).await;
    let mut watch = PermissionServiceClient::new(app.channel.clone())
        .watch(with_service_key(WatchRequest::default(), &key))
        .await
        .unwrap()
        .into_inner();
    let add = |workspace: uuid::Uuid, token: String| {
        let request = with_bearer(
            AddMemberRequest {
                workspace_id: workspace.to_string(),
                invitee: Some(Invitee::UserId(carl.user.id.to_string())),
                role: WorkspaceRole::Viewer as i32,
            },
            &token,
        );
        let mut client = WorkspaceServiceClient::new(app.channel.clone());
        let carl_token = carl.access_token.clone();
        async move {
            let invited = client.add_member(request).await.unwrap().into_inner();
            let Some(MemberOrInvitation::Invitation(invitation)) = invited.member_or_invitation
            else {
                panic!("an invitation");
            };
            client
                .accept_invitation(with_bearer(
                    AcceptInvitationRequest {
                        invitation_id: invitation.id,
                    },
                    &carl_token,
                ))
                .await
                .unwrap()
        }
    };
    add(other.into(), zed.access_token.clone()).await;
    add(acme.into(), ann.access_token.clone()).await;
    register(&app, &key, "fence", acme.into()).await;
    let mut member_events = Vec::new();
    while let Some(message) = within("the changes up to the fence", watch.next()).await {
        let message = message.unwrap();
        if message.operation == ChangeOperation::MemberAdded as i32 {
            member_events.push(message.workspace_id.clone());
        }
        if message
            .resource
            .as_ref()
            .is_some_and(|r| r.resource_id == "fence")
        {
            break;
        }
    }
    assert_eq!(
        member_events,
        vec![acme.to_string()],
        "only the service's workspace"
    );
    drop(watch);
    app.stop().await;
}
