//! `users` and `identities`: who signs in, and through which providers.

use async_trait::async_trait;
use sqlx::{FromRow, Row};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::model::UserId;
use crate::model::records::{IdentityRow, UserRow};

/// Users, workspaces, memberships and group membership, as far as tokens need them.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts a user, with whether their email was vouched for; `Conflict` when the email
    /// exists.
    async fn insert_user(&self, user: &UserRow, email_verified: bool) -> StoreResult<()>;
    /// A user by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRow>>;
    /// A user by (lowercase) email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>>;
    /// Sets `is_active` / `is_admin`; `NotFound` when the user does not exist.
    async fn set_user_flags(&self, id: UserId, is_active: bool, is_admin: bool) -> StoreResult<()>;
    /// Changes a user's own profile (name, avatar), audited in the same transaction.
    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        avatar_url: Option<&str>,
        audit: &super::AuditRow,
    ) -> StoreResult<Option<UserRow>>;
    /// The user an external identity (provider, subject) is linked to.
    async fn identity_user(&self, provider: &str, subject: &str) -> StoreResult<Option<UserId>>;
    /// The identities linked to a user, oldest link first.
    async fn identities_of(&self, user_id: UserId) -> StoreResult<Vec<IdentityRow>>;
    /// Links an identity to a user, or records a new sign-in of a linked one; `audit` (the
    /// link event) is recorded only when the link is new.
    async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: UserId,
        email: &str,
        audit: &super::AuditRow,
    ) -> StoreResult<bool>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! impl_identity_store {
    ($store:ty) => {
        #[async_trait]
        impl IdentityStore for $store {
            async fn insert_user(&self, user: &UserRow, email_verified: bool) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ", email_verified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(&user.avatar_url)
                .bind(user.is_active)
                .bind(user.is_admin)
                .bind(user.created_at)
                .bind(user.updated_at)
                .bind(email_verified)
                .execute(&self.pool)
                .await
                .map_err(err("user"))?;
                Ok(())
            }

            async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("user"))?;
                row.map(|r| user_from_row(&r)).transpose()
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE email = $1"
                ))
                .bind(email)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("user"))?;
                row.map(|r| user_from_row(&r)).transpose()
            }

            async fn set_user_flags(
                &self,
                id: UserId,
                is_active: bool,
                is_admin: bool,
            ) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE users SET is_active = $2, is_admin = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(is_active)
                .bind(is_admin)
                .bind(crate::model::now())
                .execute(&self.pool)
                .await
                .map_err(err("user"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn update_profile(
                &self,
                id: UserId,
                name: Option<&str>,
                avatar_url: Option<&str>,
                audit: &super::AuditRow,
            ) -> StoreResult<Option<UserRow>> {
                let mut tx = self.pool.begin().await.map_err(err("user"))?;
                let row = sqlx::query(concat!(
                    "UPDATE users SET name = COALESCE($2, name), \
                     avatar_url = COALESCE($3, avatar_url), updated_at = $4 WHERE id = $1 \
                     RETURNING ",
                    user_columns!()
                ))
                .bind(id)
                .bind(name)
                .bind(avatar_url)
                .bind(crate::model::now())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("user"))?;
                let Some(row) = row else { return Ok(None) };
                let user = user_from_row(&row)?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("user"))?;
                Ok(Some(user))
            }

            async fn identity_user(
                &self,
                provider: &str,
                subject: &str,
            ) -> StoreResult<Option<UserId>> {
                sqlx::query_scalar::<_, UserId>(
                    "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2",
                )
                .bind(provider)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("identity"))
            }

            async fn identities_of(&self, user_id: UserId) -> StoreResult<Vec<IdentityRow>> {
                sqlx::query_as::<_, IdentityRow>(
                    "SELECT provider, subject, email, created_at, last_login_at FROM identities \
                     WHERE user_id = $1 ORDER BY created_at, provider, subject",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(err("identity"))
            }

            async fn link_identity(
                &self,
                provider: &str,
                subject: &str,
                user_id: UserId,
                email: &str,
                audit: &super::AuditRow,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(err("identity"))?;
                let now = crate::model::now();
                let created = sqlx::query(
                    "INSERT INTO identities (provider, subject, user_id, email, created_at, \
                     last_login_at) VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (provider, subject) DO NOTHING",
                )
                .bind(provider)
                .bind(subject)
                .bind(user_id)
                .bind(email)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(err("identity"))?
                .rows_affected()
                    == 1;
                if created {
                    insert_audit_query!(audit)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("audit event"))?;
                } else {
                    sqlx::query(
                        "UPDATE identities SET last_login_at = $3, email = $4 \
                         WHERE provider = $1 AND subject = $2",
                    )
                    .bind(provider)
                    .bind(subject)
                    .bind(now)
                    .bind(email)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("identity"))?;
                }
                tx.commit().await.map_err(err("identity"))?;
                Ok(created)
            }
        }
    };
}

pub(super) fn user_from_row<R: Row>(row: &R) -> StoreResult<UserRow>
where
    UserRow: for<'r> sqlx::FromRow<'r, R>,
{
    UserRow::from_row(row).map_err(err("user"))
}

impl_identity_store!(SqliteStore);
impl_identity_store!(PostgresStore);
