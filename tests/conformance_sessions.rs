//! Conformance of the session store, run against every store: what consuming a refresh token
//! reports (rotated, replayed with when, invalid), that a tolerated replay continues the family,
//! and that a revoked or ended session yields nothing and changes nothing.

mod common;

use chrono::{Duration, Utc};
use common::{Backend, fresh_store};
use sentinel::audit::{Actor, event};
use sentinel::store::{Consumed, RevokeScope, SessionRow, Store, UserRow, WorkspaceRow};
use uuid::Uuid;

both_backends!(
    consuming_an_unused_token_rotates_it_conformance,
    consuming_a_rotated_token_reports_when_conformance,
    a_dead_session_consumes_nothing_conformance,
    sessions_list_newest_first_by_keyset_conformance,
);

async fn user(store: &dyn Store) -> UserRow {
    let now = Utc::now();
    let user = UserRow {
        id: sentinel::model::UserId::random(),
        email: format!("{}@example.com", Uuid::new_v4().simple()),
        name: "Ada".into(),
        avatar_url: String::new(),
        is_active: true,
        is_admin: false,
        created_at: now,
        updated_at: now,
    };
    store.insert_user(&user, true).await.unwrap();
    user
}

/// A workspace owned by `owner`; its id.
async fn workspace_of(store: &dyn Store, owner: &UserRow) -> sentinel::model::WorkspaceId {
    let now = Utc::now();
    let workspace = WorkspaceRow {
        id: sentinel::model::WorkspaceId::random(),
        name: "Acme".into(),
        slug: format!("acme-{}", Uuid::new_v4().simple()),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    let audit = event(
        "workspace.created",
        &Actor::default(),
        "workspace",
        workspace.id,
        serde_json::json!({}),
    );
    store
        .create_workspace(&workspace, owner.id, &audit)
        .await
        .unwrap();
    workspace.id
}

/// A live session of `user` created `age` ago, lasting a day, with `hash` as its first token.
async fn session(store: &dyn Store, user: &UserRow, hash: &[u8], age: Duration) -> SessionRow {
    let created = Utc::now() - age;
    let session = SessionRow {
        id: sentinel::model::SessionId::random(),
        user_id: user.id,
        workspace_id: None,
        client_app_id: None,
        provider: "test".into(),
        amr: "pwd".into(),
        user_agent: "conformance".into(),
        client_address: "127.0.0.1".into(),
        created_at: created,
        last_used_at: created,
        expires_at: created + Duration::days(1),
        revoked_at: None,
        revoked_reason: None,
    };
    store.create_session(&session, hash).await.unwrap();
    session
}

/// Revokes one session now.
async fn revoke(store: &dyn Store, session: sentinel::model::SessionId) {
    let now = Utc::now();
    store
        .revoke_sessions(
            RevokeScope::Session(session),
            "test",
            now,
            now + Duration::minutes(15),
            None,
        )
        .await
        .unwrap();
}

async fn consuming_an_unused_token_rotates_it_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ada = user(store.as_ref()).await;
    let first = session(store.as_ref(), &ada, b"first", Duration::minutes(5)).await;
    let now = Utc::now();

    let outcome = store
        .consume_refresh(b"first", b"second", None, now)
        .await
        .unwrap();
    let Consumed::Rotated(rotated) = outcome else {
        panic!("an unused token of a live session rotates: {outcome:?}");
    };
    assert_eq!(rotated.id, first.id);
    assert_eq!(rotated.last_used_at.timestamp(), now.timestamp());
    assert_eq!(rotated.expires_at.timestamp(), first.expires_at.timestamp());

    // The successor belongs to the same family and is itself unused.
    let context = store.refresh_context(b"second").await.unwrap().unwrap();
    assert_eq!(context.session.id, first.id);
    assert_eq!(context.user.id, ada.id);
    assert!(context.rotated_at.is_none());
    let old = store.refresh_context(b"first").await.unwrap().unwrap();
    assert!(old.rotated_at.is_some(), "the consumed token is marked");

    // A workspace given with the refresh re-scopes the session.
    let workspace = workspace_of(store.as_ref(), &ada).await;
    let outcome = store
        .consume_refresh(b"second", b"third", Some(workspace), Utc::now())
        .await
        .unwrap();
    let Consumed::Rotated(rescoped) = outcome else {
        panic!("the successor rotates: {outcome:?}");
    };
    assert_eq!(rescoped.workspace_id, Some(workspace));

    // Unknown tokens are invalid and leave nothing behind.
    let outcome = store
        .consume_refresh(b"never-issued", b"x", None, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Consumed::Invalid);
    assert!(store.refresh_context(b"x").await.unwrap().is_none());
}

