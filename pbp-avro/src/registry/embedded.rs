//! The in-process registry of the embedded default.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use pbp_dataflow::Transport;

use super::core::RegistryCore;
use super::journal::{FileJournal, JournalStore, TopicJournal};
use super::{RegistryError, SchemaRegistry};

/// A registry inside the process: a [`RegistryCore`] behind a lock. Clones share the same registry.
///
/// [`EmbeddedRegistry::new`] keeps schemas in memory only. The others keep them in a journal, so ids stay
/// stable across restarts: [`EmbeddedRegistry::open`] in a file under a data directory,
/// [`EmbeddedRegistry::open_topic`] in a compacted topic, [`EmbeddedRegistry::from_journal`] in any
/// [`JournalStore`].
///
/// ```
/// use pbp_avro::registry::{EmbeddedRegistry, SchemaRegistry};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pbp_avro::RegistryError> {
/// let registry = EmbeddedRegistry::new();
/// let id = registry.register("t-value", r#""string""#).await?;
/// assert_eq!(&*registry.schema_by_id(id).await?, r#""string""#);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct EmbeddedRegistry {
    core: Arc<Mutex<RegistryCore>>,
}

impl EmbeddedRegistry {
    /// An empty in-memory registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A durable registry whose journal lives in `data_dir` (created if missing).
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        Self::from_journal(Box::new(FileJournal::open_dir(data_dir)?))
    }

    /// A durable registry whose journal is the compacted topic `topic` on `transport` (created if missing,
    /// with one partition), read to its end now. One registry process should own a topic; see
    /// [`TopicJournal`].
    pub async fn open_topic(transport: Arc<dyn Transport>, topic: &str) -> Result<Self, RegistryError> {
        Self::from_journal(Box::new(TopicJournal::open(transport, topic).await?))
    }

    /// A durable registry over `journal`, replayed now.
    pub fn from_journal(journal: Box<dyn JournalStore>) -> Result<Self, RegistryError> {
        Ok(Self::from_core(RegistryCore::open(journal)?))
    }

    /// Wraps an existing core.
    pub fn from_core(core: RegistryCore) -> Self {
        Self { core: Arc::new(Mutex::new(core)) }
    }

    /// Runs `f` with the core locked.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut RegistryCore) -> R) -> R {
        f(&mut self.core.lock())
    }
}

#[async_trait::async_trait]
impl SchemaRegistry for EmbeddedRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.with_core(|core| core.register(subject, schema)).map(|r| r.id)
    }

    async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.with_core(|core| core.schema(id))
    }

    async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        self.with_core(|core| core.is_compatible(subject, schema)).map(|r| r.is_ok())
    }

    /// In process: every answer is at hand.
    fn schema_at_hand(&self, id: u32) -> Option<Result<Arc<str>, RegistryError>> {
        Some(self.with_core(|core| core.schema(id)))
    }
}
