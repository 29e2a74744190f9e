//! The permission engine over the wire against the reference model, on both backends: random
//! resources (with parents, and refused parent cycles), grants, visibility and owner changes,
//! deletes, and changes of roles, memberships, group members and groups; then every Check
//! (through CheckBulk) and every lookup must agree with the model on three instances:
//! - `a`, which took the writes;
//! - `b`, started before the writes, whose index holds only what the changelog told it — so the
//!   store must have emitted the right change for every RPC;
//! - `c`, started after the writes, which loads a snapshot.

mod common;

use std::collections::BTreeMap;

use common::clients::{fresh, group_grantee, invite_and_accept, perms, rref, user_grantee, ws};
use common::contract::refused;
use common::model::{Model, Seed};
use common::resources::{add_to_group, create_group, lookup_all, register};
use common::{
    Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::authz::change::{Change, GranteeRef, ResourceKey, ResourceState};
use sentinel::model::{Clock, GroupId, UserId, WorkspaceId};
use sentinel::proto::v1::{
    CheckBulkItem, CheckBulkRequest, DeleteGroupRequest, DeleteResourceRequest, Permission,
    RemoveGroupMemberRequest, RemoveMemberRequest, SetOwnerRequest, SetVisibilityRequest,
    ShareRequest, UnshareRequest, UpdateMemberRoleRequest, Visibility, WorkspaceRole,
};
use tonic::Code;

both_backends!(check_and_lookup_agree_with_the_reference_model);

const TYPES: [&str; 2] = ["folder", "doc"];
const ROLES: [&str; 4] = ["owner", "admin", "editor", "viewer"];
const SLUGS: [&str; 2] = ["alpha", "beta"];

fn docs_key(t: &str, id: &str) -> ResourceKey {
    ResourceKey {
        service_name: "docs".into(),
        resource_type: t.into(),
        resource_id: id.into(),
    }
}

fn wire_role(role: &str) -> i32 {
    (match role {
        "owner" => WorkspaceRole::Owner,
        "admin" => WorkspaceRole::Admin,
        "editor" => WorkspaceRole::Editor,
        _ => WorkspaceRole::Viewer,
    }) as i32
}

fn member_set(w: WorkspaceId, u: UserId, role: &str) -> Change {
    Change::MemberSet {
        workspace_id: w,
        user_id: u,
        role: sentinel::model::WorkspaceRole::parse(role).unwrap(),
        added: true,
    }
}

/// The test's view of who is where: users by index, their roles per workspace index, groups.
struct People {
    workspaces: Vec<WorkspaceId>,
    /// The owner of each workspace: its access token and id (never changed by the test).
    owners: Vec<(String, UserId)>,
    /// (email, id).
    users: Vec<(String, UserId)>,
    /// (user index, workspace index) → role.
    memberships: BTreeMap<(usize, usize), String>,
    /// (group, workspace index), live groups.
    groups: Vec<(GroupId, usize)>,
}

impl People {
    /// The members of a workspace: its owner and the users who are in it now.
    fn members_of(&self, wi: usize) -> Vec<UserId> {
        let mut members: Vec<UserId> = self
            .memberships
            .keys()
            .filter(|(_, w)| *w == wi)
            .map(|(u, _)| self.users[*u].1)
            .collect();
        members.push(self.owners[wi].1);
        members
    }

    fn groups_of(&self, wi: usize) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|(_, gw)| *gw == wi)
            .map(|(g, _)| *g)
            .collect()
    }
}

