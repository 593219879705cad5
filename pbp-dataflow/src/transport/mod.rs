//! The transport seam: what a pipeline needs from a log, so that the same pipeline runs on the embedded log
//! or on Kafka by configuration only.
//!
//! Three roles:
//! - a [`Producer`] appends records and reports when they are durably acknowledged ([`Producer::flush`]);
//! - a group [`Consumer`] reads the partitions assigned to its member and commits offsets;
//! - a [`Consumer`] opened with [`Transport::reader`] reads partitions from the beginning without a group,
//!   for tables and state restoration.
//!
//! ## Backpressure contract
//! [`Producer::send`] returns once the transport has *accepted* the records; it waits (never drops, never
//! errors) while the transport is full: on the embedded log while the slowest registered group is
//! `capacity_bytes` behind, on Kafka while the client's queue is full. Acceptance is not durability:
//! only a successful [`Producer::flush`] means every accepted record is acknowledged, and a pipeline
//! commits source offsets only after that.

mod config;
mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::record::{ConsumedRecord, RawRecord, TopicPartition};

pub use config::TransportConfig;
pub use embedded::EmbeddedTransport;

/// A boxed error from a transport implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The embedded log refused the operation.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// A broker or client error, with what was being done.
    #[error("{context}")]
    Client {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl TransportError {
    /// A client error with context.
    pub fn client(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Client { context: context.into(), source: source.into() }
    }
}

/// What a topic should look like when a pipeline makes sure it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Compacted (`cleanup.policy=compact`).
    pub compacted: bool,
}

impl TopicSpec {
    /// A regular topic.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self { name: name.into(), partitions, compacted: false }
    }

    /// A compacted topic.
    pub fn compacted(name: impl Into<String>, partitions: u32) -> Self {
        Self { name: name.into(), partitions, compacted: true }
    }
}

/// A record to append, with an optional explicit partition. Without one, the transport uses Kafka's
/// default partitioner on the key (null keys are spread).
#[derive(Debug, Clone)]
pub struct OutgoingRecord {
    /// Explicit partition, if any.
    pub partition: Option<u32>,
    /// The record.
    pub record: RawRecord,
}

impl From<RawRecord> for OutgoingRecord {
    fn from(record: RawRecord) -> Self {
        Self { partition: None, record }
    }
}

/// A change of the partitions a group member owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// The member now owns these partitions too.
    Assigned(Vec<TopicPartition>),
    /// The member no longer owns these partitions.
    Revoked(Vec<TopicPartition>),
}

/// Options of a group consumer.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Group id.
    pub group: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
}

/// Appends records to topics.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Hands the records for `topic` to the transport, draining `records` (its allocation is kept for
    /// reuse); see the module's backpressure contract.
    async fn send(&self, topic: &str, records: &mut Vec<OutgoingRecord>) -> Result<(), TransportError>;

    /// Waits until every record sent so far through this producer is acknowledged, or fails if one was not.
    async fn flush(&self) -> Result<(), TransportError>;
}

/// Reads records from a set of partitions.
#[async_trait]
pub trait Consumer: Send {
    /// Waits up to `timeout` for records and appends at most `max` of them to `out`, in offset order per
    /// partition. Cancel-safe: if the future is dropped, no record is lost.
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), TransportError>;

    /// Commits, for each partition, the offset of the next record to read. A reader without a group ignores
    /// commits.
    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), TransportError>;

    /// Partitions currently owned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Called once the pipeline has handled a [`Rebalance::Revoked`]: it finished what it processed of those
    /// partitions, its output is acknowledged and its offsets are committed. A transport whose group waits for
    /// that (Kafka: the revoked partitions are kept until this call) gives the partitions up here; they stay in
    /// [`assignment`](Self::assignment) until then, so that the pipeline's last commit of them is accepted. The
    /// default does nothing.
    async fn release(&mut self, _partitions: &[TopicPartition]) -> Result<(), TransportError> {
        Ok(())
    }

    /// The next pending change of assignment, if any. The pipeline handles it before processing records of
    /// newly assigned partitions (restoring state); for revoked ones it commits what it finished and then calls
    /// [`release`](Self::release).
    fn next_rebalance(&mut self) -> Option<Rebalance>;

    /// The consumer's position (next offset to read) on an owned partition.
    fn position(&self, partition: &TopicPartition) -> Option<u64>;

    /// True once everything of `partition` below `end` has been read. The default compares the position;
    /// a transport whose end offsets can read low (tansu's high watermark trails the last batch) also
    /// requires its own end-of-partition signal.
    fn reached(&self, partition: &TopicPartition, end: u64) -> bool {
        self.position(partition).is_some_and(|p| p >= end)
    }

    /// Called while the pipeline waits on a slow sink instead of polling: stop fetching (pause the owned
    /// partitions) and keep the consumer alive in its group. Records that arrive meanwhile are kept and
    /// returned by the next [`poll`](Self::poll), which resumes fetching. The default does nothing, which is
    /// right for a consumer that fetches only when polled.
    async fn keep_alive(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// True when the consumer owns partitions and has read each of them to its current end, so that a
    /// poll would return nothing now. Used to run a pipeline until it is idle.
    async fn caught_up(&mut self) -> Result<bool, TransportError>;

    /// Records between the position and the partition end, per owned partition, as last observed.
    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, TransportError>;
}

