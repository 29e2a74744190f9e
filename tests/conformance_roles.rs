//! Conformance of the role, permission-read and user stores, run against every store: actions
//! and custom roles (registration, assignment through the changelog transaction, who holds
//! what, deletion), the permission engine's reads (resources, grants, the changelog filtered by
//! service, the snapshot the index starts from) and users (emails, flags, profiles).

mod common;

use chrono::Utc;
use common::rows::{self, audit};
use common::{Backend, fresh_store};
use sentinel::model::Change;
use sentinel::model::change::{GranteeRef, ResourceKey, ResourceState};
use sentinel::store::{GrantRow, RoleRow, Store, StoreError, UserRow, WorkspaceRow};
use uuid::Uuid;

both_backends!(
    roles_and_actions_conformance,
    permission_reads_conformance,
    users_conformance,
);

/// A workspace owned by a new user; (workspace, owner).
async fn workspace(store: &dyn Store, slug: &str) -> (WorkspaceRow, UserRow) {
    let owner = rows::user("Owner", &format!("owner@{slug}.example.com"));
    store.insert_user(&owner, true).await.unwrap();
    let now = Utc::now();
    let ws = WorkspaceRow {
        id: sentinel::model::WorkspaceId::random(),
        name: slug.into(),
        slug: slug.into(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    store
        .create_workspace(&ws, owner.id, &audit())
        .await
        .unwrap();
    (ws, owner)
}

fn role_row(workspace_id: sentinel::model::WorkspaceId, name: &str, actions: &[&str]) -> RoleRow {
    let now = Utc::now();
    RoleRow {
        id: sentinel::model::RoleId::random(),
        workspace_id,
        service_name: "docs".into(),
        name: name.into(),
        description: String::new(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        assigned: 0,
        created_at: now,
        updated_at: now,
    }
}

async fn roles_and_actions_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (ws, owner) = workspace(store.as_ref(), "acme").await;
    let actions = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(a, d)| (a.to_string(), d.to_string()))
            .collect::<Vec<_>>()
    };

    // Registration: created, then only what changed.
    let before = store.current_revision().await.unwrap();
    let (created, updated, revision) = store
        .register_actions(
            "docs",
            &actions(&[("view", "See"), ("export", "Export")]),
            &audit(),
        )
        .await
        .unwrap();
    assert_eq!((created, updated), (2, 0));
    assert!(revision > before);
    let (created, updated, unchanged) = store
        .register_actions(
            "docs",
            &actions(&[("view", "See"), ("export", "Download")]),
            &audit(),
        )
        .await
        .unwrap();
    assert_eq!((created, updated), (0, 1));
    assert!(unchanged > revision);
    let (created, updated, same) = store
        .register_actions("docs", &actions(&[("view", "See")]), &audit())
        .await
        .unwrap();
    assert_eq!(
        (created, updated, same),
        (0, 0, unchanged),
        "nothing new, no change"
    );
    let mut registered = store.service_actions("docs").await.unwrap();
    registered.sort();
    assert_eq!(registered, ["export", "view"]);
    // A service exists once its app does (actions alone do not make one).
    assert!(!store.service_exists("docs").await.unwrap());
    let app = rows::service_app("Docs", "docs", b"key");
    store.insert_service_app(&app, &audit()).await.unwrap();
    assert!(store.service_exists("docs").await.unwrap());
    assert!(!store.service_exists("billing").await.unwrap());

    // A custom role, assigned through the changelog transaction.
    let reader = role_row(ws.id, "Reader", &["view"]);
    let revision = store.create_role(&reader, &audit()).await.unwrap();
    assert!(revision > unchanged);
    let stored = store.role(reader.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.actions.clone(), stored.assigned),
        (vec!["view".to_string()], 0)
    );
    let member = rows::user("Mia", "mia@example.com");
    store.insert_user(&member, true).await.unwrap();
    store
        .upsert_membership(
            ws.id,
            member.id,
            sentinel::model::WorkspaceRole::Viewer,
            Utc::now(),
        )
        .await
        .unwrap();
    let mut tx = store.begin_changelog().await.unwrap();
    assert!(
        tx.set_role_assignment(reader.id, member.id, true)
            .await
            .unwrap()
    );
    assert!(
        !tx.set_role_assignment(reader.id, member.id, true)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(store.role(reader.id).await.unwrap().unwrap().assigned, 1);
    assert_eq!(
        store
            .roles_holding(ws.id, "docs", member.id, "view")
            .await
            .unwrap(),
        ["Reader"]
    );
    assert!(
        store
            .roles_holding(ws.id, "docs", member.id, "export")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .roles_holding(ws.id, "docs", owner.id, "view")
            .await
            .unwrap()
            .is_empty(),
        "not assigned"
    );

    // New actions of the role; the holder's actions in pages.
    let revision = store
        .set_role_actions(reader.id, &["export".into(), "view".into()], &audit())
        .await
        .unwrap()
        .unwrap();
    assert!(revision > sentinel::model::Revision::ZERO);
    assert_eq!(
        store
            .user_actions(ws.id, "docs", member.id, None, 10)
            .await
            .unwrap(),
        ["export", "view"]
    );
    assert_eq!(
        store
            .user_actions(ws.id, "docs", member.id, Some("export"), 10)
            .await
            .unwrap(),
        ["view"]
    );
    let listed = store
        .list_roles(ws.id, Some("docs"), Some(member.id), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), [reader.id]);
    assert!(
        store
            .list_roles(ws.id, Some("docs"), Some(owner.id), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Leaving the workspace ends the assignment; deleting the role, once.
    let mut tx = store.begin_changelog().await.unwrap();
    tx.remove_member(ws.id, member.id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        store
            .user_actions(ws.id, "docs", member.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let before = store.current_revision().await.unwrap();
    let deleted = store
        .delete_role(reader.id, &audit())
        .await
        .unwrap()
        .unwrap();
    assert!(deleted > before);
    assert!(store.role(reader.id).await.unwrap().is_none());
    assert!(
        store
            .delete_role(reader.id, &audit())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .set_role_actions(reader.id, &["view".into()], &audit())
            .await
            .unwrap()
            .is_none()
    );
}

fn doc(service: &str, workspace_id: sentinel::model::WorkspaceId, id: &str) -> ResourceState {
    ResourceState {
        service_name: service.into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
        workspace_id,
        owner_id: None,
        visibility: sentinel::model::Visibility::Workspace,
        parent: None,
    }
}

fn key(service: &str, id: &str) -> ResourceKey {
    ResourceKey {
        service_name: service.into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
    }
}

async fn permission_reads_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (ws, owner) = workspace(store.as_ref(), "acme").await;
    let (other, _) = workspace(store.as_ref(), "other").await;
    let start = store.current_revision().await.unwrap();

    // Two services write; each change is recorded with its resource.
    let mut tx = store.begin_changelog().await.unwrap();
    let docs = tx
        .put_resource(None, &doc("docs", ws.id, "a"), None)
        .await
        .unwrap();
    let change = Change::ResourceSet {
        resource: docs.state.clone(),
        created: true,
    };
    tx.record(&change, &audit()).await.unwrap();
    let grant = GrantRow {
        grantee: GranteeRef::User(owner.id),
        permission: sentinel::model::Permission::Edit,
        expires_at: None,
        granted_by: Some(owner.id),
        created_at: Utc::now(),
    };
    tx.put_grant(docs.id, &grant).await.unwrap();
    let sheets = tx
        .put_resource(None, &doc("sheets", ws.id, "a"), None)
        .await
        .unwrap();
    let sheet_change = Change::ResourceSet {
        resource: sheets.state.clone(),
        created: true,
    };
    tx.record(&sheet_change, &audit()).await.unwrap();
    tx.commit().await.unwrap();

    // Reads by key and by row.
    let read = store.resource(&key("docs", "a")).await.unwrap().unwrap();
    assert_eq!((read.id, &read.state), (docs.id, &docs.state));
    assert!(store.resource(&key("docs", "b")).await.unwrap().is_none());
    let grants = store.grants(docs.id).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (&grants[0].grantee, grants[0].permission.as_str()),
        (&GranteeRef::User(owner.id), "edit")
    );
    assert!(store.grants(sheets.id).await.unwrap().is_empty());

    // The changelog by service: its own changes and those of no service (memberships).
    let all = store.changes_since(start, None, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.windows(2).all(|w| w[0].revision < w[1].revision));
    let only_docs = store.changes_since(start, Some("docs"), 10).await.unwrap();
    assert_eq!(only_docs.len(), 1);
    assert_eq!(only_docs[0].change, change);
    let mut tx = store.begin_changelog().await.unwrap();
    let joined = Change::MemberSet {
        workspace_id: ws.id,
        user_id: owner.id,
        role: sentinel::model::WorkspaceRole::Owner,
        added: false,
    };
    tx.record(&joined, &audit()).await.unwrap();
    tx.commit().await.unwrap();
    let docs_view = store.changes_since(start, Some("docs"), 10).await.unwrap();
    assert_eq!(
        docs_view.iter().map(|c| &c.change).collect::<Vec<_>>(),
        [&change, &joined],
        "changes of no service reach every service"
    );
    let paged = store.changes_since(start, None, 1).await.unwrap();
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].revision, all[0].revision);

    // Which services hold data in a workspace.
    assert!(store.service_in_workspace("docs", ws.id).await.unwrap());
    assert!(!store.service_in_workspace("docs", other.id).await.unwrap());
    assert!(!store.service_in_workspace("billing", ws.id).await.unwrap());

    // The snapshot the index starts from.
    let snapshot = store.authz_snapshot().await.unwrap();
    assert!(snapshot.revision >= store.current_revision().await.unwrap());
    let mut ids: Vec<Uuid> = snapshot.resources.iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = vec![docs.id, sheets.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(snapshot.grants.len(), 1);
    assert_eq!(snapshot.grants[0].resource, docs.id);
    assert!(
        snapshot
            .memberships
            .iter()
            .any(|(w, u, role)| (*w, *u, role.as_str()) == (ws.id, owner.id, "owner"))
    );
}

async fn users_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ada = rows::user("Ada", "ada@example.com");
    store.insert_user(&ada, false).await.unwrap();
    // Emails are unique.
    assert!(matches!(
        store
            .insert_user(&rows::user("Other", "ada@example.com"), false)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        ada.id
    );
    assert!(
        store
            .user_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.verified_email(ada.id).await.unwrap(), None);

    store.set_user_flags(ada.id, false, true).await.unwrap();
    let flagged = store.user_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!((flagged.is_active, flagged.is_admin), (false, true));

    let profile = store
        .update_profile(ada.id, None, Some("https://example.com/a.png"), &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (profile.name.as_str(), profile.avatar_url.as_str()),
        ("Ada", "https://example.com/a.png")
    );
    assert!(profile.updated_at >= ada.updated_at);
    assert!(
        store
            .update_profile(sentinel::model::UserId::random(), Some("x"), None, &audit())
            .await
            .unwrap()
            .is_none()
    );
}
