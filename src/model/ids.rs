//! Identifiers, one type per kind of thing: a user's id cannot be passed where a workspace's is
//! expected. Each wraps a UUID, is stored as one (`sqlx(transparent)`) and serialises as its
//! hyphenated text.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Whether this is the all-zero id (the user of a workspace-wide revocation).
            pub fn is_nil(self) -> bool {
                self.0.is_nil()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id!(
    /// A user.
    UserId
);
id!(
    /// A workspace (tenant).
    WorkspaceId
);
id!(
    /// A sign-in session (the `sid` of its tokens).
    SessionId
);
id!(
    /// A group of a workspace.
    GroupId
);
id!(
    /// A custom role of a workspace.
    RoleId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_their_text_and_refuse_other_text() {
        let id = UserId::random();
        assert_eq!(id.to_string().parse::<UserId>().ok(), Some(id));
        assert!("nope".parse::<WorkspaceId>().is_err());
        assert!(!id.is_nil() && UserId::from(uuid::Uuid::nil()).is_nil());
    }

    #[test]
    fn ids_serialise_as_bare_uuid_text() {
        let id = GroupId::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<GroupId>(&json).unwrap(), id);
    }
}
