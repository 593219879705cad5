//! The PostgreSQL store: diesel-async's `AsyncPgConnection` (tokio-postgres, no libpq) behind a bb8 pool.

use std::time::Duration;

use diesel::Connection as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_migrations::MigrationHarness;

use crate::error::{Result, StoreError};
use crate::repo::diesel_impl::{Backend, impl_repository};
use crate::sql::Placeholder;

/// Key of the session-level advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x0070_6270_5f6d_6967; // "pbp_mig"

/// Pool settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// A `postgres://` URL. A schema other than `public` can be chosen with
    /// `?options=-c%20search_path%3Dmy_schema`.
    pub url: String,
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection before failing.
    pub connect_timeout: Duration,
}

impl PgConfig {
    /// Settings for `url` with 8 connections and a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: 8, connect_timeout: Duration::from_secs(10) }
    }
}

/// The PostgreSQL implementation of [`Repository`](crate::Repository).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.state()).finish()
    }
}

impl Backend for PgStore {
    type Conn = AsyncPgConnection;
}

impl PgStore {
    /// Connects, runs the pending embedded migrations, and builds the pool.
    pub async fn connect(config: PgConfig) -> Result<Self> {
        let url = config.url.clone();
        let applied =
            tokio::task::spawn_blocking(move || migrate(&url)).await.map_err(|e| StoreError::Task(e.to_string()))??;
        tracing::info!(backend = "postgres", migrations_applied = applied, "store ready");
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(config.url);
        let pool = Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| StoreError::Pool { backend: "postgres", message: e.to_string() })?;
        Ok(Self { pool })
    }

    /// PostgreSQL serialises conflicting upserts itself: no lock.
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }

    async fn conn(&self) -> Result<PooledConnection<'_, AsyncPgConnection>> {
        self.pool.get().await.map_err(|e| StoreError::Pool { backend: "postgres", message: e.to_string() })
    }
}

/// Runs the pending migrations under a session-level advisory lock: when several processes start at once, one
/// migrates and the others wait, then find nothing pending. Blocking; returns how many were applied.
fn migrate(url: &str) -> Result<usize> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
        .map_err(|source| StoreError::Connect { backend: "postgres", source })?;
    let lock = |sql: String, conn: &mut AsyncConnectionWrapper<AsyncPgConnection>| {
        diesel::RunQueryDsl::execute(diesel::sql_query(sql), conn)
            .map_err(|source| StoreError::from_database("*", "migration lock", source))
    };
    lock(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"), &mut conn)?;
    let applied = conn
        .run_pending_migrations(crate::MIGRATIONS)
        .map(|done| done.len())
        .map_err(|e| StoreError::Migration { backend: "postgres", message: e.to_string() });
    lock(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"), &mut conn)?;
    applied
}

impl_repository!(
    PgStore,
    diesel::pg::Pg,
    Placeholder::Dollar,
    Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"),
    // Writers of a game's plays take their change numbers one after the other. `NO KEY`: the foreign-key checks
    // of game states (`FOR KEY SHARE`) need not wait for it.
    " FOR NO KEY UPDATE"
);
