//! A source that reads topics as a member of a consumer group and decodes records with codecs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{DecodeError, Polled, Source};
use crate::codec::{Codec, CodecError};
use crate::error::Error;
use crate::operator::OpenContext;
use crate::record::{ConsumedRecord, Record, TopicPartition};
use crate::transport::{Consumer, ConsumerOptions, Rebalance, TopicSpec};

/// Reads one or more topics in a consumer group, positioned at the group's committed offsets.
///
/// **A codec that waits is not bad data.** When a codec cannot decode a record *yet*
/// ([`CodecError::Unavailable`](crate::CodecError::Unavailable): its schema registry does not answer), the source keeps that record and every one
/// read after it, hands out those before it, and retries [`Codec::prepare`] with a growing backoff (100 ms to 5 s)
/// while keeping its consumer alive in the group; the records follow, in order, once the codec is ready. Nothing is
/// dead-lettered and no offset moves past them meanwhile. Bytes that really cannot be decoded are still handed out
/// as decode errors (the pipeline dead-letters them).
pub struct TopicSource<K, V> {
    options: ConsumerOptions,
    create: Vec<TopicSpec>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    consumer: Option<Box<dyn Consumer>>,
    /// The poll buffer, reused.
    raw: Vec<ConsumedRecord>,
    /// Records read and not handed out yet because a codec waits, in the order they were read; the first is the
    /// one that waits.
    held: VecDeque<ConsumedRecord>,
    /// Set while the first held record waits for its codec.
    waiting: Option<Waiting>,
    /// Why the first held record cannot be decoded at all, as its codec found out while getting ready.
    failed: Option<DecodeError>,
}

/// A record waiting for its codec: when to try again, and how long the wait has lasted.
#[derive(Debug)]
struct Waiting {
    retry_at: Instant,
    backoff: Duration,
    since: Instant,
    attempts: u32,
}

/// What getting a held record's codecs ready found.
enum Readiness {
    /// Decoding can be tried again.
    Ready,
    /// Not yet.
    NotYet,
    /// The bytes cannot be decoded at all: the record is handed out with this error.
    Failed(DecodeError),
}

/// The first and the longest wait between two tries of a waiting codec.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a source whose codec waits keeps its consumer alive.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

impl<K, V> TopicSource<K, V> {
    /// A source reading `topic` as a member of `group`.
    pub fn new(
        topic: impl Into<String>,
        group: impl Into<String>,
        key_codec: impl Codec<K> + 'static,
        value_codec: impl Codec<V> + 'static,
    ) -> Self {
        Self {
            options: ConsumerOptions { group: group.into(), topics: vec![topic.into()] },
            create: Vec::new(),
            key_codec: Arc::new(key_codec),
            value_codec: Arc::new(value_codec),
            consumer: None,
            raw: Vec::new(),
            held: VecDeque::new(),
            waiting: None,
            failed: None,
        }
    }

    /// Also reads `topic` (with the same codecs).
    pub fn and_topic(mut self, topic: impl Into<String>) -> Self {
        self.options.topics.push(topic.into());
        self
    }

    /// Creates the source topics with `partitions` partitions when the pipeline opens, if they do not exist.
    pub fn create_if_missing(mut self, partitions: u32) -> Self {
        self.create = self.options.topics.iter().map(|t| TopicSpec::new(t.clone(), partitions)).collect();
        self
    }

    fn decode(&self, raw: &ConsumedRecord) -> Result<Record<K, V>, DecodeError> {
        let r = &raw.record;
        let key = self.key_codec.decode(r.key.as_ref()).map_err(|source| DecodeError { part: "key", source })?;
        let value =
            self.value_codec.decode(r.value.as_ref()).map_err(|source| DecodeError { part: "value", source })?;
        Ok(Record { key, value, timestamp: r.timestamp, headers: r.headers.clone(), origin: Some(raw.origin.clone()) })
    }

    fn consumer(&mut self) -> Result<&mut Box<dyn Consumer>, Error> {
        self.consumer.as_mut().ok_or_else(|| Error::Config("source polled before it was opened".into()))
    }

    /// Decodes `r` and hands it out, unless its codec cannot decode it yet: then it is returned, to be held with
    /// the records after it.
    fn hand_out_one(&mut self, r: ConsumedRecord, out: &mut Vec<Polled<K, V>>) -> Option<ConsumedRecord> {
        let record = match self.failed.take() {
            Some(error) => Err(error),
            None => self.decode(&r),
        };
        if let Err(DecodeError { source, .. }) = &record
            && source.is_transient()
        {
            if self.waiting.is_none() {
                tracing::warn!(origin = %r.origin, error = %source, "A codec cannot decode yet; holding this record and the ones after it until it can.");
                let now = Instant::now();
                self.waiting = Some(Waiting { retry_at: now, backoff: FIRST_BACKOFF, since: now, attempts: 0 });
            }
            return Some(r);
        }
        out.push(Polled { raw: Some(r), record });
        None
    }

    /// Hands out what the last consumer poll read, in order, holding back everything from the first record whose
    /// codec waits.
    fn hand_out_polled(&mut self, out: &mut Vec<Polled<K, V>>) {
        let mut raw = std::mem::take(&mut self.raw);
        out.reserve(raw.len());
        let mut rest = raw.drain(..);
        for r in rest.by_ref() {
            if let Some(waiting) = self.hand_out_one(r, out) {
                self.held.push_back(waiting);
                break;
            }
        }
        self.held.extend(rest);
        self.raw = raw;
    }

