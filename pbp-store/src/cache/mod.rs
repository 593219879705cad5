//! Caches with a time-to-live per kind of entry, and a repository that reads through one.
//!
//! Entries are grouped: a *key* names one group (for example the plays of one game) and a *field* one entry in it
//! (for example the last 50 plays). A group's TTL starts with its first entry and is the TTL of that entry's
//! [`EntryKind`]; invalidating a key drops the whole group. [`RedisCache`] keeps groups as Redis hashes
//! (`HSET` + `PEXPIRE … NX` in one transaction, `DEL` to invalidate); [`MemoryCache`] does the same in process.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::CacheError;

mod cached;
mod memory;
mod redis;
#[cfg(test)]
mod tests;

pub use cached::{CachedRepository, REINVALIDATE_AFTER};
pub use memory::MemoryCache;
pub use redis::RedisCache;

/// What an entry holds, which decides how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Data of a game in progress or not yet started (its state, its plays): changes every few seconds.
    Live,
    /// Data of a finished game: changes only on a late correction, which invalidates it anyway.
    Finished,
    /// Lists of games (a day's scoreboard).
    List,
    /// Reference data (teams).
    Reference,
}

/// The TTL of each [`EntryKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    /// TTL of [`EntryKind::Live`] entries (default 5 s).
    pub live: Duration,
    /// TTL of [`EntryKind::Finished`] entries (default 1 h).
    pub finished: Duration,
    /// TTL of [`EntryKind::List`] entries (default 10 s).
    pub list: Duration,
    /// TTL of [`EntryKind::Reference`] entries (default 1 h).
    pub reference: Duration,
}

impl Default for CacheTtls {
    fn default() -> Self {
        Self {
            live: Duration::from_secs(5),
            finished: Duration::from_secs(3600),
            list: Duration::from_secs(10),
            reference: Duration::from_secs(3600),
        }
    }
}

impl CacheTtls {
    /// The TTL of `kind`.
    pub fn ttl(&self, kind: EntryKind) -> Duration {
        match kind {
            EntryKind::Live => self.live,
            EntryKind::Finished => self.finished,
            EntryKind::List => self.list,
            EntryKind::Reference => self.reference,
        }
    }
}

/// A cache of byte values in groups with per-kind TTLs.
#[async_trait]
pub trait Cache: Send + Sync {
    /// The entry `field` of group `key`, if present and not expired (shared bytes: the in-process cache hands
    /// out its copy without copying it).
    async fn get(&self, key: &str, field: &str) -> Result<Option<Bytes>, CacheError>;

    /// Stores `value` as entry `field` of group `key`. A new group expires after the TTL of `kind`; an existing
    /// group keeps its expiry (so no entry outlives the TTL of the group's first entry).
    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError>;

    /// Drops the groups `keys` with all their entries.
    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError>;

    /// The TTLs in use.
    fn ttls(&self) -> CacheTtls;

    /// Checks that the cache answers (for health checks): a `PING` on Redis, always fine in process.
    async fn ping(&self) -> Result<(), CacheError>;
}

/// A shared cache is a cache: lets a process pick Redis or the in-process cache at run time (`Arc<dyn Cache>`).
#[async_trait]
impl<T: Cache + ?Sized> Cache for std::sync::Arc<T> {
    async fn get(&self, key: &str, field: &str) -> Result<Option<Bytes>, CacheError> {
        (**self).get(key, field).await
    }
    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError> {
        (**self).put(key, field, value, kind).await
    }
    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError> {
        (**self).invalidate(keys).await
    }
    fn ttls(&self) -> CacheTtls {
        (**self).ttls()
    }
    async fn ping(&self) -> Result<(), CacheError> {
        (**self).ping().await
    }
}
