//! The documented errors of ServiceAppService, on both backends: service apps (duplicate and
//! malformed service names, names and origins, unknown ids, out-of-range key graces) and client
//! apps (malformed names, redirect URIs and services, unknown ids, delete). Each refusal is
//! asserted with the documented code, the field an INVALID_ARGUMENT names, and a follow-up read
//! showing the refused call changed nothing.

mod common;

use common::clients::{apps, unknown_id};
use common::contract::refused;
use common::{Backend, TestApp, platform_admin, service_key, with_bearer, with_service_key};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::{
    ClientApp, CreateClientAppRequest, CreateServiceAppRequest, DeleteClientAppRequest,
    DeleteServiceAppRequest, GetClientAppRequest, GetServiceAppRequest, IntrospectRequest,
    ListClientAppsRequest, ListServiceAppsRequest, RotateServiceAppKeyRequest, ServiceApp,
    StringList, UpdateClientAppRequest, UpdateServiceAppRequest,
};
use tonic::Code;

both_backends!(service_app_refusals, client_app_refusals);

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn service_app(app: &TestApp, admin: &str, id: &str) -> ServiceApp {
    let request = with_bearer(GetServiceAppRequest { id: id.into() }, admin);
    apps(app)
        .get_service_app(request)
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap()
}

async fn service_apps(app: &TestApp, admin: &str) -> Vec<ServiceApp> {
    let request = with_bearer(ListServiceAppsRequest::default(), admin);
    apps(app)
        .list_service_apps(request)
        .await
        .unwrap()
        .into_inner()
        .apps
}

/// Whether `key` is accepted as a service key.
async fn key_works(app: &TestApp, key: &str) -> bool {
    let request = with_service_key(
        IntrospectRequest {
            token: "x.y.z".into(),
        },
        key,
    );
    match AuthServiceClient::new(app.channel.clone())
        .introspect(request)
        .await
    {
        Ok(_) => true,
        Err(status) => {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            false
        }
    }
}

