//! The changelog side of a write transaction ([`ChangelogTx`](super::ChangelogTx)): the
//! revision, appending entries (one or many a statement) with their audit events, commit. The
//! macro is expanded in `tx.rs` for each pool's transaction type.

/// The columns of a many-row audit insert (values follow).
pub(super) const AUDIT_INSERT: &str = "INSERT INTO audit_events (id, occurred_at, action, actor_user_id, \
    actor_service, target_type, target_id, workspace_id, client_address, request_id, outcome, \
    details) ";
/// Changelog rows per statement: 5 parameters each, under SQLite's limit of 999.
pub(super) const CHANGES_PER_INSERT: usize = 150;
/// Audit rows per statement: 12 parameters each, under SQLite's limit of 999.
pub(super) const AUDIT_ROWS_PER_INSERT: usize = 80;

/// The VALUES of changelog rows (`$changes`, committed at `$now`) for a query builder.
macro_rules! push_changes {
    ($insert:expr, $changes:expr, $now:expr) => {
        $insert.push_values($changes, |mut row, change| {
            row.push_bind(change.workspace_id())
                .push_bind(change.service_name().map(str::to_string))
                .push_bind(change.kind())
                .push_bind(change.payload())
                .push_bind($now);
        })
    };
}

/// The VALUES of audit rows (`$audits`, after [`AUDIT_INSERT`]) for a query builder.
macro_rules! push_audits {
    ($insert:expr, $audits:expr) => {
        $insert.push_values($audits, |mut row, e| {
            row.push_bind(e.id)
                .push_bind(e.occurred_at)
                .push_bind(&e.action)
                .push_bind(e.actor_user_id)
                .push_bind(&e.actor_service)
                .push_bind(&e.target_type)
                .push_bind(&e.target_id)
                .push_bind(e.workspace_id)
                .push_bind(&e.client_address)
                .push_bind(&e.request_id)
                .push_bind(&e.outcome)
                .push_bind(&e.details);
        })
    };
}

pub(super) use {push_audits, push_changes};

/// Parameters PostgreSQL binds in one statement at most.
pub(super) const MAX_PARAMETERS: usize = 65535;

/// Implements `ChangelogTx` for `Tx<$db>` (expanded where `Tx`, `err` and the query macros are
/// in scope); with `$one_statement`, entries and their audit events go in together, the audit
/// rows by a data-modifying `WITH` (PostgreSQL; SQLite has none).
macro_rules! impl_changelog_tx {
    ($db:ty, $one_statement:expr) => {
        #[async_trait]
        impl ChangelogTx for Tx<$db> {
            async fn revision(&mut self) -> StoreResult<Revision> {
                current_revision_query!()
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err(err("changelog"))
            }

            async fn append(&mut self, change: &Change) -> StoreResult<Revision> {
                append_change!(self.0, change)
                    .await
                    .map_err(err("changelog"))
            }

            async fn append_all(
                &mut self,
                changes: &[Change],
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Revision>> {
                let mut revisions = Vec::with_capacity(changes.len());
                for chunk in changes.chunks(super::changelog_tx::CHANGES_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO changelog (workspace_id, service_name, kind, payload, \
                         occurred_at) ",
                    );
                    super::changelog_tx::push_changes!(insert, chunk, now);
                    insert.push(" RETURNING revision");
                    let mut chunk_revisions: Vec<Revision> = insert
                        .build_query_scalar()
                        .fetch_all(&mut *self.0)
                        .await
                        .map_err(err("changelog"))?;
                    // Rows take their revisions in VALUES order; RETURNING need not list them so.
                    chunk_revisions.sort_unstable();
                    if chunk_revisions.len() != chunk.len() {
                        return Err(StoreError::Internal);
                    }
                    revisions.extend(chunk_revisions);
                }
                Ok(revisions)
            }

            async fn audit(&mut self, audits: &[AuditRow]) -> StoreResult<()> {
                if let [audit] = audits {
                    insert_audit_query!(audit)
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("audit event"))?;
                    return Ok(());
                }
                // Many rows per statement, within SQLite's 999 bound parameters.
                for chunk in audits.chunks(super::changelog_tx::AUDIT_ROWS_PER_INSERT) {
                    let mut insert =
                        sqlx::QueryBuilder::<$db>::new(super::changelog_tx::AUDIT_INSERT);
                    super::changelog_tx::push_audits!(insert, chunk);
                    insert
                        .build()
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("audit event"))?;
                }
                Ok(())
            }

            async fn append_audited(
                &mut self,
                changes: &[Change],
                audits: &[AuditRow],
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Revision>> {
                let parameters = changes.len() * 5 + audits.len() * 12;
                if !$one_statement
                    || changes.is_empty()
                    || audits.is_empty()
                    || parameters > super::changelog_tx::MAX_PARAMETERS
                {
                    let revisions = self.append_all(changes, now).await?;
                    self.audit(audits).await?;
                    return Ok(revisions);
                }
                let mut insert = sqlx::QueryBuilder::<$db>::new("WITH audit AS (");
                insert.push(super::changelog_tx::AUDIT_INSERT);
                super::changelog_tx::push_audits!(insert, audits);
                insert.push(
                    ") INSERT INTO changelog (workspace_id, service_name, kind, payload, \
                     occurred_at) ",
                );
                super::changelog_tx::push_changes!(insert, changes, now);
                insert.push(" RETURNING revision");
                let mut revisions: Vec<Revision> = insert
                    .build_query_scalar()
                    .fetch_all(&mut *self.0)
                    .await
                    .map_err(err("changelog"))?;
                // Rows take their revisions in VALUES order; RETURNING need not list them so.
                revisions.sort_unstable();
                if revisions.len() != changes.len() {
                    return Err(StoreError::Internal);
                }
                Ok(revisions)
            }

            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.0.commit().await.map_err(err("transaction"))
            }
        }
    };
}

pub(super) use impl_changelog_tx;
