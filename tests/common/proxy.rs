//! A TCP proxy the test can cut and restore, to make a real dependency unreachable.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections to `target` while up; when cut, drops every open connection and refuses
/// (accepts and closes) new ones.
pub struct CutProxy {
    /// Address to connect to instead of the target.
    pub addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
}

impl CutProxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let state = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        CutProxy { addr, up }
    }

    /// Makes the target unreachable.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Makes the target reachable again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
