//! Custom roles (RBAC): per-workspace named sets of one service's registered actions, assigned
//! to members. A service key confines every operation to that service's roles.

use std::collections::BTreeSet;

use super::{Caller, Standing, Workspaces};
use crate::audit;
use crate::error::Error;
use crate::model::{Change, Description, DisplayName, ServiceName, WorkspaceRole, Written};
use crate::model::{Read, Revision, RoleId, UserId, WorkspaceId};
use crate::store::RoleRow;

/// Most actions one role may hold.
pub const MAX_ROLE_ACTIONS: usize = 500;
/// Most actions one RegisterActions call may carry.
pub const MAX_REGISTERED_ACTIONS: usize = 1000;

/// Checks an action name: `^[a-z][a-z0-9_.:-]{0,127}$`.
pub fn validate_action(field: &str, action: &str) -> Result<(), Error> {
    let mut chars = action.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && action.len() <= 128
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{action:?} must match ^[a-z][a-z0-9_.:-]{{0,127}}$"),
        ))
    }
}

impl Workspaces {
    /// Validates a role's action set: at most 500, each registered by `service`; sorted and
    /// without duplicates.
    async fn role_action_set(
        &self,
        service: &str,
        actions: &[String],
    ) -> Result<Vec<String>, Error> {
        if actions.len() > MAX_ROLE_ACTIONS {
            return Err(Error::invalid("actions", "at most 500 actions"));
        }
        let set: BTreeSet<String> = actions.iter().cloned().collect();
        for action in &set {
            validate_action("actions", action)?;
        }
        if set.is_empty() {
            return Ok(Vec::new());
        }
        let registered: BTreeSet<String> = self
            .roles
            .service_actions(service)
            .await?
            .into_iter()
            .collect();
        if let Some(unknown) = set.iter().find(|a| !registered.contains(*a)) {
            return Err(Error::invalid(
                "actions",
                format!("{unknown:?} is not registered by service {service:?}"),
            ));
        }
        Ok(set.into_iter().collect())
    }

    /// A role and the caller's standing in its workspace; NOT_FOUND for a role the caller
    /// cannot see; PERMISSION_DENIED for another service's role when called with a key.
    async fn role_in_scope(
        &self,
        caller: &Caller,
        id: RoleId,
    ) -> Result<(RoleRow, Standing), Error> {
        let not_found = || Error::NotFound("role".into());
        let role = self.roles.role(id).await?.ok_or_else(not_found)?;
        let standing = self
            .standing(caller, role.workspace_id)
            .await
            .map_err(|err| match err {
                Error::NotFound(_) => not_found(),
                other => other,
            })?;
        if let Some(service) = &caller.service
            && *service != role.service_name
        {
            return Err(Error::PermissionDenied(
                "the role belongs to another service".into(),
            ));
        }
        Ok((role, standing))
    }

    /// Creates a custom role (admin+, or the service itself for its own roles); the role and
    /// the revision.
    pub async fn create_role(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        service_name: &str,
        name: &str,
        description: &str,
        actions: &[String],
    ) -> Result<Written<RoleRow>, Error> {
        let name = DisplayName::parse(name)?.into_string();
        let description = Description::parse(description)?.into_string();
        let service = match (&caller.service, service_name) {
            (Some(own), "") => own.clone(),
            (Some(own), named) if named == own => own.clone(),
            (Some(_), _) => {
                return Err(Error::PermissionDenied(
                    "a service key creates roles of its own service only".into(),
                ));
            }
            (None, "") => return Err(Error::invalid("service_name", "is required")),
            (None, named) => {
                ServiceName::parse(named)?;
                if !self.roles.service_exists(named).await? {
                    return Err(Error::invalid(
                        "service_name",
                        "does not name an existing service app",
                    ));
                }
                named.to_string()
            }
        };
        self.standing(caller, workspace_id)
            .await?
            .require(WorkspaceRole::Admin, "creating roles")?;
        let actions = self.role_action_set(&service, actions).await?;
        let now = crate::model::now();
        let role = RoleRow {
            id: RoleId::random(),
            workspace_id,
            service_name: service,
            name,
            description,
            actions,
            assigned: 0,
            created_at: now,
            updated_at: now,
        };
        let mut event = audit::event(
            "role.created",
            &caller.actor,
            "role",
            role.id,
            serde_json::json!({ "name": role.name, "service": role.service_name,
                "actions": role.actions }),
        );
        event.workspace_id = Some(workspace_id);
        let revision = self.roles.create_role(&role, &event).await?;
        Ok(Written {
            value: role,
            revision: self.applied(revision).await?,
        })
    }

    /// Custom roles of a workspace (any member; a service key lists its own only).
    pub async fn list_roles(
        &self,
        caller: &Caller,
        workspace_id: WorkspaceId,
        service_name: Option<&str>,
        user_id: Option<UserId>,
        after: Option<(String, String, RoleId)>,
        limit: i64,
    ) -> Result<Vec<RoleRow>, Error> {
        self.standing(caller, workspace_id).await?;
        let service = caller.service.as_deref().or(service_name);
        Ok(self
            .roles
            .list_roles(workspace_id, service, user_id, after, limit)
            .await?)
    }

