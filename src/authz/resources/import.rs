//! Bulk import: one message of resources and grants decided on facts read a statement at a
//! time (every key the message names at once, the grants of resources it meets), written a
//! statement at a time, recorded as one changelog entry at one revision. Its rules are those of
//! RegisterResource with upsert and of Share, plus two of its own: a resource appears once per
//! message, and an import does not move a registered resource to another workspace.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rules::{Facts, MAX_CHAIN, may_receive};
use super::{ImportCounts, ImportItem, ImportOp, NewGrant, import_item_error};
use crate::audit;
use crate::error::Error;
use crate::model::change::{Change, GranteeRef, ResourceKey, ResourceState};
use crate::model::{Caller, Revision};
use crate::store::{ChangelogTx, GrantRow, NewResource, WriteTxStore};

/// A resource as the message meets it.
struct Known {
    /// Its row id (new for a resource this message creates).
    id: Uuid,
    /// Its state, after the items before.
    state: ResourceState,
    /// The item that names it in this message, if one did yet.
    item: Option<usize>,
}

/// A registered resource this message changes, written after the new ones.
struct Update {
    item: usize,
    id: Uuid,
    state: ResourceState,
    parent: Option<Uuid>,
    /// Its parent changed to this row: check the chain for a cycle once written.
    reparented: Option<Uuid>,
}

fn key_of(state: &ResourceState) -> ResourceKey {
    ResourceKey {
        service_name: state.service_name.clone(),
        resource_type: state.resource_type.clone(),
        resource_id: state.resource_id.clone(),
    }
}

fn parent_key(state: &ResourceState) -> Option<ResourceKey> {
    state.parent.as_ref().map(|(kind, id)| ResourceKey {
        service_name: state.service_name.clone(),
        resource_type: kind.clone(),
        resource_id: id.clone(),
    })
}

fn precondition(reason: impl Into<String>) -> Error {
    Error::FailedPrecondition(reason.into())
}

/// Decides and commits one message; what it did and its revision (the current one when it
/// changed nothing). The first refused item refuses the message, named by its index and line.
pub(super) async fn decide_import(
    store: &dyn WriteTxStore,
    now: DateTime<Utc>,
    caller: &Caller,
    items: &[ImportItem],
) -> Result<(ImportCounts, Revision), Error> {
    let mut tx = store.begin_changelog().await?;
    let mut known = registered(tx.as_mut(), items).await?;
    let mut granted = grants_of_registered(tx.as_mut(), items, &known).await?;
    let mut facts = Facts::default();
    let mut counts = ImportCounts::default();
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    // (resource row id, grant, whether it is new), the grant's place by (resource, grantee).
    let (mut grants, mut grant_at) = (Vec::new(), HashMap::new());
    let mut changes = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let refused = |err| import_item_error(index, item.line, item.op.name(), err);
        match &item.op {
            ImportOp::Resource(state) => {
                let decided = resource(tx.as_mut(), &mut facts, &mut known, index, state)
                    .await
                    .map_err(refused)?;
                let created = match decided {
                    Decided::Unchanged => {
                        counts.resources_unchanged += 1;
                        continue;
                    }
                    Decided::Created(id, parent) => {
                        counts.resources_created += 1;
                        inserts.push((id, index, parent));
                        true
                    }
                    Decided::Updated(update) => {
                        counts.resources_updated += 1;
                        updates.push(update);
                        false
                    }
                };
                changes.push(Change::ResourceSet {
                    resource: state.clone(),
                    created,
                });
            }
            ImportOp::Grant { key, grant } => {
                let (id, stored, created) = match grant_decision(
                    tx.as_mut(),
                    &mut facts,
                    &known,
                    &granted,
                    key,
                    grant,
                    now,
                )
                .await
                .map_err(refused)?
                {
                    Some(decided) => decided,
                    None => {
                        counts.grants_unchanged += 1;
                        continue;
                    }
                };
                counts.grants_set += 1;
                let workspace_id = known.get(key).map(|k| k.state.workspace_id);
                changes.push(Change::GrantSet {
                    workspace_id: workspace_id.ok_or(Error::Internal)?,
                    key: key.clone(),
                    grantee: stored.grantee,
                    permission: stored.permission,
                    expires_at: stored.expires_at,
                    created,
                });
                granted.insert((id, stored.grantee), stored.clone());
                // New grants are inserted in bulk; one named twice is written as a replacement.
                match grant_at.get(&(id, stored.grantee)) {
                    Some(&at) => grants[at] = (id, stored, false),
                    None => {
                        grant_at.insert((id, stored.grantee), grants.len());
                        grants.push((id, stored, created));
                    }
                }
            }
        }
    }
    // New rows first (a registered resource may move under one), then the changed ones in
    // order, each checked for a cycle once its new parent is written.
    let rows: Vec<NewResource<'_>> = inserts
        .iter()
        .filter_map(|(id, index, parent)| match &items[*index].op {
            ImportOp::Resource(state) => Some(NewResource {
                id: *id,
                state,
                parent: *parent,
            }),
            ImportOp::Grant { .. } => None,
        })
        .collect();
    tx.insert_resources(&rows, crate::model::now()).await?;
    for update in &updates {
        if let Some(parent) = update.reparented
            && tx.chain_reaches(parent, update.id, MAX_CHAIN).await?
        {
            let item = &items[update.item];
            return Err(import_item_error(
                update.item,
                item.line,
                item.op.name(),
                precondition("the parent would create a cycle"),
            ));
        }
        tx.put_resource(Some(update.id), &update.state, update.parent)
            .await?;
    }
    let (new, replaced): (Vec<_>, Vec<_>) = grants.into_iter().partition(|(_, _, new)| *new);
    let strip = |grants: Vec<(Uuid, GrantRow, bool)>| -> Vec<(Uuid, GrantRow)> {
        grants
            .into_iter()
            .map(|(id, grant, _)| (id, grant))
            .collect()
    };
    tx.insert_grants(&strip(new)).await?;
    tx.put_grants(&strip(replaced)).await?;
    if changes.is_empty() {
        return Ok((counts, tx.revision().await?));
    }
    let change = if changes.len() == 1 {
        changes.remove(0)
    } else {
        Change::Batch { changes }
    };
    let event = audit::event(
        "resources.imported",
        &caller.actor,
        "service",
        caller.service.as_deref().unwrap_or_default(),
        serde_json::json!(counts),
    );
    let revision = tx.record(&change, &event).await?;
    tx.commit().await?;
    Ok((counts, revision))
}

