//! Tenancy over the wire, on both backends: members and invitations, the last-owner rule under
//! concurrency, groups, custom roles with service actions, and workspace isolation.

mod common;

use base64::Engine;
use common::{Backend, TestApp, audit_count, dual, service_key, sign_in, with_bearer};
use sentinel::proto::v1::auth_service_client::AuthServiceClient;
use sentinel::proto::v1::permission_service_client::PermissionServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::workspace_service_client::WorkspaceServiceClient;
use sentinel::proto::v1::{
    self as pb, ActionDefinition, AddGroupMemberRequest, AddMemberRequest, AssignRoleRequest,
    CheckActionRequest, CreateGroupRequest, CreateRoleRequest, DeleteGroupRequest,
    DeleteRoleRequest, GetMeRequest, ListGroupMembersRequest, ListGroupsRequest,
    ListMembersRequest, ListRolesRequest, ListUserActionsRequest, ListWorkspacesRequest,
    RefreshRequest, RegisterActionsRequest, RemoveGroupMemberRequest, RemoveMemberRequest,
    SetRoleActionsRequest, UnassignRoleRequest, UpdateGroupRequest, UpdateMemberRoleRequest,
    WorkspaceRole, add_member_request::Invitee, add_member_response::MemberOrInvitation,
};
use tonic::Code;

both_backends!(
    members_invitations_and_role_changes,
    the_last_owner_survives_concurrent_demotions_and_removals,
    groups_have_unique_names_and_member_rules,
    custom_roles_hold_service_actions,
    workspaces_are_isolated_from_each_other,
);

