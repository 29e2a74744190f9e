//! Conformance of the tenancy stores, run against every store: workspaces (slugs, listing with
//! the caller's role, search, keyset pages, updates, deletion and its changelog entry), members
//! (order, filters, pages), groups (listing, members, deletion) and the revocation log (scopes,
//! bounds, order).

mod common;

use chrono::{Duration, Utc};
use common::rows::{self, audit};
use common::{Backend, fresh_store};
use sentinel::model::Change;
use sentinel::store::{
    GroupRow, RevokeScope, SessionRow, Store, StoreError, UserRow, WorkspaceRow,
};
use uuid::Uuid;

both_backends!(
    workspaces_conformance,
    members_conformance,
    groups_conformance,
    revocation_log_conformance,
);

async fn user(store: &dyn Store, name: &str, email: &str) -> UserRow {
    let user = rows::user(name, email);
    store.insert_user(&user, true).await.unwrap();
    user
}

async fn workspace(store: &dyn Store, name: &str, slug: &str, owner: &UserRow) -> WorkspaceRow {
    let row = rows::workspace(name, slug);
    store
        .create_workspace(&row, owner.id, &audit())
        .await
        .unwrap();
    row
}

async fn workspaces_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user(store.as_ref(), "Ann", "ann@example.com").await;
    let bob = user(store.as_ref(), "Bob", "bob@example.com").await;
    let acme = workspace(store.as_ref(), "Acme", "acme", &ann).await;
    let beta = workspace(store.as_ref(), "Beta 100%", "beta", &bob).await;
    let corp = workspace(store.as_ref(), "Corp", "corp", &ann).await;

    // Slugs are unique; lookups by id and slug agree.
    let clash = rows::workspace("Other", "acme");
    assert!(matches!(
        store.create_workspace(&clash, ann.id, &audit()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.workspace_by_id(clash.id).await.unwrap().is_none());
    assert_eq!(
        store.workspace_by_slug("acme").await.unwrap().unwrap().id,
        acme.id
    );
    assert_eq!(
        store.membership_role(acme.id, ann.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Owner)
    );
    assert_eq!(store.membership_role(acme.id, bob.id).await.unwrap(), None);

    // Listing: a member sees theirs with role and join time, by name.
    let mine = store
        .list_workspaces(Some(ann.id), None, None, 10)
        .await
        .unwrap();
    let names: Vec<&str> = mine.iter().map(|(w, _, _)| w.name.as_str()).collect();
    assert_eq!(names, ["Acme", "Corp"]);
    assert!(mine.iter().all(|(_, role, joined)| *role
        == Some(sentinel::model::WorkspaceRole::Owner)
        && joined.is_some()));
    // Everyone's (the platform view): no role.
    let all = store.list_workspaces(None, None, None, 2).await.unwrap();
    assert_eq!(
        all.iter().map(|(w, _, _)| w.id).collect::<Vec<_>>(),
        [acme.id, beta.id]
    );
    assert!(all.iter().all(|(_, role, _)| role.is_none()));
    let last = &all[1].0;
    let rest = store
        .list_workspaces(None, None, Some((last.name.clone(), last.id)), 2)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|(w, _, _)| w.id).collect::<Vec<_>>(),
        [corp.id]
    );
    // Search: case-insensitive on the name, on the slug, wildcards taken literally.
    let found = |query: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_workspaces(None, Some(query), None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|(w, _, _)| w.slug)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("ACM").await, ["acme"]);
    assert_eq!(found("orp").await, ["corp"]);
    assert_eq!(found("100%").await, ["beta"]);
    assert!(found("%").await == ["beta"], "a % matches only a literal %");
    assert!(found("a_m").await.is_empty(), "_ is no wildcard");

    // Updates: partial, slug still unique, unknown id is None.
    let renamed = store
        .update_workspace(acme.id, Some("Acme Inc"), None, Some("Makers"), &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.slug.as_str(),
            renamed.description.as_str()
        ),
        ("Acme Inc", "acme", "Makers")
    );
    assert!(renamed.updated_at >= acme.updated_at);
    assert!(matches!(
        store
            .update_workspace(acme.id, None, Some("beta"), None, &audit())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.workspace_by_id(acme.id).await.unwrap().unwrap().slug,
        "acme",
        "a refused update changes nothing"
    );
    assert!(
        store
            .update_workspace(
                sentinel::model::WorkspaceId::random(),
                Some("x"),
                None,
                None,
                &audit()
            )
            .await
            .unwrap()
            .is_none()
    );

    // Scope of a token: role, workspace and the member's groups.
    let (role, scoped, groups) = store
        .workspace_scope(corp.id, ann.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (role.as_str(), scoped.id, groups.len()),
        ("owner", corp.id, 0)
    );
    assert!(
        store
            .workspace_scope(corp.id, bob.id)
            .await
            .unwrap()
            .is_none()
    );

    // Deletion: a changelog entry, memberships gone, once.
    let before = store.current_revision().await.unwrap();
    let revision = store
        .delete_workspace(corp.id, &audit())
        .await
        .unwrap()
        .unwrap();
    assert!(revision > before);
    let changes = store.changes_since(before, None, 10).await.unwrap();
    assert!(matches!(
        changes.last().map(|c| &c.change),
        Some(Change::WorkspaceDeleted { workspace_id }) if *workspace_id == corp.id
    ));
    assert_eq!(store.membership_role(corp.id, ann.id).await.unwrap(), None);
    assert!(
        store
            .delete_workspace(corp.id, &audit())
            .await
            .unwrap()
            .is_none()
    );
}

