//! The credential tier of every RPC (common.proto, "Credential tiers"), in one table. The credential layer enforces
//! it before any handler runs; `docs/tiers.md` is rendered from it (a test keeps them equal).

/// A way of calling an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// No credential needed.
    Public,
    /// A user's access token.
    User,
    /// A service key plus a user's access token (or an authz token of that service).
    Dual,
    /// A service key.
    Service,
    /// A browser whose `origin` is an allowed origin of an active service app.
    Browser,
    /// The access token of a platform admin.
    Admin,
}

impl Tier {
    /// Lowercase name, as in common.proto.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::User => "user",
            Tier::Dual => "dual",
            Tier::Service => "service",
            Tier::Browser => "browser",
            Tier::Admin => "admin",
        }
    }
}

use Tier::{Admin, Browser, Dual, Public, Service, User};

/// `(fully-qualified method path, accepted tiers)`. A call passes when it satisfies any one.
pub const TIERS: &[(&str, &[Tier])] = &[
    ("/sentinel.v1.AuthService/ListProviders", &[Public]),
    ("/sentinel.v1.AuthService/StartLogin", &[Public]),
    ("/sentinel.v1.AuthService/ExchangeCode", &[Public]),
    // Before ExchangeCode the one-time login code in the request is the credential.
    ("/sentinel.v1.AuthService/ListMyWorkspaces", &[Public]),
    // The refresh token in the request is the credential.
    ("/sentinel.v1.AuthService/Refresh", &[Public]),
    ("/sentinel.v1.AuthService/SwitchWorkspace", &[User]),
    ("/sentinel.v1.AuthService/Logout", &[User]),
    (
        "/sentinel.v1.AuthService/ResolveIdpToken",
        &[Browser, Service],
    ),
    ("/sentinel.v1.AuthService/Introspect", &[Service]),
    ("/sentinel.v1.AuthService/ListSessions", &[User]),
    ("/sentinel.v1.AuthService/RevokeSession", &[User]),
    ("/sentinel.v1.AuthService/WatchRevocations", &[Service]),
    ("/sentinel.v1.AuthService/GetJwks", &[Public]),
    ("/sentinel.v1.AuthService/RotateSigningKey", &[Admin]),
    ("/sentinel.v1.AuthService/RetireSigningKey", &[Admin]),
    ("/sentinel.v1.UserService/GetMe", &[User]),
    ("/sentinel.v1.UserService/UpdateMe", &[User]),
    ("/sentinel.v1.UserService/ListUsers", &[Admin]),
    ("/sentinel.v1.UserService/GetUser", &[Admin]),
    ("/sentinel.v1.UserService/UpdateUser", &[Admin]),
    ("/sentinel.v1.UserService/RevokeUserTokens", &[Admin]),
    ("/sentinel.v1.WorkspaceService/CreateWorkspace", &[User]),
    ("/sentinel.v1.WorkspaceService/GetWorkspace", &[User, Dual]),
    ("/sentinel.v1.WorkspaceService/ListWorkspaces", &[User]),
    ("/sentinel.v1.WorkspaceService/UpdateWorkspace", &[User]),
    ("/sentinel.v1.WorkspaceService/DeleteWorkspace", &[User]),
    ("/sentinel.v1.WorkspaceService/ListMembers", &[User, Dual]),
    ("/sentinel.v1.WorkspaceService/AddMember", &[User]),
    ("/sentinel.v1.WorkspaceService/ListInvitations", &[User]),
    ("/sentinel.v1.WorkspaceService/CancelInvitation", &[User]),
    ("/sentinel.v1.WorkspaceService/ListMyInvitations", &[User]),
    ("/sentinel.v1.WorkspaceService/AcceptInvitation", &[User]),
    ("/sentinel.v1.WorkspaceService/DeclineInvitation", &[User]),
    ("/sentinel.v1.WorkspaceService/UpdateMemberRole", &[User]),
    ("/sentinel.v1.WorkspaceService/RemoveMember", &[User]),
    ("/sentinel.v1.WorkspaceService/CreateGroup", &[User]),
    ("/sentinel.v1.WorkspaceService/ListGroups", &[User, Dual]),
    ("/sentinel.v1.WorkspaceService/UpdateGroup", &[User]),
    ("/sentinel.v1.WorkspaceService/DeleteGroup", &[User]),
    ("/sentinel.v1.WorkspaceService/AddGroupMember", &[User]),
    ("/sentinel.v1.WorkspaceService/RemoveGroupMember", &[User]),
    (
        "/sentinel.v1.WorkspaceService/ListGroupMembers",
        &[User, Dual],
    ),
    (
        "/sentinel.v1.WorkspaceService/CreateRole",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.WorkspaceService/ListRoles",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.WorkspaceService/DeleteRole",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.WorkspaceService/SetRoleActions",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.WorkspaceService/AssignRole",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.WorkspaceService/UnassignRole",
        &[User, Dual, Service],
    ),
    (
        "/sentinel.v1.PermissionService/RegisterResource",
        &[Service],
    ),
    ("/sentinel.v1.PermissionService/DeleteResource", &[Service]),
    ("/sentinel.v1.PermissionService/SetVisibility", &[Service]),
    ("/sentinel.v1.PermissionService/SetOwner", &[Service]),
    ("/sentinel.v1.PermissionService/Share", &[Dual, Service]),
    ("/sentinel.v1.PermissionService/Unshare", &[Dual, Service]),
    (
        "/sentinel.v1.PermissionService/WriteBatch",
        &[Dual, Service],
    ),
    ("/sentinel.v1.PermissionService/ImportResources", &[Service]),
    ("/sentinel.v1.PermissionService/GetResource", &[Service]),
    ("/sentinel.v1.PermissionService/Check", &[Dual]),
    ("/sentinel.v1.PermissionService/CheckBulk", &[Dual]),
    ("/sentinel.v1.PermissionService/LookupResources", &[Dual]),
    ("/sentinel.v1.PermissionService/Watch", &[Service]),
    ("/sentinel.v1.PermissionService/RegisterActions", &[Service]),
    ("/sentinel.v1.PermissionService/CheckAction", &[Dual]),
    ("/sentinel.v1.PermissionService/ListUserActions", &[Dual]),
    ("/sentinel.v1.ServiceAppService/CreateServiceApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/ListServiceApps", &[Admin]),
    ("/sentinel.v1.ServiceAppService/GetServiceApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/UpdateServiceApp", &[Admin]),
    (
        "/sentinel.v1.ServiceAppService/RotateServiceAppKey",
        &[Admin],
    ),
    ("/sentinel.v1.ServiceAppService/DeleteServiceApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/CreateClientApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/ListClientApps", &[Admin]),
    ("/sentinel.v1.ServiceAppService/GetClientApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/UpdateClientApp", &[Admin]),
    ("/sentinel.v1.ServiceAppService/DeleteClientApp", &[Admin]),
    ("/sentinel.v1.AdminService/GetStats", &[Admin]),
    ("/sentinel.v1.AdminService/ListAuditEvents", &[Admin]),
    ("/sentinel.v1.AdminService/ImportCsv", &[Admin]),
    ("/sentinel.v1.AdminService/ExportCsv", &[Admin]),
];

