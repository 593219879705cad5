//! Schema registries: where schemas get their ids.
//!
//! [`SchemaRegistry`] is what a codec needs: register a schema under a subject (after a compatibility check)
//! and look a schema up by id. Three pieces implement or serve it:
//!
//! * [`HttpRegistry`]: a client of the Confluent Schema Registry REST API, with caches.
//! * [`EmbeddedRegistry`]: an in-process registry for the embedded default, optionally durable in a journal
//!   ([`JournalStore`]): a file ([`FileJournal`]) or a compacted topic ([`TopicJournal`]).
//! * [`RegistryApi`]: the Confluent REST API subset over an [`EmbeddedRegistry`], as plain
//!   `(method, path, body) -> (status, body)`; `pbp schema-registry` puts it behind an HTTP server.
//!
//! Compatibility follows Avro's schema-resolution rules through apache-avro's
//! [`SchemaCompatibility`](apache_avro::schema_compatibility::SchemaCompatibility), with Confluent's levels
//! ([`Compatibility`]); see `docs/avro.md`.

mod client;
mod compat;
mod core;
mod embedded;
mod journal;
mod server_core;

use std::sync::Arc;

pub use client::HttpRegistry;
pub use compat::{Compatibility, check_compatibility};
pub use core::{RegisteredSchema, RegistryCore, VersionSelector};
pub use embedded::EmbeddedRegistry;
pub use journal::{DEFAULT_SCHEMAS_TOPIC, FileJournal, JOURNAL_FILE, JournalEntry, JournalStore, TopicJournal};
pub use server_core::{ApiResponse, CONTENT_TYPE, RegistryApi};

/// The subject under which a topic's value schema is registered (Confluent's `TopicNameStrategy`).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Errors of registries and their clients.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The schema is not compatible with the subject's registered schemas at the subject's level.
    #[error("schema is incompatible with subject {subject} at level {level}: {reason}")]
    Incompatible {
        /// The subject.
        subject: String,
        /// The compatibility level checked.
        level: String,
        /// Why, as the checker or the server says.
        reason: String,
    },
    /// No schema has this id.
    #[error("schema id {id} not found")]
    SchemaNotFound {
        /// The id.
        id: u32,
    },
    /// No such subject.
    #[error("subject {subject} not found")]
    SubjectNotFound {
        /// The subject.
        subject: String,
    },
    /// No such version under the subject.
    #[error("version {version} of subject {subject} not found")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {reason}")]
    InvalidSchema {
        /// The parser's message.
        reason: String,
    },
    /// The version is neither a positive integer nor `latest`.
    #[error("invalid version {version}")]
    InvalidVersion {
        /// The text given.
        version: String,
    },
    /// The compatibility level is not one of Confluent's.
    #[error("invalid compatibility level {level}")]
    InvalidCompatibility {
        /// The text given.
        level: String,
    },
    /// An HTTP request to a registry failed before a response came (after the client's retries).
    #[error("request to schema registry {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest_middleware::Error,
    },
    /// The registry answered with an error other than the ones above.
    #[error("schema registry answered {status} (error code {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Confluent error code.
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// The registry's answer could not be understood.
    #[error("unexpected answer from schema registry {url}: {message}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The journal could not be read or written, or holds entries that do not follow on.
    #[error("schema journal {location}: {message}")]
    Journal {
        /// Where the journal is, as [`JournalStore::describe`] says: a file path, or a topic and its transport.
        location: String,
        /// What went wrong.
        message: String,
    },
}

impl RegistryError {
    /// The Confluent error code and HTTP status for this error, as a registry server answers it.
    pub fn confluent_code(&self) -> (u16, i64) {
        match self {
            Self::SubjectNotFound { .. } => (404, 40401),
            Self::VersionNotFound { .. } => (404, 40402),
            Self::SchemaNotFound { .. } => (404, 40403),
            Self::Incompatible { .. } => (409, 409),
            Self::InvalidSchema { .. } => (422, 42201),
            Self::InvalidVersion { .. } => (422, 42202),
            Self::InvalidCompatibility { .. } => (422, 42203),
            Self::Api { status, code, .. } => (*status, *code),
            Self::Journal { .. } => (500, 50001),
            Self::Http { .. } | Self::BadResponse { .. } => (500, 50001),
        }
    }

    /// True when asking again later may succeed: the registry could not be reached, did not answer in time,
    /// answered with a server error or too-many-requests, answered something unreadable, or its journal failed.
    /// False when the registry's answer is final (not found, incompatible, invalid).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { .. } | Self::BadResponse { .. } | Self::Journal { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// What a codec needs from a schema registry.
///
/// Implementations cache: registering the same schema twice, or asking for the same id twice, costs one
/// round trip at most.
#[async_trait::async_trait]
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` under `subject` and returns its global id. A schema already registered under the
    /// subject returns its id; a new one must first pass the subject's compatibility check, else
    /// [`RegistryError::Incompatible`].
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError>;

    /// The schema text with id `id`.
    async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError>;

    /// Whether `schema` may be registered under `subject`: true if the subject has no schema yet or the
    /// schema passes the subject's compatibility level against its latest (or, for transitive levels, all)
    /// versions. `Ok(false)` comes with no reason; [`register`](Self::register) gives one.
    async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError>;

    /// What is known of schema `id` without waiting (a cache, or an in-process registry), for synchronous
    /// callers such as a codec's `decode`, which must never block on a lookup: the schema, or a final answer
    /// such as [`RegistryError::SchemaNotFound`]. `None` means "ask [`schema_by_id`](Self::schema_by_id)". The
    /// default knows nothing without asking.
    fn schema_at_hand(&self, _id: u32) -> Option<Result<Arc<str>, RegistryError>> {
        None
    }
}

/// Runs the future `make` builds to completion on a scoped helper thread with its own current-thread runtime,
/// so that synchronous code can wait for async work whether or not it runs on a runtime's thread (blocking on
/// the caller's own runtime could wait for itself). `Err` says why the helper could not run it.
pub(crate) fn on_helper_thread<'a, F, Fut, R>(make: F) -> Result<R, String>
where
    F: FnOnce() -> Fut + Send + 'a,
    Fut: std::future::Future<Output = R>,
    R: Send,
{
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            Ok(runtime.block_on(make()))
        });
        handle.join().unwrap_or_else(|_| Err("helper thread panicked".to_owned()))
    })
}

#[async_trait::async_trait]
impl<R: SchemaRegistry + ?Sized> SchemaRegistry for Arc<R> {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        (**self).register(subject, schema).await
    }
    async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        (**self).schema_by_id(id).await
    }
    async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        (**self).is_compatible(subject, schema).await
    }
    fn schema_at_hand(&self, id: u32) -> Option<Result<Arc<str>, RegistryError>> {
        (**self).schema_at_hand(id)
    }
}
