//! Custom roles over the wire against a reference model, on both backends: two services register
//! actions, workspace owners create, change, delete, assign and unassign roles while members
//! leave and join again; then every CheckAction and ListUserActions answer (of every service, for
//! every user, in every workspace, members or not) must agree with the model, on the instance
//! that took the writes, on one that followed them through the changelog, and on one started
//! afterwards.

mod common;

use std::collections::BTreeSet;

use common::clients::{fresh, invite_and_accept, perms, ws};
use common::model::Seed;
use common::{
    Backend, TestApp, TestDatabase, dual, service_key, sign_in, with_bearer, with_service_key,
};
use sentinel::proto::v1::{
    ActionDefinition, AssignRoleRequest, CheckActionRequest, CreateRoleRequest, DeleteRoleRequest,
    ListUserActionsRequest, RegisterActionsRequest, RemoveMemberRequest, SetRoleActionsRequest,
    UnassignRoleRequest, WorkspaceRole,
};
use tonic::Code;

both_backends!(check_action_agrees_with_the_reference_model);

const SERVICES: [&str; 2] = ["billing", "docs"];
const SLUGS: [&str; 2] = ["north", "south"];
const USERS: usize = 4;

/// A custom role in the model.
struct Role {
    id: String,
    workspace: usize,
    service: usize,
    name: String,
    actions: BTreeSet<String>,
}

#[derive(Default)]
struct Roles {
    /// Registered actions per service.
    actions: [BTreeSet<String>; 2],
    roles: Vec<Role>,
    /// (role id, user index).
    assigned: BTreeSet<(String, usize)>,
    /// (user index, workspace index).
    members: BTreeSet<(usize, usize)>,
}

