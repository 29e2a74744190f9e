//! The resource rules, decided on facts read in the write's transaction, against an in-memory
//! SQLite store: a refused write changes nothing.

use std::sync::Arc;

use super::*;
use crate::audit;
use crate::cache::memory::MemoryCache;
use crate::config::Config;
use crate::model::Actor;
use crate::model::{Permission, Visibility, WorkspaceRole};
use crate::model::{UserId, WorkspaceId};
use crate::store::{UserRow, WorkspaceRow};

pub(super) struct Fixture {
    pub resources: Resources,
    pub store: Arc<dyn Store>,
    pub workspace: WorkspaceId,
    pub owner: UserId,
    pub editor: UserId,
    pub outsider: UserId,
}

fn user(email: &str) -> UserRow {
    let now = crate::model::now();
    UserRow {
        id: UserId::random(),
        email: email.into(),
        name: email.into(),
        avatar_url: String::new(),
        is_active: true,
        is_admin: false,
        created_at: now,
        updated_at: now,
    }
}

pub(super) async fn fixture() -> Fixture {
    let config = Config {
        database_url: Some("sqlite::memory:".into()),
        // One connection: every connection of an in-memory database is a database of its own.
        database_max_connections: 1,
        ..Config::default()
    };
    let store = crate::store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    let (owner, editor, outsider) = (user("o@x.io"), user("e@x.io"), user("z@x.io"));
    for u in [&owner, &editor, &outsider] {
        store.insert_user(u, true).await.unwrap();
    }
    let now = crate::model::now();
    let workspace = WorkspaceRow {
        id: WorkspaceId::random(),
        name: "Acme".into(),
        slug: "acme".into(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    let event = audit::event(
        "test",
        &Actor::default(),
        "test",
        "x",
        serde_json::json!({}),
    );
    store
        .create_workspace(&workspace, owner.id, &event)
        .await
        .unwrap();
    store
        .upsert_membership(workspace.id, editor.id, WorkspaceRole::Editor, now)
        .await
        .unwrap();
    let cache = Arc::new(MemoryCache::new());
    let engine = Arc::new(
        Engine::load(store.clone(), cache, Arc::new(crate::model::SystemClock))
            .await
            .unwrap(),
    );
    Fixture {
        resources: Resources::new(store.clone(), engine),
        store,
        workspace: workspace.id,
        owner: owner.id,
        editor: editor.id,
        outsider: outsider.id,
    }
}

pub(super) fn doc(workspace: WorkspaceId, id: &str, parent: Option<&str>) -> ResourceState {
    ResourceState {
        service_name: "docs".into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
        workspace_id: workspace,
        owner_id: None,
        visibility: Visibility::Private,
        parent: parent.map(|p| ("doc".to_string(), p.to_string())),
    }
}

pub(super) fn key(id: &str) -> ResourceKey {
    ResourceKey {
        service_name: "docs".into(),
        resource_type: "doc".into(),
        resource_id: id.into(),
    }
}

/// Registers `state` as the service itself.
async fn register(
    f: &Fixture,
    state: ResourceState,
    upsert: bool,
) -> Result<Written<(ResourceRow, bool)>, Error> {
    f.resources
        .register(&Caller::default(), &state, upsert)
        .await
}

fn precondition_says(result: Result<impl std::fmt::Debug, Error>, words: &str) {
    match result {
        Err(Error::FailedPrecondition(reason)) => assert!(reason.contains(words), "{reason}"),
        other => panic!("expected FAILED_PRECONDITION ({words}), got {other:?}"),
    }
}

#[tokio::test]
async fn parents_stay_in_the_workspace_and_never_form_a_cycle() {
    let f = fixture().await;
    let a = register(&f, doc(f.workspace, "a", None), false);
    assert!(a.await.unwrap().value.1, "created");
    let b = register(&f, doc(f.workspace, "b", Some("a")), false);
    b.await.unwrap();
    let c = register(&f, doc(f.workspace, "c", Some("b")), false);
    let before = c.await.unwrap().revision;

    // a → c would close a → c → b → a.
    let cycle = register(&f, doc(f.workspace, "a", Some("c")), true);
    precondition_says(cycle.await, "cycle");
    let stored = f.store.resource(&key("a")).await.unwrap().unwrap();
    assert_eq!(
        stored.state.parent, None,
        "the refused write changed nothing"
    );
    assert_eq!(f.store.current_revision().await.unwrap(), before);

    let missing = register(&f, doc(f.workspace, "d", Some("nope")), false);
    assert!(matches!(missing.await, Err(Error::NotFound(what)) if what == "parent resource"));
    let elsewhere = register(&f, doc(WorkspaceId::random(), "d", None), false);
    assert!(matches!(elsewhere.await, Err(Error::NotFound(what)) if what == "workspace"));
    let mut owned = doc(f.workspace, "d", None);
    owned.owner_id = Some(f.outsider);
    let outsider = register(&f, owned, false);
    precondition_says(outsider.await, "owner_id is not a member");

    // Unchanged: not created, the current revision.
    let again = register(&f, doc(f.workspace, "c", Some("b")), true);
    let again = again.await.unwrap();
    assert_eq!((again.value.1, again.revision), (false, before));
}

/// Shares `doc/a` for viewing, as `user` acting in `workspace` (`None`: the service itself).
async fn share(
    f: &Fixture,
    user: Option<(UserId, WorkspaceId)>,
    grantee: GranteeRef,
) -> Result<Written<(GrantRow, bool)>, Error> {
    let sharer = Caller {
        user: user.map(|(u, _)| u),
        token_workspace: user.map(|(_, w)| w),
        ..Caller::default()
    };
    let grant = NewGrant {
        grantee,
        permission: Permission::View,
        expires_at: None,
    };
    f.resources.share(&sharer, &key("a"), &grant).await
}

#[tokio::test]
async fn sharing_follows_who_may_share_and_who_may_receive() {
    let f = fixture().await;
    let mut state = doc(f.workspace, "a", None);
    state.owner_id = Some(f.owner);
    register(&f, state, false).await.unwrap();
    let owner = Some((f.owner, f.workspace));
    let before = f.store.current_revision().await.unwrap();

    let to_outsider = share(&f, owner, GranteeRef::User(f.outsider)).await;
    precondition_says(to_outsider, "not a member");
    let by_editor = share(
        &f,
        Some((f.editor, f.workspace)),
        GranteeRef::User(f.editor),
    )
    .await;
    assert!(
        matches!(by_editor, Err(Error::PermissionDenied(_))),
        "{by_editor:?}"
    );
    let elsewhere = share(
        &f,
        Some((f.owner, WorkspaceId::random())),
        GranteeRef::User(f.editor),
    )
    .await;
    assert!(
        matches!(elsewhere, Err(Error::PermissionDenied(_))),
        "{elsewhere:?}"
    );
    let no_group = share(
        &f,
        owner,
        GranteeRef::Group(crate::model::GroupId::random()),
    )
    .await;
    assert!(
        matches!(&no_group, Err(Error::NotFound(what)) if what == "group"),
        "{no_group:?}"
    );
    assert_eq!(
        f.store.current_revision().await.unwrap(),
        before,
        "nothing was written"
    );

    let shared = share(&f, owner, GranteeRef::User(f.editor)).await.unwrap();
    assert!(shared.value.1 && shared.revision > before);
    assert_eq!(shared.value.0.granted_by, Some(f.owner));
    let again = share(&f, None, GranteeRef::User(f.editor)).await.unwrap();
    assert_eq!((again.value.1, again.revision), (false, shared.revision));

    let sharer = Caller {
        user: Some(f.owner),
        token_workspace: Some(f.workspace),
        ..Caller::default()
    };
    let removed = f
        .resources
        .unshare(&sharer, &key("a"), GranteeRef::User(f.editor), None)
        .await
        .unwrap();
    assert!(removed.value && removed.revision > shared.revision);
    let missing = f
        .resources
        .delete(&sharer, &key("nope"), true)
        .await
        .unwrap();
    assert!(!missing.value);
}

#[tokio::test]
async fn a_replica_behind_the_pruned_changelog_rebuilds_from_a_snapshot() {
    let f = fixture().await;
    register(&f, doc(f.workspace, "a", None), false)
        .await
        .unwrap();
    // A replica that stops following here.
    let clock = Arc::new(crate::model::AdjustableClock::default());
    let lagging = Engine::load(f.store.clone(), Arc::new(MemoryCache::new()), clock.clone())
        .await
        .unwrap();
    let behind = lagging.revision();
    let mut last = behind;
    for id in ["b", "c", "d"] {
        last = register(&f, doc(f.workspace, id, None), false)
            .await
            .unwrap()
            .revision;
    }
    // Two hours later, an hour's retention keeps only the newest entry.
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    let pruned = lagging
        .prune_changelog(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(pruned >= 3, "{pruned}");
    assert_eq!(f.store.changelog_horizon().await.unwrap().0, last.0 - 1);
    assert!(f.store.changelog_horizon().await.unwrap() > behind);

    lagging.catch_up().await.unwrap();
    assert_eq!(lagging.revision(), last);
    assert_eq!(
        lagging.rebuilds.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        lagging.read().counts(),
        (4, 0),
        "every resource, none skipped"
    );
    // Pruning again keeps the newest entry: the current revision stands.
    lagging
        .prune_changelog(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(f.store.current_revision().await.unwrap(), last);
}