/// What a resource item does.
enum Decided {
    Unchanged,
    /// A new resource: its row id and its parent's.
    Created(Uuid, Option<Uuid>),
    Updated(Update),
}

/// The resources the message names (its resources, their parents, the resources of its
/// grants) that are registered already.
async fn registered(
    tx: &mut dyn ChangelogTx,
    items: &[ImportItem],
) -> Result<HashMap<ResourceKey, Known>, Error> {
    let mut named: HashMap<&str, HashSet<(&str, &str)>> = HashMap::new();
    for item in items {
        match &item.op {
            ImportOp::Resource(state) => {
                let keys = named.entry(state.service_name.as_str()).or_default();
                keys.insert((state.resource_type.as_str(), state.resource_id.as_str()));
                if let Some((kind, id)) = &state.parent {
                    keys.insert((kind.as_str(), id.as_str()));
                }
            }
            ImportOp::Grant { key, .. } => {
                named
                    .entry(key.service_name.as_str())
                    .or_default()
                    .insert((key.resource_type.as_str(), key.resource_id.as_str()));
            }
        }
    }
    let mut known = HashMap::new();
    for (service, keys) in named {
        let keys: Vec<(&str, &str)> = keys.into_iter().collect();
        for (row, _) in tx.resources_by_keys(service, &keys).await? {
            let key = key_of(&row.state);
            known.insert(
                key,
                Known {
                    id: row.id,
                    state: row.state,
                    item: None,
                },
            );
        }
    }
    Ok(known)
}

/// The grants on the registered resources the message's grants name, by (resource, grantee).
async fn grants_of_registered(
    tx: &mut dyn ChangelogTx,
    items: &[ImportItem],
    known: &HashMap<ResourceKey, Known>,
) -> Result<HashMap<(Uuid, GranteeRef), GrantRow>, Error> {
    let ids: HashSet<Uuid> = items
        .iter()
        .filter_map(|item| match &item.op {
            ImportOp::Grant { key, .. } => known.get(key).map(|k| k.id),
            ImportOp::Resource(_) => None,
        })
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = ids.into_iter().collect();
    Ok(tx
        .grants_on(&ids)
        .await?
        .into_iter()
        .map(|(resource, grant)| ((resource, grant.grantee), grant))
        .collect())
}

