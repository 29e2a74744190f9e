//! Users: a user's profile with the identities linked to it, platform administration of
//! accounts (deactivation revokes everything the user holds), and the one answer to "is this
//! user a platform admin".

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit;
use crate::error::Error;
use crate::model::Caller;
use crate::model::{SessionId, UserId};
use crate::store::{
    AdminStore, IdentityRow, IdentityStore, RevokeScope, SessionRow, SessionStore, Store,
    UserChange, UserRow, UserUpdate,
};
use crate::tokens::service::TokenService;

/// A user and the external identities linked to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The account.
    pub user: UserRow,
    /// Linked identities, oldest link first.
    pub identities: Vec<IdentityRow>,
}

/// Users and their profiles.
pub struct Users {
    users: Arc<dyn IdentityStore>,
    admin: Arc<dyn AdminStore>,
    sessions: Arc<dyn SessionStore>,
    tokens: Arc<TokenService>,
}

impl Users {
    /// Over `store`; `tokens` revokes what a deactivated user holds.
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenService>) -> Self {
        Self {
            users: store.clone(),
            admin: store.clone(),
            sessions: store,
            tokens,
        }
    }

    /// Whether `id` is an active platform admin (an unknown user is not). The credential
    /// layer asks once per call and hands the answer to the domain on the [`Caller`].
    pub async fn is_platform_admin(&self, id: UserId) -> Result<bool, Error> {
        Ok(self
            .users
            .user_by_id(id)
            .await?
            .is_some_and(|u| u.is_admin && u.is_active))
    }

    async fn existing(&self, id: UserId) -> Result<UserRow, Error> {
        self.users
            .user_by_id(id)
            .await?
            .ok_or_else(|| Error::NotFound("user".into()))
    }

    /// The user with their linked identities; NOT_FOUND for an unknown user.
    pub async fn profile(&self, id: UserId) -> Result<Profile, Error> {
        let user = self.existing(id).await?;
        let identities = self.users.identities_of(id).await?;
        Ok(Profile { user, identities })
    }

    /// Changes the user's own name and avatar (the fields given), audited.
    pub async fn update_profile(
        &self,
        caller: &Caller,
        id: UserId,
        name: Option<&str>,
        avatar_url: Option<&str>,
    ) -> Result<UserRow, Error> {
        let event = audit::event(
            "user.profile_updated",
            &caller.actor,
            "user",
            id,
            serde_json::json!({ "name": name, "avatar_url": avatar_url }),
        );
        self.users
            .update_profile(id, name, avatar_url, &event)
            .await?
            .ok_or_else(|| Error::NotFound("user".into()))
    }

    /// Users matching `query` (email or name) and the flags, by email, after the email
    /// `after`; at most `limit`.
    pub async fn list(
        &self,
        query: Option<&str>,
        is_active: Option<bool>,
        is_admin: Option<bool>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserRow>, Error> {
        Ok(self
            .admin
            .list_users(query, is_active, is_admin, after, limit)
            .await?)
    }

    /// A platform admin changes a user's name and flags (the fields given), audited.
    /// Deactivation ends every session and live token of the user, cluster-wide within a
    /// second. Returns the user and the number of sessions revoked.
    pub async fn update(
        &self,
        caller: &Caller,
        id: UserId,
        name: Option<&str>,
        is_active: Option<bool>,
        is_admin: Option<bool>,
    ) -> Result<(UserRow, usize), Error> {
        let event = audit::event(
            "user.updated",
            &caller.actor,
            "user",
            id,
            serde_json::json!({ "name": name, "is_active": is_active, "is_admin": is_admin }),
        );
        // Some active platform admin always remains, or nobody could administer the platform.
        let change = UserChange {
            name,
            is_active,
            is_admin,
            keep_an_admin: is_active == Some(false) || is_admin == Some(false),
        };
        let user = match self.admin.update_user(id, &change, &event).await? {
            UserUpdate::Updated(user) => user,
            UserUpdate::NotFound => return Err(Error::NotFound("user".into())),
            UserUpdate::NoAdminLeft => {
                return Err(Error::FailedPrecondition(
                    "the change would leave no active platform admin".into(),
                ));
            }
        };
        let revoked = if is_active == Some(false) {
            let rows = self
                .tokens
                .revoke(RevokeScope::User(id), "user_deactivated", None)
                .await?;
            rows.iter().filter(|r| r.session_id.is_some()).count()
        } else {
            0
        };
        Ok((user, revoked))
    }

    /// A platform admin revokes every session and live token of a user, audited; the number
    /// of sessions revoked.
    pub async fn revoke_tokens(&self, caller: &Caller, id: UserId) -> Result<usize, Error> {
        self.existing(id).await?;
        let event = audit::event(
            "user.tokens_revoked",
            &caller.actor,
            "user",
            id,
            serde_json::json!({}),
        );
        let rows = self
            .tokens
            .revoke(RevokeScope::User(id), "admin", Some(&event))
            .await?;
        Ok(rows.iter().filter(|r| r.session_id.is_some()).count())
    }

    /// Whether `caller` may act on `user`'s sessions: themself, or a platform admin.
    fn may_manage(caller: &Caller, user: UserId) -> Result<(), Error> {
        if caller.user == Some(user) || caller.platform_admin {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "only platform admins may manage other users' sessions".into(),
            ))
        }
    }

    /// `user`'s sessions (live only, unless `include_inactive`), newest first, before the
    /// keyset cursor; at most `limit`. The caller must be the user or a platform admin.
    pub async fn sessions(
        &self,
        caller: &Caller,
        user: UserId,
        include_inactive: bool,
        before: Option<(DateTime<Utc>, SessionId)>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, Error> {
        Self::may_manage(caller, user)?;
        Ok(self
            .sessions
            .list_sessions(user, include_inactive, crate::model::now(), before, limit)
            .await?)
    }

    /// Revokes a session (the caller's own, or any as a platform admin), audited; the session
    /// as it is now. Another user's session is NOT_FOUND to a caller who may not manage it,
    /// as if it did not exist.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, Error> {
        let not_found = || Error::NotFound("session".into());
        let session = self
            .sessions
            .session_by_id(id)
            .await?
            .ok_or_else(not_found)?;
        Self::may_manage(caller, session.user_id).map_err(|_| not_found())?;
        let reason = if caller.user == Some(session.user_id) {
            "logout"
        } else {
            "admin"
        };
        let event = audit::event(
            "session.revoked",
            &caller.actor,
            "session",
            id,
            serde_json::json!({ "user_id": session.user_id }),
        );
        self.tokens
            .revoke(RevokeScope::Session(id), reason, Some(&event))
            .await?;
        self.sessions.session_by_id(id).await?.ok_or_else(not_found)
    }
}
