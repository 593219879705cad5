//! The embedded log: an in-process, partitioned, Kafka-shaped log.
//!
//! Named topics with N partitions; keyed records go to the partition Kafka's default partitioner picks
//! ([`partition_for_key`](crate::partitioner::partition_for_key)), null keys round-robin. Every record gets
//! an offset. Consumer groups register on a topic and commit offsets.
//!
//! **Bounded memory.** A partition that one or more groups read holds only the records some group has not
//! committed yet. When those reach the topic's `capacity_bytes`, [`EmbeddedLog::append_batch`] waits until
//! the slowest group commits: a slow consumer slows its producer instead of growing memory. A partition no
//! group reads keeps its newest `capacity_bytes` and drops older records, as Kafka's size retention does.
//! A compacted topic keeps the latest record of each key (a null value is a tombstone that deletes the key
//! for tables); its memory is bounded by its number of keys, so it never blocks a producer.
//!
//! The log lives in memory: it is the transport of one process, not a durable store. Durable state in the
//! embedded mode belongs to the store a pipeline writes to.

mod partition;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::partitioner::partition_for_key;
use crate::record::{ConsumedRecord, Origin, RawRecord};
use partition::PartitionState;

/// Default per-partition memory bound: 64 MiB of keys, values and headers.
pub const DEFAULT_CAPACITY_BYTES: usize = 64 << 20;

/// How a topic is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions (at least 1).
    pub partitions: u32,
    /// Keep only the latest record per key.
    pub compacted: bool,
    /// Per-partition bound on retained bytes; see the module docs.
    pub capacity_bytes: usize,
}

impl TopicConfig {
    /// A regular topic with `partitions` partitions and the default capacity.
    pub fn new(partitions: u32) -> Self {
        Self { partitions, compacted: false, capacity_bytes: DEFAULT_CAPACITY_BYTES }
    }

    /// A compacted topic with `partitions` partitions.
    pub fn compacted(partitions: u32) -> Self {
        Self { compacted: true, ..Self::new(partitions) }
    }

    /// Sets the per-partition capacity in bytes.
    pub fn with_capacity_bytes(mut self, capacity_bytes: usize) -> Self {
        self.capacity_bytes = capacity_bytes;
        self
    }
}

/// Errors of the embedded log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The partition does not exist in the topic.
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
    },
    /// The topic exists with another configuration.
    #[error("topic {topic:?} exists with {existing:?}, not {requested:?}")]
    TopicMismatch {
        /// Topic name.
        topic: String,
        /// Its configuration.
        existing: TopicConfig,
        /// The configuration asked for.
        requested: TopicConfig,
    },
    /// A topic needs at least one partition.
    #[error("topic {0:?} needs at least one partition")]
    NoPartitions(String),
    /// Compacted topics need keys.
    #[error("a record without a key cannot go to compacted topic {0:?}")]
    NullKeyInCompactedTopic(String),
    /// A commit beyond the end of the partition.
    #[error("cannot commit offset {offset} on {topic}[{partition}]: the log ends at {end}")]
    OffsetOutOfRange {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset asked for.
        offset: u64,
        /// Log end offset.
        end: u64,
    },
    /// The group already has an active member; an embedded group has one member at a time.
    #[error("consumer group {0:?} already has an active member on the embedded log")]
    GroupBusy(String),
}

pub(crate) struct Partition {
    pub(crate) state: Mutex<PartitionState>,
    /// Woken when records are evicted, so that blocked producers retry.
    space: Notify,
}

pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) partitions: Vec<Partition>,
    round_robin: AtomicU64,
}

impl Topic {
    fn partition(&self, partition: u32) -> Result<&Partition, LogError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| LogError::UnknownPartition { topic: self.name.to_string(), partition })
    }

    fn choose(&self, record: &RawRecord) -> u32 {
        let n = self.config.partitions;
        match &record.key {
            Some(k) => partition_for_key(k, n),
            None => (self.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(n)) as u32,
        }
    }
}

#[derive(Default)]
struct Inner {
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    active_members: Mutex<std::collections::HashSet<Arc<str>>>,
    /// Woken on every append so that waiting readers look again.
    appended: Notify,
}

/// An in-process partitioned log. Cheap to clone; clones share the same topics.
#[derive(Clone, Default)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<_> = self.inner.topics.read().keys().cloned().collect();
        f.debug_struct("EmbeddedLog").field("topics", &topics).finish()
    }
}

