//! Groups: named sets of workspace members, grantees of resource permissions.

use chrono::{DateTime, Utc};

use super::{Caller, Standing, Workspaces};
use crate::audit;
use crate::error::Error;
use crate::model::Revision;
use crate::model::{Change, Description, DisplayName, WorkspaceRole, Written};
use crate::model::{GroupId, UserId, WorkspaceId};
use crate::store::{GroupRow, UserRow};

impl Workspaces {
    /// A group and the caller's standing in its workspace; NOT_FOUND for a group the caller
    /// cannot see, whether or not it exists.
    pub(crate) async fn group_in_scope(
        &self,
        caller: &Caller,
        id: GroupId,
    ) -> Result<(GroupRow, Standing), Error> {
        let not_found = || Error::NotFound("group".into());
        let group = self.groups.group(id).await?.ok_or_else(not_found)?;
        let standing =
            self.standing(caller, group.workspace_id)
                .await
                .map_err(|err| match err {
                    Error::NotFound(_) => not_found(),
                    other => other,
                })?;
        Ok((group, standing))
    }

    /// Creates a group (admin+).
    pub async fn create_group(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        name: &str,
        description: &str,
    ) -> Result<GroupRow, Error> {
        let name = DisplayName::parse(name)?.into_string();
        let description = Description::parse(description)?.into_string();
        self.standing(caller, workspace_id)
            .await?
            .require(WorkspaceRole::Admin, "creating groups")?;
        let now = crate::model::now();
        let group = GroupRow {
            id: GroupId::random(),
            workspace_id,
            name,
            description,
            member_count: 0,
            created_at: now,
            updated_at: now,
        };
        let mut event = audit::event(
            "group.created",
            &caller.actor,
            "group",
            group.id,
            serde_json::json!({ "name": group.name }),
        );
        event.workspace_id = Some(workspace_id);
        self.groups.create_group(&group, &event).await?;
        Ok(group)
    }

    /// Groups of a workspace (any member).
    pub async fn list_groups(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        member: Option<UserId>,
        query: Option<&str>,
        after: Option<(String, GroupId)>,
        limit: i64,
    ) -> Result<Vec<GroupRow>, Error> {
        self.standing(caller, workspace_id).await?;
        Ok(self
            .groups
            .list_groups(workspace_id, member, query, after, limit)
            .await?)
    }

    /// Renames or re-describes a group (admin+).
    pub async fn update_group(
        &self,
        caller: &Caller,
        id: GroupId,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<GroupRow, Error> {
        let name = name
            .map(DisplayName::parse)
            .transpose()?
            .map(DisplayName::into_string);
        let description = description
            .map(Description::parse)
            .transpose()?
            .map(Description::into_string);
        let (group, standing) = self.group_in_scope(caller, id).await?;
        standing.require(WorkspaceRole::Admin, "changing groups")?;
        let mut event = audit::event(
            "group.updated",
            &caller.actor,
            "group",
            id,
            serde_json::json!({ "name": name, "description": description }),
        );
        event.workspace_id = Some(group.workspace_id);
        self.groups
            .update_group(id, name.as_deref(), description.as_deref(), &event)
            .await?
            .ok_or_else(|| Error::NotFound("group".into()))
    }

    /// Deletes a group with its memberships and grants (admin+); the revision.
    pub async fn delete_group(&self, caller: &Caller, id: GroupId) -> Result<Revision, Error> {
        let (group, standing) = self.group_in_scope(caller, id).await?;
        standing.require(WorkspaceRole::Admin, "deleting groups")?;
        let mut event = audit::event(
            "group.deleted",
            &caller.actor,
            "group",
            id,
            serde_json::json!({ "name": group.name }),
        );
        event.workspace_id = Some(group.workspace_id);
        let revision = self
            .groups
            .delete_group(id, &event)
            .await?
            .ok_or_else(|| Error::NotFound("group".into()))?;
        self.applied(revision).await
    }

    /// Adds (`add`) or removes a user to or from a group (admin+). Idempotent; returns whether
    /// anything changed and the revision.
    pub async fn set_group_member(
        &self,
        caller: &Caller,
        group_id: GroupId,
        user_id: UserId,
        add: bool,
    ) -> Result<Written<bool>, Error> {
        let (group, standing) = self.group_in_scope(caller, group_id).await?;
        standing.require(WorkspaceRole::Admin, "changing group members")?;
        if add && self.users.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("user".into()));
        }
        let mut event = audit::event(
            if add {
                "group.member_added"
            } else {
                "group.member_removed"
            },
            &caller.actor,
            "group",
            group_id,
            serde_json::json!({ "user_id": user_id }),
        );
        event.workspace_id = Some(group.workspace_id);
        let mut tx = self.tx.begin_changelog().await?;
        if add && tx.role_of(group.workspace_id, user_id).await?.is_none() {
            return Err(Error::FailedPrecondition(
                "the user is not a member of the group's workspace".into(),
            ));
        }
        if !tx.set_group_member(group_id, user_id, add).await? {
            let revision = tx.revision().await?;
            drop(tx);
            return Ok(Written {
                value: false,
                revision: self.applied(revision).await?,
            });
        }
        let change = if add {
            Change::GroupMemberAdded {
                workspace_id: group.workspace_id,
                group_id,
                user_id,
            }
        } else {
            Change::GroupMemberRemoved {
                workspace_id: group.workspace_id,
                group_id,
                user_id,
            }
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        Ok(Written {
            value: true,
            revision: self.applied(revision).await?,
        })
    }

    /// Members of a group (any member of its workspace).
    pub async fn list_group_members(
        &self,
        caller: &Caller,
        group_id: GroupId,
        after: Option<(String, String, UserId)>,
        limit: i64,
    ) -> Result<Vec<(UserRow, DateTime<Utc>)>, Error> {
        self.group_in_scope(caller, group_id).await?;
        Ok(self
            .groups
            .list_group_members(group_id, after, limit)
            .await?)
    }
}
