//! The Redis cache, over one multiplexed connection that reconnects by itself.
//!
//! Why not a pool: Redis answers commands in order on one connection, so a multiplexed connection pipelines
//! every concurrent request without a pool's checkout. And a pool (bb8) waits its whole connection timeout
//! for a connection when the server is down, which would hold every cached read that long; here a command
//! fails as soon as the connection is known to be gone, the caller reads the store, and the next command
//! tries to connect again (once, for at most [`CONNECT_TIMEOUT`]).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheTtls, EntryKind};
use crate::error::CacheError;

/// How long one connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one command may wait for its answer: a cache slower than this is treated as down.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A [`Cache`] in Redis: each group is a hash under `prefix + key`, expiring with `PEXPIRE … NX`.
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    ttls: CacheTtls,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).field("ttls", &self.ttls).finish()
    }
}

impl RedisCache {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`); every key is prefixed with `prefix` (e.g. `pbp:`)
    /// so that several deployments can share a server. Fails if the server does not answer. Once connected,
    /// a lost connection is re-established by the next command, for as long as the cache lives.
    pub async fn connect(url: &str, prefix: &str, ttls: CacheTtls) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(CacheError::Connect)?;
        // No retries inside one attempt: a command waiting for a reconnection would wait for all of them.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(CacheError::Connect)?;
        let cache = Self { connection, prefix: prefix.to_owned(), ttls };
        cache.ping().await?;
        Ok(cache)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str, field: &str) -> Result<Option<bytes::Bytes>, CacheError> {
        let key = self.full(key);
        let mut conn = self.connection.clone();
        redis::cmd("HGET")
            .arg(&key)
            .arg(field)
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .map(|value| value.map(bytes::Bytes::from))
            .map_err(|source| CacheError::Redis { operation: "HGET", key, source })
    }

    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError> {
        let key = self.full(key);
        let ttl_ms = u64::try_from(self.ttls.ttl(kind).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(value)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms)
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|source| CacheError::Redis { operation: "HSET/PEXPIRE", key, source })
    }

    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.full(k)).collect();
        let mut conn = self.connection.clone();
        redis::cmd("DEL").arg(&full).query_async::<i64>(&mut conn).await.map(drop).map_err(|source| CacheError::Redis {
            operation: "DEL",
            key: full.join(" "),
            source,
        })
    }

    fn ttls(&self) -> CacheTtls {
        self.ttls
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(|source| CacheError::Redis {
            operation: "PING",
            key: String::new(),
            source,
        })
    }
}
