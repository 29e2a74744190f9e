//! CSV import of users and memberships, and CSV exports (AdminService).
//!
//! Import: every valid row is applied in its own transaction (a row is never half-applied);
//! invalid rows are reported with their line number and a reason naming the column. With
//! `dry_run` nothing is written and the counts say what would happen.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::audit::{self, Actor};
use crate::error::Error;
use crate::model::Email;
use crate::model::WorkspaceRole;
use crate::model::{UserId, WorkspaceId};
use crate::store::{Store, UserRow};

/// Largest accepted CSV file.
pub const MAX_CSV_BYTES: usize = 5 * 1024 * 1024;
/// Row errors reported at most.
const MAX_ERRORS: usize = 1000;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number (the header is row 1).
    pub row: usize,
    /// What is wrong, naming the column.
    pub reason: String,
}

/// What an import did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Users created.
    pub users_created: usize,
    /// Memberships added.
    pub memberships_added: usize,
    /// Rows that changed nothing (user and membership existed).
    pub rows_skipped: usize,
    /// Rejected rows.
    pub errors: Vec<RowError>,
    /// Whether anything was written (false on dry runs).
    pub applied: bool,
}

struct Columns {
    email: usize,
    name: Option<usize>,
    workspace: Option<usize>,
    role: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, Error> {
    let find = |names: &[&str]| {
        header.iter().position(|h| {
            let h = h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            names.contains(&h.as_str())
        })
    };
    Ok(Columns {
        email: find(&["email"])
            .ok_or_else(|| Error::invalid("csv", "the header row has no email column"))?,
        name: find(&["name"]),
        workspace: find(&["workspace", "workspace_slug"]),
        role: find(&["role"]),
    })
}

/// Imports `data` as `actor`.
pub async fn import(
    store: &dyn Store,
    actor: &Actor,
    data: &[u8],
    dry_run: bool,
) -> Result<ImportReport, Error> {
    if data.is_empty() {
        return Err(Error::invalid("csv", "is required"));
    }
    if data.len() > MAX_CSV_BYTES {
        return Err(Error::invalid("csv", "is larger than 5 MiB"));
    }
    let text = std::str::from_utf8(data).map_err(|_| Error::invalid("csv", "is not UTF-8"))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|_| Error::invalid("csv", "has no readable header row"))?
        .clone();
    let cols = columns(&header)?;
    let mut report = ImportReport {
        applied: !dry_run,
        ..ImportReport::default()
    };
    let mut workspaces: HashMap<String, Option<WorkspaceId>> = HashMap::new();
    let mut seen_in_file: HashMap<String, ()> = HashMap::new();
    let mut would_create: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (index, record) in reader.records().enumerate() {
        // The line the record starts on (quoted fields may span lines).
        let row = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(index + 2, |p| {
                usize::try_from(p.line()).unwrap_or(index + 2)
            });
        let fail = |report: &mut ImportReport, reason: String| {
            if report.errors.len() < MAX_ERRORS {
                report.errors.push(RowError { row, reason });
            }
        };
        let Ok(record) = record else {
            fail(&mut report, "row: not valid CSV".into());
            continue;
        };
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(|v| unguard(v.trim()))
                .unwrap_or("")
        };
        let email = match Email::parse(field(Some(cols.email))) {
            Ok(email) => email.into_string(),
            Err(_) => {
                fail(
                    &mut report,
                    format!(
                        "email: \"{}\" is not an email address",
                        field(Some(cols.email))
                    ),
                );
                continue;
            }
        };
        let name = field(cols.name);
        if name.chars().count() > 200 {
            fail(&mut report, "name: longer than 200 characters".into());
            continue;
        }
        if name.chars().any(crate::model::is_control_or_format) {
            fail(
                &mut report,
                "name: contains control or invisible formatting characters".into(),
            );
            continue;
        }
        let slug = field(cols.workspace);
        let role = match field(cols.role) {
            "" => WorkspaceRole::Viewer,
            r if let Some(role) = WorkspaceRole::parse(r) => role,
            r => {
                fail(&mut report, format!("role: unknown role \"{r}\""));
                continue;
            }
        };
        if slug.is_empty() && !field(cols.role).is_empty() {
            fail(&mut report, "role: needs a workspace".into());
            continue;
        }
        let workspace_id = if slug.is_empty() {
            None
        } else {
            if !workspaces.contains_key(slug) {
                let id = store.workspace_by_slug(slug).await?.map(|w| w.id);
                workspaces.insert(slug.to_string(), id);
            }
            match workspaces.get(slug).copied().flatten() {
                Some(id) => Some(id),
                None => {
                    fail(&mut report, format!("workspace: no workspace \"{slug}\""));
                    continue;
                }
            }
        };
        let key = format!("{email}\u{0}{slug}");
        if seen_in_file.insert(key, ()).is_some() {
            fail(
                &mut report,
                "email: repeats an earlier row for the same workspace".into(),
            );
            continue;
        }

