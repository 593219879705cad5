//! Stream–table joins against a [`GlobalTable`].
//!
//! A global table is materialised from a compacted topic, from all of its partitions, on every pipeline
//! instance (Kafka Streams' GlobalKTable). Semantics:
//! - **Bootstrap barrier.** When the pipeline opens, the table reads every partition up to its end offset as
//!   of that moment before the first record is joined.
//! - **Updates apply to later records.** Before each batch is processed (and after it was polled), the table
//!   asks the transport for the end offset of each of its partitions and reads up to it (on Kafka the high
//!   watermark, which tansu can report low: the reader then also waits for librdkafka's end-of-partition
//!   event after its last record). A table record appended before a stream record was *read* is therefore
//!   applied before that record is joined, whatever the table's reader had fetched by then: a play produced
//!   right after its team's record is never dropped (inner join) or joined with nothing (left join). A table
//!   update never re-emits earlier join results.
//! - **Tombstones delete.** A null value removes the key.
//! - **Key mapper.** The join looks the table up by a key derived from each record (`key_of`); `None` means
//!   "no table key".
//! - [`JoinGlobal`] (inner) drops a record whose table key has no entry; [`LeftJoinGlobal`] joins it with
//!   `None`.
//!
//! A table record whose key or value cannot be decoded is skipped with a warning: reference data must not
//! stop the stream, and the table topic's producer is the place to fix it.

mod table;

use async_trait::async_trait;

pub use table::GlobalTable;
use table::Materialized;

use super::{OpenContext, Operator};
use crate::error::Error;
use crate::outcome::Outcome;
use crate::record::Record;

/// Inner join with a global table: `join(value, &table_value)` for records whose table key has an entry.
pub struct JoinGlobal<KT, VT, FK, FJ> {
    table: Materialized<KT, VT>,
    key_of: FK,
    join: FJ,
}

impl<KT, VT, FK, FJ> JoinGlobal<KT, VT, FK, FJ> {
    /// An inner join.
    pub fn new(table: &GlobalTable<KT, VT>, key_of: FK, join: FJ) -> Self {
        Self { table: Materialized::new(table), key_of, join }
    }
}

#[async_trait]
impl<K, V, KT, VT, V2, FK, FJ> Operator<K, V> for JoinGlobal<KT, VT, FK, FJ>
where
    K: Send + 'static,
    V: Send + 'static,
    V2: Send + 'static,
    KT: std::hash::Hash + Eq + Send + Sync + 'static,
    VT: Send + Sync + 'static,
    FK: FnMut(&Record<K, V>) -> Option<KT> + Send,
    FJ: FnMut(V, &VT) -> V2 + Send,
{
    type OutKey = K;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V2>> {
        let Some(key) = (self.key_of)(&record) else { return Outcome::Drop };
        match self.table.get(&key) {
            Some(t) => Outcome::Emit(record.map_value(|v| (self.join)(v, t))),
            None => Outcome::Drop,
        }
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.table.bootstrap(cx).await
    }

    async fn before_batch(&mut self) -> Result<(), Error> {
        self.table.catch_up().await
    }
}

/// Left join with a global table: `join(value, Option<&table_value>)` for every record.
pub struct LeftJoinGlobal<KT, VT, FK, FJ> {
    table: Materialized<KT, VT>,
    key_of: FK,
    join: FJ,
}

impl<KT, VT, FK, FJ> LeftJoinGlobal<KT, VT, FK, FJ> {
    /// A left join.
    pub fn new(table: &GlobalTable<KT, VT>, key_of: FK, join: FJ) -> Self {
        Self { table: Materialized::new(table), key_of, join }
    }
}