impl Roles {
    /// Names of the roles through which `user` holds `action` of `service` in `workspace`, sorted;
    /// none when the user is not a member there.
    fn holding(&self, user: usize, workspace: usize, service: usize, action: &str) -> Vec<String> {
        if !self.members.contains(&(user, workspace)) {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .roles
            .iter()
            .filter(|r| r.workspace == workspace && r.service == service)
            .filter(|r| r.actions.contains(action))
            .filter(|r| self.assigned.contains(&(r.id.clone(), user)))
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        names
    }

    fn subset(&self, rng: &mut fastrand::Rng, service: usize) -> Vec<String> {
        self.actions[service]
            .iter()
            .filter(|_| rng.u32(..3) == 0)
            .cloned()
            .collect()
    }
}

async fn register_actions(app: &TestApp, key: &str, names: &[String]) {
    perms(app)
        .register_actions(with_service_key(
            RegisterActionsRequest {
                actions: names
                    .iter()
                    .map(|a| ActionDefinition {
                        action: a.clone(),
                        description: format!("The {a} action"),
                    })
                    .collect(),
            },
            key,
        ))
        .await
        .expect("actions registered");
}

async fn check_action_agrees_with_the_reference_model(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let a = TestApp::start(db.config()).await;
    let b = TestApp::start(db.config()).await;
    let guard = Seed::pick();
    let seed = guard.0;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut keys = Vec::new();
    for service in SERVICES {
        keys.push(service_key(&a, service).await);
    }
    let mut model = Roles::default();
    for (s, key) in keys.iter().enumerate() {
        let names: Vec<String> = (0..3).map(|i| format!("{}.act{i}", SERVICES[s])).collect();
        register_actions(&a, key, &names).await;
        model.actions[s].extend(names);
    }
    let mut owners = Vec::new();
    let mut workspaces = Vec::new();
    for slug in SLUGS {
        let owner = sign_in(&a, &format!("owner@{slug}.example.com"), slug, "owner").await;
        workspaces.push(owner.scope.as_ref().unwrap().workspace.id);
        owners.push(owner.access_token);
    }
    let mut users = Vec::new(); // (email, id)
    for u in 0..USERS {
        let email = format!("member{u}@example.com");
        let mut id = None;
        for (wi, slug) in SLUGS.iter().enumerate() {
            if wi == 0 || rng.bool() {
                id = Some(sign_in(&a, &email, slug, "viewer").await.user.id);
                model.members.insert((u, wi));
            }
        }
        users.push((email, id.unwrap()));
    }

    let mut last_token = String::new();
    let mut created = 0;
    for _ in 0..80 {
        let roll = rng.u32(..20);
        if model.roles.is_empty() || roll < 3 {
            // A new role of a random service in a random workspace.
            let (wi, s) = (rng.usize(..2), rng.usize(..2));
            let actions = model.subset(&mut rng, s);
            created += 1;
            let name = format!("Role {created}");
            let role = ws(&a)
                .create_role(with_bearer(
                    CreateRoleRequest {
                        workspace_id: workspaces[wi].to_string(),
                        service_name: SERVICES[s].into(),
                        name: name.clone(),
                        description: String::new(),
                        actions: actions.clone(),
                    },
                    &owners[wi],
                ))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: create role: {e:?}"))
                .into_inner()
                .role
                .unwrap();
            model.roles.push(Role {
                id: role.id,
                workspace: wi,
                service: s,
                name,
                actions: actions.into_iter().collect(),
            });
            continue;
        }
        let r = rng.usize(..model.roles.len());
        let (role_id, wi, s) = {
            let role = &model.roles[r];
            (role.id.clone(), role.workspace, role.service)
        };
        let u = rng.usize(..USERS);
        match roll {
            3..=9 => {
                let result = ws(&a)
                    .assign_role(with_bearer(
                        AssignRoleRequest {
                            id: role_id.clone(),
                            user_id: users[u].1.to_string(),
                        },
                        &owners[wi],
                    ))
                    .await;
                if !model.members.contains(&(u, wi)) {
                    let err = result.expect_err("a non-member is refused");
                    assert_eq!(err.code(), Code::FailedPrecondition, "seed {seed}: {err:?}");
                    continue;
                }
                let out = result
                    .unwrap_or_else(|e| panic!("seed {seed}: assign: {e:?}"))
                    .into_inner();
                let new = model.assigned.insert((role_id, u));
                assert_eq!(
                    out.assigned, new,
                    "seed {seed}: assigned reports whether it was new"
                );
                last_token = out.consistency_token;
            }
            10..=12 => {
                let out = ws(&a)
                    .unassign_role(with_bearer(
                        UnassignRoleRequest {
                            id: role_id.clone(),
                            user_id: users[u].1.to_string(),
                        },
                        &owners[wi],
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: unassign: {e:?}"))
                    .into_inner();
                let held = model.assigned.remove(&(role_id, u));
                assert_eq!(
                    out.removed, held,
                    "seed {seed}: removed reports whether it was held"
                );
                last_token = out.consistency_token;
            }
            13..=14 => {
                let actions = model.subset(&mut rng, s);
                let out = ws(&a)
                    .set_role_actions(with_bearer(
                        SetRoleActionsRequest {
                            id: role_id,
                            actions: actions.clone(),
                        },
                        &owners[wi],
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: set actions: {e:?}"))
                    .into_inner();
                let mut sorted = actions.clone();
                sorted.sort();
                assert_eq!(out.role.unwrap().actions, sorted, "seed {seed}");
                model.roles[r].actions = actions.into_iter().collect();
                last_token = out.consistency_token;
            }
            15 => {
                let out = ws(&a)
                    .delete_role(with_bearer(
                        DeleteRoleRequest {
                            id: role_id.clone(),
                        },
                        &owners[wi],
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: delete role: {e:?}"))
                    .into_inner();
                model.roles.remove(r);
                model.assigned.retain(|(id, _)| *id != role_id);
                last_token = out.consistency_token;
            }
            16..=17 => {
                // A member leaves the second workspace (losing their roles there) or joins it
                // again; everyone stays in the first, whose token they accept invitations with.
                let (w, uid) = (workspaces[1], users[u].1);
                if model.members.remove(&(u, 1)) {
                    let out = ws(&a)
                        .remove_member(with_bearer(
                            RemoveMemberRequest {
                                workspace_id: w.to_string(),
                                user_id: uid.to_string(),
                            },
                            &owners[1],
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: remove member: {e:?}"))
                        .into_inner();
                    let doomed: BTreeSet<String> = model
                        .roles
                        .iter()
                        .filter(|r| r.workspace == 1)
                        .map(|r| r.id.clone())
                        .collect();
                    model
                        .assigned
                        .retain(|(id, user)| !(*user == u && doomed.contains(id)));
                    last_token = out.consistency_token;
                } else {
                    let own = sign_in(&a, &users[u].0, SLUGS[0], "viewer").await;
                    last_token = invite_and_accept(
                        &a,
                        &owners[1],
                        w,
                        uid,
                        WorkspaceRole::Editor,
                        &own.access_token,
                    )
                    .await;
                    model.members.insert((u, 1));
                }
            }
            _ => {
                // The service registers one more action (roles may take it from now on).
                let name = format!("{}.act{}", SERVICES[s], model.actions[s].len());
                register_actions(&a, &keys[s], std::slice::from_ref(&name)).await;
                model.actions[s].insert(name);
            }
        }
    }

    let c = TestApp::start(db.config()).await;
    for (name, app) in [("a", &a), ("b", &b), ("c", &c)] {
        for (u, (email, _)) in users.iter().enumerate() {
            // A token of the first workspace; it asks about both.
            let token = sign_in(&a, email, SLUGS[0], "viewer").await.access_token;
            for (wi, w) in workspaces.iter().enumerate() {
                for (s, key) in keys.iter().enumerate() {
                    let mut held = Vec::new();
                    let asked = model.actions[s]
                        .iter()
                        .cloned()
                        .chain(["never.registered".into()]);
                    for action in asked {
                        let answer = perms(app)
                            .check_action(dual(
                                CheckActionRequest {
                                    action: action.clone(),
                                    workspace_id: w.to_string(),
                                    consistency: fresh(&last_token),
                                },
                                key,
                                &token,
                            ))
                            .await
                            .unwrap_or_else(|e| {
                                panic!("seed {seed}: check action on {name}: {e:?}")
                            })
                            .into_inner();
                        let want = model.holding(u, wi, s, &action);
                        let what = format!(
                            "seed {seed} instance {name}: user {u} workspace {wi} service {s} action {action}"
                        );
                        assert_eq!(answer.roles, want, "{what}");
                        assert_eq!(answer.allowed, !want.is_empty(), "{what}");
                        if answer.allowed {
                            held.push(action);
                        }
                    }
                    let listed = perms(app)
                        .list_user_actions(dual(
                            ListUserActionsRequest {
                                workspace_id: w.to_string(),
                                consistency: fresh(&last_token),
                                page_size: 500,
                                page_token: String::new(),
                            },
                            key,
                            &token,
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: list actions on {name}: {e:?}"))
                        .into_inner();
                    assert_eq!(
                        listed.actions, held,
                        "seed {seed} instance {name}: actions of user {u} in workspace {wi} service {s}"
                    );
                    assert!(listed.next_page_token.is_empty(), "seed {seed}");
                }
            }
        }
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}
