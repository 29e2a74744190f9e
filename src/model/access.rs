//! Closed sets of names stored as text: workspace roles, resource visibility and grant
//! permissions. Each is parsed once (at the edge, or when a row is read) and compared as a type.

use std::fmt;

use super::Invalid;

/// An enum whose variants are stored and sent as lowercase names: `parse`/`as_str`, `Display`,
/// serde as the name, and sqlx as a text column on every backend.
macro_rules! text_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal, $expected:literal {
            $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value named `text`.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The value named `text` in request field `field`; INVALID_ARGUMENT naming the
            /// field otherwise.
            pub fn parse_field(field: &str, text: &str) -> Result<$name, Invalid> {
                $name::parse(text).ok_or_else(|| Invalid::new(field, $expected))
            }

            /// Its name, as stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("not a ", $what, ": {:?}"), text))
                })
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                $name::parse(text)
                    .ok_or_else(|| format!(concat!("not a ", $what, ": {:?}"), text).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }
    };
}

text_enum! {
    /// A role in a workspace, ordered by what it may do: owner > admin > editor > viewer.
    WorkspaceRole, "workspace role", "must be one of owner, admin, editor, viewer" {
        /// Reads what the workspace shows its members.
        Viewer = "viewer",
        /// Also edits what the workspace shows its members.
        Editor = "editor",
        /// Also manages members, groups and roles, and may do anything to the workspace's
        /// resources.
        Admin = "admin",
        /// Also grants the owner role and deletes the workspace.
        Owner = "owner",
    }
}

text_enum! {
    /// Who sees a resource beyond its owner and grantees.
    Visibility, "visibility", "must be \"private\" or \"workspace\"" {
        /// Only the owner, grantees and workspace admins.
        Private = "private",
        /// Every member of its workspace (viewers read, editors edit).
        Workspace = "workspace",
    }
}

text_enum! {
    /// What a grant allows, and what a Check asks for: `edit` implies `view`.
    Permission, "permission", "must be \"view\" or \"edit\"" {
        /// Read access.
        View = "view",
        /// Write access (implies view).
        Edit = "edit",
    }
}

text_enum! {
    /// Lifecycle of a signing key.
    KeyStatus, "signing key status", "must be \"pending\", \"active\" or \"retired\"" {
        /// Published ahead of use; signs from `activate_at`.
        Pending = "pending",
        /// Signs new tokens and is published.
        Active = "active",
        /// No longer signs; published until `retire_at`.
        Retired = "retired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_round_trip() {
        use WorkspaceRole::*;
        assert!(Owner > Admin && Admin > Editor && Editor > Viewer);
        for role in WorkspaceRole::ALL {
            assert_eq!(WorkspaceRole::parse(role.as_str()), Some(*role));
            assert_eq!(role.to_string(), role.as_str());
        }
        for name in ["", "Owner", "root", "owner "] {
            assert_eq!(WorkspaceRole::parse(name), None, "{name:?}");
        }
        // An unknown role ranks below every role.
        assert!(None < Some(Viewer));
    }

    #[test]
    fn names_parse_at_the_edge_naming_the_field() {
        let err = Visibility::parse_field("visibility", "public").unwrap_err();
        assert_eq!(err.field, "visibility");
        assert_eq!(err.reason, "must be \"private\" or \"workspace\"");
        assert_eq!(
            Permission::parse_field("action", "delete")
                .unwrap_err()
                .to_string(),
            "action must be \"view\" or \"edit\""
        );
        assert_eq!(Permission::parse_field("x", "edit"), Ok(Permission::Edit));
    }

    #[test]
    fn serialise_as_their_names() {
        assert_eq!(
            serde_json::to_string(&Visibility::Workspace).unwrap(),
            "\"workspace\""
        );
        let p: Permission = serde_json::from_str("\"view\"").unwrap();
        assert_eq!(p, Permission::View);
        assert!(serde_json::from_str::<Permission>("\"own\"").is_err());
    }
}
