//! The topic journal: a compacted topic, as Confluent's Schema Registry keeps its `_schemas` topic.
//!
//! One record per [`JournalEntry`], in a topic with one partition (so that entries keep the order they were
//! written in). Keys are JSON, like Confluent's, and name what the entry is about, so that compaction keeps
//! exactly what a replay needs:
//!
//! ```text
//! key   {"keytype":"SCHEMA","subject":"raw.plays-value","version":1}
//! value {"op":"register","subject":"raw.plays-value","version":1,"id":1,"schema":"{...}"}
//! key   {"keytype":"CONFIG","subject":null}
//! value {"op":"config","subject":null,"compatibility":"FULL"}
//! ```
//!
//! Each schema version has its own key, written once, so compaction never drops one; a compatibility level
//! is keyed by its subject (null for the global level), so compaction keeps the latest, which is the one that
//! counts. Reading the topic applies the same rule (the latest record of each key, at that record's place),
//! so a replay gives the same registry before and after the broker compacts.
//!
//! The values are this crate's entries, not Confluent's: a topic written by Confluent's registry is refused
//! (its records do not parse), not misread.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use pbp_dataflow::transport::{OutgoingRecord, Producer, TopicSpec, read_to_end};
use pbp_dataflow::{RawRecord, Transport};
use serde::{Deserialize, Serialize};

use super::{JournalEntry, JournalStore};
use crate::registry::{RegistryError, on_helper_thread};

/// The topic Confluent's Schema Registry keeps its schemas in, and the default of `pbp schema-registry`.
pub const DEFAULT_SCHEMAS_TOPIC: &str = "_schemas";

/// What a record of the topic is about: its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
enum RecordKey {
    /// One version of a subject.
    Schema { subject: String, version: u32 },
    /// The level of a subject, or the global level (`subject` null).
    Config { subject: Option<String> },
}

impl RecordKey {
    fn of(entry: &JournalEntry) -> Self {
        match entry {
            JournalEntry::Register { subject, version, .. } => {
                Self::Schema { subject: subject.clone(), version: *version }
            }
            JournalEntry::Config { subject, .. } => Self::Config { subject: subject.clone() },
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Schema { subject, version } => write!(f, "schema {subject} v{version}"),
            Self::Config { subject: Some(subject) } => write!(f, "the level of {subject}"),
            Self::Config { subject: None } => f.write_str("the global level"),
        }
    }
}

/// An error and its sources, one after the other: a transport error's `Display` names only what was being
/// done.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Reads one record as the key and entry this journal writes. Anything else (no key, a tombstone, JSON of
/// another shape, a key that does not match its entry) means another writer shares the topic.
fn parse_record(record: &RawRecord) -> Result<(RecordKey, JournalEntry), String> {
    let key = record.key.as_deref().ok_or("a record without a key")?;
    let key: RecordKey = serde_json::from_slice(key)
        .map_err(|e| format!("cannot read the key {:?}: {e}", String::from_utf8_lossy(key)))?;
    let value = record
        .value
        .as_deref()
        .ok_or_else(|| format!("a tombstone for {key}, but this registry never deletes: another writer?"))?;
    let entry: JournalEntry =
        serde_json::from_slice(value).map_err(|e| format!("cannot read the entry for {key}: {e}"))?;
    let about = RecordKey::of(&entry);
    if about != key {
        return Err(format!("the key names {key} but the entry is about {about}"));
    }
    Ok((key, entry))
}

/// Reads `topic` to its end and compacts what it read as the broker would: the latest entry of each key, at
/// the place of that latest record. Every record must parse; `Err` names the offset of the first that does
/// not.
async fn read_compacted(transport: &dyn Transport, topic: &str) -> Result<Vec<(RecordKey, JournalEntry)>, String> {
    let mut records = Vec::new();
    read_to_end(transport, topic, &[0], |r| records.push(r)).await.map_err(|e| format!("reading: {}", chain(&e)))?;
    records.sort_by_key(|r| r.origin.offset);
    let mut parsed = Vec::with_capacity(records.len());
    let mut latest = HashMap::new();
    for r in &records {
        let (key, entry) = parse_record(&r.record).map_err(|e| format!("offset {}: {e}", r.origin.offset))?;
        latest.insert(key.clone(), parsed.len());
        parsed.push((key, entry));
    }
    Ok(parsed.into_iter().enumerate().filter(|(i, (key, _))| latest.get(key) == Some(i)).map(|(_, p)| p).collect())
}

/// A journal in a compacted topic with one partition on a [`Transport`]: durable on a Kafka cluster (on the
/// embedded log it lasts as long as the process).
///
/// [`open`](Self::open) makes sure the topic exists and reads it to its end; [`append`](JournalStore::append)
/// produces one record and returns once the producer's flush confirmed it (on Kafka: acknowledged by all
/// in-sync replicas), so an acknowledged registration is in the topic. The produce runs on a short-lived
/// helper thread with its own runtime, so `append` works from blocking code and inline in async code alike
/// (blocking on the caller's runtime could wait for itself); registrations are rare, so the thread costs
/// nothing that matters.
///
/// One registry process should own a topic, as Confluent's leader does: a registry hands out ids from what
/// it has read, and does not see what another registry writes after that, so two registries writing to one
/// topic would give the same id to different schemas. The topic is read only at open, and again when an
/// append failed: a write whose confirmation failed may still have reached the topic, so the next append
/// first reads the topic again and goes on only if it holds exactly the entries this journal confirmed;
/// otherwise appends fail until the registry restarts and reads the topic anew.
pub struct TopicJournal {
    transport: Arc<dyn Transport>,
    topic: String,
    producer: Arc<dyn Producer>,
    /// The topic as far as this journal knows it, compacted: the latest entry of each key, in order.
    entries: Vec<(RecordKey, JournalEntry)>,
    /// An append failed, and its record may have reached the topic anyway.
    unconfirmed: bool,
}

