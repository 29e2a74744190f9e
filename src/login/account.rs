//! The account behind a verified identity: linked, found by verified email, or created.

use super::{Login, LoginError, VerifiedIdentity};
use crate::audit::{self, Actor};
use crate::error::Error;
use crate::store::UserRow;

impl Login {
    /// The user of a verified identity: the linked one, else the user with that verified email
    /// (linking it, audited), else a new user. An email the provider is trusted with marks the
    /// user's email verified, which lets invitations made to it reach them.
    /// Deactivated users are refused; configured admin emails become platform admins.
    pub(super) async fn account_for(
        &self,
        identity: &VerifiedIdentity,
        actor: &Actor,
    ) -> Result<UserRow, LoginError> {
        let email = identity.email.trim().to_ascii_lowercase();
        let policy = &self.provider(&identity.provider)?.policy;
        policy.check_domain(identity)?;
        let trusted = policy.trusts_email(identity);
        let linked = self
            .users
            .identity_user(&identity.provider, &identity.subject)
            .await
            .map_err(Error::from)?;
        let user = match linked {
            Some(id) => self.users.user_by_id(id).await.map_err(Error::from)?,
            None => None,
        };
        let already_linked = user.is_some();
        let user = match user {
            Some(user) => user,
            None => match self
                .users
                .user_by_email(&email)
                .await
                .map_err(Error::from)?
            {
                // Linking by email hands over the account: only on a trusted email.
                Some(_) if !trusted => return Err(LoginError::AccountExists),
                Some(user) => user,
                None if !policy.allow_signup => return Err(LoginError::SignupClosed),
                None => {
                    let now = crate::model::now();
                    let user = UserRow {
                        id: crate::model::UserId::random(),
                        email: email.clone(),
                        name: crate::model::DisplayName::clean(&identity.name).into_string(),
                        avatar_url: if identity.avatar_url.starts_with("https://") {
                            identity.avatar_url.clone()
                        } else {
                            String::new()
                        },
                        is_active: true,
                        is_admin: false,
                        created_at: now,
                        updated_at: now,
                    };
                    match self.users.insert_user(&user, trusted).await {
                        Ok(()) => user,
                        Err(crate::store::StoreError::Conflict(_)) => self
                            .users
                            .user_by_email(&email)
                            .await
                            .map_err(Error::from)?
                            .ok_or(Error::Internal)?,
                        Err(err) => return Err(Error::from(err).into()),
                    }
                }
            },
        };
        if !user.is_active {
            return Err(LoginError::Deactivated);
        }
        let mut event = audit::event(
            "identity.linked",
            actor,
            "user",
            user.id,
            serde_json::json!({ "provider": identity.provider, "email": email }),
        );
        event.actor_user_id = Some(user.id);
        self.users
            .link_identity(
                &identity.provider,
                &identity.subject,
                user.id,
                &email,
                &event,
            )
            .await
            .map_err(Error::from)?;
        if trusted && user.email == email {
            self.invitations
                .mark_email_verified(user.id)
                .await
                .map_err(Error::from)?;
        }
        // admin_emails bootstraps the first admins only, through identities trusted with their
        // email; once any platform admin exists, admins grant admin.
        if self.admin_emails.contains(&email)
            && !user.is_admin
            && (trusted || already_linked)
            && self
                .admin
                .stats(crate::model::now())
                .await
                .map_err(Error::from)?
                .admins
                == 0
        {
            self.users
                .set_user_flags(user.id, true, true)
                .await
                .map_err(Error::from)?;
            return Ok(self
                .users
                .user_by_id(user.id)
                .await
                .map_err(Error::from)?
                .ok_or(Error::Internal)?);
        }
        Ok(user)
    }
}
