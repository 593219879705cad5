//! The transport seam over the [`EmbeddedLog`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Consumer, ConsumerOptions, OutgoingRecord, Producer, Rebalance, TopicSpec, Transport, TransportError};
use crate::log::{EmbeddedLog, MemberGuard, Topic, TopicConfig, read_partition};
use crate::record::{ConsumedRecord, TopicPartition};

/// The embedded log as a [`Transport`]. Topics it creates get `capacity_bytes` per partition.
#[derive(Debug, Clone)]
pub struct EmbeddedTransport {
    log: EmbeddedLog,
    capacity_bytes: usize,
}

impl EmbeddedTransport {
    /// A transport over `log`.
    pub fn new(log: EmbeddedLog) -> Self {
        Self { log, capacity_bytes: crate::log::DEFAULT_CAPACITY_BYTES }
    }

    /// Sets the per-partition capacity of topics this transport creates.
    pub fn with_capacity_bytes(mut self, capacity_bytes: usize) -> Self {
        self.capacity_bytes = capacity_bytes;
        self
    }

    /// The underlying log.
    pub fn log(&self) -> &EmbeddedLog {
        &self.log
    }
}

#[async_trait]
impl Transport for EmbeddedTransport {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<u32, TransportError> {
        if let Some(existing) = self.log.topic_config(&spec.name) {
            return Ok(existing.partitions);
        }
        let config =
            TopicConfig { partitions: spec.partitions, compacted: spec.compacted, capacity_bytes: self.capacity_bytes };
        match self.log.create_topic(&spec.name, config) {
            Ok(()) => Ok(spec.partitions),
            // Another task created it between the check and the create.
            Err(crate::log::LogError::TopicMismatch { existing, .. }) => Ok(existing.partitions),
            Err(e) => Err(e.into()),
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32, TransportError> {
        Ok(self.log.partitions(topic)?)
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, TransportError> {
        Ok(Arc::new(EmbeddedProducer { log: self.log.clone() }))
    }

    async fn consumer(&self, options: &ConsumerOptions) -> Result<Box<dyn Consumer>, TransportError> {
        let guard = self.log.claim_member(&options.group)?;
        let mut parts = Vec::new();
        for name in &options.topics {
            let topic = self.log.topic(name)?;
            let committed = self.log.register_group(&options.group, name)?;
            for (p, offset) in committed.into_iter().enumerate() {
                parts.push(PartitionCursor {
                    topic: topic.clone(),
                    tp: TopicPartition::new(name.as_str(), p as u32),
                    position: offset,
                });
            }
        }
        let assigned = parts.iter().map(|c| c.tp.clone()).collect();
        Ok(Box::new(EmbeddedConsumer {
            log: self.log.clone(),
            group: Some((options.group.clone(), guard)),
            pending: VecDeque::from([Rebalance::Assigned(assigned)]),
            parts,
            next: 0,
        }))
    }

    async fn reader(&self, topic: &str, partitions: Option<&[u32]>) -> Result<Box<dyn Consumer>, TransportError> {
        let t = self.log.topic(topic)?;
        let all: Vec<u32> = (0..t.config.partitions).collect();
        let wanted = partitions.unwrap_or(&all);
        let mut parts = Vec::with_capacity(wanted.len());
        for &p in wanted {
            let start = self.log.start_offset(topic, p)?;
            parts.push(PartitionCursor { topic: t.clone(), tp: TopicPartition::new(topic, p), position: start });
        }
        let assigned = parts.iter().map(|c| c.tp.clone()).collect();
        Ok(Box::new(EmbeddedConsumer {
            log: self.log.clone(),
            group: None,
            pending: VecDeque::from([Rebalance::Assigned(assigned)]),
            parts,
            next: 0,
        }))
    }

    async fn end_offsets(&self, topic: &str, partitions: &[u32]) -> Result<Vec<u64>, TransportError> {
        partitions.iter().map(|&p| self.log.end_offset(topic, p).map_err(Into::into)).collect()
    }
}

struct EmbeddedProducer {
    log: EmbeddedLog,
}

#[async_trait]
impl Producer for EmbeddedProducer {
    async fn send(&self, topic: &str, records: &mut Vec<OutgoingRecord>) -> Result<(), TransportError> {
        self.log.append_batch(topic, records.drain(..).map(|r| (r.partition, r.record))).await?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), TransportError> {
        // An append to the embedded log is complete when `send` returns.
        Ok(())
    }
}

struct PartitionCursor {
    topic: Arc<Topic>,
    tp: TopicPartition,
    position: u64,
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    group: Option<(String, MemberGuard)>,
    pending: VecDeque<Rebalance>,
    parts: Vec<PartitionCursor>,
    /// Partition to read first on the next poll, so that no partition starves.
    next: usize,
}

impl EmbeddedConsumer {
    fn read_available(&mut self, max: usize, out: &mut Vec<ConsumedRecord>) -> Result<usize, TransportError> {
        let n = self.parts.len();
        if n == 0 {
            return Ok(0);
        }
        let share = max.div_ceil(n).max(1);
        let mut taken = 0;
        for i in 0..n {
            if taken >= max {
                break;
            }
            let c = &mut self.parts[(self.next + i) % n];
            let before = out.len();
            c.position = read_partition(&c.topic, c.tp.partition, c.position, share.min(max - taken), out)?;
            taken += out.len() - before;
        }
        self.next = (self.next + 1) % n;
        Ok(taken)
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log.clone();
            let appended = log.appended();
            tokio::pin!(appended);
            appended.as_mut().enable();
            if self.read_available(max, out)? > 0 {
                return Ok(());
            }
            // Tokio's timer rounds up to the next millisecond: never wait on it for a deadline already reached.
            if Instant::now() >= deadline || tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(());
            }
        }
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), TransportError> {
        if let Some((group, _)) = &self.group {
            for (tp, offset) in offsets {
                self.log.commit(group, &tp.topic, tp.partition, *offset)?;
            }
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.iter().map(|c| c.tp.clone()).collect()
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        self.pending.pop_front()
    }

    fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.parts.iter().find(|c| &c.tp == partition).map(|c| c.position)
    }

