//! The pipeline runner: poll, process, write, checkpoint.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::offsets::OffsetTracker;
use super::{Dataflow, PipelineConfig};
use crate::dlq::DeadLetterQueue;
use crate::error::Error;
use crate::metrics::{DataflowMetrics, PartitionLabels, PipelineLabels};
use crate::operator::{Deferred, OpenContext, Operator};
use crate::outcome::{Outcome, Rejection};
use crate::record::{ConsumedRecord, Origin, Record, now_millis};
use crate::sink::{Sink, SinkRejection};
use crate::source::{Polled, Source};
use crate::transport::Rebalance;

/// How often a pipeline waiting on its sink, or restoring state, keeps its source alive.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Counts of what a pipeline did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Records polled from the source.
    pub polled: u64,
    /// Records handed to the sink.
    pub emitted: u64,
    /// Records filtered out.
    pub dropped: u64,
    /// Records sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Checkpoints that committed offsets.
    pub commits: u64,
    /// Partition assignments received (the first one included).
    pub assignments: u64,
}

/// A runnable pipeline: source, operator chain, sink and optional dead-letter queue.
///
/// Delivery is at-least-once: at each checkpoint the pipeline flushes the operators' side output
/// (changelogs), the sink and the dead-letter queue, and only then commits source offsets; each batch is
/// processed completely before a checkpoint, so a committed offset never passes a record whose outcome is
/// not yet safe. After a crash, records after the last commit are delivered again.
pub struct Pipeline<S: Source, O: Operator<S::Key, S::Value>, Sk> {
    name: Arc<str>,
    cx: OpenContext,
    metrics: Arc<DataflowMetrics>,
    config: PipelineConfig,
    source: S,
    op: O,
    sink: Sk,
    dlq: Option<DeadLetterQueue>,
    opened: bool,
    exhausted: bool,
    /// Set by any error: in-memory progress (offsets, buffered output) can no longer be trusted, so the
    /// pipeline refuses to run or commit again and must be rebuilt (it then resumes from the last commit).
    failed: bool,
    offsets: OffsetTracker,
    stats: PipelineStats,
    since_commit: usize,
    last_commit: Instant,
    next_tick: Option<Instant>,
    polled: Vec<Polled<S::Key, S::Value>>,
    raw: Vec<Option<ConsumedRecord>>,
    /// Whether each record of the batch in flight ended rejected, in the order the records came (parallel to
    /// `raw` for source records; a tick's records have no raw record). The dead-letter limit counts these once
    /// the batch's fate is known, sink refusals included.
    rejected: Vec<bool>,
    outputs: Vec<super::Out<S, O>>,
    deferred: Vec<Deferred<O::OutKey, O::OutValue>>,
}

