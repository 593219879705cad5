//! A sink that encodes records and appends them to a topic.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Sink, SinkRejection};
use crate::codec::Codec;
use crate::error::Error;
use crate::operator::OpenContext;
use crate::outcome::Rejection;
use crate::record::{RawRecord, Record};
use crate::transport::{OutgoingRecord, Producer, TopicSpec};

/// Encodes each record with the key and value codecs and appends it to `topic`, partitioned by key with
/// Kafka's default partitioner. A record that cannot be encoded is refused (dead-lettered).
pub struct TopicSink<K, V> {
    topic: String,
    create: Option<TopicSpec>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    producer: Option<Arc<dyn Producer>>,
    buf: Vec<OutgoingRecord>,
}

impl<K, V> TopicSink<K, V> {
    /// A sink to an existing topic.
    pub fn new(
        topic: impl Into<String>,
        key_codec: impl Codec<K> + 'static,
        value_codec: impl Codec<V> + 'static,
    ) -> Self {
        Self {
            topic: topic.into(),
            create: None,
            key_codec: Arc::new(key_codec),
            value_codec: Arc::new(value_codec),
            producer: None,
            buf: Vec::new(),
        }
    }

    /// Creates the topic with `partitions` partitions when the pipeline opens, if it does not exist.
    pub fn create_if_missing(mut self, partitions: u32) -> Self {
        self.create = Some(TopicSpec::new(self.topic.clone(), partitions));
        self
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

#[async_trait]
impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<K, V> for TopicSink<K, V> {
    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        if let Some(spec) = &self.create {
            cx.transport.ensure_topic(spec).await?;
        }
        self.producer = Some(cx.transport.producer()?);
        Ok(())
    }

    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error> {
        let producer = self.producer.clone().ok_or_else(|| Error::Config(format!("sink {} not opened", self.topic)))?;
        let mut rejected = Vec::new();
        self.buf.reserve(batch.len());
        for r in batch.drain(..) {
            let encoded = self.key_codec.encode(&r.key).and_then(|k| Ok((k, self.value_codec.encode(&r.value)?)));
            match encoded {
                Ok((key, value)) => self.buf.push(OutgoingRecord {
                    partition: None,
                    record: RawRecord { key, value, timestamp: r.timestamp, headers: r.headers },
                }),
                Err(e) => rejected.push(SinkRejection { origin: r.origin, rejection: Rejection::from_error(&e) }),
            }
        }
        producer.send(&self.topic, &mut self.buf).await?;
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if let Some(p) = &self.producer {
            p.flush().await?;
        }
        Ok(())
    }
}
