//! Kafka consumers: a consumer-group member (at-least-once commits, rebalance events) and a group-less
//! reader for tables and state restoration.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use tokio::time::Instant;

use crate::record::{ConsumedRecord, Headers, Origin, RawRecord, TopicPartition};
use crate::transport::{Consumer, Rebalance, TransportError};

/// The group member's rebalance handling. An assignment is applied at once and queued for the pipeline. A
/// revocation is only queued: librdkafka keeps the partitions (and the group waits, up to the rebalance timeout,
/// `max.poll.interval.ms`) until the pipeline has finished what it processed of them, flushed its output
/// (changelogs, sinks, dead letters) and committed, and then calls [`Consumer::release`]. librdkafka allows the
/// (un)assign call after the callback returned, as long as it comes within that timeout.
#[derive(Default)]
pub(super) struct GroupContext {
    events: Mutex<VecDeque<Rebalance>>,
    assignment: Mutex<Vec<TopicPartition>>,
    /// Consumer lag per partition from librdkafka's statistics (`statistics.interval.ms`).
    lag: Mutex<HashMap<TopicPartition, u64>>,
    /// Counts rebalance callbacks, so that a release answers only the revocation it was asked for.
    generation: AtomicU64,
    /// The revocation waiting for [`Consumer::release`].
    revoking: Mutex<Option<PendingRevoke>>,
    /// Set while the consumer closes: librdkafka then waits for the revocation inside `close`, so it is answered
    /// at once.
    closing: AtomicBool,
}

/// A revocation handed to the pipeline whose partitions librdkafka still holds.
struct PendingRevoke {
    generation: u64,
    partitions: TopicPartitionList,
}

/// Gives up revoked partitions: `unassign` in the eager protocol (everything was revoked), `incremental_unassign`
/// in the cooperative one.
fn unassign<C: ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    partitions: &TopicPartitionList,
) -> KafkaResult<()> {
    match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(partitions),
        _ => consumer.unassign(),
    }
}

/// librdkafka reports reaching the end of a partition through the error callback too; it is not an error.
fn log_client_error(error: &KafkaError, reason: &str) {
    if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
        tracing::error!(%error, reason, "Kafka client error.");
    }
}

/// The reader's context: end-of-partition events are expected.
pub(super) struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }
}

impl ConsumerContext for ReaderContext {}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = self.lag.lock();
        for (topic, t) in &statistics.topics {
            for (p, partition) in &t.partitions {
                if *p >= 0 && partition.consumer_lag >= 0 {
                    lag.insert(TopicPartition::new(topic.as_str(), *p as u32), partition.consumer_lag as u64);
                }
            }
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition() as u32)).collect()
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let applied = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                if let Err(error) = applied {
                    tracing::error!(%error, "Applying an assignment failed.");
                }
                // librdkafka keeps a partition's pause flag across unassign and assign: a partition paused by
                // `keep_alive` before it was revoked would come back paused and never be fetched again.
                if let Err(error) = consumer.resume(tpl) {
                    tracing::error!(%error, "Resuming newly assigned partitions failed.");
                }
                let assigned = partitions_of(tpl);
                let mut assignment = self.assignment.lock();
                for tp in &assigned {
                    if !assignment.contains(tp) {
                        assignment.push(tp.clone());
                    }
                }
                drop(assignment);
                self.events.lock().push_back(Rebalance::Assigned(assigned));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if !self.closing.load(Ordering::Acquire) => {
                let revoked = partitions_of(tpl);
                tracing::debug!(
                    ?revoked,
                    generation,
                    "Revocation queued; the partitions go once the pipeline released them."
                );
                *self.revoking.lock() = Some(PendingRevoke { generation, partitions: tpl.clone() });
                self.events.lock().push_back(Rebalance::Revoked(revoked));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Closing: what was finished is committed by the consumer's drop; nothing waits for the pipeline.
                if let Err(error) = unassign(consumer, tpl) {
                    tracing::warn!(%error, "Giving up partitions on close failed.");
                }
                let revoked = partitions_of(tpl);
                self.assignment.lock().retain(|tp| !revoked.contains(tp));
            }
            other => {
                // What librdkafka's own handler does with a rebalance error: give everything up and rejoin.
                tracing::warn!(error = %RDKafkaErrorCode::from(other), "Rebalance error; giving up the assignment.");
                if let Err(error) = consumer.unassign() {
                    tracing::warn!(%error, "Unassigning after a rebalance error failed.");
                }
                let revoked = std::mem::take(&mut *self.assignment.lock());
                if !revoked.is_empty() {
                    self.events.lock().push_back(Rebalance::Revoked(revoked));
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(%error, "Offset commit failed; the next commit covers it.");
        }
    }
}

