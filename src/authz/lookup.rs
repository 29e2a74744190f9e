//! LookupResources: which resources of a type a user may act on, one page at a time.
//!
//! The first page computes the whole answer from the index. When there are more pages, the
//! answer is pinned as a snapshot in the cache (so every page reads the same revision) and the
//! page token points into it; answers too large to copy, or past a user's cap of live
//! snapshots, page by keyset instead (continue after the last id, at the current revision).

use std::time::Duration;

use uuid::Uuid;

use super::check::Subject;
use super::engine::{Engine, Freshness};
use super::index::{Lookup, Permission};
use crate::error::Error;
use crate::model::Revision;
use crate::model::WorkspaceId;

/// How long a lookup snapshot (the pages after the first) stays readable.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(600);
/// Largest answer copied into a pinned snapshot; larger ones page by keyset.
const MAX_SNAPSHOT_IDS: usize = 100_000;
/// Pinned snapshots one (service, user) may have live at once; more page by keyset.
const MAX_LIVE_SNAPSHOTS: u64 = 16;

const OTHER_LOOKUP: &str =
    "belongs to another lookup (same type, action, user and workspace required)";

/// What a lookup asks: the resources of `resource_type` the subject may `action`.
#[derive(Debug, Clone, Copy)]
pub struct LookupQuery<'a> {
    /// The calling service and the user, in the workspace looked in.
    pub subject: Subject<'a>,
    /// The workspace looked in.
    pub workspace: WorkspaceId,
    /// The resource type.
    pub resource_type: &'a str,
    /// The action.
    pub action: Permission,
}

impl LookupQuery<'_> {
    /// The question a page token belongs to (a token is good for the same question only).
    fn question(&self) -> String {
        let action = match self.action {
            Permission::View => "view",
            Permission::Edit => "edit",
        };
        format!(
            "{}|{}|{}|{}|{}",
            self.subject.service, self.resource_type, action, self.subject.user, self.workspace
        )
    }
}

/// One page of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPage {
    /// The user may act on every resource of the type (workspace admin or owner): no ids.
    pub full_access: bool,
    /// Resource ids of this page, sorted.
    pub ids: Vec<String>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
    /// The revision every page of this lookup answers at (keyset pages: this page's).
    pub revision: Revision,
}

/// A lookup's remaining pages, kept in the cache under a random id.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    /// Who and what it answers.
    question: String,
    revision: Revision,
    ids: Vec<String>,
}

/// The cursor inside a page token: the snapshot and the offset of the next page, or (keyset
/// mode) the last id served, to continue after.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    #[serde(default)]
    snapshot: String,
    #[serde(default)]
    offset: usize,
    /// Keyset mode: continue after this id, at the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Keyset mode: the lookup the token belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    question: String,
}

