//! Redis cache for the clustered mode. Every key and channel is prefixed, so several deployments
//! (or test runs) can share one Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config, EventInterface, Expiration, KeysInterface, LuaInterface,
    PubsubInterface, ReconnectPolicy,
};
use tokio::sync::broadcast;

use super::{Cache, CacheError, CacheResult, Subscription, WindowCount};

/// Commands that do not complete within this time fail as `Unavailable` instead of queueing
/// while Redis is away.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// INCR with the window set on the first hit; also repairs a counter that lost its TTL.
const HIT_SCRIPT: &str = r#"
local c = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {c, ttl}
"#;

type Channels = Arc<Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>>;

/// A Redis-backed [`Cache`].
pub struct RedisCache {
    client: Client,
    subscriber: SubscriberClient,
    prefix: String,
    channels: Channels,
}

fn unavailable(err: fred::error::Error) -> CacheError {
    tracing::warn!(error = %err, "redis unavailable");
    CacheError::Unavailable
}

impl RedisCache {
    /// Connects a command client and a subscriber client. Both reconnect forever in the
    /// background; an unreachable Redis at start leaves the process up but not ready.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let config = Config::from_url(url).context("redis_url is not a valid redis:// URL")?;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder.build().context("invalid redis configuration")?;
        let subscriber = builder
            .build_subscriber_client()
            .context("invalid redis configuration")?;
        client.connect();
        subscriber.connect();
        subscriber.manage_subscriptions();
        let connected = tokio::time::timeout(Duration::from_secs(5), async {
            client.wait_for_connect().await?;
            subscriber.wait_for_connect().await
        })
        .await;
        if !matches!(connected, Ok(Ok(()))) {
            tracing::warn!("redis is not reachable yet; retrying in the background");
        }

        let channels: Channels = Arc::default();
        let mut messages = subscriber.message_rx();
        let forward_to = channels.clone();
        let channel_prefix = format!("{prefix}:");
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        let Some(name) = message.channel.strip_prefix(channel_prefix.as_str())
                        else {
                            continue;
                        };
                        let payload = message.value.as_bytes().map(<[u8]>::to_vec);
                        let sender = forward_to
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(name)
                            .cloned();
                        if let (Some(sender), Some(payload)) = (sender, payload) {
                            let _ = sender.send(payload);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });

        Ok(Self {
            client,
            subscriber,
            prefix: prefix.to_string(),
            channels,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{}", self.prefix, key)
    }

    /// The command client while it is connected. While Redis is down (the client reconnecting
    /// in the background) every command fails at once instead of waiting out its timeout, so
    /// an outage costs callers nothing but the fallback.
    fn connected(&self) -> CacheResult<&Client> {
        if self.client.is_connected() {
            Ok(&self.client)
        } else {
            Err(CacheError::Unavailable)
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> CacheResult<()> {
        self.connected()?
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.connected()?
            .get::<Option<Vec<u8>>, _>(self.key(key))
            .await
            .map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.connected()?
            .set::<(), _, _>(
                self.key(key),
                value.to_vec(),
                Some(Expiration::PX(millis)),
                None,
                false,
            )
            .await
            .map_err(unavailable)
    }

    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>> {
        self.connected()?
            .getdel::<Option<Vec<u8>>, _>(self.key(key))
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> CacheResult<bool> {
        self.connected()?
            .del::<i64, _>(self.key(key))
            .await
            .map(|n| n > 0)
            .map_err(unavailable)
    }

    async fn hit(&self, key: &str, window: Duration) -> CacheResult<WindowCount> {
        let millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
        let (count, ttl): (i64, i64) = self
            .connected()?
            .eval(HIT_SCRIPT, vec![self.key(key)], vec![millis])
            .await
            .map_err(unavailable)?;
        Ok(WindowCount {
            count: u64::try_from(count).unwrap_or(0),
            resets_in: Duration::from_millis(u64::try_from(ttl).unwrap_or(0)),
        })
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> CacheResult<()> {
        self.connected()?
            .publish::<i64, _, _>(self.key(channel), payload.to_vec())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn subscribe(&self, channel: &str) -> CacheResult<Subscription> {
        let (rx, first) = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match channels.get(channel) {
                Some(sender) => (sender.subscribe(), false),
                None => {
                    let (sender, rx) = broadcast::channel(1024);
                    channels.insert(channel.to_string(), sender);
                    (rx, true)
                }
            }
        };
        if first && let Err(err) = self.subscriber.subscribe(self.key(channel)).await {
            self.channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(channel);
            return Err(unavailable(err));
        }
        Ok(Subscription::new(rx))
    }
}
