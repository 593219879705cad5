//! Opening, reopening and concurrent start-up of the stores.

mod common;

use common::{game, play, seed_teams};
use pbp_store::{PgConfig, PgStore, PlaysQuery, Repository, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_is_created_in_wal_mode_and_reopens_with_its_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("nested").join("pbp-data");
    {
        let store = SqliteStore::open(&data, 2).await?;
        assert_eq!(store.path(), data.join("pbp.sqlite3"));
        seed_teams(&store).await?;
        store.upsert_games(&[game("g1", "2024-03-17", "2", "19")]).await?;
        store.upsert_plays(&(0..10).map(|n| play("g1", n)).collect::<Vec<_>>()).await?;
        assert!(data.join("pbp.sqlite3-wal").exists(), "WAL mode leaves a -wal file beside the database");
    }
    let store = SqliteStore::open(&data, 2).await?;
    assert_eq!(store.plays("g1", &PlaysQuery::default()).await?.len(), 10);
    assert_eq!(store.upsert_plays(&[play("g1", 3)]).await?.unchanged, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_reports_an_unusable_data_dir() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    let err = SqliteStore::open(&file, 1).await;
    assert!(matches!(err, Err(pbp_store::StoreError::DataDir { .. })), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_starting_together_migrate_once() -> anyhow::Result<()> {
    // Several rounds on fresh schemas, several stores each: without the migration lock, concurrent runs of the
    // same CREATE TABLEs collide.
    for _ in 0..5 {
        let Some((url, _schema)) = common::pg_store_unmigrated().await? else { return Ok(()) };
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    PgStore::connect(PgConfig::new(url)).await
                })
            })
            .collect();
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await??);
        }
        seed_teams(&stores[0]).await?;
        assert_eq!(stores[7].teams(Some("nba")).await?.len(), 3);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_is_a_typed_error() {
    let err = PgStore::connect(PgConfig::new("postgres://postgres@127.0.0.1:1/test")).await;
    assert!(matches!(err, Err(pbp_store::StoreError::Connect { backend: "postgres", .. })), "{err:?}");
}