#[async_trait]
impl<K, V, KT, VT, V2, FK, FJ> Operator<K, V> for LeftJoinGlobal<KT, VT, FK, FJ>
where
    K: Send + 'static,
    V: Send + 'static,
    V2: Send + 'static,
    KT: std::hash::Hash + Eq + Send + Sync + 'static,
    VT: Send + Sync + 'static,
    FK: FnMut(&Record<K, V>) -> Option<KT> + Send,
    FJ: FnMut(V, Option<&VT>) -> V2 + Send,
{
    type OutKey = K;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V2>> {
        let found = (self.key_of)(&record).and_then(|k| self.table.get(&k));
        Outcome::Emit(record.map_value(|v| (self.join)(v, found)))
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.table.bootstrap(cx).await
    }

    async fn before_batch(&mut self) -> Result<(), Error> {
        self.table.catch_up().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::codec::Utf8;
    use crate::log::{EmbeddedLog, TopicConfig};
    use crate::record::RawRecord;
    use crate::transport::EmbeddedTransport;

    async fn setup(entries: usize) -> (EmbeddedLog, OpenContext, GlobalTable<String, String>) {
        let log = EmbeddedLog::new();
        log.create_topic("teams", TopicConfig::compacted(3)).unwrap();
        for i in 0..entries {
            let r = RawRecord::new(Some(Bytes::from(format!("t{i}"))), Some(Bytes::from(format!("Team {i}"))));
            log.append("teams", None, r).await.unwrap();
        }
        let cx = OpenContext { pipeline: "test".into(), transport: Arc::new(EmbeddedTransport::new(log.clone())) };
        (log, cx, GlobalTable::new("teams", Utf8, Utf8))
    }

    fn join_op(table: &GlobalTable<String, String>) -> impl Operator<String, u32, OutKey = String, OutValue = String> {
        JoinGlobal::new(table, |r: &Record<String, u32>| Some(r.key.clone()), |v: u32, t: &String| format!("{v}@{t}"))
    }

    #[tokio::test]
    async fn open_is_the_bootstrap_barrier() {
        let (_log, cx, table) = setup(5000).await;
        let mut op = join_op(&table);
        op.open(&cx).await.unwrap();
        // No before_batch: everything present at open must already be loaded.
        for i in [0, 2500, 4999] {
            match op.process(Record::new(format!("t{i}"), 1)) {
                Outcome::Emit(r) => assert_eq!(r.value, format!("1@Team {i}")),
                other => panic!("t{i} not loaded at open: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn updates_and_tombstones_apply_after_catch_up() {
        let (log, cx, table) = setup(3).await;
        let mut op = join_op(&table);
        op.open(&cx).await.unwrap();
        log.append("teams", None, RawRecord::new(Some(Bytes::from_static(b"t1")), None)).await.unwrap();
        log.append("teams", None, RawRecord::new(Some(Bytes::from_static(b"t2")), Some(Bytes::from_static(b"New"))))
            .await
            .unwrap();
        assert!(op.process(Record::new("t1".into(), 1)).is_emit(), "not applied before the next batch");
        op.before_batch().await.unwrap();
        assert!(matches!(op.process(Record::new("t1".into(), 1)), Outcome::Drop), "tombstone deletes");
        assert!(matches!(op.process(Record::new("t2".into(), 1)), Outcome::Emit(r) if r.value == "1@New"));
        assert!(matches!(op.process(Record::new("nope".into(), 1)), Outcome::Drop));
    }

    #[tokio::test]
    async fn left_join_passes_missing_keys_as_none() {
        let (_log, cx, table) = setup(1).await;
        let mut op = LeftJoinGlobal::new(
            &table,
            |r: &Record<String, u32>| Some(r.key.clone()),
            |_: u32, t: Option<&String>| t.cloned(),
        );
        op.open(&cx).await.unwrap();
        assert!(
            matches!(op.process(Record::new("t0".into(), 1)), Outcome::Emit(r) if r.value.as_deref() == Some("Team 0"))
        );
        assert!(matches!(op.process(Record::new("t9".into(), 1)), Outcome::Emit(r) if r.value.is_none()));
    }
}
