//! [`AlsoTo`]: sends a copy of each record to a side sink and passes the record on, so that one pipeline
//! can write an intermediate result (enriched plays) and a later one (game state).

use async_trait::async_trait;

use super::{OpenContext, Operator};
use crate::error::Error;
use crate::outcome::Outcome;
use crate::record::Record;
use crate::sink::{Sink, SinkRejection};

/// Copies each record into a side sink. The copies of a batch are written after the batch
/// ([`Operator::after_batch`]) and acknowledged at each checkpoint ([`Operator::flush`]), before source
/// offsets are committed.
pub struct AlsoTo<S, K, V> {
    sink: S,
    pending: Vec<Record<K, V>>,
}

impl<S, K, V> AlsoTo<S, K, V> {
    /// A tap into `sink`.
    pub fn new(sink: S) -> Self {
        Self { sink, pending: Vec::new() }
    }
}

#[async_trait]
impl<K, V, S> Operator<K, V> for AlsoTo<S, K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: Sink<K, V>,
{
    type OutKey = K;
    type OutValue = V;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V>> {
        self.pending.push(record.clone());
        Outcome::Emit(record)
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.sink.open(cx).await
    }

    async fn after_batch(&mut self) -> Result<Vec<SinkRejection>, Error> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        self.sink.write(&mut self.pending).await
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.sink.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::CollectSink;

    #[tokio::test]
    async fn copies_go_to_the_side_sink_after_the_batch() {
        let (sink, seen) = CollectSink::new();
        let mut op = AlsoTo::new(sink);
        assert!(op.process(Record::new(1u8, "a")).is_emit());
        assert!(op.process(Record::new(2u8, "b")).is_emit());
        assert!(seen.lock().is_empty(), "side output waits for the end of the batch");
        op.after_batch().await.unwrap();
        assert_eq!(seen.lock().iter().map(|r| r.key).collect::<Vec<_>>(), vec![1, 2]);
    }
}
