//! The documented errors of WorkspaceService's invitation RPCs, on both backends: AddMember
//! (unknown user, a member or pending invitee invited again, members below admin, an admin
//! inviting an owner, bad email/user_id/role), ListInvitations and CancelInvitation (outsiders,
//! members below admin), AcceptInvitation (someone else's invitation, a lapsed one, an invitee
//! who joined meanwhile) and DeclineInvitation (someone else's or an answered invitation); and
//! what inviting a deactivated user answers. Each refusal leaves the invitations as they were.

mod common;

use common::clients::{unknown_id, ws};
use common::contract::refused;
use common::{Backend, TestApp, platform_admin, sign_in, with_bearer};
use sentinel::proto::v1::admin_service_client::AdminServiceClient;
use sentinel::proto::v1::user_service_client::UserServiceClient;
use sentinel::proto::v1::{
    AcceptInvitationRequest, AddMemberRequest, CancelInvitationRequest, DeclineInvitationRequest,
    ImportCsvRequest, Invitation, ListInvitationsRequest, ListMembersRequest,
    ListMyInvitationsRequest, UpdateUserRequest, WorkspaceRole,
    WorkspaceRole::{Admin, Editor, Owner, Viewer},
    add_member_request::Invitee,
    add_member_response::MemberOrInvitation,
};
use sentinel::tokens::service::IssuedTokens;
use tonic::{Code, Status};

/// workspace.proto, AddMember: "Invitations lapse after 30 days."
const INVITATION_DAYS: u64 = 30;

both_backends!(
    inviting_refuses_bad_input_low_roles_and_second_invitations,
    invitations_are_listed_and_withdrawn_by_admins_only,
    answering_refuses_other_lapsed_and_answered_invitations,
    inviting_a_deactivated_user,
);

async fn invite_as(
    app: &TestApp,
    who: &IssuedTokens,
    workspace_id: &str,
    invitee: Option<Invitee>,
    role: i32,
) -> Result<Invitation, Status> {
    let answer = ws(app)
        .add_member(with_bearer(
            AddMemberRequest {
                workspace_id: workspace_id.into(),
                invitee,
                role,
            },
            &who.access_token,
        ))
        .await?
        .into_inner();
    match answer.member_or_invitation {
        Some(MemberOrInvitation::Invitation(invitation)) => Ok(invitation),
        other => panic!("AddMember answers an invitation, not {other:?}"),
    }
}

async fn invite(
    app: &TestApp,
    who: &IssuedTokens,
    workspace_id: &str,
    invitee: Invitee,
    role: WorkspaceRole,
) -> Result<Invitation, Status> {
    invite_as(app, who, workspace_id, Some(invitee), role as i32).await
}

fn email(address: &str) -> Invitee {
    Invitee::Email(address.into())
}

fn user(id: impl ToString) -> Invitee {
    Invitee::UserId(id.to_string())
}

/// The pending invitations of a workspace, each as its email (or user id when by id), oldest
/// first.
async fn pending(
    app: &TestApp,
    who: &IssuedTokens,
    workspace_id: &str,
) -> Result<Vec<String>, Status> {
    ws(app)
        .list_invitations(with_bearer(
            ListInvitationsRequest {
                workspace_id: workspace_id.into(),
                ..Default::default()
            },
            &who.access_token,
        ))
        .await
        .map(|r| {
            r.into_inner()
                .invitations
                .into_iter()
                .map(|i| {
                    if i.email.is_empty() {
                        i.user_id
                    } else {
                        i.email
                    }
                })
                .collect()
        })
}

