//! One conformance suite per storage trait and for the cache, run against every implementation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::wait::{eventually, within};
use common::{Backend, fresh_store};
use sentinel::audit::{Actor, event};
use sentinel::cache::Cache;
use sentinel::cache::memory::MemoryCache;
use sentinel::cache::redis::RedisCache;
use sentinel::store::{
    self, ClientAppChange, ClientAppRow, InvitationRow, KeyStatus, NewSigningKey, UserRow,
    WorkspaceRow,
};
use uuid::Uuid;

both_backends!(
    key_store_conformance,
    cache_conformance,
    client_app_redirect_index_conformance,
    invitation_store_conformance,
    identity_links_conformance,
);

fn key(kid: &str) -> NewSigningKey {
    NewSigningKey {
        kid: kid.to_string(),
        algorithm: "RS256".into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        private_key_encrypted: vec![1, 2, 3, 4],
        created_at: Utc::now(),
    }
}

async fn key_store_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    assert!(store.active_key().await.unwrap().is_none());
    assert!(store.published_keys(Utc::now()).await.unwrap().is_empty());

    // Eight concurrent first starts: exactly one key becomes active.
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_key_if_none_active(&key(&format!("k{i}")))
                    .await
            })
        })
        .collect();
    let mut inserted = 0;
    for attempt in attempts {
        if attempt.await.unwrap().unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);

    let active = store.active_key().await.unwrap().expect("an active key");
    assert_eq!(active.status, KeyStatus::Active);
    assert_eq!(active.private_key_encrypted, vec![1, 2, 3, 4]);
    assert!(active.retire_at.is_none());
    let published = store.published_keys(Utc::now()).await.unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kid, active.kid);
    assert!(!store.insert_key_if_none_active(&key("late")).await.unwrap());
    store.ping().await.unwrap();
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    store.close().await;
}

async fn cache_for(backend: Backend) -> Arc<dyn Cache> {
    match backend {
        Backend::Embedded => Arc::new(MemoryCache::new()),
        Backend::Clustered => {
            let prefix = format!("sentinel_test:{}", uuid::Uuid::new_v4().simple());
            Arc::new(
                RedisCache::connect(&common::redis_url(), &prefix)
                    .await
                    .expect("redis"),
            )
        }
    }
}

async fn cache_conformance(backend: Backend) {
    let cache = cache_for(backend).await;
    cache.ping().await.unwrap();

    // Values with a TTL.
    assert_eq!(cache.get("missing").await.unwrap(), None);
    // A value lives for its TTL (long enough that no slow run outlives it)…
    cache
        .set("a", b"one", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(cache.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    // …and is gone after it.
    cache
        .set("brief", b"gone", Duration::from_millis(200))
        .await
        .unwrap();
    eventually("a value past its TTL is gone", || async {
        cache.get("brief").await.unwrap().is_none()
    })
    .await;
    assert_eq!(cache.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));

    // delete says whether something was there.
    cache
        .set("b", b"two", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(cache.delete("b").await.unwrap());
    assert!(!cache.delete("b").await.unwrap());

    // take: of concurrent callers exactly one gets the value.
    cache
        .set("code", b"once", Duration::from_secs(5))
        .await
        .unwrap();
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.take("code").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        if let Some(value) = taker.await.unwrap() {
            assert_eq!(value, b"once");
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    // Fixed-window counters count inside a window (a long one)…
    let window = Duration::from_secs(600);
    for expected in 1..=3 {
        let count = cache.hit("rl", window).await.unwrap();
        assert_eq!(count.count, expected);
        assert!(count.resets_in <= window);
    }
    // …and start again from one in the next (a short one, hit until it turns over).
    let brief = Duration::from_millis(200);
    assert_eq!(cache.hit("rl-brief", brief).await.unwrap().count, 1);
    eventually("a fixed window resets", || async {
        cache.hit("rl-brief", brief).await.unwrap().count == 1
    })
    .await;
    assert_eq!(cache.hit("rl", window).await.unwrap().count, 4);

    // Pub/sub reaches every subscriber of the channel and only them.
    let mut first = cache.subscribe("nudges").await.unwrap();
    let mut second = cache.subscribe("nudges").await.unwrap();
    let mut other = cache.subscribe("elsewhere").await.unwrap();
    // Redis subscriptions are confirmed asynchronously; publish until the message arrives.
    let received = within("a published message arrives", async {
        loop {
            cache.publish("nudges", b"rev:42").await.unwrap();
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), first.next()).await
            {
                return message;
            }
        }
    })
    .await;
    assert_eq!(received, b"rev:42");
    let seen = within("the second subscriber receives", second.next())
        .await
        .unwrap();
    assert_eq!(seen, b"rev:42");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err(),
        "other channels receive nothing"
    );
}

fn audit_row() -> sentinel::store::AuditRow {
    event(
        "test",
        &Actor::default(),
        "test",
        "x",
        serde_json::json!({}),
    )
}

