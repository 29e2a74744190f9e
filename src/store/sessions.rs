//! `sessions`, `refresh_tokens`, `audit_events`: refresh-token families and the audit trail.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row};

use super::UserRow;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::model::records::SessionRow;
use crate::model::{SessionId, UserId, WorkspaceId};

/// What consuming a refresh token found. The store reports facts; whether a replay is a
/// tolerated retry or a reuse is the token service's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// It was unused: consumed, its session touched and the successor stored, atomically.
    Rotated(SessionRow),
    /// It had been rotated before; nothing was written.
    Replayed {
        /// The family.
        session_id: SessionId,
        /// Its owner.
        user_id: UserId,
        /// Its workspace.
        workspace_id: Option<WorkspaceId>,
        /// When it was rotated.
        rotated_at: DateTime<Utc>,
    },
    /// Unknown, expired, or its session is revoked or over.
    Invalid,
}

/// What a refresh token leads to.
#[derive(Debug, Clone)]
pub struct RefreshContext {
    /// Its session.
    pub session: SessionRow,
    /// The session's user.
    pub user: UserRow,
    /// When the token itself was rotated, if it was.
    pub rotated_at: Option<DateTime<Utc>>,
}

/// Sessions, refresh tokens, revocations and audit.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session with its first refresh token.
    async fn create_session(&self, session: &SessionRow, refresh_hash: &[u8]) -> StoreResult<()>;
    /// Atomically consumes the unused token `old_hash`, touches its live session (re-scoped to
    /// `workspace_id` when given) and stores `new_hash` in the same family. A token rotated
    /// before is reported with when, untouched.
    async fn consume_refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        workspace_id: Option<WorkspaceId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Consumed>;
    /// Touches a live session and stores `new_hash` as one more token of it (a tolerated
    /// replay). `None` when the session is revoked or over.
    async fn continue_session(
        &self,
        session_id: SessionId,
        new_hash: &[u8],
        workspace_id: Option<WorkspaceId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRow>>;
    /// The session a refresh token belongs to (in any state), its user, and when the token was
    /// rotated, in one query.
    async fn refresh_context(&self, hash: &[u8]) -> StoreResult<Option<RefreshContext>>;
    /// Deletes revocation-log entries, refresh tokens and invitations that can no longer matter
    /// (expired before `before`). Returns how many rows went.
    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// A session by id.
    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<SessionRow>>;
    /// Moves a live session to another workspace. Returns the session, or `None` when it is
    /// not live.
    async fn switch_session_workspace(
        &self,
        id: SessionId,
        workspace_id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRow>>;
    /// A user's sessions, newest first, after the keyset cursor `before`.
    async fn list_sessions(
        &self,
        user_id: UserId,
        include_inactive: bool,
        now: DateTime<Utc>,
        before: Option<(DateTime<Utc>, SessionId)>,
        limit: i64,
    ) -> StoreResult<Vec<SessionRow>>;
}

macro_rules! session_columns {
    () => {
        "id, user_id, workspace_id, client_app_id, provider, amr, user_agent, client_address, \
         created_at, last_used_at, expires_at, revoked_at, revoked_reason"
    };
}
fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

/// Inside a transaction: touches a live session and stores one more refresh token of it;
/// `None` (nothing written) when the session is revoked or over.
macro_rules! extend_session {
    ($tx:ident, $session_id:expr, $new_hash:expr, $workspace_id:expr, $now:expr) => {{
        let session = sqlx::query(concat!(
            "UPDATE sessions SET last_used_at = $2, \
             workspace_id = COALESCE($3, workspace_id) \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING ",
            session_columns!()
        ))
        .bind($session_id)
        .bind($now)
        .bind($workspace_id)
        .fetch_optional(&mut *$tx)
        .await
        .map_err(err("session"))?;
        match session {
            None => None,
            Some(session) => {
                let session = session_from_row(&session)?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind($new_hash)
                .bind(session.id)
                .bind($now)
                .bind(session.expires_at)
                .execute(&mut *$tx)
                .await
                .map_err(err("refresh token"))?;
                Some(session)
            }
        }
    }};
}

macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait]
        impl SessionStore for $store {
            async fn create_session(
                &self,
                s: &SessionRow,
                refresh_hash: &[u8],
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(err("session"))?;
                sqlx::query(concat!(
                    "INSERT INTO sessions (",
                    session_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)"
                ))
                .bind(s.id)
                .bind(s.user_id)
                .bind(s.workspace_id)
                .bind(s.client_app_id)
                .bind(&s.provider)
                .bind(&s.amr)
                .bind(&s.user_agent)
                .bind(&s.client_address)
                .bind(s.created_at)
                .bind(s.last_used_at)
                .bind(s.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(err("session"))?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(refresh_hash)
                .bind(s.id)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(err("refresh token"))?;
                tx.commit().await.map_err(err("session"))
            }

            async fn consume_refresh(
                &self,
                old_hash: &[u8],
                new_hash: &[u8],
                workspace_id: Option<WorkspaceId>,
                now: DateTime<Utc>,
            ) -> StoreResult<Consumed> {
                if let Some(session) = self.rotate_fast(old_hash, new_hash, workspace_id, now).await? {
                    return Ok(Consumed::Rotated(session));
                }
                let mut tx = self.pool.begin().await.map_err(err("refresh token"))?;
                // Single use, decided by one conditional write: concurrent refreshes of one
                // token serialize on its row and exactly one sees `rotated_at IS NULL`.
                let consumed = sqlx::query(
                    "UPDATE refresh_tokens SET rotated_at = $2 \
                     WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2 \
                     RETURNING session_id",
                )
                .bind(old_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("refresh token"))?;
                if let Some(row) = consumed {
                    let session_id: SessionId = row.try_get("session_id").map_err(err("refresh token"))?;
                    let Some(session) = extend_session!(tx, session_id, new_hash, workspace_id, now)
                    else {
                        return Ok(Consumed::Invalid);
                    };
                    tx.commit().await.map_err(err("refresh token"))?;
                    return Ok(Consumed::Rotated(session));
                }
                let previous = sqlx::query(
                    "SELECT r.session_id, r.rotated_at, r.expires_at, s.user_id, \
                     s.workspace_id FROM refresh_tokens r \
                     JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1 \
                     AND s.revoked_at IS NULL AND s.expires_at > $2",
                )
                .bind(old_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err("refresh token"))?;
                let Some(previous) = previous else {
                    return Ok(Consumed::Invalid);
                };
                let e = err("refresh token");
                let rotated_at: Option<DateTime<Utc>> = previous.try_get("rotated_at").map_err(&e)?;
                let expires_at: DateTime<Utc> = previous.try_get("expires_at").map_err(&e)?;
                match rotated_at {
                    Some(rotated_at) if expires_at > now => Ok(Consumed::Replayed {
                        session_id: previous.try_get("session_id").map_err(&e)?,
                        user_id: previous.try_get("user_id").map_err(&e)?,
                        workspace_id: previous.try_get("workspace_id").map_err(&e)?,
                        rotated_at,
                    }),
                    _ => Ok(Consumed::Invalid),
                }
            }

            async fn continue_session(
                &self,
                session_id: SessionId,
                new_hash: &[u8],
                workspace_id: Option<WorkspaceId>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<SessionRow>> {
                let mut tx = self.pool.begin().await.map_err(err("refresh token"))?;
                let session = extend_session!(tx, session_id, new_hash, workspace_id, now);
                if session.is_some() {
                    tx.commit().await.map_err(err("refresh token"))?;
                }
                Ok(session)
            }

            async fn refresh_context(&self, hash: &[u8]) -> StoreResult<Option<RefreshContext>> {
                let row = sqlx::query(concat!(
                    "SELECT s.*, t.rotated_at AS token_rotated_at, u.email AS u_email, \
                     u.name AS u_name, u.avatar_url AS u_avatar_url, \
                     u.is_active AS u_is_active, u.is_admin AS u_is_admin, \
                     u.created_at AS u_created_at, u.updated_at AS u_updated_at FROM (SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE id = \
                     (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)) s \
                     JOIN users u ON u.id = s.user_id \
                     JOIN refresh_tokens t ON t.token_hash = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("session"))?;
                let Some(row) = row else { return Ok(None) };
                let session = session_from_row(&row)?;
                let e = err("user");
                let user = UserRow {
                    id: session.user_id,
                    email: row.try_get("u_email").map_err(&e)?,
                    name: row.try_get("u_name").map_err(&e)?,
                    avatar_url: row.try_get("u_avatar_url").map_err(&e)?,
                    is_active: row.try_get("u_is_active").map_err(&e)?,
                    is_admin: row.try_get("u_is_admin").map_err(&e)?,
                    created_at: row.try_get("u_created_at").map_err(&e)?,
                    updated_at: row.try_get("u_updated_at").map_err(&e)?,
                };
                let rotated_at = row
                    .try_get("token_rotated_at")
                    .map_err(err("refresh token"))?;
                Ok(Some(RefreshContext {
                    session,
                    user,
                    rotated_at,
                }))
            }

            async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let revocations = sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(err("revocation"))?;
                let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(err("refresh token"))?;
                let invitations = sqlx::query("DELETE FROM invitations WHERE expires_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(err("invitation"))?;
                Ok(revocations.rows_affected()
                    + tokens.rows_affected()
                    + invitations.rows_affected())
            }

            async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<SessionRow>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("session"))?;
                row.map(|r| session_from_row(&r)).transpose()
            }

            async fn switch_session_workspace(
                &self,
                id: SessionId,
                workspace_id: WorkspaceId,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<SessionRow>> {
                let row = sqlx::query(concat!(
                    "UPDATE sessions SET workspace_id = $2, last_used_at = $3 \
                     WHERE id = $1 AND revoked_at IS NULL AND expires_at > $3 RETURNING ",
                    session_columns!()
                ))
                .bind(id)
                .bind(workspace_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(err("session"))?;
                row.map(|r| session_from_row(&r)).transpose()
            }

            async fn list_sessions(
                &self,
                user_id: UserId,
                include_inactive: bool,
                now: DateTime<Utc>,
                before: Option<(DateTime<Utc>, SessionId)>,
                limit: i64,
            ) -> StoreResult<Vec<SessionRow>> {
                let (at, id) = before.unzip();
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    session_columns!(),
                    " FROM sessions WHERE user_id = $1 \
                     AND ($2 OR (revoked_at IS NULL AND expires_at > $3)) \
                     AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
                     ORDER BY created_at DESC, id DESC LIMIT $6"
                ))
                .bind(user_id)
                .bind(include_inactive)
                .bind(now)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(err("session"))?;
                rows.iter().map(session_from_row).collect()
            }
        }
    };
}

