//! What a newcomer meets first, over the wire on both backends: refusals that say which
//! credential an RPC takes (and are counted in the audit trail), grants in their documented
//! order, request ids that are kept or replaced, CORS that never invites a service key, and the
//! operator commands that give a first admin credential and rotate a service key.

mod common;

use common::{
    Backend, TestApp, TestDatabase, audit_count, audit_details, audit_failure_total, dual,
    service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::{
    CheckRequest, GetMeRequest, GetResourceRequest, Grantee, IntrospectRequest, ListUsersRequest,
    Permission, RegisterResourceRequest, ResourceRef, ShareRequest, Visibility, grantee,
};
use tonic::Code;

both_backends!(
    a_missing_credential_is_named_and_a_bad_one_is_not,
    grants_come_back_oldest_first,
    request_ids_are_kept_only_when_plain_and_short,
    browsers_are_never_invited_to_send_a_service_key,
    operator_commands_are_audited_and_give_an_admin_credential,
);

fn resource(id: &str) -> Option<ResourceRef> {
    Some(ResourceRef {
        resource_type: "doc".into(),
        resource_id: id.into(),
    })
}

async fn a_missing_credential_is_named_and_a_bad_one_is_not(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let auth = || AuthServiceClient::new(app.channel.clone());
    let perms = || PermissionServiceClient::new(app.channel.clone());
    let check = || CheckRequest {
        resource: resource("a"),
        action: "view".into(),
        consistency: None,
    };

    // No credential at all: the RPC's credentials are named.
    let err = auth()
        .introspect(IntrospectRequest { token: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "this RPC needs x-service-key");

    // The key under a wrong header name: named, with the right one.
    let mut request = tonic::Request::new(check());
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    let err = perms().check(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message()
            .starts_with("this RPC needs x-service-key and authorization: Bearer"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .ends_with("the service key goes in x-service-key")
    );

    // A key without the user's token for a dual RPC: what is missing is said.
    let err = perms()
        .check(with_service_key(check(), &key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message()
            .contains("authorization: Bearer <user access token")
    );

    // A token without the Bearer prefix.
    let mut request = tonic::Request::new(GetMeRequest {});
    request
        .metadata_mut()
        .insert("authorization", ann.access_token.parse().unwrap());
    let err = UserServiceClient::new(app.channel.clone())
        .get_me(request)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "authorization: must be \"Bearer <token>\"");

    // Admin RPCs name the admin token; a non-admin is PERMISSION_DENIED.
    let err = UserServiceClient::new(app.channel.clone())
        .list_users(ListUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("access token of a platform admin"));
    let err = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(ListUsersRequest::default(), &ann.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Present but wrong: one message whatever is wrong, no hint.
    let unknown_key = format!("sk_{}", "A".repeat(43));
    let err = perms()
        .check(dual(check(), &unknown_key, &ann.access_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), sentinel::apps::INVALID_KEY);
    let err = perms()
        .check(dual(check(), &key, "not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), sentinel::tokens::service::INVALID_CREDENTIAL);

    // Eight refusals, counted in the audit trail: one row per address, written at shutdown.
    assert_eq!(audit_count(&db, "auth.denied").await, 0);
    app.stop().await;
    assert_eq!(audit_count(&db, "auth.denied").await, 1);
    assert_eq!(audit_failure_total(&db, "auth.denied").await, 8);
    let details = &audit_details(&db, "auth.denied").await[0];
    assert_eq!(details["reasons"]["missing"], 4);
    assert_eq!(details["reasons"]["invalid"], 3);
    assert_eq!(details["reasons"]["not_admin"], 1);
}

async fn grants_come_back_oldest_first(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let key = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let workspace = ann.scope.as_ref().unwrap().workspace.id;
    let mut perms = PermissionServiceClient::new(app.channel.clone());
    perms
        .register_resource(with_service_key(
            RegisterResourceRequest {
                resource_type: "doc".into(),
                resource_id: "a".into(),
                workspace_id: workspace.to_string(),
                owner_id: ann.user.id.to_string(),
                visibility: Visibility::Private as i32,
                parent: None,
                upsert: false,
            },
            &key,
        ))
        .await
        .unwrap();
    // Shared in an order that is neither by id nor by email.
    let mut users = Vec::new();
    for email in ["zoe@example.com", "bob@example.com", "mia@example.com"] {
        users.push(sign_in(&app, email, "acme", "viewer").await.user.id);
    }
    users.sort();
    let order = [users[1], users[2], users[0]];
    for user in order {
        perms
            .share(with_service_key(
                ShareRequest {
                    resource: resource("a"),
                    grantee: Some(Grantee {
                        grantee: Some(grantee::Grantee::UserId(user.to_string())),
                    }),
                    permission: Permission::View as i32,
                    expires_at: None,
                },
                &key,
            ))
            .await
            .unwrap();
        // Distinct creation instants even on a coarse clock.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let got = perms
        .get_resource(with_service_key(
            GetResourceRequest {
                resource: resource("a"),
                enrich: false,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource
        .unwrap();
    let grantees: Vec<String> = got
        .grants
        .iter()
        .map(|g| match &g.grantee.as_ref().unwrap().grantee {
            Some(grantee::Grantee::UserId(id)) => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<String> = order.iter().map(|u| u.to_string()).collect();
    assert_eq!(grantees, expected);
    app.stop().await;
}

async fn request_ids_are_kept_only_when_plain_and_short(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let echo = |id: String| {
        let request = app.http.get(app.url("/healthz")).header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(echo("req-42.a:b_c".into()).await, "req-42.a:b_c");
    for bad in ["a".repeat(65), "two words".into(), "semi;colon".into()] {
        let got = echo(bad.clone()).await;
        assert_ne!(got, bad);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "generated: {got}");
    }
    app.stop().await;
}

async fn browsers_are_never_invited_to_send_a_service_key(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut config = db.config();
    config.cors_origins = vec!["https://app.example.com".into()];
    let app = TestApp::start(config).await;
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/sentinel.v1.PermissionService/Check"),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(allowed.contains("x-grpc-web"), "{allowed}");
    assert!(!allowed.contains("x-service-key"), "{allowed}");
    app.stop().await;
}

async fn operator_commands_are_audited_and_give_an_admin_credential(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let request = sentinel::operator::IssueTokenRequest {
        email: "ada@example.com".into(),
        workspace: "acme".into(),
        role: Some("owner".into()),
        create: true,
        admin: true,
    };
    let issue = || sentinel::operator::issue_token(app.app.state(), &request);
    let issued = issue().await.unwrap();
    assert_eq!(audit_count(&db, "user.created").await, 1);
    assert_eq!(audit_count(&db, "workspace.created").await, 1);
    assert_eq!(audit_count(&db, "member.added").await, 1);
    assert_eq!(audit_count(&db, "user.admin_granted").await, 1);
    // The token is an admin credential at once.
    let users = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(
            ListUsersRequest::default(),
            &issued.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.users.len(), 1);
    assert!(users.users[0].is_admin);
    // Again: nothing new is created, nothing new audited.
    issue().await.unwrap();
    assert_eq!(audit_count(&db, "user.created").await, 1);
    assert_eq!(audit_count(&db, "member.added").await, 1);
    assert_eq!(audit_count(&db, "user.admin_granted").await, 1);
    // A role change through the operator path is audited too.
    sign_in(&app, "ada@example.com", "acme", "admin").await;
    assert_eq!(audit_count(&db, "member.role_changed").await, 1);
    app.stop().await;
}
