//! Who is calling: the one view of the caller the domain is given, built once by the credential
//! layer from what it verified.

use super::{UserId, WorkspaceId};

/// Who did something, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Acting user.
    pub user_id: Option<UserId>,
    /// Acting service.
    pub service: Option<String>,
    /// Client address (behind a trusted proxy: the forwarded one).
    pub client_address: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

impl Actor {
    /// A user that a sign-in step identified just now (a login code, an identity provider's
    /// token), before any token of theirs exists: audited as `actor`.
    pub fn identified(user: UserId, actor: Actor) -> Caller {
        Caller {
            user: Some(user),
            ..Caller::anonymous(actor)
        }
    }

    /// An operator acting through the command line.
    pub fn operator() -> Self {
        Self {
            service: Some("sentinel-cli".into()),
            ..Self::default()
        }
    }
}

/// The caller of a domain operation, as the credential layer verified it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The signed-in user (access or authz token), if any.
    pub user: Option<UserId>,
    /// The workspace the user's token is scoped to (`wid` of an access or authz token).
    pub token_workspace: Option<WorkspaceId>,
    /// When the user came with an authz token: its workspace, the only one it acts in (and
    /// never with platform-admin rights).
    pub authz_workspace: Option<WorkspaceId>,
    /// The calling service (by key; not a browser origin), if any.
    pub service: Option<String>,
    /// Whether the user (by access token) is an active platform admin, resolved once by the
    /// credential layer for the calls where it matters (user and admin tiers); never for an
    /// authz token, which acts in its workspace only.
    pub platform_admin: bool,
    /// For the audit trail.
    pub actor: Actor,
}

impl Caller {
    /// A caller known only by its request (a sign-in step, a public RPC): audited as `actor`.
    pub fn anonymous(actor: Actor) -> Caller {
        Caller {
            actor,
            ..Caller::default()
        }
    }

    /// A user that a sign-in step identified just now (a login code, an identity provider's
    /// token), before any token of theirs exists: audited as `actor`.
    pub fn identified(user: UserId, actor: Actor) -> Caller {
        Caller {
            user: Some(user),
            ..Caller::anonymous(actor)
        }
    }

    /// An operator acting through the command line.
    pub fn operator() -> Caller {
        Caller::anonymous(Actor::operator())
    }

    /// A service acting by its key alone (no user), for the audit trail as `actor`.
    pub fn service(actor: Actor) -> Caller {
        Caller {
            service: actor.service.clone(),
            actor,
            ..Caller::default()
        }
    }
}
