//! The Redis cache, through a bb8-redis pool.

use async_trait::async_trait;
use bb8_redis::RedisConnectionManager;
use bb8_redis::bb8::Pool;
use bb8_redis::redis;

use super::{Cache, CacheTtls, EntryKind};
use crate::error::CacheError;

/// A [`Cache`] in Redis: each group is a hash under `prefix + key`, expiring with `PEXPIRE … NX`.
#[derive(Clone)]
pub struct RedisCache {
    pool: Pool<RedisConnectionManager>,
    prefix: String,
    ttls: CacheTtls,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).field("ttls", &self.ttls).finish()
    }
}

impl RedisCache {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`) with a pool of `max_connections`; every key is
    /// prefixed with `prefix` (e.g. `pbp:`) so that several deployments can share a server. Fails if the
    /// server does not answer.
    pub async fn connect(url: &str, prefix: &str, ttls: CacheTtls, max_connections: u32) -> Result<Self, CacheError> {
        // Check the server directly first: the pool would only report a timeout.
        let client = redis::Client::open(url).map_err(CacheError::Connect)?;
        let mut probe = client.get_multiplexed_async_connection().await.map_err(CacheError::Connect)?;
        redis::cmd("PING").query_async::<String>(&mut probe).await.map_err(|source| CacheError::Redis {
            operation: "PING",
            key: String::new(),
            source,
        })?;
        let manager = RedisConnectionManager::new(url).map_err(CacheError::Connect)?;
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            .connection_timeout(std::time::Duration::from_secs(5))
            .build(manager)
            .await
            .map_err(CacheError::Connect)?;
        Ok(Self { pool, prefix: prefix.to_owned(), ttls })
    }

    async fn conn(&self) -> Result<bb8_redis::bb8::PooledConnection<'_, RedisConnectionManager>, CacheError> {
        self.pool.get().await.map_err(|e| CacheError::Pool(e.to_string()))
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str, field: &str) -> Result<Option<bytes::Bytes>, CacheError> {
        let key = self.full(key);
        let mut conn = self.conn().await?;
        redis::cmd("HGET")
            .arg(&key)
            .arg(field)
            .query_async::<Option<Vec<u8>>>(&mut *conn)
            .await
            .map(|value| value.map(bytes::Bytes::from))
            .map_err(|source| CacheError::Redis { operation: "HGET", key, source })
    }

    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError> {
        let key = self.full(key);
        let ttl_ms = u64::try_from(self.ttls.ttl(kind).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn().await?;
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
            .query_async::<()>(&mut *conn)
            .await
            .map_err(|source| CacheError::Redis { operation: "HSET/PEXPIRE", key, source })
    }

    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.full(k)).collect();
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(&full)
            .query_async::<i64>(&mut *conn)
            .await
            .map(drop)
            .map_err(|source| CacheError::Redis { operation: "DEL", key: full.join(" "), source })
    }

    fn ttls(&self) -> CacheTtls {
        self.ttls
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<String>(&mut *conn).await.map(drop).map_err(|source| CacheError::Redis {
            operation: "PING",
            key: String::new(),
            source,
        })
    }
}
