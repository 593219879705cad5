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
    /// Any other database error that retrying does not cure: the database refused the statement for what it
    /// holds (a value it cannot store, such as a NUL byte in PostgreSQL text) or for how it was written. Such an
    /// error comes back every time the same rows are written; see [`StoreError::is_transient`].
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
    /// A database error that may pass by itself: the connection was lost, a statement or lock wait timed out,
    /// the transaction lost a serialization conflict or a deadlock, the database is busy, starting up, shutting
    /// down or read-only (a failover). The same write may succeed when retried.
    #[error("transient database error on {table} during {operation}")]
    Transient {
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

impl StoreError {
    /// A diesel error as a typed error: [`StoreError::Transient`] when retrying may help (see
    /// [`is_transient_database_error`]), else [`StoreError::Database`].
    pub(crate) fn from_database(table: &'static str, operation: &'static str, source: diesel::result::Error) -> Self {
        if is_transient_database_error(&source) {
            StoreError::Transient { table, operation, source }
        } else {
            StoreError::Database { table, operation, source }
        }
    }

    /// True when the same call may succeed later without any change to its input: the database or its pool
    /// could not be reached, or the database gave up on the statement for a passing reason
    /// ([`StoreError::Transient`]). Every other error is deterministic: writing the same rows again fails the
    /// same way, so a caller must set the rows at fault aside rather than retry them.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Connect { .. } | StoreError::Pool { .. } | StoreError::Transient { .. })
    }
}

/// Messages of the conditions that pass by themselves and that diesel does not give a kind of their own
/// (PostgreSQL SQLSTATE 40P01, 55P03, 57014, 57P01-57P03, 53xxx; SQLite `SQLITE_BUSY`, `SQLITE_LOCKED`,
/// I/O errors). diesel does not expose PostgreSQL's SQLSTATE, so these are matched on the server's message,
/// which PostgreSQL writes in English unless `lc_messages` says otherwise.
const TRANSIENT_MESSAGES: &[&str] = &[
    "deadlock detected",
    "could not serialize access",
    "canceling statement due to",
    "could not obtain lock",
    "lock timeout",
    "terminating connection",
    "the database system is",
    "too many clients",
    "remaining connection slots",
    "connection slots are reserved",
    "out of memory",
    "out of shared memory",
    "no space left on device",
    "could not extend file",
    "server closed the connection",
    "connection reset",
    "broken pipe",
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
];

/// True for a diesel error that says nothing about the rows written: the connection failed or the database gave
/// up for a passing reason (see [`TRANSIENT_MESSAGES`]). Constraint violations, values the database refuses and
/// statement errors are not transient.
pub(crate) fn is_transient_database_error(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error as E};
    match error {
        E::DatabaseError(kind, info) => match kind {
            Kind::UnableToSendCommand
            | Kind::ClosedConnection
            | Kind::SerializationFailure
            | Kind::ReadOnlyTransaction => true,
            Kind::UniqueViolation
            | Kind::ForeignKeyViolation
            | Kind::NotNullViolation
            | Kind::CheckViolation
            | Kind::RestrictViolation
            | Kind::ExclusionViolation => false,
            _ => {
                let message = info.message().to_ascii_lowercase();
                TRANSIENT_MESSAGES.iter().any(|m| message.contains(m))
            }
        },
        // The transaction manager lost track of the connection's state (typically a connection that broke
        // mid-transaction): a fresh connection will do.
        E::BrokenTransactionManager => true,
        E::RollbackErrorOnCommit { commit_error, .. } => is_transient_database_error(commit_error),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind as Kind, Error as E};

    use super::*;

    fn database(kind: Kind, message: &str) -> E {
        E::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn passing_conditions_are_transient_and_refusals_are_not() {
        let transient = [
            database(Kind::ClosedConnection, "server closed the connection"),
            database(Kind::UnableToSendCommand, "connection refused"),
            database(Kind::SerializationFailure, "could not serialize access due to concurrent update"),
            database(Kind::ReadOnlyTransaction, "cannot execute INSERT in a read-only transaction"),
            database(Kind::Unknown, "deadlock detected"),
            database(Kind::Unknown, "canceling statement due to statement timeout"),
            database(Kind::Unknown, "terminating connection due to administrator command"),
            database(Kind::Unknown, "the database system is starting up"),
            database(Kind::Unknown, "database is locked"),
            E::BrokenTransactionManager,
        ];
        for error in transient {
            let typed = StoreError::from_database("plays", "upsert", error);
            assert!(typed.is_transient(), "{typed:?}");
        }
        let deterministic = [
            database(Kind::UniqueViolation, "duplicate key value violates unique constraint"),
            database(Kind::CheckViolation, "new row violates check constraint"),
            database(Kind::Unknown, "invalid byte sequence for encoding \"UTF8\": 0x00"),
            database(Kind::Unknown, "value out of range"),
            E::NotFound,
        ];
        for error in deterministic {
            let typed = StoreError::from_database("plays", "upsert", error);
            assert!(!typed.is_transient(), "{typed:?}");
            assert!(matches!(typed, StoreError::Database { .. }));
        }
        assert!(StoreError::Pool { backend: "postgres", message: "timed out".into() }.is_transient());
        let invalid = StoreError::Invalid { table: "plays", key: "g/1".into(), reason: "bad".into() };
        assert!(!invalid.is_transient());
    }
}