fn ws(app: &TestApp) -> WorkspaceServiceClient<tonic::transport::Channel> {
    WorkspaceServiceClient::new(app.channel.clone())
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn add(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    invitee: Invitee,
    role: WorkspaceRole,
) -> Result<pb::AddMemberResponse, tonic::Status> {
    ws(app)
        .add_member(with_bearer(
            AddMemberRequest {
                workspace_id: workspace_id.into(),
                invitee: Some(invitee),
                role: role as i32,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Inviting the person again, by id and by email: ALREADY_EXISTS both ways.
async fn refused_by_id_and_email(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
    user_id: &str,
    email: &str,
) {
    for invitee in [
        Invitee::UserId(user_id.into()),
        Invitee::Email(email.into()),
    ] {
        let err = add(app, token, workspace_id, invitee, WorkspaceRole::Viewer)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    }
}

async fn my_invitations(app: &TestApp, token: &str) -> Vec<pb::Invitation> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ws(app)
            .list_my_invitations(with_bearer(
                pb::ListMyInvitationsRequest {
                    page_size: 1,
                    page_token,
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.invitations);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn accept(
    app: &TestApp,
    token: &str,
    id: &str,
) -> Result<pb::AcceptInvitationResponse, tonic::Status> {
    ws(app)
        .accept_invitation(with_bearer(
            pb::AcceptInvitationRequest {
                invitation_id: id.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn decline(app: &TestApp, token: &str, id: &str) -> Result<(), tonic::Status> {
    ws(app)
        .decline_invitation(with_bearer(
            pb::DeclineInvitationRequest {
                invitation_id: id.into(),
            },
            token,
        ))
        .await
        .map(drop)
}

async fn list_invitations(
    app: &TestApp,
    token: &str,
    workspace_id: &str,
) -> Result<Vec<pb::Invitation>, tonic::Status> {
    ws(app)
        .list_invitations(with_bearer(
            pb::ListInvitationsRequest {
                workspace_id: workspace_id.into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().invitations)
}

async fn cancel(app: &TestApp, token: &str, id: &str) -> Result<(), tonic::Status> {
    ws(app)
        .cancel_invitation(with_bearer(
            pb::CancelInvitationRequest {
                invitation_id: id.into(),
            },
            token,
        ))
        .await
        .map(drop)
}

async fn members(app: &TestApp, token: &str, workspace_id: &str) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ws(app)
            .list_members(with_bearer(
                ListMembersRequest {
                    workspace_id: workspace_id.into(),
                    page_size: 2,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(
            page.members
                .into_iter()
                .map(|m| (m.user.unwrap().email, m.role)),
        );
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn me_status(app: &TestApp, token: &str) -> Code {
    match UserServiceClient::new(app.channel.clone())
        .get_me(with_bearer(GetMeRequest {}, token))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn members_invitations_and_role_changes(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let bob_home = sign_in(&app, "bob@example.com", "bob-home", "owner").await;
    let bob_id = bob_home.user.id.to_string();

    // By email of an existing user: an invitation, shaped like one to an unknown email, with no
    // profile data; nothing changes until bob answers.
    let added = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("BOB@example.com".into()),
        WorkspaceRole::Editor,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(to_bob)) = added.member_or_invitation else {
        panic!("joining takes consent: {added:?}");
    };
    assert_eq!(to_bob.email, "bob@example.com");
    assert_eq!(to_bob.user_id, "", "no account is revealed");
    assert_eq!(to_bob.role, WorkspaceRole::Editor as i32);
    assert!(!added.consistency_token.is_empty());
    let to_nobody = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("nobody@example.com".into()),
        WorkspaceRole::Editor,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(to_nobody)) = to_nobody.member_or_invitation else {
        panic!("an unknown email gets an invitation too");
    };
    let shape = |i: &pb::Invitation| {
        (
            i.user_id.is_empty(),
            i.workspace_name.is_empty(),
            i.workspace_slug.is_empty(),
            i.invited_by.clone(),
            i.role,
        )
    };
    assert_eq!(
        shape(&to_bob),
        shape(&to_nobody),
        "the same shape either way"
    );
    assert_eq!(
        members(&app, &ann.access_token, &acme).await.len(),
        1,
        "bob has not joined"
    );
    // A pending invitation blocks another, by email or by id.
    refused_by_id_and_email(&app, &ann.access_token, &acme, &bob_id, "bob@example.com").await;
    // Bob sees it, with the workspace's name; others do not, and cannot answer it.
    let seen = my_invitations(&app, &bob_home.access_token).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, to_bob.id);
    assert_eq!(seen[0].workspace_slug, "acme");
    assert!(!seen[0].workspace_name.is_empty());
    let dan = sign_in(&app, "dan@example.com", "dan-home", "owner").await;
    assert!(my_invitations(&app, &dan.access_token).await.is_empty());
    for token in [&dan.access_token, &ann.access_token] {
        let err = accept(&app, token, &to_bob.id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        let err = decline(&app, token, &to_bob.id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    // Bob accepts: a member with the invited role; then adding him again is ALREADY_EXISTS.
    let joined = accept(&app, &bob_home.access_token, &to_bob.id)
        .await
        .unwrap();
    let member = joined.member.unwrap();
    assert_eq!(member.role, WorkspaceRole::Editor as i32);
    assert_eq!(member.user.unwrap().id, bob_id);
    assert!(!joined.consistency_token.is_empty());
    assert!(
        my_invitations(&app, &bob_home.access_token)
            .await
            .is_empty()
    );
    let err = accept(&app, &bob_home.access_token, &to_bob.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "answered once");
    refused_by_id_and_email(&app, &ann.access_token, &acme, &bob_id, "bob@example.com").await;
    // Unknown user id, bad email, missing role.
    let err = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::UserId(uuid::Uuid::new_v4().to_string()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("not-an-email".into()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("email"), "{}", err.message());
    let err = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("x@example.com".into()),
        WorkspaceRole::Unspecified,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("role"), "{}", err.message());
    for bad in ["", "not-a-uuid"] {
        let err = accept(&app, &bob_home.access_token, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("invitation_id"), "{}", err.message());
    }

    // By user id: the answer shows the id, never that user's email; dan declines.
    let to_dan = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::UserId(dan.user.id.to_string()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(to_dan)) = to_dan.member_or_invitation else {
        panic!("an invitation by id");
    };
    assert_eq!(to_dan.email, "", "no profile data");
    assert_eq!(to_dan.user_id, dan.user.id.to_string());
    assert_eq!(my_invitations(&app, &dan.access_token).await.len(), 1);
    decline(&app, &dan.access_token, &to_dan.id).await.unwrap();
    assert!(my_invitations(&app, &dan.access_token).await.is_empty());
    let err = accept(&app, &dan.access_token, &to_dan.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "declined is gone");
    assert_eq!(audit_count(&db, "invitation.declined").await, 1);

    // An email no provider or operator vouched for: invitations to it do not reach its user
    // (anyone could have signed up with it); one by user id does.
    let una_row = sentinel::store::UserRow {
        id: sentinel::model::UserId::random(),
        email: "una@example.com".into(),
        name: "Una".into(),
        avatar_url: String::new(),
        is_active: true,
        is_admin: false,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    app.app
        .state()
        .store
        .insert_user(&una_row, false)
        .await
        .unwrap();
    let una = sign_in(&app, "una@example.com", "una-home", "owner").await;
    let by_email = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("una@example.com".into()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(by_email)) = by_email.member_or_invitation else {
        panic!("an invitation");
    };
    assert!(my_invitations(&app, &una.access_token).await.is_empty());
    let err = accept(&app, &una.access_token, &by_email.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    cancel(&app, &ann.access_token, &by_email.id).await.unwrap();
    let by_id = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::UserId(una_row.id.to_string()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(by_id)) = by_id.member_or_invitation else {
        panic!("an invitation");
    };
    assert_eq!(my_invitations(&app, &una.access_token).await.len(), 1);
    decline(&app, &una.access_token, &by_id.id).await.unwrap();

    // Admins list and withdraw pending invitations; an editor may do neither.
    let pending = list_invitations(&app, &ann.access_token, &acme)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [to_nobody.id.as_str()]
    );
    for err in [
        list_invitations(&app, &bob_home.access_token, &acme)
            .await
            .unwrap_err(),
        cancel(&app, &bob_home.access_token, &to_nobody.id)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    for err in [
        list_invitations(&app, &dan.access_token, &acme)
            .await
            .unwrap_err(),
        cancel(&app, &dan.access_token, &to_nobody.id)
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::NotFound, "not a member: {err:?}");
    }
    cancel(&app, &ann.access_token, &to_nobody.id)
        .await
        .unwrap();
    assert!(
        list_invitations(&app, &ann.access_token, &acme)
            .await
            .unwrap()
            .is_empty()
    );
    let nobody = sign_in(&app, "nobody@example.com", "nobody-home", "owner").await;
    assert!(my_invitations(&app, &nobody.access_token).await.is_empty());

    // By email without a user: the invitation waits for the first sign-in, which does not join
    // the workspace by itself; a lapsed invitation cannot be accepted.
    let invited = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("Cleo@Example.com".into()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap();
    let Some(MemberOrInvitation::Invitation(invitation)) = invited.member_or_invitation else {
        panic!("an unknown email gets an invitation");
    };
    assert_eq!(invitation.email, "cleo@example.com");
    let err = add(
        &app,
        &ann.access_token,
        &acme,
        Invitee::Email("cleo@example.com".into()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "one pending invitation");
    let cleo = sign_in(&app, "cleo@example.com", "cleo-home", "owner").await;
    let in_acme = |listed: &pb::ListWorkspacesResponse| {
        listed
            .workspaces
            .iter()
            .find(|w| w.workspace.as_ref().unwrap().id == acme)
            .map(|w| w.role)
    };
    let listed = ws(&app)
        .list_workspaces(with_bearer(
            ListWorkspacesRequest::default(),
            &cleo.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_acme(&listed), None, "sign-in does not join");
    let seen = my_invitations(&app, &cleo.access_token).await;
    assert_eq!(seen.len(), 1);
    // Lapsed invitations: `tests/errors_members.rs`, answering_refuses_other_lapsed_and_answered_invitations.
    accept(&app, &cleo.access_token, &invitation.id)
        .await
        .unwrap();
    let listed = ws(&app)
        .list_workspaces(with_bearer(
            ListWorkspacesRequest::default(),
            &cleo.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_acme(&listed), Some(WorkspaceRole::Viewer as i32));
    assert_eq!(audit_count(&db, "invitation.accepted").await, 2);

    // Listing: paged, ordered, searchable, filterable by role.
    let all = members(&app, &ann.access_token, &acme).await;
    let emails: Vec<&str> = all.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        emails,
        ["ann@example.com", "bob@example.com", "cleo@example.com"]
    );
    let found = ws(&app)
        .list_members(with_bearer(
            ListMembersRequest {
                workspace_id: acme.clone(),
                query: "CLEO".into(),
                ..Default::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(found.len(), 1);
    let editors = ws(&app)
        .list_members(with_bearer(
            ListMembersRequest {
                workspace_id: acme.clone(),
                role: WorkspaceRole::Editor as i32,
                ..Default::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(editors.len(), 1);

    // Bob signs in to acme; an editor may not manage members.
    let bob = sign_in(&app, "bob@example.com", "acme", "editor").await;
    let err = add(
        &app,
        &bob.access_token,
        &acme,
        Invitee::Email("dan@example.com".into()),
        WorkspaceRole::Viewer,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A role change revokes bob's session in acme; his next sign-in carries the new role.
    let changed = ws(&app)
        .update_member_role(with_bearer(
            UpdateMemberRoleRequest {
                workspace_id: acme.clone(),
                user_id: bob_id.clone(),
                role: WorkspaceRole::Admin as i32,
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.member.unwrap().role, WorkspaceRole::Admin as i32);
    assert!(changed.revoked_session_count >= 1);
    assert_eq!(
        me_status(&app, &bob.access_token).await,
        Code::Unauthenticated
    );
    assert_eq!(
        me_status(&app, &bob_home.access_token).await,
        Code::Ok,
        "sessions in other workspaces stay"
    );
    let bob = sign_in(&app, "bob@example.com", "acme", "admin").await;
    assert_eq!(claims(&bob.access_token)["wrole"], "admin");
    // Setting the same role again is a no-op without revocation.
    let same = ws(&app)
        .update_member_role(with_bearer(
            UpdateMemberRoleRequest {
                workspace_id: acme.clone(),
                user_id: bob_id.clone(),
                role: WorkspaceRole::Admin as i32,
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.revoked_session_count, 0);

    // An admin may not touch the owner role.
    for (user, role) in [
        (bob_id.clone(), WorkspaceRole::Owner),
        (ann.user.id.to_string(), WorkspaceRole::Viewer),
    ] {
        let err = ws(&app)
            .update_member_role(with_bearer(
                UpdateMemberRoleRequest {
                    workspace_id: acme.clone(),
                    user_id: user,
                    role: role as i32,
                },
                &bob.access_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let err = ws(&app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: acme.clone(),
                user_id: ann.user.id.to_string(),
            },
            &bob.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The last owner can neither be demoted nor leave.
    let err = ws(&app)
        .update_member_role(with_bearer(
            UpdateMemberRoleRequest {
                workspace_id: acme.clone(),
                user_id: ann.user.id.to_string(),
                role: WorkspaceRole::Admin as i32,
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = ws(&app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: acme.clone(),
                user_id: ann.user.id.to_string(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Group membership reaches the `groups` claim at the next refresh.
    let group = ws(&app)
        .create_group(with_bearer(
            CreateGroupRequest {
                workspace_id: acme.clone(),
                name: "Finance".into(),
                description: String::new(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    ws(&app)
        .add_group_member(with_bearer(
            AddGroupMemberRequest {
                group_id: group.id.clone(),
                user_id: bob_id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap();
    let refreshed = AuthServiceClient::new(app.channel.clone())
        .refresh(RefreshRequest {
            refresh_token: bob.refresh_token.clone(),
            workspace_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(
        claims(&refreshed.access_token)["groups"],
        serde_json::json!([group.id])
    );

    // Removal: sessions revoked, groups left, refresh refused.
    let removed = ws(&app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: acme.clone(),
                user_id: bob_id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.revoked_session_count >= 1);
    assert_eq!(
        me_status(&app, &refreshed.access_token).await,
        Code::Unauthenticated
    );
    let refused = AuthServiceClient::new(app.channel.clone())
        .refresh(RefreshRequest {
            refresh_token: refreshed.refresh_token.clone(),
            workspace_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let group_members = ws(&app)
        .list_group_members(with_bearer(
            ListGroupMembersRequest {
                group_id: group.id.clone(),
                ..Default::default()
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .members;
    assert!(
        group_members.is_empty(),
        "a removed member leaves its groups"
    );
    let err = ws(&app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: acme.clone(),
                user_id: bob_id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "removing a non-member");

    // A member may leave on their own.
    let cleo_in_acme = sign_in(&app, "cleo@example.com", "acme", "viewer").await;
    ws(&app)
        .remove_member(with_bearer(
            RemoveMemberRequest {
                workspace_id: acme.clone(),
                user_id: cleo.user.id.to_string(),
            },
            &cleo_in_acme.access_token,
        ))
        .await
        .unwrap();
    assert_eq!(audit_count(&db, "member.left").await, 1);
    assert_eq!(audit_count(&db, "member.removed").await, 1);
    assert_eq!(audit_count(&db, "member.role_changed").await, 1);
    app.stop().await;
}

async fn the_last_owner_survives_concurrent_demotions_and_removals(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    // Twenty owners each demote themselves or leave, all at once: unguarded, every request
    // would pass and leave the workspace ownerless.
    let mut owners = Vec::new();
    for i in 0..20 {
        owners.push(sign_in(&app, &format!("owner{i}@example.com"), "contested", "owner").await);
    }
    let workspace = owners[0].scope.as_ref().unwrap().workspace.id.to_string();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(owners.len()));
    let mut calls = Vec::new();
    for owner in &owners {
        let token = owner.access_token.clone();
        let target = owner.user.id.to_string();
        let demote = rng.bool();
        let mut client = ws(&app);
        let workspace = workspace.clone();
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            if demote {
                client
                    .update_member_role(with_bearer(
                        UpdateMemberRoleRequest {
                            workspace_id: workspace,
                            user_id: target,
                            role: WorkspaceRole::Viewer as i32,
                        },
                        &token,
                    ))
                    .await
                    .map(|_| ())
            } else {
                client
                    .remove_member(with_bearer(
                        RemoveMemberRequest {
                            workspace_id: workspace,
                            user_id: target,
                        },
                        &token,
                    ))
                    .await
                    .map(|_| ())
            }
        }));
    }
    let mut refused = 0;
    for call in calls {
        if let Err(status) = call.await.unwrap() {
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "seed {seed}: {status:?}"
            );
            refused += 1;
        }
    }
    // Count owners straight from the store.
    let state = app.app.state();
    let id: sentinel::model::WorkspaceId = workspace.parse().unwrap();
    let owners_left = state
        .store
        .list_members(
            id,
            None,
            Some(sentinel::model::WorkspaceRole::Owner),
            None,
            100,
        )
        .await
        .unwrap()
        .len();
    assert_eq!(
        owners_left, 1,
        "seed {seed}: exactly the last owner remains"
    );
    assert_eq!(
        refused, 1,
        "seed {seed}: only the last owner's request is refused"
    );
    app.stop().await;
}

async fn groups_have_unique_names_and_member_rules(backend: Backend) {
    let (app, db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let eve = sign_in(&app, "eve@example.com", "acme", "viewer").await;
    let out = sign_in(&app, "out@example.com", "elsewhere", "owner").await;
    let create = |name: &str, token: &str| {
        let request = with_bearer(
            CreateGroupRequest {
                workspace_id: acme.clone(),
                name: name.into(),
                description: "d".into(),
            },
            token,
        );
        let mut client = ws(&app);
        async move { client.create_group(request).await.map(|r| r.into_inner()) }
    };
    let finance = create("Finance", &ann.access_token)
        .await
        .unwrap()
        .group
        .unwrap();
    let ops = create("Ops", &ann.access_token)
        .await
        .unwrap()
        .group
        .unwrap();
    assert_eq!(
        create("FINANCE", &ann.access_token)
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists,
        "names are unique regardless of case"
    );
    let err = create("", &ann.access_token).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("name"));
    assert_eq!(
        create("Viewers", &eve.access_token)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let err = ws(&app)
        .update_group(with_bearer(
            UpdateGroupRequest {
                id: ops.id.clone(),
                name: Some("finance".into()),
                description: None,
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let member = |group: &str, user: &str, add: bool| {
        let mut client = ws(&app);
        let (group, user, token) = (
            group.to_string(),
            user.to_string(),
            ann.access_token.clone(),
        );
        async move {
            if add {
                client
                    .add_group_member(with_bearer(
                        AddGroupMemberRequest {
                            group_id: group,
                            user_id: user,
                        },
                        &token,
                    ))
                    .await
                    .map(|r| r.into_inner().added)
            } else {
                client
                    .remove_group_member(with_bearer(
                        RemoveGroupMemberRequest {
                            group_id: group,
                            user_id: user,
                        },
                        &token,
                    ))
                    .await
                    .map(|r| r.into_inner().removed)
            }
        }
    };
    let eve_id = eve.user.id.to_string();
    assert!(member(&finance.id, &eve_id, true).await.unwrap());
    assert!(
        !member(&finance.id, &eve_id, true).await.unwrap(),
        "idempotent"
    );
    assert_eq!(
        member(&finance.id, &out.user.id.to_string(), true)
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition,
        "only workspace members join groups"
    );
    assert_eq!(
        member(&finance.id, &uuid::Uuid::new_v4().to_string(), true)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(
        !member(&ops.id, &eve_id, false).await.unwrap(),
        "not a member"
    );

    let listed = ws(&app)
        .list_groups(with_bearer(
            ListGroupsRequest {
                workspace_id: acme.clone(),
                user_id: eve_id.clone(),
                ..Default::default()
            },
            &eve.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Finance");
    assert_eq!(listed[0].member_count, 1);

    ws(&app)
        .delete_group(with_bearer(
            DeleteGroupRequest {
                id: finance.id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap();
    let err = ws(&app)
        .delete_group(with_bearer(
            DeleteGroupRequest {
                id: finance.id.clone(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(audit_count(&db, "group.member_added").await, 1);
    app.stop().await;
}

async fn custom_roles_hold_service_actions(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let billing = service_key(&app, "billing").await;
    let docs = service_key(&app, "docs").await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let bob = sign_in(&app, "bob@example.com", "acme", "editor").await;
    let perms = || PermissionServiceClient::new(app.channel.clone());

    let register = |actions: Vec<(&str, &str)>| {
        let mut request = tonic::Request::new(RegisterActionsRequest {
            actions: actions
                .into_iter()
                .map(|(a, d)| ActionDefinition {
                    action: a.into(),
                    description: d.into(),
                })
                .collect(),
        });
        request
            .metadata_mut()
            .insert("x-service-key", billing.parse().unwrap());
        let mut client = perms();
        async move {
            client
                .register_actions(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = register(vec![
        ("invoice.read", "Read invoices"),
        ("invoice.approve", "Approve"),
    ])
    .await
    .unwrap();
    assert_eq!((first.created_count, first.updated_count), (2, 0));
    let again = register(vec![("invoice.approve", "Approve invoices")])
        .await
        .unwrap();
    assert_eq!((again.created_count, again.updated_count), (0, 1));
    for bad in [
        vec![("Invoice", "")],
        vec![("a.b", ""), ("a.b", "")],
        vec![],
    ] {
        let err = register(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("actions"), "{}", err.message());
    }

    let create = |service: &str, actions: Vec<&str>, request_key: Option<&str>| {
        let message = CreateRoleRequest {
            workspace_id: acme.clone(),
            service_name: service.into(),
            name: "Approver".into(),
            description: String::new(),
            actions: actions.into_iter().map(String::from).collect(),
        };
        let request = match request_key {
            Some(key) => dual(message, key, &ann.access_token),
            None => with_bearer(message, &ann.access_token),
        };
        let mut client = ws(&app);
        async move { client.create_role(request).await.map(|r| r.into_inner()) }
    };
    let err = create("billing", vec!["invoice.delete"], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "unregistered action");
    let err = create("nope", vec![], None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("service_name"));
    let err = create("billing", vec![], Some(&docs)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "another service's role");
    let role = create("billing", vec!["invoice.approve", "invoice.approve"], None)
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(role.actions, ["invoice.approve"]);
    assert_eq!(
        create("billing", vec![], None).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    let check = |action: &str| {
        let request = dual(
            CheckActionRequest {
                action: action.into(),
                workspace_id: String::new(),
                consistency: None,
            },
            &billing,
            &bob.access_token,
        );
        let mut client = perms();
        async move { client.check_action(request).await.map(|r| r.into_inner()) }
    };
    assert!(!check("invoice.approve").await.unwrap().allowed);
    let assigned = ws(&app)
        .assign_role(with_bearer(
            AssignRoleRequest {
                id: role.id.clone(),
                user_id: bob.user.id.to_string(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(assigned.assigned);
    let checked = check("invoice.approve").await.unwrap();
    assert!(checked.allowed);
    assert_eq!(checked.roles, ["Approver"]);
    assert!(!check("invoice.read").await.unwrap().allowed);
    assert!(!check("never.registered").await.unwrap().allowed);
    assert_eq!(
        check("Bad Action").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let actions = perms()
        .list_user_actions(dual(
            ListUserActionsRequest {
                workspace_id: acme.clone(),
                ..Default::default()
            },
            &billing,
            &bob.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(actions.actions, ["invoice.approve"]);
    // Another service sees none of billing's actions for the same user.
    let other = perms()
        .check_action(dual(
            CheckActionRequest {
                action: "invoice.approve".into(),
                workspace_id: acme.clone(),
                consistency: None,
            },
            &docs,
            &bob.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!other.allowed);

    // SetRoleActions replaces; the service itself may manage its own roles.
    let updated = ws(&app)
        .set_role_actions(common::with_service_key(
            SetRoleActionsRequest {
                id: role.id.clone(),
                actions: vec!["invoice.read".into()],
            },
            &billing,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.role.unwrap().actions, ["invoice.read"]);
    assert!(check("invoice.read").await.unwrap().allowed);
    assert!(!check("invoice.approve").await.unwrap().allowed);
    let err = ws(&app)
        .delete_role(common::with_service_key(
            DeleteRoleRequest {
                id: role.id.clone(),
            },
            &docs,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let listed = ws(&app)
        .list_roles(common::with_service_key(
            ListRolesRequest {
                workspace_id: acme.clone(),
                ..Default::default()
            },
            &docs,
        ))
        .await
        .unwrap()
        .into_inner()
        .roles;
    assert!(listed.is_empty(), "a service key lists its own roles only");

    let unassigned = ws(&app)
        .unassign_role(with_bearer(
            UnassignRoleRequest {
                id: role.id.clone(),
                user_id: bob.user.id.to_string(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(unassigned.removed);
    assert!(!check("invoice.read").await.unwrap().allowed);
    let again = ws(&app)
        .unassign_role(with_bearer(
            UnassignRoleRequest {
                id: role.id.clone(),
                user_id: bob.user.id.to_string(),
            },
            &ann.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.removed, "idempotent");
    // An editor may not manage roles.
    let err = ws(&app)
        .delete_role(with_bearer(
            DeleteRoleRequest {
                id: role.id.clone(),
            },
            &bob.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    app.stop().await;
}

/// Ids of one workspace's contents.
struct Tenant {
    owner: sentinel::tokens::service::IssuedTokens,
    workspace: String,
    member: String,
    group: String,
    role: String,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let owner = sign_in(app, &format!("owner@{name}.example.com"), name, "owner").await;
    let member = sign_in(app, &format!("member@{name}.example.com"), name, "viewer").await;
    let workspace = owner.scope.as_ref().unwrap().workspace.id.to_string();
    let group = ws(app)
        .create_group(with_bearer(
            CreateGroupRequest {
                workspace_id: workspace.clone(),
                name: format!("{name} team"),
                description: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
        .id;
    ws(app)
        .add_group_member(with_bearer(
            AddGroupMemberRequest {
                group_id: group.clone(),
                user_id: member.user.id.to_string(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap();
    let role = ws(app)
        .create_role(with_bearer(
            CreateRoleRequest {
                workspace_id: workspace.clone(),
                service_name: "billing".into(),
                name: format!("{name} approvers"),
                description: String::new(),
                actions: vec!["invoice.approve".into()],
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap()
        .id;
    Tenant {
        member: member.user.id.to_string(),
        owner,
        workspace,
        group,
        role,
    }
}

/// Calls RPC number `which` with `target`'s ids as `token`'s caller; the error code and message.
async fn foreign_call(app: &TestApp, which: usize, token: &str, target: &Ids) -> (Code, String) {
    let mut c = ws(app);
    macro_rules! t {
        ($m:expr) => {
            with_bearer($m, token)
        };
    }
    let (w, u, g, r) = (
        target.workspace.clone(),
        target.member.clone(),
        target.group.clone(),
        target.role.clone(),
    );
    let result: Result<(), tonic::Status> = match which {
        0 => c
            .get_workspace(t!(pb::GetWorkspaceRequest { id: w }))
            .await
            .map(drop),
        1 => c
            .update_workspace(t!(pb::UpdateWorkspaceRequest {
                id: w,
                name: Some("taken over".into()),
                ..Default::default()
            }))
            .await
            .map(drop),
        2 => c
            .delete_workspace(t!(pb::DeleteWorkspaceRequest { id: w }))
            .await
            .map(drop),
        3 => c
            .list_members(t!(ListMembersRequest {
                workspace_id: w,
                ..Default::default()
            }))
            .await
            .map(drop),
        4 => c
            .add_member(t!(AddMemberRequest {
                workspace_id: w,
                invitee: Some(Invitee::Email("intruder@example.com".into())),
                role: WorkspaceRole::Owner as i32,
            }))
            .await
            .map(drop),
        5 => c
            .update_member_role(t!(UpdateMemberRoleRequest {
                workspace_id: w,
                user_id: u,
                role: WorkspaceRole::Admin as i32,
            }))
            .await
            .map(drop),
        6 => c
            .remove_member(t!(RemoveMemberRequest {
                workspace_id: w,
                user_id: u,
            }))
            .await
            .map(drop),
        7 => c
            .create_group(t!(CreateGroupRequest {
                workspace_id: w,
                name: "intruders".into(),
                description: String::new(),
            }))
            .await
            .map(drop),
        8 => c
            .list_groups(t!(ListGroupsRequest {
                workspace_id: w,
                ..Default::default()
            }))
            .await
            .map(drop),
        9 => c
            .update_group(t!(UpdateGroupRequest {
                id: g,
                name: Some("renamed".into()),
                description: None,
            }))
            .await
            .map(drop),
        10 => c
            .delete_group(t!(DeleteGroupRequest { id: g }))
            .await
            .map(drop),
        11 => c
            .add_group_member(t!(AddGroupMemberRequest {
                group_id: g,
                user_id: u,
            }))
            .await
            .map(drop),
        12 => c
            .remove_group_member(t!(RemoveGroupMemberRequest {
                group_id: g,
                user_id: u,
            }))
            .await
            .map(drop),
        13 => c
            .list_group_members(t!(ListGroupMembersRequest {
                group_id: g,
                ..Default::default()
            }))
            .await
            .map(drop),
        14 => c
            .create_role(t!(CreateRoleRequest {
                workspace_id: w,
                service_name: "billing".into(),
                name: "intruders".into(),
                description: String::new(),
                actions: vec![],
            }))
            .await
            .map(drop),
        15 => c
            .list_roles(t!(ListRolesRequest {
                workspace_id: w,
                ..Default::default()
            }))
            .await
            .map(drop),
        16 => c
            .delete_role(t!(DeleteRoleRequest { id: r }))
            .await
            .map(drop),
        17 => c
            .set_role_actions(t!(SetRoleActionsRequest {
                id: r,
                actions: vec![],
            }))
            .await
            .map(drop),
        18 => c
            .assign_role(t!(AssignRoleRequest { id: r, user_id: u }))
            .await
            .map(drop),
        19 => c
            .unassign_role(t!(UnassignRoleRequest { id: r, user_id: u }))
            .await
            .map(drop),
        _ => unreachable!(),
    };
    match result {
        Ok(()) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_string()),
    }
}
const FOREIGN_CALLS: usize = 20;

/// The ids one call uses.
#[derive(Clone)]
struct Ids {
    workspace: String,
    member: String,
    group: String,
    role: String,
}

async fn workspaces_are_isolated_from_each_other(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let billing = service_key(&app, "billing").await;
    let mut request = tonic::Request::new(RegisterActionsRequest {
        actions: vec![ActionDefinition {
            action: "invoice.approve".into(),
            description: String::new(),
        }],
    });
    request
        .metadata_mut()
        .insert("x-service-key", billing.parse().unwrap());
    PermissionServiceClient::new(app.channel.clone())
        .register_actions(request)
        .await
        .unwrap();
    let tenants = [
        tenant(&app, "alpha").await,
        tenant(&app, "beta").await,
        tenant(&app, "gamma").await,
    ];
    let mut before = Vec::new();
    for t in &tenants {
        before.push(contents(&app, t).await);
    }
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<usize> = (0..FOREIGN_CALLS).collect();
    rng.shuffle(&mut order);
    for which in order {
        let attacker = rng.usize(..tenants.len());
        let victim = (attacker + 1 + rng.usize(..tenants.len() - 1)) % tenants.len();
        let token = &tenants[attacker].owner.access_token;
        let v = &tenants[victim];
        let real = Ids {
            workspace: v.workspace.clone(),
            member: v.member.clone(),
            group: v.group.clone(),
            role: v.role.clone(),
        };
        let made_up = Ids {
            workspace: uuid::Uuid::new_v4().to_string(),
            member: uuid::Uuid::new_v4().to_string(),
            group: uuid::Uuid::new_v4().to_string(),
            role: uuid::Uuid::new_v4().to_string(),
        };
        let (code, message) = foreign_call(&app, which, token, &real).await;
        assert!(
            matches!(code, Code::NotFound | Code::PermissionDenied),
            "seed {seed}, call {which}: {code:?} {message}"
        );
        let (code_unknown, message_unknown) = foreign_call(&app, which, token, &made_up).await;
        assert_eq!(
            (code, &message),
            (code_unknown, &message_unknown),
            "seed {seed}, call {which}: a foreign id must look like an unknown one"
        );
    }
    // The victims are untouched: every member, group, group member and role, field by field.
    for (t, before) in tenants.iter().zip(&before) {
        assert_eq!(&contents(&app, t).await, before, "seed {seed}");
    }
    // Resources: another workspace's resource is a deny for Check and off limits for Share.
    for t in &tenants {
        let mut request = tonic::Request::new(pb::RegisterResourceRequest {
            resource_type: "invoice".into(),
            resource_id: format!("inv-{}", t.workspace),
            workspace_id: t.workspace.clone(),
            visibility: pb::Visibility::Workspace as i32,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("x-service-key", billing.parse().unwrap());
        PermissionServiceClient::new(app.channel.clone())
            .register_resource(request)
            .await
            .unwrap();
    }
    for (attacker, victim) in [(0, 1), (1, 2), (2, 0)] {
        let resource = Some(pb::ResourceRef {
            resource_type: "invoice".into(),
            resource_id: format!("inv-{}", tenants[victim].workspace),
        });
        let token = &tenants[attacker].owner.access_token;
        let answer = PermissionServiceClient::new(app.channel.clone())
            .check(dual(
                pb::CheckRequest {
                    resource: resource.clone(),
                    action: "view".into(),
                    consistency: None,
                },
                &billing,
                token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!answer.allowed, "seed {seed}: a foreign resource is a deny");
        let err = PermissionServiceClient::new(app.channel.clone())
            .share(dual(
                pb::ShareRequest {
                    resource,
                    grantee: Some(pb::Grantee {
                        grantee: Some(pb::grantee::Grantee::UserId(
                            tenants[attacker].owner.user.id.to_string(),
                        )),
                    }),
                    permission: pb::Permission::Edit as i32,
                    expires_at: None,
                },
                &billing,
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "seed {seed}");
    }
    // RBAC reads of another workspace answer "no", not an error: alpha's member holds
    // "invoice.approve" through alpha's role, and only in alpha.
    ws(&app)
        .assign_role(with_bearer(
            AssignRoleRequest {
                id: tenants[0].role.clone(),
                user_id: tenants[0].member.clone(),
            },
            &tenants[0].owner.access_token,
        ))
        .await
        .unwrap();
    let member_token = sign_in(&app, "member@alpha.example.com", "alpha", "viewer").await;
    let may_approve = |workspace: &str| {
        let request = dual(
            CheckActionRequest {
                action: "invoice.approve".into(),
                workspace_id: workspace.into(),
                consistency: None,
            },
            &billing,
            &member_token.access_token,
        );
        let mut client = PermissionServiceClient::new(app.channel.clone());
        async move { client.check_action(request).await.unwrap().into_inner() }
    };
    assert!(
        may_approve(&tenants[0].workspace).await.allowed,
        "the role holds in its own workspace"
    );
    for victim in &tenants[1..] {
        assert!(
            !may_approve(&victim.workspace).await.allowed,
            "a role of one workspace grants nothing in another"
        );
    }
    app.stop().await;
}

/// Everything a tenant's owner can list of their workspace, in a comparable form.
async fn contents(app: &TestApp, t: &Tenant) -> String {
    let token = &t.owner.access_token;
    let members = members(app, token, &t.workspace).await;
    // One listing RPC with its request and the repeated field of its answer.
    macro_rules! list {
        ($method:ident, $request:expr, $field:ident) => {
            ws(app)
                .$method(with_bearer($request, token))
                .await
                .unwrap()
                .into_inner()
                .$field
        };
    }
    let (workspace_id, group_id) = (t.workspace.clone(), t.group.clone());
    let groups = list!(
        list_groups,
        ListGroupsRequest {
            workspace_id: workspace_id.clone(),
            ..Default::default()
        },
        groups
    );
    let group_members = list!(
        list_group_members,
        ListGroupMembersRequest {
            group_id,
            ..Default::default()
        },
        members
    );
    let roles = list!(
        list_roles,
        ListRolesRequest {
            workspace_id,
            ..Default::default()
        },
        roles
    );
    assert_eq!(
        (
            members.len(),
            groups.len(),
            group_members.len(),
            roles.len()
        ),
        (2, 1, 1, 1),
        "a tenant's contents"
    );
    format!("{members:?}\n{groups:?}\n{group_members:?}\n{roles:?}")
}
