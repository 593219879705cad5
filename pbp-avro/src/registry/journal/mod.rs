//! Journals: where a [`RegistryCore`](super::RegistryCore) keeps its changes so that schema ids outlive the
//! process.
//!
//! A registry's state is a short history of changes ([`JournalEntry`]): schemas registered and compatibility
//! levels set. A [`JournalStore`] keeps that history; at start the core replays it, and every later change is
//! appended (durably) before the core applies and acknowledges it. Two stores:
//!
//! * [`FileJournal`]: an append-only file of JSON lines in a data directory, synced on every append.
//! * [`TopicJournal`]: a compacted topic with one partition on a [`Transport`](pbp_dataflow::Transport), as
//!   Confluent's Schema Registry keeps its `_schemas` topic.

mod file;
mod topic;

use serde::{Deserialize, Serialize};

use super::RegistryError;
use super::compat::Compatibility;

pub use file::{FileJournal, JOURNAL_FILE};
pub use topic::{DEFAULT_SCHEMAS_TOPIC, TopicJournal};

/// One change to a registry, as a journal keeps it. Serialized as one JSON object tagged by `op`:
///
/// ```text
/// {"op":"register","subject":"raw.plays-value","version":1,"id":1,"schema":"{...}"}
/// {"op":"config","subject":null,"compatibility":"FULL"}
/// ```
///
/// Entries carry the version and id the registry gave, rather than letting a replay recount them, so that a
/// replay can check they follow on: a gap or a clash means the journal is not the one the ids were given
/// from, which must stop the registry instead of silently renumbering schemas that data was written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalEntry {
    /// A schema registered under a subject.
    Register {
        /// The subject.
        subject: String,
        /// The version under the subject: one more than the subject's previous version, from 1.
        version: u32,
        /// The global id: a new id is one more than the highest so far; an existing id is reused for a
        /// schema with the same canonical form.
        id: u32,
        /// The schema text as first registered.
        schema: String,
    },
    /// A compatibility level set globally (`subject` null) or for a subject. A later entry for the same
    /// subject (or the global level) replaces an earlier one.
    Config {
        /// The subject, or `None` for the global level.
        subject: Option<String>,
        /// The level.
        compatibility: Compatibility,
    },
}

/// Durable storage for a registry's [`JournalEntry`]s.
///
/// A [`RegistryCore`](super::RegistryCore) calls [`replay`](Self::replay) once when it opens the journal, then
/// [`append`](Self::append) for each change, with the core locked, before applying the change. `append` is
/// synchronous and may be called on an async runtime's thread (the embedded registry registers inline in
/// its async methods), so an implementation that does async I/O must not block on the caller's runtime.
///
/// A journal has one writer: two registries appending to the same journal would hand out the same ids for
/// different schemas.
pub trait JournalStore: Send + std::fmt::Debug {
    /// Where the journal is, for logs and errors: a file path, or a topic and its transport.
    fn describe(&self) -> String;

    /// The entries kept so far, in the order to apply them.
    fn replay(&mut self) -> Result<Vec<JournalEntry>, RegistryError>;

    /// Keeps `entry`. Returns `Ok` only once the entry would survive a crash of this process, since the
    /// registry acknowledges the change right after; on an error the change is not applied.
    fn append(&mut self, entry: &JournalEntry) -> Result<(), RegistryError>;
}
