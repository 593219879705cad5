use std::time::Duration;

use super::*;

fn short() -> CacheTtls {
    CacheTtls {
        live: Duration::from_millis(150),
        finished: Duration::from_secs(60),
        list: Duration::from_millis(150),
        reference: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn memory_entries_expire_with_their_kind() -> Result<(), CacheError> {
    let cache = MemoryCache::new(short());
    cache.put("state:1", "row", b"live", EntryKind::Live).await?;
    cache.put("state:2", "row", b"final", EntryKind::Finished).await?;
    assert_eq!(cache.get("state:1", "row").await?.as_deref(), Some(&b"live"[..]));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(cache.get("state:1", "row").await?, None, "live entry expired");
    assert_eq!(cache.get("state:2", "row").await?.as_deref(), Some(&b"final"[..]), "finished entry lives on");
    Ok(())
}

#[tokio::test]
async fn memory_group_keeps_the_expiry_of_its_first_entry_and_invalidates_whole() -> Result<(), CacheError> {
    let cache = MemoryCache::new(short());
    cache.put("plays:1", "a", b"1", EntryKind::Live).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    cache.put("plays:1", "b", b"2", EntryKind::Live).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(cache.get("plays:1", "b").await?, None, "b expired with its group, 150 ms after a");
    cache.put("plays:1", "a", b"1", EntryKind::Live).await?;
    cache.put("plays:1", "b", b"2", EntryKind::Live).await?;
    cache.put("plays:2", "a", b"3", EntryKind::Live).await?;
    cache.invalidate(&["plays:1".to_owned()]).await?;
    assert_eq!(cache.get("plays:1", "a").await?, None);
    assert_eq!(cache.get("plays:1", "b").await?, None);
    assert_eq!(cache.get("plays:2", "a").await?.as_deref(), Some(&b"3"[..]));
    Ok(())
}

#[tokio::test]
async fn memory_sweeps_expired_groups() -> Result<(), CacheError> {
    let cache = MemoryCache::new(short());
    for i in 0..1000 {
        cache.put(&format!("k{i}"), "f", b"v", EntryKind::Live).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..100 {
        cache.put(&format!("n{i}"), "f", b"v", EntryKind::Finished).await?;
    }
    assert!(cache.len() <= 100, "expired groups swept, {} left", cache.len());
    Ok(())
}

#[test]
fn default_ttls() {
    let t = CacheTtls::default();
    assert_eq!(t.ttl(EntryKind::Live), Duration::from_secs(5));
    assert_eq!(t.ttl(EntryKind::Finished), Duration::from_secs(3600));
}
