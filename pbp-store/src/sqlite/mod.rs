//! The embedded store: SQLite (bundled) through diesel and diesel-async's `SyncConnectionWrapper`, in one file
//! under a data directory, in WAL mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::{Connection as _, SqliteConnection};
use diesel_async::SimpleAsyncConnection as _;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_migrations::MigrationHarness;

use crate::error::{Result, StoreError};
use crate::repo::diesel_impl::{Backend, impl_repository};
use crate::sql::Placeholder;

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "pbp.sqlite3";

/// Per-connection settings: foreign keys are off by default in SQLite; a writer waits for another rather than
/// failing at once; WAL makes `synchronous = NORMAL` safe against corruption. No connection checkpoints the WAL
/// on commit (`wal_autocheckpoint = 0`): the store's checkpointer thread does, so that no write waits for the
/// checkpoint's copy and `fsync` (tens of milliseconds on a slow disk, every thousand pages written).
const CONNECTION_PRAGMAS: &str = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;";

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// The embedded implementation of [`Repository`](crate::Repository).
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Conn>,
    path: PathBuf,
    /// SQLite has one writer at a time, and a transaction that reads before it writes cannot wait for the write
    /// lock (it fails with `SQLITE_BUSY`): the store's own writers queue here instead.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Alive while any clone of the store is: the checkpointer thread stops when it is gone.
    _alive: std::sync::Arc<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("pool", &self.pool.state()).finish()
    }
}

impl Backend for SqliteStore {
    type Conn = Conn;
}

impl SqliteStore {
    /// Opens (creating if missing) `data_dir/pbp.sqlite3`, switches it to WAL, runs the pending embedded
    /// migrations and builds a pool of `max_connections` connections.
    pub async fn open(data_dir: impl AsRef<Path>, max_connections: u32) -> Result<Self> {
        let dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
        let path = dir.join(DATABASE_FILE);
        let url = path
            .to_str()
            .ok_or_else(|| StoreError::DataDir {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
            })?
            .to_owned();
        let setup_url = url.clone();
        let applied = tokio::task::spawn_blocking(move || -> Result<usize> {
            let mut conn = SqliteConnection::establish(&setup_url)
                .map_err(|source| StoreError::Connect { backend: "sqlite", source })?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!("PRAGMA journal_mode = WAL; {CONNECTION_PRAGMAS}"),
            )
            .map_err(|source| StoreError::from_database("*", "configure", source))?;
            let done = conn
                .run_pending_migrations(crate::MIGRATIONS)
                .map_err(|e| StoreError::Migration { backend: "sqlite", message: e.to_string() })?;
            Ok(done.len())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        tracing::info!(backend = "sqlite", path = %path.display(), migrations_applied = applied, "store ready");
        let mut config = ManagerConfig::<Conn>::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = <Conn as diesel_async::AsyncConnection>::establish(&url).await?;
                conn.batch_execute(CONNECTION_PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url.clone(), config);
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)
            .await
            .map_err(|e| StoreError::Pool { backend: "sqlite", message: e.to_string() })?;
        let alive = std::sync::Arc::new(());
        spawn_checkpointer(&url, std::sync::Arc::downgrade(&alive))?;
        Ok(Self { pool, path, writer: Default::default(), _alive: alive })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.writer.lock().await)
    }

    async fn conn(&self) -> Result<PooledConnection<'_, Conn>> {
        self.pool.get().await.map_err(|e| StoreError::Pool { backend: "sqlite", message: e.to_string() })
    }
}

/// Starts the thread that checkpoints the WAL every [`CHECKPOINT_INTERVAL`] on a connection of its own, as long
/// as `alive` can be upgraded, and once more at the end. `PASSIVE` checkpoints never wait for readers or writers:
/// they copy what they can and leave the rest for the next round.
fn spawn_checkpointer(url: &str, alive: std::sync::Weak<()>) -> Result<()> {
    let mut conn =
        SqliteConnection::establish(url).map_err(|source| StoreError::Connect { backend: "sqlite", source })?;
    diesel::connection::SimpleConnection::batch_execute(&mut conn, CONNECTION_PRAGMAS)
        .map_err(|source| StoreError::from_database("*", "configure", source))?;
    let checkpoint = move |conn: &mut SqliteConnection| {
        if let Err(error) = diesel::connection::SimpleConnection::batch_execute(conn, "PRAGMA wal_checkpoint(PASSIVE);")
        {
            tracing::warn!(%error, "WAL checkpoint failed; retrying at the next round.");
        }
    };
    std::thread::Builder::new()
        .name("pbp-sqlite-checkpoint".to_owned())
        .spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                checkpoint(&mut conn);
            }
            checkpoint(&mut conn);
        })
        .map_err(|e| StoreError::Task(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

impl_repository!(SqliteStore, diesel::sqlite::Sqlite, Placeholder::Question, None::<&str>, "");