/// Copies a message into a [`ConsumedRecord`], interning topic names.
fn to_record(topics: &mut HashMap<String, Arc<str>>, m: &BorrowedMessage<'_>) -> ConsumedRecord {
    let topic = match topics.get(m.topic()) {
        Some(t) => t.clone(),
        None => {
            let t: Arc<str> = m.topic().into();
            topics.insert(m.topic().to_owned(), t.clone());
            t
        }
    };
    let headers = m
        .headers()
        .map(|hs| hs.iter().map(|h| (h.key, Bytes::copy_from_slice(h.value.unwrap_or_default()))).collect::<Headers>())
        .unwrap_or_default();
    let record = RawRecord {
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice),
        timestamp: m.timestamp().to_millis().unwrap_or_else(crate::record::now_millis),
        headers,
    };
    ConsumedRecord {
        record: Arc::new(record),
        origin: Origin { topic, partition: m.partition() as u32, offset: m.offset() as u64 },
    }
}

/// What a consumer knows of its partitions from the messages and end-of-partition events it received.
#[derive(Default)]
pub(super) struct Progress {
    topics: HashMap<String, Arc<str>>,
    /// Next offset to read, per partition a record was received from.
    positions: HashMap<TopicPartition, u64>,
    /// Partition numbers whose end-of-partition event came after their last record. librdkafka names only
    /// the partition number, so with several topics this is per number.
    at_end: HashSet<u32>,
}

impl Progress {
    /// Notes that partition `p` reached its end: librdkafka's fetch position of `p`, read from `positions` (a
    /// local call), is that end, so everything below it was read, gaps left by compaction included.
    fn reached_end(&mut self, p: i32, positions: KafkaResult<TopicPartitionList>) {
        self.at_end.insert(p as u32);
        if let Ok(tpl) = positions {
            for e in tpl.elements() {
                if e.partition() == p
                    && let Offset::Offset(o) = e.offset()
                {
                    let pos = self.positions.entry(TopicPartition::new(e.topic(), p as u32)).or_default();
                    *pos = (*pos).max(o.max(0) as u64);
                }
            }
        }
    }

    /// Copies a received message and records the progress it means.
    fn accept(&mut self, m: &BorrowedMessage<'_>) -> ConsumedRecord {
        let r = to_record(&mut self.topics, m);
        self.at_end.remove(&r.origin.partition);
        let pos = self.positions.entry(TopicPartition::new(r.origin.topic.clone(), r.origin.partition)).or_default();
        *pos = (*pos).max(r.origin.offset + 1);
        r
    }
}

/// The next message or event of `consumer`: at once if one is queued; otherwise, if nothing was taken yet
/// (`took_some` false), waiting until `deadline`. `None` means the poll is over.
async fn next_event<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    deadline: Instant,
    took_some: bool,
) -> Option<KafkaResult<BorrowedMessage<'_>>> {
    match consumer.recv().now_or_never() {
        Some(r) => Some(r),
        None if took_some || Instant::now() >= deadline => None,
        None => tokio::time::timeout_at(deadline, consumer.recv()).await.ok(),
    }
}

