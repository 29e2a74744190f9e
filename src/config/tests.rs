use super::*;

#[test]
fn defaults_are_valid_and_embedded() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
    assert_eq!(config.effective_issuer(), "http://127.0.0.1:8080");
    assert!(
        config
            .effective_database_url()
            .ends_with("data/sentinel.db")
    );
}

#[test]
fn postgres_without_kek_is_refused() {
    let config = Config {
        database_url: Some("postgres://u:p@db/sentinel".into()),
        ..Config::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("`kek`"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases: Vec<(Config, &str)> = vec![
        (
            Config {
                listen: "nonsense".into(),
                ..Config::default()
            },
            "`listen`",
        ),
        (
            Config {
                redis_url: Some("http://x".into()),
                ..Config::default()
            },
            "`redis_url`",
        ),
        (
            Config {
                kek: Some("c2hvcnQ=".into()),
                ..Config::default()
            },
            "`kek`",
        ),
        (
            Config {
                cors_origins: vec!["https://a.example/".into()],
                ..Config::default()
            },
            "`cors_origins`",
        ),
    ];
    for (config, key) in cases {
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{err} should name {key}");
    }
}

#[test]
fn redaction_hides_passwords_and_kek() {
    let config = Config {
        database_url: Some("postgres://app:hunter2@db:5432/sentinel".into()),
        redis_url: Some("redis://:s3cret@cache:6379".into()),
        kek: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
        ..Config::default()
    };
    let text = config.redacted_toml();
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("s3cret"));
    assert!(!text.contains(config.kek.as_deref().unwrap()));
    assert!(text.contains("postgres://app:<redacted>@db:5432/sentinel"));
}

#[test]
fn plain_http_is_only_for_loopback_hosts() {
    for ok in [
        "https://auth.example.com",
        "http://localhost:8080",
        "http://127.0.0.1:9/cb",
        "http://127.1.2.3",
        "http://[::1]:8080/x",
    ] {
        assert!(secure_or_loopback(ok), "{ok}");
    }
    for bad in [
        "http://auth.example.com",
        "http://127.0.0.1.evil.io",
        "http://localhost@evil.io",
        "http://[::2]:80",
        "ftp://localhost",
        "javascript:alert(1)",
    ] {
        assert!(!secure_or_loopback(bad), "{bad}");
    }
}

#[test]
fn durations_print_as_an_operator_writes_them() {
    use std::time::Duration;
    assert_eq!(
        duration_text::format(Duration::from_secs(365 * 86_400)),
        "365d"
    );
    assert_eq!(duration_text::format(Duration::from_secs(900)), "15m");
    assert_eq!(duration_text::format(Duration::from_secs(5400)), "90m");
    assert_eq!(duration_text::format(Duration::from_secs(61)), "61s");
    assert_eq!(duration_text::format(Duration::from_millis(1500)), "1500ms");
    assert_eq!(duration_text::format(Duration::ZERO), "0ms");
    for text in ["365d", "15m", "61s", "1500ms", "0ms"] {
        let parsed = humantime::parse_duration(text).unwrap();
        assert_eq!(duration_text::format(parsed), text);
    }
    let shown = Config::default().redacted_toml();
    assert!(shown.contains("access_token_ttl = \"15m\""), "{shown}");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
fn environment_overrides_file_values() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "custom.toml",
            "listen = \"127.0.0.1:9000\"\nlog = \"debug\"",
        )?;
        jail.set_env("SENTINEL_LISTEN", "127.0.0.1:9100");
        jail.set_env(
            "SENTINEL_CORS_ORIGINS",
            "https://a.example, https://b.example",
        );
        jail.set_env("SENTINEL_RATE_LIMIT__PER_ADDRESS", "5");
        let config = Config::load(Some(Path::new("custom.toml"))).expect("valid");
        assert_eq!(config.listen, "127.0.0.1:9100");
        assert_eq!(config.log, "debug");
        assert_eq!(config.cors_origins.len(), 2);
        assert_eq!(config.rate_limit.per_address, 5);
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
fn providers_come_from_the_file_with_secrets_from_files() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("google-secret", "s3cret\n")?;
        jail.create_file(
            "providers.toml",
            "admin_emails = [\"root@example.com\"]\n\
             [providers.google]\nkind = \"google\"\nclient_id = \"abc\"\n\
             client_secret_file = \"google-secret\"\n\
             [providers.corp]\nkind = \"entra\"\nclient_id = \"def\"\ntenant = \"contoso.com\"\n",
        )?;
        let config = Config::load(Some(Path::new("providers.toml"))).expect("valid");
        assert_eq!(config.providers["google"].client_secret, "s3cret");
        assert_eq!(
            config.providers["corp"].tenant.as_deref(),
            Some("contoso.com")
        );
        assert!(!config.redacted_toml().contains("s3cret"));
        jail.create_file(
            "bad.toml",
            "[providers.x]\nkind = \"oidc\"\nclient_id = \"abc\"\n",
        )?;
        let err = Config::load(Some(Path::new("bad.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.issuer"), "{err}");
        Ok(())
    });
}
