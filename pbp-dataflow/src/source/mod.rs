//! Sources: where a pipeline's records come from.
//!
//! A [`Source`] hands out batches of [`Polled`] entries: each is a decoded record, or the reason its bytes
//! could not be decoded (the pipeline dead-letters it with stage `deserialize`), together with the raw
//! record it was read from so that a dead-letter copy keeps the original bytes.

mod channel;
mod topic;

use std::time::Duration;

use async_trait::async_trait;

use crate::codec::CodecError;
use crate::error::Error;
use crate::operator::OpenContext;
use crate::record::{ConsumedRecord, Record, TopicPartition};
use crate::transport::Rebalance;

pub use channel::{ChannelSender, ChannelSource};
pub use topic::TopicSource;

/// One entry of a polled batch.
#[derive(Debug)]
pub struct Polled<K, V> {
    /// The raw record, when the source reads a log. Its origin decides which offset the outcome commits.
    pub raw: Option<ConsumedRecord>,
    /// The decoded record, or why decoding failed.
    pub record: Result<Record<K, V>, DecodeError>,
}

/// Why a raw record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the {part}")]
pub struct DecodeError {
    /// `key` or `value`.
    pub part: &'static str,
    /// The codec's error.
    #[source]
    pub source: CodecError,
}

/// Where records come from.
#[async_trait]
pub trait Source: Send {
    /// Key type.
    type Key: Send + 'static;
    /// Value type.
    type Value: Send + 'static;

    /// Called once before the first poll, e.g. to join a consumer group.
    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error>;

    /// Waits up to `timeout` for records and appends at most `max` entries to `out`. Returns `Ok(false)` when
    /// the source is exhausted and will never have more (a closed channel); topic sources never end.
    /// Cancel-safe.
    async fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Polled<Self::Key, Self::Value>>,
    ) -> Result<bool, Error>;

    /// Commits, per partition, the offset of the next record to read. Sources without offsets ignore it.
    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), Error>;

    /// The next pending change of the partitions this source reads.
    fn next_rebalance(&mut self) -> Option<Rebalance>;

    /// Called after a [`Rebalance::Revoked`] was handled (output flushed, offsets committed); see
    /// [`Consumer::release`](crate::transport::Consumer::release).
    async fn release(&mut self, _partitions: &[TopicPartition]) -> Result<(), Error> {
        Ok(())
    }

    /// Called while the pipeline waits on a slow sink or restores state; see [`Consumer::keep_alive`](crate::transport::Consumer::keep_alive).
    async fn keep_alive(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// True when a poll would return nothing now because everything available was read (a consumer group
    /// still joining is not caught up). Used by [`Pipeline::run_until_idle`](crate::Pipeline::run_until_idle).
    async fn caught_up(&mut self) -> Result<bool, Error> {
        Ok(true)
    }

    /// Records not yet read, per partition, for the consumer-lag metric.
    async fn lag(&mut self) -> Result<Vec<(TopicPartition, u64)>, Error> {
        Ok(Vec::new())
    }
}
