//! The resources service: registering resources, their owner and visibility, and sharing
//! them, one write at a time or many in one atomic batch. Its rules (`rules.rs`) — the workspace
//! and owner of a resource, parents in the same workspace and without cycles, who may change
//! grants and who may receive them — are decided on facts read inside the write's transaction
//! (under the changelog lock), with the audit event of every write; and read-your-writes: each
//! write is applied to this process's index before it answers, and its revision is what the
//! caller's consistency token names.

mod import;
mod rules;
mod staged;
mod writer;

use crate::model::{Permission, Visibility};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine::Engine;
use crate::error::Error;
use crate::model::UserId;
use crate::model::change::{GranteeRef, ResourceKey, ResourceState};
use crate::model::{Caller, Written};
use crate::store::{AuthzStore, GrantRow, GroupStore, IdentityStore, ResourceRow, Store};
use rules::Outcome;
use writer::Writer;

/// Most operations in one batch.
pub const MAX_BATCH: usize = 1000;

/// A new grant.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// Who receives it.
    pub grantee: GranteeRef,
    /// What it allows.
    pub permission: Permission,
    /// When it lapses (in the future; millisecond precision is kept).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One write of a batch, as its single RPC takes it.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Register (or, with `upsert`, update) a resource.
    Register {
        /// The resource's state.
        state: ResourceState,
        /// Replace the registered resource's state.
        upsert: bool,
    },
    /// Delete a resource with its grants.
    Delete {
        /// The resource.
        key: ResourceKey,
        /// An absent resource is no error.
        allow_missing: bool,
    },
    /// Grant a user or group access.
    Share {
        /// The resource.
        key: ResourceKey,
        /// The grant.
        grant: NewGrant,
    },
    /// Remove a grant.
    Unshare {
        /// The resource.
        key: ResourceKey,
        /// Whose grant.
        grantee: GranteeRef,
        /// Only a grant of this level, when given.
        permission: Option<Permission>,
    },
    /// Set a resource's visibility.
    SetVisibility {
        /// The resource.
        key: ResourceKey,
        /// The new visibility.
        visibility: Visibility,
    },
    /// Set or clear a resource's owner.
    SetOwner {
        /// The resource.
        key: ResourceKey,
        /// The new owner (`None`: none).
        owner: Option<UserId>,
    },
}

impl WriteOp {
    /// The operation's name in a WriteBatch request (`operations[3].share`).
    pub fn name(&self) -> &'static str {
        match self {
            WriteOp::Register { .. } => "register",
            WriteOp::Delete { .. } => "delete",
            WriteOp::Share { .. } => "share",
            WriteOp::Unshare { .. } => "unshare",
            WriteOp::SetVisibility { .. } => "set_visibility",
            WriteOp::SetOwner { .. } => "set_owner",
        }
    }
}

/// What one operation of a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchResult {
    /// Whether it changed anything.
    pub changed: bool,
    /// Whether it created a resource.
    pub created: bool,
}

/// Most items in one import message.
pub const MAX_IMPORT: usize = 5000;

/// One item of an import message.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// Its line in the imported file (0: not given), for errors.
    pub line: u64,
    /// What to import.
    pub op: ImportOp,
}

/// A resource or a grant to import.
#[derive(Debug, Clone)]
pub enum ImportOp {
    /// A resource, registered with upsert.
    Resource(ResourceState),
    /// A grant, as Share by the service.
    Grant {
        /// The resource.
        key: ResourceKey,
        /// The grant.
        grant: NewGrant,
    },
}