    /// Deletes a custom role with its assignments; the revision.
    pub async fn delete_role(&self, caller: &Caller, id: RoleId) -> Result<Revision, Error> {
        let (role, standing) = self.role_in_scope(caller, id).await?;
        standing.require(WorkspaceRole::Admin, "deleting roles")?;
        let mut event = audit::event(
            "role.deleted",
            &caller.actor,
            "role",
            id,
            serde_json::json!({ "name": role.name, "service": role.service_name }),
        );
        event.workspace_id = Some(role.workspace_id);
        let revision = self
            .roles
            .delete_role(id, &event)
            .await?
            .ok_or_else(|| Error::NotFound("role".into()))?;
        self.applied(revision).await
    }

    /// Replaces a custom role's actions; the updated role and the revision.
    pub async fn set_role_actions(
        &self,
        caller: &Caller,
        id: RoleId,
        actions: &[String],
    ) -> Result<Written<RoleRow>, Error> {
        let (role, standing) = self.role_in_scope(caller, id).await?;
        standing.require(WorkspaceRole::Admin, "changing roles")?;
        let actions = self.role_action_set(&role.service_name, actions).await?;
        let mut event = audit::event(
            "role.actions_set",
            &caller.actor,
            "role",
            id,
            serde_json::json!({ "actions": actions }),
        );
        event.workspace_id = Some(role.workspace_id);
        let revision = self
            .roles
            .set_role_actions(id, &actions, &event)
            .await?
            .ok_or_else(|| Error::NotFound("role".into()))?;
        let role = self
            .roles
            .role(id)
            .await?
            .ok_or_else(|| Error::NotFound("role".into()))?;
        Ok(Written {
            value: role,
            revision,
        })
    }

    /// Assigns (`assign`) or unassigns a custom role. Idempotent; whether anything changed
    /// and the revision.
    pub async fn set_role_assignment(
        &self,
        caller: &Caller,
        id: RoleId,
        user_id: UserId,
        assign: bool,
    ) -> Result<Written<bool>, Error> {
        let (role, standing) = self.role_in_scope(caller, id).await?;
        standing.require(WorkspaceRole::Admin, "assigning roles")?;
        if assign && self.users.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("user".into()));
        }
        let mut event = audit::event(
            if assign {
                "role.assigned"
            } else {
                "role.unassigned"
            },
            &caller.actor,
            "role",
            id,
            serde_json::json!({ "user_id": user_id }),
        );
        event.workspace_id = Some(role.workspace_id);
        let mut tx = self.tx.begin_changelog().await?;
        if assign && tx.role_of(role.workspace_id, user_id).await?.is_none() {
            return Err(Error::FailedPrecondition(
                "the user is not a member of the role's workspace".into(),
            ));
        }
        if !tx.set_role_assignment(role.id, user_id, assign).await? {
            let revision = tx.revision().await?;
            drop(tx);
            return Ok(Written {
                value: false,
                revision: self.applied(revision).await?,
            });
        }
        let change = Change::RoleAssignment {
            workspace_id: role.workspace_id,
            service_name: role.service_name.clone(),
            role_id: role.id,
            user_id,
            assigned: assign,
        };
        let revision = tx.record(&change, &event).await?;
        tx.commit().await?;
        Ok(Written {
            value: true,
            revision: self.applied(revision).await?,
        })
    }

    /// Upserts a service's actions: (created, updated, revision).
    pub async fn register_actions(
        &self,
        caller: &Caller,
        service: &str,
        actions: &[(String, String)],
    ) -> Result<Written<(i64, i64)>, Error> {
        if actions.is_empty() || actions.len() > MAX_REGISTERED_ACTIONS {
            return Err(Error::invalid("actions", "must hold 1 to 1000 actions"));
        }
        let mut seen = BTreeSet::new();
        for (action, description) in actions {
            validate_action("actions.action", action)?;
            if description.chars().count() > 2000 {
                return Err(Error::invalid(
                    "actions.description",
                    "at most 2000 characters",
                ));
            }
            if !seen.insert(action.as_str()) {
                return Err(Error::invalid(
                    "actions.action",
                    format!("{action:?} is listed twice"),
                ));
            }
        }
        let event = audit::event(
            "actions.registered",
            &caller.actor,
            "service",
            service,
            serde_json::json!({ "count": actions.len() }),
        );
        let (created, updated, revision) = self
            .roles
            .register_actions(service, actions, &event)
            .await?;
        Ok(Written {
            value: (created, updated),
            revision: self.applied(revision).await?,
        })
    }

    /// The user's roles of `service` in a workspace holding `action` (empty: not allowed,
    /// including for non-members and unregistered actions), and the revision read before.
    pub async fn check_action(
        &self,
        service: &str,
        user: UserId,
        workspace_id: WorkspaceId,
        action: &str,
    ) -> Result<Read<Vec<String>>, Error> {
        validate_action("action", action)?;
        let revision = self.members.current_revision().await?;
        let roles = self
            .roles
            .roles_holding(workspace_id, service, user, action)
            .await?;
        Ok(Read {
            value: roles,
            revision,
        })
    }

    /// Actions of `service` the user holds in a workspace, sorted, after `after`.
    pub async fn user_actions(
        &self,
        service: &str,
        user: UserId,
        workspace_id: WorkspaceId,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Read<Vec<String>>, Error> {
        let revision = self.members.current_revision().await?;
        let actions = self
            .roles
            .user_actions(workspace_id, service, user, after, limit)
            .await?;
        Ok(Read {
            value: actions,
            revision,
        })
    }
}