    async fn caught_up(&mut self) -> Result<bool, TransportError> {
        for c in &self.parts {
            if c.position < self.log.end_offset(&c.tp.topic, c.tp.partition)? {
                return Ok(false);
            }
        }
        Ok(!self.parts.is_empty())
    }

    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, TransportError> {
        self.parts
            .iter()
            .map(|c| {
                let end = self.log.end_offset(&c.tp.topic, c.tp.partition)?;
                Ok((c.tp.clone(), end.saturating_sub(c.position)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RawRecord;
    use bytes::Bytes;

    #[tokio::test]
    async fn group_consumer_resumes_from_commit() {
        let t = EmbeddedTransport::new(EmbeddedLog::new());
        t.ensure_topic(&TopicSpec::new("in", 2)).await.unwrap();
        let producer = t.producer().unwrap();
        let mut recs = (0..10u8)
            .map(|i| OutgoingRecord {
                partition: Some(u32::from(i % 2)),
                record: RawRecord::new(None, Some(Bytes::from(vec![i]))),
            })
            .collect();
        producer.send("in", &mut recs).await.unwrap();
        let opts = ConsumerOptions { group: "g".into(), topics: vec!["in".into()] };
        let mut c = t.consumer(&opts).await.unwrap();
        assert!(matches!(c.next_rebalance(), Some(Rebalance::Assigned(p)) if p.len() == 2));
        let mut out = Vec::new();
        c.poll(4, Duration::ZERO, &mut out).await.unwrap();
        assert_eq!(out.len(), 4);
        let commits: Vec<_> =
            out.iter().map(|r| (TopicPartition::new("in", r.origin.partition), r.origin.offset + 1)).collect();
        c.commit(&commits).await.unwrap();
        assert!(t.consumer(&opts).await.is_err(), "one member per embedded group");
        drop(c);
        let mut c = t.consumer(&opts).await.unwrap();
        let mut rest = Vec::new();
        c.poll(100, Duration::ZERO, &mut rest).await.unwrap();
        assert_eq!(rest.len(), 6);
        assert_eq!(c.lag().await.unwrap().iter().map(|(_, l)| l).sum::<u64>(), 0);
    }

    #[tokio::test]
    async fn poll_wakes_on_append() {
        let t = EmbeddedTransport::new(EmbeddedLog::new());
        t.ensure_topic(&TopicSpec::new("in", 1)).await.unwrap();
        let mut c = t.reader("in", None).await.unwrap();
        let producer = t.producer().unwrap();
        let appender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer.send("in", &mut vec![RawRecord::new(None, Some(Bytes::from_static(b"x"))).into()]).await.unwrap();
        });
        let mut out = Vec::new();
        c.poll(10, Duration::from_secs(5), &mut out).await.unwrap();
        assert_eq!(out.len(), 1);
        appender.await.unwrap();
    }
}