impl EmbeddedLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a topic. Creating an existing topic with the same configuration is a no-op.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), LogError> {
        if config.partitions == 0 {
            return Err(LogError::NoPartitions(name.to_owned()));
        }
        let mut topics = self.inner.topics.write();
        if let Some(t) = topics.get(name) {
            return if t.config == config {
                Ok(())
            } else {
                Err(LogError::TopicMismatch { topic: name.to_owned(), existing: t.config.clone(), requested: config })
            };
        }
        let name: Arc<str> = name.into();
        let partitions =
            (0..config.partitions).map(|_| Partition { state: Mutex::default(), space: Notify::new() }).collect();
        topics.insert(name.clone(), Arc::new(Topic { name, config, partitions, round_robin: AtomicU64::new(0) }));
        Ok(())
    }

    /// The configuration of a topic, if it exists.
    pub fn topic_config(&self, name: &str) -> Option<TopicConfig> {
        self.inner.topics.read().get(name).map(|t| t.config.clone())
    }

    /// Names of all topics.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.topics.read().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        self.inner.topics.read().get(name).cloned().ok_or_else(|| LogError::UnknownTopic(name.to_owned()))
    }

    /// Number of partitions of a topic.
    pub fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        Ok(self.topic(topic)?.config.partitions)
    }

    /// Appends one record; returns its partition and offset. See [`append_batch`](Self::append_batch).
    pub async fn append(&self, topic: &str, partition: Option<u32>, record: RawRecord) -> Result<(u32, u64), LogError> {
        let mut at = (0, 0);
        self.append_each(topic, std::iter::once((partition, record)), |p, o| at = (p, o)).await?;
        Ok(at)
    }

    /// Appends records, each to its given partition or to the one its key picks. Records for one partition
    /// keep their order. Waits while a partition is full (see the module docs); never drops a record that a
    /// registered group has not read.
    pub async fn append_batch<I>(&self, topic: &str, records: I) -> Result<(), LogError>
    where
        I: IntoIterator<Item = (Option<u32>, RawRecord)>,
        I::IntoIter: Send,
    {
        self.append_each(topic, records, |_, _| {}).await
    }

    async fn append_each<I>(
        &self,
        topic: &str,
        records: I,
        mut appended_at: impl FnMut(u32, u64) + Send,
    ) -> Result<(), LogError>
    where
        I: IntoIterator<Item = (Option<u32>, RawRecord)>,
        I::IntoIter: Send,
    {
        let t = self.topic(topic)?;
        let mut records = records.into_iter();
        let mut held: Option<(u32, RawRecord)> = None;
        loop {
            let (appended, blocked) = self.push_until_full(&t, &mut held, &mut records, &mut appended_at)?;
            if appended {
                self.inner.appended.notify_waiters();
            }
            let Some(p) = blocked else { return Ok(()) };
            let part = t.partition(p)?;
            let space = part.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            if Self::is_full(&t, part) {
                space.await;
            }
        }
    }

    /// Appends until a record's partition is full; returns whether anything was appended and the full
    /// partition, if any (its record is left in `held`). Records usually come in runs for one partition, so
    /// the lock of the previous record's partition is kept until the partition changes.
    fn push_until_full(
        &self,
        t: &Topic,
        held: &mut Option<(u32, RawRecord)>,
        records: &mut impl Iterator<Item = (Option<u32>, RawRecord)>,
        appended_at: &mut impl FnMut(u32, u64),
    ) -> Result<(bool, Option<u32>), LogError> {
        let mut current: Option<(u32, parking_lot::MutexGuard<'_, PartitionState>)> = None;
        let mut appended = false;
        let next = |held: &mut Option<(u32, RawRecord)>,
                    records: &mut dyn Iterator<Item = (Option<u32>, RawRecord)>| {
            held.take().or_else(|| records.next().map(|(p, r)| (p.unwrap_or_else(|| t.choose(&r)), r)))
        };
        while let Some((p, record)) = next(held, records) {
            let part = t.partition(p)?;
            if t.config.compacted && record.key.is_none() {
                return Err(LogError::NullKeyInCompactedTopic(t.name.to_string()));
            }
            let guard = match &mut current {
                Some((cp, guard)) if *cp == p => guard,
                _ => {
                    if let Some((_, guard)) = current.take() {
                        Self::finish_run(t, guard);
                    }
                    &mut current.insert((p, part.state.lock())).1
                }
            };
            if !t.config.compacted && !guard.groups.is_empty() && guard.bytes >= t.config.capacity_bytes {
                *held = Some((p, record));
                if let Some((_, guard)) = current.take() {
                    Self::finish_run(t, guard);
                }
                return Ok((appended, Some(p)));
            }
            let offset = guard.push(record);
            appended = true;
            appended_at(p, offset);
        }
        if let Some((_, guard)) = current.take() {
            Self::finish_run(t, guard);
        }
        Ok((appended, None))
    }

    fn is_full(t: &Topic, part: &Partition) -> bool {
        let s = part.state.lock();
        !t.config.compacted && !s.groups.is_empty() && s.bytes >= t.config.capacity_bytes
    }

    /// Retention after a run of appends to one partition.
    fn finish_run(t: &Topic, mut guard: parking_lot::MutexGuard<'_, PartitionState>) {
        if t.config.compacted {
            guard.maybe_compact();
        } else if guard.groups.is_empty() {
            guard.evict_oldest_over(t.config.capacity_bytes);
        }
    }

    /// Copies up to `max` records of one partition, starting at the first offset at or after `from`, into
    /// `out`. Returns the position after the last record read; when nothing is left it returns the log end
    /// offset, so a reader of a compacted partition skips over removed offsets.
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<u64, LogError> {
        let t = self.topic(topic)?;
        read_partition(&t, partition, from, max, out)
    }

    /// The offset the next record appended to the partition will get.
    pub fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let t = self.topic(topic)?;
        Ok(t.partition(partition)?.state.lock().next_offset)
    }

    /// End offsets of all partitions of a topic.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        let t = self.topic(topic)?;
        Ok(t.partitions.iter().map(|p| p.state.lock().next_offset).collect())
    }

    /// The offset of the oldest record still held by the partition.
    pub fn start_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let t = self.topic(topic)?;
        Ok(t.partition(partition)?.state.lock().start_offset())
    }

    /// Registers `group` on every partition of `topic` (if it is not registered yet, at the partition's start
    /// offset, like `auto.offset.reset=earliest`) and returns its committed offsets per partition.
    pub fn register_group(&self, group: &str, topic: &str) -> Result<Vec<u64>, LogError> {
        let t = self.topic(topic)?;
        let group: Arc<str> = group.into();
        Ok(t.partitions
            .iter()
            .map(|p| {
                let mut s = p.state.lock();
                let start = s.start_offset();
                *s.groups.entry(group.clone()).or_insert(start)
            })
            .collect())
    }

    /// Removes a group's registration from a topic, so it no longer holds records back.
    pub fn unregister_group(&self, group: &str, topic: &str) -> Result<(), LogError> {
        let t = self.topic(topic)?;
        for p in &t.partitions {
            let mut s = p.state.lock();
            s.groups.remove(group);
            s.evict_consumed();
            drop(s);
            p.space.notify_waiters();
        }
        Ok(())
    }

    /// The committed offset of `group` on a partition, if the group is registered.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>, LogError> {
        let t = self.topic(topic)?;
        Ok(t.partition(partition)?.state.lock().groups.get(group).copied())
    }

    /// Commits `offset` (the next offset to read) for `group` on a partition, registering the group if
    /// needed; frees records every group has now read and wakes blocked producers.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, offset: u64) -> Result<(), LogError> {
        let t = self.topic(topic)?;
        let p = t.partition(partition)?;
        let mut s = p.state.lock();
        if offset > s.next_offset {
            return Err(LogError::OffsetOutOfRange { topic: topic.to_owned(), partition, offset, end: s.next_offset });
        }
        match s.groups.get_mut(group) {
            Some(c) => *c = offset,
            None => {
                s.groups.insert(group.into(), offset);
            }
        }
        if !t.config.compacted && s.evict_consumed() {
            drop(s);
            p.space.notify_waiters();
        }
        Ok(())
    }

    /// Waits until something is appended anywhere in the log, or `timeout` passes. A caller that must not
    /// miss an append should create the wait with [`appended`](Self::appended) before looking.
    pub async fn wait_for_append(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.appended.notified()).await;
    }

    /// A future that completes at the next append; enable it before checking for records to avoid a race.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.appended.notified()
    }

    pub(crate) fn claim_member(&self, group: &str) -> Result<MemberGuard, LogError> {
        let group: Arc<str> = group.into();
        if !self.inner.active_members.lock().insert(group.clone()) {
            return Err(LogError::GroupBusy(group.to_string()));
        }
        Ok(MemberGuard { log: self.clone(), group })
    }

    /// Bytes currently held by a partition (for tests and metrics).
    pub fn retained_bytes(&self, topic: &str, partition: u32) -> Result<usize, LogError> {
        let t = self.topic(topic)?;
        Ok(t.partition(partition)?.state.lock().bytes)
    }
}

