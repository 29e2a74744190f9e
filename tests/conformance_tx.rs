//! Conformance of the write transactions the domain holds (`ChangelogTx`), run against every
//! store: what the facts read, what the writes leave, that a dropped transaction leaves nothing,
//! and that changelog transactions run one at a time.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Backend, fresh_store};
use sentinel::audit::{Actor, event};
use sentinel::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use sentinel::store::{GrantRow, GroupRow, Store, UserRow, WorkspaceRow};
use uuid::Uuid;

both_backends!(
    changelog_tx_reads_and_writes_conformance,
    changelog_tx_rolls_back_when_dropped_conformance,
    changelog_tx_serializes_writers_conformance,
    changelog_tx_takes_invitations_once_conformance,
    changelog_tx_appends_many_in_order_conformance,
    changelog_tx_appends_with_audit_events_conformance,
);

fn audit_row() -> sentinel::store::AuditRow {
    event(
        "test.write",
        &Actor::default(),
        "resource",
        "doc/1",
        serde_json::json!({}),
    )
}

fn user(email: &str) -> UserRow {
    let now = Utc::now();
    UserRow {
        id: sentinel::model::UserId::random(),
        email: email.into(),
        name: email.into(),
        avatar_url: String::new(),
        is_active: true,
        is_admin: false,
        created_at: now,
        updated_at: now,
    }
}

