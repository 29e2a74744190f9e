//! Conformance of the app and platform stores, run against every store: service apps (unique
//! names and keys, listing, key rotation with its grace, partial updates, last use, deletion
//! and its changelog entry) and the platform's reads (users by filter, the audit trail by
//! filter and page, purging, counts).

mod common;

use chrono::{Duration, Utc};
use common::rows::{self, audit};
use common::{Backend, fresh_store};
use sentinel::audit::{Actor, event};
use sentinel::model::Change;
use sentinel::store::{
    AuditFilter, ServiceAppChange, ServiceAppRow, Store, StoreError, UserChange, UserRow,
    UserUpdate,
};
use uuid::Uuid;

both_backends!(
    service_apps_conformance,
    users_and_counts_conformance,
    audit_trail_conformance,
);

async fn service_apps_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let docs = rows::service_app("Docs", "docs", b"key-docs");
    let billing = rows::service_app("Billing", "billing", b"key-billing");
    for a in [&docs, &billing] {
        store.insert_service_app(a, &audit()).await.unwrap();
    }
    // Service names and keys are unique.
    for clash in [
        rows::service_app("Other", "docs", b"key-other"),
        rows::service_app("Other", "other", b"key-docs"),
    ] {
        assert!(matches!(
            store.insert_service_app(&clash, &audit()).await,
            Err(StoreError::Conflict(_))
        ));
    }
    // Listed by service name, in pages, searched by name or service name.
    let services =
        |apps: Vec<ServiceAppRow>| apps.into_iter().map(|a| a.service_name).collect::<Vec<_>>();
    assert_eq!(
        services(store.list_service_apps(None, None, 10).await.unwrap()),
        ["billing", "docs"]
    );
    assert_eq!(
        services(
            store
                .list_service_apps(None, Some("billing"), 10)
                .await
                .unwrap()
        ),
        ["docs"]
    );
    assert_eq!(
        services(
            store
                .list_service_apps(Some("BILL"), None, 10)
                .await
                .unwrap()
        ),
        ["billing"]
    );

    // Keys: the current one; after a rotation the new one, and the old one for its grace only.
    let now = Utc::now();
    assert_eq!(
        store
            .service_app_by_key_hash(b"key-docs", now)
            .await
            .unwrap()
            .unwrap()
            .id,
        docs.id
    );
    let until = now + Duration::hours(1);
    let rotated = store
        .rotate_service_app_key(docs.id, b"key-docs-2", "sk_two", until, &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.key_prefix, "sk_two");
    assert!(rotated.key_rotated_at.is_some());
    assert_eq!(
        rotated.previous_key_expires_at.map(|t| t.timestamp()),
        Some(until.timestamp())
    );
    let by = |hash: &'static [u8], at| {
        let store = store.clone();
        async move {
            store
                .service_app_by_key_hash(hash, at)
                .await
                .unwrap()
                .map(|a| a.id)
        }
    };
    assert_eq!(by(b"key-docs-2", now).await, Some(docs.id));
    assert_eq!(
        by(b"key-docs", now).await,
        Some(docs.id),
        "inside the grace"
    );
    assert_eq!(by(b"key-docs", until + Duration::seconds(1)).await, None);
    // A second rotation ends the first key at once.
    store
        .rotate_service_app_key(docs.id, b"key-docs-3", "sk_three", until, &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by(b"key-docs", now).await, None);
    assert_eq!(by(b"key-docs-2", now).await, Some(docs.id));
    assert!(
        store
            .rotate_service_app_key(Uuid::new_v4(), b"k", "p", until, &audit())
            .await
            .unwrap()
            .is_none()
    );

    // Partial updates; deactivation is reported, not hidden (the domain refuses the key).
    let change = ServiceAppChange {
        name: Some("Documents".into()),
        ..ServiceAppChange::default()
    };
    let updated = store
        .update_service_app(docs.id, &change, &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.is_active),
        ("Documents", true)
    );
    store.set_service_app_active(docs.id, false).await.unwrap();
    let inactive = store
        .service_app_by_key_hash(b"key-docs-3", now)
        .await
        .unwrap()
        .unwrap();
    assert!(!inactive.is_active);
    assert_eq!(inactive.name, "Documents");

    // Last use only moves forward.
    let later = Utc::now() + Duration::minutes(5);
    store
        .touch_service_apps(&[(billing.id, later), (docs.id, later)])
        .await
        .unwrap();
    store
        .touch_service_apps(&[(billing.id, later - Duration::minutes(1))])
        .await
        .unwrap();
    let touched = store.service_app_by_id(billing.id).await.unwrap().unwrap();
    assert_eq!(
        touched.last_used_at.map(|t| t.timestamp()),
        Some(later.timestamp())
    );

    // Deletion: the service's data goes, with a changelog entry; once.
    let before = store.current_revision().await.unwrap();
    let (resources, revision) = store
        .delete_service_app(billing.id, &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resources, 0);
    assert!(revision > before);
    let changes = store.changes_since(before, None, 10).await.unwrap();
    assert!(matches!(
        changes.last().map(|c| &c.change),
        Some(Change::ServiceDeleted { service_name }) if service_name == "billing"
    ));
    assert!(store.service_app_by_id(billing.id).await.unwrap().is_none());
    assert!(
        store
            .delete_service_app(billing.id, &audit())
            .await
            .unwrap()
            .is_none()
    );
}

