//! Service apps and client apps over the wire, on both backends: key lifecycle (create once,
//! rotate with grace, deactivate, delete), validation, pagination and audit.

mod common;

use common::wait::eventually;
use common::{
    Backend, TestApp, TestDatabase, audit_count, platform_admin, with_bearer, with_service_key,
};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::service_app_service_client::ServiceAppServiceClient;
use sentinel::proto::v1::{
    CreateClientAppRequest, CreateServiceAppRequest, DeleteServiceAppRequest, GetServiceAppRequest,
    IntrospectRequest, ListClientAppsRequest, ListServiceAppsRequest, RotateServiceAppKeyRequest,
    StringList, UpdateClientAppRequest, UpdateServiceAppRequest,
};
use tonic::Code;

both_backends!(
    service_app_keys_are_shown_once_and_rotate_with_grace,
    deactivation_and_deletion_stop_a_key_everywhere,
    bad_input_names_the_field_and_changes_nothing,
    client_apps_are_managed_and_paginated,
    grpc_web_cors_allows_exactly_the_registered_origins,
);

fn apps(app: &TestApp) -> ServiceAppServiceClient<tonic::transport::Channel> {
    ServiceAppServiceClient::new(app.channel.clone())
}

/// Whether `key` is accepted (Introspect of a garbage token answers inactive, not an error).
async fn key_works(app: &TestApp, key: &str) -> bool {
    let result = AuthServiceClient::new(app.channel.clone())
        .introspect(with_service_key(
            IntrospectRequest {
                token: "x.y.z".into(),
            },
            key,
        ))
        .await;
    match result {
        Ok(_) => true,
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert_eq!(status.message(), "invalid service key");
            false
        }
    }
}

