//! A real OpenID provider process (`oidc-provider`, tests/support/oidc) for the login tests.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running provider; killed on drop.
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL.
    pub issuer: String,
}

/// A free loopback port (bound, then released: another process may take it before it is
/// bound again, so callers retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts Sentinel with `config` on a port of its own, retrying when a picked port was taken
/// in between (its callback URLs must name its real address, so port 0 will not do).
pub async fn start_on_free_port(mut config: sentinel::Config) -> super::TestApp {
    for _ in 0..10 {
        config.listen = format!("127.0.0.1:{}", free_port());
        if let Ok(app) = super::TestApp::try_start(config.clone()).await {
            return app;
        }
    }
    panic!("no free port for the server after 10 tries");
}

impl OidcProvider {
    /// Starts the provider process on an ephemeral port; `setup` configures it.
    pub async fn start() -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/oidc");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test OpenID provider is not installed: run `npm ci --prefix tests/support/oidc` \
             (scripts/test.sh does)"
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts (is Node.js installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the OpenID provider starts within 20 s")
            .expect("its output")
            .expect("a line");
        let issuer = line
            .strip_prefix("listening ")
            .expect("a listening line")
            .to_string();
        // Keep draining its output: a closed pipe would kill it at its next log line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, issuer }
    }

    /// Configures the provider's clients and accounts (see server.mjs).
    pub async fn setup(
        &self,
        clients: serde_json::Value,
        accounts: serde_json::Value,
        id_token_ttl_secs: u64,
    ) {
        let response = reqwest::Client::new()
            .post(format!("{}/setup", self.issuer))
            .json(&serde_json::json!({
                "clients": clients, "accounts": accounts, "idTokenTtl": id_token_ttl_secs,
            }))
            .send()
            .await
            .expect("the provider answers /setup");
        assert!(
            response.status().is_success(),
            "setup: {:?}",
            response.text().await
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A provider as the login tests configure it: client `sentinel` / `s3cret`, client apps
/// signing in as `webapp` accepted in authz mode.
pub fn provider_config(
    kind: sentinel::config::ProviderKind,
    issuer: Option<String>,
) -> sentinel::config::ProviderConfig {
    sentinel::config::ProviderConfig {
        kind,
        display_name: String::new(),
        client_id: "sentinel".into(),
        client_secret: "s3cret".into(),
        client_secret_file: None,
        issuer,
        tenant: None,
        scopes: Vec::new(),
        audiences: vec!["webapp".into()],
        authorize_url: None,
        token_url: None,
        api_url: None,
        authz_mode: None,
        trust_email_for_linking: None,
        allowed_domains: Vec::new(),
        allow_signup: None,
    }
}
