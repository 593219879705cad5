//! Sinks: where a pipeline's records end.
//!
//! ## Backpressure and acknowledgement contract
//! [`Sink::write`] takes a batch and returns once the sink has *accepted* it; a full sink makes `write`
//! wait, which stops the pipeline from polling more input (backpressure reaches the source). Accepted is not
//! yet durable: [`Sink::flush`] returns once every accepted record is acknowledged (written to the topic,
//! committed to the database). A pipeline commits source offsets only after `flush` succeeds, so a crash
//! between the two re-delivers records; sinks should be idempotent (at-least-once delivery).
//!
//! A record the sink refuses permanently (it can never be written, such as a constraint violation) comes
//! back from `write` as a [`SinkRejection`] and goes to the dead-letter queue; an error of the sink as a
//! whole (connection lost) is an `Err`, which stops the pipeline without committing.

mod collect;
mod topic;

use async_trait::async_trait;

use crate::error::Error;
use crate::operator::OpenContext;
use crate::outcome::Rejection;
use crate::record::{Origin, Record};

pub use collect::{CollectSink, Collected};
pub use topic::TopicSink;

/// A record a sink refused, with the reason.
#[derive(Debug, Clone)]
pub struct SinkRejection {
    /// The source record it came from, so the pipeline can dead-letter the original bytes.
    pub origin: Option<Origin>,
    /// Why.
    pub rejection: Rejection,
}

/// The end of a pipeline.
#[async_trait]
pub trait Sink<K: Send + 'static, V: Send + 'static>: Send {
    /// Called once before the first write.
    async fn open(&mut self, _cx: &OpenContext) -> Result<(), Error> {
        Ok(())
    }

    /// Accepts the records in `batch` (draining it), waiting while the sink is full. Returns the records it
    /// refuses permanently.
    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error>;

    /// Waits until every accepted record is acknowledged.
    async fn flush(&mut self) -> Result<(), Error>;
}

#[async_trait]
impl<K: Send + 'static, V: Send + 'static> Sink<K, V> for Box<dyn Sink<K, V>> {
    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        (**self).open(cx).await
    }
    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error> {
        (**self).write(batch).await
    }
    async fn flush(&mut self) -> Result<(), Error> {
        (**self).flush().await
    }
}
