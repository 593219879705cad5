//! The store's typed errors.

use thiserror::Error;

/// Everything that can go wrong in a repository call. Every variant names the table (and, where one row is at
/// fault, its key) so that a caller can log it or route the input to a dead-letter queue.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A row was refused before reaching the database: it breaks a rule of the schema.
    #[error("invalid {table} row {key}: {reason}")]
    Invalid {
        /// The table the row was meant for.
        table: &'static str,
        /// The row's key, e.g. `401585607/4015856074` for a play.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A row refers to a game that is not stored (foreign key to `games`).
    #[error("{table} row {key} refers to unknown game {game_id}")]
    UnknownGame {
        /// The table the row was meant for.
        table: &'static str,
        /// The row's key.
        key: String,
        /// The missing game id.
        game_id: String,
    },
    /// A game refers to a team that is not stored (foreign key to `teams`).
    #[error("game {game_id} refers to unknown team {team_id} of league {league}")]
    UnknownTeam {
        /// The game's id.
        game_id: String,
        /// The league of the game (teams are keyed by league and id).
        league: String,
        /// The missing team id.
        team_id: String,
    },
    /// The database refused a batch for a constraint not covered by a more precise variant
    /// (e.g. a second play with the same sequence in a game).
    #[error("constraint violated writing {table} (batch starting at {first_key}): {message}")]
    Constraint {
        /// The table written.
        table: &'static str,
        /// Key of the first row of the refused batch.
        first_key: String,
        /// The database's message, naming the constraint.
        message: String,
    },
    /// A stored row could not be read back into its Rust type (the database holds a value the schema allows but
    /// this version does not understand).
    #[error("unreadable {table} row {key}: {reason}")]
    Corrupt {
        /// The table read.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other database error.
    #[error("database error on {table} during {operation}")]
    Database {
        /// The table involved (or `"*"`).
        table: &'static str,
        /// What the store was doing, e.g. `"upsert"`, `"select"`.
        operation: &'static str,
        /// The error from diesel.
        #[source]
        source: diesel::result::Error,
    },
    /// A database connection could not be established.
    #[error("cannot connect to the {backend} database")]
    Connect {
        /// `"postgres"` or `"sqlite"`.
        backend: &'static str,
        /// The error from diesel.
        #[source]
        source: diesel::ConnectionError,
    },
    /// No pooled connection could be obtained (the pool timed out or the database is unreachable).
    #[error("no {backend} connection available from the pool: {message}")]
    Pool {
        /// `"postgres"` or `"sqlite"`.
        backend: &'static str,
        /// The pool's message.
        message: String,
    },
    /// Running the embedded migrations failed.
    #[error("migrations failed on {backend}: {message}")]
    Migration {
        /// `"postgres"` or `"sqlite"`.
        backend: &'static str,
        /// The migration harness's message.
        message: String,
    },
    /// The embedded store's data directory could not be prepared.
    #[error("cannot prepare the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task (migrations) did not complete.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Errors of a cache backend.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The cache server could not be reached.
    #[error("cannot connect to redis")]
    Connect(#[source] redis::RedisError),
    /// The cache server could not be reached or refused a command.
    #[error("redis {operation} on {key} failed")]
    Redis {
        /// The command, e.g. `"GET"`.
        operation: &'static str,
        /// The key involved.
        key: String,
        /// The error from the redis client.
        #[source]
        source: redis::RedisError,
    },
    /// The cache cannot be used now, for a reason the backend gives as text.
    #[error("the cache is unavailable: {0}")]
    Unavailable(String),
    /// A cached value could not be encoded or decoded.
    #[error("cannot {operation} cache entry {key}")]
    Codec {
        /// `"encode"` or `"decode"`.
        operation: &'static str,
        /// The key involved.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