        let now = crate::model::now();
        let user = UserRow {
            id: UserId::random(),
            name: if name.is_empty() {
                email.split('@').next().unwrap_or_default().to_string()
            } else {
                name.to_string()
            },
            email: email.clone(),
            avatar_url: String::new(),
            is_active: true,
            is_admin: false,
            created_at: now,
            updated_at: now,
        };
        let outcome = if dry_run {
            dry_run_row(store, &email, workspace_id, &mut would_create).await
        } else {
            store
                .import_member(&user, workspace_id.map(|ws| (ws, role)))
                .await
                .map_err(Error::from)
        };
        let (created, added) = match outcome {
            Ok(counts) => counts,
            // The row's transaction rolled back: report it and go on with the others.
            Err(err) => {
                fail(&mut report, format!("row: not imported ({err})"));
                continue;
            }
        };
        report.users_created += usize::from(created);
        report.memberships_added += usize::from(added);
        if !created && !added {
            report.rows_skipped += 1;
        }
    }
    if !dry_run {
        let event = audit::event(
            "admin.csv_imported",
            actor,
            "csv",
            "users",
            serde_json::json!({
                "users_created": report.users_created,
                "memberships_added": report.memberships_added,
                "rows_skipped": report.rows_skipped,
                "errors": report.errors.len(),
            }),
        );
        if let Err(err) = store.insert_audit(&event).await {
            tracing::warn!(error = %err, "audit of a CSV import failed");
        }
    }
    Ok(report)
}

/// What importing one row would do, without writing.
async fn dry_run_row(
    store: &dyn Store,
    email: &str,
    workspace_id: Option<WorkspaceId>,
    would_create: &mut std::collections::HashSet<String>,
) -> Result<(bool, bool), Error> {
    let existing = store.user_by_email(email).await?;
    let created = existing.is_none() && would_create.insert(email.to_string());
    let added = match (workspace_id, &existing) {
        (Some(ws), Some(user)) => store.membership_role(ws, user.id).await?.is_none(),
        (Some(_), None) => true,
        (None, _) => false,
    };
    Ok((created, added))
}

/// Spreadsheets run cells that start with these as formulas.
fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// Makes a cell inert for spreadsheets: a leading `'` before a formula start.
fn guard(value: &str) -> String {
    match value.chars().next() {
        Some(c) if is_formula_start(c) => format!("'{value}"),
        _ => value.to_string(),
    }
}

/// Undoes [`guard`], so exports import as-is.
fn unguard(value: &str) -> &str {
    match value.strip_prefix('\'') {
        Some(rest) if rest.chars().next().is_some_and(is_formula_start) => rest,
        _ => value,
    }
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// All users.
    Users,
    /// All workspaces.
    Workspaces,
    /// All memberships (importable as-is).
    Memberships,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Exports `kind` as CSV; returns the bytes and the row count.
pub async fn export(store: &dyn Store, kind: ExportKind) -> Result<(Vec<u8>, usize), Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let write_err = |_| Error::Internal;
    let mut rows = 0;
    match kind {
        ExportKind::Users => {
            writer
                .write_record([
                    "id",
                    "email",
                    "name",
                    "avatar_url",
                    "is_active",
                    "is_admin",
                    "created_at",
                ])
                .map_err(write_err)?;
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_users(None, None, None, after.as_deref(), 1000)
                    .await?;
                for user in &page {
                    writer
                        .write_record([
                            user.id.to_string(),
                            guard(&user.email),
                            guard(&user.name),
                            guard(&user.avatar_url),
                            user.is_active.to_string(),
                            user.is_admin.to_string(),
                            time(user.created_at),
                        ])
                        .map_err(write_err)?;
                    rows += 1;
                }
                match page.last() {
                    Some(last) if page.len() == 1000 => after = Some(last.email.clone()),
                    _ => break,
                }
            }
        }
        ExportKind::Workspaces => {
            writer
                .write_record(["id", "slug", "name", "description", "created_at"])
                .map_err(write_err)?;
            for workspace in store.all_workspaces().await? {
                writer
                    .write_record([
                        workspace.id.to_string(),
                        workspace.slug,
                        guard(&workspace.name),
                        guard(&workspace.description),
                        time(workspace.created_at),
                    ])
                    .map_err(write_err)?;
                rows += 1;
            }
        }
        ExportKind::Memberships => {
            writer
                .write_record(["email", "name", "workspace", "role", "joined_at"])
                .map_err(write_err)?;
            for (email, name, slug, role, joined) in store.all_memberships().await? {
                writer
                    .write_record([guard(&email), guard(&name), slug, role, time(joined)])
                    .map_err(write_err)?;
                rows += 1;
            }
        }
    }
    let bytes = writer.into_inner().map_err(|_| Error::Internal)?;
    Ok((bytes, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_restored() {
        for value in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx"] {
            let guarded = guard(value);
            assert!(guarded.starts_with('\''), "{value}");
            assert_eq!(unguard(&guarded), value);
        }
        assert_eq!(guard("Ada"), "Ada");
        assert_eq!(unguard("'quoted name"), "'quoted name");
    }
}
