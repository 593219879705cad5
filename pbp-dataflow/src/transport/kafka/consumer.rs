//! Kafka consumers: a consumer-group member (at-least-once commits, rebalance events) and a group-less
//! reader for tables and state restoration.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use tokio::time::Instant;

use crate::record::{ConsumedRecord, Headers, Origin, RawRecord, TopicPartition};
use crate::transport::{Consumer, Rebalance, TransportError};

/// Rebalance callbacks: queue the change for the pipeline; before partitions are revoked, commit the
/// offsets stored so far (every stored offset is of a finished record).
#[derive(Default)]
pub(super) struct GroupContext {
    events: Mutex<VecDeque<Rebalance>>,
    assignment: Mutex<Vec<TopicPartition>>,
    /// Consumer lag per partition from librdkafka's statistics (`statistics.interval.ms`).
    lag: Mutex<HashMap<TopicPartition, u64>>,
    /// Where each assigned partition starts: its committed offset, or its log start when none.
    start: Mutex<HashMap<TopicPartition, u64>>,
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(error) => tracing::warn!(%error, "Commit before revocation failed."),
            }
            let revoked = partitions_of(tpl);
            self.assignment.lock().retain(|tp| !revoked.contains(tp));
            self.events.lock().push_back(Rebalance::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(tpl) => {
                let assigned = partitions_of(tpl);
                // Runs on the polling thread; two short requests per rebalance.
                let committed = consumer.committed_offsets((*tpl).clone(), Duration::from_secs(10));
                let mut start = self.start.lock();
                for tp in &assigned {
                    let from_commit = committed.as_ref().ok().and_then(|c| {
                        c.find_partition(&tp.topic, tp.partition as i32).and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o.max(0) as u64),
                            _ => None,
                        })
                    });
                    let offset = from_commit.or_else(|| {
                        consumer
                            .fetch_watermarks(&tp.topic, tp.partition as i32, Duration::from_secs(10))
                            .ok()
                            .map(|(low, _)| low.max(0) as u64)
                    });
                    if let Some(o) = offset {
                        start.insert(tp.clone(), o);
                    }
                }
                drop(start);
                self.assignment.lock().extend(assigned.iter().cloned());
                self.events.lock().push_back(Rebalance::Assigned(assigned));
            }
            rdkafka::consumer::Rebalance::Error(error) => tracing::warn!(%error, "Rebalance error."),
            rdkafka::consumer::Rebalance::Revoke(_) => {}
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
    pub(super) consumer: StreamConsumer<GroupContext>,
    /// For high-watermark requests, which block: run off the async threads.
    pub(super) metadata: Arc<BaseConsumer>,
    pub(super) request_timeout: Duration,
    pub(super) progress: Progress,
    /// Partitions paused by `keep_alive`, resumed by the next poll.
    pub(super) paused: Option<TopicPartitionList>,
    /// Records received while paused (already fetched before the pause took effect).
    pub(super) stash: VecDeque<ConsumedRecord>,
}

impl GroupConsumer {
    fn context(&self) -> &GroupContext {
        self.consumer.context()
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
                Err(KafkaError::PartitionEOF(p)) => {
                    self.progress.at_end.insert(p as u32);
                }
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
                Err(KafkaError::PartitionEOF(p)) => {
                    self.progress.at_end.insert(p as u32);
                }
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
            self.progress.at_end.retain(|p| owned.iter().any(|tp| tp.partition == *p));
            self.stash
                .retain(|r| !revoked.iter().any(|tp| tp.partition == r.origin.partition && tp.topic == r.origin.topic));
        }
        change
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.progress.positions.get(partition).copied().or_else(|| self.context().start.lock().get(partition).copied())
    }

    /// Every assigned partition had its end-of-partition event after its last record, and the position is
    /// at or past the broker's high watermark. The watermark can read low (tansu), but being below it
    /// always means unread records, which an end-of-partition event from before they arrived would miss.
    async fn caught_up(&mut self) -> Result<bool, TransportError> {
        let assignment = self.assignment();
        if assignment.is_empty() || !assignment.iter().all(|tp| self.progress.at_end.contains(&tp.partition)) {
            return Ok(false);
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
        // Offsets are committed asynchronously; make sure the last ones land before leaving the group.
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(%error, "Final commit failed."),
        }
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
                Err(KafkaError::PartitionEOF(p)) => {
                    self.progress.at_end.insert(p as u32);
                    // At the end of the partition as the last fetch saw it, the fetch position is that end:
                    // everything below it has been read, gaps left by compaction included.
                    if let Ok(tpl) = self.consumer.position() {
                        for e in tpl.elements() {
                            if e.partition() == p
                                && let Offset::Offset(o) = e.offset()
                                && let Some(pos) =
                                    self.progress.positions.get_mut(&TopicPartition::new(e.topic(), p as u32))
                            {
                                *pos = (*pos).max(o.max(0) as u64);
                            }
                        }
                    }
                }
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
