//! A sink that keeps records in memory: for tests, examples and in-process consumers.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Sink, SinkRejection};
use crate::error::Error;
use crate::record::Record;

/// The records a [`CollectSink`] received, shared with the code that inspects them.
pub type Collected<K, V> = Arc<Mutex<Vec<Record<K, V>>>>;

/// Appends every record to a shared vector; acknowledges at once.
pub struct CollectSink<K, V> {
    records: Collected<K, V>,
}

impl<K, V> CollectSink<K, V> {
    /// A sink and the handle to what it collects.
    pub fn new() -> (Self, Collected<K, V>) {
        let records: Collected<K, V> = Arc::default();
        (Self { records: records.clone() }, records)
    }
}

#[async_trait]
impl<K: Send + 'static, V: Send + 'static> Sink<K, V> for CollectSink<K, V> {
    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error> {
        self.records.lock().append(batch);
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