async fn check_and_lookup_agree_with_the_reference_model(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let a = TestApp::start(db.config()).await;
    let b = TestApp::start(db.config()).await;
    let key = service_key(&a, "docs").await;
    let guard = Seed::pick();
    let seed = guard.0;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = Model::default();

    // Two workspaces with an owner each; five users with random roles, some in both.
    let mut people = People {
        workspaces: Vec::new(),
        owners: Vec::new(),
        users: Vec::new(),
        memberships: BTreeMap::new(),
        groups: Vec::new(),
    };
    for slug in SLUGS {
        let owner = sign_in(&a, &format!("owner@{slug}.example.com"), slug, "owner").await;
        let w = owner.scope.as_ref().unwrap().workspace.id;
        model.apply(&member_set(w, owner.user.id, "owner"));
        people.workspaces.push(w);
        people.owners.push((owner.access_token, owner.user.id));
    }
    for i in 0..5 {
        let email = format!("user{i}@example.com");
        let mut id = None;
        for (wi, slug) in SLUGS.iter().enumerate() {
            if wi == 0 || rng.bool() {
                let role = ROLES[rng.usize(..ROLES.len())];
                let issued = sign_in(&a, &email, slug, role).await;
                id = Some(issued.user.id);
                people.memberships.insert((i, wi), role.to_string());
                model.apply(&member_set(people.workspaces[wi], issued.user.id, role));
            }
        }
        people.users.push((email, id.unwrap()));
    }
    // Two groups per workspace with random members.
    let mut last_token = String::new();
    for wi in 0..2 {
        for g in 0..2 {
            let owner_token = people.owners[wi].0.clone();
            let group =
                create_group(&a, &owner_token, people.workspaces[wi], &format!("g{g}")).await;
            people.groups.push((group, wi));
            for ui in 0..people.users.len() {
                if people.memberships.contains_key(&(ui, wi)) && rng.bool() {
                    let uid = people.users[ui].1;
                    last_token = add_to_group(&a, &owner_token, group, uid).await;
                    model.apply(&Change::GroupMemberAdded {
                        workspace_id: people.workspaces[wi],
                        group_id: group,
                        user_id: uid,
                    });
                }
            }
        }
    }

    // Random writes. Grants expire in an hour, in a month, or never; the clocks are moved past
    // the hour below, so no write races an expiry.
    let now = a.clock.now();
    let mut group_names = 2;
    for _ in 0..90 {
        let t = TYPES[rng.usize(..2)];
        let id = format!("r{}", rng.usize(..10));
        let k = ("docs".to_string(), t.to_string(), id.clone());
        match rng.u32(..15) {
            0..=3 => {
                let wi = rng.usize(..2);
                let w = people.workspaces[wi];
                let members = people.members_of(wi);
                let owner = rng.bool().then(|| members[rng.usize(..members.len())]);
                let visibility = if rng.bool() {
                    Visibility::Workspace
                } else {
                    Visibility::Private
                };
                // Sometimes a parent below the resource itself (or itself): a cycle, refused.
                let below: Vec<(String, String)> = model
                    .resources
                    .iter()
                    .filter(|(pk, r)| r.workspace == w && model.descends(pk, &k))
                    .map(|((_, pt, pid), _)| (pt.clone(), pid.clone()))
                    .collect();
                let existing = model.resources.get(&k).is_some_and(|r| r.workspace == w);
                if existing && rng.u32(..4) == 0 {
                    let parent = below[rng.usize(..below.len())].clone();
                    let result = register(
                        &a,
                        &key,
                        t,
                        &id,
                        w,
                        owner,
                        visibility,
                        Some((&parent.0, &parent.1)),
                    )
                    .await;
                    let err = refused(
                        "PermissionService/RegisterResource",
                        Code::FailedPrecondition,
                        result,
                    );
                    let m = err.message();
                    assert!(
                        m.contains("cycle") || m.contains("its own parent"),
                        "seed {seed}: {err:?}"
                    );
                    continue;
                }
                let parents: Vec<(String, String)> = model
                    .resources
                    .iter()
                    .filter(|(pk, r)| r.workspace == w && !model.descends(pk, &k))
                    .map(|((_, pt, pid), _)| (pt.clone(), pid.clone()))
                    .collect();
                let parent = (!parents.is_empty() && rng.bool())
                    .then(|| parents[rng.usize(..parents.len())].clone());
                // A move to the other workspace is refused while grants or children hold the
                // resource in its workspace.
                let blocked = model.resources.get(&k).is_some_and(|r| {
                    r.workspace != w
                        && (!r.grants.is_empty()
                            || model
                                .resources
                                .values()
                                .any(|c| c.parent == Some((t.to_string(), id.clone()))))
                });
                let result = register(
                    &a,
                    &key,
                    t,
                    &id,
                    w,
                    owner,
                    visibility,
                    parent.as_ref().map(|(x, y)| (x.as_str(), y.as_str())),
                )
                .await;
                if blocked {
                    let err = result.expect_err("a move with grants or children is refused");
                    assert_eq!(err.code(), Code::FailedPrecondition, "seed {seed}: {err:?}");
                    continue;
                }
                let out =
                    result.unwrap_or_else(|e| panic!("seed {seed}: register {t}/{id}: {e:?}"));
                last_token = out.consistency_token;
                model.apply(&Change::ResourceSet {
                    resource: ResourceState {
                        service_name: "docs".into(),
                        resource_type: t.into(),
                        resource_id: id.clone(),
                        workspace_id: w,
                        owner_id: owner,
                        visibility: if visibility == Visibility::Workspace {
                            sentinel::model::Visibility::Workspace
                        } else {
                            sentinel::model::Visibility::Private
                        },
                        parent,
                    },
                    created: out.created,
                });
            }
            4..=6 => {
                let Some(r) = model.resources.get(&k).cloned() else {
                    continue;
                };
                let wi = people
                    .workspaces
                    .iter()
                    .position(|w| *w == r.workspace)
                    .unwrap();
                let mine = people.groups_of(wi);
                let grantee = if rng.bool() || mine.is_empty() {
                    let members = people.members_of(wi);
                    GranteeRef::User(members[rng.usize(..members.len())])
                } else {
                    GranteeRef::Group(mine[rng.usize(..mine.len())])
                };
                let level = if rng.bool() { "edit" } else { "view" };
                let expires_at = match rng.u32(..3) {
                    0 => Some(now + chrono::Duration::hours(1)),
                    1 => Some(now + chrono::Duration::days(30)),
                    _ => None,
                };
                let out = perms(&a)
                    .share(with_service_key(
                        ShareRequest {
                            resource: rref(t, &id),
                            grantee: match grantee {
                                GranteeRef::User(u) => user_grantee(u),
                                GranteeRef::Group(g) => group_grantee(g),
                            },
                            permission: if level == "edit" {
                                Permission::Edit
                            } else {
                                Permission::View
                            } as i32,
                            expires_at: expires_at.map(|at| prost_types::Timestamp {
                                seconds: at.timestamp(),
                                nanos: at.timestamp_subsec_nanos() as i32,
                            }),
                        },
                        &key,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: share: {e:?}"))
                    .into_inner();
                last_token = out.consistency_token;
                model.apply(&Change::GrantSet {
                    workspace_id: r.workspace,
                    key: docs_key(t, &id),
                    grantee,
                    permission: sentinel::model::Permission::parse(level).unwrap(),
                    expires_at: expires_at.map(|at| {
                        chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap()
                    }),
                    created: true,
                });
            }
            7 => {
                let Some(r) = model.resources.get(&k).cloned() else {
                    continue;
                };
                let Some(grantee) = r.grants.keys().next().copied() else {
                    continue;
                };
                let out = perms(&a)
                    .unshare(with_service_key(
                        UnshareRequest {
                            resource: rref(t, &id),
                            grantee: match grantee {
                                GranteeRef::User(u) => user_grantee(u),
                                GranteeRef::Group(g) => group_grantee(g),
                            },
                            permission: 0,
                        },
                        &key,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: unshare: {e:?}"))
                    .into_inner();
                assert!(out.removed, "seed {seed}");
                last_token = out.consistency_token;
                model.apply(&Change::GrantRemoved {
                    workspace_id: r.workspace,
                    key: docs_key(t, &id),
                    grantee,
                });
            }
            8 => {
                let Some(mut r) = model.resources.get(&k).cloned() else {
                    continue;
                };
                let out = if rng.bool() {
                    let v = if r.visibility == "private" {
                        Visibility::Workspace
                    } else {
                        Visibility::Private
                    };
                    r.visibility = if v == Visibility::Private {
                        "private"
                    } else {
                        "workspace"
                    }
                    .into();
                    perms(&a)
                        .set_visibility(with_service_key(
                            SetVisibilityRequest {
                                resource: rref(t, &id),
                                visibility: v as i32,
                            },
                            &key,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: set visibility: {e:?}"))
                        .into_inner()
                        .consistency_token
                } else {
                    let wi = people
                        .workspaces
                        .iter()
                        .position(|w| *w == r.workspace)
                        .unwrap();
                    let members = people.members_of(wi);
                    r.owner = Some(members[rng.usize(..members.len())]);
                    perms(&a)
                        .set_owner(with_service_key(
                            SetOwnerRequest {
                                resource: rref(t, &id),
                                owner_id: r.owner.unwrap().to_string(),
                            },
                            &key,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: set owner: {e:?}"))
                        .into_inner()
                        .consistency_token
                };
                last_token = out;
                model.apply(&Change::ResourceSet {
                    resource: ResourceState {
                        service_name: "docs".into(),
                        resource_type: t.into(),
                        resource_id: id.clone(),
                        workspace_id: r.workspace,
                        owner_id: r.owner,
                        visibility: sentinel::model::Visibility::parse(&r.visibility).unwrap(),
                        parent: r.parent.clone(),
                    },
                    created: false,
                });
            }
            9 => {
                let Some(r) = model.resources.get(&k).cloned() else {
                    continue;
                };
                let out = perms(&a)
                    .delete_resource(with_service_key(
                        DeleteResourceRequest {
                            resource: rref(t, &id),
                            allow_missing: false,
                        },
                        &key,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: delete: {e:?}"))
                    .into_inner();
                last_token = out.consistency_token;
                model.apply(&Change::ResourceDeleted {
                    workspace_id: r.workspace,
                    key: docs_key(t, &id),
                });
            }
            10 | 11 => {
                // A group member joins or leaves.
                let wi = rng.usize(..2);
                let mine = people.groups_of(wi);
                let members = people.members_of(wi);
                let (group, user) = (
                    mine[rng.usize(..mine.len())],
                    members[rng.usize(..members.len())],
                );
                let owner_token = &people.owners[wi].0;
                let change = if model.group_members.contains(&(group, user)) {
                    let out = ws(&a)
                        .remove_group_member(with_bearer(
                            RemoveGroupMemberRequest {
                                group_id: group.to_string(),
                                user_id: user.to_string(),
                            },
                            owner_token,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: remove group member: {e:?}"))
                        .into_inner();
                    assert!(out.removed, "seed {seed}");
                    last_token = out.consistency_token;
                    Change::GroupMemberRemoved {
                        workspace_id: people.workspaces[wi],
                        group_id: group,
                        user_id: user,
                    }
                } else {
                    last_token = add_to_group(&a, owner_token, group, user).await;
                    Change::GroupMemberAdded {
                        workspace_id: people.workspaces[wi],
                        group_id: group,
                        user_id: user,
                    }
                };
                model.apply(&change);
            }
            12 => {
                // A member's role changes.
                if people.memberships.is_empty() {
                    continue;
                }
                let Some((&(ui, wi), _)) = people
                    .memberships
                    .iter()
                    .nth(rng.usize(..people.memberships.len()))
                else {
                    continue;
                };
                let role = ROLES[rng.usize(..ROLES.len())];
                let uid = people.users[ui].1;
                let out = ws(&a)
                    .update_member_role(with_bearer(
                        UpdateMemberRoleRequest {
                            workspace_id: people.workspaces[wi].to_string(),
                            user_id: uid.to_string(),
                            role: wire_role(role),
                        },
                        &people.owners[wi].0,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: update role: {e:?}"))
                    .into_inner();
                last_token = out.consistency_token;
                people.memberships.insert((ui, wi), role.to_string());
                model.apply(&member_set(people.workspaces[wi], uid, role));
            }
            13 => {
                // A user leaves the second workspace (losing its groups there), or joins it
                // again; everyone stays in the first, whose token they accept invitations with.
                let ui = rng.usize(..people.users.len());
                let (w, uid) = (people.workspaces[1], people.users[ui].1);
                let owner_token = people.owners[1].0.clone();
                if people.memberships.remove(&(ui, 1)).is_some() {
                    let out = ws(&a)
                        .remove_member(with_bearer(
                            RemoveMemberRequest {
                                workspace_id: w.to_string(),
                                user_id: uid.to_string(),
                            },
                            &owner_token,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: remove member: {e:?}"))
                        .into_inner();
                    last_token = out.consistency_token;
                    model.apply(&Change::MemberRemoved {
                        workspace_id: w,
                        user_id: uid,
                    });
                } else {
                    let role = ROLES[rng.usize(1..ROLES.len())];
                    let home = people.memberships[&(ui, 0)].clone();
                    let own = sign_in(&a, &people.users[ui].0, SLUGS[0], &home).await;
                    last_token = invite_and_accept(
                        &a,
                        &owner_token,
                        w,
                        uid,
                        sentinel::proto::v1::WorkspaceRole::try_from(wire_role(role)).unwrap(),
                        &own.access_token,
                    )
                    .await;
                    people.memberships.insert((ui, 1), role.to_string());
                    model.apply(&member_set(w, uid, role));
                }
            }
            _ => {
                // A group is deleted (with its members and grants); a new one takes its place.
                let at = rng.usize(..people.groups.len());
                let (group, wi) = people.groups[at];
                let owner_token = people.owners[wi].0.clone();
                let out = ws(&a)
                    .delete_group(with_bearer(
                        DeleteGroupRequest {
                            id: group.to_string(),
                        },
                        &owner_token,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: delete group: {e:?}"))
                    .into_inner();
                last_token = out.consistency_token;
                model.apply(&Change::GroupDeleted {
                    workspace_id: people.workspaces[wi],
                    group_id: group,
                });
                group_names += 1;
                let fresh_group = create_group(
                    &a,
                    &owner_token,
                    people.workspaces[wi],
                    &format!("g{group_names}"),
                )
                .await;
                people.groups[at] = (fresh_group, wi);
            }
        }
    }

    // `c` starts now, from a snapshot of everything above.
    let c = TestApp::start(db.config()).await;
    let instances = [("a", &a), ("b", &b), ("c", &c)];

    // Compare now, and again once the hour-long grants have expired (no write in between).
    for phase in 0..2 {
        if phase == 1 {
            for (_, app) in instances {
                app.clock.advance(std::time::Duration::from_secs(2 * 3600));
            }
        }
        let at = a.clock.now();
        for ((ui, wi), role) in &people.memberships {
            let (email, uid) = &people.users[*ui];
            let w = people.workspaces[*wi];
            let token = sign_in(&a, email, SLUGS[*wi], role).await.access_token;
            let mut items = Vec::new();
            let mut expected = Vec::new();
            for t in TYPES {
                for i in 0..10 {
                    for (action, edit) in [("view", false), ("edit", true)] {
                        let id = format!("r{i}");
                        items.push(CheckBulkItem {
                            resource: rref(t, &id),
                            action: action.into(),
                        });
                        expected.push(model.check("docs", t, &id, *uid, w, edit, at));
                    }
                }
            }
            for (name, app) in instances {
                let results = perms(app)
                    .check_bulk(dual(
                        CheckBulkRequest {
                            items: items.clone(),
                            consistency: fresh(&last_token),
                        },
                        &key,
                        &token,
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: check bulk on {name}: {e:?}"))
                    .into_inner()
                    .results;
                let got: Vec<bool> = results.iter().map(|r| r.allowed).collect();
                assert_eq!(
                    got, expected,
                    "seed {seed} phase {phase} instance {name}: user {ui} in {}",
                    SLUGS[*wi]
                );
                for t in TYPES {
                    for (action, edit) in [("view", false), ("edit", true)] {
                        let (full, ids) =
                            lookup_all(app, &key, &token, t, action, 3, fresh(&last_token)).await;
                        let want = model.lookup("docs", t, *uid, w, edit, at);
                        let what = format!(
                            "seed {seed} phase {phase} instance {name}: lookup {t} {action} user {ui}"
                        );
                        match want {
                            None => assert!(full, "{what}: full access expected"),
                            Some(want) => {
                                assert!(!full, "{what}");
                                assert_eq!(ids, want, "{what}");
                            }
                        }
                    }
                }
            }
        }
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}