/// Decides a resource item (the rules of RegisterResource with upsert, once per message, no
/// moves between workspaces) and notes it in `known`.
async fn resource(
    tx: &mut dyn ChangelogTx,
    facts: &mut Facts,
    known: &mut HashMap<ResourceKey, Known>,
    index: usize,
    state: &ResourceState,
) -> Result<Decided, Error> {
    if let Some((parent_type, parent_id)) = &state.parent
        && *parent_type == state.resource_type
        && *parent_id == state.resource_id
    {
        return Err(precondition("a resource cannot be its own parent"));
    }
    let key = key_of(state);
    let existing = known.get(&key).map(|k| (k.id, k.state.clone(), k.item));
    if let Some((_, _, Some(earlier))) = existing {
        return Err(Error::invalid(
            "resource_id",
            format!("repeats items[{earlier}]: a resource may appear once in a message"),
        ));
    }
    if let Some((_, stored, _)) = &existing
        && stored == state
    {
        if let Some(k) = known.get_mut(&key) {
            k.item = Some(index);
        }
        return Ok(Decided::Unchanged);
    }
    if !facts.workspace_exists(tx, state.workspace_id).await? {
        return Err(Error::NotFound("workspace".into()));
    }
    if let Some((_, stored, _)) = &existing
        && stored.workspace_id != state.workspace_id
    {
        return Err(precondition(
            "workspace_id: the resource is registered in another workspace, and an import \
             does not move resources (RegisterResource with upsert does)",
        ));
    }
    if let Some(owner) = state.owner_id
        && facts
            .role_of(tx, state.workspace_id, owner)
            .await?
            .is_none()
    {
        return Err(precondition("owner_id is not a member of the workspace"));
    }
    let parent = match parent_key(state) {
        None => None,
        Some(parent_key) => {
            let parent = known
                .get(&parent_key)
                .ok_or_else(|| Error::NotFound("parent resource".into()))?;
            if parent.state.workspace_id != state.workspace_id {
                return Err(precondition("the parent resource is in another workspace"));
            }
            Some(parent.id)
        }
    };
    let (decided, id) = match existing {
        None => {
            let id = Uuid::now_v7(); // time-ordered: index inserts stay at the right edge
            (Decided::Created(id, parent), id)
        }
        Some((id, stored, _)) => {
            let reparented = if stored.parent != state.parent {
                parent
            } else {
                None
            };
            let update = Update {
                item: index,
                id,
                state: state.clone(),
                parent,
                reparented,
            };
            (Decided::Updated(update), id)
        }
    };
    known.insert(
        key,
        Known {
            id,
            state: state.clone(),
            item: Some(index),
        },
    );
    Ok(decided)
}

/// Decides a grant item (the rules of Share, granted by the service): the resource's row id,
/// the grant to store and whether it is new, or `None` when the same grant exists.
async fn grant_decision(
    tx: &mut dyn ChangelogTx,
    facts: &mut Facts,
    known: &HashMap<ResourceKey, Known>,
    granted: &HashMap<(Uuid, GranteeRef), GrantRow>,
    key: &ResourceKey,
    grant: &NewGrant,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, GrantRow, bool)>, Error> {
    if grant.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::invalid("expires_at", "must be in the future"));
    }
    let (id, workspace_id) = known
        .get(key)
        .map(|k| (k.id, k.state.workspace_id))
        .ok_or_else(|| Error::NotFound("resource".into()))?;
    may_receive(tx, facts, grant.grantee, workspace_id).await?;
    let existing = granted.get(&(id, grant.grantee));
    if existing
        .is_some_and(|g| g.permission == grant.permission && g.expires_at == grant.expires_at)
    {
        return Ok(None);
    }
    let stored = GrantRow {
        grantee: grant.grantee,
        permission: grant.permission,
        expires_at: grant.expires_at,
        granted_by: None,
        created_at: crate::model::now(),
    };
    Ok(Some((id, stored, existing.is_none())))
}
