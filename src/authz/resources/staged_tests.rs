//! A group decided on rows read up front, with its new rows held back, answers and writes
//! exactly what the same writes decided one statement at a time do: random groups of every
//! kind of write over a few keys, run both ways on the same store (each in a transaction
//! rolled back after), compared write by write and row by row.

use std::collections::BTreeMap;

use super::rules::{self, Facts, Outcome};
use super::staged::Staged;
use super::tests::{Fixture, doc, fixture, key};
use super::*;
use crate::model::WorkspaceId;
use crate::model::change::Change;
use crate::store::{ChangelogTx, RuleTx};

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// A write's answer, without row ids and timestamps (new on every run).
fn summary(result: &Result<rules::Step<Outcome>, Error>) -> String {
    let step = match result {
        Err(err) => return format!("refused: {err:?}"),
        Ok(step) => step,
    };
    let value = match &step.value {
        Outcome::Resource(row, created) => format!("resource {:?} created={created}", row.state),
        Outcome::Deleted(deleted) => format!("deleted={deleted}"),
        Outcome::Grant(grant, changed) => format!(
            "grant {:?} {:?} {:?} by {:?} changed={changed}",
            grant.grantee, grant.permission, grant.expires_at, grant.granted_by
        ),
        Outcome::Unshared(removed) => format!("unshared={removed}"),
    };
    let change: Option<&Change> = step.write.as_ref().map(|(change, _)| change);
    format!("{value}; {change:?}")
}

/// Every resource of the keys (state, parent key) and every grant on them, read in `tx`.
async fn contents(tx: &mut dyn ChangelogTx) -> BTreeMap<String, String> {
    let keys: Vec<(&str, &str)> = KEYS.iter().map(|k| ("doc", *k)).collect();
    let rows = tx.resources_by_keys("docs", &keys).await.unwrap();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|(row, _)| row.id).collect();
    let mut seen = BTreeMap::new();
    let mut names = std::collections::HashMap::new();
    for (row, _) in &rows {
        names.insert(row.id, row.state.resource_id.clone());
        seen.insert(row.state.resource_id.clone(), format!("{:?}", row.state));
    }
    for (resource, grant) in tx.grants_on(&ids).await.unwrap() {
        let name = format!("{} ← {:?}", names[&resource], grant.grantee);
        let value = format!(
            "{:?} {:?} {:?}",
            grant.permission, grant.expires_at, grant.granted_by
        );
        seen.insert(name, value);
    }
    seen
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, of: &[T]) -> T {
    of[rng.usize(..of.len())]
}

/// A random write of any kind on the keys, with a caller: the service or the owner.
fn random_write(rng: &mut fastrand::Rng, f: &Fixture) -> (Caller, WriteOp) {
    let users = [f.owner, f.editor, f.outsider];
    let name = pick(rng, &KEYS);
    let grantee = if rng.u8(..10) == 0 {
        GranteeRef::Group(crate::model::GroupId::random())
    } else {
        GranteeRef::User(pick(rng, &users))
    };
    let op = match rng.u8(..10) {
        0..=3 => {
            let parent = rng.bool().then(|| pick(rng, &KEYS));
            let mut state = doc(f.workspace, name, parent);
            state.owner_id = rng.bool().then(|| pick(rng, &users));
            state.visibility = pick(rng, &[Visibility::Private, Visibility::Workspace]);
            if rng.u8(..12) == 0 {
                state.workspace_id = WorkspaceId::random();
            }
            WriteOp::Register {
                state,
                upsert: rng.bool(),
            }
        }
        4..=6 => WriteOp::Share {
            key: key(name),
            grant: NewGrant {
                grantee,
                permission: pick(rng, &[Permission::View, Permission::Edit]),
                expires_at: None,
            },
        },
        7 => WriteOp::Unshare {
            key: key(name),
            grantee,
            permission: rng.bool().then_some(Permission::View),
        },
        8 => WriteOp::Delete {
            key: key(name),
            allow_missing: rng.bool(),
        },
        _ if rng.bool() => WriteOp::SetVisibility {
            key: key(name),
            visibility: pick(rng, &[Visibility::Private, Visibility::Workspace]),
        },
        _ => WriteOp::SetOwner {
            key: key(name),
            owner: rng.bool().then(|| pick(rng, &users)),
        },
    };
    let caller = if rng.u8(..4) == 0 {
        Caller {
            user: Some(f.owner),
            token_workspace: Some(f.workspace),
            ..Caller::default()
        }
    } else {
        Caller::default()
    };
    (caller, op)
}

