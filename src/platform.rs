//! Platform administration: bulk import and export of users and memberships, the dashboard
//! counts, the audit trail and the readiness of the backends.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit;
use crate::cache::Cache;
use crate::csv_io::{ExportKind, ImportReport};
use crate::error::Error;
use crate::model::Caller;
use crate::store::{AuditFilter, AuditRow, Stats, Store};

/// Platform administration over the store: readiness, CSV import and export, the audit trail
/// and counts. It spans every table, so it holds the whole store.
pub struct Platform {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
}

/// Whether each backend answered a ping in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered.
    pub database: bool,
    /// The cache answered.
    pub cache: bool,
}

impl Platform {
    /// Over `store` and `cache`.
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>) -> Self {
        Self { store, cache }
    }

    /// Pings the database and the cache at once, each given `timeout`.
    pub async fn readiness(&self, timeout: Duration) -> Readiness {
        let (database, cache) = tokio::join!(
            tokio::time::timeout(timeout, self.store.ping()),
            tokio::time::timeout(timeout, self.cache.ping()),
        );
        Readiness {
            database: matches!(database, Ok(Ok(()))),
            cache: matches!(cache, Ok(Ok(()))),
        }
    }

    /// Imports users and memberships from CSV (`dry_run`: report only).
    pub async fn import_csv(
        &self,
        caller: &Caller,
        csv: &[u8],
        dry_run: bool,
    ) -> Result<ImportReport, Error> {
        crate::csv_io::import(self.store.as_ref(), &caller.actor, csv, dry_run).await
    }

    /// Exports `kind` as CSV, audited; the CSV and its number of rows.
    pub async fn export_csv(
        &self,
        caller: &Caller,
        kind: ExportKind,
    ) -> Result<(Vec<u8>, usize), Error> {
        let (csv, rows) = crate::csv_io::export(self.store.as_ref(), kind).await?;
        let name = match kind {
            ExportKind::Users => "users",
            ExportKind::Workspaces => "workspaces",
            ExportKind::Memberships => "memberships",
        };
        let event = audit::event(
            "admin.csv_exported",
            &caller.actor,
            "csv",
            name,
            serde_json::json!({ "rows": rows }),
        );
        self.store.insert_audit(&event).await?;
        Ok((csv, rows))
    }

    /// The dashboard counts as of `now`.
    pub async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, Error> {
        Ok(self.store.stats(now).await?)
    }

    /// Audit events matching `filter`, newest first, before the keyset cursor; at most `limit`.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, Error> {
        Ok(self.store.list_audit(filter, before, limit).await?)
    }
}
