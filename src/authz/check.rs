//! Check and CheckBulk: the engine's answer to "may this user do this to that resource", at a
//! freshness the caller chooses. This is the one seam where a Check is answered; routing a
//! Check to the replica that owns its workspace would go here.

use super::engine::{Engine, Freshness};
use super::index::{Index, Permission};
use crate::error::Error;
use crate::model::Revision;
use crate::model::{UserId, WorkspaceId};

/// Who asks: the calling service and the user it acts for, in the user's token workspace
/// (`None`: the token names no workspace, and nothing is allowed).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The calling service (resources live in its namespace).
    pub service: &'a str,
    /// The user.
    pub user: UserId,
    /// The workspace the user acts in.
    pub workspace: Option<WorkspaceId>,
}

/// One question of a Check: an action on a resource of the subject's service.
#[derive(Debug, Clone, Copy)]
pub struct CheckItem<'a> {
    /// The resource's type.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: &'a str,
    /// The action asked for.
    pub action: Permission,
}

/// A Check's answer and the index revision it was answered at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// The revision of the index that answered.
    pub revision: Revision,
}

/// CheckBulk's answers, in the order asked, and the one revision they were all answered at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisions {
    /// One answer per item.
    pub allowed: Vec<bool>,
    /// The revision of the index that answered.
    pub revision: Revision,
}

/// One answer from the index at `now` (unix ms): nothing is allowed outside a workspace.
fn decide(index: &Index, subject: &Subject<'_>, item: &CheckItem<'_>, now: i64) -> bool {
    subject.workspace.is_some_and(|workspace| {
        index.check(
            subject.service,
            item.resource_type,
            item.resource_id,
            subject.user.0,
            workspace.0,
            item.action,
            now,
        )
    })
}

impl Engine {
    /// Answers one Check, from an index at least as fresh as `freshness` asks.
    pub async fn check(
        &self,
        subject: &Subject<'_>,
        item: &CheckItem<'_>,
        freshness: Freshness,
    ) -> Result<Decision, Error> {
        self.ensure(freshness).await?;
        let now = self.now_ms();
        let index = self.read();
        let allowed = decide(&index, subject, item, now);
        let revision = index.revision();
        drop(index);
        self.count_decisions(u64::from(allowed), u64::from(!allowed));
        Ok(Decision { allowed, revision })
    }

    /// Answers many Checks of one subject under one read of the index (one revision).
    pub async fn check_bulk(
        &self,
        subject: &Subject<'_>,
        items: &[CheckItem<'_>],
        freshness: Freshness,
    ) -> Result<Decisions, Error> {
        self.ensure(freshness).await?;
        let now = self.now_ms();
        let index = self.read();
        let allowed: Vec<bool> = items
            .iter()
            .map(|item| decide(&index, subject, item, now))
            .collect();
        let revision = index.revision();
        drop(index);
        let yes = allowed.iter().filter(|a| **a).count() as u64;
        self.count_decisions(yes, allowed.len() as u64 - yes);
        Ok(Decisions { allowed, revision })
    }
}