/// A log a pipeline runs on: the embedded log or a Kafka cluster.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs and metrics (`embedded`, `kafka`).
    fn kind(&self) -> &'static str;

    /// Creates the topic if it does not exist; returns its partition count.
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<u32, TransportError>;

    /// Number of partitions of an existing topic.
    async fn partitions(&self, topic: &str) -> Result<u32, TransportError>;

    /// A producer.
    fn producer(&self) -> Result<Arc<dyn Producer>, TransportError>;

    /// A member of a consumer group subscribed to topics, positioned at the group's committed offsets
    /// (earliest when none).
    async fn consumer(&self, options: &ConsumerOptions) -> Result<Box<dyn Consumer>, TransportError>;

    /// A reader of the given partitions of `topic` (all when `None`) from the beginning, without a group.
    async fn reader(&self, topic: &str, partitions: Option<&[u32]>) -> Result<Box<dyn Consumer>, TransportError>;

    /// The exact end offset (the offset the next record will get) of each listed partition, as of now.
    /// Tables and state stores read up to these offsets before processing starts (the bootstrap barrier).
    async fn end_offsets(&self, topic: &str, partitions: &[u32]) -> Result<Vec<u64>, TransportError>;
}

/// Reads the listed partitions of `topic` from the beginning up to their end offsets as of the call (the
/// bootstrap barrier), handing each record to `apply` in offset order per partition.
pub async fn read_to_end(
    transport: &dyn Transport,
    topic: &str,
    partitions: &[u32],
    mut apply: impl FnMut(ConsumedRecord) + Send,
) -> Result<Vec<u64>, TransportError> {
    let ends = transport.end_offsets(topic, partitions).await?;
    let mut reader = transport.reader(topic, Some(partitions)).await?;
    read_until(reader.as_mut(), topic, partitions, &ends, |r| {
        apply(r);
        Ok::<(), TransportError>(())
    })
    .await?;
    Ok(ends)
}

/// Polls `reader` until it has [`reached`](Consumer::reached) `ends` on every listed partition, handing each
/// record to `apply`; stops at the first error `apply` returns.
pub async fn read_until<E: From<TransportError>>(
    reader: &mut dyn Consumer,
    topic: &str,
    partitions: &[u32],
    ends: &[u64],
    mut apply: impl FnMut(ConsumedRecord) -> Result<(), E> + Send,
) -> Result<(), E> {
    let topic: std::sync::Arc<str> = topic.into();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let done =
            partitions.iter().zip(ends).all(|(p, end)| reader.reached(&TopicPartition::new(topic.clone(), *p), *end));
        if done {
            return Ok(());
        }
        reader.poll(4096, Duration::from_millis(200), &mut buf).await?;
        for r in buf.drain(..) {
            apply(r)?;
        }
        // A reader with records queued answers at once, so this loop would never give the thread up while it
        // reads a long changelog: yield, so that what runs beside it (the pipeline keeping its source alive in
        // the group) gets its turn.
        tokio::task::yield_now().await;
    }
}
