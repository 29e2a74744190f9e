//! Operator commands that act directly on the store: bootstrap and local development tools
//! (`sentinel token issue`, `sentinel service-app create`). Clearly admin tools: they bypass
//! sign-in and are meant for development, smoke tests and first setup.

use chrono::Utc;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::Error;
use crate::store::{UserRow, WorkspaceRow};
use crate::tokens::service::{IssuedTokens, SignIn};

/// Checks a workspace slug against `^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$`.
pub fn validate_slug(slug: &str) -> Result<(), Error> {
    let bytes = slug.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = (2..=64).contains(&bytes.len())
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            "must be 2-64 lowercase letters, digits or dashes, starting and ending with a letter or digit",
        ))
    }
}

/// Checks and normalises an email address (lowercase, one `@`, a dot in the domain).
pub fn normalize_email(email: &str) -> Result<String, Error> {
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("email", "is not an email address"))
    }
}

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
    target: Uuid,
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
    let email = normalize_email(&request.email)?;
    validate_slug(&request.workspace)?;
    if let Some(role) = &request.role
        && crate::model::WorkspaceRole::parse(role).is_none()
    {
        return Err(Error::invalid(
            "role",
            "must be owner, admin, editor or viewer",
        ));
    }
    let now = Utc::now();
    let user = match state.store.user_by_email(&email).await? {
        Some(user) => user,
        None if request.create => {
            let user = UserRow {
                id: Uuid::new_v4(),
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
                id: Uuid::new_v4(),
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
    match (&member, request.create, &request.role) {
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
            let role = role
                .as_deref()
                .unwrap_or(crate::model::WorkspaceRole::Viewer.as_str());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_contract() {
        for good in ["ab", "acme", "acme-corp", "a1", "0-9"] {
            assert!(validate_slug(good).is_ok(), "{good}");
        }
        for bad in ["a", "-ab", "ab-", "Acme", "a_b", "a b", &"a".repeat(65)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("a@b").is_err());
    }
}