/// A workspace owned by `owner`, with `editor` as an editor.
async fn workspace(store: &dyn Store, owner: &UserRow, editor: &UserRow) -> WorkspaceRow {
    let now = Utc::now();
    let workspace = WorkspaceRow {
        id: sentinel::model::WorkspaceId::random(),
        name: "Acme".into(),
        slug: "acme".into(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    store.insert_user(owner, true).await.unwrap();
    store.insert_user(editor, true).await.unwrap();
    store
        .create_workspace(&workspace, owner.id, &audit_row())
        .await
        .unwrap();
    store
        .upsert_membership(
            workspace.id,
            editor.id,
            sentinel::model::WorkspaceRole::Editor,
            now,
        )
        .await
        .unwrap();
    workspace
}

fn doc(
    workspace_id: sentinel::model::WorkspaceId,
    id: &str,
    owner: Option<sentinel::model::UserId>,
) -> ResourceState {
    ResourceState {
        service_name: "docs".into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
        workspace_id,
        owner_id: owner,
        visibility: sentinel::model::Visibility::Private,
        parent: None,
    }
}

fn key(id: &str) -> ResourceKey {
    ResourceKey {
        service_name: "docs".into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
    }
}

async fn changelog_tx_reads_and_writes_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (ann, bob) = (user("ann@example.com"), user("bob@example.com"));
    let ws = workspace(store.as_ref(), &ann, &bob).await;
    let outsider = user("out@example.com");
    store.insert_user(&outsider, true).await.unwrap();
    let group = GroupRow {
        id: sentinel::model::GroupId::random(),
        workspace_id: ws.id,
        name: "Team".into(),
        description: String::new(),
        member_count: 0,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    store.create_group(&group, &audit_row()).await.unwrap();
    // Links: a change reports itself once; the same write again changes nothing.
    let mut tx = store.begin_changelog().await.unwrap();
    assert!(tx.set_group_member(group.id, bob.id, true).await.unwrap());
    assert!(!tx.set_group_member(group.id, bob.id, true).await.unwrap());
    assert!(
        !tx.set_group_member(group.id, outsider.id, false)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.group(group.id).await.unwrap().unwrap().member_count,
        1
    );

    // Facts.
    let mut tx = store.begin_changelog().await.unwrap();
    assert!(tx.workspace_exists(ws.id).await.unwrap());
    assert!(
        !tx.workspace_exists(sentinel::model::WorkspaceId::random())
            .await
            .unwrap()
    );
    assert!(tx.user_exists(outsider.id).await.unwrap());
    assert!(
        !tx.user_exists(sentinel::model::UserId::random())
            .await
            .unwrap()
    );
    assert_eq!(
        tx.role_of(ws.id, ann.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Owner)
    );
    assert_eq!(
        tx.role_of(ws.id, bob.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Editor)
    );
    assert_eq!(tx.role_of(ws.id, outsider.id).await.unwrap(), None);
    assert_eq!(tx.owner_count(ws.id).await.unwrap(), 1);
    assert_eq!(tx.group_workspace(group.id).await.unwrap(), Some(ws.id));
    assert_eq!(
        tx.group_workspace(sentinel::model::GroupId::random())
            .await
            .unwrap(),
        None
    );
    let before = tx.revision().await.unwrap();

    // Resources: insert, a child under it, grants.
    let parent = tx
        .put_resource(None, &doc(ws.id, "folder", Some(ann.id)), None)
        .await
        .unwrap();
    assert_eq!(parent.state, doc(ws.id, "folder", Some(ann.id)));
    let mut child_state = doc(ws.id, "page", None);
    child_state.parent = Some(("doc".into(), "folder".into()));
    let child = tx
        .put_resource(None, &child_state, Some(parent.id))
        .await
        .unwrap();
    assert_eq!(child.state.parent, Some(("doc".into(), "folder".into())));
    let (found, parent_row) = tx.resource(&key("page")).await.unwrap().unwrap();
    assert_eq!((found.id, parent_row), (child.id, Some(parent.id)));
    // The parent chain: a resource reaches itself and its ancestors, not its descendants,
    // and a chain longer than the cap counts as reached.
    assert!(tx.chain_reaches(child.id, parent.id, 4096).await.unwrap());
    assert!(tx.chain_reaches(child.id, child.id, 4096).await.unwrap());
    assert!(!tx.chain_reaches(parent.id, child.id, 4096).await.unwrap());
    assert!(
        !tx.chain_reaches(parent.id, Uuid::new_v4(), 4096)
            .await
            .unwrap()
    );
    assert!(tx.chain_reaches(child.id, Uuid::new_v4(), 1).await.unwrap());
    assert!(!tx.chain_reaches(child.id, Uuid::new_v4(), 2).await.unwrap());
    assert_eq!(tx.attachments(parent.id).await.unwrap(), 1);
    assert!(tx.resource(&key("nothing")).await.unwrap().is_none());

    let grant = GrantRow {
        grantee: GranteeRef::User(bob.id),
        permission: sentinel::model::Permission::View,
        expires_at: None,
        granted_by: Some(ann.id),
        created_at: Utc::now(),
    };
    tx.put_grant(parent.id, &grant).await.unwrap();
    assert_eq!(tx.attachments(parent.id).await.unwrap(), 2);
    let stored = tx
        .grant(parent.id, GranteeRef::User(bob.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.permission.as_str(), stored.granted_by),
        ("view", Some(ann.id))
    );
    let edit = GrantRow {
        permission: sentinel::model::Permission::Edit,
        ..grant.clone()
    };
    tx.put_grant(parent.id, &edit).await.unwrap();
    let stored = tx.grant(parent.id, GranteeRef::User(bob.id)).await.unwrap();
    assert_eq!(
        stored.unwrap().permission,
        sentinel::model::Permission::Edit,
        "a second grant replaces the first"
    );
    assert!(
        !tx.delete_grant(
            parent.id,
            GranteeRef::User(bob.id),
            Some(sentinel::model::Permission::View)
        )
        .await
        .unwrap(),
        "only a grant of the named permission is removed"
    );
    assert!(
        tx.delete_grant(parent.id, GranteeRef::User(bob.id), None)
            .await
            .unwrap()
    );
    assert!(
        tx.grant(parent.id, GranteeRef::User(bob.id))
            .await
            .unwrap()
            .is_none()
    );

    // Replacing a state keeps the row; the record lands at the next revision.
    let mut moved = doc(ws.id, "folder", None);
    moved.visibility = sentinel::model::Visibility::Workspace;
    let replaced = tx
        .put_resource(Some(parent.id), &moved, None)
        .await
        .unwrap();
    assert_eq!((replaced.id, &replaced.state), (parent.id, &moved));
    let change = Change::ResourceSet {
        resource: moved.clone(),
        created: true,
    };
    let revision = tx.record(&change, &audit_row()).await.unwrap();
    assert!(revision > before, "{revision} after {before}");
    assert_eq!(tx.revision().await.unwrap(), revision);
    tx.commit().await.unwrap();

    assert_eq!(store.current_revision().await.unwrap(), revision);
    let logged = store.changes_since(before, None, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].revision, revision);
    assert_eq!(logged[0].change, change);
    assert_eq!(
        store.resource(&key("folder")).await.unwrap().unwrap().state,
        moved
    );

    // Deleting detaches children; members change role and leave with their groups.
    let mut tx = store.begin_changelog().await.unwrap();
    tx.delete_resource(parent.id).await.unwrap();
    assert!(tx.resource(&key("folder")).await.unwrap().is_none());
    assert!(
        !tx.chain_reaches(child.id, parent.id, 4096).await.unwrap(),
        "detached"
    );
    tx.set_member_role(ws.id, bob.id, sentinel::model::WorkspaceRole::Admin)
        .await
        .unwrap();
    assert_eq!(
        tx.role_of(ws.id, bob.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Admin)
    );
    tx.set_member_role(ws.id, bob.id, sentinel::model::WorkspaceRole::Owner)
        .await
        .unwrap();
    assert_eq!(tx.owner_count(ws.id).await.unwrap(), 2);
    tx.remove_member(ws.id, bob.id).await.unwrap();
    assert_eq!(tx.role_of(ws.id, bob.id).await.unwrap(), None);
    assert_eq!(tx.owner_count(ws.id).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert!(store.resource(&key("folder")).await.unwrap().is_none());
    assert_eq!(store.membership_role(ws.id, bob.id).await.unwrap(), None);
    assert!(
        store.group_ids(ws.id, bob.id).await.unwrap().is_empty(),
        "a removed member leaves the workspace's groups"
    );
}

async fn changelog_tx_rolls_back_when_dropped_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (ann, bob) = (user("ann@example.com"), user("bob@example.com"));
    let ws = workspace(store.as_ref(), &ann, &bob).await;
    let before = store.current_revision().await.unwrap();
    {
        let mut tx = store.begin_changelog().await.unwrap();
        tx.put_resource(None, &doc(ws.id, "draft", None), None)
            .await
            .unwrap();
        tx.remove_member(ws.id, bob.id).await.unwrap();
        let change = Change::MemberRemoved {
            workspace_id: ws.id,
            user_id: bob.id,
        };
        tx.record(&change, &audit_row()).await.unwrap();
        // Dropped: a rule refused after the writes.
    }
    assert!(store.resource(&key("draft")).await.unwrap().is_none());
    assert_eq!(
        store.membership_role(ws.id, bob.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Editor)
    );
    assert_eq!(store.current_revision().await.unwrap(), before);
    assert!(
        store
            .changes_since(before, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The lock went with it: the next transaction begins and commits.
    let mut tx = store.begin_changelog().await.unwrap();
    tx.put_resource(None, &doc(ws.id, "draft", None), None)
        .await
        .unwrap();
    let change = Change::ResourceSet {
        resource: doc(ws.id, "draft", None),
        created: true,
    };
    let revision = tx.record(&change, &audit_row()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(revision > before);
    assert!(store.resource(&key("draft")).await.unwrap().is_some());
}

/// A second changelog transaction begins only once the first has ended, so facts read under
/// the lock cannot change before the write that relies on them commits.
async fn changelog_tx_serializes_writers_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (ann, bob) = (user("ann@example.com"), user("bob@example.com"));
    let ws = workspace(store.as_ref(), &ann, &bob).await;
    let mut first = store.begin_changelog().await.unwrap();
    let (began, mut began_rx) = tokio::sync::oneshot::channel();
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin_changelog().await.unwrap();
            let _ = began.send(());
            let facts = (
                tx.revision().await.unwrap(),
                tx.role_of(ws.id, bob.id).await.unwrap(),
            );
            drop(tx);
            facts
        }
    });
    tx_demote(&mut *first, ws.id, bob.id).await;
    let committed = first.revision().await.unwrap();
    // However long the first one takes, the second waits for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        began_rx.try_recv().is_err(),
        "a second changelog transaction began while the first held the lock"
    );
    first.commit().await.unwrap();
    let (revision, role) = second.await.unwrap();
    assert_eq!(revision, committed, "the second saw the first one's commit");
    assert_eq!(role, Some(sentinel::model::WorkspaceRole::Viewer));
}

