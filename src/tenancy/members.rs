//! Memberships and invitations (made here; answered in `invitations.rs`). Who may change whom
//! is decided once, on facts read inside the write's transaction (under the changelog lock), so
//! concurrent demotions and removals can never leave a workspace without an owner.

use uuid::Uuid;

use super::{Caller, Workspaces};
use crate::audit;
use crate::error::Error;
use crate::model::Email;
use crate::model::change::Change;
use crate::model::{UserId, WorkspaceId};
use crate::model::{WorkspaceRole, Written};
use crate::store::{ChangelogTx, InvitationRow, MemberRow, RevokeScope};

/// How long an invitation waits for its invitee's answer.
const INVITATION_TTL_DAYS: i64 = 30;

/// Who `AddMember` invites.
#[derive(Debug, Clone)]
pub enum Invitee {
    /// An email, whether or not a user has it.
    Email(String),
    /// An existing user.
    UserId(UserId),
}

/// What a membership rule is decided on, read under the changelog lock.
#[derive(Debug, Clone)]
struct MemberFacts {
    /// The caller's role in the workspace (`None`: not a member).
    caller_role: Option<WorkspaceRole>,
    /// The target's current role (`None`: not a member).
    target_role: Option<WorkspaceRole>,
    /// Number of owners before the change.
    owners: i64,
}

impl MemberFacts {
    async fn read(
        tx: &mut dyn ChangelogTx,
        workspace_id: WorkspaceId,
        target: UserId,
        caller: Option<UserId>,
    ) -> Result<MemberFacts, Error> {
        let caller_role = match caller {
            Some(caller) => tx.role_of(workspace_id, caller).await?,
            None => None,
        };
        Ok(MemberFacts {
            caller_role,
            target_role: tx.role_of(workspace_id, target).await?,
            owners: tx.owner_count(workspace_id).await?,
        })
    }
}

/// The caller's rank from facts read under the lock (platform admins rank as owners).
fn caller_rank(facts: &MemberFacts, admin: bool) -> Option<WorkspaceRole> {
    if admin {
        Some(WorkspaceRole::Owner)
    } else {
        facts.caller_role
    }
}

/// Whether a role is the owner role.
fn is_owner(role: Option<WorkspaceRole>) -> bool {
    role == Some(WorkspaceRole::Owner)
}

fn last_owner(facts: &MemberFacts, what: &str) -> Result<(), Error> {
    if is_owner(facts.target_role) && facts.owners <= 1 {
        return Err(Error::FailedPrecondition(format!(
            "the last owner of a workspace cannot be {what}; make another member owner first"
        )));
    }
    Ok(())
}

impl Workspaces {
    /// Members of a workspace by name and email (any member may list).
    pub async fn list_members(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        query: Option<&str>,
        role: Option<WorkspaceRole>,
        after: Option<(String, String, UserId)>,
        limit: i64,
    ) -> Result<Vec<MemberRow>, Error> {
        self.standing(caller, workspace_id).await?;
        Ok(self
            .members
            .list_members(workspace_id, query, role, after, limit)
            .await?)
    }

    /// Invites an email or a user (admin+; owner to invite an owner). The answer is an
    /// invitation either way: joining takes the invitee's consent, and the caller learns
    /// nothing about whether an email has an account. Returns it and the current revision.
    pub async fn add_member(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        invitee: Invitee,
        role: WorkspaceRole,
    ) -> Result<Written<InvitationRow>, Error> {
        let standing = self.standing(caller, workspace_id).await?;
        standing.require(WorkspaceRole::Admin, "inviting members")?;
        if is_owner(Some(role)) {
            standing.require(WorkspaceRole::Owner, "inviting an owner")?;
        }
        let (email, user) = match invitee {
            Invitee::UserId(id) => {
                let user = self
                    .users
                    .user_by_id(id)
                    .await?
                    .ok_or_else(|| Error::NotFound("user".into()))?;
                (user.email, Some(id))
            }
            Invitee::Email(email) => (Email::parse(&email)?.into_string(), None),
        };
        let existing = match user {
            Some(id) => Some(id),
            None => self.users.user_by_email(&email).await?.map(|u| u.id),
        };
        if let Some(id) = existing
            && self
                .workspaces
                .membership_role(workspace_id, id)
                .await?
                .is_some()
        {
            return Err(Error::AlreadyExists(
                "that person is already a member of the workspace".into(),
            ));
        }
        let now = self.tokens.now();
        let invitation = InvitationRow {
            id: Uuid::new_v4(),
            workspace_id,
            email,
            user_id: user,
            role,
            invited_by: caller.user,
            created_at: now,
            expires_at: now + chrono::Duration::days(INVITATION_TTL_DAYS),
        };
        // The invited email is kept out of the trail for an invitation by user id, like the
        // answer; the id is the target's identity there.
        let details = match user {
            Some(id) => serde_json::json!({ "user_id": id, "role": role }),
            None => serde_json::json!({ "email": invitation.email, "role": role }),
        };
        let mut event = audit::event(
            "invitation.created",
            &caller.actor,
            "invitation",
            invitation.id,
            details,
        );
        event.workspace_id = Some(workspace_id);
        self.invitations
            .create_invitation(&invitation, &event)
            .await
            .map_err(|err| match err {
                crate::store::StoreError::Conflict(_) => Error::AlreadyExists(
                    "that person already has a pending invitation to this workspace".into(),
                ),
                other => other.into(),
            })?;
        let revision = self.members.current_revision().await?;
        Ok(Written {
            value: invitation,
            revision,
        })
    }