async fn service_app_keys_are_shown_once_and_rotate_with_grace(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let token = platform_admin(&app).await;
    let created = apps(&app)
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Docs API".into(),
                service_name: "docs".into(),
                allowed_origins: vec!["https://docs.example.com".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let first_key = created.api_key.clone();
    let info = created.app.unwrap();
    assert!(first_key.starts_with("sk_") && first_key.starts_with(&info.key_prefix));
    assert!(key_works(&app, &first_key).await);

    // Reading the app never shows the key again.
    let fetched = apps(&app)
        .get_service_app(with_bearer(
            GetServiceAppRequest {
                id: info.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    assert_eq!(fetched.key_prefix, info.key_prefix);
    assert_eq!(
        fetched.allowed_origins,
        vec!["https://docs.example.com".to_string()]
    );

    // Rotation with a grace: both keys work during it.
    let rotate = |seconds: i64| {
        let mut client = apps(&app);
        let request = with_bearer(
            RotateServiceAppKeyRequest {
                id: info.id.clone(),
                grace_period: Some(prost_types::Duration { seconds, nanos: 0 }),
            },
            &token,
        );
        async move { client.rotate_service_app_key(request).await }
    };
    let rotated = rotate(3600).await.unwrap().into_inner();
    let second_key = rotated.api_key;
    assert_ne!(second_key, first_key);
    assert!(rotated.old_key_expires_at.is_some());
    assert!(
        key_works(&app, &first_key).await,
        "old key inside the grace"
    );
    assert!(key_works(&app, &second_key).await);

    // A second rotation during the grace always succeeds (the incident case: the new key leaked
    // too): the key it replaces gets the new grace, the older one stops at once.
    let third = rotate(3600).await.unwrap().into_inner();
    assert!(third.old_key_expires_at.is_some());
    let third_key = third.api_key;
    assert!(!key_works(&app, &first_key).await, "oldest key ended");
    assert!(key_works(&app, &second_key).await, "replaced key in grace");
    assert!(key_works(&app, &third_key).await);

    // A zero grace ends every old key at once.
    let fourth_key = rotate(0).await.unwrap().into_inner().api_key;
    assert!(!key_works(&app, &second_key).await);
    assert!(!key_works(&app, &third_key).await);
    assert!(key_works(&app, &fourth_key).await);

    // The duplicate service name is refused as such.
    let err = apps(&app)
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Again".into(),
                service_name: "docs".into(),
                allowed_origins: vec![],
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(audit_count(&db, "service_app.created").await, 1);
    assert_eq!(audit_count(&db, "service_app.key_rotated").await, 3);
    app.stop().await;
}

async fn deactivation_and_deletion_stop_a_key_everywhere(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let app = TestApp::start(db.config()).await;
    let other = match backend {
        Backend::Clustered => Some(TestApp::start(db.config()).await),
        Backend::Embedded => None,
    };
    let elsewhere = other.as_ref().unwrap_or(&app);
    let token = platform_admin(&app).await;
    let created = apps(&app)
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Billing".into(),
                service_name: "billing".into(),
                allowed_origins: vec![],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key;
    let id = created.app.unwrap().id;
    assert!(key_works(elsewhere, &key).await);

    apps(&app)
        .update_service_app(with_bearer(
            UpdateServiceAppRequest {
                id: id.clone(),
                is_active: Some(false),
                ..UpdateServiceAppRequest::default()
            },
            &token,
        ))
        .await
        .unwrap();
    eventually("the deactivated app's key is refused", || async {
        !key_works(elsewhere, &key).await
    })
    .await;
    // The audit event is written in the background (the refusal takes as long as for an
    // unknown key), so it is waited for.
    eventually("use of a deactivated key is audited", || async {
        audit_count(&db, "service_app.key_used_while_inactive").await >= 1
    })
    .await;
    apps(&app)
        .update_service_app(with_bearer(
            UpdateServiceAppRequest {
                id: id.clone(),
                is_active: Some(true),
                ..UpdateServiceAppRequest::default()
            },
            &token,
        ))
        .await
        .unwrap();
    eventually("the reactivated app's key is accepted", || async {
        key_works(elsewhere, &key).await
    })
    .await;

    apps(&app)
        .delete_service_app(with_bearer(
            DeleteServiceAppRequest { id: id.clone() },
            &token,
        ))
        .await
        .unwrap();
    eventually("the deleted app's key is refused", || async {
        !key_works(elsewhere, &key).await
    })
    .await;
    let err = apps(&app)
        .get_service_app(with_bearer(GetServiceAppRequest { id }, &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;
}

async fn bad_input_names_the_field_and_changes_nothing(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let token = platform_admin(&app).await;
    let cases = [
        ("", "docs", vec![], "name"),
        ("Docs", "Docs!", vec![], "service_name"),
        (
            "Docs",
            "docs",
            vec!["ftp://x".to_string()],
            "allowed_origins",
        ),
        (
            "Docs",
            "docs",
            vec!["https://a.example/path".to_string()],
            "allowed_origins",
        ),
    ];
    for (name, service, origins, field) in cases {
        let err = apps(&app)
            .create_service_app(with_bearer(
                CreateServiceAppRequest {
                    name: name.into(),
                    service_name: service.into(),
                    allowed_origins: origins,
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    let listed = apps(&app)
        .list_service_apps(with_bearer(ListServiceAppsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.apps.is_empty(), "nothing was created");
    let err = apps(&app).client_app_bad_uri(&token).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("redirect_uris"));
    let err = apps(&app)
        .get_service_app(with_bearer(
            GetServiceAppRequest { id: "42".into() },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("id"));
    app.stop().await;
}

trait BadClientApp {
    async fn client_app_bad_uri(&mut self, token: &str) -> tonic::Status;
}

impl BadClientApp for ServiceAppServiceClient<tonic::transport::Channel> {
    async fn client_app_bad_uri(&mut self, token: &str) -> tonic::Status {
        self.create_client_app(with_bearer(
            CreateClientAppRequest {
                name: "Web".into(),
                redirect_uris: vec!["javascript:alert(1)".into()],
                services: vec![],
            },
            token,
        ))
        .await
        .unwrap_err()
    }
}

async fn client_apps_are_managed_and_paginated(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let token = platform_admin(&app).await;
    // The service the client apps sign users in for.
    common::service_key(&app, "docs").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = apps(&app)
            .create_client_app(with_bearer(
                CreateClientAppRequest {
                    name: format!("Web {i}"),
                    redirect_uris: vec![format!("https://app{i}.example.com/callback")],
                    services: vec!["docs".into()],
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .app
            .unwrap();
        assert!(created.is_active);
        ids.push(created.id);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = apps(&app)
            .list_client_apps(with_bearer(
                ListClientAppsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..ListClientAppsRequest::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.apps.len() <= 2);
        seen.extend(page.apps.into_iter().map(|a| a.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every app exactly once");

    let updated = apps(&app)
        .update_client_app(with_bearer(
            UpdateClientAppRequest {
                id: ids[0].clone(),
                redirect_uris: Some(StringList {
                    values: vec!["https://new.example.com/cb".into()],
                }),
                is_active: Some(false),
                revoke_sessions: true,
                ..UpdateClientAppRequest::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let updated_app = updated.app.unwrap();
    assert!(!updated_app.is_active);
    assert_eq!(
        updated_app.redirect_uris,
        vec!["https://new.example.com/cb".to_string()]
    );
    assert_eq!(updated.revoked_session_count, 0);
    assert_eq!(audit_count(&db, "client_app.created").await, 5);
    assert_eq!(audit_count(&db, "client_app.updated").await, 1);
    app.stop().await;
}

async fn grpc_web_cors_allows_exactly_the_registered_origins(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let token = platform_admin(&app).await;
    let created = apps(&app)
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Docs web".into(),
                service_name: "docs".into(),
                allowed_origins: vec!["https://docs.example.com".into()],
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let preflight = |origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                app.url("/sentinel.v1.AuthService/ResolveIdpToken"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://docs.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://docs.example.com"
    );
    for foreign in [
        "https://docs.example.com.evil.io",
        "http://docs.example.com",
    ] {
        let refused = preflight(foreign).await.unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{foreign}"
        );
    }
    // Removing the origin from the app closes it (on this instance, at once).
    apps(&app)
        .update_service_app(with_bearer(
            UpdateServiceAppRequest {
                id: created.app.unwrap().id,
                allowed_origins: Some(StringList { values: vec![] }),
                ..UpdateServiceAppRequest::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let closed = preflight("https://docs.example.com").await.unwrap();
    assert!(
        closed
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}
