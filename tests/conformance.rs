//! One conformance suite per storage trait and for the cache, run against every implementation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{Backend, TestDatabase};
use sentinel::cache::Cache;
use sentinel::cache::memory::MemoryCache;
use sentinel::cache::redis::RedisCache;
use sentinel::store::{self, KeyStatus, NewSigningKey, Store};

both_backends!(key_store_conformance, cache_conformance);

async fn fresh_store(backend: Backend) -> (Arc<dyn Store>, TestDatabase) {
    let db = TestDatabase::create(backend).await;
    let store = store::connect(&db.config()).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

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
    cache
        .set("a", b"one", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(cache.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get("a").await.unwrap(), None, "expired");

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

    // Fixed-window counters.
    let window = Duration::from_millis(500);
    for expected in 1..=3 {
        let count = cache.hit("rl", window).await.unwrap();
        assert_eq!(count.count, expected);
        assert!(count.resets_in <= window);
    }
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        cache.hit("rl", window).await.unwrap().count,
        1,
        "window reset"
    );

    // Pub/sub reaches every subscriber of the channel and only them.
    let mut first = cache.subscribe("nudges").await.unwrap();
    let mut second = cache.subscribe("nudges").await.unwrap();
    let mut other = cache.subscribe("elsewhere").await.unwrap();
    // Redis subscriptions are confirmed asynchronously; publish until the message arrives.
    let received = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            cache.publish("nudges", b"rev:42").await.unwrap();
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), first.next()).await
            {
                return message;
            }
        }
    })
    .await
    .expect("a published message arrives");
    assert_eq!(received, b"rev:42");
    let seen = tokio::time::timeout(Duration::from_secs(2), second.next())
        .await
        .expect("second subscriber receives")
        .unwrap();
    assert_eq!(seen, b"rev:42");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.next())
            .await
            .is_err(),
        "other channels receive nothing"
    );
}