/// A consumer-group member.
pub(super) struct GroupConsumer {
    /// Shared with blocking tasks (a synchronous commit before revoked partitions are released).
    pub(super) consumer: Arc<StreamConsumer<GroupContext>>,
    /// For high-watermark requests, which block: run off the async threads.
    pub(super) metadata: Arc<BaseConsumer>,
    pub(super) request_timeout: Duration,
    pub(super) progress: Progress,
    /// Partitions paused by `keep_alive`, resumed by the next poll.
    pub(super) paused: Option<TopicPartitionList>,
    /// Records received while paused (already fetched before the pause took effect).
    pub(super) stash: VecDeque<ConsumedRecord>,
    /// Where assigned partitions without a received record start: the group's committed offset, or the log
    /// start when none. Learned when needed (`caught_up`), not in the rebalance callback, which runs on the
    /// polling task and must not wait for the broker.
    pub(super) start: HashMap<TopicPartition, u64>,
}

impl GroupConsumer {
    fn context(&self) -> &GroupContext {
        self.consumer.context()
    }

    /// Learns where `partitions` start (committed offsets, else log starts), off the async threads.
    async fn learn_starts(&mut self, partitions: Vec<TopicPartition>) -> Result<(), TransportError> {
        let (consumer, metadata, timeout) = (self.consumer.clone(), self.metadata.clone(), self.request_timeout);
        let starts = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for tp in &partitions {
                tpl.add_partition(&tp.topic, tp.partition as i32);
            }
            let committed = consumer.committed_offsets(tpl, timeout)?;
            let mut starts = Vec::with_capacity(partitions.len());
            for tp in partitions {
                let from_commit =
                    committed.find_partition(&tp.topic, tp.partition as i32).and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o.max(0) as u64),
                        _ => None,
                    });
                let start = match from_commit {
                    Some(o) => o,
                    None => metadata.fetch_watermarks(&tp.topic, tp.partition as i32, timeout)?.0.max(0) as u64,
                };
                starts.push((tp, start));
            }
            KafkaResult::Ok(starts)
        })
        .await
        .map_err(|e| TransportError::client("blocking task", e))?
        .map_err(|e| TransportError::client("committed offsets", e))?;
        self.start.extend(starts);
        Ok(())
    }
}

