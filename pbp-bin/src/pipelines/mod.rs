//! The product's pipelines, composed from the library crates:
//!
//! ```text
//! ESPN ─▶ ingest ─▶ ref.teams, raw.scoreboard, raw.plays ─▶ enrich ─▶ enriched.plays, game.state ─▶ serve ─▶ store + cache
//! ```
//!
//! * [`ingest`]: collector events (or recorded summaries) onto the raw topics;
//! * [`enrich`]: the team join, derived fields and the per-game state aggregate ([`game_state`]);
//! * [`serve`]: the topics into the store, through [`store_sink`];
//! * [`convert`]: the conversions between the crates' types;
//! * [`live`]: the ESPN collectors feeding ingest.
//!
//! Every stage runs unchanged on the embedded log or on Kafka; `pbp run` and `pbp replay` run them all in one
//! process, `pbp ingest`, `pbp enrich` and `pbp serve` one each.

pub(crate) mod convert;
pub(crate) mod enrich;
pub(crate) mod game_state;
pub(crate) mod ingest;
pub(crate) mod live;
pub(crate) mod serve;
pub(crate) mod store_sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pbp_dataflow::Error;
use pbp_dataflow::pipeline::PipelineStats;

/// Runs `pipeline` to the end of its input, where the end is known only once `upstream` says it has written
/// everything: rounds of [`run_until_idle`](pbp_dataflow::Pipeline::run_until_idle) until a round that began
/// after `upstream` finished. Then sets `done` for the stages downstream.
pub(crate) async fn drain(
    pipeline: &mut dyn DynPipeline,
    upstream: &[Arc<AtomicBool>],
    done: &AtomicBool,
) -> Result<PipelineStats, Error> {
    let mut polled = 0;
    loop {
        let upstream_done = upstream.iter().all(|u| u.load(Ordering::Acquire));
        let stats = pipeline.run_until_idle().await?;
        if upstream_done {
            done.store(true, Ordering::Release);
            return Ok(stats);
        }
        if stats.polled == polled {
            // Nothing new: give the upstream stage the core.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        polled = stats.polled;
    }
}

/// A pipeline of any shape, boxed behind what the commands need: open, run until idle, run to shutdown.
#[async_trait::async_trait]
pub(crate) trait DynPipeline: Send {
    /// The pipeline's name.
    fn name(&self) -> &str;
    /// Opens it (joins its group, creates its topics).
    async fn open(&mut self) -> Result<(), Error>;
    /// Processes what is available and checkpoints.
    async fn run_until_idle(&mut self) -> Result<PipelineStats, Error>;
    /// Runs until `shutdown`.
    async fn run(self: Box<Self>, shutdown: pbp_dataflow::Shutdown) -> Result<PipelineStats, Error>;
}

#[async_trait::async_trait]
impl<S, O, Sk> DynPipeline for pbp_dataflow::Pipeline<S, O, Sk>
where
    S: pbp_dataflow::source::Source + 'static,
    O: pbp_dataflow::operator::Operator<S::Key, S::Value> + 'static,
    Sk: pbp_dataflow::sink::Sink<O::OutKey, O::OutValue> + 'static,
{
    fn name(&self) -> &str {
        pbp_dataflow::Pipeline::name(self)
    }
    async fn open(&mut self) -> Result<(), Error> {
        pbp_dataflow::Pipeline::open(self).await
    }
    async fn run_until_idle(&mut self) -> Result<PipelineStats, Error> {
        pbp_dataflow::Pipeline::run_until_idle(self).await
    }
    async fn run(self: Box<Self>, shutdown: pbp_dataflow::Shutdown) -> Result<PipelineStats, Error> {
        pbp_dataflow::Pipeline::run(*self, async move { shutdown.wait().await }).await
    }
}
