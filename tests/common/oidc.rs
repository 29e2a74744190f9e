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

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OidcProvider {
    /// Starts the provider on `port` with `clients` and `accounts` (see server.mjs).
    pub async fn start(
        port: u16,
        clients: serde_json::Value,
        accounts: serde_json::Value,
        id_token_ttl_secs: u64,
    ) -> Self {
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
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_ACCOUNTS", accounts.to_string())
            .env("OIDC_ID_TOKEN_TTL", id_token_ttl_secs.to_string())
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
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