impl Engine {
    /// One page of at most `limit` (≥ 1) ids, after `page_token` (empty: the first page, read
    /// at `freshness`; later pages read the first page's snapshot).
    pub async fn lookup(
        &self,
        query: &LookupQuery<'_>,
        page_token: &str,
        limit: usize,
        freshness: Freshness,
    ) -> Result<LookupPage, Error> {
        let limit = limit.max(1);
        let question = query.question();
        let cursor = crate::cursor::decode::<Cursor>(page_token)?;
        let after = match cursor {
            Some(cursor) if !cursor.snapshot.is_empty() => {
                return self.snapshot_page(cursor, &question, limit).await;
            }
            Some(cursor) => {
                if cursor.question != question || cursor.after.is_none() {
                    return Err(Error::invalid("page_token", OTHER_LOOKUP));
                }
                cursor.after
            }
            None => None,
        };
        self.ensure(freshness).await?;
        let now = self.now_ms();
        let (answer, revision) = {
            let index = self.read();
            let answer = index.lookup(
                query.subject.service,
                query.resource_type,
                query.subject.user.0,
                query.workspace.0,
                query.action,
                now,
            );
            (answer, index.revision())
        };
        let mut ids: Vec<String> = match answer {
            Lookup::FullAccess => {
                return Ok(LookupPage {
                    full_access: true,
                    ids: Vec::new(),
                    next_page_token: String::new(),
                    revision,
                });
            }
            Lookup::Ids(ids) => ids.iter().map(|id| id.to_string()).collect(),
        };
        if !ids.is_sorted() {
            ids.sort_unstable();
        }
        if let Some(after) = &after {
            let start = ids.partition_point(|id| id <= after);
            ids.drain(..start);
        }
        let more = ids.len() > limit;
        // Pinned when it may be; while the cache is down, by keyset (pages then follow the
        // current revision instead of the first page's).
        let pinned = if more
            && after.is_none()
            && ids.len() <= MAX_SNAPSHOT_IDS
            && self.admit_snapshot(query.subject).await
        {
            self.pin(&question, revision, &ids).await
        } else {
            None
        };
        let next_page_token = match pinned {
            Some(snapshot) => crate::cursor::encode(&Cursor {
                snapshot,
                offset: limit,
                after: None,
                question: String::new(),
            }),
            None if more => crate::cursor::encode(&Cursor {
                snapshot: String::new(),
                offset: 0,
                after: Some(ids[limit - 1].clone()),
                question,
            }),
            None => String::new(),
        };
        ids.truncate(limit);
        Ok(LookupPage {
            full_access: false,
            ids,
            next_page_token,
            revision,
        })
    }

    /// A later page read from the snapshot the first page pinned.
    async fn snapshot_page(
        &self,
        cursor: Cursor,
        question: &str,
        limit: usize,
    ) -> Result<LookupPage, Error> {
        let expired = || {
            Error::FailedPrecondition(
                "the lookup snapshot expired; restart from the first page".into(),
            )
        };
        let bytes = self
            .cache
            .get(&format!("lookup:{}", cursor.snapshot))
            .await
            .map_err(|_| Error::Unavailable)?
            .ok_or_else(expired)?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|_| expired())?;
        if snapshot.question != question {
            return Err(Error::invalid("page_token", OTHER_LOOKUP));
        }
        if cursor.offset > snapshot.ids.len() {
            return Err(Error::invalid(
                "page_token",
                "is not a token of this lookup",
            ));
        }
        let end = cursor.offset.saturating_add(limit).min(snapshot.ids.len());
        let ids = snapshot
            .ids
            .get(cursor.offset..end)
            .unwrap_or_default()
            .to_vec();
        let next_page_token = if end < snapshot.ids.len() {
            crate::cursor::encode(&Cursor {
                snapshot: cursor.snapshot,
                offset: end,
                after: None,
                question: String::new(),
            })
        } else {
            String::new()
        };
        Ok(LookupPage {
            full_access: false,
            ids,
            next_page_token,
            revision: snapshot.revision,
        })
    }

    /// Whether the subject may pin one more lookup snapshot now (at most
    /// [`MAX_LIVE_SNAPSHOTS`] within one snapshot lifetime), bounding the cache they fill; not
    /// while the cache is down.
    async fn admit_snapshot(&self, subject: Subject<'_>) -> bool {
        let counted = self
            .cache
            .hit(
                &format!("lookup-snapshots:{}:{}", subject.service, subject.user),
                SNAPSHOT_TTL,
            )
            .await;
        counted.is_ok_and(|counted| counted.count <= MAX_LIVE_SNAPSHOTS)
    }

    /// Stores an answer's pages as a snapshot; its id, or `None` when the cache cannot keep it.
    async fn pin(&self, question: &str, revision: Revision, ids: &[String]) -> Option<String> {
        let snapshot = Uuid::new_v4().to_string();
        let stored = serde_json::to_vec(&Snapshot {
            question: question.to_string(),
            revision,
            ids: ids.to_vec(),
        })
        .ok()?;
        match self
            .cache
            .set(&format!("lookup:{snapshot}"), &stored, SNAPSHOT_TTL)
            .await
        {
            Ok(()) => Some(snapshot),
            Err(err) => {
                tracing::warn!(error = %err, "lookup snapshot not stored; paging by keyset");
                None
            }
        }
    }
}