async fn user(store: &dyn Store, name: &str, email: &str, active: bool, admin: bool) -> UserRow {
    let now = Utc::now();
    let user = UserRow {
        id: sentinel::model::UserId::random(),
        email: email.into(),
        name: name.into(),
        avatar_url: String::new(),
        is_active: active,
        is_admin: admin,
        created_at: now,
        updated_at: now,
    };
    store.insert_user(&user, true).await.unwrap();
    user
}

async fn users_and_counts_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user(store.as_ref(), "Ann Admin", "ann@example.com", true, true).await;
    user(store.as_ref(), "Bob", "bob@example.com", false, false).await;
    user(store.as_ref(), "Cy_Z", "cy@example.com", true, false).await;
    let emails = |users: Vec<UserRow>| users.into_iter().map(|u| u.email).collect::<Vec<_>>();

    let all = store.list_users(None, None, None, None, 10).await.unwrap();
    assert_eq!(
        emails(all),
        ["ann@example.com", "bob@example.com", "cy@example.com"]
    );
    let page = store
        .list_users(None, None, None, Some("ann@example.com"), 1)
        .await
        .unwrap();
    assert_eq!(emails(page), ["bob@example.com"]);
    let active = store
        .list_users(None, Some(true), None, None, 10)
        .await
        .unwrap();
    assert_eq!(emails(active), ["ann@example.com", "cy@example.com"]);
    let admins = store
        .list_users(None, None, Some(true), None, 10)
        .await
        .unwrap();
    assert_eq!(emails(admins), ["ann@example.com"]);
    let named = store
        .list_users(Some("ADMIN"), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(emails(named), ["ann@example.com"]);
    let literal = store
        .list_users(Some("y_z"), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(emails(literal), ["cy@example.com"]);
    assert!(
        store
            .list_users(Some("n_a"), None, None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "_ is no wildcard"
    );

    // Ann is the only active admin: a guarded demotion changes nothing, an unguarded one
    // applies.
    let demote = UserChange {
        is_admin: Some(false),
        keep_an_admin: true,
        ..UserChange::default()
    };
    let refused = store.update_user(ann.id, &demote, &audit()).await.unwrap();
    assert!(matches!(refused, UserUpdate::NoAdminLeft), "{refused:?}");
    assert!(store.user_by_id(ann.id).await.unwrap().unwrap().is_admin);
    let demote = UserChange {
        keep_an_admin: false,
        ..demote
    };
    let UserUpdate::Updated(updated) = store.update_user(ann.id, &demote, &audit()).await.unwrap()
    else {
        panic!("applied");
    };
    assert_eq!(
        (updated.name.as_str(), updated.is_admin),
        ("Ann Admin", false)
    );
    let rename = UserChange {
        name: Some("x"),
        ..UserChange::default()
    };
    let unknown = store
        .update_user(sentinel::model::UserId::random(), &rename, &audit())
        .await
        .unwrap();
    assert!(matches!(unknown, UserUpdate::NotFound), "{unknown:?}");

    let stats = store.stats(Utc::now()).await.unwrap();
    assert_eq!((stats.users, stats.active_users, stats.admins), (3, 2, 0));
    assert_eq!(
        (
            stats.workspaces,
            stats.groups,
            stats.service_apps,
            stats.client_apps
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        (stats.active_sessions, stats.resources, stats.grants),
        (0, 0, 0)
    );
}

async fn audit_trail_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let base = Utc::now() - Duration::hours(1);
    let actor = sentinel::model::UserId::random();
    let workspace = sentinel::model::WorkspaceId::random();
    let mut written = Vec::new();
    for (i, (action, outcome)) in [
        ("token.issued", "success"),
        ("token.reuse_detected", "failure"),
        ("tokenXrevoked", "success"),
        ("group_member.added", "success"),
        ("groupXmember.added", "success"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut row = event(action, &Actor::default(), "thing", i, serde_json::json!({}));
        row.occurred_at = base + Duration::minutes(i as i64);
        row.outcome = outcome.into();
        if i < 2 {
            row.actor_user_id = Some(actor);
            row.workspace_id = Some(workspace);
        }
        store.insert_audit(&row).await.unwrap();
        written.push(row);
    }
    let actions = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .list_audit(&filter, None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.action)
                .collect::<Vec<_>>()
        }
    };
    // Newest first; an exact action; a family by its prefix, wildcards taken literally.
    assert_eq!(actions(AuditFilter::default()).await.len(), 5);
    assert_eq!(
        actions(AuditFilter {
            action: Some("token.issued".into()),
            ..AuditFilter::default()
        })
        .await,
        ["token.issued"]
    );
    assert_eq!(
        actions(AuditFilter {
            action: Some("token.".into()),
            ..AuditFilter::default()
        })
        .await,
        ["token.reuse_detected", "token.issued"]
    );
    assert_eq!(
        actions(AuditFilter {
            action: Some("group_member.".into()),
            ..AuditFilter::default()
        })
        .await,
        ["group_member.added"],
        "the _ of a family is no wildcard"
    );
    // By actor, workspace, target, outcome and time.
    assert_eq!(
        actions(AuditFilter {
            actor_user_id: Some(actor),
            outcome: Some("failure".into()),
            ..AuditFilter::default()
        })
        .await,
        ["token.reuse_detected"]
    );
    assert_eq!(
        actions(AuditFilter {
            workspace_id: Some(workspace),
            target_id: Some("0".into()),
            ..AuditFilter::default()
        })
        .await,
        ["token.issued"]
    );
    assert_eq!(
        actions(AuditFilter {
            start: Some(base + Duration::minutes(1)),
            end: Some(base + Duration::minutes(3)),
            ..AuditFilter::default()
        })
        .await,
        ["tokenXrevoked", "token.reuse_detected"]
    );
    // Keyset pages over (occurred_at, id), newest first.
    let first = store
        .list_audit(&AuditFilter::default(), None, 2)
        .await
        .unwrap();
    let last = first.last().unwrap();
    let next = store
        .list_audit(
            &AuditFilter::default(),
            Some((last.occurred_at, last.id)),
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.id).collect::<Vec<_>>(),
        [written[2].id, written[1].id]
    );
    // Purging drops what is older than the cut.
    let purged = store
        .purge_audit(base + Duration::seconds(150))
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(actions(AuditFilter::default()).await.len(), 2);
}
