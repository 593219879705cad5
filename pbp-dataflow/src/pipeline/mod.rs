//! Building a pipeline as one chain, and running it.
//!
//! ```
//! use std::sync::Arc;
//! use pbp_dataflow::codec::{Json, Utf8};
//! use pbp_dataflow::pipeline::Dataflow;
//! use pbp_dataflow::sink::CollectSink;
//! use pbp_dataflow::source::TopicSource;
//! use pbp_dataflow::{EmbeddedLog, EmbeddedTransport};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), pbp_dataflow::Error> {
//! let transport = Arc::new(EmbeddedTransport::new(EmbeddedLog::new()));
//! let (sink, out) = CollectSink::new();
//! let mut pipeline = Dataflow::new("lengths", transport)
//!     .source(TopicSource::new("words", "lengths", Utf8, Utf8).create_if_missing(1))
//!     .filter(|r| !r.value.is_empty())
//!     .map(|word: String| word.len() as u64)
//!     .to(sink);
//! pipeline.run_until_idle().await?;
//! assert!(out.lock().is_empty());
//! # Ok(()) }
//! ```

// Combinator signatures are nested generic types by design (that is what makes the chain inline).
#![allow(clippy::type_complexity)]

mod offsets;
mod run;
mod shutdown;

use std::sync::Arc;
use std::time::Duration;

pub use run::{Pipeline, PipelineStats};
pub use shutdown::Shutdown;

use crate::metrics::DataflowMetrics;
use crate::operator::aggregate::{AggregateByKey, StateStore};
use crate::operator::filter::{Filter, FilterMapValues};
use crate::operator::join::{GlobalTable, JoinGlobal, LeftJoinGlobal};
use crate::operator::map::{MapRecord, MapValues, ProcessFn, TryMapValues};
use crate::operator::tap::AlsoTo;
use crate::operator::{Identity, Operator, Stage, Then};
use crate::outcome::{Outcome, Rejection};
use crate::record::Record;
use crate::sink::Sink;
use crate::source::Source;
use crate::transport::Transport;

/// How a pipeline polls, commits and ticks.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Largest number of records polled and processed as one batch.
    pub batch_size: usize,
    /// Longest wait for input before the pipeline checks for timers, idle commits and shutdown.
    pub poll_timeout: Duration,
    /// Commit at least this often while records flow (Kafka Streams' `commit.interval.ms`).
    pub commit_interval: Duration,
    /// Commit after this many records even before `commit_interval`.
    pub commit_records: usize,
    /// Wall-clock tick interval for operators with timers; `None` disables ticks.
    pub tick_interval: Option<Duration>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PipelineConfig {
    /// The defaults, as a constant.
    pub const DEFAULT: Self = Self {
        batch_size: 1024,
        poll_timeout: Duration::from_millis(100),
        commit_interval: Duration::from_secs(1),
        commit_records: 100_000,
        tick_interval: None,
    };
}

/// The start of a pipeline: its name, the transport it runs on, metrics and configuration.
#[derive(Clone)]
pub struct Dataflow {
    name: Arc<str>,
    transport: Arc<dyn Transport>,
    metrics: Arc<DataflowMetrics>,
    config: PipelineConfig,
}

impl std::fmt::Debug for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataflow").field("name", &self.name).field("transport", &self.transport.kind()).finish()
    }
}

impl Dataflow {
    /// A pipeline called `name` on `transport`, with its own (unregistered) metrics and default configuration.
    pub fn new(name: &str, transport: Arc<dyn Transport>) -> Self {
        Self { name: name.into(), transport, metrics: Arc::default(), config: PipelineConfig::default() }
    }