async fn tx_demote(
    tx: &mut dyn sentinel::store::ChangelogTx,
    workspace_id: sentinel::model::WorkspaceId,
    user: sentinel::model::UserId,
) {
    tx.set_member_role(workspace_id, user, sentinel::model::WorkspaceRole::Viewer)
        .await
        .unwrap();
    let change = Change::MemberSet {
        workspace_id,
        user_id: user,
        role: sentinel::model::WorkspaceRole::Viewer,
        added: false,
    };
    tx.record(&change, &audit_row()).await.unwrap();
}

/// An invitation is taken once: a dropped transaction leaves it pending, a committed one turns
/// it into a membership; a second take finds nothing.
async fn changelog_tx_takes_invitations_once_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let (owner, editor, guest) = (user("o@x.io"), user("e@x.io"), user("g@x.io"));
    let ws = workspace(store.as_ref(), &owner, &editor).await;
    store.insert_user(&guest, true).await.unwrap();
    let now = Utc::now();
    let invitation = sentinel::store::InvitationRow {
        id: Uuid::new_v4(),
        workspace_id: ws.id,
        email: guest.email.clone(),
        user_id: Some(guest.id),
        role: sentinel::model::WorkspaceRole::Viewer,
        invited_by: Some(owner.id),
        created_at: now,
        expires_at: now + chrono::Duration::days(7),
    };
    store
        .create_invitation(&invitation, &audit_row())
        .await
        .unwrap();

    {
        let mut tx = store.begin_changelog().await.unwrap();
        let taken = tx.take_invitation(invitation.id).await.unwrap();
        assert_eq!(taken, Some((ws.id, sentinel::model::WorkspaceRole::Viewer)));
        tx.add_member(ws.id, guest.id, sentinel::model::WorkspaceRole::Viewer)
            .await
            .unwrap();
        // dropped: rolled back
    }
    assert!(store.invitation(invitation.id).await.unwrap().is_some());
    assert!(store.member(ws.id, guest.id).await.unwrap().is_none());

    let mut tx = store.begin_changelog().await.unwrap();
    let (workspace_id, role) = tx.take_invitation(invitation.id).await.unwrap().unwrap();
    assert_eq!(tx.role_of(workspace_id, guest.id).await.unwrap(), None);
    tx.add_member(workspace_id, guest.id, role).await.unwrap();
    assert_eq!(
        tx.role_of(workspace_id, guest.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Viewer)
    );
    tx.commit().await.unwrap();
    assert!(store.invitation(invitation.id).await.unwrap().is_none());
    assert_eq!(
        store.member(ws.id, guest.id).await.unwrap().unwrap().role,
        sentinel::model::WorkspaceRole::Viewer
    );

    let mut tx = store.begin_changelog().await.unwrap();
    assert_eq!(tx.take_invitation(invitation.id).await.unwrap(), None);
}

