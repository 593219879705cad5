//! The dead-letter queue: where rejected records go, with why, and the limit that stops a pipeline rather
//! than dead-letter all of its input after a bad deploy.
//!
//! A dead-letter record keeps the original key and value bytes and headers, plus Kafka Streams' KIP-1034
//! headers ([`EXCEPTION`], [`MESSAGE`], [`TOPIC`], [`PARTITION`], [`OFFSET`]) and our [`STAGE`]. It goes to
//! the partition its key picks, like any record.

mod limit;

use std::sync::Arc;

use bytes::Bytes;

pub use limit::DlqLimit;
use limit::LimitTracker;

use crate::error::Error;
use crate::metrics::DataflowMetrics;
use crate::operator::OpenContext;
use crate::outcome::Rejection;
use crate::record::{ConsumedRecord, Headers, RawRecord, now_millis};
use crate::transport::{OutgoingRecord, Producer, TopicSpec};

/// Header with the kind of error (an error type name).
pub const EXCEPTION: &str = "__streams.errors.exception";
/// Header with the error message.
pub const MESSAGE: &str = "__streams.errors.message";
/// Header with the topic the record was read from.
pub const TOPIC: &str = "__streams.errors.topic";
/// Header with the partition the record was read from (decimal text).
pub const PARTITION: &str = "__streams.errors.partition";
/// Header with the offset of the record (decimal text).
pub const OFFSET: &str = "__streams.errors.offset";
/// Header with the pipeline stage that rejected the record (ours; KIP-1034 has none).
pub const STAGE: &str = "__streams.errors.stage";
/// Header with the pipeline's name (ours).
pub const PIPELINE: &str = "__streams.errors.pipeline";

/// Where a pipeline's rejected records go.
pub struct DeadLetterQueue {
    topic: String,
    partitions: u32,
    limit: LimitTracker,
    producer: Option<Arc<dyn Producer>>,
    pipeline: Arc<str>,
    pending: Vec<OutgoingRecord>,
    counts: Vec<(Arc<str>, u64)>,
}

impl DeadLetterQueue {
    /// A dead-letter queue writing to `topic` (created with one partition when missing) with the default
    /// [`DlqLimit`].
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partitions: 1,
            limit: LimitTracker::new(DlqLimit::default()),
            producer: None,
            pipeline: Arc::from(""),
            pending: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Sets the limit.
    pub fn with_limit(mut self, limit: DlqLimit) -> Self {
        self.limit = LimitTracker::new(limit);
        self
    }

    /// Partitions to create the topic with when it is missing.
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        cx.transport.ensure_topic(&TopicSpec::new(self.topic.clone(), self.partitions)).await?;
        self.producer = Some(cx.transport.producer()?);
        self.pipeline = cx.pipeline.clone();
        Ok(())
    }

    /// Counts the outcomes of a batch's records for the limit, in the order the records came (`true`: rejected),
    /// and checks the limit after each. `Err` says why the limit is exceeded.
    pub(crate) fn count_outcomes(&mut self, rejected: &[bool]) -> Result<(), String> {
        self.limit.count(rejected)
    }

    /// Would counting `rejected` exceed the limit? Counts on a copy; the limit's own counts do not change.
    pub(crate) fn check_outcomes(&self, rejected: &[bool]) -> Result<(), String> {
        if rejected.iter().any(|r| *r) { self.limit.clone().count(rejected) } else { Ok(()) }
    }

    /// Queues the dead-letter copy of a rejected record. The limit counts it with the batch's other outcomes
    /// ([`count_outcomes`](Self::count_outcomes)).
    pub(crate) fn reject(&mut self, raw: Option<&ConsumedRecord>, rejection: &Rejection) {
        self.pending.push(OutgoingRecord { partition: None, record: dead_letter(&self.pipeline, raw, rejection) });
        match self.counts.iter_mut().find(|(s, _)| *s == rejection.stage) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((rejection.stage.clone(), 1)),
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands queued dead letters to the transport.
    pub(crate) async fn send_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let producer = self.producer.clone().ok_or_else(|| Error::Config("dead-letter queue not opened".into()))?;
        producer.send(&self.topic, &mut self.pending).await?;
        Ok(())
    }

    /// Waits until every dead letter handed over is acknowledged.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        self.send_pending().await?;
        if let Some(p) = &self.producer {
            p.flush().await?;
        }
        Ok(())
    }

    pub(crate) fn report(&mut self, pipeline: &str, metrics: &DataflowMetrics) {
        for (stage, n) in self.counts.drain(..) {
            metrics.dlq_messages.get_or_create(&metrics.stage(pipeline, &stage)).inc_by(n);
        }
    }
}

/// Builds the dead-letter copy of a record: original key, value and headers, plus the error headers.
pub fn dead_letter(pipeline: &str, raw: Option<&ConsumedRecord>, rejection: &Rejection) -> RawRecord {
    let (key, value, timestamp, mut headers) = match raw {
        Some(r) => (r.record.key.clone(), r.record.value.clone(), r.record.timestamp, r.record.headers.clone()),
        None => (None, None, now_millis(), Headers::new()),
    };
    headers.insert(EXCEPTION, Bytes::from(rejection.exception.to_string()));
    headers.insert(MESSAGE, Bytes::from(rejection.message.clone()));
    if let Some(r) = raw {
        headers.insert(TOPIC, Bytes::from(r.origin.topic.to_string()));
        headers.insert(PARTITION, Bytes::from(r.origin.partition.to_string()));
        headers.insert(OFFSET, Bytes::from(r.origin.offset.to_string()));
    }
    headers.insert(STAGE, Bytes::from(rejection.stage.to_string()));
    headers.insert(PIPELINE, Bytes::from(pipeline.to_owned()));
    RawRecord { key, value, timestamp, headers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;

    #[test]
    fn dead_letter_keeps_bytes_and_names_the_error() {
        let raw = ConsumedRecord {
            record: Arc::new(RawRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{bad")),
                timestamp: 42,
                headers: Headers::new().with("trace", "t1"),
            }),
            origin: Origin { topic: "raw.plays".into(), partition: 3, offset: 17 },
        };
        let mut rej = Rejection::new("CodecError", "json: EOF");
        rej.stage = "deserialize".into();
        let dl = dead_letter("enrich", Some(&raw), &rej);
        assert_eq!(dl.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(dl.value.as_deref(), Some(&b"{bad"[..]));
        assert_eq!(dl.timestamp, 42);
        let h = &dl.headers;
        // The names other Kafka tools look for (KIP-1034), spelled out once.
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        for name in [
            "__streams.errors.exception",
            "__streams.errors.message",
            "__streams.errors.topic",
            "__streams.errors.partition",
            "__streams.errors.offset",
            "__streams.errors.stage",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert_eq!(h.get_str("trace"), Some("t1"));
        assert_eq!(h.get_str(EXCEPTION), Some("CodecError"));
        assert_eq!(h.get_str(MESSAGE), Some("json: EOF"));
        assert_eq!(h.get_str(TOPIC), Some("raw.plays"));
        assert_eq!(h.get_str(PARTITION), Some("3"));
        assert_eq!(h.get_str(OFFSET), Some("17"));
        assert_eq!(h.get_str(STAGE), Some("deserialize"));
        assert_eq!(h.get_str(PIPELINE), Some("enrich"));
    }
}
