//! A broker-free test driver, like Kafka Streams' `TopologyTestDriver`: build a pipeline on an embedded log,
//! pipe records into its input topics, run it until idle, and read its output, dead letters and state.
//!
//! ```
//! use pbp_dataflow::codec::{BigEndian, Utf8};
//! use pbp_dataflow::sink::TopicSink;
//! use pbp_dataflow::source::TopicSource;
//! use pbp_dataflow::testing::TestDriver;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let driver = TestDriver::new();
//! driver.create_topic("words", 1)?;
//! driver.create_topic("lengths", 1)?;
//! let mut pipeline = driver
//!     .dataflow("lengths")
//!     .source(TopicSource::new("words", "app", Utf8, Utf8))
//!     .map(|w: String| w.len() as u64)
//!     .to(TopicSink::new("lengths", Utf8, BigEndian));
//! let input = driver.input("words", Utf8, Utf8);
//! input.pipe(&"a".to_owned(), &"hello".to_owned()).await?;
//! pipeline.run_until_idle().await?;
//! let out = driver.output("lengths", Utf8, BigEndian);
//! assert_eq!(out.read_key_values()?, vec![("a".to_owned(), 5u64)]);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use parking_lot::Mutex;

use crate::codec::Codec;
use crate::error::Error;
use crate::log::{EmbeddedLog, LogError, TopicConfig};
use crate::pipeline::Dataflow;
use crate::record::{ConsumedRecord, Headers, RawRecord, Record};
use crate::transport::{EmbeddedTransport, Transport};

/// Errors of the test driver's helpers.
#[derive(Debug, thiserror::Error)]
pub enum TestDriverError {
    /// The log refused an operation.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A record could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// A pipeline operation failed.
    #[error(transparent)]
    Pipeline(#[from] Error),
}

/// An embedded log and helpers around it for tests.
#[derive(Debug, Clone, Default)]
pub struct TestDriver {
    log: EmbeddedLog,
}

impl TestDriver {
    /// A driver on a new, empty embedded log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log.
    pub fn log(&self) -> &EmbeddedLog {
        &self.log
    }

    /// The log as a transport.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(EmbeddedTransport::new(self.log.clone()))
    }

    /// The start of a pipeline on this driver's log.
    pub fn dataflow(&self, name: &str) -> Dataflow {
        Dataflow::new(name, self.transport())
    }

    /// Creates a regular topic.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), TestDriverError> {
        Ok(self.log.create_topic(name, TopicConfig::new(partitions))?)
    }

    /// Creates a compacted topic.
    pub fn create_compacted_topic(&self, name: &str, partitions: u32) -> Result<(), TestDriverError> {
        Ok(self.log.create_topic(name, TopicConfig::compacted(partitions))?)
    }

    /// A typed writer to `topic`.
    pub fn input<K, V>(
        &self,
        topic: &str,
        key_codec: impl Codec<K> + 'static,
        value_codec: impl Codec<V> + 'static,
    ) -> TestInput<K, V> {
        TestInput {
            log: self.log.clone(),
            topic: topic.into(),
            key_codec: Box::new(key_codec),
            value_codec: Box::new(value_codec),
        }
    }

    /// A typed reader of `topic`, from its beginning.
    pub fn output<K, V>(
        &self,
        topic: &str,
        key_codec: impl Codec<K> + 'static,
        value_codec: impl Codec<V> + 'static,
    ) -> TestOutput<K, V> {
        TestOutput {
            log: self.log.clone(),
            topic: topic.into(),
            key_codec: Box::new(key_codec),
            value_codec: Box::new(value_codec),
            positions: Mutex::default(),
        }
    }

    /// Every record currently in `topic`, raw, in partition then offset order.
    pub fn raw_records(&self, topic: &str) -> Result<Vec<ConsumedRecord>, TestDriverError> {
        let mut out = Vec::new();
        for p in 0..self.log.partitions(topic)? {
            self.log.read(topic, p, 0, usize::MAX, &mut out)?;
        }
        Ok(out)
    }
}

/// Writes typed records to a topic.
pub struct TestInput<K, V> {
    log: EmbeddedLog,
    topic: String,
    key_codec: Box<dyn Codec<K>>,
    value_codec: Box<dyn Codec<V>>,
}

