//! The table description and its materialisation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;

use crate::codec::{Codec, CodecError};
use crate::error::Error;
use crate::operator::OpenContext;
use crate::record::{ConsumedRecord, TopicPartition};
use crate::transport::{Consumer, Transport};

/// A table materialised from a compacted topic: which topic, and how its keys and values decode.
/// Cheap to clone; each join that uses it keeps its own copy of the data.
pub struct GlobalTable<K, V> {
    topic: Arc<str>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
}

impl<K, V> Clone for GlobalTable<K, V> {
    fn clone(&self) -> Self {
        Self { topic: self.topic.clone(), key_codec: self.key_codec.clone(), value_codec: self.value_codec.clone() }
    }
}

impl<K, V> GlobalTable<K, V> {
    /// A table over `topic`.
    pub fn new(
        topic: impl Into<Arc<str>>,
        key_codec: impl Codec<K> + 'static,
        value_codec: impl Codec<V> + 'static,
    ) -> Self {
        Self { topic: topic.into(), key_codec: Arc::new(key_codec), value_codec: Arc::new(value_codec) }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

pub(crate) struct Materialized<K, V> {
    table: GlobalTable<K, V>,
    map: HashMap<K, V>,
    /// Set by the bootstrap: where the table is read from, and which partitions.
    source: Option<TableSource>,
}

/// The open table topic: the transport (for end offsets), its partitions and the reader positioned after what
/// was applied.
struct TableSource {
    transport: Arc<dyn Transport>,
    partitions: Vec<u32>,
    reader: Box<dyn Consumer>,
}

impl<K, V> Materialized<K, V> {
    pub(crate) fn new(table: &GlobalTable<K, V>) -> Self {
        Self { table: table.clone(), map: HashMap::new(), source: None }
    }
}

impl<K: std::hash::Hash + Eq + Send, V: Send> Materialized<K, V> {
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Reads every partition up to its end offset as of now: the bootstrap barrier.
    pub(crate) async fn bootstrap(&mut self, cx: &OpenContext) -> Result<(), Error> {
        let topic = self.table.topic.clone();
        let partitions: Vec<u32> = (0..cx.transport.partitions(&topic).await?).collect();
        let reader = cx.transport.reader(&topic, Some(&partitions)).await?;
        self.source = Some(TableSource { transport: cx.transport.clone(), partitions, reader });
        self.catch_up().await?;
        tracing::debug!(table = %topic, entries = self.map.len(), "Global table bootstrapped.");
        Ok(())
    }

    /// Reads every partition up to its end offset as of now, applying what was appended since the last call.
    /// The ends are asked of the transport, not taken from what its reader happened to fetch: a table record
    /// appended before a stream record was read is applied before that stream record is joined.
    pub(crate) async fn catch_up(&mut self) -> Result<(), Error> {
        let Some(source) = self.source.as_mut() else {
            return Err(Error::Config(format!("global table {} used before the pipeline opened it", self.table.topic)));
        };
        let topic = self.table.topic.clone();
        let ends = source.transport.end_offsets(&topic, &source.partitions).await?;
        let mut buf = Vec::new();
        loop {
            let done = source
                .partitions
                .iter()
                .zip(&ends)
                .all(|(p, end)| source.reader.reached(&TopicPartition::new(topic.clone(), *p), *end));
            if done {
                return Ok(());
            }
            source.reader.poll(4096, Duration::from_millis(200), &mut buf).await?;
            for r in buf.drain(..) {
                apply(&self.table, &mut self.map, &r).await;
            }
            // As in `read_until`: a long topic must not keep the thread from what runs beside it.
            tokio::task::yield_now().await;
        }
    }
}

/// Applies one table record: a value upserts its key, a tombstone deletes it, an undecodable record is skipped
/// with a warning. A record a codec cannot decode *yet* (its registry does not answer) is waited for: the codec
/// gets ready first ([`Codec::prepare`], retried with a backoff), since skipping it would lose the update.
async fn apply<K: std::hash::Hash + Eq, V>(table: &GlobalTable<K, V>, map: &mut HashMap<K, V>, r: &ConsumedRecord) {
    let key = match decode_waiting(&*table.key_codec, r.record.key.as_ref(), r).await {
        Ok(k) => k,
        Err(error) => {
            tracing::warn!(%error, origin = %r.origin, "Skipped a table record whose key cannot be decoded.");
            return;
        }
    };
    if r.record.value.is_none() {
        map.remove(&key);
        return;
    }
    match decode_waiting(&*table.value_codec, r.record.value.as_ref(), r).await {
        Ok(v) => {
            map.insert(key, v);
        }
        Err(error) => {
            tracing::warn!(%error, origin = %r.origin, "Skipped a table record whose value cannot be decoded.");
        }
    }
}

/// Decodes `bytes`, waiting (with a backoff from 100 ms to 5 s) while the codec says it cannot decode them yet.
async fn decode_waiting<T>(codec: &dyn Codec<T>, bytes: Option<&Bytes>, r: &ConsumedRecord) -> Result<T, CodecError> {
    let mut backoff: Option<Duration> = None;
    loop {
        match codec.decode(bytes) {
            Err(error) if error.is_transient() => {
                match backoff {
                    None => {
                        tracing::warn!(%error, origin = %r.origin, "A table record cannot be decoded yet; waiting for its codec.");
                        backoff = Some(Duration::from_millis(100));
                    }
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        backoff = Some((wait * 2).min(Duration::from_secs(5)));
                    }
                }
                match codec.prepare(bytes).await {
                    // Ready (decoding again tells), or not yet (waited for above on the next round).
                    Ok(()) => {}
                    Err(error) if error.is_transient() => {}
                    // The bytes cannot be decoded at all.
                    Err(error) => return Err(error),
                }
            }
            decoded => return decoded,
        }
    }
}
