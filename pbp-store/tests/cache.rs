//! The cache contract, run against the in-process cache and the real Redis, and the read-through repository's
//! TTL and invalidation behaviour.

mod common;

use std::time::Duration;

use common::{game, seed_teams, state};
use pbp_store::cache::{Cache, CacheTtls, CachedRepository, EntryKind, MemoryCache, REINVALIDATE_AFTER};
use pbp_store::{GameStatus, Repository, SqliteStore};

fn short() -> CacheTtls {
    CacheTtls {
        live: Duration::from_millis(300),
        finished: Duration::from_secs(30),
        list: Duration::from_millis(300),
        reference: Duration::from_secs(30),
    }
}

async fn entries_expire_per_kind(cache: &dyn Cache) -> anyhow::Result<()> {
    cache.put("state:1", "row", b"live", EntryKind::Live).await?;
    cache.put("state:2", "row", b"final", EntryKind::Finished).await?;
    cache.put("games", "date=x", b"list", EntryKind::List).await?;
    assert_eq!(cache.get("state:1", "row").await?.as_deref(), Some(&b"live"[..]));
    assert_eq!(cache.get("state:1", "other").await?, None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get("state:1", "row").await?, None, "live entry expired");
    assert_eq!(cache.get("games", "date=x").await?, None, "list entry expired");
    assert_eq!(cache.get("state:2", "row").await?.as_deref(), Some(&b"final"[..]), "finished entry lives on");
    cache.invalidate(&["state:2".to_owned()]).await?;
    assert_eq!(cache.get("state:2", "row").await?, None);
    Ok(())
}

async fn groups_share_an_expiry_and_invalidate_whole(cache: &dyn Cache) -> anyhow::Result<()> {
    cache.put("plays:1", "a", b"1", EntryKind::Live).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cache.put("plays:1", "b", b"2", EntryKind::Live).await?;
    assert_eq!(cache.get("plays:1", "a").await?.as_deref(), Some(&b"1"[..]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cache.get("plays:1", "b").await?, None, "b expired with its group, 300 ms after a");
    cache.put("plays:1", "a", b"1", EntryKind::Live).await?;
    cache.put("plays:1", "b", b"2", EntryKind::Live).await?;
    cache.put("plays:2", "a", b"3", EntryKind::Live).await?;
    cache.invalidate(&["plays:1".to_owned(), "nothing".to_owned()]).await?;
    assert_eq!(cache.get("plays:1", "a").await?, None);
    assert_eq!(cache.get("plays:1", "b").await?, None);
    assert_eq!(cache.get("plays:2", "a").await?.as_deref(), Some(&b"3"[..]));
    cache.invalidate(&[]).await?;
    Ok(())
}

/// Reads are served from the cache (a write that bypasses it is not seen), writes through the wrapper
/// invalidate, live entries expire after their short TTL and finished ones do not.
async fn read_through_with_ttls_and_invalidation<C: Cache + 'static>(
    cached: CachedRepository<SqliteStore, C>,
) -> anyhow::Result<()> {
    let inner = cached.inner();
    seed_teams(&cached).await?;
    cached.upsert_games(&[game("live", "2024-03-17", "2", "19"), game("done", "2024-03-17", "19", "2")]).await?;
    cached.upsert_game_states(&[state("live", GameStatus::In, 10, 1), state("done", GameStatus::Post, 400, 1)]).await?;
    assert_eq!(cached.game_state("live").await?.map(|s| s.plays_applied), Some(10));
    assert_eq!(cached.game_state("done").await?.map(|s| s.plays_applied), Some(400));
    // Bypass the cache: the cached values are served.
    inner.upsert_game_states(&[state("live", GameStatus::In, 11, 2), state("done", GameStatus::Post, 401, 2)]).await?;
    assert_eq!(cached.game_state("live").await?.map(|s| s.plays_applied), Some(10), "served from the cache");
    assert_eq!(cached.game_state("done").await?.map(|s| s.plays_applied), Some(400), "served from the cache");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cached.game_state("live").await?.map(|s| s.plays_applied), Some(11), "live TTL elapsed");
    assert_eq!(cached.game_state("done").await?.map(|s| s.plays_applied), Some(400), "finished TTL not elapsed");
    // A write through the wrapper invalidates at once.
    cached.upsert_game_states(&[state("done", GameStatus::Post, 402, 3)]).await?;
    assert_eq!(cached.game_state("done").await?.map(|s| s.plays_applied), Some(402));
    // Plays of a game: cached per query, invalidated by a new play.
    cached.upsert_plays(&[common::play("live", 1)]).await?;
    assert_eq!(cached.last_plays("live", 10).await?.len(), 1);
    inner.upsert_plays(&[common::play("live", 2)]).await?;
    assert_eq!(cached.last_plays("live", 10).await?.len(), 1, "served from the cache");
    cached.upsert_plays(&[common::play("live", 3)]).await?;
    assert_eq!(cached.last_plays("live", 10).await?.len(), 3);
    // An unchanged re-delivery does not invalidate.
    inner.upsert_plays(&[common::play("live", 4)]).await?;
    cached.upsert_plays(&[common::play("live", 3)]).await?;
    assert_eq!(cached.last_plays("live", 10).await?.len(), 3, "nothing changed, the cache stays");
    Ok(())
}