/// Runs `writes` in one transaction, through `Staged` or straight on it; each write's
/// summary and what the transaction holds after, then rolls it back.
async fn run(
    f: &Fixture,
    writes: &[(Caller, WriteOp)],
    staged: bool,
) -> (Vec<String>, BTreeMap<String, String>) {
    let now = crate::model::now();
    let mut tx = f.store.begin_changelog().await.unwrap();
    let mut answers = Vec::new();
    if staged {
        let ops: Vec<&WriteOp> = writes.iter().map(|(_, op)| op).collect();
        let mut view = Staged::read(tx.as_mut(), &ops).await.unwrap();
        let named: Vec<(&Caller, &WriteOp)> = writes.iter().map(|(c, op)| (c, op)).collect();
        let mut facts = view.facts(&named).await.unwrap();
        for (caller, op) in writes {
            let step = rules::apply(&mut view, &mut facts, caller, op, now).await;
            answers.push(summary(&step));
        }
        view.flush().await.unwrap();
    } else {
        let mut facts = Facts::default();
        for (caller, op) in writes {
            let plain: &mut dyn RuleTx = tx.as_mut();
            let step = rules::apply(plain, &mut facts, caller, op, now).await;
            answers.push(summary(&step));
        }
    }
    let held = contents(tx.as_mut()).await;
    drop(tx); // rolled back
    (answers, held)
}

#[tokio::test]
async fn a_group_decided_on_rows_read_up_front_does_what_one_at_a_time_does() {
    let f = fixture().await;
    // Something registered and shared before: updates, moves, cycles and replaced grants.
    let mut a = doc(f.workspace, "a", None);
    a.owner_id = Some(f.owner);
    f.resources
        .register(&Caller::default(), &a, false)
        .await
        .unwrap();
    let b = doc(f.workspace, "b", Some("a"));
    f.resources
        .register(&Caller::default(), &b, false)
        .await
        .unwrap();
    let grant = NewGrant {
        grantee: GranteeRef::User(f.editor),
        permission: Permission::View,
        expires_at: None,
    };
    f.resources
        .share(&Caller::default(), &key("b"), &grant)
        .await
        .unwrap();

    let seed = std::env::var("SENTINEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kinds = std::collections::HashSet::new();
    for round in 0..150 {
        let len = rng.usize(1..24);
        let writes: Vec<(Caller, WriteOp)> = (0..len).map(|_| random_write(&mut rng, &f)).collect();
        let (one_at_a_time, held_plain) = run(&f, &writes, false).await;
        let (grouped, held_staged) = run(&f, &writes, true).await;
        for (i, (plain, staged)) in one_at_a_time.iter().zip(&grouped).enumerate() {
            assert_eq!(
                plain, staged,
                "seed {seed} (SENTINEL_SEED={seed} reruns it), round {round}, write {i} \
                 of {writes:?}"
            );
            kinds.insert(
                plain
                    .split([' ', '=', ':'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        assert_eq!(
            held_plain, held_staged,
            "seed {seed}, round {round}: what the transaction holds after {writes:?}"
        );
    }
    // The rounds met every kind of answer, refusals too.
    for kind in ["resource", "deleted", "grant", "unshared", "refused"] {
        assert!(
            kinds.contains(kind),
            "seed {seed}: no {kind} answer in {kinds:?}"
        );
    }
}
