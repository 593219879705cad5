//! Operators: the stages between a source and a sink.
//!
//! An [`Operator`] turns one record into one [`Outcome`]. Processing is synchronous and per record, so a
//! chain of operators compiles to nested function calls with no allocation or dynamic dispatch between
//! stages. Work that must wait (reading a table topic, writing a changelog) happens in the async hooks the
//! pipeline calls around each batch:
//!
//! 1. [`Operator::open`] once before the first record, and [`Operator::on_rebalance`] whenever the source's
//!    partitions change (state is restored here, before any record of a new partition is processed);
//! 2. per batch: [`Operator::before_batch`], then [`Operator::process`] for each record, then
//!    [`Operator::end_batch`] (records an operator held back during the batch are emitted), then
//!    [`Operator::after_batch`] (buffered side output is handed to its transport);
//! 3. at each checkpoint, [`Operator::flush`] (side output is acknowledged) before the sink is flushed and
//!    source offsets are committed.
//!
//! Each combinator lives in its own module with its tests.

pub mod aggregate;
pub mod filter;
pub mod join;
pub mod map;
pub mod tap;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Error;
use crate::metrics::DataflowMetrics;
use crate::outcome::Outcome;
use crate::record::{Origin, Record, Timestamp};
use crate::sink::SinkRejection;
use crate::transport::{Rebalance, Transport};

/// What operators get when a pipeline opens them.
#[derive(Clone)]
pub struct OpenContext {
    /// The pipeline's name.
    pub pipeline: Arc<str>,
    /// The transport the pipeline runs on.
    pub transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for OpenContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenContext")
            .field("pipeline", &self.pipeline)
            .field("transport", &self.transport.kind())
            .finish()
    }
}

/// A record an operator emits at the end of a batch ([`Operator::end_batch`]), with the origin of the source
/// record it stands for: if a later stage rejects it, that source record is the one dead-lettered.
pub type Deferred<K, V> = (Option<Origin>, Outcome<Record<K, V>>);

/// A stage of a pipeline: one record in, one [`Outcome`] out.
#[async_trait]
pub trait Operator<K: Send + 'static, V: Send + 'static>: Send {
    /// Key type of emitted records.
    type OutKey: Send + 'static;
    /// Value type of emitted records.
    type OutValue: Send + 'static;

    /// Processes one record. Must not block or panic on any input: bad input is a
    /// [`Reject`](Outcome::Reject).
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<Self::OutKey, Self::OutValue>>;

    /// Called once before the first record.
    async fn open(&mut self, _cx: &OpenContext) -> Result<(), Error> {
        Ok(())
    }

    /// Called when the source's partitions change, before records of newly assigned partitions.
    async fn on_rebalance(&mut self, _cx: &OpenContext, _change: &Rebalance) -> Result<(), Error> {
        Ok(())
    }

    /// Called before each batch is processed, after it was polled.
    async fn before_batch(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Called after the last record of each batch (and after a tick's records), before
    /// [`after_batch`](Operator::after_batch): appends the records the operator held back during the batch
    /// (an aggregate that emits each key's state once per batch returns [`Outcome::Drop`] from `process` and
    /// emits here). They pass through the rest of the chain and reach the sink with the batch, so the batch's
    /// offsets are still committed only once they are written.
    fn end_batch(&mut self, _out: &mut Vec<Deferred<Self::OutKey, Self::OutValue>>) {}

    /// Called after each batch: hand buffered side output to its transport. Returns records a side sink
    /// refused, which the pipeline dead-letters.
    async fn after_batch(&mut self) -> Result<Vec<SinkRejection>, Error> {
        Ok(Vec::new())
    }

    /// Called at each checkpoint: wait until side output handed over so far is acknowledged.
    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Wall-clock tick for timers, at the pipeline's tick interval. Records an operator creates here have no
    /// origin; they pass through the rest of the chain like any other.
    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<Outcome<Record<Self::OutKey, Self::OutValue>>>) {}

    /// Adds this stage's counters since the last report to `metrics` and resets them.
    fn report(&mut self, _pipeline: &str, _metrics: &DataflowMetrics) {}

    /// Renames the last stage of the chain (used by [`Stream::named`](crate::pipeline::Stream::named)).
    fn rename_last(&mut self, _name: Arc<str>) {}

    /// Appends the names of the stages, in order.
    fn stage_names(&self, _out: &mut Vec<Arc<str>>) {}
}

/// The empty chain: emits every record unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl<K: Send + 'static, V: Send + 'static> Operator<K, V> for Identity {
    type OutKey = K;
    type OutValue = V;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V>> {
        Outcome::Emit(record)
    }
}

/// Two operators in sequence.
#[derive(Debug)]
pub struct Then<A, B> {
    first: A,
    second: B,
}