/// A read that loaded plays just before a write puts them into the cache after the write's invalidation; the
/// write's second invalidation drops them shortly after.
async fn a_stale_fill_racing_a_write_is_dropped_soon<C: Cache + 'static>(
    cached: CachedRepository<SqliteStore, C>,
) -> anyhow::Result<()> {
    seed_teams(&cached).await?;
    cached.upsert_games(&[game("race", "2024-03-17", "2", "19")]).await?;
    cached.upsert_plays(&[common::play("race", 1)]).await?;
    // The earlier writes' second invalidations are over: only the next write's can drop the stale entry.
    tokio::time::sleep(REINVALIDATE_AFTER + Duration::from_millis(200)).await;
    // The racing reader's view, before the write.
    let stale = cached.inner().plays("race", &Default::default()).await?;
    cached.upsert_plays(&[common::play("race", 2)]).await?;
    // Its fill lands after the write's invalidation, under the field the repository reads.
    let field = "since=;limit=";
    cached.cache().put("plays:race", field, &serde_json::to_vec(&stale)?, EntryKind::Live).await?;
    assert_eq!(cached.plays("race", &Default::default()).await?.len(), 1, "the stale fill is served for now");
    tokio::time::sleep(REINVALIDATE_AFTER + Duration::from_millis(300)).await;
    assert_eq!(cached.plays("race", &Default::default()).await?.len(), 2, "and dropped soon after the write");
    Ok(())
}

mod memory {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_fill_racing_a_write_is_dropped_soon() -> anyhow::Result<()> {
        let (store, _dir) = common::sqlite_store().await?;
        // TTLs well above the test's length: only the second invalidation can drop the stale entry.
        let cached = CachedRepository::new(store, MemoryCache::new(CacheTtls::default()));
        super::a_stale_fill_racing_a_write_is_dropped_soon(cached).await
    }

    #[tokio::test]
    async fn entries_expire_per_kind() -> anyhow::Result<()> {
        super::entries_expire_per_kind(&MemoryCache::new(short())).await
    }

    #[tokio::test]
    async fn groups_share_an_expiry_and_invalidate_whole() -> anyhow::Result<()> {
        super::groups_share_an_expiry_and_invalidate_whole(&MemoryCache::new(short())).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_through_with_ttls_and_invalidation() -> anyhow::Result<()> {
        let (store, _dir) = common::sqlite_store().await?;
        // Without the second invalidation, whose timing would race the TTL checks.
        let cached = CachedRepository::new(store, MemoryCache::new(short())).reinvalidate_after(None);
        super::read_through_with_ttls_and_invalidation(cached).await
    }
}

mod redis {
    use super::*;

    /// A private `redis-server` (the shared one must not be paused under the other tests), killed when dropped.
    struct PrivateRedis(std::process::Child, u16);

    impl PrivateRedis {
        fn start() -> anyhow::Result<Option<Self>> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let spawned = std::process::Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !common::services_required() => {
                    eprintln!("skipping: no redis-server on this machine");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let redis = Self(child, port);
            for _ in 0..500 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Some(redis));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            anyhow::bail!("redis-server did not listen on {port}")
        }

