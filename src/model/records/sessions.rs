//! Sessions, audit events and revocations, as the store returns them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{SessionId, UserId, WorkspaceId};

/// A session: one refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// Session id (`sid`).
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Current workspace, if scoped.
    pub workspace_id: Option<WorkspaceId>,
    /// Client app signed in through.
    pub client_app_id: Option<Uuid>,
    /// Identity provider id.
    pub provider: String,
    /// Authentication methods, space-separated.
    pub amr: String,
    /// User-Agent at sign-in.
    pub user_agent: String,
    /// Client address at sign-in.
    pub client_address: String,
    /// Sign-in time (`auth_time`).
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_used_at: DateTime<Utc>,
    /// End of the family.
    pub expires_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Revocation reason.
    pub revoked_reason: Option<String>,
}

/// An audit event to record.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct AuditRow {
    /// Event id.
    pub id: Uuid,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Dotted action name (`token.reuse_detected`).
    pub action: String,
    /// Acting user.
    pub actor_user_id: Option<UserId>,
    /// Acting service.
    pub actor_service: Option<String>,
    /// Target kind (`session`, `user`, …).
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Workspace concerned.
    pub workspace_id: Option<WorkspaceId>,
    /// Client address.
    pub client_address: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// JSON details.
    pub details: String,
}

/// Filters of an audit query (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action, or a prefix ending in `.` (`token.`).
    pub action: Option<String>,
    /// Acting user.
    pub actor_user_id: Option<UserId>,
    /// Target id.
    pub target_id: Option<String>,
    /// Workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// From (inclusive).
    pub start: Option<DateTime<Utc>>,
    /// Until (exclusive).
    pub end: Option<DateTime<Utc>>,
    /// `success`, `denied` or `failure`.
    pub outcome: Option<String>,
}

/// One entry of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RevocationRow {
    /// Position in the log.
    pub revision: i64,
    /// Revoked session; `None` for a user-wide revocation.
    pub session_id: Option<SessionId>,
    /// Revoked single token.
    pub jti: Option<String>,
    /// The user.
    pub user_id: UserId,
    /// Why (`logout`, `token_reuse`, …).
    pub reason: String,
    /// When.
    pub revoked_at: DateTime<Utc>,
    /// When no affected token can be unexpired any more.
    pub expires_at: DateTime<Utc>,
    /// For a revocation without a session: the workspace whose tokens (`wid`) it covers;
    /// `None` for a user-wide one. With the nil user, every user's tokens of that workspace.
    pub workspace_id: Option<WorkspaceId>,
}

/// Which sessions to revoke.
#[derive(Debug, Clone, Copy)]
pub enum RevokeScope {
    /// One session.
    Session(SessionId),
    /// Every session of a user, plus a user-wide entry for tokens without a session.
    User(UserId),
    /// Every session signed in through a client app.
    ClientApp(Uuid),
    /// Every session scoped to a workspace.
    Workspace(WorkspaceId),
    /// Every session of a user scoped to a workspace (role change, removal).
    Member {
        /// The workspace.
        workspace_id: WorkspaceId,
        /// The member.
        user_id: UserId,
    },
}
