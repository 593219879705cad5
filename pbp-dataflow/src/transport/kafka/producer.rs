//! The Kafka producer: idempotent, `acks=all`, delivery reports awaited per handle, `QueueFull` waited out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;

use crate::transport::{OutgoingRecord, Producer, TransportError};

/// What one producer handle has in flight. Each sink, dead-letter queue and changelog gets its own handle,
/// so that its `flush` waits for its own records only, while all handles share one librdkafka producer.
#[derive(Default)]
pub(super) struct HandleState {
    in_flight: AtomicU64,
    failure: Mutex<Option<String>>,
    settled: Notify,
}

pub(super) struct DeliveryContext;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<HandleState>;

    fn delivery(&self, result: &DeliveryResult<'_>, handle: Arc<HandleState>) {
        if let Err((error, message)) = result {
            use rdkafka::Message as _;
            let failure = format!("delivery to {}[{}] failed: {error}", message.topic(), message.partition());
            tracing::warn!(%error, topic = message.topic(), partition = message.partition(), "Delivery failed.");
            handle.failure.lock().get_or_insert(failure);
        }
        if handle.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            handle.settled.notify_waiters();
        }
    }
}

pub(super) type SharedProducer = ThreadedProducer<DeliveryContext>;

/// A handle on the shared producer.
pub(super) struct KafkaProducer {
    pub(super) shared: Arc<SharedProducer>,
    pub(super) state: Arc<HandleState>,
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, topic: &str, records: &mut Vec<OutgoingRecord>) -> Result<(), TransportError> {
        for OutgoingRecord { partition, record } in records.drain(..) {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (name, value) in record.headers.iter() {
                headers = headers.insert(Header { key: name, value: Some(value.as_ref()) });
            }
            let mut base: BaseRecord<'_, [u8], [u8], Arc<HandleState>> =
                BaseRecord::with_opaque_to(topic, self.state.clone()).timestamp(record.timestamp).headers(headers);
            if let Some(k) = record.key.as_deref() {
                base = base.key(k);
            }
            if let Some(v) = record.value.as_deref() {
                base = base.payload(v);
            }
            if let Some(p) = partition {
                base = base.partition(p as i32);
            }
            // Counted before the send (the delivery report may come before `send` returns) and uncounted by
            // the guard unless the record was enqueued, also when this future is dropped while waiting.
            let mut pending = InFlight::new(&self.state);
            loop {
                match self.shared.send(base) {
                    Ok(()) => {
                        pending.enqueued();
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        // The client's queue is full: wait for deliveries to make room. Never drop.
                        base = returned;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((error, _)) => return Err(TransportError::client(format!("producing to {topic}"), error)),
                }
            }
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), TransportError> {
        loop {
            let settled = self.state.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.state.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            // Wake up now and then in case a notification raced with the check.
            let _ = tokio::time::timeout(Duration::from_millis(50), settled).await;
        }
        // Sticky: once a record of this handle was lost, every later flush reports it.
        match self.state.failure.lock().clone() {
            Some(failure) => Err(TransportError::client("flush", failure)),
            None => Ok(()),
        }
    }
}

/// One record counted in flight until its delivery report, or until dropped without being enqueued.
struct InFlight<'a> {
    state: &'a HandleState,
    enqueued: bool,
}

impl<'a> InFlight<'a> {
    fn new(state: &'a HandleState) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { state, enqueued: false }
    }

    fn enqueued(&mut self) {
        self.enqueued = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.enqueued && self.state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.settled.notify_waiters();
        }
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        if self.state.in_flight.load(Ordering::Acquire) > 0 {
            // Give queued records a chance to leave before the handle goes; the shared producer keeps
            // delivering them either way.
            let _ = self.shared.flush(Duration::from_secs(5));
        }
    }
}
