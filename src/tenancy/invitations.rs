//! Answering invitations: the invitee lists, accepts or declines what was addressed to them (to
//! their user id, or to their email once it is verified); workspace admins list and withdraw
//! their workspace's pending invitations. An invitation nobody may see is NOT_FOUND.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Caller, Workspaces};
use crate::audit;
use crate::error::Error;
use crate::model::{Change, WorkspaceRole, Written};
use crate::model::{UserId, WorkspaceId};
use crate::store::{InvitationRow, MemberRow, PendingInvitation};

/// A keyset cursor over invitations: (created_at, id).
pub type InvitationCursor = Option<(DateTime<Utc>, Uuid)>;

impl Workspaces {
    /// The signed-in user behind an answer: an access token's user (an authz token acts for one
    /// workspace only and answers nothing).
    fn invitee(caller: &Caller) -> Result<UserId, Error> {
        if caller.authz_workspace.is_some() {
            return Err(Error::PermissionDenied(
                "invitations are answered with an access token, not an authz token".into(),
            ));
        }
        caller
            .user
            .ok_or_else(|| Error::CredentialMissing("a user's access token".into()))
    }

    /// The invitation when it is addressed to `user`; NOT_FOUND otherwise.
    async fn addressed_to(&self, id: Uuid, user: UserId) -> Result<InvitationRow, Error> {
        let not_found = || Error::NotFound("invitation".into());
        let invitation = self
            .invitations
            .invitation(id)
            .await?
            .ok_or_else(not_found)?;
        let mine = match invitation.user_id {
            Some(invited) => invited == user,
            None => self
                .invitations
                .verified_email(user)
                .await?
                .is_some_and(|email| email == invitation.email),
        };
        if mine {
            Ok(invitation)
        } else {
            Err(not_found())
        }
    }

    /// Pending invitations addressed to the caller, oldest first.
    pub async fn my_invitations(
        &self,
        caller: &Caller,
        after: InvitationCursor,
        limit: i64,
    ) -> Result<Vec<PendingInvitation>, Error> {
        let user = Self::invitee(caller)?;
        Ok(self
            .invitations
            .invitations_for(user, self.tokens.now(), after, limit)
            .await?)
    }

    /// Accepts an invitation addressed to the caller: they join with its role. Returns the new
    /// membership and its revision.
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Written<MemberRow>, Error> {
        let user = Self::invitee(caller)?;
        let invitation = self.addressed_to(id, user).await?;
        if invitation.expires_at <= self.tokens.now() {
            return Err(Error::FailedPrecondition(
                "the invitation has lapsed; ask the workspace's admins for a new one".into(),
            ));
        }
        let mut event = audit::event(
            "invitation.accepted",
            &caller.actor,
            "invitation",
            id,
            serde_json::json!({ "role": invitation.role }),
        );
        event.workspace_id = Some(invitation.workspace_id);
        // The invitation is taken and the membership written under the changelog lock, so a
        // concurrent answer, withdrawal or AddMember is seen here.
        let mut tx = self.tx.begin_changelog().await?;
        let Some((workspace_id, role)) = tx.take_invitation(id).await? else {
            return Err(Error::NotFound("invitation".into()));
        };
        if tx.role_of(workspace_id, user).await?.is_some() {
            tx.commit().await?;
            return Err(Error::AlreadyExists(
                "you already are a member of the workspace; the invitation is answered".into(),
            ));
        }
        tx.add_member(workspace_id, user, role).await?;
        let change = Change::MemberSet {
            workspace_id,
            user_id: user,
            role,
            added: true,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        let member = self
            .members
            .member(invitation.workspace_id, user)
            .await?
            .ok_or(Error::Internal)?;
        Ok(Written {
            value: member,
            revision: self.applied(revision).await?,
        })
    }

    /// Declines an invitation addressed to the caller (lapsed ones too).
    pub async fn decline_invitation(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        let user = Self::invitee(caller)?;
        let invitation = self.addressed_to(id, user).await?;
        self.remove_invitation(caller, &invitation, "invitation.declined")
            .await
    }

    /// Pending invitations of a workspace (admin+), oldest first.
    pub async fn workspace_invitations(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        after: InvitationCursor,
        limit: i64,
    ) -> Result<Vec<InvitationRow>, Error> {
        self.standing(caller, workspace_id)
            .await?
            .require(WorkspaceRole::Admin, "listing invitations")?;
        Ok(self
            .invitations
            .workspace_invitations(workspace_id, self.tokens.now(), after, limit)
            .await?)
    }

    /// Withdraws a pending invitation (admin+ of its workspace).
    pub async fn cancel_invitation(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        let invitation = self
            .invitations
            .invitation(id)
            .await?
            .ok_or_else(|| Error::NotFound("invitation".into()))?;
        // An invitation of a workspace the caller is not in is one they cannot see: the same
        // answer as for an unknown id.
        let standing = self
            .standing(caller, invitation.workspace_id)
            .await
            .map_err(|err| match err {
                Error::NotFound(_) => Error::NotFound("invitation".into()),
                other => other,
            })?;
        standing.require(WorkspaceRole::Admin, "withdrawing invitations")?;
        self.remove_invitation(caller, &invitation, "invitation.cancelled")
            .await
    }

    async fn remove_invitation(
        &self,
        caller: &Caller,
        invitation: &InvitationRow,
        action: &str,
    ) -> Result<(), Error> {
        let mut event = audit::event(
            action,
            &caller.actor,
            "invitation",
            invitation.id,
            serde_json::json!({}),
        );
        event.workspace_id = Some(invitation.workspace_id);
        if self
            .invitations
            .delete_invitation(invitation.id, &event)
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("invitation".into()))
        }
    }
}
