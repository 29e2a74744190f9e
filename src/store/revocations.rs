//! The revocation log: ending sessions by scope and the entries every replica follows to refuse
//! the access tokens of revoked sessions before they expire.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, StoreResult, WriteLock};
use crate::model::records::{RevocationRow, RevokeScope};

/// The revocation log.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revokes live sessions in `scope`, appends to the revocation log and records `audit`, in
    /// one transaction. Returns the new log entries.
    async fn revoke_sessions(
        &self,
        scope: RevokeScope,
        reason: &str,
        now: DateTime<Utc>,
        tokens_expire_at: DateTime<Utc>,
        audit: Option<&AuditRow>,
    ) -> StoreResult<Vec<RevocationRow>>;
    /// The lowest and highest revision in the revocation log (0, 0 when empty).
    async fn revocation_bounds(&self) -> StoreResult<(i64, i64)>;
    /// Log entries after `revision`, in order.
    async fn revocations_since(&self, revision: i64, limit: i64)
    -> StoreResult<Vec<RevocationRow>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

/// The revocation UPDATE of one scope of `revoke_sessions`: the scopes differ only in the
/// condition selecting sessions (a single session is revoked even past its expiry).
macro_rules! revoke_where {
    ($filter:literal) => {
        concat!(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE ",
            $filter,
            " AND revoked_at IS NULL RETURNING id, user_id"
        )
    };
}

macro_rules! revocation_columns {
    () => {
        "revision, session_id, jti, user_id, reason, revoked_at, expires_at, workspace_id"
    };
}

macro_rules! impl_revocation_store {
    ($store:ty) => {
        #[async_trait]
        impl RevocationStore for $store {
            async fn revoke_sessions(
                &self,
                scope: RevokeScope,
                reason: &str,
                now: DateTime<Utc>,
                tokens_expire_at: DateTime<Utc>,
                audit: Option<&AuditRow>,
            ) -> StoreResult<Vec<RevocationRow>> {
                let mut tx = self.begin_write(WriteLock::Revocations).await?;
                // One statement per scope; they differ only in the column that selects sessions
                // (a single session is revoked even if past its expiry, for the record).
                let mut member = None;
                // Besides the sessions: an entry without a session covering tokens by user
                // and/or workspace (tokens of sessions scoped elsewhere, authz tokens).
                let (sql, id, wide): (&str, Uuid, Option<(Uuid, Option<Uuid>)>) = match scope {
                    RevokeScope::Session(id) => (revoke_where!("id = $1"), id.into(), None),
                    RevokeScope::Workspace(id) => (
                        revoke_where!("workspace_id = $1 AND expires_at > $2"),
                        id.into(),
                        Some((Uuid::nil(), Some(id.into()))),
                    ),
                    RevokeScope::ClientApp(id) => (
                        revoke_where!("client_app_id = $1 AND expires_at > $2"),
                        id,
                        None,
                    ),
                    RevokeScope::Member {
                        workspace_id,
                        user_id,
                    } => {
                        member = Some(user_id);
                        (
                            revoke_where!("workspace_id = $1 AND expires_at > $2 AND user_id = $4"),
                            workspace_id.into(),
                            Some((user_id.into(), Some(workspace_id.into()))),
                        )
                    }
                    RevokeScope::User(id) => (
                        revoke_where!("user_id = $1 AND expires_at > $2"),
                        id.into(),
                        Some((id.into(), None)),
                    ),
                };
                let mut query = sqlx::query(sql).bind(id).bind(now).bind(reason);
                if let Some(user) = member {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&mut *tx).await.map_err(err("session"))?;
                let mut targets: Vec<(Option<Uuid>, Uuid, Option<Uuid>)> =
                    Vec::with_capacity(rows.len() + 1);
                for row in &rows {
                    targets.push((
                        Some(row.try_get("id").map_err(err("session"))?),
                        row.try_get("user_id").map_err(err("session"))?,
                        None,
                    ));
                }
                if let Some((user, workspace)) = wide {
                    targets.push((None, user, workspace));
                }
                let mut log = Vec::with_capacity(targets.len());
                for (session_id, user_id, workspace_id) in targets {
                    let row = sqlx::query(concat!(
                        "INSERT INTO revocations (session_id, jti, user_id, reason, revoked_at, \
                         expires_at, workspace_id) VALUES ($1, NULL, $2, $3, $4, $5, $6) \
                         RETURNING ",
                        revocation_columns!()
                    ))
                    .bind(session_id)
                    .bind(user_id)
                    .bind(reason)
                    .bind(now)
                    .bind(tokens_expire_at)
                    .bind(workspace_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("revocation"))?;
                    log.push(revocation_from_row(&row)?);
                }
                // Audited only when something was revoked: of concurrent reuse detections of
                // one family, only the first records an event.
                if let Some(event) = audit
                    && !log.is_empty()
                {
                    insert_audit_query!(event)
                        .execute(&mut *tx)
                        .await
                        .map_err(err("audit event"))?;
                }
                tx.commit().await.map_err(err("revocation"))?;
                Ok(log)
            }

            async fn revocation_bounds(&self) -> StoreResult<(i64, i64)> {
                let row = sqlx::query(
                    "SELECT COALESCE(MIN(revision), 0) AS low, COALESCE(MAX(revision), 0) AS high \
                     FROM revocations",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(err("revocation"))?;
                Ok((
                    row.try_get("low").map_err(err("revocation"))?,
                    row.try_get("high").map_err(err("revocation"))?,
                ))
            }

            async fn revocations_since(
                &self,
                revision: i64,
                limit: i64,
            ) -> StoreResult<Vec<RevocationRow>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    revocation_columns!(),
                    " FROM revocations WHERE revision > $1 ORDER BY revision LIMIT $2"
                ))
                .bind(revision)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("revocation"))?;
                rows.iter().map(revocation_from_row).collect()
            }
        }
    };
}

fn revocation_from_row<R: Row>(row: &R) -> StoreResult<RevocationRow>
where
    RevocationRow: for<'r> sqlx::FromRow<'r, R>,
{
    RevocationRow::from_row(row).map_err(err("revocation"))
}

impl_revocation_store!(SqliteStore);
impl_revocation_store!(PostgresStore);