#[async_trait]
impl Consumer for GroupConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), TransportError> {
        if let Some(tpl) = self.paused.take() {
            // Partitions revoked while paused are no longer ours to resume.
            let owned = self.assignment();
            let mut resume = TopicPartitionList::new();
            for e in tpl.elements() {
                if owned.iter().any(|tp| *tp.topic == *e.topic() && tp.partition == e.partition() as u32) {
                    resume.add_partition(e.topic(), e.partition());
                }
            }
            self.consumer.resume(&resume).map_err(|e| TransportError::client("resuming partitions", e))?;
        }
        let mut taken = 0;
        while taken < max
            && let Some(r) = self.stash.pop_front()
        {
            out.push(r);
            taken += 1;
        }
        let deadline = Instant::now() + timeout;
        let events_before = self.context().events.lock().len();
        while taken < max {
            // A rebalance during this poll: return what we have so the pipeline handles it first.
            if self.context().events.lock().len() > events_before {
                break;
            }
            let Some(next) = next_event(&self.consumer, deadline, taken > 0).await else { break };
            match next {
                Ok(m) => {
                    out.push(self.progress.accept(&m));
                    taken += 1;
                }
                Err(KafkaError::PartitionEOF(p)) => self.progress.reached_end(p, self.consumer.position()),
                Err(error) => {
                    // Errors here are mostly transient (a broker moved, a topic is being created); librdkafka
                    // retries on its own. Report and let the caller poll again.
                    tracing::warn!(%error, "Consumer error.");
                    break;
                }
            }
        }
        Ok(())
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), TransportError> {
        let assignment = self.context().assignment.lock().clone();
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in offsets {
            // Partitions revoked since these records were read belong to another member now; its offsets
            // were committed, as far as they were finished, before the revocation.
            if assignment.contains(tp) {
                tpl.add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(*offset as i64))
                    .map_err(|e| TransportError::client("building the commit", e))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer.store_offsets(&tpl).map_err(|e| TransportError::client("storing offsets", e))?;
        self.consumer.commit(&tpl, CommitMode::Async).map_err(|e| TransportError::client("committing offsets", e))
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.context().assignment.lock().clone()
    }

    async fn keep_alive(&mut self) -> Result<(), TransportError> {
        if self.paused.is_none() {
            let mut tpl = TopicPartitionList::new();
            for tp in self.assignment() {
                tpl.add_partition(&tp.topic, tp.partition as i32);
            }
            self.consumer.pause(&tpl).map_err(|e| TransportError::client("pausing partitions", e))?;
            tracing::debug!(partitions = tpl.count(), "Paused fetching while the pipeline waits on its sink.");
            self.paused = Some(tpl);
        }
        // Polling serves the group protocol (and max.poll.interval.ms); fetching is paused, so only records
        // fetched before the pause can arrive: keep them for the next poll.
        while let Some(next) = self.consumer.recv().now_or_never() {
            match next {
                Ok(m) => self.stash.push_back(self.progress.accept(&m)),
                Err(KafkaError::PartitionEOF(p)) => self.progress.reached_end(p, self.consumer.position()),
                Err(error) => {
                    tracing::warn!(%error, "Consumer error while paused.");
                    break;
                }
            }
        }
        Ok(())
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        let change = self.context().events.lock().pop_front();
        if let Some(Rebalance::Revoked(revoked)) = &change {
            // What this member knew of partitions it no longer owns is stale if they come back later.
            let owned = self.assignment();
            self.progress.positions.retain(|tp, _| !revoked.contains(tp));
            self.start.retain(|tp, _| !revoked.contains(tp));
            self.progress.at_end.retain(|p| owned.iter().any(|tp| tp.partition == *p));
            self.stash
                .retain(|r| !revoked.iter().any(|tp| tp.partition == r.origin.partition && tp.topic == r.origin.topic));
        }
        change
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.progress.positions.get(partition).copied().or_else(|| self.start.get(partition).copied())
    }

    /// Commits synchronously what the pipeline committed (off the async threads), then gives the partitions up,
    /// unless a later rebalance superseded the revocation.
    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), TransportError> {
        let Some(pending) = self.context().revoking.lock().take() else { return Ok(()) };
        if pending.generation != self.context().generation.load(Ordering::Acquire) {
            // A later rebalance (librdkafka may rejoin without waiting, e.g. on a metadata change) already decided
            // about these partitions: giving them up now could drop a fresh assignment.
            tracing::debug!(?partitions, "Revocation superseded by a later rebalance; nothing to release.");
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let revoked = partitions_of(&pending.partitions);
        tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(error) => tracing::warn!(%error, "Commit before releasing partitions failed."),
            }
            unassign(&*consumer, &pending.partitions)
        })
        .await
        .map_err(|e| TransportError::client("blocking task", e))?
        .map_err(|e| TransportError::client("releasing revoked partitions", e))?;
        self.context().assignment.lock().retain(|tp| !revoked.contains(tp));
        tracing::info!(?revoked, "Revoked partitions released.");
        Ok(())
    }

    /// Every assigned partition had its end-of-partition event after its last record, and the position is
    /// at or past the broker's high watermark. The watermark can read low (tansu), but being below it
    /// always means unread records, which an end-of-partition event from before they arrived would miss.
    async fn caught_up(&mut self) -> Result<bool, TransportError> {
        let assignment = self.assignment();
        if assignment.is_empty() || !assignment.iter().all(|tp| self.progress.at_end.contains(&tp.partition)) {
            return Ok(false);
        }
        let unknown: Vec<TopicPartition> =
            assignment.iter().filter(|tp| self.position(tp).is_none()).cloned().collect();
        if !unknown.is_empty() {
            self.learn_starts(unknown).await?;
        }
        for tp in assignment {
            let (metadata, timeout, topic) = (self.metadata.clone(), self.request_timeout, tp.topic.to_string());
            let (_, high) =
                tokio::task::spawn_blocking(move || metadata.fetch_watermarks(&topic, tp.partition as i32, timeout))
                    .await
                    .map_err(|e| TransportError::client("blocking task", e))?
                    .map_err(|e| TransportError::client("high watermark", e))?;
            let position = self.position(&tp).unwrap_or(0);
            if position < high.max(0) as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, TransportError> {
        let assignment = self.assignment();
        let lag = self.context().lag.lock();
        Ok(assignment.into_iter().filter_map(|tp| lag.get(&tp).map(|l| (tp, *l))).collect())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.context().closing.store(true, Ordering::Release);
        off_the_async_threads(|| {
            // Offsets are committed asynchronously; make sure the last ones land before leaving the group.
            match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(error) => tracing::warn!(%error, "Final commit failed."),
            }
        });
        // A revocation the pipeline never released (it stopped first) would hold the close up.
        if let Some(pending) = self.context().revoking.lock().take()
            && let Err(error) = unassign(&*self.consumer, &pending.partitions)
        {
            tracing::warn!(%error, "Giving up revoked partitions on close failed.");
        }
    }
}

