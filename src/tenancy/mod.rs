//! Tenancy: workspaces (create — the creator becomes owner —, read, list, update by admin+,
//! delete by owner), memberships and invitations (`members.rs`), groups (`groups.rs`) and custom
//! roles with service actions (`roles.rs`).
//!
//! Visibility rule shared by every operation: a workspace, or anything in it, that the calling
//! user cannot see (not a member, not a platform admin) is NOT_FOUND, whether or not it exists.

mod groups;
pub mod invitations;
pub mod members;
mod roles;

pub use members::Invitee;

use crate::model::Revision;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{self, Actor};
use crate::error::Error;
use crate::model::{Description, DisplayName, WorkspaceRole};
use crate::model::{UserId, WorkspaceId};
use crate::store::{RevokeScope, Store, WorkspaceRow};
use crate::tokens::service::TokenService;

/// A workspace with the caller's relation to it.
#[derive(Debug, Clone)]
pub struct WorkspaceView {
    /// The workspace.
    pub workspace: WorkspaceRow,
    /// The caller's role (`None` for a platform admin who is not a member).
    pub role: Option<WorkspaceRole>,
    /// When the caller joined.
    pub joined_at: Option<DateTime<Utc>>,
}

pub use crate::model::Caller;

/// The caller's standing in one workspace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing {
    /// Role; platform admins rank as owners; `None` for a service alone.
    pub rank: Option<WorkspaceRole>,
    /// Whether the user is a platform admin (and not judged by membership).
    pub admin: bool,
    /// Whether a service acts with no user (trusted with its own data; no rank applies).
    pub service_alone: bool,
}

impl Standing {
    /// PERMISSION_DENIED unless the caller ranks at least `role` (a service alone passes).
    pub fn require(&self, role: WorkspaceRole, what: &str) -> Result<(), Error> {
        if self.service_alone || self.rank >= Some(role) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{what} needs the {role} role or higher"
            )))
        }
    }
}

/// Workspace operations.
pub struct Workspaces {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    engine: Arc<crate::authz::engine::Engine>,
}