impl ImportOp {
    /// The item's kind in an ImportResources request (`items[3].grant`).
    pub fn name(&self) -> &'static str {
        match self {
            ImportOp::Resource(_) => "resource",
            ImportOp::Grant { .. } => "grant",
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    /// Resources created.
    pub resources_created: u64,
    /// Registered resources changed.
    pub resources_updated: u64,
    /// Resources already as imported.
    pub resources_unchanged: u64,
    /// Grants created or changed.
    pub grants_set: u64,
    /// Grants already as imported.
    pub grants_unchanged: u64,
}

impl std::ops::AddAssign for ImportCounts {
    fn add_assign(&mut self, other: Self) {
        self.resources_created += other.resources_created;
        self.resources_updated += other.resources_updated;
        self.resources_unchanged += other.resources_unchanged;
        self.grants_set += other.grants_set;
        self.grants_unchanged += other.grants_unchanged;
    }
}

/// INVALID_ARGUMENT naming `items` unless an import message holds 1 to [`MAX_IMPORT`] items.
pub fn check_import_len(len: usize) -> Result<(), Error> {
    if len == 0 || len > MAX_IMPORT {
        return Err(Error::invalid(
            "items",
            format!("must hold 1 to {MAX_IMPORT} items (it holds {len})"),
        ));
    }
    Ok(())
}

/// An import item's refusal, as the refusal of its message: named as [`batch_item_error`]
/// names an operation (`items[3].grant.expires_at`, `items[7]`), with the item's line when
/// given.
pub fn import_item_error(index: usize, line: u64, kind: &str, err: Error) -> Error {
    let at = if line > 0 {
        format!(" (line {line})")
    } else {
        String::new()
    };
    item_error(&format!("items[{index}]"), kind, &at, err)
}

/// INVALID_ARGUMENT naming `operations` unless a batch holds 1 to [`MAX_BATCH`] operations.
pub fn check_batch_len(len: usize) -> Result<(), Error> {
    if len == 0 || len > MAX_BATCH {
        return Err(Error::invalid(
            "operations",
            format!("must hold 1 to {MAX_BATCH} operations (it holds {len})"),
        ));
    }
    Ok(())
}

/// An operation's refusal, as the refusal of the whole batch: the operation is named, and what
/// its single RPC answers with NOT_FOUND, ALREADY_EXISTS or FAILED_PRECONDITION is an invalid
/// argument of the batch. `op` is the operation's kind (empty when it has none).
pub fn batch_item_error(index: usize, op: &str, err: Error) -> Error {
    item_error(&format!("operations[{index}]"), op, "", err)
}

/// The refusal of `item` (of kind `op`, empty when unknown), `at` appended to the reason.
fn item_error(item: &str, op: &str, at: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument { field, reason } if op.is_empty() => Error::InvalidArgument {
            field: format!("{item}.{field}"),
            reason: format!("{reason}{at}"),
        },
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field: format!("{item}.{op}.{field}"),
            reason: format!("{reason}{at}"),
        },
        Error::NotFound(what) => Error::invalid(item, format!("{what} not found{at}")),
        Error::AlreadyExists(reason) | Error::FailedPrecondition(reason) => {
            Error::invalid(item, format!("{reason}{at}"))
        }
        Error::PermissionDenied(reason) => Error::PermissionDenied(format!("{item}: {reason}{at}")),
        other => other,
    }
}

/// A live grant, with the grantee's name (and a user's email) when asked for.
#[derive(Debug, Clone)]
pub struct GrantView {
    /// The grant.
    pub grant: GrantRow,
    /// The user's or group's name (empty unless enriched).
    pub grantee_name: String,
    /// The user's email (empty unless enriched, or for a group).
    pub grantee_email: String,
}

/// Resources and their grants.
pub struct Resources {
    /// Resource and grant reads.
    authz: Arc<dyn AuthzStore>,
    users: Arc<dyn IdentityStore>,
    groups: Arc<dyn GroupStore>,
    engine: Arc<Engine>,
    /// Single writes, committed in groups.
    writer: Writer,
}

