//! Platform administration over the wire, on both backends: user search and deactivation (live
//! tokens rejected, also on a second instance), dashboard counts, audit trail
//! queries.

mod common;

use common::wait::eventually;
use common::{
    Backend, TestApp, TestDatabase, platform_admin, service_key, sign_in, with_bearer,
    with_service_key,
};
use sentinel::proto::v1::admin_service_client::AdminServiceClient;
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::{
    ExportCsvRequest, ExportKind, GetStatsRequest, ImportCsvRequest, IntrospectRequest,
    ListAuditEventsRequest, ListUsersRequest, LogoutRequest, RefreshRequest, UpdateUserRequest,
};
use tonic::Code;

both_backends!(
    deactivating_a_user_ends_their_tokens_everywhere,
    users_are_searched_and_paged,
    audit_trail_is_filtered_and_paged,
    csv_import_applies_valid_rows_reports_bad_ones_and_export_round_trips,
);

async fn deactivating_a_user_ends_their_tokens_everywhere(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let app = TestApp::start(db.config()).await;
    let other = match backend {
        Backend::Clustered => Some(TestApp::start(db.config()).await),
        Backend::Embedded => None,
    };
    let elsewhere = other.as_ref().unwrap_or(&app);
    let admin = platform_admin(&app).await;
    let key = service_key(&app, "docs").await;
    let victim = sign_in(&app, "eve@example.com", "acme", "editor").await;
    let active = |token: String| {
        let mut client = AuthServiceClient::new(elsewhere.channel.clone());
        let key = key.clone();
        async move {
            client
                .introspect(with_service_key(IntrospectRequest { token }, &key))
                .await
                .unwrap()
                .into_inner()
                .active
        }
    };
    assert!(active(victim.access_token.clone()).await);

    let updated = UserServiceClient::new(app.channel.clone())
        .update_user(with_bearer(
            UpdateUserRequest {
                id: victim.user.id.to_string(),
                is_active: Some(false),
                ..UpdateUserRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.user.unwrap().is_active);
    assert_eq!(updated.revoked_session_count, 1);
    eventually("the deactivated user's access token is refused", || {
        let live = active(victim.access_token.clone());
        async move { !live.await }
    })
    .await;
    let err = AuthServiceClient::new(app.channel.clone())
        .refresh(RefreshRequest {
            refresh_token: victim.refresh_token.clone(),
            workspace_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // A deactivated user cannot sign in again.
    let refused = sentinel::operator::issue_token(
        app.app.state(),
        &sentinel::operator::IssueTokenRequest {
            email: "eve@example.com".into(),
            workspace: "acme".into(),
            role: None,
            create: false,
            admin: false,
        },
    )
    .await;
    assert!(refused.is_err());

    // Non-admins cannot administer users.
    let err = UserServiceClient::new(app.channel.clone())
        .update_user(with_bearer(
            UpdateUserRequest {
                id: victim.user.id.to_string(),
                is_admin: Some(true),
                ..UpdateUserRequest::default()
            },
            &sign_in(&app, "ann@example.com", "acme", "owner")
                .await
                .access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;
}

async fn users_are_searched_and_paged(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    for i in 0..7 {
        sign_in(&app, &format!("user{i}@corp.example.com"), "acme", "viewer").await;
    }
    sign_in(&app, "outsider@other.example.org", "acme", "viewer").await;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = UserServiceClient::new(app.channel.clone())
            .list_users(with_bearer(
                ListUsersRequest {
                    query: "corp.example".into(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    ..ListUsersRequest::default()
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.users.len() <= 3);
        seen.extend(page.users.into_iter().map(|u| u.email));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = (0..7)
        .map(|i| format!("user{i}@corp.example.com"))
        .collect();
    assert_eq!(seen, expected, "sorted, complete, no repeats");
    let admins = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(
            ListUsersRequest {
                is_admin: Some(true),
                ..ListUsersRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(admins.users.len(), 1);
    assert_eq!(admins.users[0].email, "root@example.com");

    let stats = AdminServiceClient::new(app.channel.clone())
        .get_stats(with_bearer(GetStatsRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.user_count, 9);
    assert_eq!(stats.admin_count, 1);
    assert_eq!(stats.workspace_count, 2);
    assert_eq!(stats.active_session_count, 9);
    // Above the maximum is capped (common.proto, "Pagination"), negative is refused.
    let capped = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(
            ListUsersRequest {
                page_size: 100_000,
                ..ListUsersRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capped.users.len(), 9);
    assert!(capped.next_page_token.is_empty());
    let err = UserServiceClient::new(app.channel.clone())
        .list_users(with_bearer(
            ListUsersRequest {
                page_size: -1,
                ..ListUsersRequest::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("page_size"));
    app.stop().await;
}

async fn audit_trail_is_filtered_and_paged(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    let user = sign_in(&app, "ivan@example.com", "acme", "viewer").await;
    for _ in 0..3 {
        let session = sign_in(&app, "ivan@example.com", "acme", "viewer").await;
        AuthServiceClient::new(app.channel.clone())
            .logout(with_bearer(LogoutRequest::default(), &session.access_token))
            .await
            .unwrap();
    }
    let list = |request: ListAuditEventsRequest| {
        let mut client = AdminServiceClient::new(app.channel.clone());
        let admin = admin.clone();
        async move {
            client
                .list_audit_events(with_bearer(request, &admin))
                .await
                .map(|r| r.into_inner())
        }
    };
    let logouts = list(ListAuditEventsRequest {
        action: "session.logout".into(),
        actor_id: user.user.id.to_string(),
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(logouts.events.len(), 3);
    assert!(logouts.events.iter().all(|e| e.action == "session.logout"
        && e.actor_user_id == user.user.id.to_string()
        && !e.client_address.is_empty()
        && !e.request_id.is_empty()));
    // Newest first, paged without repeats.
    let first = list(ListAuditEventsRequest {
        action: "session.".into(),
        page_size: 2,
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(first.events.len(), 2);
    let second = list(ListAuditEventsRequest {
        action: "session.".into(),
        page_size: 2,
        page_token: first.next_page_token.clone(),
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(second.events.len(), 1);
    assert!(second.next_page_token.is_empty());
    let mut ids: Vec<_> = first
        .events
        .iter()
        .chain(&second.events)
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(
        first.events[0].occurred_at.as_ref().unwrap().seconds
            >= first.events[1].occurred_at.as_ref().unwrap().seconds
    );
    // A time window in the future holds nothing; a reversed one is refused.
    let future = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    };
    let empty = list(ListAuditEventsRequest {
        start_time: Some(future),
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap();
    assert!(empty.events.is_empty());
    let err = list(ListAuditEventsRequest {
        start_time: Some(future),
        end_time: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 0,
        }),
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = list(ListAuditEventsRequest {
        actor_id: "not-a-uuid".into(),
        ..ListAuditEventsRequest::default()
    })
    .await
    .unwrap_err();
    assert!(err.message().starts_with("actor_id"));
    app.stop().await;
}

async fn csv_import_applies_valid_rows_reports_bad_ones_and_export_round_trips(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let admin = platform_admin(&app).await;
    sign_in(&app, "existing@example.com", "acme", "editor").await;
    let csv = "\u{feff}Email,Name,workspace_slug,Role,ignored\n\
               new1@example.com,New One,acme,admin,x\n\
               not-an-email,Bad,acme,viewer,x\n\
               new2@example.com,,acme,,x\n\
               existing@example.com,Existing,acme,viewer,x\n\
               new3@example.com,Three,nowhere,viewer,x\n\
               new4@example.com,Four,acme,boss,x\n\
               new5@example.com,Five,,,x\n";
    let import = |dry_run: bool| {
        let mut client = AdminServiceClient::new(app.channel.clone());
        let admin = admin.clone();
        async move {
            client
                .import_csv(with_bearer(
                    ImportCsvRequest {
                        csv: csv.as_bytes().to_vec(),
                        dry_run,
                    },
                    &admin,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let dry = import(true).await;
    assert!(!dry.applied);
    assert_eq!(
        (dry.users_created, dry.memberships_added, dry.rows_skipped),
        (3, 2, 1)
    );
    let rows: Vec<i32> = dry.errors.iter().map(|e| e.row).collect();
    assert_eq!(rows, vec![3, 6, 7]);
    assert!(dry.errors[0].reason.starts_with("email"));
    assert!(dry.errors[1].reason.starts_with("workspace"));
    assert!(
        dry.errors[2].reason.starts_with("role"),
        "{}",
        dry.errors[2].reason
    );
    let stats = AdminServiceClient::new(app.channel.clone())
        .get_stats(with_bearer(GetStatsRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.user_count, 2, "a dry run writes nothing");

    let real = import(false).await;
    assert!(real.applied);
    assert_eq!(
        (
            real.users_created,
            real.memberships_added,
            real.rows_skipped
        ),
        (3, 2, 1)
    );
    assert_eq!(real.errors.len(), 3);
    // Importing the same file again changes nothing.
    let again = import(false).await;
    assert_eq!((again.users_created, again.memberships_added), (0, 0));
    assert_eq!(again.rows_skipped, 4);

    let export = AdminServiceClient::new(app.channel.clone())
        .export_csv(with_bearer(
            ExportCsvRequest {
                kind: ExportKind::Memberships as i32,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let text = String::from_utf8(export.csv.clone()).unwrap();
    assert!(
        text.starts_with("email,name,workspace,role,joined_at\n"),
        "{text}"
    );
    assert!(text.contains("new1@example.com,New One,acme,admin,"));
    assert!(text.contains("new2@example.com,new2,acme,viewer,"));
    assert!(
        !text.contains("new5@example.com"),
        "no workspace, no membership"
    );
    assert_eq!(export.row_count, 4);
    assert_eq!(export.content_type, "text/csv; charset=utf-8");

    // The export imports into a fresh installation as-is.
    let (fresh, _fresh_db) = TestApp::spawn(backend).await;
    let fresh_admin = platform_admin(&fresh).await;
    sign_in(&fresh, "seed@example.com", "acme", "owner").await;
    let imported = AdminServiceClient::new(fresh.channel.clone())
        .import_csv(with_bearer(
            ImportCsvRequest {
                csv: export.csv,
                dry_run: false,
            },
            &fresh_admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(imported.errors.is_empty(), "{:?}", imported.errors);
    assert_eq!(
        imported.memberships_added, 3,
        "root@ops exists there already"
    );
    let exported_again = AdminServiceClient::new(fresh.channel.clone())
        .export_csv(with_bearer(
            ExportCsvRequest {
                kind: ExportKind::Memberships as i32,
            },
            &fresh_admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let again_text = String::from_utf8(exported_again.csv).unwrap();
    for line in text.lines().skip(1).filter(|l| l.contains(",acme,")) {
        let without_time = line.rsplit_once(',').unwrap().0;
        assert!(
            again_text.contains(without_time),
            "{without_time} round-trips"
        );
    }

    // File-level problems are a status naming the field.
    let err = AdminServiceClient::new(app.channel.clone())
        .import_csv(with_bearer(
            ImportCsvRequest {
                csv: b"name,role\nx,viewer\n".to_vec(),
                dry_run: true,
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("csv"));
    let err = AdminServiceClient::new(app.channel.clone())
        .export_csv(with_bearer(ExportCsvRequest { kind: 0 }, &admin))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("kind"));
    let _ = db;
    fresh.stop().await;
    app.stop().await;
}
