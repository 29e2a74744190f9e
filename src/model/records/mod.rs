//! The records the store reads and writes: plain data, shared by the domain, which returns them,
//! and the edges, which map them to the wire. The store owns how they are decoded.

mod apps;
mod authz;
mod identity;
mod sessions;
mod tenancy;

pub use apps::{ClientAppRow, ServiceAppRow};
pub use authz::{GrantRow, ResourceRow};
pub use identity::{IdentityRow, UserRow};
pub use sessions::{AuditFilter, AuditRow, RevocationRow, RevokeScope, SessionRow};
pub use tenancy::{GroupRow, InvitationRow, MemberRow, RoleRow, WorkspaceRow};