impl Resources {
    /// Over `store`, applying writes to `engine`; starts the task that commits single writes
    /// (so it must be called inside a Tokio runtime).
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>) -> Self {
        Self {
            writer: Writer::start(store.clone(), engine.clone()),
            authz: store.clone(),
            users: store.clone(),
            groups: store,
            engine,
        }
    }

    /// The resource, NOT_FOUND when absent.
    async fn existing(&self, key: &ResourceKey) -> Result<ResourceRow, Error> {
        self.authz
            .resource(key)
            .await?
            .ok_or_else(|| Error::NotFound("resource".into()))
    }

    /// Runs one operation, committed with the single writes queued beside it (group commit);
    /// answers once it is in this process's index.
    async fn one(&self, caller: &Caller, op: WriteOp) -> Result<Written<Outcome>, Error> {
        let (value, revision) = self.writer.write(caller, op).await?;
        Ok(Written { value, revision })
    }

    /// Registers a resource (or, with `upsert`, updates the registered one); the row and
    /// whether it was created.
    pub async fn register(
        &self,
        caller: &Caller,
        state: &ResourceState,
        upsert: bool,
    ) -> Result<Written<(ResourceRow, bool)>, Error> {
        let op = WriteOp::Register {
            state: state.clone(),
            upsert,
        };
        let written = self.one(caller, op).await?;
        match written.value {
            Outcome::Resource(row, created) => Ok(Written {
                value: (row, created),
                revision: written.revision,
            }),
            _ => Err(Error::Internal),
        }
    }

    /// Deletes a resource with its grants; `false` (at the current revision) when there is
    /// none and `allow_missing`, NOT_FOUND otherwise.
    pub async fn delete(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        allow_missing: bool,
    ) -> Result<Written<bool>, Error> {
        let op = WriteOp::Delete {
            key: key.clone(),
            allow_missing,
        };
        let written = self.one(caller, op).await?;
        match written.value {
            Outcome::Deleted(deleted) => Ok(Written {
                value: deleted,
                revision: written.revision,
            }),
            _ => Err(Error::Internal),
        }
    }

    /// Sets a resource's visibility (`private` or `workspace`).
    pub async fn set_visibility(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        visibility: Visibility,
    ) -> Result<Written<ResourceRow>, Error> {
        let op = WriteOp::SetVisibility {
            key: key.clone(),
            visibility,
        };
        self.updated(caller, op).await
    }

    /// Sets (or, with `None`, clears) a resource's owner; NOT_FOUND for an unknown user.
    pub async fn set_owner(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        owner: Option<UserId>,
    ) -> Result<Written<ResourceRow>, Error> {
        let op = WriteOp::SetOwner {
            key: key.clone(),
            owner,
        };
        self.updated(caller, op).await
    }

    async fn updated(&self, caller: &Caller, op: WriteOp) -> Result<Written<ResourceRow>, Error> {
        let written = self.one(caller, op).await?;
        match written.value {
            Outcome::Resource(row, _) => Ok(Written {
                value: row,
                revision: written.revision,
            }),
            _ => Err(Error::Internal),
        }
    }

    /// Grants `grant` on a resource (replacing the grantee's grant of that permission); the
    /// grant and whether anything changed.
    pub async fn share(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        grant: &NewGrant,
    ) -> Result<Written<(GrantRow, bool)>, Error> {
        let op = WriteOp::Share {
            key: key.clone(),
            grant: grant.clone(),
        };
        let written = self.one(caller, op).await?;
        match written.value {
            Outcome::Grant(grant, changed) => Ok(Written {
                value: (grant, changed),
                revision: written.revision,
            }),
            _ => Err(Error::Internal),
        }
    }

    /// Removes the grantee's grants on a resource (of `permission` only, when given); whether
    /// one was removed.
    pub async fn unshare(
        &self,
        caller: &Caller,
        key: &ResourceKey,
        grantee: GranteeRef,
        permission: Option<Permission>,
    ) -> Result<Written<bool>, Error> {
        let op = WriteOp::Unshare {
            key: key.clone(),
            grantee,
            permission,
        };
        let written = self.one(caller, op).await?;
        match written.value {
            Outcome::Unshared(removed) => Ok(Written {
                value: removed,
                revision: written.revision,
            }),
            _ => Err(Error::Internal),
        }
    }

    /// Applies `ops` in order in one transaction, each seeing the ones before it, recorded as
    /// one changelog entry at one revision. The first refused operation refuses the batch (see
    /// [`batch_item_error`]) and nothing is written.
    pub async fn write_batch(
        &self,
        caller: &Caller,
        ops: Vec<WriteOp>,
    ) -> Result<Written<Vec<BatchResult>>, Error> {
        check_batch_len(ops.len())?;
        let (value, revision) = self.writer.write_batch(caller, ops).await?;
        Ok(Written { value, revision })
    }

    /// Imports one message of resources and grants in one transaction at one revision (see
    /// `import.rs`); the first refused item refuses it (see [`import_item_error`]) and nothing
    /// of it is written.
    pub async fn import(
        &self,
        caller: &Caller,
        items: Vec<ImportItem>,
    ) -> Result<Written<ImportCounts>, Error> {
        check_import_len(items.len())?;
        let (value, revision) = self.writer.import(caller, items).await?;
        Ok(Written { value, revision })
    }

    /// A resource with its live grants (with grantee names and emails when `enrich`).
    pub async fn get(
        &self,
        key: &ResourceKey,
        enrich: bool,
    ) -> Result<(ResourceRow, Vec<GrantView>), Error> {
        let row = self.existing(key).await?;
        let now = self.engine.clock.now();
        let mut grants = Vec::new();
        for grant in self.authz.grants(row.id).await? {
            if grant.expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            let (mut grantee_name, mut grantee_email) = (String::new(), String::new());
            if enrich {
                match grant.grantee {
                    GranteeRef::User(id) => {
                        if let Some(user) = self.users.user_by_id(id).await? {
                            (grantee_name, grantee_email) = (user.name, user.email);
                        }
                    }
                    GranteeRef::Group(id) => {
                        if let Some(group) = self.groups.group(id).await? {
                            grantee_name = group.name;
                        }
                    }
                }
            }
            grants.push(GrantView {
                grant,
                grantee_name,
                grantee_email,
            });
        }
        Ok((row, grants))
    }
}

#[cfg(test)]
mod staged_tests;
#[cfg(test)]
mod tests;
