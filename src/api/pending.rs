//! Services whose capabilities are not built yet: every RPC answers UNIMPLEMENTED through the
//! generated default stubs. Each moves to its own file when its capability lands.

use crate::proto::v1::permission_service_server::PermissionService;

/// `sentinel.v1.PermissionService` (permission engine capability).
pub struct PermissionApi;
impl PermissionService for PermissionApi {}
