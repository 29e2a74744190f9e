//! gRPC handlers: parse and validate the request, call the domain, map errors. One file per
//! service.

mod admin;
mod auth;
mod convert;
mod invitations;
mod permission;
mod service_app;
mod user;
mod workspace;

use tonic::service::Routes;

use crate::proto::v1::admin_service_server::AdminServiceServer;
use crate::proto::v1::auth_service_server::AuthServiceServer;
use crate::proto::v1::permission_service_server::PermissionServiceServer;
use crate::proto::v1::service_app_service_server::ServiceAppServiceServer;
use crate::proto::v1::user_service_server::UserServiceServer;
use crate::proto::v1::workspace_service_server::WorkspaceServiceServer;
use crate::services::Services;

/// Fully-qualified names of every `sentinel.v1` service.
pub const SERVICE_NAMES: [&str; 6] = [
    "sentinel.v1.AuthService",
    "sentinel.v1.UserService",
    "sentinel.v1.WorkspaceService",
    "sentinel.v1.PermissionService",
    "sentinel.v1.ServiceAppService",
    "sentinel.v1.AdminService",
];

/// Every `sentinel.v1` service with the configured message size limit.
pub fn routes(state: &Services) -> Routes {
    let max = state.config.max_request_bytes;
    Routes::new(
        AuthServiceServer::new(auth::AuthApi::new(state.clone())).max_decoding_message_size(max),
    )
    .add_service(
        UserServiceServer::new(user::UserApi::new(state.clone())).max_decoding_message_size(max),
    )
    .add_service(
        WorkspaceServiceServer::new(workspace::WorkspaceApi::new(state.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(
        PermissionServiceServer::new(permission::PermissionApi::new(state.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(
        ServiceAppServiceServer::new(service_app::ServiceAppApi::new(state.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(
        AdminServiceServer::new(admin::AdminApi::new(state.clone())).max_decoding_message_size(max),
    )
}
