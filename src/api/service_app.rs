//! `sentinel.v1.ServiceAppService` (platform admins).

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert::{self, page, page_size, token_cursor, uuid};
use crate::apps::client::ClientAppUpdate;
use crate::credentials;
use crate::model::Written;
use crate::proto::v1 as pb;
use crate::proto::v1::service_app_service_server::ServiceAppService;
use crate::services::Services;

/// Handlers of `sentinel.v1.ServiceAppService`.
pub struct ServiceAppApi {
    state: Services,
}

impl ServiceAppApi {
    /// Handlers over the shared application state.
    pub fn new(state: Services) -> Self {
        Self { state }
    }
}

fn query(q: &str) -> Option<&str> {
    let q = q.trim();
    (!q.is_empty()).then_some(q)
}

#[tonic::async_trait]
impl ServiceAppService for ServiceAppApi {
    async fn create_service_app(
        &self,
        request: Request<pb::CreateServiceAppRequest>,
    ) -> Result<Response<pb::CreateServiceAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let (app, key) = self
            .state
            .apps
            .create_as(&caller, &r.name, &r.service_name, &r.allowed_origins)
            .await?;
        Ok(Response::new(pb::CreateServiceAppResponse {
            app: Some(convert::service_app(&app)),
            api_key: key,
        }))
    }

    async fn list_service_apps(
        &self,
        request: Request<pb::ListServiceAppsRequest>,
    ) -> Result<Response<pb::ListServiceAppsResponse>, Status> {
        credentials::admin(&request)?;
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let after: Option<String> = token_cursor(&r.page_token)?;
        let rows = self
            .state
            .apps
            .list(query(&r.query), after.as_deref(), limit + 1)
            .await?;
        let (rows, next_page_token) = page(rows, limit, |a| a.service_name.clone());
        Ok(Response::new(pb::ListServiceAppsResponse {
            apps: rows.iter().map(convert::service_app).collect(),
            next_page_token,
        }))
    }

    async fn get_service_app(
        &self,
        request: Request<pb::GetServiceAppRequest>,
    ) -> Result<Response<pb::GetServiceAppResponse>, Status> {
        credentials::admin(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let app = self.state.apps.get(id).await?;
        Ok(Response::new(pb::GetServiceAppResponse {
            app: Some(convert::service_app(&app)),
        }))
    }

    async fn update_service_app(
        &self,
        request: Request<pb::UpdateServiceAppRequest>,
    ) -> Result<Response<pb::UpdateServiceAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let origins = r.allowed_origins.map(|l| l.values);
        let app = self
            .state
            .apps
            .update(
                &caller,
                id,
                r.name.as_deref(),
                origins.as_deref(),
                r.is_active,
            )
            .await?;
        Ok(Response::new(pb::UpdateServiceAppResponse {
            app: Some(convert::service_app(&app)),
        }))
    }

    async fn rotate_service_app_key(
        &self,
        request: Request<pb::RotateServiceAppKeyRequest>,
    ) -> Result<Response<pb::RotateServiceAppKeyResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let grace = convert::duration("grace_period", r.grace_period)?
            .unwrap_or(Duration::from_secs(24 * 3600));
        let (app, key) = self.state.apps.rotate_key(&caller, id, grace).await?;
        Ok(Response::new(pb::RotateServiceAppKeyResponse {
            old_key_expires_at: app.previous_key_expires_at.map(convert::timestamp),
            app: Some(convert::service_app(&app)),
            api_key: key,
        }))
    }

    async fn delete_service_app(
        &self,
        request: Request<pb::DeleteServiceAppRequest>,
    ) -> Result<Response<pb::DeleteServiceAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let Written {
            value: resources,
            revision,
        } = self.state.apps.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteServiceAppResponse {
            deleted_resource_count: i64::try_from(resources).unwrap_or(i64::MAX),
            consistency_token: revision.token().to_string(),
        }))
    }

    async fn create_client_app(
        &self,
        request: Request<pb::CreateClientAppRequest>,
    ) -> Result<Response<pb::CreateClientAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let app = self
            .state
            .client_apps
            .create(&caller, &r.name, &r.redirect_uris, &r.services)
            .await?;
        Ok(Response::new(pb::CreateClientAppResponse {
            app: Some(convert::client_app(&app)),
        }))
    }

    async fn list_client_apps(
        &self,
        request: Request<pb::ListClientAppsRequest>,
    ) -> Result<Response<pb::ListClientAppsResponse>, Status> {
        credentials::admin(&request)?;
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let after: Option<uuid::Uuid> = token_cursor(&r.page_token)?;
        let rows = self
            .state
            .client_apps
            .list(query(&r.query), after, limit + 1)
            .await?;
        let (rows, next_page_token) = page(rows, limit, |a| a.id);
        Ok(Response::new(pb::ListClientAppsResponse {
            apps: rows.iter().map(convert::client_app).collect(),
            next_page_token,
        }))
    }

    async fn get_client_app(
        &self,
        request: Request<pb::GetClientAppRequest>,
    ) -> Result<Response<pb::GetClientAppResponse>, Status> {
        credentials::admin(&request)?;
        let id = uuid("id", &request.get_ref().id)?;
        let app = self.state.client_apps.get(id).await?;
        Ok(Response::new(pb::GetClientAppResponse {
            app: Some(convert::client_app(&app)),
        }))
    }

    async fn update_client_app(
        &self,
        request: Request<pb::UpdateClientAppRequest>,
    ) -> Result<Response<pb::UpdateClientAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let uris = r.redirect_uris.map(|l| l.values);
        let services = r.services.map(|l| l.values);
        let (app, revoked) = self
            .state
            .client_apps
            .update(
                &caller,
                id,
                ClientAppUpdate {
                    name: r.name.as_deref(),
                    redirect_uris: uris.as_deref(),
                    services: services.as_deref(),
                    is_active: r.is_active,
                    revoke_sessions: r.revoke_sessions,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdateClientAppResponse {
            app: Some(convert::client_app(&app)),
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    async fn delete_client_app(
        &self,
        request: Request<pb::DeleteClientAppRequest>,
    ) -> Result<Response<pb::DeleteClientAppResponse>, Status> {
        credentials::admin(&request)?;
        let caller = credentials::caller(&request)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let revoked = self
            .state
            .client_apps
            .delete(&caller, id, r.revoke_sessions)
            .await?;
        Ok(Response::new(pb::DeleteClientAppResponse {
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }
}
