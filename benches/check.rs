//! Permission-engine hot paths, in process: Check against an index of 1M resources with 2
//! grants each, 100 checks under one lock (the work of a CheckBulk of 100), and a lookup that
//! returns 10k ids through a group. Also reports the index's build time and memory (counted by
//! a global allocator). Figures are kept in docs/BENCHMARKS.md.
//!
//! `cargo bench --bench check` (set SENTINEL_BENCH_RESOURCES to change the 1M).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use sentinel::authz::change::{GranteeRef, ResourceState};
use sentinel::authz::index::{GrantRecord, Index, Lookup, Permission, ResourceRecord, Snapshot};
use sentinel::model::{GroupId, UserId, WorkspaceId};
use uuid::Uuid;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct World {
    index: Index,
    workspace: WorkspaceId,
    /// A viewer with direct grants on some resources.
    viewer: UserId,
    /// A viewer in the group granted 10k resources.
    grouped: UserId,
    resources: usize,
}

/// 1M resources across 100 workspaces; every resource has 2 user grants; the first workspace
/// also has a group granted view on 10k of its resources.
fn world(resources: usize) -> World {
    let workspaces: Vec<WorkspaceId> = (0..100).map(|_| WorkspaceId::random()).collect();
    let users: Vec<UserId> = (0..10_000).map(|_| UserId::random()).collect();
    let workspace = workspaces[0];
    let viewer = users[0];
    let grouped = users[1];
    let group = GroupId::random();
    let mut snapshot = Snapshot::default();
    for (i, user) in users.iter().enumerate() {
        snapshot.memberships.push((
            workspaces[i % workspaces.len()],
            *user,
            sentinel::model::WorkspaceRole::Viewer,
        ));
    }
    snapshot
        .memberships
        .push((workspace, viewer, sentinel::model::WorkspaceRole::Viewer));
    snapshot
        .memberships
        .push((workspace, grouped, sentinel::model::WorkspaceRole::Viewer));
    snapshot.group_members.push((workspace, group, grouped));
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..resources {
        let id = Uuid::new_v4();
        let w = workspaces[i % workspaces.len()];
        snapshot.resources.push(ResourceRecord {
            id,
            state: ResourceState {
                service_name: "docs".into(),
                resource_type: "doc".into(),
                resource_id: format!("doc-{i:07}"),
                workspace_id: w,
                owner_id: Some(users[rng.usize(..users.len())]),
                visibility: sentinel::model::Visibility::Private,
                parent: None,
            },
            parent_id: None,
        });
        for _ in 0..2 {
            let grantee = if w == workspace && i % 100 < 10 && snapshot.grants.len() % 2 == 0 {
                GranteeRef::User(viewer)
            } else {
                GranteeRef::User(users[rng.usize(..users.len())])
            };
            snapshot.grants.push(GrantRecord {
                resource: id,
                grantee,
                permission: sentinel::model::Permission::View,
                expires_at: None,
            });
        }
        if w == workspace && i / workspaces.len() < 10_000 {
            // The first 10k resources of the workspace: also granted to the group (replacing
            // nothing: a third grant on these).
            snapshot.grants.push(GrantRecord {
                resource: id,
                grantee: GranteeRef::Group(group),
                permission: sentinel::model::Permission::View,
                expires_at: None,
            });
        }
    }
    World {
        index: Index::load(snapshot),
        workspace,
        viewer,
        grouped,
        resources,
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let resources: usize = std::env::var("SENTINEL_BENCH_RESOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    let world = world(resources);
    let built = started.elapsed();
    let index_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let (held, grants) = world.index.counts();
    println!(
        "index: {held} resources, {grants} grants; snapshot → index in {:.2} s (generation \
         included); {:.1} MiB live heap after the snapshot was dropped",
        built.as_secs_f64(),
        index_bytes as f64 / (1024.0 * 1024.0)
    );

    // Per-call latency distribution (timer overhead included, ~20–40 ns).
    let now = chrono::Utc::now().timestamp_millis();
    let mut rng = fastrand::Rng::with_seed(11);
    let ids: Vec<String> = (0..world.resources)
        .map(|i| format!("doc-{i:07}"))
        .collect();
    let mut samples = Vec::with_capacity(200_000);
    for _ in 0..200_000 {
        let id = &ids[rng.usize(..ids.len())];
        let t = Instant::now();
        black_box(world.index.check(
            "docs",
            "doc",
            id,
            world.viewer.into(),
            world.workspace.into(),
            Permission::View,
            now,
        ));
        samples.push(t.elapsed());
    }
    let (p50, p99) = percentiles(samples);
    println!("check (1 call): p50 {p50:?}, p99 {p99:?}");

    let started = Instant::now();
    let found = match world.index.lookup(
        "docs",
        "doc",
        world.grouped.into(),
        world.workspace.into(),
        Permission::View,
        now,
    ) {
        Lookup::Ids(ids) => ids.len(),
        Lookup::FullAccess => 0,
    };
    println!(
        "lookup via a group: {found} ids in {:?} (first call)",
        started.elapsed()
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    c.bench_function("check/1M resources", |b| {
        let mut rng = fastrand::Rng::with_seed(3);
        b.iter(|| {
            let id = &ids[rng.usize(..ids.len())];
            world.index.check(
                "docs",
                "doc",
                id,
                world.viewer.into(),
                world.workspace.into(),
                Permission::View,
                now,
            )
        })
    });
    c.bench_function("check_bulk_100/1M resources", |b| {
        let mut rng = fastrand::Rng::with_seed(5);
        b.iter(|| {
            let mut allowed = 0;
            for _ in 0..100 {
                let id = &ids[rng.usize(..ids.len())];
                allowed += usize::from(world.index.check(
                    "docs",
                    "doc",
                    id,
                    world.viewer.into(),
                    world.workspace.into(),
                    Permission::View,
                    now,
                ));
            }
            allowed
        })
    });
    c.bench_function("lookup_10k_via_group/1M resources", |b| {
        b.iter(|| {
            world.index.lookup(
                "docs",
                "doc",
                world.grouped.into(),
                world.workspace.into(),
                Permission::View,
                now,
            )
        })
    });
    c.final_summary();
}