impl<K, V> TestInput<K, V> {
    /// Appends a record; returns its partition and offset.
    pub async fn pipe(&self, key: &K, value: &V) -> Result<(u32, u64), TestDriverError> {
        self.pipe_with(key, value, 0, Headers::new()).await
    }

    /// Appends a record with a timestamp and headers.
    pub async fn pipe_with(
        &self,
        key: &K,
        value: &V,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(u32, u64), TestDriverError> {
        let raw =
            RawRecord { key: self.key_codec.encode(key)?, value: self.value_codec.encode(value)?, timestamp, headers };
        Ok(self.log.append(&self.topic, None, raw).await?)
    }

    /// Appends a tombstone (null value) for `key`.
    pub async fn tombstone(&self, key: &K) -> Result<(u32, u64), TestDriverError> {
        Ok(self.log.append(&self.topic, None, RawRecord::new(self.key_codec.encode(key)?, None)).await?)
    }

    /// Appends raw bytes, e.g. a malformed value.
    pub async fn pipe_raw(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(u32, u64), TestDriverError> {
        let raw = RawRecord::new(key.map(bytes::Bytes::copy_from_slice), value.map(bytes::Bytes::copy_from_slice));
        Ok(self.log.append(&self.topic, None, raw).await?)
    }
}

/// Reads typed records from a topic; each call returns what was appended since the previous call.
pub struct TestOutput<K, V> {
    log: EmbeddedLog,
    topic: String,
    key_codec: Box<dyn Codec<K>>,
    value_codec: Box<dyn Codec<V>>,
    positions: Mutex<Vec<u64>>,
}

impl<K, V> TestOutput<K, V> {
    /// New records, in partition then offset order.
    pub fn read(&self) -> Result<Vec<Record<K, V>>, TestDriverError> {
        let n = self.log.partitions(&self.topic)? as usize;
        let mut positions = self.positions.lock();
        positions.resize(n, 0);
        let mut raw = Vec::new();
        for (p, pos) in positions.iter_mut().enumerate() {
            *pos = self.log.read(&self.topic, p as u32, *pos, usize::MAX, &mut raw)?;
        }
        raw.into_iter()
            .map(|r| {
                Ok(Record {
                    key: self.key_codec.decode(r.record.key.as_ref())?,
                    value: self.value_codec.decode(r.record.value.as_ref())?,
                    timestamp: r.record.timestamp,
                    headers: r.record.headers.clone(),
                    origin: Some(r.origin),
                })
            })
            .collect()
    }

    /// New records as key–value pairs.
    pub fn read_key_values(&self) -> Result<Vec<(K, V)>, TestDriverError> {
        Ok(self.read()?.into_iter().map(|r| (r.key, r.value)).collect())
    }
}

/// The name of the environment variable that makes tests needing a service (a broker, a database, a cache)
/// fail when it is missing instead of skipping.
pub const REQUIRE_SERVICES: &str = "PBP_REQUIRE_SERVICES";

/// True when tests must not skip for a missing service: [`REQUIRE_SERVICES`] is set to anything but empty or
/// `0` (CI sets `PBP_REQUIRE_SERVICES=1`). Every test of the workspace that needs a service asks this.
pub fn services_required() -> bool {
    std::env::var_os(REQUIRE_SERVICES).is_some_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{BigEndian, Utf8};

    #[tokio::test]
    async fn output_reads_only_what_is_new() {
        let d = TestDriver::new();
        d.create_topic("t", 2).unwrap();
        let input = d.input("t", Utf8, BigEndian);
        let output = d.output::<String, u64>("t", Utf8, BigEndian);
        input.pipe(&"a".to_owned(), &1u64).await.unwrap();
        assert_eq!(output.read_key_values().unwrap(), vec![("a".to_owned(), 1)]);
        assert!(output.read_key_values().unwrap().is_empty());
        input.pipe(&"b".to_owned(), &2u64).await.unwrap();
        assert_eq!(output.read_key_values().unwrap(), vec![("b".to_owned(), 2)]);
    }
}