impl<S, O, Sk> Pipeline<S, O, Sk>
where
    S: Source,
    O: Operator<S::Key, S::Value>,
    Sk: Sink<O::OutKey, O::OutValue>,
{
    pub(super) fn new(flow: Dataflow, source: S, op: O, sink: Sk) -> Self {
        let cx = OpenContext { pipeline: flow.name.clone(), transport: flow.transport.clone() };
        Self {
            name: flow.name,
            cx,
            metrics: flow.metrics,
            next_tick: None,
            config: flow.config,
            source,
            op,
            sink,
            dlq: None,
            opened: false,
            exhausted: false,
            failed: false,
            offsets: OffsetTracker::default(),
            stats: PipelineStats::default(),
            since_commit: 0,
            last_commit: Instant::now(),
            polled: Vec::new(),
            raw: Vec::new(),
            rejected: Vec::new(),
            outputs: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// Sends rejected records to `dlq`. Without one, a rejected record stops the pipeline.
    pub fn with_dlq(mut self, dlq: DeadLetterQueue) -> Self {
        self.dlq = Some(dlq);
        self
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the pipeline has done so far.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The stage names of the operator chain, in order.
    pub fn stage_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.op.stage_names(&mut names);
        names.into_iter().map(|n| n.to_string()).collect()
    }

    /// Opens source, operators, sink and dead-letter queue (joins the group, bootstraps tables, restores
    /// state). Called by the run methods; call it directly to open without processing.
    pub async fn open(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.opened {
            return Ok(());
        }
        let opened = self.open_all().await;
        self.failed |= opened.is_err();
        opened
    }

    fn check_not_failed(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Config(format!(
                "pipeline {} failed earlier; build it again to resume from its last commit",
                self.name
            )));
        }
        Ok(())
    }

    async fn open_all(&mut self) -> Result<(), Error> {
        self.source.open(&self.cx).await?;
        self.op.open(&self.cx).await?;
        self.sink.open(&self.cx).await?;
        if let Some(dlq) = &mut self.dlq {
            dlq.open(&self.cx).await?;
        }
        self.opened = true;
        self.last_commit = Instant::now();
        self.next_tick = self.config.tick_interval.map(|t| Instant::now() + t);
        self.handle_rebalances().await?;
        tracing::info!(pipeline = %self.name, transport = self.cx.transport.kind(), stages = ?self.stage_names(), "Pipeline open.");
        Ok(())
    }

    /// Runs until `shutdown` completes (or a channel source is exhausted), then finishes the batch in
    /// flight, checkpoints and returns. Errors stop the pipeline without committing the failed batch.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<PipelineStats, Error> {
        let result = self.run_inner(shutdown).await;
        if let Err(error) = &result {
            tracing::error!(pipeline = %self.name, %error, "Pipeline failed; nothing after its last commit was committed.");
        }
        result
    }

    async fn run_inner(
        &mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<PipelineStats, Error> {
        self.open().await?;
        tokio::pin!(shutdown);
        loop {
            self.handle_rebalances().await?;
            let timeout = self.poll_timeout();
            let polled = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = self.source.poll(self.config.batch_size, timeout, &mut self.polled) => r?,
            };
            if !polled {
                self.exhausted = true;
            }
            self.after_poll().await?;
            if self.exhausted && self.polled.is_empty() {
                break;
            }
        }
        self.checkpoint().await?;
        tracing::info!(pipeline = %self.name, stats = ?self.stats, "Pipeline stopped.");
        Ok(self.stats.clone())
    }

    /// Processes everything available, checkpoints and returns: for tests, benchmarks and batch jobs.
    /// "Available" is decided by the source ([`Source::caught_up`]): on Kafka this waits for the group to
    /// be joined and every assigned partition to be read to its end.
    pub async fn run_until_idle(&mut self) -> Result<PipelineStats, Error> {
        self.check_not_failed()?;
        let result = self.run_until_idle_inner().await;
        self.failed |= result.is_err();
        result
    }

    async fn run_until_idle_inner(&mut self) -> Result<PipelineStats, Error> {
        self.open().await?;
        loop {
            self.handle_rebalances().await?;
            let mut more = self.source.poll(self.config.batch_size, Duration::ZERO, &mut self.polled).await?;
            if self.polled.is_empty() && more {
                if self.source.caught_up().await? {
                    break;
                }
                // Not at the end yet (a group still joining, a fetch in flight): wait for input.
                more = self.source.poll(self.config.batch_size, self.config.poll_timeout, &mut self.polled).await?;
            }
            self.after_poll().await?;
            if !more {
                break;
            }
        }
        self.checkpoint().await?;
        Ok(self.stats.clone())
    }

    fn poll_timeout(&self) -> Duration {
        let mut t = self.config.poll_timeout;
        if let Some(next) = self.next_tick {
            t = t.min(next.saturating_duration_since(Instant::now()));
        }
        t
    }

    async fn after_poll(&mut self) -> Result<(), Error> {
        // A rebalance during the poll is handled before its records: state of new partitions is restored
        // first, and records of revoked partitions are left to their new owner.
        self.handle_rebalances().await?;
        let idle = self.polled.is_empty();
        if !idle {
            self.process_batch().await?;
        }
        if let Some(next) = self.next_tick
            && Instant::now() >= next
        {
            self.tick().await?;
        }
        // Checkpoint when there is something to commit and the pipeline is idle (commit what is finished
        // rather than hold it), or the interval or record count is reached.
        let pending = self.since_commit > 0 || !self.offsets.is_empty();
        if pending
            && (idle
                || self.since_commit >= self.config.commit_records
                || self.last_commit.elapsed() >= self.config.commit_interval)
        {
            self.checkpoint().await?;
        }
        Ok(())
    }

    async fn handle_rebalances(&mut self) -> Result<(), Error> {
        while let Some(change) = self.source.next_rebalance() {
            if let Rebalance::Revoked(tps) = &change {
                // Before the partitions go: everything processed of them is finished (batches are processed whole),
                // its output (changelogs, sink, dead letters) acknowledged and its offsets committed, so that the
                // next owner restores state that includes every committed record. Only then are they released.
                self.checkpoint().await?;
                self.source.release(tps).await?;
                self.offsets.forget(tps);
                self.polled.retain(|p| {
                    p.raw.as_ref().is_none_or(|r| {
                        !tps.iter().any(|tp| tp.partition == r.origin.partition && tp.topic == r.origin.topic)
                    })
                });
            }
            if matches!(change, Rebalance::Assigned(_)) {
                self.stats.assignments += 1;
            }
            tracing::info!(pipeline = %self.name, ?change, "Partitions changed.");
            self.rebalance_operators(&change).await?;
        }
        Ok(())
    }

    /// Hands a rebalance to the operators (restoring state can read a long changelog) while keeping the source
    /// alive in its group, as during a slow sink write.
    async fn rebalance_operators(&mut self, change: &Rebalance) -> Result<(), Error> {
        let rebalanced = self.op.on_rebalance(&self.cx, change);
        tokio::pin!(rebalanced);
        loop {
            tokio::select! {
                done = &mut rebalanced => return done,
                () = tokio::time::sleep(KEEP_ALIVE_INTERVAL) => self.source.keep_alive().await?,
            }
        }
    }

    async fn process_batch(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        self.op.before_batch().await?;
        let mut polled = std::mem::take(&mut self.polled);
        self.stats.polled += polled.len() as u64;
        if !polled.is_empty() {
            self.metrics
                .messages_consumed
                .get_or_create(&PipelineLabels { pipeline: self.name.to_string() })
                .inc_by(polled.len() as u64);
        }
        self.raw.clear();
        self.rejected.clear();
        for Polled { raw, record } in polled.drain(..) {
            if let Some(r) = &raw {
                self.offsets.observe(&r.origin);
            }
            let outcome = match record {
                Ok(record) => self.op.process(record),
                Err(e) => Outcome::Reject(Rejection { stage: "deserialize".into(), ..Rejection::from_error(&e) }),
            };
            let rejected = self.settle(outcome, raw.as_ref())?;
            self.rejected.push(rejected);
            self.raw.push(raw);
        }
        self.polled = polled;
        self.end_batch()?;
        self.finish_batch().await?;
        self.since_commit += self.raw.len();
        self.report(started.elapsed());
        Ok(())
    }

    /// Settles what the operators held back until the end of the batch. A record rejected on its way is
    /// dead-lettered as the source record it stands for (still in this batch's `raw`).
    fn end_batch(&mut self) -> Result<(), Error> {
        let mut deferred = std::mem::take(&mut self.deferred);
        self.op.end_batch(&mut deferred);
        for (origin, outcome) in deferred.drain(..) {
            let raw = match (&outcome, &origin) {
                (Outcome::Reject(_) | Outcome::Fail(_), Some(origin)) => self.find_raw(origin),
                _ => None,
            };
            // The record a deferred output stands for was counted when it was processed (as dropped): a rejection
            // now changes its outcome rather than adding one.
            if self.settle(outcome, raw.as_ref())? {
                self.mark_rejected(origin.as_ref());
            }
        }
        self.deferred = deferred;
        Ok(())
    }

    /// Hands the batch's side output and outputs over, dead-letters what the sinks refused, and counts each
    /// emitted record for the dead-letter limit once its final outcome is known.
    async fn finish_batch(&mut self) -> Result<(), Error> {
        if let Some(dlq) = &self.dlq {
            // Stop before anything of the batch is written if the limit is exceeded even with every output
            // taken by the sink (refusals only add rejects, so the final count below would exceed it too).
            dlq.check_outcomes(&self.rejected).map_err(Error::DlqLimitExceeded)?;
        }
        // Dead letters first, acknowledged, then side output: a changelog record must never outlive, in a
        // crash, the dead letter of an earlier record it makes the replay rule skip.
        if let Some(dlq) = &mut self.dlq
            && dlq.has_pending()
        {
            dlq.flush().await?;
        }
        let mut rejected = self.op.after_batch().await?;
        let emitted = self.outputs.len() as u64;
        let refused_by_sink = {
            let r = self.write_to_sink().await?;
            let n = r.len() as u64;
            rejected.extend(r);
            n
        };
        self.stats.emitted += emitted.saturating_sub(refused_by_sink);
        self.dead_letter_sink_rejections(rejected)?;
        if let Some(dlq) = &mut self.dlq {
            // Every record's outcome is known now: count them for the limit in the order they came.
            dlq.count_outcomes(&self.rejected).map_err(Error::DlqLimitExceeded)?;
            self.rejected.clear();
            dlq.send_pending().await?;
        }
        Ok(())
    }

    /// Writes the outputs to the sink. While a slow sink keeps the pipeline from polling, the source is kept
    /// alive (on Kafka: partitions paused, group membership kept) once a second.
    async fn write_to_sink(&mut self) -> Result<Vec<SinkRejection>, Error> {
        let write = self.sink.write(&mut self.outputs);
        tokio::pin!(write);
        loop {
            tokio::select! {
                rejected = &mut write => return rejected,
                () = tokio::time::sleep(KEEP_ALIVE_INTERVAL) => self.source.keep_alive().await?,
            }
        }
    }

    /// Acts on one outcome; returns whether the record was rejected (an emitted record may still be refused by
    /// the sink, see `finish_batch`).
    #[inline]
    fn settle(
        &mut self,
        outcome: Outcome<Record<O::OutKey, O::OutValue>>,
        raw: Option<&ConsumedRecord>,
    ) -> Result<bool, Error> {
        match outcome {
            Outcome::Emit(r) => self.outputs.push(r),
            Outcome::Drop => self.stats.dropped += 1,
            Outcome::Reject(rejection) => {
                self.dead_letter(raw, &rejection)?;
                return Ok(true);
            }
            Outcome::Fail(f) => {
                return Err(Error::StageFailed {
                    stage: f.stage.to_string(),
                    origin: raw.map(|r| r.origin.clone()),
                    source: f.error,
                });
            }
        }
        Ok(false)
    }

    /// Records that the record from `origin` (a record of the batch in flight) ended rejected after all; a
    /// rejection without a known origin counts as one more rejected record.
    fn mark_rejected(&mut self, origin: Option<&Origin>) {
        let position = origin.and_then(|o| self.raw.iter().position(|r| r.as_ref().is_some_and(|r| &r.origin == o)));
        match position.and_then(|i| self.rejected.get_mut(i)) {
            Some(slot) => *slot = true,
            None => self.rejected.push(true),
        }
    }

    fn dead_letter(&mut self, raw: Option<&ConsumedRecord>, rejection: &Rejection) -> Result<(), Error> {
        let Some(dlq) = &mut self.dlq else {
            return Err(Error::rejected(rejection, raw.map(|r| r.origin.clone())));
        };
        tracing::warn!(
            pipeline = %self.name,
            stage = %rejection.stage,
            origin = raw.map(|r| r.origin.to_string()),
            reason = %rejection,
            "Record dead-lettered."
        );
        self.stats.dead_lettered += 1;
        dlq.reject(raw, rejection);
        Ok(())
    }

    fn dead_letter_sink_rejections(&mut self, rejected: Vec<SinkRejection>) -> Result<(), Error> {
        for SinkRejection { origin, mut rejection } in rejected {
            if rejection.stage.is_empty() {
                rejection.stage = "sink".into();
            }
            let raw = origin.as_ref().and_then(|o| self.find_raw(o));
            self.dead_letter(raw.as_ref(), &rejection)?;
            self.mark_rejected(origin.as_ref());
        }
        Ok(())
    }

    fn find_raw(&self, origin: &Origin) -> Option<ConsumedRecord> {
        self.raw.iter().flatten().find(|r| &r.origin == origin).cloned()
    }

    async fn tick(&mut self) -> Result<(), Error> {
        if let (Some(next), Some(interval)) = (self.next_tick, self.config.tick_interval) {
            // Skip missed ticks rather than fire a burst after a stall.
            let mut n = next + interval;
            while n <= Instant::now() {
                n += interval;
            }
            self.next_tick = Some(n);
        }
        let mut outcomes = Vec::new();
        self.op.tick(now_millis(), &mut outcomes);
        if outcomes.is_empty() {
            return Ok(());
        }
        self.rejected.clear();
        for outcome in outcomes {
            let rejected = self.settle(outcome, None)?;
            self.rejected.push(rejected);
        }
        // A tick's records may have been held back like a batch's.
        self.end_batch()?;
        self.finish_batch().await?;
        self.since_commit += 1;
        Ok(())
    }

    /// Flushes side output, the sink and the dead-letter queue, then commits the offsets of every record
    /// processed so far.
    pub async fn checkpoint(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        let result = self.checkpoint_inner().await;
        self.failed |= result.is_err();
        result
    }

    async fn checkpoint_inner(&mut self) -> Result<(), Error> {
        self.op.flush().await?;
        self.sink.flush().await?;
        if let Some(dlq) = &mut self.dlq {
            dlq.flush().await?;
        }
        if !self.offsets.is_empty() {
            let offsets = self.offsets.take();
            self.source.commit(&offsets).await?;
            self.stats.commits += 1;
            self.metrics.commits.get_or_create(&PipelineLabels { pipeline: self.name.to_string() }).inc();
            tracing::debug!(pipeline = %self.name, ?offsets, "Committed.");
        }
        self.since_commit = 0;
        self.last_commit = Instant::now();
        for (tp, lag) in self.source.lag().await? {
            let labels = PartitionLabels {
                pipeline: self.name.to_string(),
                topic: tp.topic.to_string(),
                partition: tp.partition,
            };
            self.metrics.consumer_lag.get_or_create(&labels).set(lag as i64);
        }
        Ok(())
    }

    fn report(&mut self, latency: Duration) {
        let m = &self.metrics;
        self.op.report(&self.name, m);
        if let Some(d) = &mut self.dlq {
            d.report(&self.name, m);
        }
        m.processing_latency
            .get_or_create(&PipelineLabels { pipeline: self.name.to_string() })
            .observe(latency.as_secs_f64());
    }
}