    /// Hands out at most `max` held records, in order, up to the first one whose codec still waits.
    fn hand_out_held(&mut self, max: usize, out: &mut Vec<Polled<K, V>>) {
        for _ in 0..max {
            let Some(r) = self.held.pop_front() else { return };
            if let Some(waiting) = self.hand_out_one(r, out) {
                self.held.push_front(waiting);
                return;
            }
        }
    }

    /// Until `deadline`: tries to get the waiting record's codecs ready, at its backoff, keeping the consumer alive
    /// meanwhile. Returns once they are ready (or failed for good, which decoding then reports) or at the deadline.
    async fn wait_for_codecs(&mut self, deadline: Instant) -> Result<(), Error> {
        let Some(record) = self.held.front().map(|r| r.record.clone()) else {
            self.waiting = None;
            return Ok(());
        };
        let (key_codec, value_codec) = (self.key_codec.clone(), self.value_codec.clone());
        loop {
            let Some(waiting) = self.waiting.as_mut() else { return Ok(()) };
            if Instant::now() >= waiting.retry_at {
                let prepared = async {
                    let part = |part: &'static str| move |source: CodecError| DecodeError { part, source };
                    key_codec.prepare(record.key.as_ref()).await.map_err(part("key"))?;
                    value_codec.prepare(record.value.as_ref()).await.map_err(part("value"))
                };
                tokio::pin!(prepared);
                let prepared = loop {
                    tokio::select! {
                        p = &mut prepared => break p,
                        () = tokio::time::sleep(KEEP_ALIVE_INTERVAL) => self.consumer()?.keep_alive().await?,
                    }
                };
                let Some(waiting) = self.waiting.as_mut() else { return Ok(()) };
                waiting.attempts += 1;
                let readiness = match prepared {
                    Ok(()) => Readiness::Ready,
                    Err(error) if error.source.is_transient() => Readiness::NotYet,
                    Err(error) => Readiness::Failed(error),
                };
                match readiness {
                    Readiness::NotYet => {
                        tracing::debug!(attempts = waiting.attempts, "The codec still cannot decode; retrying.");
                        waiting.retry_at = Instant::now() + waiting.backoff;
                        waiting.backoff = (waiting.backoff * 2).min(MAX_BACKOFF);
                    }
                    Readiness::Ready | Readiness::Failed(_) => {
                        tracing::info!(waited = ?waiting.since.elapsed(), attempts = waiting.attempts, "The codec can decode again; records flow.");
                        self.waiting = None;
                        if let Readiness::Failed(error) = readiness {
                            self.failed = Some(error);
                        }
                        return Ok(());
                    }
                }
            }
            let retry_at = self.waiting.as_ref().map_or(deadline, |w| w.retry_at);
            self.consumer()?.keep_alive().await?;
            if retry_at >= deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return Ok(());
            }
            tokio::time::sleep_until(retry_at.into()).await;
        }
    }
}

#[async_trait]
impl<K: Send + 'static, V: Send + 'static> Source for TopicSource<K, V> {
    type Key = K;
    type Value = V;

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        for spec in &self.create {
            cx.transport.ensure_topic(spec).await?;
        }
        self.consumer = Some(cx.transport.consumer(&self.options).await?);
        Ok(())
    }

    async fn poll(&mut self, max: usize, timeout: Duration, out: &mut Vec<Polled<K, V>>) -> Result<bool, Error> {
        if !self.held.is_empty() {
            if self.waiting.is_some() {
                // Nothing after the waiting record is read: keep the consumer alive while its codec gets ready.
                self.wait_for_codecs(Instant::now() + timeout).await?;
            }
            if self.waiting.is_none() {
                self.hand_out_held(max, out);
            }
            return Ok(true);
        }
        let mut raw = std::mem::take(&mut self.raw);
        let polled = self.consumer()?.poll(max, timeout, &mut raw).await;
        self.raw = raw;
        self.hand_out_polled(out);
        polled?;
        Ok(true)
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), Error> {
        Ok(self.consumer()?.commit(offsets).await?)
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        let change = self.consumer.as_mut().and_then(|c| c.next_rebalance());
        if let Some(Rebalance::Revoked(revoked)) = &change {
            // Held records of revoked partitions belong to their next owner now. What was found out about the first
            // held record is forgotten: the next hand-out decodes (and if need be waits for) the new first one.
            let before = self.held.len();
            self.held
                .retain(|r| !revoked.iter().any(|tp| tp.partition == r.origin.partition && tp.topic == r.origin.topic));
            if self.held.len() != before {
                self.waiting = None;
                self.failed = None;
            }
        }
        change
    }

    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        Ok(self.consumer()?.release(partitions).await?)
    }

    async fn keep_alive(&mut self) -> Result<(), Error> {
        Ok(self.consumer()?.keep_alive().await?)
    }

    async fn caught_up(&mut self) -> Result<bool, Error> {
        Ok(self.consumer()?.caught_up().await?)
    }

    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, Error> {
        Ok(self.consumer()?.lag().await?)
    }
}