impl Workspaces {
    /// Over `store`; `tokens` revokes sessions of deleted workspaces; writes are applied to
    /// `engine` before they answer.
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenService>,
        engine: Arc<crate::authz::engine::Engine>,
    ) -> Self {
        Self {
            store,
            tokens,
            engine,
        }
    }

    /// The caller's standing in workspace `id`: a user by membership (platform admins rank as
    /// owners); a service acting alone needs only the workspace to exist. NOT_FOUND for a
    /// workspace the caller cannot see.
    pub(crate) async fn standing(
        &self,
        caller: &Caller,
        id: WorkspaceId,
    ) -> Result<Standing, Error> {
        if caller.authz_workspace.is_some_and(|w| w != id) {
            return Err(Error::PermissionDenied(
                "workspace_id: the authz token is for another workspace".into(),
            ));
        }
        match caller.user {
            Some(user) => {
                let admin_ok = caller.authz_workspace.is_none();
                let (view, rank) = self.role_of_as(user, id, admin_ok).await?;
                Ok(Standing {
                    rank,
                    admin: view.role.is_none(),
                    service_alone: false,
                })
            }
            None => {
                self.store
                    .workspace_by_id(id)
                    .await?
                    .ok_or_else(|| Error::NotFound("workspace".into()))?;
                Ok(Standing {
                    rank: None,
                    admin: false,
                    service_alone: true,
                })
            }
        }
    }

    /// The caller's role in `id`; platform admins count as owners. A workspace the caller
    /// cannot see is NOT_FOUND, whether or not it exists.
    async fn role_of(
        &self,
        user: UserId,
        id: WorkspaceId,
    ) -> Result<(WorkspaceView, Option<WorkspaceRole>), Error> {
        self.role_of_as(user, id, true).await
    }

    /// [`Workspaces::role_of`]; platform admins count as owners only when `admin_ok`.
    async fn role_of_as(
        &self,
        user: UserId,
        id: WorkspaceId,
        admin_ok: bool,
    ) -> Result<(WorkspaceView, Option<WorkspaceRole>), Error> {
        let not_found = || Error::NotFound("workspace".into());
        if let Some((role, workspace, _)) = self.store.workspace_scope(id, user).await? {
            return Ok((
                WorkspaceView {
                    workspace,
                    role: Some(role),
                    joined_at: None,
                },
                Some(role),
            ));
        }
        let admin = admin_ok && crate::users::is_platform_admin(self.store.as_ref(), user).await?;
        if !admin {
            return Err(not_found());
        }
        let workspace = self
            .store
            .workspace_by_id(id)
            .await?
            .ok_or_else(not_found)?;
        Ok((
            WorkspaceView {
                workspace,
                role: None,
                joined_at: None,
            },
            Some(WorkspaceRole::Owner),
        ))
    }

    /// Creates a workspace owned by `user`.
    pub async fn create(
        &self,
        actor: &Actor,
        user: UserId,
        name: &str,
        slug: &str,
        description: &str,
    ) -> Result<WorkspaceRow, Error> {
        let name = DisplayName::parse(name)?.into_string();
        crate::model::Slug::parse(slug)?;
        let now = Utc::now();
        let workspace = WorkspaceRow {
            id: WorkspaceId::random(),
            name,
            slug: slug.to_string(),
            description: Description::parse(description)?.into_string(),
            created_at: now,
            updated_at: now,
        };
        let event = audit::event(
            "workspace.created",
            actor,
            "workspace",
            workspace.id,
            serde_json::json!({ "slug": workspace.slug }),
        );
        self.store
            .create_workspace(&workspace, user, &event)
            .await?;
        Ok(workspace)
    }

    /// A workspace the caller belongs to (or any, for a platform admin).
    pub async fn get(&self, user: UserId, id: WorkspaceId) -> Result<WorkspaceView, Error> {
        Ok(self.role_of(user, id).await?.0)
    }

    /// The caller's workspaces (or all of them / another user's, `of` decides), by name.
    pub async fn list(
        &self,
        of: Option<UserId>,
        query: Option<&str>,
        after: Option<(String, WorkspaceId)>,
        limit: i64,
    ) -> Result<Vec<WorkspaceView>, Error> {
        Ok(self
            .store
            .list_workspaces(of, query, after, limit)
            .await?
            .into_iter()
            .map(|(workspace, role, joined_at)| WorkspaceView {
                workspace,
                role,
                joined_at,
            })
            .collect())
    }

    /// Changes name, slug or description (admin+).
    pub async fn update(
        &self,
        actor: &Actor,
        user: UserId,
        id: WorkspaceId,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
    ) -> Result<WorkspaceRow, Error> {
        let (_, rank_of_caller) = self.role_of(user, id).await?;
        if rank_of_caller < Some(WorkspaceRole::Admin) {
            return Err(Error::PermissionDenied(
                "updating a workspace needs the admin or owner role".into(),
            ));
        }
        let name = name
            .map(DisplayName::parse)
            .transpose()?
            .map(DisplayName::into_string);
        if let Some(slug) = slug {
            crate::model::Slug::parse(slug)?;
        }
        let description = description
            .map(Description::parse)
            .transpose()?
            .map(Description::into_string);
        let event = audit::event(
            "workspace.updated",
            actor,
            "workspace",
            id,
            serde_json::json!({ "name": name, "slug": slug, "description": description }),
        );
        self.store
            .update_workspace(id, name.as_deref(), slug, description.as_deref(), &event)
            .await?
            .ok_or_else(|| Error::NotFound("workspace".into()))
    }

    /// Deletes a workspace and everything in it (owner), ending sessions scoped to it.
    /// Returns the changelog revision of the deletion.
    pub async fn delete(
        &self,
        actor: &Actor,
        user: UserId,
        id: WorkspaceId,
    ) -> Result<Revision, Error> {
        let (_, rank_of_caller) = self.role_of(user, id).await?;
        if rank_of_caller < Some(WorkspaceRole::Owner) {
            return Err(Error::PermissionDenied(
                "deleting a workspace needs the owner role".into(),
            ));
        }
        self.tokens
            .revoke(RevokeScope::Workspace(id), "workspace_deleted", None)
            .await?;
        let mut event = audit::event(
            "workspace.deleted",
            actor,
            "workspace",
            id,
            serde_json::json!({}),
        );
        event.workspace_id = Some(id);
        let revision = self
            .store
            .delete_workspace(id, &event)
            .await?
            .ok_or_else(|| Error::NotFound("workspace".into()))?;
        self.applied(revision).await
    }

    /// After a write committed at `revision`: applies it to this process's permission index
    /// before the write answers (read-your-writes) and nudges the other replicas.
    async fn applied(&self, revision: Revision) -> Result<Revision, Error> {
        self.engine.written(revision).await?;
        Ok(revision)
    }
}
