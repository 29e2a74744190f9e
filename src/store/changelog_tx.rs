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

/// Implements `ChangelogTx` for `Tx<$db>` (expanded where `Tx`, `err` and the query macros are
/// in scope).
macro_rules! impl_changelog_tx {
    ($db:ty) => {
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

            async fn append_all(&mut self, changes: &[Change]) -> StoreResult<Vec<Revision>> {
                if let [change] = changes {
                    return Ok(vec![self.append(change).await?]);
                }
                let now = crate::model::now();
                let mut revisions = Vec::with_capacity(changes.len());
                for chunk in changes.chunks(super::changelog_tx::CHANGES_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO changelog (workspace_id, service_name, kind, payload, \
                         occurred_at) ",
                    );
                    insert.push_values(chunk, |mut row, change| {
                        row.push_bind(change.workspace_id())
                            .push_bind(change.service_name().map(str::to_string))
                            .push_bind(change.kind())
                            .push_bind(change.payload())
                            .push_bind(now);
                    });
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
                    insert.push_values(chunk, |mut row, e| {
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
                    });
                    insert
                        .build()
                        .execute(&mut *self.0)
                        .await
                        .map_err(err("audit event"))?;
                }
                Ok(())
            }

            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.0.commit().await.map_err(err("transaction"))
            }
        }
    };
}

pub(super) use impl_changelog_tx;
