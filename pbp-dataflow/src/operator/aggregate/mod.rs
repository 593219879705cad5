//! [`AggregateByKey`]: per-key state in a [`StateStore`], every update written to a compacted changelog
//! topic, restored before processing.
//!
//! ## State, changelog and restoration
//! The state of a key lives in the aggregate's in-memory store, partitioned like the source: a key's state
//! belongs to the source partition its records come from (records must be partitioned by the aggregation
//! key, as in Kafka Streams; re-key through an intermediate topic otherwise). Every update is appended to the
//! store's compacted changelog topic, in the partition with the same number. When the pipeline is assigned a
//! partition, the aggregate reads that changelog partition up to its end as of that moment before the first
//! record of the partition is processed.
//!
//! ## The replay rule
//! Each changelog record carries, next to the state, the source partition and offset of the last record
//! applied to that key. A record arriving from partition `p` at offset `o` is applied only if `o` is greater
//! than the offset stored for its key (for the same `p`). After a crash between the state update (changelog
//! written) and the offset commit, the source re-delivers records whose updates are already in the restored
//! state: they are *not applied twice*. The aggregate still emits the key's current state for them, so that
//! downstream, which may have lost the first emission in the crash, receives an output (at-least-once).
//! This is Quix Streams' idea (source offsets in changelog records, since 2.5) applied per key, which stays
//! exact even after the changelog is compacted.
//!
//! Because a rejected record is skipped on replay once a later record of its key was applied, a pipeline
//! hands a batch's dead letters over (and waits for their acknowledgement) before the batch's changelog
//! records: a crash can then never keep a later update while losing an earlier dead letter.
//!
//! A source must feed an aggregate from a single topic (offsets of different topics are not comparable).
//! Records without an origin (from a channel or a timer) are always applied.
//!
//! Changelog value layout (internal to pbp-dataflow): `0x01, partition (u32 BE), offset (u64 BE), state` or
//! `0x00, state` when the last update had no origin. A null value is a tombstone and deletes the key (the
//! aggregate never writes one: a state codec that encodes a state as null stops the pipeline).

mod store;

use std::sync::Arc;

use async_trait::async_trait;
use hashbrown::HashMap;
use hashbrown::hash_map::RawEntryMut;

pub use store::{StateStore, StoredState, changelog_value};

use super::{OpenContext, Operator};
use crate::error::Error;
use crate::outcome::{Failure, Outcome, Rejection};
use crate::partitioner::partition_for_key;
use crate::record::{RawRecord, Record};
use crate::transport::{OutgoingRecord, Producer, Rebalance};

/// Folds each record into its key's state with `step` and emits the new state.
///
/// `step(&mut state, &record)` updates the state in place (a new key starts at `S::default()`); returning
/// `Err` rejects the record to the dead-letter queue, and `step` must then leave the state unchanged.
pub struct AggregateByKey<K, S, F> {
    store: StateStore<K, S>,
    step: F,
    states: HashMap<K, StoredState<S>>,
    source_topic: Option<Arc<str>>,
    partitions: u32,
    producer: Option<Arc<dyn Producer>>,
    pending: Vec<OutgoingRecord>,
}

impl<K, S, F> AggregateByKey<K, S, F> {
    /// An aggregate over `store`.
    pub fn new(store: &StateStore<K, S>, step: F) -> Self {
        Self {
            store: store.clone(),
            step,
            states: HashMap::new(),
            source_topic: None,
            partitions: store.partitions().unwrap_or(1),
            producer: None,
            pending: Vec::new(),
        }
    }
}

