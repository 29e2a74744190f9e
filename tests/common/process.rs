//! The server binary as a process of its own, on a test database: for what only a process can
//! show (being killed).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;

use super::{Backend, TestDatabase, redis_url};

/// The address a server process announces on stderr ("sentinel listening on …"), waiting up to
/// a minute; its later lines are read on (and dropped) so the process never blocks on them.
pub fn announced_address(stderr: ChildStderr) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.split("sentinel listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(addr.to_string());
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the server announces its address")
}

/// A `sentinel serve` process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Its gRPC channel.
    pub channel: Channel,
}

impl ServerProcess {
    /// Starts the binary on `db` (rate limits off: the tests drive load from one address) and
    /// connects to it.
    pub async fn start(db: &TestDatabase) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sentinel"));
        for (key, _) in std::env::vars() {
            if key.starts_with("SENTINEL_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .env("SENTINEL_LISTEN", "127.0.0.1:0")
            .env("SENTINEL_DATA_DIR", &db.data_dir)
            .env("SENTINEL_DATABASE_URL", &db.url)
            .env("SENTINEL_LOG", "info")
            .env("SENTINEL_LOG_FORMAT", "text")
            .env("SENTINEL_RATE_LIMIT__ENABLED", "false");
        if db.backend == Backend::Clustered {
            command
                .env("SENTINEL_REDIS_URL", redis_url())
                .env("SENTINEL_REDIS_PREFIX", &db.redis_prefix)
                .env("SENTINEL_KEK", &db.kek);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server");
        let addr = tokio::task::spawn_blocking({
            let stderr = child.stderr.take().expect("stderr");
            move || announced_address(stderr)
        })
        .await
        .expect("wait for the address");
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("valid uri")
            .connect()
            .await
            .expect("gRPC connects");
        Self { child, channel }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
