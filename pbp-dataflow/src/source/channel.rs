//! A source fed from a bounded in-process channel: collectors and other producers of typed records.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Polled, Source};
use crate::error::Error;
use crate::operator::OpenContext;
use crate::record::{Record, TopicPartition};
use crate::transport::Rebalance;

/// The sending half of a [`ChannelSource`]. `send` waits while the channel is full: backpressure reaches
/// the producer of the records.
pub type ChannelSender<K, V> = mpsc::Sender<Record<K, V>>;

/// Records pushed by in-process code. They have no offsets: a record counts as delivered once the pipeline
/// has taken it, so put a durable topic in between if you need at-least-once from the producer.
pub struct ChannelSource<K, V> {
    rx: mpsc::Receiver<Record<K, V>>,
}

impl<K, V> ChannelSource<K, V> {
    /// A source and its sender, holding at most `capacity` records in between.
    pub fn new(capacity: usize) -> (ChannelSender<K, V>, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, Self { rx })
    }
}

#[async_trait]
impl<K: Send + 'static, V: Send + 'static> Source for ChannelSource<K, V> {
    type Key = K;
    type Value = V;

    async fn open(&mut self, _cx: &OpenContext) -> Result<(), Error> {
        Ok(())
    }

    async fn poll(&mut self, max: usize, timeout: Duration, out: &mut Vec<Polled<K, V>>) -> Result<bool, Error> {
        let mut buf = Vec::with_capacity(max.min(1024));
        // recv_many is cancel-safe: nothing is taken from the channel unless it is returned.
        let n = match tokio::time::timeout(timeout, self.rx.recv_many(&mut buf, max)).await {
            Ok(n) => n,
            Err(_) => return Ok(true),
        };
        if n == 0 {
            return Ok(false);
        }
        out.extend(buf.into_iter().map(|r| Polled { raw: None, record: Ok(r) }));
        Ok(true)
    }

    async fn commit(&mut self, _offsets: &[(TopicPartition, u64)]) -> Result<(), Error> {
        Ok(())
    }

    fn next_rebalance(&mut self) -> Option<Rebalance> {
        None
    }
}
