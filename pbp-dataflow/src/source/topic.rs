//! A source that reads topics as a member of a consumer group and decodes records with codecs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{DecodeError, Polled, Source};
use crate::codec::Codec;
use crate::error::Error;
use crate::operator::OpenContext;
use crate::record::{ConsumedRecord, Record, TopicPartition};
use crate::transport::{Consumer, ConsumerOptions, Rebalance, TopicSpec};

/// Reads one or more topics in a consumer group, positioned at the group's committed offsets.
pub struct TopicSource<K, V> {
    options: ConsumerOptions,
    create: Vec<TopicSpec>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    consumer: Option<Box<dyn Consumer>>,
    raw: Vec<ConsumedRecord>,
}

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
        let mut raw = std::mem::take(&mut self.raw);
        let polled = self.consumer()?.poll(max, timeout, &mut raw).await;
        out.reserve(raw.len());
        for r in raw.drain(..) {
            let record = self.decode(&r);
            out.push(Polled { raw: Some(r), record });
        }
        self.raw = raw;
        polled?;
        Ok(true)
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), Error> {
        Ok(self.consumer()?.commit(offsets).await?)
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        self.consumer.as_mut().and_then(|c| c.next_rebalance())
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