impl<K, S, F> AggregateByKey<K, S, F>
where
    K: std::hash::Hash + Eq + Clone,
    S: Clone + Default,
{
    fn changelog_record(
        store: &StateStore<K, S>,
        partitions: u32,
        key: &K,
        state: &StoredState<S>,
        timestamp: crate::record::Timestamp,
    ) -> Result<OutgoingRecord, Failure> {
        let key_bytes = store.key_codec().encode(key).map_err(Failure::new)?;
        let value = changelog_value(store.state_codec(), &state.state, state.applied).map_err(Failure::new)?;
        if value.is_none() {
            // A tombstone would delete the key's stored source offset and with it the replay protection.
            return Err(Failure::new(format!("the state codec of store {} encoded a state as null", store.name())));
        }
        let partition = match (state.applied, &key_bytes) {
            (Some((p, _)), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => 0,
        };
        let record = RawRecord { key: key_bytes, value, timestamp, headers: crate::record::Headers::new() };
        Ok(OutgoingRecord { partition: Some(partition), record })
    }
}

#[async_trait]
impl<K, V, S, F> Operator<K, V> for AggregateByKey<K, S, F>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + 'static,
    S: Clone + Default + Send + Sync + 'static,
    F: FnMut(&mut S, &Record<K, V>) -> Result<(), Rejection> + Send,
{
    type OutKey = K;
    type OutValue = S;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, S>> {
        let source = record.origin.as_ref().map(|o| (o.partition, o.offset));
        let (entry, inserted) = match self.states.raw_entry_mut().from_key(&record.key) {
            RawEntryMut::Occupied(o) => (o.into_mut(), false),
            RawEntryMut::Vacant(v) => (v.insert(record.key.clone(), StoredState::default()).1, true),
        };
        let already_applied = matches!(
            (source, entry.applied),
            (Some((p, o)), Some((ap, ao))) if p == ap && o <= ao
        );
        if !already_applied {
            if let Err(rejection) = (self.step)(&mut entry.state, &record) {
                if inserted {
                    self.states.remove(&record.key);
                }
                return Outcome::Reject(rejection);
            }
            if source.is_some() {
                entry.applied = source;
            }
            match Self::changelog_record(&self.store, self.partitions, &record.key, entry, record.timestamp) {
                Ok(r) => self.pending.push(r),
                // The in-memory state is ahead of the changelog now: stop, so that a restart restores it.
                Err(failure) => return Outcome::Fail(failure),
            }
        }
        let state = entry.state.clone();
        Outcome::Emit(record.map_value(|_| state))
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.producer = Some(cx.transport.producer()?);
        if let Some(n) = self.store.partitions() {
            // Fed without source partitions (a channel): the store owns all of its partitions.
            self.partitions = self.store.ensure_changelog(cx, n).await?;
            let all: Vec<u32> = (0..self.partitions).collect();
            self.store.restore_into(cx.transport.as_ref(), &all, &mut self.states).await?;
        }
        Ok(())
    }

    async fn on_rebalance(&mut self, cx: &OpenContext, change: &Rebalance) -> Result<(), Error> {
        match change {
            Rebalance::Assigned(tps) => {
                for tp in tps {
                    match &self.source_topic {
                        None => {
                            let n = cx.transport.partitions(&tp.topic).await?;
                            self.partitions = self.store.ensure_changelog(cx, n).await?;
                            self.source_topic = Some(tp.topic.clone());
                        }
                        Some(t) if *t == tp.topic => {}
                        Some(t) => {
                            return Err(Error::Config(format!(
                                "aggregate {} reads {t} and {}: an aggregate needs a single source topic",
                                self.store.name(),
                                tp.topic
                            )));
                        }
                    }
                }
                let partitions: Vec<u32> = tps.iter().map(|tp| tp.partition).collect();
                let restored = self.store.restore_into(cx.transport.as_ref(), &partitions, &mut self.states).await?;
                tracing::info!(store = self.store.name(), ?partitions, restored, "State restored from changelog.");
            }
            Rebalance::Revoked(tps) => {
                self.states.retain(|_, s| !tps.iter().any(|tp| s.applied.is_some_and(|(p, _)| p == tp.partition)));
            }
        }
        Ok(())
    }

    async fn after_batch(&mut self) -> Result<Vec<crate::sink::SinkRejection>, Error> {
        if !self.pending.is_empty() && self.source_topic.is_none() && self.store.partitions().is_none() {
            return Err(Error::Config(format!(
                "aggregate {} got records without source partitions (a channel source?): give its store \
                 StateStore::with_partitions(n) so that its changelog exists",
                self.store.name()
            )));
        }
        if !self.pending.is_empty() {
            let producer = self.producer.clone().ok_or_else(|| Error::Config("aggregate not opened".into()))?;
            producer.send(self.store.changelog(), &mut self.pending).await?;
        }
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if let Some(p) = &self.producer {
            p.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::{BigEndian, Utf8};
    use crate::log::EmbeddedLog;
    use crate::record::{Origin, TopicPartition};
    use crate::transport::{EmbeddedTransport, TopicSpec, Transport};

    fn rec(key: &str, offset: u64) -> Record<String, u64> {
        let mut r = Record::new(key.to_owned(), 1);
        r.origin = Some(Origin { topic: "in".into(), partition: 0, offset });
        r
    }

    #[tokio::test]
    async fn replayed_offsets_are_not_applied_twice_but_still_emit() {
        let log = EmbeddedLog::new();
        let transport = Arc::new(EmbeddedTransport::new(log.clone()));
        transport.ensure_topic(&TopicSpec::new("in", 1)).await.unwrap();
        let cx = OpenContext { pipeline: "t".into(), transport };
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, BigEndian);
        let mut op = AggregateByKey::new(&store, |s: &mut u64, r: &Record<String, u64>| {
            *s += r.value;
            Ok(())
        });
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        for o in 0..3 {
            assert!(matches!(op.process(rec("a", o)), Outcome::Emit(r) if r.value == o + 1));
        }
        // Offsets 1 and 2 again, as after a crash before the commit.
        assert!(matches!(op.process(rec("a", 1)), Outcome::Emit(r) if r.value == 3));
        assert!(matches!(op.process(rec("a", 2)), Outcome::Emit(r) if r.value == 3));
        assert!(matches!(op.process(rec("a", 3)), Outcome::Emit(r) if r.value == 4));
        op.after_batch().await.unwrap();
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 4, "one changelog record per applied update");

        // A new instance restores the state and the applied offset.
        let mut restored = AggregateByKey::new(&store, |s: &mut u64, r: &Record<String, u64>| {
            *s += r.value;
            Ok(())
        });
        restored.open(&cx).await.unwrap();
        restored.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        assert!(matches!(restored.process(rec("a", 3)), Outcome::Emit(r) if r.value == 4));
        assert!(matches!(restored.process(rec("a", 4)), Outcome::Emit(r) if r.value == 5));
    }

    #[tokio::test]
    async fn without_partitions_a_channel_fed_aggregate_says_what_to_do() {
        let cx = OpenContext { pipeline: "t".into(), transport: Arc::new(EmbeddedTransport::new(EmbeddedLog::new())) };
        let store: StateStore<String, u64> = StateStore::new("c", Utf8, BigEndian);
        let mut op = AggregateByKey::new(&store, |s: &mut u64, _r: &Record<String, u64>| {
            *s += 1;
            Ok(())
        });
        op.open(&cx).await.unwrap();
        assert!(op.process(Record::new("a".into(), 1)).is_emit());
        let err = op.after_batch().await.unwrap_err();
        assert!(err.to_string().contains("with_partitions"), "{err}");
    }

    #[tokio::test]
    async fn step_errors_reject_and_keep_state() {
        let log = EmbeddedLog::new();
        let cx = OpenContext { pipeline: "t".into(), transport: Arc::new(EmbeddedTransport::new(log)) };
        let store: StateStore<String, u64> = StateStore::new("s", Utf8, BigEndian).with_partitions(2);
        let mut op = AggregateByKey::new(&store, |s: &mut u64, r: &Record<String, u64>| {
            if r.value == 0 {
                return Err(Rejection::new("Zero", "zero is not allowed"));
            }
            *s += r.value;
            Ok(())
        });
        op.open(&cx).await.unwrap();
        assert!(op.process(Record::new("a".into(), 2)).is_emit());
        assert!(matches!(op.process(Record::new("a".into(), 0)), Outcome::Reject(r) if r.exception == "Zero"));
        assert!(matches!(op.process(Record::new("a".into(), 1)), Outcome::Emit(r) if r.value == 3));
    }
}
