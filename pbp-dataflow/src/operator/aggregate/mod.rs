//! [`AggregateByKey`]: per-key state in a [`StateStore`], the last state of each key changed in a batch written
//! to a compacted changelog topic, restored before processing.
//!
//! ## State, changelog and restoration
//! The state of a key lives in the aggregate's in-memory store, partitioned like the source: a key's state
//! belongs to the source partition its records come from (records must be partitioned by the aggregation
//! key, as in Kafka Streams; re-key through an intermediate topic otherwise). After each batch, every key the
//! batch changed gets one changelog record with its state as of the end of the batch, in the store's
//! compacted changelog topic, in the partition with the same number: one record per key per batch, however
//! many of the batch's records updated it. Compaction keeps only a key's last record anyway, and restoring
//! needs nothing else (the last state carries the last applied offset, see below), so encoding and writing
//! every intermediate state would be wasted work. When the pipeline is assigned a partition, the aggregate
//! reads that changelog partition up to its end as of that moment before the first record of the partition is
//! processed.
//!
//! ## Emitting once per key and batch
//! By default the aggregate emits the key's new state for every record, as Kafka Streams' aggregates do
//! without a record cache. [`AggregateByKey::emit_per_batch`] (built by
//! [`Stream::aggregate_by_key_per_batch`](crate::pipeline::Stream::aggregate_by_key_per_batch)) emits instead,
//! at the end of each batch, the state of every key the batch touched, once, as of the batch's last record of
//! that key: the role of Kafka Streams' record cache (`statestore.cache.max.bytes`), bounded by the batch
//! instead of by bytes. Downstream then sees every key's latest state after every batch, but not the states in
//! between; that suits a consumer that keeps only the latest state per key (a compacted topic, an upsert into a
//! table) and saves encoding, sending and storing states that the next record of the same batch replaces.
//! The records a state stands for return [`Outcome::Drop`] from `process`; the emitted record carries the
//! key, timestamp, headers and origin of the last record of the key in the batch, and is emitted in the
//! order in which the batch first touched each key. The batch's offsets are committed only after those states
//! are written, like any emitted record's (see [`Operator::end_batch`]). A live batch holds what arrived since
//! the last poll, usually one record per key, so live output barely changes.
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
//! aggregate never writes one: a state codec that encodes a state as null makes
//! [`after_batch`](Operator::after_batch) fail, which stops the pipeline before it commits the batch).

mod store;

use std::sync::Arc;

use async_trait::async_trait;
use hashbrown::hash_map::RawEntryMut;
use hashbrown::{DefaultHashBuilder, HashMap};
use indexmap::IndexMap;

pub use store::{StateStore, StoredState, changelog_value};

use super::{Deferred, OpenContext, Operator};
use crate::error::Error;
use crate::outcome::{Outcome, Rejection};
use crate::partitioner::partition_for_key;
use crate::record::{Headers, Origin, RawRecord, Record, Timestamp};
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
    /// Keys changed since the last `after_batch`, in the order they were first changed (so that the changelog
    /// records of a batch come out in the same order on every run), each with the timestamp of the last record
    /// that changed it.
    dirty: IndexMap<K, Timestamp, DefaultHashBuilder>,
    pending: Vec<OutgoingRecord>,
    /// Emit each touched key's state once, at the end of the batch, instead of after every record.
    per_batch: bool,
    /// With `per_batch`: the keys the batch touched (applied or re-delivered), in the order first touched, each
    /// with the metadata of its last record.
    held: IndexMap<K, Held, DefaultHashBuilder>,
}

/// The record a key's state is emitted as at the end of the batch.
struct Held {
    timestamp: Timestamp,
    headers: Headers,
    origin: Option<Origin>,
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
            dirty: IndexMap::default(),
            pending: Vec::new(),
            per_batch: false,
            held: IndexMap::default(),
        }
    }

    /// Emits each key's state once per batch, after the batch's last record, instead of once per record (see
    /// "Emitting once per key and batch" in the module documentation).
    pub fn emit_per_batch(mut self) -> Self {
        self.per_batch = true;
        self
    }
}

impl<K: std::hash::Hash + Eq + Clone, S, F> AggregateByKey<K, S, F> {
    /// Remembers that `key` changed, at `timestamp`.
    fn mark_dirty(&mut self, key: &K, timestamp: Timestamp) {
        match self.dirty.get_mut(key) {
            Some(last) => *last = timestamp,
            None => {
                self.dirty.insert(key.clone(), timestamp);
            }
        }
    }

