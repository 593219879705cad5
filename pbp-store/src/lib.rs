//! Storage for Play-by-Play.
//!
//! - [`Repository`]: batched, idempotent upserts of teams, games, plays and game states, and the queries a
//!   server needs, implemented by [`PgStore`] (PostgreSQL through diesel-async and a bb8 pool) and
//!   [`SqliteStore`] (the embedded default: a SQLite file in WAL mode under a data directory).
//! - [`MIGRATIONS`]: the schema (`migrations/` at the repository root), embedded and run on connect by both
//!   stores. The SQL is portable: one folder serves both databases.
//! - [`cache`]: a [`Cache`](cache::Cache) with per-kind TTLs over Redis ([`RedisCache`](cache::RedisCache),
//!   one self-reconnecting multiplexed connection) or in process ([`MemoryCache`](cache::MemoryCache)), and
//!   [`CachedRepository`](cache::CachedRepository), which reads through the cache and invalidates on every write.
//!
//! The crate knows nothing of Kafka, ESPN or Avro: its rows ([`model`]) are its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod model;
pub mod postgres;
mod repo;
mod sql;
pub mod sqlite;

pub use error::{CacheError, StoreError};
pub use model::{
    Coordinate, GameRow, GameStateRow, GameStatus, GamesQuery, PlayChange, PlayPosition, PlayRevision, PlayRow,
    PlaysPage, PlaysPageQuery, PlaysQuery, PlaysWritten, Side, TeamCounters, TeamRow, UpsertOutcome,
};
pub use postgres::{PgConfig, PgStore};
pub use repo::Repository;
pub use sqlite::SqliteStore;

/// The schema's migrations, embedded from the repository's `migrations/` folder.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("../migrations");
