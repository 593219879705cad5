//! The Redis cache, over one multiplexed connection that reconnects by itself, behind a short circuit breaker.
//!
//! Why not a pool: Redis answers commands in order on one connection, so a multiplexed connection pipelines
//! every concurrent request without a pool's checkout. And a pool (bb8) waits its whole connection timeout
//! for a connection when the server is down, which would hold every cached read that long.
//!
//! When Redis fails: a command fails as soon as the connection is known lost (refused, reset), or after
//! [`RESPONSE_TIMEOUT`] when Redis does not answer (hung, or its host gone without closing the socket). Either
//! way reads and fills then skip Redis for [`SKIP_AFTER_FAILURE`] (the caller reads the store), so a request
//! that makes several cache calls does not wait on each; the first call after that tries again. A lost
//! connection is re-established by that call (one attempt, at most [`CONNECT_TIMEOUT`]); after a timeout the
//! connection is replaced, since a socket whose peer vanished can look open for many minutes.
//!
//! Invalidations are never lost: one that fails, or comes while Redis is skipped, is kept and sent before
//! anything else the next time Redis is used; until it succeeds nothing is read from Redis. So a write does
//! not wait on a Redis that just failed, and a value it made stale is not served once Redis is back (by this
//! process: another process reading the same Redis may see the entry until this one next talks to Redis, or
//! until the entry's TTL).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, CacheTtls, EntryKind};
use crate::error::CacheError;

/// How long one connection attempt may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one command may wait for its answer: a cache slower than this is treated as down.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long reads and fills skip Redis after a command failed.
pub(super) const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A [`Cache`] in Redis: each group is a hash under `prefix + key`, expiring with `PEXPIRE … NX`.
#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    config: ConnectionManagerConfig,
    connection: Arc<RwLock<ConnectionManager>>,
    state: Arc<Mutex<State>>,
    prefix: String,
    ttls: CacheTtls,
}

/// What the cache knows of Redis's recent failures.
#[derive(Default)]
struct State {
    /// When the last command failed, until one succeeds.
    failed_at: Option<Instant>,
    /// Full keys whose invalidation has not reached Redis yet.
    pending: BTreeSet<String>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).field("ttls", &self.ttls).finish()
    }
}

impl RedisCache {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`); every key is prefixed with `prefix` (e.g. `pbp:`)
    /// so that several deployments can share a server. Fails if the server does not answer. Once connected,
    /// a lost connection is re-established by a later command, for as long as the cache lives.
    pub async fn connect(url: &str, prefix: &str, ttls: CacheTtls) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(CacheError::Connect)?;
        // No retries inside one attempt: a command waiting for a reconnection would wait for all of them.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection =
            ConnectionManager::new_with_config(client.clone(), config.clone()).await.map_err(CacheError::Connect)?;
        let cache = Self {
            client,
            config,
            connection: Arc::new(RwLock::new(connection)),
            state: Arc::default(),
            prefix: prefix.to_owned(),
            ttls,
        };
        cache.ping().await?;
        Ok(cache)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// An error when reads and fills skip Redis now (a command failed less than [`SKIP_AFTER_FAILURE`] ago).
    fn skipping(&self) -> Result<(), CacheError> {
        let failed_at = self.state().failed_at;
        match failed_at {
            Some(at) if at.elapsed() < SKIP_AFTER_FAILURE => Err(CacheError::Unavailable(format!(
                "redis failed {} ms ago; skipped for {} ms after a failure",
                at.elapsed().as_millis(),
                SKIP_AFTER_FAILURE.as_millis()
            ))),
            _ => Ok(()),
        }
    }

    /// Notes a command's outcome: a failure opens the skip window (and replaces a connection that timed out),
    /// a success closes it.
    fn outcome<T>(&self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        let mut state = self.state();
        match &result {
            Ok(_) => state.failed_at = None,
            Err(error) => {
                state.failed_at = Some(Instant::now());
                if error.is_timeout() {
                    match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
                        Ok(fresh) => *self.connection.write().unwrap_or_else(PoisonError::into_inner) = fresh,
                        Err(e) => tracing::debug!(error = %e, "Cannot replace the Redis connection."),
                    }
                }
            }
        }
        result
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the invalidations that have not reached Redis yet; nothing may be read from Redis before.
    async fn flush_pending(&self) -> Result<(), CacheError> {
        let keys: Vec<String> = self.state().pending.iter().cloned().collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.delete(keys).await
    }

    /// `DEL keys`: on success they are no longer pending, on failure they are.
    async fn delete(&self, keys: Vec<String>) -> Result<(), CacheError> {
        let mut conn = self.connection();
        let result = redis::cmd("DEL").arg(&keys).query_async::<i64>(&mut conn).await;
        let result = self.outcome(result);
        let mut state = self.state();
        match result {
            Ok(_) => {
                for key in &keys {
                    state.pending.remove(key);
                }
                Ok(())
            }
            Err(source) => {
                state.pending.extend(keys.iter().cloned());
                Err(CacheError::Redis { operation: "DEL", key: keys.join(" "), source })
            }
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str, field: &str) -> Result<Option<bytes::Bytes>, CacheError> {
        self.skipping()?;
        self.flush_pending().await?;
        let key = self.full(key);
        let mut conn = self.connection();
        let result = redis::cmd("HGET").arg(&key).arg(field).query_async::<Option<Vec<u8>>>(&mut conn).await;
        self.outcome(result).map(|value| value.map(bytes::Bytes::from)).map_err(|source| CacheError::Redis {
            operation: "HGET",
            key,
            source,
        })
    }

    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError> {
        self.skipping()?;
        self.flush_pending().await?;
        let key = self.full(key);
        let ttl_ms = u64::try_from(self.ttls.ttl(kind).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.connection();
        let result = redis::pipe()
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
            .await;
        self.outcome(result).map_err(|source| CacheError::Redis { operation: "HSET/PEXPIRE", key, source })
    }

    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let full: Vec<String> = keys.iter().map(|k| self.full(k)).collect();
        if self.skipping().is_err() {
            // Redis just failed: kept, and sent before anything is read from Redis again.
            self.state().pending.extend(full);
            return Ok(());
        }
        let mut all: BTreeSet<String> = self.state().pending.clone();
        all.extend(full);
        self.delete(all.into_iter().collect()).await
    }

    fn ttls(&self) -> CacheTtls {
        self.ttls
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.connection();
        let result = redis::cmd("PING").query_async::<String>(&mut conn).await;
        self.outcome(result).map(drop).map_err(|source| CacheError::Redis {
            operation: "PING",
            key: String::new(),
            source,
        })
    }
}
