//! Checks of the names and origins an admin gives apps (and users their display names).

use crate::error::Error;

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

/// Trims and checks a display name: 1–200 characters, none of them control or format
/// characters.
pub fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name", "must be 1-200 characters"));
    }
    if name.chars().any(is_control_or_format) {
        return Err(Error::invalid(
            "name",
            "must not contain control or invisible formatting characters",
        ));
    }
    Ok(name.to_string())
}

/// A display name from an identity provider: control and format characters dropped, trimmed,
/// cut to 200 characters (the provider's data is not refused, only cleaned).
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !is_control_or_format(*c))
        .collect::<String>()
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// Checks browser origins: `http(s)://host[:port]`, no path, at most 50; duplicates dropped.
pub fn validate_origins(origins: &[String]) -> Result<Vec<String>, Error> {
    if origins.len() > 50 {
        return Err(Error::invalid("allowed_origins", "at most 50 origins"));
    }
    let mut out: Vec<String> = Vec::new();
    for origin in origins {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty() && host.len() <= 253 && !host.contains(['/', '?', '#', '@', ' '])
        }) && crate::config::secure_or_loopback(origin);
        if !valid {
            return Err(Error::invalid(
                "allowed_origins",
                format!(
                    "`{origin}` is not an origin like https://app.example.com (http only on a \
                     loopback host)"
                ),
            ));
        }
        if !out.contains(origin) {
            out.push(origin.clone());
        }
    }
    Ok(out)
}

/// Validates a service name: lowercase letters, digits and dashes, 2–63 characters.
pub fn validate_service_name(name: &str) -> Result<(), Error> {
    let ok = (2..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "service_name",
            "must be 2-63 lowercase letters, digits or dashes",
        ))
    }
}