async fn consuming_a_rotated_token_reports_when_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ada = user(store.as_ref()).await;
    let first = session(store.as_ref(), &ada, b"first", Duration::minutes(5)).await;
    let rotated_at = Utc::now();
    store
        .consume_refresh(b"first", b"second", None, rotated_at)
        .await
        .unwrap();

    let outcome = store
        .consume_refresh(b"first", b"retry", None, rotated_at + Duration::seconds(2))
        .await
        .unwrap();
    let Consumed::Replayed {
        session_id,
        user_id,
        workspace_id,
        rotated_at: when,
    } = outcome
    else {
        panic!("a rotated token is reported as a replay: {outcome:?}");
    };
    assert_eq!(
        (session_id, user_id, workspace_id),
        (first.id, ada.id, None)
    );
    assert_eq!(when.timestamp(), rotated_at.timestamp());
    assert!(
        store.refresh_context(b"retry").await.unwrap().is_none(),
        "a replay writes nothing by itself"
    );

    // The token service tolerates it: the family goes on with one more token.
    let continued = store
        .continue_session(first.id, b"retry", None, Utc::now())
        .await
        .unwrap()
        .expect("a live session continues");
    assert_eq!(continued.id, first.id);
    let context = store.refresh_context(b"retry").await.unwrap().unwrap();
    assert_eq!(context.session.id, first.id);
    assert!(context.rotated_at.is_none());
}

async fn a_dead_session_consumes_nothing_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ada = user(store.as_ref()).await;
    let revoked = session(store.as_ref(), &ada, b"revoked", Duration::minutes(5)).await;
    revoke(store.as_ref(), revoked.id).await;
    let outcome = store
        .consume_refresh(b"revoked", b"after", None, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Consumed::Invalid);
    let context = store.refresh_context(b"revoked").await.unwrap().unwrap();
    assert!(context.rotated_at.is_none(), "the token was not consumed");
    assert!(store.refresh_context(b"after").await.unwrap().is_none());
    assert!(
        store
            .continue_session(revoked.id, b"after", None, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.refresh_context(b"after").await.unwrap().is_none());

    // A session past its end: the same.
    let ended = session(store.as_ref(), &ada, b"ended", Duration::days(2)).await;
    let outcome = store
        .consume_refresh(b"ended", b"later", None, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Consumed::Invalid);
    assert!(
        store
            .continue_session(ended.id, b"later", None, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.refresh_context(b"later").await.unwrap().is_none());
}

async fn sessions_list_newest_first_by_keyset_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ada = user(store.as_ref()).await;
    let mut made = Vec::new();
    for i in 0..5 {
        let hash = format!("token-{i}");
        made.push(
            session(
                store.as_ref(),
                &ada,
                hash.as_bytes(),
                Duration::minutes(10 - i),
            )
            .await,
        );
    }
    revoke(store.as_ref(), made[4].id).await;

    let live = store
        .list_sessions(ada.id, false, Utc::now(), None, 10)
        .await
        .unwrap();
    let ids: Vec<sentinel::model::SessionId> = live.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![made[3].id, made[2].id, made[1].id, made[0].id]);

    let all = store
        .list_sessions(ada.id, true, Utc::now(), None, 2)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![made[4].id, made[3].id]
    );
    assert!(all[0].revoked_at.is_some());
    let last = all.last().unwrap();
    let rest = store
        .list_sessions(
            ada.id,
            true,
            Utc::now(),
            Some((last.created_at, last.id)),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![made[2].id, made[1].id, made[0].id]
    );
}