    /// Reports into shared metrics (see [`DataflowMetrics::register`]).
    pub fn with_metrics(mut self, metrics: Arc<DataflowMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the configuration.
    pub fn with_config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Starts the chain at `source`.
    pub fn source<S: Source>(self, source: S) -> Stream<S, Identity> {
        Stream { flow: self, source, op: Identity }
    }
}

/// A chain under construction: a source and the operators after it.
pub struct Stream<S, O> {
    flow: Dataflow,
    source: S,
    op: O,
}

pub(crate) type Out<S, O> = Record<
    <O as Operator<<S as Source>::Key, <S as Source>::Value>>::OutKey,
    <O as Operator<<S as Source>::Key, <S as Source>::Value>>::OutValue,
>;

impl<S, O> Stream<S, O>
where
    S: Source,
    O: Operator<S::Key, S::Value>,
{
    /// Appends any operator as a stage called `name`.
    pub fn apply<N>(self, name: &str, op: N) -> Stream<S, Then<O, Stage<N>>>
    where
        N: Operator<O::OutKey, O::OutValue>,
    {
        Stream { flow: self.flow, source: self.source, op: Then::new(self.op, Stage::new(name, op)) }
    }

    /// Renames the last stage (stage names appear in metrics and dead-letter headers).
    pub fn named(mut self, name: &str) -> Self {
        self.op.rename_last(name.into());
        self
    }

    /// Maps each value.
    pub fn map<V2, F>(self, f: F) -> Stream<S, Then<O, Stage<MapValues<F, V2>>>>
    where
        V2: Send + 'static,
        F: FnMut(O::OutValue) -> V2 + Send,
    {
        self.apply("map", MapValues::new(f))
    }

    /// Maps each record; may change key and value.
    pub fn map_record<K2, V2, F>(self, f: F) -> Stream<S, Then<O, Stage<MapRecord<F, K2, V2>>>>
    where
        K2: Send + 'static,
        V2: Send + 'static,
        F: FnMut(Out<S, O>) -> Record<K2, V2> + Send,
    {
        self.apply("map_record", MapRecord::new(f))
    }

    /// Maps each value with a fallible function; errors reject the record to the dead-letter queue.
    pub fn try_map<V2, E, F>(self, f: F) -> Stream<S, Then<O, Stage<TryMapValues<F, V2, E>>>>
    where
        V2: Send + 'static,
        E: std::error::Error + 'static,
        F: FnMut(&O::OutValue) -> Result<V2, E> + Send,
    {
        self.apply("try_map", TryMapValues::new(f))
    }

    /// Decides each record's [`Outcome`] with a closure.
    pub fn process<K2, V2, F>(self, f: F) -> Stream<S, Then<O, Stage<ProcessFn<F, K2, V2>>>>
    where
        K2: Send + 'static,
        V2: Send + 'static,
        F: FnMut(Out<S, O>) -> Outcome<Record<K2, V2>> + Send,
    {
        self.apply("process", ProcessFn::new(f))
    }

    /// Keeps records for which `f` is true; the others are dropped (their offsets still advance).
    pub fn filter<F>(self, f: F) -> Stream<S, Then<O, Stage<Filter<F>>>>
    where
        F: FnMut(&Out<S, O>) -> bool + Send,
    {
        self.apply("filter", Filter::new(f))
    }

    /// Maps each value to `Some` (kept) or `None` (dropped).
    pub fn filter_map<V2, F>(self, f: F) -> Stream<S, Then<O, Stage<FilterMapValues<F, V2>>>>
    where
        V2: Send + 'static,
        F: FnMut(O::OutValue) -> Option<V2> + Send,
    {
        self.apply("filter_map", FilterMapValues::new(f))
    }

    /// Inner join with a global table through the key mapper `key_of`.
    pub fn join_global<KT, VT, V2, FK, FJ>(
        self,
        table: &GlobalTable<KT, VT>,
        key_of: FK,
        join: FJ,
    ) -> Stream<S, Then<O, Stage<JoinGlobal<KT, VT, FK, FJ>>>>
    where
        KT: std::hash::Hash + Eq + Send + Sync + 'static,
        VT: Send + Sync + 'static,
        V2: Send + 'static,
        FK: FnMut(&Out<S, O>) -> Option<KT> + Send,
        FJ: FnMut(O::OutValue, &VT) -> V2 + Send,
    {
        self.apply("join_global", JoinGlobal::new(table, key_of, join))
    }

    /// Left join with a global table through the key mapper `key_of`.
    pub fn left_join_global<KT, VT, V2, FK, FJ>(
        self,
        table: &GlobalTable<KT, VT>,
        key_of: FK,
        join: FJ,
    ) -> Stream<S, Then<O, Stage<LeftJoinGlobal<KT, VT, FK, FJ>>>>
    where
        KT: std::hash::Hash + Eq + Send + Sync + 'static,
        VT: Send + Sync + 'static,
        V2: Send + 'static,
        FK: FnMut(&Out<S, O>) -> Option<KT> + Send,
        FJ: FnMut(O::OutValue, Option<&VT>) -> V2 + Send,
    {
        self.apply("left_join_global", LeftJoinGlobal::new(table, key_of, join))
    }

    /// Folds records into per-key state in `store` and emits each new state.
    pub fn aggregate_by_key<St, F>(
        self,
        store: &StateStore<O::OutKey, St>,
        step: F,
    ) -> Stream<S, Then<O, Stage<AggregateByKey<O::OutKey, St, F>>>>
    where
        O::OutKey: std::hash::Hash + Eq + Clone + Send + Sync,
        St: Clone + Default + Send + Sync + 'static,
        F: FnMut(&mut St, &Out<S, O>) -> Result<(), Rejection> + Send,
    {
        let name = format!("aggregate:{}", store.name());
        self.apply(&name, AggregateByKey::new(store, step))
    }

    /// Like [`aggregate_by_key`](Self::aggregate_by_key), but emits each key's state once per batch, after
    /// the batch's last record of the key, instead of after every record (Kafka Streams' record cache; see
    /// [`AggregateByKey::emit_per_batch`]). For consumers that keep only the latest state per key.
    pub fn aggregate_by_key_per_batch<St, F>(
        self,
        store: &StateStore<O::OutKey, St>,
        step: F,
    ) -> Stream<S, Then<O, Stage<AggregateByKey<O::OutKey, St, F>>>>
    where
        O::OutKey: std::hash::Hash + Eq + Clone + Send + Sync,
        St: Clone + Default + Send + Sync + 'static,
        F: FnMut(&mut St, &Out<S, O>) -> Result<(), Rejection> + Send,
    {
        let name = format!("aggregate:{}", store.name());
        self.apply(&name, AggregateByKey::new(store, step).emit_per_batch())
    }

    /// Sends a copy of each record to `sink` and passes it on.
    pub fn also_to<Sk>(self, sink: Sk) -> Stream<S, Then<O, Stage<AlsoTo<Sk, O::OutKey, O::OutValue>>>>
    where
        O::OutKey: Clone + Send + Sync,
        O::OutValue: Clone + Send + Sync,
        Sk: Sink<O::OutKey, O::OutValue>,
    {
        self.apply("also_to", AlsoTo::new(sink))
    }

    /// Ends the chain at `sink`: a runnable [`Pipeline`].
    pub fn to<Sk>(self, sink: Sk) -> Pipeline<S, O, Sk>
    where
        Sk: Sink<O::OutKey, O::OutValue>,
    {
        Pipeline::new(self.flow, self.source, self.op, sink)
    }
}
