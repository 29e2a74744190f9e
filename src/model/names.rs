//! Names people read: display names, service names and descriptions, checked once at the edge
//! so that nothing hidden or reordered reaches an admin's screen.

use super::Invalid;

/// Whether `c` is a control (Unicode Cc) or format (Cf) character: NUL, line breaks, escape
/// sequences, zero-width characters and bidirectional overrides, which let a name hide or
/// reorder text when an admin reads it.
pub fn is_control_or_format(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
            | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// A display name (of a user, workspace, group, role or app): trimmed, 1–200 characters, none
/// of them control or format characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks `text` (field `name`).
    pub fn parse(text: &str) -> Result<DisplayName, Invalid> {
        let name = text.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Invalid::new("name", "must be 1-200 characters"));
        }
        if name.chars().any(is_control_or_format) {
            return Err(Invalid::new(
                "name",
                "must not contain control or invisible formatting characters",
            ));
        }
        Ok(DisplayName(name.to_owned()))
    }

    /// A name from an identity provider: control and format characters dropped, trimmed, cut
    /// to 200 characters (the provider's data is not refused, only cleaned; it may be empty).
    pub fn clean(text: &str) -> DisplayName {
        let kept: String = text.chars().filter(|c| !is_control_or_format(*c)).collect();
        DisplayName(kept.trim().chars().take(200).collect())
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A service's name: 2–63 lowercase letters, digits and dashes, not starting or ending with a
/// dash. Keys, resources, actions and custom roles belong to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// Checks `text` (field `service_name`).
    pub fn parse(text: &str) -> Result<ServiceName, Invalid> {
        // `^[a-z][a-z0-9-]{0,62}$`, as the contract states it.
        let ok = text.len() <= 63
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(ServiceName(text.to_owned()))
        } else {
            Err(Invalid::new(
                "service_name",
                "must be a lowercase letter, then up to 62 lowercase letters, digits or dashes",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text description: at most 2000 characters; line breaks and tabs are text, other
/// control and format characters are not. Trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Description(String);

impl Description {
    /// Checks `text` (field `description`).
    pub fn parse(text: &str) -> Result<Description, Invalid> {
        if text.chars().count() > 2000 {
            return Err(Invalid::new("description", "at most 2000 characters"));
        }
        if text
            .chars()
            .any(|c| !matches!(c, '\n' | '\r' | '\t') && is_control_or_format(c))
        {
            return Err(Invalid::new(
                "description",
                "must not contain control or invisible formatting characters",
            ));
        }
        Ok(Description(text.trim().to_owned()))
    }

    /// The description as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_refuse_hidden_characters() {
        assert_eq!(DisplayName::parse("  Ada ").unwrap().into_string(), "Ada");
        for bad in [
            "",
            "   ",
            "a\u{202E}b",
            "a\u{200B}b",
            "a\nb",
            &"x".repeat(201),
        ] {
            assert_eq!(
                DisplayName::parse(bad).unwrap_err().field,
                "name",
                "{bad:?}"
            );
        }
        assert!(
            DisplayName::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert_eq!(DisplayName::clean(" A\u{202E}da\n ").into_string(), "Ada");
    }

    #[test]
    fn service_names_are_lowercase_slugs() {
        for good in ["docs", "a1", "billing-v2", "d", "docs-", &"a".repeat(63)] {
            assert_eq!(ServiceName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Docs",
            "-docs",
            "1docs",
            "do cs",
            "dócs",
            &"a".repeat(64),
        ] {
            assert_eq!(ServiceName::parse(bad).unwrap_err().field, "service_name");
        }
    }

    #[test]
    fn descriptions_keep_line_breaks_only() {
        assert_eq!(
            Description::parse(" a\n\tb ").unwrap().into_string(),
            "a\n\tb"
        );
        assert!(Description::parse("a\u{1b}[31m").is_err());
        assert!(Description::parse(&"x".repeat(2001)).is_err());
    }
}