async fn service_app_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    let created = apps(&app)
        .create_service_app(with_bearer(
            CreateServiceAppRequest {
                name: "Docs API".into(),
                service_name: "docs".into(),
                allowed_origins: strings(&["https://docs.example.com"]),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key;
    let id = created.app.unwrap().id;
    let original = service_app(&app, &admin, &id).await;

    // CreateServiceApp: a taken service_name, whatever the rest of the request.
    let request = CreateServiceAppRequest {
        name: "Other docs".into(),
        service_name: "docs".into(),
        allowed_origins: strings(&["https://other.example.com"]),
    };
    refused(
        "ServiceAppService/CreateServiceApp",
        Code::AlreadyExists,
        apps(&app)
            .create_service_app(with_bearer(request, &admin))
            .await,
    );
    // Malformed names, service names and origins name their field.
    let long_name = "n".repeat(201);
    let long_service = "s".repeat(64);
    let many_origins: Vec<String> = (0..51)
        .map(|i| format!("https://o{i}.example.com"))
        .collect();
    let cases: [(&str, &str, Vec<String>, &str); 10] = [
        ("", "wiki", vec![], "name"),
        ("   ", "wiki", vec![], "name"),
        (&long_name, "wiki", vec![], "name"),
        ("Wiki", "", vec![], "service_name"),
        ("Wiki", "Wiki!", vec![], "service_name"),
        ("Wiki", &long_service, vec![], "service_name"),
        (
            "Wiki",
            "wiki",
            strings(&["ftp://wiki.example.com"]),
            "allowed_origins",
        ),
        (
            "Wiki",
            "wiki",
            strings(&["https://wiki.example.com/app"]),
            "allowed_origins",
        ),
        (
            "Wiki",
            "wiki",
            strings(&["http://wiki.example.com"]),
            "allowed_origins",
        ),
        ("Wiki", "wiki", many_origins, "allowed_origins"),
    ];
    for (name, service_name, allowed_origins, field) in cases {
        let request = CreateServiceAppRequest {
            name: name.into(),
            service_name: service_name.into(),
            allowed_origins,
        };
        let status = refused(
            "ServiceAppService/CreateServiceApp",
            Code::InvalidArgument,
            apps(&app)
                .create_service_app(with_bearer(request, &admin))
                .await,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    let listed = service_apps(&app, &admin).await;
    assert_eq!(listed.len(), 1, "nothing was created");
    assert_eq!(listed[0], original, "the existing app is unchanged");

    // An unknown id is NOT_FOUND to every RPC addressing one.
    refused(
        "ServiceAppService/GetServiceApp",
        Code::NotFound,
        apps(&app)
            .get_service_app(with_bearer(
                GetServiceAppRequest { id: unknown_id() },
                &admin,
            ))
            .await,
    );
    let request = UpdateServiceAppRequest {
        id: unknown_id(),
        name: Some("Ghost".into()),
        ..UpdateServiceAppRequest::default()
    };
    refused(
        "ServiceAppService/UpdateServiceApp",
        Code::NotFound,
        apps(&app)
            .update_service_app(with_bearer(request, &admin))
            .await,
    );
    let request = RotateServiceAppKeyRequest {
        id: unknown_id(),
        grace_period: None,
    };
    refused(
        "ServiceAppService/RotateServiceAppKey",
        Code::NotFound,
        apps(&app)
            .rotate_service_app_key(with_bearer(request, &admin))
            .await,
    );
    refused(
        "ServiceAppService/DeleteServiceApp",
        Code::NotFound,
        apps(&app)
            .delete_service_app(with_bearer(
                DeleteServiceAppRequest { id: unknown_id() },
                &admin,
            ))
            .await,
    );

    // UpdateServiceApp: a bad name or origin names its field and changes nothing.
    let bad_updates = [
        (Some(""), None, "name"),
        (Some(long_name.as_str()), None, "name"),
        (
            None,
            Some(vec!["docs.example.com".to_string()]),
            "allowed_origins",
        ),
        (
            None,
            Some(vec!["https://docs.example.com/".to_string()]),
            "allowed_origins",
        ),
    ];
    for (name, origins, field) in bad_updates {
        let request = UpdateServiceAppRequest {
            id: id.clone(),
            name: name.map(str::to_string),
            allowed_origins: origins.map(|values| StringList { values }),
            is_active: Some(false),
        };
        let status = refused(
            "ServiceAppService/UpdateServiceApp",
            Code::InvalidArgument,
            apps(&app)
                .update_service_app(with_bearer(request, &admin))
                .await,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    assert_eq!(service_app(&app, &admin, &id).await, original);

    // RotateServiceAppKey: a negative grace, or one over 30 days; the key is not rotated.
    let rotate = |seconds: i64| {
        let request = RotateServiceAppKeyRequest {
            id: id.clone(),
            grace_period: Some(prost_types::Duration { seconds, nanos: 0 }),
        };
        let mut client = apps(&app);
        let request = with_bearer(request, &admin);
        async move { client.rotate_service_app_key(request).await }
    };
    const THIRTY_DAYS: i64 = 30 * 24 * 3600;
    for seconds in [-1, THIRTY_DAYS + 1] {
        let status = refused(
            "ServiceAppService/RotateServiceAppKey",
            Code::InvalidArgument,
            rotate(seconds).await,
        );
        assert!(
            status.message().starts_with("grace_period"),
            "{seconds}: {status:?}"
        );
    }
    assert_eq!(service_app(&app, &admin, &id).await, original);
    assert!(key_works(&app, &key).await, "the key was not rotated out");
    // Exactly 30 days is allowed.
    let rotated = rotate(THIRTY_DAYS).await.unwrap().into_inner();
    assert_ne!(rotated.app.unwrap().key_prefix, original.key_prefix);
    assert!(key_works(&app, &key).await, "inside its grace");
    assert!(key_works(&app, &rotated.api_key).await);
    app.stop().await;
}

async fn client_app(app: &TestApp, admin: &str, id: &str) -> Result<ClientApp, tonic::Status> {
    let request = with_bearer(GetClientAppRequest { id: id.into() }, admin);
    let mut client = apps(app);
    client
        .get_client_app(request)
        .await
        .map(|r| r.into_inner().app.unwrap())
}

async fn client_app_refusals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    service_key(&app, "docs").await;

    // CreateClientApp: bad names, redirect URIs and service names name their field.
    let long_name = "n".repeat(201);
    let long_uri = format!("https://app.example.com/{}", "p".repeat(2048));
    let web = strings(&["https://app.example.com/cb"]);
    let cases: [(&str, Vec<String>, Vec<String>, &str); 10] = [
        ("", web.clone(), vec![], "name"),
        (&long_name, web.clone(), vec![], "name"),
        ("Web", vec![], vec![], "redirect_uris"),
        (
            "Web",
            strings(&["javascript:alert(1)"]),
            vec![],
            "redirect_uris",
        ),
        (
            "Web",
            strings(&["http://app.example.com/cb"]),
            vec![],
            "redirect_uris",
        ),
        (
            "Web",
            strings(&["https://app.example.com/cb#top"]),
            vec![],
            "redirect_uris",
        ),
        ("Web", strings(&["/cb"]), vec![], "redirect_uris"),
        ("Web", vec![long_uri], vec![], "redirect_uris"),
        (
            "Web",
            (0..21)
                .map(|i| format!("https://a{i}.example.com/cb"))
                .collect(),
            vec![],
            "redirect_uris",
        ),
        ("Web", web.clone(), strings(&["Not A Service"]), "services"),
    ];
    for (name, redirect_uris, services, field) in cases {
        let request = CreateClientAppRequest {
            name: name.into(),
            redirect_uris,
            services,
        };
        let status = refused(
            "ServiceAppService/CreateClientApp",
            Code::InvalidArgument,
            apps(&app)
                .create_client_app(with_bearer(request, &admin))
                .await,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    let request = with_bearer(ListClientAppsRequest::default(), &admin);
    let listed = apps(&app)
        .list_client_apps(request)
        .await
        .unwrap()
        .into_inner();
    assert!(listed.apps.is_empty(), "nothing was created");

    // A valid client app, read back as created.
    let request = CreateClientAppRequest {
        name: "Web".into(),
        redirect_uris: strings(&["https://app.example.com/cb", "http://localhost:3000/cb"]),
        services: strings(&["docs"]),
    };
    let created = apps(&app)
        .create_client_app(with_bearer(request, &admin))
        .await
        .unwrap()
        .into_inner()
        .app
        .unwrap();
    let id = created.id.clone();
    let fetched = client_app(&app, &admin, &id).await.unwrap();
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.name, "Web");
    assert_eq!(
        fetched.redirect_uris,
        strings(&["https://app.example.com/cb", "http://localhost:3000/cb"])
    );
    assert_eq!(fetched.services, strings(&["docs"]));
    assert!(fetched.is_active);
    let seconds = |app: &ClientApp| app.created_at.as_ref().map(|t| t.seconds);
    assert_eq!(seconds(&fetched), seconds(&created));

    // Unknown ids.
    refused(
        "ServiceAppService/GetClientApp",
        Code::NotFound,
        client_app(&app, &admin, &unknown_id()).await,
    );
    let request = UpdateClientAppRequest {
        id: unknown_id(),
        name: Some("Ghost".into()),
        ..UpdateClientAppRequest::default()
    };
    refused(
        "ServiceAppService/UpdateClientApp",
        Code::NotFound,
        apps(&app)
            .update_client_app(with_bearer(request, &admin))
            .await,
    );
    let request = DeleteClientAppRequest {
        id: unknown_id(),
        revoke_sessions: true,
    };
    refused(
        "ServiceAppService/DeleteClientApp",
        Code::NotFound,
        apps(&app)
            .delete_client_app(with_bearer(request, &admin))
            .await,
    );

    // UpdateClientApp: a bad name, an empty or bad redirect URI list, a bad service name; the
    // app stays as it was (the refused request would also have deactivated it).
    let list = |values: &[&str]| {
        Some(StringList {
            values: strings(values),
        })
    };
    let bad_updates = [
        (Some(""), None, None, "name"),
        (None, list(&[]), None, "redirect_uris"),
        (
            None,
            list(&["ftp://app.example.com/cb"]),
            None,
            "redirect_uris",
        ),
        (
            None,
            list(&["https://app.example.com/cb#x"]),
            None,
            "redirect_uris",
        ),
        (None, None, list(&["DOCS"]), "services"),
    ];
    for (name, redirect_uris, services, field) in bad_updates {
        let request = UpdateClientAppRequest {
            id: id.clone(),
            name: name.map(str::to_string),
            redirect_uris,
            services,
            is_active: Some(false),
            revoke_sessions: false,
        };
        let status = refused(
            "ServiceAppService/UpdateClientApp",
            Code::InvalidArgument,
            apps(&app)
                .update_client_app(with_bearer(request, &admin))
                .await,
        );
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    assert_eq!(client_app(&app, &admin, &id).await.unwrap(), fetched);

    // DeleteClientApp: the app is gone afterwards, and deleting it again is NOT_FOUND.
    let delete = |id: String| {
        let request = with_bearer(
            DeleteClientAppRequest {
                id,
                revoke_sessions: false,
            },
            &admin,
        );
        let mut client = apps(&app);
        async move { client.delete_client_app(request).await }
    };
    let deleted = delete(id.clone()).await.unwrap().into_inner();
    assert_eq!(deleted.revoked_session_count, 0);
    refused(
        "ServiceAppService/GetClientApp",
        Code::NotFound,
        client_app(&app, &admin, &id).await,
    );
    refused(
        "ServiceAppService/DeleteClientApp",
        Code::NotFound,
        delete(id).await,
    );
    app.stop().await;
}
