//! `sentinel.v1.AdminService` (platform admins): dashboard counts and the audit trail.

use tonic::{Request, Response, Status};

use super::convert::{self, optional_uuid, page_size, timestamp};
use crate::credentials;
use crate::csv_io::ExportKind;
use crate::error::Error;
use crate::model::AuditFilter;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_service_server::AdminService;
use crate::services::Services;

/// Handlers of `sentinel.v1.AdminService`.
pub struct AdminApi {
    state: Services,
}

impl AdminApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn import_csv(
        &self,
        request: Request<pb::ImportCsvRequest>,
    ) -> Result<Response<pb::ImportCsvResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let report = self
            .state
            .platform
            .import_csv(&caller, &r.csv, r.dry_run)
            .await?;
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Response::new(pb::ImportCsvResponse {
            users_created: count(report.users_created),
            memberships_added: count(report.memberships_added),
            rows_skipped: count(report.rows_skipped),
            errors: report
                .errors
                .into_iter()
                .map(|e| pb::ImportCsvError {
                    row: count(e.row),
                    reason: e.reason,
                })
                .collect(),
            applied: report.applied,
        }))
    }

    async fn export_csv(
        &self,
        request: Request<pb::ExportCsvRequest>,
    ) -> Result<Response<pb::ExportCsvResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let (kind, name) = match pb::ExportKind::try_from(request.get_ref().kind) {
            Ok(pb::ExportKind::Users) => (ExportKind::Users, "users"),
            Ok(pb::ExportKind::Workspaces) => (ExportKind::Workspaces, "workspaces"),
            Ok(pb::ExportKind::Memberships) => (ExportKind::Memberships, "memberships"),
            _ => {
                return Err(
                    Error::invalid("kind", "must be users, workspaces or memberships").into(),
                );
            }
        };
        let (csv, rows) = self.state.platform.export_csv(&caller, kind).await?;
        Ok(Response::new(pb::ExportCsvResponse {
            csv,
            content_type: "text/csv; charset=utf-8".into(),
            filename: format!(
                "sentinel-{name}-{}.csv",
                crate::model::now().format("%Y%m%d")
            ),
            row_count: i32::try_from(rows).unwrap_or(i32::MAX),
        }))
    }

    async fn get_stats(
        &self,
        request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        credentials::admin(&request)?;
        let now = crate::model::now();
        let stats = self.state.platform.stats(now).await?;
        Ok(Response::new(pb::GetStatsResponse {
            user_count: stats.users,
            active_user_count: stats.active_users,
            recently_active_user_count: stats.recently_active_users,
            admin_count: stats.admins,
            workspace_count: stats.workspaces,
            group_count: stats.groups,
            service_app_count: stats.service_apps,
            client_app_count: stats.client_apps,
            active_session_count: stats.active_sessions,
            resource_count: stats.resources,
            grant_count: stats.grants,
            computed_at: Some(timestamp(now)),
            ..pb::GetStatsResponse::default()
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        credentials::admin(&request)?;
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let text = |field: &str, value: String| -> Result<Option<String>, Error> {
            if value.len() > 200 {
                return Err(Error::invalid(field, "at most 200 characters"));
            }
            Ok(Some(value).filter(|v| !v.is_empty()))
        };
        let outcome = match pb::AuditOutcome::try_from(r.outcome) {
            Ok(pb::AuditOutcome::Unspecified) => None,
            Ok(pb::AuditOutcome::Success) => Some("success".to_string()),
            Ok(pb::AuditOutcome::Denied) => Some("denied".to_string()),
            Ok(pb::AuditOutcome::Failure) => Some("failure".to_string()),
            Err(_) => return Err(Error::invalid("outcome", "unknown value").into()),
        };
        let filter = AuditFilter {
            action: text("action", r.action)?,
            actor_user_id: optional_uuid("actor_id", &r.actor_id)?,
            target_id: text("target_id", r.target_id)?,
            workspace_id: optional_uuid("workspace_id", &r.workspace_id)?,
            start: convert::instant_field("start_time", r.start_time)?,
            end: convert::instant_field("end_time", r.end_time)?,
            outcome,
        };
        if let (Some(start), Some(end)) = (filter.start, filter.end)
            && start >= end
        {
            return Err(Error::invalid("start_time", "must be before end_time").into());
        }
        let before = convert::token_cursor(&r.page_token)?;
        let rows = self
            .state
            .platform
            .audit_events(&filter, before, limit + 1)
            .await?;
        let (rows, next_page_token) = convert::page(rows, limit, |e| (e.occurred_at, e.id));
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }
}