async fn members_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user(store.as_ref(), "Ann", "ann@example.com").await;
    let ws = workspace(store.as_ref(), "Acme", "acme", &ann).await;
    let now = Utc::now();
    let mut people = vec![ann.clone()];
    for (name, email, role) in [
        ("Cy", "cy@example.com", "viewer"),
        ("Bea", "bea@example.com", "editor"),
        ("Bea", "bea2@example.com", "viewer"),
        ("Dee_1", "dee@example.com", "admin"),
    ] {
        let u = user(store.as_ref(), name, email).await;
        store
            .upsert_membership(
                ws.id,
                u.id,
                sentinel::model::WorkspaceRole::parse(role).unwrap(),
                now,
            )
            .await
            .unwrap();
        people.push(u);
    }
    let outsider = user(store.as_ref(), "Eve", "eve@example.com").await;

    let emails = |rows: Vec<sentinel::store::MemberRow>| {
        rows.into_iter().map(|m| m.user.email).collect::<Vec<_>>()
    };
    // By name, then email (bytewise: "bea2@" before "bea@").
    let all = store
        .list_members(ws.id, None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        emails(all.clone()),
        [
            "ann@example.com",
            "bea2@example.com",
            "bea@example.com",
            "cy@example.com",
            "dee@example.com"
        ]
    );
    let ann_row = &all[0];
    assert_eq!(
        (ann_row.role.as_str(), ann_row.workspace_id),
        ("owner", ws.id)
    );
    // Keyset pages over (name, email, id).
    let first = store
        .list_members(ws.id, None, None, None, 2)
        .await
        .unwrap();
    let last = first.last().unwrap();
    let next = store
        .list_members(
            ws.id,
            None,
            None,
            Some((
                last.user.name.clone(),
                last.user.email.clone(),
                last.user.id,
            )),
            2,
        )
        .await
        .unwrap();
    assert_eq!(emails(next), ["bea@example.com", "cy@example.com"]);
    // Filters: role; a substring of name or email, `_` literal.
    let viewers = store
        .list_members(
            ws.id,
            None,
            Some(sentinel::model::WorkspaceRole::Viewer),
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(emails(viewers), ["bea2@example.com", "cy@example.com"]);
    let found = store
        .list_members(ws.id, Some("BEA"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(emails(found), ["bea2@example.com", "bea@example.com"]);
    let literal = store
        .list_members(ws.id, Some("e_1"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(emails(literal), ["dee@example.com"]);
    // One membership; an upsert changes the role.
    assert!(store.member(ws.id, outsider.id).await.unwrap().is_none());
    store
        .upsert_membership(
            ws.id,
            people[1].id,
            sentinel::model::WorkspaceRole::Admin,
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .member(ws.id, people[1].id)
            .await
            .unwrap()
            .unwrap()
            .role,
        sentinel::model::WorkspaceRole::Admin
    );
}

fn group_row(workspace_id: sentinel::model::WorkspaceId, name: &str) -> GroupRow {
    let now = Utc::now();
    GroupRow {
        id: sentinel::model::GroupId::random(),
        workspace_id,
        name: name.into(),
        description: String::new(),
        member_count: 0,
        created_at: now,
        updated_at: now,
    }
}

async fn groups_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user(store.as_ref(), "Ann", "ann@example.com").await;
    let bob = user(store.as_ref(), "Bob", "bob@example.com").await;
    let ws = workspace(store.as_ref(), "Acme", "acme", &ann).await;
    let other = workspace(store.as_ref(), "Other", "other", &ann).await;
    store
        .upsert_membership(
            ws.id,
            bob.id,
            sentinel::model::WorkspaceRole::Viewer,
            Utc::now(),
        )
        .await
        .unwrap();
    let (eng, ops, elsewhere) = (
        group_row(ws.id, "Engineering"),
        group_row(ws.id, "Ops"),
        group_row(other.id, "Engineering"),
    );
    for g in [&eng, &ops, &elsewhere] {
        store.create_group(g, &audit()).await.unwrap();
    }
    // Names are unique within a workspace only.
    assert!(matches!(
        store.create_group(&group_row(ws.id, "Ops"), &audit()).await,
        Err(StoreError::Conflict(_))
    ));
    let mut tx = store.begin_changelog().await.unwrap();
    assert!(tx.set_group_member(eng.id, bob.id, true).await.unwrap());
    assert!(tx.set_group_member(eng.id, ann.id, true).await.unwrap());
    tx.commit().await.unwrap();

    let names = |rows: Vec<GroupRow>| rows.into_iter().map(|g| g.name).collect::<Vec<_>>();
    let listed = store
        .list_groups(ws.id, None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|g| (g.name.as_str(), g.member_count))
            .collect::<Vec<_>>(),
        [("Engineering", 2), ("Ops", 0)]
    );
    let bobs = store
        .list_groups(ws.id, Some(bob.id), None, None, 10)
        .await
        .unwrap();
    assert_eq!(names(bobs), ["Engineering"]);
    let searched = store
        .list_groups(ws.id, None, Some("OP"), None, 10)
        .await
        .unwrap();
    assert_eq!(names(searched), ["Ops"]);
    let page = store
        .list_groups(ws.id, None, None, Some(("Engineering".into(), eng.id)), 10)
        .await
        .unwrap();
    assert_eq!(names(page), ["Ops"]);
    assert_eq!(
        store
            .workspace_scope(ws.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .2,
        [eng.id]
    );

    // Members of a group, by name, in pages.
    let members = store.list_group_members(eng.id, None, 1).await.unwrap();
    assert_eq!(members[0].0.id, ann.id);
    let (last, _) = &members[0];
    let more = store
        .list_group_members(
            eng.id,
            Some((last.name.clone(), last.email.clone(), last.id)),
            10,
        )
        .await
        .unwrap();
    assert_eq!(more.iter().map(|(u, _)| u.id).collect::<Vec<_>>(), [bob.id]);

    // Updates and deletion.
    let updated = store
        .update_group(ops.id, Some("Operations"), Some("On call"), &audit())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        ("Operations", "On call")
    );
    assert!(matches!(
        store
            .update_group(ops.id, Some("Engineering"), None, &audit())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let before = store.current_revision().await.unwrap();
    let revision = store.delete_group(eng.id, &audit()).await.unwrap().unwrap();
    assert!(revision > before);
    assert!(store.group(eng.id).await.unwrap().is_none());
    assert!(store.group_ids(ws.id, bob.id).await.unwrap().is_empty());
    assert!(
        store
            .delete_group(eng.id, &audit())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.group(elsewhere.id).await.unwrap().is_some());
}

async fn session_of(
    store: &dyn Store,
    user: &UserRow,
    workspace: Option<sentinel::model::WorkspaceId>,
) -> SessionRow {
    let now = Utc::now();
    let session = SessionRow {
        id: sentinel::model::SessionId::random(),
        user_id: user.id,
        workspace_id: workspace,
        client_app_id: None,
        provider: "test".into(),
        amr: "pwd".into(),
        user_agent: String::new(),
        client_address: String::new(),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(1),
        revoked_at: None,
        revoked_reason: None,
    };
    store
        .create_session(&session, Uuid::new_v4().as_bytes())
        .await
        .unwrap();
    session
}

async fn revocation_log_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user(store.as_ref(), "Ann", "ann@example.com").await;
    let bob = user(store.as_ref(), "Bob", "bob@example.com").await;
    let ws = workspace(store.as_ref(), "Acme", "acme", &ann).await;
    assert_eq!(store.revocation_bounds().await.unwrap(), (0, 0));
    let ann_unscoped = session_of(store.as_ref(), &ann, None).await;
    let ann_in_ws = session_of(store.as_ref(), &ann, Some(ws.id)).await;
    let bob_in_ws = session_of(store.as_ref(), &bob, Some(ws.id)).await;
    let now = Utc::now();
    let expire = now + Duration::minutes(15);

    // One member in one workspace: their session there, plus an entry covering their tokens
    // for that workspace.
    let member = store
        .revoke_sessions(
            RevokeScope::Member {
                workspace_id: ws.id,
                user_id: ann.id,
            },
            "role_changed",
            now,
            expire,
            Some(&audit()),
        )
        .await
        .unwrap();
    assert_eq!(member.len(), 2);
    assert_eq!(member[0].session_id, Some(ann_in_ws.id));
    assert_eq!(
        (
            member[1].session_id,
            member[1].user_id,
            member[1].workspace_id
        ),
        (None, ann.id, Some(ws.id))
    );
    assert!(
        store
            .session_by_id(ann_unscoped.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none(),
        "a session elsewhere stays"
    );
    // A user: every live session left, plus a user-wide entry; revoked ones are not repeated.
    let user_wide = store
        .revoke_sessions(RevokeScope::User(ann.id), "logout_all", now, expire, None)
        .await
        .unwrap();
    assert_eq!(
        user_wide.iter().map(|r| r.session_id).collect::<Vec<_>>(),
        [Some(ann_unscoped.id), None]
    );
    assert_eq!(user_wide[1].workspace_id, None);
    // A session already revoked: nothing new.
    let again = store
        .revoke_sessions(
            RevokeScope::Session(ann_in_ws.id),
            "logout",
            now,
            expire,
            None,
        )
        .await
        .unwrap();
    assert!(again.is_empty());
    let session = store.session_by_id(ann_in_ws.id).await.unwrap().unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("role_changed"));
    // A workspace: its remaining sessions, plus a workspace-wide entry.
    let workspace_wide = store
        .revoke_sessions(RevokeScope::Workspace(ws.id), "deleted", now, expire, None)
        .await
        .unwrap();
    assert_eq!(
        workspace_wide
            .iter()
            .map(|r| (r.session_id, r.workspace_id))
            .collect::<Vec<_>>(),
        [(Some(bob_in_ws.id), None), (None, Some(ws.id))]
    );

    // The log: gapless revisions in order, read in pages from any point.
    let (low, high) = store.revocation_bounds().await.unwrap();
    assert_eq!(high - low + 1, 6);
    let all = store.revocations_since(0, 100).await.unwrap();
    let revisions: Vec<i64> = all.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, (low..=high).collect::<Vec<_>>());
    let tail = store.revocations_since(low + 3, 2).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [low + 4, low + 5]
    );
    assert!(
        all.iter()
            .all(|r| r.expires_at.timestamp() == expire.timestamp())
    );
}