fn session_from_row<R: Row>(row: &R) -> StoreResult<SessionRow>
where
    SessionRow: for<'r> sqlx::FromRow<'r, R>,
{
    SessionRow::from_row(row).map_err(err("session"))
}

impl_session_store!(SqliteStore);
impl_session_store!(PostgresStore);

// Dialect-specific fast path of a first-time refresh, side by side.

impl SqliteStore {
    /// SQLite has no data-modifying CTEs, and its round trips are in-process: always the
    /// transactional path.
    async fn rotate_fast(
        &self,
        _old_hash: &[u8],
        _new_hash: &[u8],
        _workspace_id: Option<WorkspaceId>,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRow>> {
        Ok(None)
    }
}

impl PostgresStore {
    /// The common case (an unused token of a live session) in one statement: consume, touch the
    /// session, store the successor. No row means "not the common case": the caller takes the
    /// transactional path, which tells replay, reuse and invalid apart.
    async fn rotate_fast(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        workspace_id: Option<WorkspaceId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(concat!(
            "WITH consumed AS (UPDATE refresh_tokens SET rotated_at = $2 \
             WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id \
             AND s.revoked_at IS NULL AND s.expires_at > $2) \
             RETURNING session_id), \
             touched AS (UPDATE sessions SET last_used_at = $2, \
             workspace_id = COALESCE($4, workspace_id) \
             WHERE id = (SELECT session_id FROM consumed) AND revoked_at IS NULL \
             AND expires_at > $2 RETURNING ",
            session_columns!(),
            "), inserted AS (INSERT INTO refresh_tokens \
             (token_hash, session_id, created_at, expires_at) \
             SELECT $3, id, $2, expires_at FROM touched RETURNING session_id) \
             SELECT touched.* FROM touched JOIN inserted ON inserted.session_id = touched.id"
        ))
        .bind(old_hash)
        .bind(now)
        .bind(new_hash)
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err("refresh token"))?;
        row.map(|r| session_from_row(&r)).transpose()
    }
}