/// The ids of the invitations addressed to the caller.
async fn mine(app: &TestApp, who: &IssuedTokens) -> Vec<String> {
    ws(app)
        .list_my_invitations(with_bearer(
            ListMyInvitationsRequest::default(),
            &who.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations
        .into_iter()
        .map(|i| i.id)
        .collect()
}

async fn members(app: &TestApp, who: &IssuedTokens, workspace_id: &str) -> Vec<(String, i32)> {
    let mut members: Vec<(String, i32)> = ws(app)
        .list_members(with_bearer(
            ListMembersRequest {
                workspace_id: workspace_id.into(),
                page_size: 500,
                ..Default::default()
            },
            &who.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|m| (m.user.unwrap().email, m.role))
        .collect();
    members.sort();
    members
}

async fn cancel(app: &TestApp, who: &IssuedTokens, id: &str) -> Result<(), Status> {
    ws(app)
        .cancel_invitation(with_bearer(
            CancelInvitationRequest {
                invitation_id: id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(drop)
}

async fn accept(app: &TestApp, who: &IssuedTokens, id: &str) -> Result<i32, Status> {
    ws(app)
        .accept_invitation(with_bearer(
            AcceptInvitationRequest {
                invitation_id: id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().member.unwrap().role)
}

async fn decline(app: &TestApp, who: &IssuedTokens, id: &str) -> Result<(), Status> {
    ws(app)
        .decline_invitation(with_bearer(
            DeclineInvitationRequest {
                invitation_id: id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(drop)
}

async fn inviting_refuses_bad_input_low_roles_and_second_invitations(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let adam = sign_in(&app, "adam@example.com", "acme", "admin").await;
    let ed = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let vic = sign_in(&app, "vic@example.com", "acme", "viewer").await;
    let dan = sign_in(&app, "dan@example.com", "dan-home", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;

    // NOT_FOUND for a user id nobody has; an outsider sees acme like an unknown workspace.
    refused(
        "WorkspaceService/AddMember",
        Code::NotFound,
        invite(&app, &ann, &acme, user(unknown_id()), Viewer).await,
    );
    let hidden = refused(
        "WorkspaceService/AddMember",
        Code::NotFound,
        invite(&app, &bob, &acme, user(dan.user.id), Viewer).await,
    );
    let missing = refused(
        "WorkspaceService/AddMember",
        Code::NotFound,
        invite(&app, &bob, &unknown_id(), user(dan.user.id), Viewer).await,
    );
    assert_eq!(
        (hidden.code(), hidden.message()),
        (missing.code(), missing.message())
    );

    // INVALID_ARGUMENT naming the field: a malformed email or user id, no invitee, no role or
    // one that does not exist.
    for (invitee, role, field) in [
        (Some(email("not-an-email")), Viewer as i32, "email"),
        (Some(email("")), Viewer as i32, "email"),
        (Some(user("42")), Viewer as i32, "user_id"),
        (Some(user("")), Viewer as i32, "user_id"),
        (
            Some(email("cleo@example.com")),
            WorkspaceRole::Unspecified as i32,
            "role",
        ),
        (Some(email("cleo@example.com")), 42, "role"),
        (None, Viewer as i32, "email"),
    ] {
        let status = refused(
            "WorkspaceService/AddMember",
            Code::InvalidArgument,
            invite_as(&app, &ann, &acme, invitee, role).await,
        );
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
    }

    // PERMISSION_DENIED below admin (an editor, a viewer of acme), and for an admin inviting
    // an owner.
    for (who, role) in [(&ed, Viewer), (&vic, Viewer), (&adam, Owner)] {
        refused(
            "WorkspaceService/AddMember",
            Code::PermissionDenied,
            invite(&app, who, &acme, email("cleo@example.com"), role).await,
        );
        refused(
            "WorkspaceService/AddMember",
            Code::PermissionDenied,
            invite(&app, who, &acme, user(dan.user.id), role).await,
        );
    }
    assert!(pending(&app, &ann, &acme).await.unwrap().is_empty());
    assert!(mine(&app, &dan).await.is_empty(), "nothing reached dan");

    // ALREADY_EXISTS for a member, by id and by email (in any case).
    for invitee in [
        user(ed.user.id),
        email("ed@example.com"),
        email("Ed@Example.COM"),
    ] {
        refused(
            "WorkspaceService/AddMember",
            Code::AlreadyExists,
            invite(&app, &adam, &acme, invitee, Admin).await,
        );
    }
    // ALREADY_EXISTS for a pending invitee: an email invited again, dan invited by id and then
    // by id or email, whoever invites and whatever the role.
    invite(&app, &adam, &acme, email("cleo@example.com"), Admin)
        .await
        .unwrap();
    invite(&app, &ann, &acme, user(dan.user.id), Editor)
        .await
        .unwrap();
    for (invitee, role) in [
        (email("CLEO@example.com"), Viewer),
        (email("cleo@example.com"), Owner),
        (user(dan.user.id), Editor),
        (email("dan@example.com"), Viewer),
    ] {
        refused(
            "WorkspaceService/AddMember",
            Code::AlreadyExists,
            invite(&app, &ann, &acme, invitee, role).await,
        );
    }
    assert_eq!(
        pending(&app, &ann, &acme).await.unwrap(),
        ["cleo@example.com".to_string(), dan.user.id.to_string()],
        "the first invitations stand, and no other"
    );
    assert_eq!(mine(&app, &dan).await.len(), 1);

    app.stop().await;
}

async fn invitations_are_listed_and_withdrawn_by_admins_only(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let adam = sign_in(&app, "adam@example.com", "acme", "admin").await;
    let ed = sign_in(&app, "ed@example.com", "acme", "editor").await;
    let vic = sign_in(&app, "vic@example.com", "acme", "viewer").await;
    let bob = sign_in(&app, "bob@example.com", "elsewhere", "owner").await;
    let elsewhere = bob.scope.as_ref().unwrap().workspace.id.to_string();
    let to_cleo = invite(&app, &ann, &acme, email("cleo@example.com"), Editor)
        .await
        .unwrap();
    let to_bob = invite(&app, &ann, &acme, user(bob.user.id), Viewer)
        .await
        .unwrap();
    let in_elsewhere = invite(&app, &bob, &elsewhere, email("cleo@example.com"), Viewer)
        .await
        .unwrap();

    // ListInvitations: an outsider sees acme like an unknown workspace (even bob, invited to
    // it); an editor or a viewer of acme is below admin.
    let hidden = refused(
        "WorkspaceService/ListInvitations",
        Code::NotFound,
        pending(&app, &bob, &acme).await,
    );
    let missing = refused(
        "WorkspaceService/ListInvitations",
        Code::NotFound,
        pending(&app, &bob, &unknown_id()).await,
    );
    assert_eq!(
        (hidden.code(), hidden.message()),
        (missing.code(), missing.message())
    );
    refused(
        "WorkspaceService/ListInvitations",
        Code::NotFound,
        pending(&app, &ann, &elsewhere).await,
    );
    for who in [&ed, &vic] {
        refused(
            "WorkspaceService/ListInvitations",
            Code::PermissionDenied,
            pending(&app, who, &acme).await,
        );
    }
    let listed = pending(&app, &adam, &acme).await.unwrap();
    assert_eq!(
        listed,
        ["cleo@example.com".to_string(), bob.user.id.to_string()]
    );

    // CancelInvitation NOT_FOUND: an unknown id, and an invitation of a workspace the caller is
    // not in (bob cancelling his own invitation to acme, ann one of bob's workspace).
    refused(
        "WorkspaceService/CancelInvitation",
        Code::NotFound,
        cancel(&app, &ann, &unknown_id()).await,
    );
    for (who, id) in [
        (&bob, &to_cleo.id),
        (&bob, &to_bob.id),
        (&ann, &in_elsewhere.id),
    ] {
        refused(
            "WorkspaceService/CancelInvitation",
            Code::NotFound,
            cancel(&app, who, id).await,
        );
    }
    // PERMISSION_DENIED below admin.
    for who in [&ed, &vic] {
        refused(
            "WorkspaceService/CancelInvitation",
            Code::PermissionDenied,
            cancel(&app, who, &to_cleo.id).await,
        );
    }
    assert_eq!(pending(&app, &ann, &acme).await.unwrap(), listed);
    assert_eq!(pending(&app, &bob, &elsewhere).await.unwrap().len(), 1);
    assert_eq!(mine(&app, &bob).await, std::slice::from_ref(&to_bob.id));
    // An admin withdraws one; withdrawn, it is NOT_FOUND.
    cancel(&app, &adam, &to_cleo.id).await.unwrap();
    refused(
        "WorkspaceService/CancelInvitation",
        Code::NotFound,
        cancel(&app, &ann, &to_cleo.id).await,
    );
    assert_eq!(
        pending(&app, &ann, &acme).await.unwrap(),
        [bob.user.id.to_string()]
    );

    app.stop().await;
}

async fn answering_refuses_other_lapsed_and_answered_invitations(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let dan = sign_in(&app, "dan@example.com", "dan-home", "owner").await;
    let bob = sign_in(&app, "bob@example.com", "bob-home", "owner").await;
    let cleo = sign_in(&app, "cleo@example.com", "cleo-home", "owner").await;
    let frank = sign_in(&app, "frank@example.com", "frank-home", "owner").await;
    let root = platform_admin(&app).await;
    let to_dan = invite(&app, &ann, &acme, user(dan.user.id), Editor)
        .await
        .unwrap();
    let to_cleo = invite(&app, &ann, &acme, email("cleo@example.com"), Viewer)
        .await
        .unwrap();
    let to_frank = invite(&app, &ann, &acme, user(frank.user.id), Editor)
        .await
        .unwrap();

    // NOT_FOUND for an unknown id and for an invitation addressed to someone else, be it a
    // stranger or the admin who sent it; nothing is answered.
    for (who, id) in [
        (&dan, &unknown_id()),
        (&bob, &to_dan.id),
        (&ann, &to_dan.id),
        (&dan, &to_cleo.id),
    ] {
        refused(
            "WorkspaceService/AcceptInvitation",
            Code::NotFound,
            accept(&app, who, id).await,
        );
        refused(
            "WorkspaceService/DeclineInvitation",
            Code::NotFound,
            decline(&app, who, id).await,
        );
    }
    assert_eq!(mine(&app, &dan).await, std::slice::from_ref(&to_dan.id));
    assert_eq!(mine(&app, &cleo).await, std::slice::from_ref(&to_cleo.id));
    assert_eq!(members(&app, &ann, &acme).await.len(), 1);

    // ALREADY_EXISTS when the invitee joined another way meanwhile (a platform admin's CSV
    // import, as viewer): the invitation is answered, and the role stays the import's.
    let imported = AdminServiceClient::new(app.channel.clone())
        .import_csv(with_bearer(
            ImportCsvRequest {
                csv: b"email,workspace,role\nfrank@example.com,acme,viewer\n".to_vec(),
                dry_run: false,
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.memberships_added, 1, "{:?}", imported.errors);
    assert_eq!(mine(&app, &frank).await, std::slice::from_ref(&to_frank.id));
    refused(
        "WorkspaceService/AcceptInvitation",
        Code::AlreadyExists,
        accept(&app, &frank, &to_frank.id).await,
    );
    assert!(mine(&app, &frank).await.is_empty(), "answered");
    refused(
        "WorkspaceService/AcceptInvitation",
        Code::NotFound,
        accept(&app, &frank, &to_frank.id).await,
    );
    assert!(
        members(&app, &ann, &acme)
            .await
            .contains(&("frank@example.com".to_string(), Viewer as i32))
    );

    // DeclineInvitation: once declined, the invitation is NOT_FOUND to decline or accept.
    decline(&app, &dan, &to_dan.id).await.unwrap();
    refused(
        "WorkspaceService/DeclineInvitation",
        Code::NotFound,
        decline(&app, &dan, &to_dan.id).await,
    );
    refused(
        "WorkspaceService/AcceptInvitation",
        Code::NotFound,
        accept(&app, &dan, &to_dan.id).await,
    );
    assert!(mine(&app, &dan).await.is_empty());
    assert_eq!(members(&app, &ann, &acme).await.len(), 2, "ann and frank");

    // FAILED_PRECONDITION for a lapsed invitation: thirty days pass on the server's clock (the
    // tokens of before have expired with them); cleo does not join.
    app.clock.advance(std::time::Duration::from_secs(
        INVITATION_DAYS * 24 * 3600 + 1,
    ));
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let cleo = sign_in(&app, "cleo@example.com", "cleo-home", "owner").await;
    assert!(
        mine(&app, &cleo).await.is_empty(),
        "a lapsed invitation is not listed"
    );
    let status = refused(
        "WorkspaceService/AcceptInvitation",
        Code::FailedPrecondition,
        accept(&app, &cleo, &to_cleo.id).await,
    );
    assert!(status.message().contains("lapsed"), "{}", status.message());
    assert!(
        !members(&app, &ann, &acme)
            .await
            .iter()
            .any(|(email, _)| email == "cleo@example.com")
    );
    // A lapsed invitation does not hold the place: cleo is invited again, and joins. The one
    // just minted is still inside its thirty days.
    let again = invite(&app, &ann, &acme, email("cleo@example.com"), Viewer)
        .await
        .expect("a lapsed invitation is replaced");
    assert_eq!(mine(&app, &cleo).await, std::slice::from_ref(&again.id));
    assert_eq!(accept(&app, &cleo, &again.id).await.unwrap(), Viewer as i32);
    assert!(
        members(&app, &ann, &acme)
            .await
            .contains(&("cleo@example.com".to_string(), Viewer as i32))
    );

    app.stop().await;
}

async fn inviting_a_deactivated_user(backend: Backend) {
    let (app, _db) = TestApp::spawn(backend).await;
    let ann = sign_in(&app, "ann@example.com", "acme", "owner").await;
    let acme = ann.scope.as_ref().unwrap().workspace.id.to_string();
    let gus = sign_in(&app, "gus@example.com", "gus-home", "owner").await;
    let root = platform_admin(&app).await;
    let set_active = |active: bool| {
        let mut users = UserServiceClient::new(app.channel.clone());
        let request = UpdateUserRequest {
            id: gus.user.id.to_string(),
            is_active: Some(active),
            ..Default::default()
        };
        let root = root.clone();
        async move {
            let user = users.update_user(with_bearer(request, &root)).await;
            user.unwrap().into_inner().user.unwrap().is_active
        }
    };
    assert!(!set_active(false).await);

    // By email: a pending invitation shaped like one to an address nobody has, as for any
    // email (the answer never tells whether, or in what state, an account exists).
    let shape = |i: &Invitation| (i.user_id.clone(), i.role, i.invited_by.clone());
    let to_gus = invite(&app, &ann, &acme, email("gus@example.com"), Viewer).await;
    let to_nobody = invite(&app, &ann, &acme, email("nobody@example.com"), Viewer).await;
    let to_gus = to_gus.unwrap();
    assert_eq!(shape(&to_gus), shape(&to_nobody.unwrap()));
    // By id (the email invitation withdrawn first): a pending invitation too, by id only;
    // gus does not join while deactivated.
    cancel(&app, &ann, &to_gus.id).await.unwrap();
    let by_id = invite(&app, &ann, &acme, user(gus.user.id), Editor)
        .await
        .unwrap();
    assert_eq!(
        (by_id.email.as_str(), by_id.user_id.clone()),
        ("", gus.user.id.to_string())
    );
    assert_eq!(members(&app, &ann, &acme).await.len(), 1, "only ann");
    // Reactivated and signed in again, gus finds it and joins with its role.
    assert!(set_active(true).await);
    let gus = sign_in(&app, "gus@example.com", "gus-home", "owner").await;
    assert_eq!(mine(&app, &gus).await, std::slice::from_ref(&by_id.id));
    assert_eq!(accept(&app, &gus, &by_id.id).await.unwrap(), Editor as i32);

    app.stop().await;
}