fn client_app(id: Uuid, uris: &[&str]) -> ClientAppRow {
    let now = Utc::now();
    ClientAppRow {
        id,
        name: format!("app {id}"),
        redirect_uris: serde_json::to_string(uris).unwrap(),
        services: "[]".into(),
        is_active: true,
        created_at: now,
        updated_at: now,
    }
}

/// Redirect URIs are found by index among any number of client apps (the login used to look at
/// the first 1000 only), follow updates and deactivation, and go with their app.
async fn client_app_redirect_index_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    for i in 0..1100u32 {
        let id = Uuid::from_u128(u128::from(i) + 1);
        let uri = format!("https://app{i}.example.com/cb");
        store
            .insert_client_app(&client_app(id, &[uri.as_str()]), &audit_row())
            .await
            .unwrap();
    }
    // The app sorting last by id.
    let last = Uuid::from_u128(u128::MAX);
    store
        .insert_client_app(
            &client_app(
                last,
                &["https://last.example.com/cb", "https://last.example.com/cb"],
            ),
            &audit_row(),
        )
        .await
        .unwrap();
    let find = |uri: &'static str| {
        let store = store.clone();
        async move { store.client_app_for_redirect(uri).await.unwrap() }
    };
    assert_eq!(find("https://last.example.com/cb").await, Some(last));
    assert_eq!(
        find("https://app1099.example.com/cb").await,
        Some(Uuid::from_u128(1100))
    );
    assert_eq!(
        find("https://last.example.com/cb/").await,
        None,
        "exact match"
    );
    assert_eq!(find("https://nowhere.example.com/cb").await, None);

    // An update replaces the indexed URIs.
    let change = ClientAppChange {
        redirect_uris: Some(r#"["https://new.example.com/cb"]"#.into()),
        ..Default::default()
    };
    store
        .update_client_app(last, &change, &audit_row())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(find("https://last.example.com/cb").await, None);
    assert_eq!(find("https://new.example.com/cb").await, Some(last));
    // A deactivated app is not found; a reactivated one is.
    for (active, expected) in [(false, None), (true, Some(last))] {
        let change = ClientAppChange {
            is_active: Some(active),
            ..Default::default()
        };
        store
            .update_client_app(last, &change, &audit_row())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(find("https://new.example.com/cb").await, expected);
    }
    // A deleted app's URIs go with it.
    assert!(store.delete_client_app(last, &audit_row()).await.unwrap());
    assert_eq!(find("https://new.example.com/cb").await, None);
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

fn invitation(
    workspace_id: sentinel::model::WorkspaceId,
    email: &str,
    user_id: Option<sentinel::model::UserId>,
) -> InvitationRow {
    let now = Utc::now();
    InvitationRow {
        id: Uuid::new_v4(),
        workspace_id,
        email: email.into(),
        user_id,
        role: sentinel::model::WorkspaceRole::Editor,
        invited_by: None,
        created_at: now,
        expires_at: now + chrono::Duration::days(30),
    }
}

/// Invitations reach their invitee by id, or by email only once it is verified; accepting
/// makes one membership with its change in the log; lapsed ones are hidden and pruned.
async fn invitation_store_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let now = Utc::now();
    let workspace = WorkspaceRow {
        id: sentinel::model::WorkspaceId::random(),
        name: "Acme".into(),
        slug: "acme".into(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    store.insert_workspace(&workspace).await.unwrap();
    let verified = user("vera@example.com");
    let unverified = user("una@example.com");
    store.insert_user(&verified, true).await.unwrap();
    store.insert_user(&unverified, false).await.unwrap();
    assert_eq!(
        store.verified_email(verified.id).await.unwrap().as_deref(),
        Some("vera@example.com")
    );
    assert_eq!(store.verified_email(unverified.id).await.unwrap(), None);

    let to_vera = invitation(workspace.id, "vera@example.com", None);
    let to_una = invitation(workspace.id, "una@example.com", None);
    store
        .create_invitation(&to_vera, &audit_row())
        .await
        .unwrap();
    store
        .create_invitation(&to_una, &audit_row())
        .await
        .unwrap();
    // One live invitation per email and workspace.
    let again = invitation(workspace.id, "vera@example.com", None);
    assert!(matches!(
        store.create_invitation(&again, &audit_row()).await,
        Err(store::StoreError::Conflict(_))
    ));
    let mine = |id: sentinel::model::UserId| {
        let store = store.clone();
        async move {
            store
                .invitations_for(id, Utc::now(), None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.invitation.id, p.workspace_slug))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(mine(verified.id).await, [(to_vera.id, "acme".to_string())]);
    assert!(mine(unverified.id).await.is_empty(), "unverified email");
    store.mark_email_verified(unverified.id).await.unwrap();
    assert_eq!(mine(unverified.id).await, [(to_una.id, "acme".to_string())]);
    // By user id: reaches that user whatever their email.
    let other = user("otto@example.com");
    store.insert_user(&other, false).await.unwrap();
    let to_otto = invitation(workspace.id, "otto@example.com", Some(other.id));
    store
        .create_invitation(&to_otto, &audit_row())
        .await
        .unwrap();
    assert_eq!(mine(other.id).await, [(to_otto.id, "acme".to_string())]);
    let listed = store
        .workspace_invitations(workspace.id, Utc::now(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].user_id, Some(other.id));

    // Taken inside the changelog transaction (the domain's accept): once.
    let before = store.current_revision().await.unwrap();
    let mut tx = store.begin_changelog().await.unwrap();
    assert_eq!(
        tx.take_invitation(to_vera.id).await.unwrap(),
        Some((workspace.id, sentinel::model::WorkspaceRole::Editor))
    );
    tx.add_member(
        workspace.id,
        verified.id,
        sentinel::model::WorkspaceRole::Editor,
    )
    .await
    .unwrap();
    let change = sentinel::model::Change::MemberSet {
        workspace_id: workspace.id,
        user_id: verified.id,
        role: sentinel::model::WorkspaceRole::Editor,
        added: true,
    };
    let revision = tx.record(&change, &audit_row()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(revision > before);
    assert_eq!(
        store
            .membership_role(workspace.id, verified.id)
            .await
            .unwrap(),
        Some(sentinel::model::WorkspaceRole::Editor)
    );
    let mut tx = store.begin_changelog().await.unwrap();
    assert_eq!(tx.take_invitation(to_vera.id).await.unwrap(), None);
    drop(tx);
    // A second invitation to a member: taken, and nothing else changes.
    let to_vera_again = invitation(workspace.id, "vera@example.com", None);
    store
        .create_invitation(&to_vera_again, &audit_row())
        .await
        .unwrap();
    let mut tx = store.begin_changelog().await.unwrap();
    assert!(
        tx.take_invitation(to_vera_again.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tx.role_of(workspace.id, verified.id).await.unwrap(),
        Some(sentinel::model::WorkspaceRole::Editor)
    );
    tx.commit().await.unwrap();
    assert!(store.invitation(to_vera_again.id).await.unwrap().is_none());
    assert_eq!(store.current_revision().await.unwrap(), revision);
    // Declining removes.
    assert!(
        store
            .delete_invitation(to_otto.id, &audit_row())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_invitation(to_otto.id, &audit_row())
            .await
            .unwrap()
    );

    // Lapsed: hidden from both lists, replaced by a new invitation, pruned.
    let mut lapsed = invitation(workspace.id, "lapsed@example.com", None);
    lapsed.created_at = now - chrono::Duration::days(40);
    lapsed.expires_at = now - chrono::Duration::days(10);
    store
        .create_invitation(&lapsed, &audit_row())
        .await
        .unwrap();
    let lapsed_user = user("lapsed@example.com");
    store.insert_user(&lapsed_user, true).await.unwrap();
    assert!(mine(lapsed_user.id).await.is_empty());
    assert!(
        store
            .workspace_invitations(workspace.id, Utc::now(), None, 10)
            .await
            .unwrap()
            .iter()
            .all(|i| i.id != lapsed.id)
    );
    assert!(store.prune(Utc::now()).await.unwrap() >= 1);
    assert!(store.invitation(lapsed.id).await.unwrap().is_none());
    assert!(
        store.invitation(to_una.id).await.unwrap().is_some(),
        "live ones stay"
    );
}

async fn identity_links_conformance(backend: Backend) {
    let (store, _db) = fresh_store(backend).await;
    let ann = user("ann@example.com");
    let bob = user("bob@example.com");
    store.insert_user(&ann, true).await.unwrap();
    store.insert_user(&bob, true).await.unwrap();
    assert!(store.identities_of(ann.id).await.unwrap().is_empty());
    assert!(
        store
            .link_identity("google", "g-1", ann.id, "ann@example.com", &audit_row())
            .await
            .unwrap()
    );
    assert!(
        store
            .link_identity("github", "42", ann.id, "ann@users.example", &audit_row())
            .await
            .unwrap()
    );
    store
        .link_identity("google", "g-2", bob.id, "bob@example.com", &audit_row())
        .await
        .unwrap();
    // A later sign-in through a linked identity is no new link.
    assert!(
        !store
            .link_identity("google", "g-1", ann.id, "ann@example.com", &audit_row())
            .await
            .unwrap()
    );
    let links = store.identities_of(ann.id).await.unwrap();
    let mut found: Vec<(&str, &str, &str)> = links
        .iter()
        .map(|l| (l.provider.as_str(), l.subject.as_str(), l.email.as_str()))
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            ("github", "42", "ann@users.example"),
            ("google", "g-1", "ann@example.com")
        ]
    );
    assert!(links.iter().all(|l| l.last_login_at >= l.created_at));
    assert_eq!(store.identities_of(bob.id).await.unwrap().len(), 1);
    assert!(
        store
            .identities_of(sentinel::model::UserId::random())
            .await
            .unwrap()
            .is_empty()
    );
}
