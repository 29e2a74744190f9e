//! Durable state. One trait per aggregate, implemented for SQLite (embedded) and PostgreSQL
//! (clustered). SQL is written once where the dialects agree (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`); each aggregate's queries live in one file and are compiled for both pools.

/// Binds an [`AuditRow`] into its INSERT, for use inside a caller's transaction.
macro_rules! insert_audit_query {
    ($event:expr) => {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, action, actor_user_id, actor_service, \
             target_type, target_id, workspace_id, client_address, request_id, outcome, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($event.id)
        .bind($event.occurred_at)
        .bind(&$event.action)
        .bind($event.actor_user_id)
        .bind(&$event.actor_service)
        .bind(&$event.target_type)
        .bind(&$event.target_id)
        .bind($event.workspace_id)
        .bind(&$event.client_address)
        .bind(&$event.request_id)
        .bind(&$event.outcome)
        .bind(&$event.details)
    };
}

/// Appends a [`crate::model::Change`] to the changelog inside a caller's transaction (which must
/// hold [`WriteLock::Changelog`]); evaluates to the revision.
macro_rules! append_change {
    ($tx:expr, $change:expr) => {
        sqlx::query_scalar::<_, crate::model::Revision>(
            "INSERT INTO changelog (workspace_id, service_name, kind, payload, occurred_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING revision",
        )
        .bind($change.workspace_id())
        .bind($change.service_name())
        .bind($change.kind())
        .bind($change.payload())
        .bind(crate::model::now())
        .fetch_one(&mut *$tx)
    };
}

/// The newest changelog revision, inside a caller's transaction or on a pool.
macro_rules! current_revision_query {
    () => {
        sqlx::query_scalar::<_, crate::model::Revision>(
            "SELECT COALESCE(MAX(revision), 0) FROM changelog",
        )
    };
}

/// The columns of a resource row with its parent's key, for `WHERE` `$where`.
macro_rules! resource_select {
    ($where:literal) => {
        concat!(
            "SELECT r.id, r.service_name, r.resource_type, r.resource_id, r.workspace_id, \
             r.owner_id, r.visibility, r.parent_id, r.created_at, r.updated_at, \
             p.resource_type AS parent_type, p.resource_id AS parent_key \
             FROM resources r LEFT JOIN resources p ON p.id = r.parent_id WHERE ",
            $where
        )
    };
}

macro_rules! user_columns {
    () => {
        "id, email, name, avatar_url, is_active, is_admin, created_at, updated_at"
    };
}
macro_rules! workspace_columns {
    () => {
        "id, name, slug, description, created_at, updated_at"
    };
}

mod admin;
mod apps;
mod authz;
mod bulk_tx;
mod changelog_tx;
mod copy_in;
mod groups;
mod identity;
mod invitations;
mod keys;
pub mod postgres;
mod revocations;
mod roles;
mod sessions;
pub mod sqlite;
mod tenancy;
mod tx;
mod workspaces;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{Config, DatabaseKind};

pub use crate::model::records::{
    AuditFilter, AuditRow, ClientAppRow, GrantRow, GroupRow, IdentityRow, InvitationRow, MemberRow,
    ResourceRow, RevocationRow, RevokeScope, RoleRow, ServiceAppRow, SessionRow, UserRow,
    WorkspaceRow,
};
pub use admin::{AdminStore, Stats, UserChange, UserUpdate};
pub use apps::{AppStore, ClientAppChange, ServiceAppChange};
pub use authz::{AuthzStore, ChangeRow};
pub use bulk_tx::{BulkResourceTx, NewResource};
pub use groups::GroupStore;
pub use identity::IdentityStore;
pub use invitations::{InvitationStore, PendingInvitation};
pub use keys::{KeyStatus, NewSigningKey, SigningKeyRow};
pub use revocations::RevocationStore;
pub use roles::RoleStore;
pub use sessions::{Consumed, SessionStore};
pub use tenancy::TenancyStore;
pub use tx::{ChangelogTx, MembershipTx, ResourceTx, RuleTx, WriteTxStore};
pub use workspaces::WorkspaceStore;

/// Errors of the storage layer. Never carries SQL text or driver details to callers: those are
/// logged where the error is made.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out.
    #[error("database unavailable")]
    Unavailable,
    /// A uniqueness rule was violated; names what already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The addressed row does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Anything else; details were logged.
    #[error("database error")]
    Internal,
}