/// Many entries appended in one call (more than one statement's worth) get ascending revisions
/// in their order, and read back in that order; many audit events are stored with them.
async fn changelog_tx_appends_many_in_order_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let before = store.current_revision().await.unwrap();
    let changes: Vec<Change> = (0..333)
        .map(|n| Change::ActionsRegistered {
            service_name: format!("svc-{n:03}"),
        })
        .collect();
    let events: Vec<_> = (0..250).map(|_| audit_row()).collect();
    let mut tx = store.begin_changelog().await.unwrap();
    let at = sentinel::model::now();
    let revisions = tx.append_all(&changes, at).await.unwrap();
    tx.audit(&events).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(revisions.len(), changes.len());
    assert!(revisions[0] > before);
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "ascending");
    let logged = store.changes_since(before, None, 1000).await.unwrap();
    assert!(
        logged.iter().all(|row| row.occurred_at == at),
        "each entry stamped with the time it was appended at"
    );
    let logged: Vec<_> = logged
        .into_iter()
        .map(|row| (row.revision, row.change))
        .collect();
    let expected: Vec<_> = revisions.into_iter().zip(changes).collect();
    assert_eq!(logged, expected, "each change at its revision, in order");
    let stored = store
        .list_audit(&sentinel::store::AuditFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(
        stored.iter().filter(|e| e.action == "test.write").count(),
        250
    );
}

/// Entries appended with their audit events (one statement on PostgreSQL) get ascending
/// revisions in their order, are stamped with the time given, and their events are stored with
/// them; nothing of it is kept when the transaction is rolled back.
async fn changelog_tx_appends_with_audit_events_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let before = store.current_revision().await.unwrap();
    let changes: Vec<Change> = (0..40)
        .map(|n| Change::ActionsRegistered {
            service_name: format!("svc-{n:02}"),
        })
        .collect();
    let mut events: Vec<_> = (0..40).map(|_| audit_row()).collect();
    for (n, e) in events.iter_mut().enumerate() {
        e.target_id = Some(format!("doc/{n}"));
    }
    let at = sentinel::model::now();

    let mut dropped = store.begin_changelog().await.unwrap();
    dropped.append_audited(&changes, &events, at).await.unwrap();
    drop(dropped);
    assert_eq!(
        store.current_revision().await.unwrap(),
        before,
        "rolled back"
    );

    let mut tx = store.begin_changelog().await.unwrap();
    let revisions = tx.append_audited(&changes, &events, at).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(revisions.len(), changes.len());
    assert!(revisions[0] > before);
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "ascending");
    let logged = store.changes_since(before, None, 1000).await.unwrap();
    assert!(logged.iter().all(|row| row.occurred_at == at));
    let logged: Vec<_> = logged
        .into_iter()
        .map(|row| (row.revision, row.change))
        .collect();
    let expected: Vec<_> = revisions.into_iter().zip(changes).collect();
    assert_eq!(logged, expected, "each change at its revision, in order");
    let stored = store
        .list_audit(&sentinel::store::AuditFilter::default(), None, 1000)
        .await
        .unwrap();
    let mut targets: Vec<String> = stored
        .iter()
        .filter(|e| e.action == "test.write")
        .filter_map(|e| e.target_id.clone())
        .collect();
    targets.sort();
    let mut wanted: Vec<String> = (0..40).map(|n| format!("doc/{n}")).collect();
    wanted.sort();
    assert_eq!(
        targets, wanted,
        "every event once, none from the rolled-back try"
    );
}