impl fmt::Debug for TopicJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicJournal")
            .field("topic", &self.topic)
            .field("transport", &self.transport.kind())
            .field("entries", &self.entries.len())
            .field("unconfirmed", &self.unconfirmed)
            .finish()
    }
}

fn location(transport: &dyn Transport, topic: &str) -> String {
    format!("topic {topic} on {}", transport.kind())
}

impl TopicJournal {
    /// Makes sure `topic` exists on `transport` (creating it compacted, with one partition) and reads it to
    /// its end. A topic with more than one partition is refused (entries would lose their order), and so is
    /// a record that is not one of this journal's, with its offset.
    pub async fn open(transport: Arc<dyn Transport>, topic: &str) -> Result<Self, RegistryError> {
        let error = |message: String| RegistryError::Journal { location: location(&*transport, topic), message };
        let partitions = transport
            .ensure_topic(&TopicSpec::compacted(topic, 1))
            .await
            .map_err(|e| error(format!("making sure the topic exists: {}", chain(&e))))?;
        if partitions != 1 {
            return Err(error(format!(
                "has {partitions} partitions; a schemas topic needs exactly one, so that its entries keep their order"
            )));
        }
        let entries = read_compacted(&*transport, topic).await.map_err(error)?;
        let producer = transport.producer().map_err(|e| error(format!("creating a producer: {}", chain(&e))))?;
        tracing::info!(topic, transport = transport.kind(), entries = entries.len(), "schemas topic read");
        Ok(Self { transport, topic: topic.to_owned(), producer, entries, unconfirmed: false })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn error(&self, message: impl fmt::Display) -> RegistryError {
        RegistryError::Journal { location: self.describe(), message: message.to_string() }
    }

    /// After an unconfirmed append: reads the topic again and accepts it only if it holds exactly the
    /// entries this journal confirmed (the failed write did not land), with a fresh producer handle (a
    /// handle's flush keeps reporting a failed delivery).
    fn check_after_unconfirmed_write(&mut self) -> Result<(), RegistryError> {
        let (transport, topic) = (&self.transport, self.topic.as_str());
        let found = on_helper_thread(|| async move { read_compacted(&**transport, topic).await })
            .and_then(|read| read)
            .map_err(|e| {
                self.error(format!("an earlier write was not confirmed, and the topic cannot be read to check it: {e}"))
            })?;
        let known: HashMap<&RecordKey, &JournalEntry> = self.entries.iter().map(|(k, e)| (k, e)).collect();
        let found_map: HashMap<&RecordKey, &JournalEntry> = found.iter().map(|(k, e)| (k, e)).collect();
        if found_map != known {
            return Err(self.error(
                "holds entries this registry did not confirm (a write whose confirmation failed reached the topic, \
                 or another registry writes to it); restart the registry to read the topic again",
            ));
        }
        self.producer =
            self.transport.producer().map_err(|e| self.error(format!("creating a producer: {}", chain(&e))))?;
        self.unconfirmed = false;
        tracing::info!(topic = %self.topic, "schemas topic checked after an unconfirmed write: nothing unexpected");
        Ok(())
    }

    fn remember(&mut self, key: RecordKey, entry: JournalEntry) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, entry));
    }
}

impl JournalStore for TopicJournal {
    fn describe(&self) -> String {
        location(&*self.transport, &self.topic)
    }

    fn replay(&mut self) -> Result<Vec<JournalEntry>, RegistryError> {
        Ok(self.entries.iter().map(|(_, entry)| entry.clone()).collect())
    }

    fn append(&mut self, entry: &JournalEntry) -> Result<(), RegistryError> {
        if self.unconfirmed {
            self.check_after_unconfirmed_write()?;
        }
        let key = RecordKey::of(entry);
        let key_bytes = serde_json::to_vec(&key).map_err(|e| self.error(e))?;
        let value = serde_json::to_vec(entry).map_err(|e| self.error(e))?;
        let record = RawRecord::new(Some(Bytes::from(key_bytes)), Some(Bytes::from(value)));
        let (producer, topic) = (&self.producer, self.topic.as_str());
        let written = on_helper_thread(|| async move {
            let mut batch = vec![OutgoingRecord { partition: Some(0), record }];
            producer.send(topic, &mut batch).await?;
            producer.flush().await
        });
        let failure = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(chain(&e)),
            Err(helper) => Some(helper),
        };
        if let Some(failure) = failure {
            self.unconfirmed = true;
            tracing::error!(topic = %self.topic, %key, error = %failure, "schemas topic write not confirmed");
            return Err(self.error(format!("writing {key}: {failure}")));
        }
        tracing::debug!(topic = %self.topic, %key, "schemas topic entry written");
        self.remember(key, entry.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
