//! Inserting rows known to be new, by the thousand: PostgreSQL takes them with `COPY … FROM
//! STDIN` (text format), several times cheaper per row than an INSERT; SQLite with multi-row
//! INSERTs within its 999 bound parameters.

use std::fmt::Write;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::authz::resource_from_row;
use super::bulk_tx::NewResource;
use super::bulk_tx::RESOURCES_BY_KEY;
use super::tx::Tx;
use super::{GrantRow, ResourceRow, StoreError, StoreResult};

/// New rows, inserted in bulk.
#[async_trait]
pub(super) trait CopyIn {
    /// Inserts resources that do not exist yet, created and updated at `now`.
    async fn copy_resources(
        &mut self,
        rows: &[NewResource<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Inserts grants that do not exist yet.
    async fn copy_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()>;
    /// The resources of `service` among `keys` (type, id), with their parents' row ids.
    async fn resources_by_keys(
        &mut self,
        service: &str,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<(ResourceRow, Option<Uuid>)>>;
}

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

/// A text-format COPY field: backslash, tab, newline and carriage return escaped.
fn field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn optional(out: &mut String, value: Option<impl std::fmt::Display>) {
    match value {
        Some(value) => {
            let _ = write!(out, "{value}");
        }
        None => out.push_str("\\N"),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Inserts `$rows` (resources, created and updated at `$now`) with multi-row INSERTs of
/// [`SQLITE_ROWS`] rows (10 parameters each).
macro_rules! insert_resources {
    ($tx:expr, $db:ty, $rows:expr, $now:expr) => {{
        for chunk in $rows.chunks(SQLITE_ROWS) {
            let mut insert = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO resources (id, service_name, resource_type, resource_id, \
                 workspace_id, owner_id, visibility, parent_id, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(r.id)
                    .push_bind(&r.state.service_name)
                    .push_bind(&r.state.resource_type)
                    .push_bind(&r.state.resource_id)
                    .push_bind(r.state.workspace_id)
                    .push_bind(r.state.owner_id)
                    .push_bind(r.state.visibility)
                    .push_bind(r.parent)
                    .push_bind($now)
                    .push_bind($now);
            });
            insert
                .build()
                .execute(&mut *$tx.0)
                .await
                .map_err(err("resource"))?;
        }
        Ok(())
    }};
}

/// Up to this many rows go in by one INSERT rather than COPY, which takes a round trip more.
const FEW: usize = SQLITE_ROWS;

/// Rows of text sent a chunk at a time.
const CHUNK: usize = 1 << 20;

async fn copy(tx: &mut Tx<sqlx::Postgres>, statement: &str, rows: String) -> StoreResult<()> {
    let mut copy = tx.0.copy_in_raw(statement).await.map_err(err("copy"))?;
    let bytes = rows.into_bytes();
    for chunk in bytes.chunks(CHUNK) {
        if let Err(e) = copy.send(chunk).await {
            let _ = copy.abort("send failed").await;
            return Err(err("copy")(e));
        }
    }
    copy.finish().await.map_err(err("copy"))?;
    Ok(())
}

#[async_trait]
impl CopyIn for Tx<sqlx::Postgres> {
    async fn resources_by_keys(
        &mut self,
        service: &str,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<(ResourceRow, Option<Uuid>)>> {
        // Two arrays: one statement, prepared once, whatever the number of keys.
        let (types, ids): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RESOURCES_BY_KEY}$1 AND (r.resource_type, r.resource_id) IN \
             (SELECT * FROM UNNEST($2::text[], $3::text[]))"
        )))
        .bind(service)
        .bind(types)
        .bind(ids)
        .fetch_all(&mut *self.0)
        .await
        .map_err(err("resource"))?;
        rows.iter().map(resource_from_row).collect()
    }

    async fn copy_resources(
        &mut self,
        rows: &[NewResource<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if rows.len() <= FEW {
            return insert_resources!(self, sqlx::Postgres, rows, now);
        }
        let now = time(now);
        let mut text = String::with_capacity(rows.len() * 200);
        for r in rows {
            let s = r.state;
            let _ = write!(text, "{}\t", r.id);
            field(&mut text, &s.service_name);
            text.push('\t');
            field(&mut text, &s.resource_type);
            text.push('\t');
            field(&mut text, &s.resource_id);
            let _ = write!(text, "\t{}\t", s.workspace_id);
            optional(&mut text, s.owner_id);
            let _ = write!(text, "\t{}\t", s.visibility.as_str());
            optional(&mut text, r.parent);
            let _ = writeln!(text, "\t{now}\t{now}");
        }
        copy(
            self,
            "COPY resources (id, service_name, resource_type, resource_id, workspace_id, \
             owner_id, visibility, parent_id, created_at, updated_at) FROM STDIN",
            text,
        )
        .await
    }

    async fn copy_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()> {
        if grants.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(grants.len() * 160);
        for (resource, g) in grants {
            let _ = write!(
                text,
                "{resource}\t{}\t{}\t{}\t",
                g.grantee.kind(),
                g.grantee.id(),
                g.permission.as_str()
            );
            optional(&mut text, g.expires_at.map(time));
            text.push('\t');
            optional(&mut text, g.granted_by);
            let _ = writeln!(text, "\t{}", time(g.created_at));
        }
        copy(
            self,
            "COPY grants (resource_id, grantee_type, grantee_id, permission, expires_at, \
             granted_by, created_at) FROM STDIN",
            text,
        )
        .await
    }
}

/// Resources of 10 parameters a row, under SQLite's 999.
const SQLITE_ROWS: usize = 99;

#[async_trait]
impl CopyIn for Tx<sqlx::Sqlite> {
    async fn resources_by_keys(
        &mut self,
        service: &str,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<(ResourceRow, Option<Uuid>)>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(SQLITE_ROWS * 4) {
            let mut select = sqlx::QueryBuilder::<sqlx::Sqlite>::new(RESOURCES_BY_KEY);
            select.push_bind(service);
            select.push(" AND (r.resource_type, r.resource_id) IN (");
            select.push_values(chunk, |mut row, (kind, id)| {
                row.push_bind(*kind).push_bind(*id);
            });
            select.push(")");
            for row in select
                .build()
                .fetch_all(&mut *self.0)
                .await
                .map_err(err("resource"))?
            {
                found.push(resource_from_row(&row)?);
            }
        }
        Ok(found)
    }

    async fn copy_resources(
        &mut self,
        rows: &[NewResource<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        insert_resources!(self, sqlx::Sqlite, rows, now)
    }

    async fn copy_grants(&mut self, grants: &[(Uuid, GrantRow)]) -> StoreResult<()> {
        for chunk in grants.chunks(SQLITE_ROWS * 10 / 7) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO grants (resource_id, grantee_type, grantee_id, permission, \
                 expires_at, granted_by, created_at) ",
            );
            insert.push_values(chunk, |mut row, (resource, grant)| {
                row.push_bind(*resource)
                    .push_bind(grant.grantee.kind())
                    .push_bind(grant.grantee.id())
                    .push_bind(grant.permission)
                    .push_bind(grant.expires_at)
                    .push_bind(grant.granted_by)
                    .push_bind(grant.created_at);
            });
            insert
                .build()
                .execute(&mut *self.0)
                .await
                .map_err(err("grant"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads() {
        let mut out = String::new();
        field(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, "a\\\\b\\tc\\nd\\re");
        let mut out = String::new();
        optional(&mut out, None::<Uuid>);
        assert_eq!(out, "\\N");
    }
}