    /// Remembers that `record`'s key is to be emitted at the end of the batch, as `record`.
    fn hold<V>(&mut self, record: Record<K, V>) {
        let Record { key, timestamp, headers, origin, .. } = record;
        // A key already held keeps its place and takes this record's metadata.
        self.held.insert(key, Held { timestamp, headers, origin });
    }

    /// Encodes the current state of every dirty key into `pending`, once each, and forgets the dirty keys.
    fn encode_dirty(&mut self) -> Result<(), Error> {
        self.pending.reserve(self.dirty.len());
        for (key, timestamp) in self.dirty.drain(..) {
            // Never `None`: a rejected record dirties nothing, and a revoke drops a key's dirty entry with its
            // state. Checked in tests; in production a broken invariant at least writes nothing wrong.
            let state = self.states.get(&key);
            debug_assert!(state.is_some(), "a dirty key without a state");
            let Some(state) = state else { continue };
            let record =
                changelog_record(&self.store, self.source_topic.as_ref(), self.partitions, &key, state, timestamp)?;
            self.pending.push(record);
        }
        Ok(())
    }
}

/// The changelog record of `key`'s `state`: in the partition of the last source record applied to it, else in
/// the key's hash partition.
fn changelog_record<K, S>(
    store: &StateStore<K, S>,
    source_topic: Option<&Arc<str>>,
    partitions: u32,
    key: &K,
    state: &StoredState<S>,
    timestamp: Timestamp,
) -> Result<OutgoingRecord, Error> {
    // Reported like a record's `Outcome::Fail`: the stage (filled in by `Stage`) and the last record applied to
    // the key, which is the one whose update could not be written.
    let failed = |source: crate::transport::BoxError| Error::StageFailed {
        stage: String::new(),
        origin: match (source_topic, state.applied) {
            (Some(topic), Some((partition, offset))) => Some(Origin { topic: topic.clone(), partition, offset }),
            _ => None,
        },
        source,
    };
    let key_bytes = store.key_codec().encode(key).map_err(|e| failed(e.into()))?;
    let value = changelog_value(store.state_codec(), &state.state, state.applied).map_err(|e| failed(e.into()))?;
    if value.is_none() {
        // A tombstone would delete the key's stored source offset and with it the replay protection.
        return Err(failed(format!("the state codec of store {} encoded a state as null", store.name()).into()));
    }
    let partition = match (state.applied, &key_bytes) {
        (Some((p, _)), _) => p,
        (None, Some(k)) => partition_for_key(k, partitions),
        (None, None) => 0,
    };
    let record = RawRecord { key: key_bytes, value, timestamp, headers: crate::record::Headers::new() };
    Ok(OutgoingRecord { partition: Some(partition), record })
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
        }
        let state = (!self.per_batch).then(|| entry.state.clone());
        if !already_applied {
            // Encoded once per batch, in after_batch: only the key's last state matters for restoring it.
            self.mark_dirty(&record.key, record.timestamp);
        }
        match state {
            Some(state) => Outcome::Emit(record.map_value(|_| state)),
            None => {
                // Re-delivered records are held too: downstream may have lost their first emission in a crash.
                self.hold(record);
                Outcome::Drop
            }
        }
    }

    fn end_batch(&mut self, out: &mut Vec<Deferred<K, S>>) {
        out.reserve(self.held.len());
        for (key, Held { timestamp, headers, origin }) in self.held.drain(..) {
            // Never `None`: a held key has a state (rejected records hold nothing), and a revoke drops held keys
            // with their states.
            let state = self.states.get(&key);
            debug_assert!(state.is_some(), "a held key without a state");
            let Some(state) = state.map(|s| s.state.clone()) else { continue };
            let record = Record { key, value: state, timestamp, headers, origin: origin.clone() };
            out.push((origin, Outcome::Emit(record)));
        }
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
                // Dirty keys of the revoked partitions are dropped with their states, not written. The runner
                // ends every batch with after_batch (which empties `dirty`), and before it hands a revoke over it
                // checkpoints (flush, then commit), so in a pipeline nothing is dirty here. Anything still dirty
                // would belong to records whose offsets were never committed: the new owner restores the changelog
                // and applies them again. Writing them now, after the partition's last checkpoint, could instead
                // land behind the new owner's own changelog records and, as the key's last record, undo its
                // updates.
                let states = &self.states;
                self.held.retain(|key, _| states.contains_key(key));
                self.dirty.retain(|key, _| states.contains_key(key));
            }
        }
        Ok(())
    }

    async fn after_batch(&mut self) -> Result<Vec<crate::sink::SinkRejection>, Error> {
        if self.dirty.is_empty() {
            return Ok(Vec::new());
        }
        if self.source_topic.is_none() && self.store.partitions().is_none() {
            return Err(Error::Config(format!(
                "aggregate {} got records without source partitions (a channel source?): give its store \
                 StateStore::with_partitions(n) so that its changelog exists",
                self.store.name()
            )));
        }
        let producer = self.producer.clone().ok_or_else(|| Error::Config("aggregate not opened".into()))?;
        // An error here (a state that cannot be encoded) leaves the in-memory state ahead of the changelog: the
        // pipeline stops before committing the batch, so that a restart restores and replays it.
        self.encode_dirty()?;
        producer.send(self.store.changelog(), &mut self.pending).await?;
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

    use bytes::Bytes;

    use super::*;
    use crate::codec::{BigEndian, Codec, CodecError, Utf8};
    use crate::log::EmbeddedLog;
    use crate::record::{Origin, TopicPartition};
    use crate::transport::{EmbeddedTransport, TopicSpec, Transport};

    /// A record of `key` with value 1 from partition 0 of `in`, stamped `10 * offset`.
    fn rec(key: &str, offset: u64) -> Record<String, u64> {
        rec_from(key, 0, offset)
    }

    fn rec_from(key: &str, partition: u32, offset: u64) -> Record<String, u64> {
        let mut r = Record::new(key.to_owned(), 1).with_timestamp(offset as i64 * 10);
        r.origin = Some(Origin { topic: "in".into(), partition, offset });
        r
    }

    fn sum(s: &mut u64, r: &Record<String, u64>) -> Result<(), Rejection> {
        *s += r.value;
        Ok(())
    }

    /// A context on `log` with a source topic `in` of `partitions` partitions.
    async fn context(log: &EmbeddedLog, partitions: u32) -> OpenContext {
        let transport = Arc::new(EmbeddedTransport::new(log.clone()));
        transport.ensure_topic(&TopicSpec::new("in", partitions)).await.unwrap();
        OpenContext { pipeline: "t".into(), transport }
    }

    /// A decoded changelog record: key, applied source offset, state, timestamp.
    type Written = (String, Option<(u32, u64)>, u64, Timestamp);

    /// Every changelog record in a partition, decoded.
    fn changelog(log: &EmbeddedLog, topic: &str, partition: u32) -> Vec<Written> {
        let mut raw = Vec::new();
        log.read(topic, partition, 0, usize::MAX, &mut raw).unwrap();
        raw.into_iter()
            .map(|r| {
                let (applied, state) = store::decode_value(r.record.value.as_ref().unwrap()).unwrap();
                let key = Utf8.decode(r.record.key.as_ref()).unwrap();
                (key, applied, BigEndian.decode(Some(&state)).unwrap(), r.record.timestamp)
            })
            .collect()
    }

    fn emitted(outcome: Outcome<Record<String, u64>>) -> u64 {
        match outcome {
            Outcome::Emit(r) => r.value,
            other => panic!("expected an emitted state, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_batch_writes_each_key_once_and_replayed_offsets_are_not_applied_twice() {
        let log = EmbeddedLog::new();
        let cx = context(&log, 1).await;
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, BigEndian);
        let mut op = AggregateByKey::new(&store, sum);
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        for o in 0..3 {
            assert_eq!(emitted(op.process(rec("a", o))), o + 1);
        }
        // Offsets 1 and 2 again, as after a crash before the commit.
        assert_eq!(emitted(op.process(rec("a", 1))), 3);
        assert_eq!(emitted(op.process(rec("a", 2))), 3);
        assert_eq!(emitted(op.process(rec("a", 3))), 4);
        op.after_batch().await.unwrap();
        assert_eq!(
            changelog(&log, "sum-changelog", 0),
            vec![("a".to_owned(), Some((0, 3)), 4, 30)],
            "4 applied updates of one key in one batch: one changelog record, with the last state, the last applied \
             offset and the timestamp of the last record applied (not of the replayed ones)"
        );
        op.after_batch().await.unwrap();
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 1, "a batch that changed nothing writes nothing");

        // A new instance restores the state and the applied offset.
        let mut restored = AggregateByKey::new(&store, sum);
        restored.open(&cx).await.unwrap();
        restored.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        assert_eq!(emitted(restored.process(rec("a", 2))), 4, "offsets up to the last applied one are skipped");
        assert_eq!(emitted(restored.process(rec("a", 3))), 4);
        assert_eq!(emitted(restored.process(rec("a", 4))), 5);
    }

    #[tokio::test]
    async fn interleaved_keys_get_their_last_state_per_batch_in_first_changed_order() {
        let log = EmbeddedLog::new();
        let cx = context(&log, 1).await;
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, BigEndian);
        let mut op = AggregateByKey::new(&store, sum);
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        for (key, offset) in [("a", 0), ("b", 1), ("a", 2), ("b", 3), ("a", 4)] {
            assert!(op.process(rec(key, offset)).is_emit());
        }
        op.after_batch().await.unwrap();
        for (key, offset) in [("b", 5), ("a", 6), ("b", 7)] {
            assert!(op.process(rec(key, offset)).is_emit());
        }
        op.after_batch().await.unwrap();
        assert_eq!(
            changelog(&log, "sum-changelog", 0),
            vec![
                ("a".to_owned(), Some((0, 4)), 3, 40),
                ("b".to_owned(), Some((0, 3)), 2, 30),
                ("b".to_owned(), Some((0, 7)), 4, 70),
                ("a".to_owned(), Some((0, 6)), 4, 60),
            ]
        );

        let restored = store.read_all(cx.transport.as_ref()).await.unwrap();
        assert_eq!(restored["a"], StoredState { state: 4, applied: Some((0, 6)) });
        assert_eq!(restored["b"], StoredState { state: 4, applied: Some((0, 7)) });
        let mut op = AggregateByKey::new(&store, sum);
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        // The second batch delivered again: nothing applied twice, nothing written.
        for (key, offset) in [("b", 5), ("a", 6), ("b", 7)] {
            assert_eq!(emitted(op.process(rec(key, offset))), 4);
        }
        op.after_batch().await.unwrap();
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 4);
        assert_eq!(emitted(op.process(rec("a", 8))), 5);
    }

    #[tokio::test]
    async fn per_batch_emits_each_touched_key_once_with_its_last_state_and_record() {
        let log = EmbeddedLog::new();
        let cx = context(&log, 1).await;
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, BigEndian);
        let step = |s: &mut u64, r: &Record<String, u64>| {
            if r.value == 0 {
                return Err(Rejection::new("Zero", "zero is not allowed"));
            }
            *s += r.value;
            Ok(())
        };
        let mut op = AggregateByKey::new(&store, step).emit_per_batch();
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        let end = |op: &mut AggregateByKey<String, u64, _>| {
            let mut out = Vec::new();
            op.end_batch(&mut out);
            out.into_iter()
                .map(|(origin, outcome)| match outcome {
                    Outcome::Emit(r) => {
                        assert_eq!(r.origin, origin, "the record carries the origin it is deferred with");
                        (r.key, r.value, r.timestamp, origin.map(|o| o.offset))
                    }
                    other => panic!("expected an emitted state, got {other:?}"),
                })
                .collect::<Vec<_>>()
        };
        for (key, offset) in [("a", 0), ("b", 1), ("a", 2), ("b", 3), ("a", 4)] {
            assert!(matches!(op.process(rec(key, offset)), Outcome::Drop), "held back until the end of the batch");
        }
        let mut zero = rec("c", 5);
        zero.value = 0;
        assert!(matches!(op.process(zero), Outcome::Reject(_)), "a rejected record holds nothing");
        assert_eq!(
            end(&mut op),
            [("a".to_owned(), 3, 40, Some(4)), ("b".to_owned(), 2, 30, Some(3))],
            "first-touched order, the last state, the last record's timestamp and origin"
        );
        assert!(end(&mut op).is_empty(), "each batch emits once");
        op.after_batch().await.unwrap();
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 2, "the changelog is written as without per_batch");

        // Re-delivered records change nothing but still emit the key's state (downstream may have lost it).
        let mut restored = AggregateByKey::new(&store, step).emit_per_batch();
        restored.open(&cx).await.unwrap();
        restored.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        assert!(matches!(restored.process(rec("b", 3)), Outcome::Drop));
        assert_eq!(end(&mut restored), [("b".to_owned(), 2, 30, Some(3))]);
        restored.after_batch().await.unwrap();
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 2, "nothing applied, nothing written");
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
    async fn step_errors_reject_keep_state_and_write_nothing() {
        let log = EmbeddedLog::new();
        let cx = OpenContext { pipeline: "t".into(), transport: Arc::new(EmbeddedTransport::new(log.clone())) };
        let store: StateStore<String, u64> = StateStore::new("s", Utf8, BigEndian).with_partitions(2);
        let mut op = AggregateByKey::new(&store, |s: &mut u64, r: &Record<String, u64>| {
            if r.value == 0 {
                return Err(Rejection::new("Zero", "zero is not allowed"));
            }
            *s += r.value;
            Ok(())
        });
        op.open(&cx).await.unwrap();
        let written = || (0..2).map(|p| log.end_offset("s-changelog", p).unwrap()).sum::<u64>();
        assert!(op.process(Record::new("a".into(), 2)).is_emit());
        assert!(matches!(op.process(Record::new("a".into(), 0)), Outcome::Reject(r) if r.exception == "Zero"));
        assert!(matches!(op.process(Record::new("a".into(), 1)), Outcome::Emit(r) if r.value == 3));
        op.after_batch().await.unwrap();
        assert_eq!(written(), 1);
        // Rejected records of a known and of a new key change no state: no changelog record.
        assert!(matches!(op.process(Record::new("a".into(), 0)), Outcome::Reject(_)));
        assert!(matches!(op.process(Record::new("b".into(), 0)), Outcome::Reject(_)));
        op.after_batch().await.unwrap();
        assert_eq!(written(), 1, "rejected records dirty no key");
        assert_eq!(store.read_all(cx.transport.as_ref()).await.unwrap()["a"].state, 3);
    }

    /// Encodes states up to 1; a larger one as null, which a changelog must never hold.
    struct NullAboveOne;

    impl Codec<u64> for NullAboveOne {
        fn encode(&self, v: &u64) -> Result<Option<Bytes>, CodecError> {
            if *v > 1 { Ok(None) } else { BigEndian.encode(v) }
        }
        fn decode(&self, b: Option<&Bytes>) -> Result<u64, CodecError> {
            BigEndian.decode(b)
        }
    }

    #[tokio::test]
    async fn a_state_encoded_as_null_fails_after_the_batch_and_writes_nothing() {
        let log = EmbeddedLog::new();
        let cx = context(&log, 1).await;
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, NullAboveOne);
        let mut op = crate::operator::Stage::new("aggregate:sum", AggregateByKey::new(&store, sum));
        op.open(&cx).await.unwrap();
        op.on_rebalance(&cx, &Rebalance::Assigned(vec![TopicPartition::new("in", 0)])).await.unwrap();
        assert!(op.process(rec("b", 0)).is_emit());
        // The records are processed as usual: the state is encoded only after the batch.
        assert_eq!(emitted(op.process(rec("a", 1))), 1);
        assert_eq!(emitted(op.process(rec("a", 2))), 2);
        match op.after_batch().await {
            Err(Error::StageFailed { stage, origin, source }) => {
                assert_eq!(stage, "aggregate:sum");
                assert_eq!(origin.map(|o| o.to_string()).as_deref(), Some("in[0]@2"), "the last record applied");
                assert!(source.to_string().contains("encoded a state as null"), "{source}");
            }
            other => panic!("expected the batch to fail, got {other:?}"),
        }
        assert_eq!(log.end_offset("sum-changelog", 0).unwrap(), 0, "nothing of the failed batch was written");
    }

    #[tokio::test]
    async fn a_revoke_drops_the_dirty_keys_of_revoked_partitions() {
        // The runner never revokes with dirty keys (see on_rebalance); driven by hand, an operator can.
        let log = EmbeddedLog::new();
        let cx = context(&log, 2).await;
        let store: StateStore<String, u64> = StateStore::new("sum", Utf8, BigEndian);
        let mut op = AggregateByKey::new(&store, sum);
        op.open(&cx).await.unwrap();
        let both = vec![TopicPartition::new("in", 0), TopicPartition::new("in", 1)];
        op.on_rebalance(&cx, &Rebalance::Assigned(both)).await.unwrap();
        for r in [rec_from("a", 0, 0), rec_from("b", 1, 0), rec_from("c", 0, 1), rec_from("b", 1, 1)] {
            assert!(op.process(r).is_emit());
        }
        op.on_rebalance(&cx, &Rebalance::Revoked(vec![TopicPartition::new("in", 1)])).await.unwrap();
        assert!(op.process(rec_from("a", 0, 2)).is_emit());
        op.after_batch().await.unwrap();
        let keys = |p| changelog(&log, "sum-changelog", p).into_iter().map(|(k, ..)| k).collect::<Vec<_>>();
        assert_eq!(keys(0), ["a", "c"], "the kept keys, in the order they were first changed");
        assert!(keys(1).is_empty(), "nothing written for the revoked partition");
    }
}
