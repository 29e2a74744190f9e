//! The in-process cache with a million live entries: a rate-limit `hit` on an existing counter,
//! a `hit` that opens a new window, and a `set` of a login state. Each stays O(log n), with no
//! scan of the entries. Figures are kept in docs/BENCHMARKS.md.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sentinel::cache::Cache;
use sentinel::cache::memory::MemoryCache;

const LIVE: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let cache = MemoryCache::new();
    runtime.block_on(async {
        for i in 0..LIVE / 2 {
            cache
                .set(&format!("login:{i}"), b"state", Duration::from_secs(3600))
                .await
                .expect("set");
            cache
                .hit(&format!("rl:{i}"), Duration::from_secs(3600))
                .await
                .expect("hit");
        }
    });
    assert!(cache.len() >= LIVE, "{} live entries", cache.len());

    let mut group = c.benchmark_group("memory_cache_1m_live");
    let mut i = 0usize;
    group.bench_function("hit_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % (LIVE / 2);
            let key = format!("rl:{i}");
            runtime
                .block_on(cache.hit(&key, Duration::from_secs(3600)))
                .expect("hit")
        })
    });
    let mut n = 0u64;
    group.bench_function("hit_new_window", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("new:{n}");
            runtime
                .block_on(cache.hit(&key, Duration::from_secs(60)))
                .expect("hit")
        })
    });
    group.bench_function("set_login_state", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("state:{n}");
            runtime
                .block_on(cache.set(&key, b"state", Duration::from_secs(600)))
                .expect("set")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
