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

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit;
use crate::error::Error;
use crate::model::Caller;
use crate::model::Revision;
use crate::model::{Description, DisplayName, WorkspaceRole};
use crate::model::{UserId, WorkspaceId};
use crate::store::{
    GroupStore, IdentityStore, InvitationStore, RevokeScope, RoleStore, Store, TenancyStore,
    WorkspaceRow, WorkspaceStore, WriteTxStore,
};
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

/// Whose workspaces a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The caller's own.
    Mine,
    /// Another user's (platform admins only; the caller's own otherwise).
    Of(UserId),
    /// Every workspace (platform admins only).
    All,
}

/// The user behind a call of a user-tier RPC.
fn signed_in(caller: &Caller) -> Result<UserId, Error> {
    caller.user.ok_or(Error::Unauthenticated(
        crate::tokens::service::INVALID_CREDENTIAL,
    ))
}

/// Workspace operations.
pub struct Workspaces {
    workspaces: Arc<dyn WorkspaceStore>,
    /// Memberships and the newest revision.
    members: Arc<dyn TenancyStore>,
    invitations: Arc<dyn InvitationStore>,
    groups: Arc<dyn GroupStore>,
    roles: Arc<dyn RoleStore>,
    users: Arc<dyn IdentityStore>,
    /// Writes: the changelog transaction membership and group rules are decided in.
    tx: Arc<dyn WriteTxStore>,
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
            workspaces: store.clone(),
            members: store.clone(),
            invitations: store.clone(),
            groups: store.clone(),
            roles: store.clone(),
            users: store.clone(),
            tx: store,
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
            Some(_) => {
                let (view, rank) = self.role_of(caller, id).await?;
                Ok(Standing {
                    rank,
                    admin: view.role.is_none(),
                    service_alone: false,
                })
            }
            None => {
                self.workspaces
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

    /// The signed-in caller's role in `id`; platform admins count as owners (never through an
    /// authz token). A workspace the caller cannot see is NOT_FOUND, whether or not it exists.
    async fn role_of(
        &self,
        caller: &Caller,
        id: WorkspaceId,
    ) -> Result<(WorkspaceView, Option<WorkspaceRole>), Error> {
        let user = signed_in(caller)?;
        let not_found = || Error::NotFound("workspace".into());
        if let Some((role, workspace, _)) = self.workspaces.workspace_scope(id, user).await? {
            return Ok((
                WorkspaceView {
                    workspace,
                    role: Some(role),
                    joined_at: None,
                },
                Some(role),
            ));
        }
        if !caller.platform_admin || caller.authz_workspace.is_some() {
            return Err(not_found());
        }
        let workspace = self
            .workspaces
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
        caller: &Caller,
        name: &str,
        slug: &str,
        description: &str,
    ) -> Result<WorkspaceRow, Error> {
        let user = signed_in(caller)?;
        let name = DisplayName::parse(name)?.into_string();
        // An empty slug is derived from the name, with a numeric suffix while it is taken.
        let (base, derived) = if slug.is_empty() {
            (crate::model::Slug::derive(&name), true)
        } else {
            (crate::model::Slug::parse(slug)?, false)
        };
        let now = crate::model::now();
        let mut workspace = WorkspaceRow {
            id: WorkspaceId::random(),
            name,
            slug: base.as_str().to_string(),
            description: Description::parse(description)?.into_string(),
            created_at: now,
            updated_at: now,
        };
        for attempt in 1u32.. {
            if attempt > 1 {
                workspace.slug = base.suffixed(attempt).into_string();
            }
            let event = audit::event(
                "workspace.created",
                &caller.actor,
                "workspace",
                workspace.id,
                serde_json::json!({ "slug": workspace.slug }),
            );
            match self
                .workspaces
                .create_workspace(&workspace, user, &event)
                .await
            {
                Err(crate::store::StoreError::Conflict(_)) if derived && attempt < 100 => continue,
                result => result?,
            }
            break;
        }
        Ok(workspace)
    }

    /// A workspace the caller belongs to (or any, for a platform admin).
    pub async fn get(&self, caller: &Caller, id: WorkspaceId) -> Result<WorkspaceView, Error> {
        Ok(self.role_of(caller, id).await?.0)
    }

    /// The caller's workspaces, or (platform admins only) every workspace or another user's,
    /// by name.
    pub async fn list(
        &self,
        caller: &Caller,
        listing: Listing,
        query: Option<&str>,
        after: Option<(String, WorkspaceId)>,
        limit: i64,
    ) -> Result<Vec<WorkspaceView>, Error> {
        let me = signed_in(caller)?;
        let of = match listing {
            Listing::Mine => Some(me),
            Listing::Of(user) if user == me => Some(me),
            Listing::All | Listing::Of(_) if !caller.platform_admin => {
                return Err(Error::PermissionDenied(
                    "only platform admins list all or other users' workspaces".into(),
                ));
            }
            Listing::All => None,
            Listing::Of(user) => Some(user),
        };
        Ok(self
            .workspaces
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
        caller: &Caller,
        id: WorkspaceId,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
    ) -> Result<WorkspaceRow, Error> {
        let (_, rank_of_caller) = self.role_of(caller, id).await?;
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
            &caller.actor,
            "workspace",
            id,
            serde_json::json!({ "name": name, "slug": slug, "description": description }),
        );
        self.workspaces
            .update_workspace(id, name.as_deref(), slug, description.as_deref(), &event)
            .await?
            .ok_or_else(|| Error::NotFound("workspace".into()))
    }

    /// Deletes a workspace and everything in it (owner), ending sessions scoped to it.
    /// Returns the changelog revision of the deletion.
    pub async fn delete(&self, caller: &Caller, id: WorkspaceId) -> Result<Revision, Error> {
        let (_, rank_of_caller) = self.role_of(caller, id).await?;
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
            &caller.actor,
            "workspace",
            id,
            serde_json::json!({}),
        );
        event.workspace_id = Some(id);
        let revision = self
            .workspaces
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
