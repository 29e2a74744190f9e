//! Checks of the browser origins an admin gives service apps (names are `model::DisplayName`
//! and `model::ServiceName`).

use crate::error::Error;

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
