//! The `sentinel` command line as an operator uses it.

use std::process::Command;

fn sentinel() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sentinel"));
    // Start from a clean environment of SENTINEL_* settings.
    for (key, _) in std::env::vars() {
        if key.starts_with("SENTINEL_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn config_check_refuses_postgres_without_a_kek() {
    let dir = tempfile::tempdir().unwrap();
    let output = sentinel()
        .current_dir(dir.path())
        .args(["config", "check"])
        .env(
            "SENTINEL_DATABASE_URL",
            "postgres://app:hunter2@db/sentinel",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`kek`"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn config_check_prints_the_effective_config_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let kek = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    std::fs::write(
        dir.path().join("sentinel.toml"),
        "log = \"debug\"\n[rate_limit]\nper_address = 7\n",
    )
    .unwrap();
    let output = sentinel()
        .current_dir(dir.path())
        .args(["config", "check"])
        .env(
            "SENTINEL_DATABASE_URL",
            "postgres://app:hunter2@db/sentinel",
        )
        .env("SENTINEL_REDIS_URL", "redis://:pw@cache:6379")
        .env("SENTINEL_KEK", kek)
        .env("SENTINEL_LISTEN", "0.0.0.0:9000")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("listen = \"0.0.0.0:9000\""), "{stdout}");
    assert!(stdout.contains("log = \"debug\""), "{stdout}");
    assert!(stdout.contains("per_address = 7"), "{stdout}");
    assert!(stdout.contains("postgres://app:<redacted>@db/sentinel"));
    for secret in ["hunter2", ":pw@", kek] {
        assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
    }
}

#[test]
fn invalid_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = sentinel()
        .current_dir(dir.path())
        .args(["config", "check"])
        .env("SENTINEL_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.to_lowercase().contains("log_format"), "{stderr}");
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = sentinel()
        .current_dir(dir.path())
        .arg("migrate")
        .env("SENTINEL_DATA_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("state/sentinel.db").exists());
}

#[test]
fn token_issue_and_service_app_create_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = sentinel()
            .current_dir(dir.path())
            .args(args)
            .env("SENTINEL_LOG", "error")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON on stdout")
    };
    let issued = run(&[
        "token",
        "issue",
        "--email",
        "Ops@Example.com",
        "--workspace",
        "acme",
        "--role",
        "admin",
        "--create",
        "--json",
    ]);
    for field in ["access_token", "refresh_token", "user_id", "workspace_id"] {
        assert!(
            issued[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {issued}"
        );
    }
    assert_eq!(issued["expires_in"], 900);
    assert!(issued["refresh_token"].as_str().unwrap().starts_with("rt_"));
    // Same user and workspace the second time, without --create.
    let again = run(&[
        "token",
        "issue",
        "--email",
        "ops@example.com",
        "--workspace",
        "acme",
        "--json",
    ]);
    assert_eq!(again["user_id"], issued["user_id"]);
    assert_eq!(again["workspace_id"], issued["workspace_id"]);

    let app = run(&[
        "service-app",
        "create",
        "--name",
        "Docs",
        "--service-name",
        "docs",
        "--json",
    ]);
    let key = app["api_key"].as_str().unwrap();
    assert!(key.starts_with("sk_"));
    assert!(key.starts_with(app["key_prefix"].as_str().unwrap()));

    // A missing user without --create is an error naming what is missing.
    let output = sentinel()
        .current_dir(dir.path())
        .args([
            "token",
            "issue",
            "--email",
            "nobody@example.com",
            "--workspace",
            "acme",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nobody@example.com"));
}

#[test]
fn commands_are_quiet_and_plain_and_rotate_service_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = sentinel()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        // No log lines and no colour codes by default (SENTINEL_LOG is not set: info).
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(stderr.is_empty(), "{args:?} printed: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(!stdout.contains('\u{1b}'), "colour codes in {stdout}");
        stdout
    };
    let json = |text: String| serde_json::from_str::<serde_json::Value>(&text).expect("JSON");
    let issued = json(run(&[
        "token",
        "issue",
        "--email",
        "ada@example.com",
        "--workspace",
        "acme",
        "--role",
        "owner",
        "--create",
        "--admin",
        "--json",
    ]));
    assert!(issued["access_token"].as_str().is_some());
    let created = json(run(&[
        "service-app",
        "create",
        "--name",
        "Docs",
        "--service-name",
        "docs",
        "--json",
    ]));
    let rotated = json(run(&[
        "service-app",
        "rotate",
        "--service-name",
        "docs",
        "--grace",
        "1h",
        "--json",
    ]));
    assert_eq!(rotated["id"], created["id"]);
    assert_ne!(rotated["api_key"], created["api_key"]);
    assert!(rotated["api_key"].as_str().unwrap().starts_with("sk_"));
    assert!(!rotated["old_key_expires_at"].as_str().unwrap().is_empty());
    // A second rotation during the grace succeeds too (the incident path).
    let again = json(run(&[
        "service-app",
        "rotate",
        "--id",
        created["id"].as_str().unwrap(),
        "--grace",
        "0s",
        "--json",
    ]));
    assert_ne!(again["api_key"], rotated["api_key"]);
    // Plain text output, and an unknown service is an error that names it.
    let text = run(&["service-app", "rotate", "--service-name", "docs"]);
    assert!(text.contains("api_key:"), "{text}");
    let output = sentinel()
        .current_dir(dir.path())
        .args(["service-app", "rotate", "--service-name", "nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("sentinel: "), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    // --verbose brings the log lines back.
    let output = sentinel()
        .current_dir(dir.path())
        .args(["--verbose", "admin", "grant", "--email", "ada@example.com"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains('\u{1b}'));
}

#[test]
fn config_check_prints_durations_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let output = sentinel()
        .current_dir(dir.path())
        .args(["config", "check"])
        .env("SENTINEL_AUDIT_RETENTION", "365d")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("audit_retention = \"365d\""), "{stdout}");
    assert!(stdout.contains("access_token_ttl = \"15m\""), "{stdout}");
}