    /// Changes a member's role (admin+; owner to grant or take the owner role; never the last
    /// owner) and revokes the member's sessions in the workspace. Returns the member, the
    /// number of revoked sessions and the revision (`None`: the role was already set).
    pub async fn update_member_role(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        target: UserId,
        role: WorkspaceRole,
    ) -> Result<Written<(MemberRow, usize)>, Error> {
        let standing = self.standing(caller, workspace_id).await?;
        let mut event = audit::event(
            "member.role_changed",
            &caller.actor,
            "user",
            target,
            serde_json::json!({ "role": role }),
        );
        event.workspace_id = Some(workspace_id);
        let mut tx = self.tx.begin_changelog().await?;
        let facts = MemberFacts::read(tx.as_mut(), workspace_id, target, caller.user).await?;
        let caller_rank = caller_rank(&facts, standing.admin);
        if caller_rank < Some(WorkspaceRole::Admin) {
            return Err(Error::PermissionDenied(
                "changing member roles needs the admin role or higher".into(),
            ));
        }
        let Some(current) = facts.target_role else {
            return Err(Error::NotFound("member".into()));
        };
        let revision = if current == role {
            drop(tx);
            None
        } else {
            if (is_owner(Some(role)) || is_owner(Some(current)))
                && caller_rank < Some(WorkspaceRole::Owner)
            {
                return Err(Error::PermissionDenied(
                    "only an owner grants or removes the owner role".into(),
                ));
            }
            last_owner(&facts, "demoted")?;
            tx.set_member_role(workspace_id, target, role).await?;
            let change = Change::MemberSet {
                workspace_id,
                user_id: target,
                role,
                added: false,
            };
            let revision = tx.record(&change, &event).await?;
            tx.commit().await?;
            Some(revision)
        };
        let revoked = match revision {
            Some(_) => {
                self.revoke_member(workspace_id, target, "membership_changed")
                    .await?
            }
            None => 0,
        };
        let member = self
            .members
            .member(workspace_id, target)
            .await?
            .ok_or_else(|| Error::NotFound("member".into()))?;
        // Unchanged: the current revision, which is as fresh as the answer.
        let revision = match revision {
            Some(revision) => revision,
            None => self.members.current_revision().await?,
        };
        Ok(Written {
            value: (member, revoked),
            revision: self.applied(revision).await?,
        })
    }

    /// Removes a member (admin+, or the member themself; owner to remove an owner; never the
    /// last owner), with their groups and custom roles in the workspace, and revokes their
    /// sessions there. Returns the number of revoked sessions and the revision.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        target: UserId,
    ) -> Result<Written<usize>, Error> {
        let standing = self.standing(caller, workspace_id).await?;
        let leaving = caller.user == Some(target);
        let mut event = audit::event(
            if leaving {
                "member.left"
            } else {
                "member.removed"
            },
            &caller.actor,
            "user",
            target,
            serde_json::json!({}),
        );
        event.workspace_id = Some(workspace_id);
        let mut tx = self.tx.begin_changelog().await?;
        let facts = MemberFacts::read(tx.as_mut(), workspace_id, target, caller.user).await?;
        if !leaving {
            let caller_rank = caller_rank(&facts, standing.admin);
            if caller_rank < Some(WorkspaceRole::Admin) {
                return Err(Error::PermissionDenied(
                    "removing members needs the admin role or higher".into(),
                ));
            }
            if facts.target_role.is_none() {
                return Err(Error::NotFound("member".into()));
            }
            if is_owner(facts.target_role) && caller_rank < Some(WorkspaceRole::Owner) {
                return Err(Error::PermissionDenied(
                    "only an owner removes an owner".into(),
                ));
            }
        } else if facts.target_role.is_none() {
            return Err(Error::NotFound("member".into()));
        }
        last_owner(&facts, "removed")?;
        tx.remove_member(workspace_id, target).await?;
        let change = Change::MemberRemoved {
            workspace_id,
            user_id: target,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        let revoked = self
            .revoke_member(workspace_id, target, "membership_changed")
            .await?;
        Ok(Written {
            value: revoked,
            revision: self.applied(revision).await?,
        })
    }

    async fn revoke_member(
        &self,
        workspace_id: WorkspaceId,
        user_id: UserId,
        reason: &str,
    ) -> Result<usize, Error> {
        let rows = self
            .tokens
            .revoke(
                RevokeScope::Member {
                    workspace_id,
                    user_id,
                },
                reason,
                None,
            )
            .await?;
        // Sessions ended; the entry covering the member's other tokens of the workspace is not
        // a session.
        Ok(rows.iter().filter(|r| r.session_id.is_some()).count())
    }
}