        fn signal(&self, signal: &str) -> anyhow::Result<()> {
            let status =
                std::process::Command::new("kill").arg(format!("-{signal}")).arg(self.0.id().to_string()).status()?;
            anyhow::ensure!(status.success(), "kill -{signal} failed");
            Ok(())
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Writes while Redis hangs neither wait on it nor lose their invalidations: once Redis answers again, the
    /// entries they made stale are dropped before anything is read from it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalidations_while_redis_hangs_are_kept_and_sent_first() -> anyhow::Result<()> {
        let Some(redis) = PrivateRedis::start()? else { return Ok(()) };
        let url = format!("redis://127.0.0.1:{}/", redis.1);
        let cache = pbp_store::cache::RedisCache::connect(&url, "hang:", CacheTtls::default()).await?;
        let (store, _dir) = common::sqlite_store().await?;
        let cached = CachedRepository::new(store, cache).reinvalidate_after(None);
        seed_teams(&cached).await?;
        cached.upsert_games(&[game("hang", "2024-03-17", "2", "19")]).await?;
        cached.upsert_game_states(&[state("hang", GameStatus::In, 10, 1)]).await?;
        assert_eq!(cached.game_state("hang").await?.map(|s| s.plays_applied), Some(10), "now cached");

        redis.signal("STOP")?;
        let started = std::time::Instant::now();
        cached.upsert_game_states(&[state("hang", GameStatus::In, 11, 2)]).await?;
        assert!(started.elapsed() < Duration::from_millis(1500), "the first write waited {:?}", started.elapsed());
        let started = std::time::Instant::now();
        cached.upsert_game_states(&[state("hang", GameStatus::In, 12, 3)]).await?;
        assert!(started.elapsed() < Duration::from_millis(200), "the next write waited {:?}", started.elapsed());
        assert_eq!(cached.game_state("hang").await?.map(|s| s.plays_applied), Some(12), "read from the store");

        redis.signal("CONT")?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // The entry cached before the hang (10) was dropped before this read went to Redis.
        assert_eq!(cached.game_state("hang").await?.map(|s| s.plays_applied), Some(12));
        assert_eq!(cached.game_state("hang").await?.map(|s| s.plays_applied), Some(12), "and cached again");
        cached.cache().ping().await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_fill_racing_a_write_is_dropped_soon() -> anyhow::Result<()> {
        let Some(cache) = common::redis_cache(CacheTtls::default()).await? else { return Ok(()) };
        let (store, _dir) = common::sqlite_store().await?;
        super::a_stale_fill_racing_a_write_is_dropped_soon(CachedRepository::new(store, cache)).await
    }

    #[tokio::test]
    async fn entries_expire_per_kind() -> anyhow::Result<()> {
        let Some(cache) = common::redis_cache(short()).await? else { return Ok(()) };
        super::entries_expire_per_kind(&cache).await
    }

    #[tokio::test]
    async fn groups_share_an_expiry_and_invalidate_whole() -> anyhow::Result<()> {
        let Some(cache) = common::redis_cache(short()).await? else { return Ok(()) };
        super::groups_share_an_expiry_and_invalidate_whole(&cache).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_through_with_ttls_and_invalidation() -> anyhow::Result<()> {
        let Some(cache) = common::redis_cache(short()).await? else { return Ok(()) };
        let (store, _dir) = common::sqlite_store().await?;
        super::read_through_with_ttls_and_invalidation(CachedRepository::new(store, cache).reinvalidate_after(None))
            .await
    }

    #[tokio::test]
    async fn a_ping_answers() -> anyhow::Result<()> {
        let Some(cache) = common::redis_cache(short()).await? else { return Ok(()) };
        cache.ping().await?;
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_typed_error() {
        let err = pbp_store::cache::RedisCache::connect("redis://127.0.0.1:1/", "x:", short()).await;
        assert!(matches!(err, Err(pbp_store::CacheError::Connect(_))), "{err:?}");
    }
}

/// A cache whose server is down: every call fails.
struct DownCache;

#[async_trait::async_trait]
impl Cache for DownCache {
    async fn get(&self, _: &str, _: &str) -> Result<Option<bytes::Bytes>, pbp_store::CacheError> {
        Err(pbp_store::CacheError::Unavailable("down".to_owned()))
    }
    async fn put(&self, _: &str, _: &str, _: &[u8], _: EntryKind) -> Result<(), pbp_store::CacheError> {
        Err(pbp_store::CacheError::Unavailable("down".to_owned()))
    }
    async fn invalidate(&self, _: &[String]) -> Result<(), pbp_store::CacheError> {
        Err(pbp_store::CacheError::Unavailable("down".to_owned()))
    }
    fn ttls(&self) -> CacheTtls {
        short()
    }
    async fn ping(&self) -> Result<(), pbp_store::CacheError> {
        Err(pbp_store::CacheError::Unavailable("down".to_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_is_down_falls_back_to_the_store() -> anyhow::Result<()> {
    let (store, _dir) = common::sqlite_store().await?;
    let cached = CachedRepository::new(store, DownCache);
    assert!(cached.cache().ping().await.is_err());
    seed_teams(&cached).await?;
    cached.upsert_games(&[game("g1", "2024-03-17", "2", "19")]).await?;
    cached.upsert_plays(&[common::play("g1", 1), common::play("g1", 2)]).await?;
    cached.upsert_game_states(&[state("g1", GameStatus::In, 2, 1)]).await?;
    assert_eq!(cached.teams(Some("nba")).await?.len(), 3);
    assert_eq!(cached.games(&Default::default()).await?.len(), 1);
    assert_eq!(cached.game("g1").await?.map(|g| g.id), Some("g1".to_owned()));
    assert_eq!(cached.plays("g1", &Default::default()).await?.len(), 2);
    assert_eq!(cached.last_plays("g1", 1).await?.len(), 1);
    assert_eq!(cached.game_state("g1").await?.map(|s| s.plays_applied), Some(2));
    cached.ping().await?;
    Ok(())
}

#[tokio::test]
async fn the_memory_cache_always_answers_a_ping() -> anyhow::Result<()> {
    MemoryCache::new(short()).ping().await?;
    Ok(())
}