/// The tiers of a `sentinel.v1` method path; `None` for paths outside the table (health,
/// reflection, or an RPC missing from it — which the tests forbid).
pub fn tiers_of(path: &str) -> Option<&'static [Tier]> {
    // Built once: every gRPC request looks its path up here.
    static INDEX: std::sync::LazyLock<std::collections::HashMap<&'static str, &'static [Tier]>> =
        std::sync::LazyLock::new(|| TIERS.iter().copied().collect());
    INDEX.get(path).copied()
}

/// The table as Markdown, for `docs/tiers.md`.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Credential tiers\n\n\
         Generated from `src/credentials/tiers.rs` (a test keeps this file equal to it). A call passes\n\
         when it satisfies any one of the listed tiers; the handler may then apply finer rules\n\
         (workspace role, resource service name, own sessions only).\n\n\
         | tier | needs |\n|---|---|\n\
         | public | nothing |\n\
         | user | `authorization: Bearer <access token>` |\n\
         | dual | `x-service-key` + `authorization: Bearer <access token, or an authz token of that service>` |\n\
         | service | `x-service-key` |\n\
         | browser | `origin` exactly equal to an allowed origin of an active service app |\n\
         | admin | `authorization: Bearer <access token of a platform admin>` |\n\n\
         Missing, malformed, expired, revoked or unknown credentials answer `UNAUTHENTICATED` (one\n\
         message, whatever the reason); a valid credential of the wrong kind (a non-admin on an admin\n\
         RPC) answers `PERMISSION_DENIED`.\n\n\
         | RPC | tiers |\n|---|---|\n",
    );
    for (path, tiers) in TIERS {
        let names: Vec<&str> = tiers.iter().map(|t| t.name()).collect();
        out.push_str(&format!(
            "| `{}` | {} |\n",
            path.trim_start_matches('/'),
            names.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_the_contract_has_exactly_one_entry() {
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut contract = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    contract.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        contract.sort();
        let mut table: Vec<String> = TIERS.iter().map(|(p, _)| p.to_string()).collect();
        table.sort();
        assert_eq!(
            contract, table,
            "src/credentials/tiers.rs must list every RPC once"
        );
    }

    #[test]
    fn docs_render_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tiers.md");
        // SENTINEL_BLESS=1 cargo test docs_render_the_table  regenerates the file.
        if std::env::var("SENTINEL_BLESS").is_ok() {
            std::fs::write(path, render_markdown()).expect("write docs/tiers.md");
        }
        let docs = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            docs,
            render_markdown(),
            "docs/tiers.md is stale: regenerate it from render_markdown()"
        );
    }
}
