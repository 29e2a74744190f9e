//! Operator commands that act directly on the store: bootstrap and local development tools
//! (`sentinel token issue`, `sentinel service-app create`). Clearly admin tools: they bypass
//! sign-in and are meant for development, smoke tests and first setup.

use crate::app::AppState;
use crate::error::Error;
use crate::model::{Email, Slug};
use crate::model::{UserId, WorkspaceId};
use crate::store::{UserRow, WorkspaceRow};
use crate::tokens::service::{IssuedTokens, SignIn};

/// What `sentinel token issue` asks for.
#[derive(Debug, Clone)]
pub struct IssueTokenRequest {
    /// The user's email.
    pub email: String,
    /// The workspace slug.
    pub workspace: String,
    /// Role to grant when creating the membership (or to set with `create`).
    pub role: Option<String>,
    /// Create the user, workspace and membership when missing.
    pub create: bool,
    /// Make the user a platform admin before minting (audited), for the first admin credential.
    pub admin: bool,
}

/// Records what an operator command did, like any other write.
async fn audit_operator(
    state: &AppState,
    action: &str,
    target_type: &str,
    target: impl ToString,
    details: serde_json::Value,
) -> Result<(), Error> {
    let event = crate::audit::event(
        action,
        &crate::audit::Actor::operator(),
        target_type,
        target,
        details,
    );
    Ok(state.store.insert_audit(&event).await?)
}

/// Mints a session for a user in a workspace, creating them when asked. Every creation and role
/// change is audited with the operator as actor.
pub async fn issue_token(
    state: &AppState,
    request: &IssueTokenRequest,
) -> Result<IssuedTokens, Error> {
    let email = Email::parse(&request.email)?.into_string();
    Slug::parse(&request.workspace)?;
    let role = match request.role.as_deref() {
        None => None,
        Some(name) => Some(
            crate::model::WorkspaceRole::parse(name)
                .ok_or_else(|| Error::invalid("role", "must be owner, admin, editor or viewer"))?,
        ),
    };
    let now = crate::model::now();
    let user = match state.store.user_by_email(&email).await? {
        Some(user) => user,
        None if request.create => {
            let user = UserRow {
                id: UserId::random(),
                name: email.split('@').next().unwrap_or_default().to_string(),
                email: email.clone(),
                avatar_url: String::new(),
                is_active: true,
                is_admin: false,
                created_at: now,
                updated_at: now,
            };
            match state.store.insert_user(&user, true).await {
                Ok(()) => {
                    audit_operator(
                        state,
                        "user.created",
                        "user",
                        user.id,
                        serde_json::json!({ "email": user.email }),
                    )
                    .await?;
                    user
                }
                // Created concurrently: use that one.
                Err(crate::store::StoreError::Conflict(_)) => state
                    .store
                    .user_by_email(&email)
                    .await?
                    .ok_or(Error::Internal)?,
                Err(err) => return Err(err.into()),
            }
        }
        None => return Err(Error::NotFound(format!("user {email}"))),
    };
    let workspace = match state.store.workspace_by_slug(&request.workspace).await? {
        Some(workspace) => workspace,
        None if request.create => {
            let workspace = WorkspaceRow {
                id: WorkspaceId::random(),
                name: request.workspace.clone(),
                slug: request.workspace.clone(),
                description: String::new(),
                created_at: now,
                updated_at: now,
            };
            match state.store.insert_workspace(&workspace).await {
                Ok(()) => {
                    audit_operator(
                        state,
                        "workspace.created",
                        "workspace",
                        workspace.id,
                        serde_json::json!({ "slug": workspace.slug }),
                    )
                    .await?;
                    workspace
                }
                Err(crate::store::StoreError::Conflict(_)) => state
                    .store
                    .workspace_by_slug(&request.workspace)
                    .await?
                    .ok_or(Error::Internal)?,
                Err(err) => return Err(err.into()),
            }
        }
        None => return Err(Error::NotFound(format!("workspace {}", request.workspace))),
    };
    let member = state.store.membership_role(workspace.id, user.id).await?;
    match (member, request.create, role) {
        (Some(current), true, Some(role)) if current != role => {
            state
                .store
                .upsert_membership(workspace.id, user.id, role, now)
                .await?;
            audit_operator(
                state,
                "member.role_changed",
                "workspace",
                workspace.id,
                serde_json::json!({ "user_id": user.id, "from": current, "role": role }),
            )
            .await?;
        }
        (None, true, role) => {
            let role = role.unwrap_or(crate::model::WorkspaceRole::Viewer);
            state
                .store
                .upsert_membership(workspace.id, user.id, role, now)
                .await?;
            audit_operator(
                state,
                "member.added",
                "workspace",
                workspace.id,
                serde_json::json!({ "user_id": user.id, "role": role }),
            )
            .await?;
        }
        (None, false, _) => {
            return Err(Error::FailedPrecondition(format!(
                "{email} is not a member of {} (use --create)",
                request.workspace
            )));
        }
        _ => {}
    }
    let user = if request.admin && !(user.is_admin && user.is_active) {
        set_platform_admin(state, &user, true).await?
    } else {
        user
    };
    state
        .tokens
        .start_session(
            &user,
            Some(workspace.id),
            SignIn {
                provider: "cli".into(),
                amr: vec!["cli".into()],
                ..SignIn::default()
            },
        )
        .await
}

/// Grants (or takes away) platform admin, audited; returns the user as stored now.
pub async fn set_platform_admin(
    state: &AppState,
    user: &UserRow,
    admin: bool,
) -> Result<UserRow, Error> {
    state
        .store
        .set_user_flags(user.id, user.is_active, admin)
        .await?;
    audit_operator(
        state,
        if admin {
            "user.admin_granted"
        } else {
            "user.admin_revoked"
        },
        "user",
        user.id,
        serde_json::json!({ "email": user.email }),
    )
    .await?;
    state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or(Error::Internal)
}