impl<A, B> Then<A, B> {
    /// `first`, then `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

#[async_trait]
impl<K, V, A, B> Operator<K, V> for Then<A, B>
where
    K: Send + 'static,
    V: Send + 'static,
    A: Operator<K, V>,
    B: Operator<A::OutKey, A::OutValue>,
{
    type OutKey = B::OutKey;
    type OutValue = B::OutValue;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<B::OutKey, B::OutValue>> {
        match self.first.process(record) {
            Outcome::Emit(r) => self.second.process(r),
            Outcome::Drop => Outcome::Drop,
            Outcome::Reject(r) => Outcome::Reject(r),
            Outcome::Fail(f) => Outcome::Fail(f),
        }
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.first.open(cx).await?;
        self.second.open(cx).await
    }

    async fn on_rebalance(&mut self, cx: &OpenContext, change: &Rebalance) -> Result<(), Error> {
        self.first.on_rebalance(cx, change).await?;
        self.second.on_rebalance(cx, change).await
    }

    async fn before_batch(&mut self) -> Result<(), Error> {
        self.first.before_batch().await?;
        self.second.before_batch().await
    }

    async fn after_batch(&mut self) -> Result<Vec<SinkRejection>, Error> {
        let mut rejected = self.first.after_batch().await?;
        rejected.extend(self.second.after_batch().await?);
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.first.flush().await?;
        self.second.flush().await
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Outcome<Record<B::OutKey, B::OutValue>>>) {
        let mut first = Vec::new();
        self.first.tick(now, &mut first);
        for outcome in first {
            out.push(outcome.and_then(|r| self.second.process(r)));
        }
        self.second.tick(now, out);
    }

    fn end_batch(&mut self, out: &mut Vec<Deferred<B::OutKey, B::OutValue>>) {
        let mut first = Vec::new();
        self.first.end_batch(&mut first);
        // What the first held back goes through the second before the second releases what it holds.
        for (origin, outcome) in first {
            out.push((origin, outcome.and_then(|r| self.second.process(r))));
        }
        self.second.end_batch(out);
    }

    fn report(&mut self, pipeline: &str, metrics: &DataflowMetrics) {
        self.first.report(pipeline, metrics);
        self.second.report(pipeline, metrics);
    }

    fn rename_last(&mut self, name: Arc<str>) {
        self.second.rename_last(name);
    }

    fn stage_names(&self, out: &mut Vec<Arc<str>>) {
        self.first.stage_names(out);
        self.second.stage_names(out);
    }
}

/// Wraps an operator with a stage name and per-stage counters; fills the stage into its rejections and
/// failures (and into [`Error::StageFailed`] from [`Operator::after_batch`]). Every combinator adds its operator
/// inside a `Stage`.
#[derive(Debug)]
pub struct Stage<O> {
    op: O,
    name: Arc<str>,
    records_in: u64,
    records_out: u64,
}

impl<O> Stage<O> {
    /// A named stage.
    pub fn new(name: impl Into<Arc<str>>, op: O) -> Self {
        Self { op, name: name.into(), records_in: 0, records_out: 0 }
    }

    fn label<T>(&self, outcome: Outcome<T>) -> Outcome<T> {
        match outcome {
            Outcome::Reject(r) => Outcome::Reject(r.with_stage_if_empty(&self.name)),
            Outcome::Fail(mut f) => {
                if f.stage.is_empty() {
                    f.stage = self.name.clone();
                }
                Outcome::Fail(f)
            }
            other => other,
        }
    }
}

#[async_trait]
impl<K, V, O> Operator<K, V> for Stage<O>
where
    K: Send + 'static,
    V: Send + 'static,
    O: Operator<K, V>,
{
    type OutKey = O::OutKey;
    type OutValue = O::OutValue;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<O::OutKey, O::OutValue>> {
        self.records_in += 1;
        match self.op.process(record) {
            Outcome::Emit(r) => {
                self.records_out += 1;
                Outcome::Emit(r)
            }
            Outcome::Drop => Outcome::Drop,
            other => self.label(other),
        }
    }

    async fn open(&mut self, cx: &OpenContext) -> Result<(), Error> {
        self.op.open(cx).await
    }

    async fn on_rebalance(&mut self, cx: &OpenContext, change: &Rebalance) -> Result<(), Error> {
        self.op.on_rebalance(cx, change).await
    }

    async fn before_batch(&mut self) -> Result<(), Error> {
        self.op.before_batch().await
    }

    async fn after_batch(&mut self) -> Result<Vec<SinkRejection>, Error> {
        let name = self.name.clone();
        let mut rejected = match self.op.after_batch().await {
            Ok(rejected) => rejected,
            // An operator that fails while writing a batch's side output (an aggregate's changelog) does not know
            // its stage name, as it does not for a record's `Outcome::Fail`.
            Err(Error::StageFailed { stage, origin, source }) if stage.is_empty() => {
                return Err(Error::StageFailed { stage: name.to_string(), origin, source });
            }
            Err(e) => return Err(e),
        };
        for r in &mut rejected {
            if r.rejection.stage.is_empty() {
                r.rejection.stage = name.clone();
            }
        }
        Ok(rejected)
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.op.flush().await
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Outcome<Record<O::OutKey, O::OutValue>>>) {
        let start = out.len();
        self.op.tick(now, out);
        for slot in &mut out[start..] {
            let outcome = std::mem::replace(slot, Outcome::Drop);
            if outcome.is_emit() {
                self.records_out += 1;
            }
            *slot = self.label(outcome);
        }
    }

    fn end_batch(&mut self, out: &mut Vec<Deferred<O::OutKey, O::OutValue>>) {
        let start = out.len();
        self.op.end_batch(out);
        for (_, slot) in &mut out[start..] {
            let outcome = std::mem::replace(slot, Outcome::Drop);
            if outcome.is_emit() {
                self.records_out += 1;
            }
            *slot = self.label(outcome);
        }
    }

    fn report(&mut self, pipeline: &str, metrics: &DataflowMetrics) {
        let labels = metrics.stage(pipeline, &self.name);
        if self.records_in > 0 {
            metrics.records_in.get_or_create(&labels).inc_by(std::mem::take(&mut self.records_in));
        }
        if self.records_out > 0 {
            metrics.records_out.get_or_create(&labels).inc_by(std::mem::take(&mut self.records_out));
        }
        self.op.report(pipeline, metrics);
    }

    fn rename_last(&mut self, name: Arc<str>) {
        self.name = name;
    }

    fn stage_names(&self, out: &mut Vec<Arc<str>>) {
        out.push(self.name.clone());
    }
}
