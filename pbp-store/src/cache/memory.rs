//! The in-process cache of the embedded default.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{Cache, CacheTtls, EntryKind};
use crate::error::CacheError;

struct Group {
    expires_at: Instant,
    fields: HashMap<String, Bytes>,
}

/// An in-process [`Cache`] with the same TTL semantics as [`RedisCache`](super::RedisCache). Expired groups are
/// dropped when read and swept when the cache has doubled in size since the last sweep.
pub struct MemoryCache {
    ttls: CacheTtls,
    groups: Mutex<Groups>,
}

struct Groups {
    map: HashMap<String, Group>,
    sweep_at: usize,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("ttls", &self.ttls).field("groups", &self.groups.lock().map.len()).finish()
    }
}

impl MemoryCache {
    /// An empty cache with these TTLs.
    pub fn new(ttls: CacheTtls) -> Self {
        Self { ttls, groups: Mutex::new(Groups { map: HashMap::new(), sweep_at: 1024 }) }
    }

    /// Number of groups held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.groups.lock().map.len()
    }

    /// True when no group is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str, field: &str) -> Result<Option<Bytes>, CacheError> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.map.get(key) else { return Ok(None) };
        if group.expires_at <= Instant::now() {
            groups.map.remove(key);
            return Ok(None);
        }
        Ok(group.fields.get(field).cloned())
    }

    async fn put(&self, key: &str, field: &str, value: &[u8], kind: EntryKind) -> Result<(), CacheError> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let expired = groups.map.get(key).is_none_or(|g| g.expires_at <= now);
        if expired {
            let expires_at = now + self.ttls.ttl(kind);
            groups.map.insert(key.to_owned(), Group { expires_at, fields: HashMap::new() });
        }
        if let Some(group) = groups.map.get_mut(key) {
            group.fields.insert(field.to_owned(), Bytes::copy_from_slice(value));
        }
        if groups.map.len() >= groups.sweep_at {
            groups.map.retain(|_, g| g.expires_at > now);
            groups.sweep_at = (groups.map.len() * 2).max(1024);
        }
        Ok(())
    }

    async fn invalidate(&self, keys: &[String]) -> Result<(), CacheError> {
        let mut groups = self.groups.lock();
        for key in keys {
            groups.map.remove(key);
        }
        Ok(())
    }

    fn ttls(&self) -> CacheTtls {
        self.ttls
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