/// Runs a blocking broker call from synchronous code (a `Drop`): on a multi-threaded Tokio runtime the worker's
/// other tasks move to other threads first; elsewhere it simply runs.
fn off_the_async_threads<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Reads assigned partitions from the beginning, without a group. Knows when it reached the end of a
/// partition from librdkafka's end-of-partition events, so gaps left by compaction do not stall it.
pub(super) struct Reader {
    pub(super) consumer: StreamConsumer<ReaderContext>,
    /// Starts with each assigned partition at its log start offset.
    pub(super) progress: Progress,
    pub(super) pending: VecDeque<Rebalance>,
    /// When the position first passed the end a caller waits for, per partition.
    past_end_since: Mutex<HashMap<TopicPartition, std::time::Instant>>,
}

impl Reader {
    pub(super) fn new(consumer: StreamConsumer<ReaderContext>, starts: HashMap<TopicPartition, u64>) -> Self {
        let assigned = starts.keys().cloned().collect();
        Self {
            consumer,
            progress: Progress { positions: starts, ..Progress::default() },
            pending: VecDeque::from([Rebalance::Assigned(assigned)]),
            past_end_since: Mutex::default(),
        }
    }
}

#[async_trait]
impl Consumer for Reader {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + timeout;
        let mut taken = 0;
        while taken < max {
            let Some(next) = next_event(&self.consumer, deadline, taken > 0).await else { break };
            match next {
                Ok(m) => {
                    out.push(self.progress.accept(&m));
                    taken += 1;
                }
                Err(KafkaError::PartitionEOF(p)) => self.progress.reached_end(p, self.consumer.position()),
                Err(error) => {
                    tracing::warn!(%error, "Reader error.");
                    break;
                }
            }
        }
        Ok(())
    }

    async fn commit(&mut self, _offsets: &[(TopicPartition, u64)]) -> Result<(), TransportError> {
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.progress.positions.keys().cloned().collect()
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        self.pending.pop_front()
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.progress.positions.get(partition).copied()
    }

    /// The high watermark can read low on some brokers (tansu reports the base offset of the last batch
    /// plus one), so being past it is not enough: the partition's end-of-partition event must have come
    /// after its last record. librdkafka raises it only once every batch below the fetch response's high
    /// watermark was delivered, which includes the whole last batch.
    ///
    /// A partition written without pause may never show its end. Once the position is beyond `end` and
    /// records have kept coming for a second, records appended after `end` was taken are being read, and
    /// the log delivers in order: everything that existed then has been read.
    fn reached(&self, partition: &TopicPartition, end: u64) -> bool {
        let Some(position) = self.position(partition) else { return false };
        if position >= end && self.progress.at_end.contains(&partition.partition) {
            return true;
        }
        if position > end {
            let mut since = self.past_end_since.lock();
            let first = *since.entry(partition.clone()).or_insert_with(std::time::Instant::now);
            return first.elapsed() >= Duration::from_secs(1);
        }
        false
    }

    async fn caught_up(&mut self) -> Result<bool, TransportError> {
        Ok(self.progress.positions.keys().all(|tp| self.progress.at_end.contains(&tp.partition)))
    }

    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, TransportError> {
        Ok(Vec::new())
    }
}