pub(crate) fn read_partition(
    t: &Topic,
    partition: u32,
    from: u64,
    max: usize,
    out: &mut Vec<ConsumedRecord>,
) -> Result<u64, LogError> {
    let s = t.partition(partition)?.state.lock();
    let idx = s.index_of(from);
    let mut position = from.max(s.start_offset());
    for (offset, record) in s.records.range(idx..).take(max) {
        out.push(ConsumedRecord {
            record: record.clone(),
            origin: Origin { topic: t.name.clone(), partition, offset: *offset },
        });
        position = offset + 1;
    }
    if idx.saturating_add(max) >= s.records.len() {
        position = s.next_offset;
    }
    Ok(position)
}

/// Marks a group as having an active member until dropped.
pub(crate) struct MemberGuard {
    log: EmbeddedLog,
    group: Arc<str>,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        self.log.inner.active_members.lock().remove(&self.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(key: &str, value: &str) -> RawRecord {
        RawRecord::new(Some(Bytes::copy_from_slice(key.as_bytes())), Some(Bytes::copy_from_slice(value.as_bytes())))
    }

    #[tokio::test]
    async fn keyed_records_land_where_kafka_puts_them() {
        let log = EmbeddedLog::new();
        log.create_topic("t", TopicConfig::new(12)).unwrap();
        let (p, o) = log.append("t", None, rec("foobar", "x")).await.unwrap();
        assert_eq!(p, partition_for_key(b"foobar", 12));
        assert_eq!(o, 0);
        let mut out = Vec::new();
        let pos = log.read("t", p, 0, 10, &mut out).unwrap();
        assert_eq!(pos, 1);
        assert_eq!(out[0].origin.offset, 0);
        assert_eq!(out[0].record.value.as_deref(), Some(&b"x"[..]));
    }

    #[tokio::test]
    async fn topic_creation_is_idempotent_but_checks_config() {
        let log = EmbeddedLog::new();
        log.create_topic("t", TopicConfig::new(2)).unwrap();
        log.create_topic("t", TopicConfig::new(2)).unwrap();
        assert!(matches!(log.create_topic("t", TopicConfig::new(3)), Err(LogError::TopicMismatch { .. })));
        assert!(matches!(log.create_topic("z", TopicConfig::new(0)), Err(LogError::NoPartitions(_))));
        assert!(matches!(log.append("nope", None, rec("a", "b")).await, Err(LogError::UnknownTopic(_))));
    }

    #[tokio::test]
    async fn compacted_topics_refuse_null_keys() {
        let log = EmbeddedLog::new();
        log.create_topic("c", TopicConfig::compacted(1)).unwrap();
        let r = log.append("c", None, RawRecord::new(None, Some(Bytes::from_static(b"v")))).await;
        assert!(matches!(r, Err(LogError::NullKeyInCompactedTopic(_))));
    }

    #[tokio::test]
    async fn unread_topic_keeps_only_its_capacity() {
        let log = EmbeddedLog::new();
        log.create_topic("t", TopicConfig::new(1).with_capacity_bytes(1000)).unwrap();
        for i in 0..100 {
            log.append("t", Some(0), rec("k", &format!("{i:040}"))).await.unwrap();
        }
        assert!(log.retained_bytes("t", 0).unwrap() <= 1000);
        assert!(log.start_offset("t", 0).unwrap() > 0);
        assert_eq!(log.end_offset("t", 0).unwrap(), 100);
    }

    #[tokio::test]
    async fn full_partition_blocks_producer_until_commit() {
        let log = EmbeddedLog::new();
        log.create_topic("t", TopicConfig::new(1).with_capacity_bytes(500)).unwrap();
        log.register_group("g", "t").unwrap();
        for i in 0..20 {
            log.append("t", Some(0), rec("k", &format!("{i:040}"))).await.unwrap();
            if log.retained_bytes("t", 0).unwrap() >= 500 {
                break;
            }
        }
        let end = log.end_offset("t", 0).unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(50), log.append("t", Some(0), rec("k", "v"))).await;
        assert!(blocked.is_err(), "append must wait while the group has not committed");
        log.commit("g", "t", 0, end).unwrap();
        log.append("t", Some(0), rec("k", "v")).await.unwrap();
        assert_eq!(log.start_offset("t", 0).unwrap(), end);
        assert!(matches!(log.commit("g", "t", 0, 1000), Err(LogError::OffsetOutOfRange { .. })));
    }

    #[test]
    fn one_active_member_per_group() {
        let log = EmbeddedLog::new();
        let a = log.claim_member("g").unwrap();
        assert!(matches!(log.claim_member("g"), Err(LogError::GroupBusy(_))));
        drop(a);
        assert!(log.claim_member("g").is_ok());
    }
}
