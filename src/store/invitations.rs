//! `invitations`: pending offers to join a workspace, made to an email or to a user, answered by
//! the invitee. Accepting turns one into a membership in the same transaction (under the
//! changelog lock, so the membership's change is in the log); the domain decides whose it is.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult};
use crate::model::records::InvitationRow;
use crate::model::{UserId, WorkspaceId};

/// An invitation as its invitee sees it: with the workspace's name and slug.
#[derive(Debug, Clone)]
pub struct PendingInvitation {
    /// The invitation.
    pub invitation: InvitationRow,
    /// The workspace's display name.
    pub workspace_name: String,
    /// The workspace's slug.
    pub workspace_slug: String,
}

/// Invitation storage.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation; lapsed invitations of the same email to the workspace are replaced.
    /// `Conflict` when a live one exists.
    async fn create_invitation(
        &self,
        invitation: &InvitationRow,
        audit: &AuditRow,
    ) -> StoreResult<()>;
    /// One invitation, lapsed or not.
    async fn invitation(&self, id: Uuid) -> StoreResult<Option<InvitationRow>>;
    /// Live invitations of a workspace, oldest first, after the (created_at, id) cursor.
    async fn workspace_invitations(
        &self,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<InvitationRow>>;
    /// Live invitations addressed to a user: made to their id, or to their email when that email
    /// is verified. Oldest first, after the (created_at, id) cursor.
    async fn invitations_for(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<PendingInvitation>>;
    /// Removes an invitation (declined or withdrawn). `false` when there was none.
    async fn delete_invitation(&self, id: Uuid, audit: &AuditRow) -> StoreResult<bool>;
    /// The user's email when it is verified.
    async fn verified_email(&self, user_id: UserId) -> StoreResult<Option<String>>;
    /// Records that the user's email was vouched for.
    async fn mark_email_verified(&self, user_id: UserId) -> StoreResult<()>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

macro_rules! invitation_columns {
    () => {
        "i.id, i.workspace_id, i.email, i.user_id, i.role, i.invited_by, i.created_at, \
         i.expires_at"
    };
}

macro_rules! impl_invitation_store {
    ($store:ty) => {
        #[async_trait]
        impl InvitationStore for $store {
            async fn create_invitation(
                &self,
                invitation: &InvitationRow,
                audit: &AuditRow,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(err("invitation"))?;
                sqlx::query(
                    "DELETE FROM invitations WHERE workspace_id = $1 AND email = $2 \
                     AND expires_at <= $3",
                )
                .bind(invitation.workspace_id)
                .bind(&invitation.email)
                .bind(invitation.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err("invitation"))?;
                sqlx::query(
                    "INSERT INTO invitations (id, workspace_id, email, user_id, role, \
                     invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(invitation.id)
                .bind(invitation.workspace_id)
                .bind(&invitation.email)
                .bind(invitation.user_id)
                .bind(&invitation.role)
                .bind(invitation.invited_by)
                .bind(invitation.created_at)
                .bind(invitation.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(err("invitation"))?;
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("invitation"))
            }

            async fn invitation(&self, id: Uuid) -> StoreResult<Option<InvitationRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    invitation_columns!(),
                    " FROM invitations i WHERE i.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("invitation"))?;
                row.as_ref().map(invitation_from_row).transpose()
            }

            async fn workspace_invitations(
                &self,
                workspace_id: WorkspaceId,
                now: DateTime<Utc>,
                after: Option<(DateTime<Utc>, Uuid)>,
                limit: i64,
            ) -> StoreResult<Vec<InvitationRow>> {
                let (at, id) = after.unzip();
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    invitation_columns!(),
                    " FROM invitations i WHERE i.workspace_id = $1 AND i.expires_at > $2 \
                     AND ($3 IS NULL OR i.created_at > $3 OR (i.created_at = $3 AND i.id > $4)) \
                     ORDER BY i.created_at, i.id LIMIT $5"
                ))
                .bind(workspace_id)
                .bind(now)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("invitation"))?;
                rows.iter().map(invitation_from_row).collect()
            }

            async fn invitations_for(
                &self,
                user_id: UserId,
                now: DateTime<Utc>,
                after: Option<(DateTime<Utc>, Uuid)>,
                limit: i64,
            ) -> StoreResult<Vec<PendingInvitation>> {
                let (at, id) = after.unzip();
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    invitation_columns!(),
                    ", w.name AS workspace_name, w.slug AS workspace_slug \
                     FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
                     JOIN users u ON u.id = $1 \
                     WHERE (i.user_id = u.id OR (i.user_id IS NULL AND i.email = u.email \
                     AND u.email_verified)) AND i.expires_at > $2 \
                     AND ($3 IS NULL OR i.created_at > $3 OR (i.created_at = $3 AND i.id > $4)) \
                     ORDER BY i.created_at, i.id LIMIT $5"
                ))
                .bind(user_id)
                .bind(now)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("invitation"))?;
                rows.iter()
                    .map(|row| {
                        let e = err("invitation");
                        Ok(PendingInvitation {
                            invitation: invitation_from_row(row)?,
                            workspace_name: row.try_get("workspace_name").map_err(&e)?,
                            workspace_slug: row.try_get("workspace_slug").map_err(&e)?,
                        })
                    })
                    .collect()
            }

            async fn delete_invitation(&self, id: Uuid, audit: &AuditRow) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await.map_err(err("invitation"))?;
                let done = sqlx::query("DELETE FROM invitations WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("invitation"))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_audit_query!(audit)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("audit event"))?;
                tx.commit().await.map_err(err("invitation"))?;
                Ok(true)
            }

            async fn verified_email(&self, user_id: UserId) -> StoreResult<Option<String>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT email FROM users WHERE id = $1 AND email_verified",
                )
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("user"))
            }

            async fn mark_email_verified(&self, user_id: UserId) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE users SET email_verified = TRUE WHERE id = $1 AND NOT email_verified",
                )
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(err("user"))?;
                Ok(())
            }
        }
    };
}

impl_invitation_store!(SqliteStore);
impl_invitation_store!(PostgresStore);

fn invitation_from_row<R: Row>(row: &R) -> StoreResult<InvitationRow>
where
    InvitationRow: for<'r> sqlx::FromRow<'r, R>,
{
    InvitationRow::from_row(row).map_err(err("invitation"))
}