impl StoreError {
    /// Classifies a driver error, logging what must not travel further.
    pub(crate) fn from_sqlx(err: sqlx::Error, what: &'static str) -> Self {
        match &err {
            // Connection-level failures, including a peer that vanished mid-handshake (which
            // the driver reports as a protocol error): the database is unreachable.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                tracing::warn!(error = %err, "database unavailable");
                StoreError::Unavailable
            }
            sqlx::Error::RowNotFound => StoreError::NotFound(what),
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P03") =>
            {
                // PostgreSQL connection exceptions and "admin shutdown / cannot connect now".
                tracing::warn!(error = %err, "database unavailable");
                StoreError::Unavailable
            }
            _ => {
                tracing::error!(error = %err, entity = what, "database error");
                StoreError::Internal
            }
        }
    }
}

/// Writers that must not interleave: each takes its lock for the whole transaction
/// (PostgreSQL advisory lock; SQLite serializes every write transaction anyway).
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteLock {
    /// The revocation log: revisions must commit in order, or a follower reading
    /// `revision > cursor` could step over one still in flight.
    Revocations = 0x5e_0001,
    /// Signing-key rotation and activation.
    SigningKeys = 0x5e_0002,
    /// The authorization changelog: revisions commit in order, and membership rules (the last
    /// owner) are decided with no other authorization write in between.
    Changelog = 0x5e_0003,
    /// Changes to who is an active platform admin, so that two admins demoting each other at
    /// once cannot both see the other remain.
    PlatformAdmins = 0x5e_0004,
}

/// A `LIKE` pattern matching what starts with `text` (case kept), with `%`, `_` and `\` in it
/// taken literally (queries say `ESCAPE '\'`).
pub(crate) fn prefix_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\` in it taken literally
/// (queries say `ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Signing keys (JWT): generated once, encrypted at rest, rotated with an overlap.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts `key` as the active key unless an active key already exists.
    /// Returns whether it was inserted. Safe under concurrent first starts.
    async fn insert_key_if_none_active(&self, key: &NewSigningKey) -> StoreResult<bool>;
    /// The key that currently signs, if any.
    async fn active_key(&self) -> StoreResult<Option<SigningKeyRow>>;
    /// Every key that belongs in the JWKS at `now`: the active key and retired keys whose
    /// overlap has not ended, newest first.
    async fn published_keys(&self, now: DateTime<Utc>) -> StoreResult<Vec<SigningKeyRow>>;
    /// Publishes `key` as the pending key that signs from `activate_at` (replacing any pending
    /// key), and schedules the active key to stop verifying at `retire_active_at`.
    /// `Conflict` when a concurrent rotation committed first.
    async fn schedule_key(
        &self,
        key: &NewSigningKey,
        activate_at: DateTime<Utc>,
        retire_active_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Makes the pending key active once its time has come (the previous active key retires).
    /// Idempotent across replicas; says whether this call activated it.
    async fn activate_due_key(&self, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Ends a key that no longer signs at `now`: it leaves the JWKS and stops verifying, and its
    /// private key material is deleted. `Ok(None)` when no key has that kid; `Ok(Some(status))`
    /// with the key's status, which is `Active` or `Pending` (then nothing changed: those must
    /// be rotated away first) or `Retired` (done, also when it already was).
    async fn retire_key_now(&self, kid: &str, now: DateTime<Utc>)
    -> StoreResult<Option<KeyStatus>>;
    /// Deletes the private key material of retired keys (they never sign again). Returns how
    /// many were wiped.
    async fn wipe_retired_keys(&self) -> StoreResult<u64>;
}

/// The whole durable store: every aggregate trait plus health.
#[async_trait]
pub trait Store:
    KeyStore
    + IdentityStore
    + WorkspaceStore
    + SessionStore
    + RevocationStore
    + AppStore
    + AdminStore
    + TenancyStore
    + GroupStore
    + RoleStore
    + InvitationStore
    + AuthzStore
    + WriteTxStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`, for logs.
    fn backend(&self) -> &'static str;
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Closes the pool; in-flight queries finish first.
    async fn close(&self);
}

/// Opens the store selected by `config` (does not migrate).
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.effective_database_url();
    Ok(match config.database_kind() {
        DatabaseKind::Sqlite => Arc::new(sqlite::SqliteStore::connect(&url, config).await?),
        DatabaseKind::Postgres => Arc::new(postgres::PostgresStore::connect(&url, config).await?),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(super::contains_pattern("A_b%"), "%a\\_b\\%%");
        assert_eq!(super::contains_pattern("x\\y"), "%x\\\\y%");
        assert_eq!(super::prefix_pattern("group_member."), "group\\_member.%");
    }
}
