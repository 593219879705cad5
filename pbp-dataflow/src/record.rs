//! Records, headers and where a record came from.

use std::sync::Arc;

use bytes::Bytes;

/// Milliseconds since the Unix epoch, the unit Kafka uses for record timestamps.
pub type Timestamp = i64;

/// The current wall-clock time as a [`Timestamp`].
pub fn now_millis() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Timestamp).unwrap_or(0)
}

/// A topic name and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Where a record was read from: its topic, partition and offset.
///
/// Records that a pipeline creates itself (for example on a timer tick) have no origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Topic the record was read from.
    pub topic: Arc<str>,
    /// Partition the record was read from.
    pub partition: u32,
    /// Offset of the record in its partition.
    pub offset: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

/// Record headers: an ordered list of name and byte-value pairs; a name may repeat, as in Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Arc<str>, Bytes)>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a header.
    pub fn insert(&mut self, name: impl Into<Arc<str>>, value: impl Into<Bytes>) {
        self.0.push((name.into(), value.into()));
    }

    /// Appends a header and returns `self`, for building.
    pub fn with(mut self, name: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        self.insert(name, value);
        self
    }

    /// The last value of the header `name`, as Kafka clients resolve `lastHeader`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.0.iter().rev().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }

    /// The last value of `name` as UTF-8 text, if present and valid.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| &**n != name);
    }

    /// Iterates over the headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.0.iter().map(|(n, v)| (&**n, v))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<Arc<str>>, V: Into<Bytes>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect())
    }
}

/// A typed record flowing through a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The record key. Keyed operators (aggregates, partitioning) use it.
    pub key: K,
    /// The record value.
    pub value: V,
    /// Event time in milliseconds since the epoch.
    pub timestamp: Timestamp,
    /// Headers carried along with the record.
    pub headers: Headers,
    /// Where the record was read from, when it was read from a topic.
    pub origin: Option<Origin>,
}

impl<K, V> Record<K, V> {
    /// A record with the given key and value, stamped with the current time, no headers and no origin.
    pub fn new(key: K, value: V) -> Self {
        Self { key, value, timestamp: now_millis(), headers: Headers::new(), origin: None }
    }

    /// Sets the event timestamp.
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Replaces the value, keeping key, timestamp, headers and origin.
    pub fn map_value<W>(self, f: impl FnOnce(V) -> W) -> Record<K, W> {
        Record {
            key: self.key,
            value: f(self.value),
            timestamp: self.timestamp,
            headers: self.headers,
            origin: self.origin,
        }
    }

    /// Replaces the key and value, keeping timestamp, headers and origin.
    pub fn with_key_value<K2, W>(self, key: K2, value: W) -> Record<K2, W> {
        Record { key, value, timestamp: self.timestamp, headers: self.headers, origin: self.origin }
    }
}

/// A record as stored in a log: key and value bytes (either may be null), timestamp and headers.
///
/// A null value in a compacted topic is a tombstone: it deletes its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Key bytes, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Value bytes, or `None` for a null value (a tombstone in a compacted topic).
    pub value: Option<Bytes>,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: Timestamp,
    /// Headers.
    pub headers: Headers,
}

impl RawRecord {
    /// A record with key and value bytes, the current time and no headers.
    pub fn new(key: Option<Bytes>, value: Option<Bytes>) -> Self {
        Self { key, value, timestamp: now_millis(), headers: Headers::new() }
    }

    /// Approximate bytes held by the record, used for memory bounds.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
            + 32
    }
}

/// A record read from a log, with its origin. Cheap to clone: the record is shared, not copied.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// The stored record.
    pub record: Arc<RawRecord>,
    /// Where it was read from.
    pub origin: Origin,
}
