//! `pbp bench espn`: parse, normalize and diff the largest recorded summary many times.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pbp_espn::GameSnapshotState;
use pbp_espn::model;
use pbp_espn::normalize;

/// Options of `pbp bench espn`.
#[derive(Debug, Args)]
pub(crate) struct EspnBenchArgs {
    #[command(flatten)]
    fixtures: Fixtures,
    /// Measured iterations.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Unmeasured warm-up iterations.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
}

pub(crate) fn run(args: EspnBenchArgs) -> anyhow::Result<()> {
    let (path, bytes) = args.fixtures.largest_summary()?;
    let summary = model::parse_summary(&bytes)?;
    let plays = summary.plays.len();
    eprintln!("bench espn: {} ({} bytes, {plays} plays), {} iterations", path.display(), bytes.len(), args.iterations);

    // The steady state of a live poll: the game's state already holds the previous snapshot, so each
    // iteration parses, normalizes and compares every play.
    let mut state = GameSnapshotState::new();
    let mut checksum = 0usize;
    let mut one = |state: &mut GameSnapshotState| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let summary = model::parse_summary(&bytes)?;
        let (_, normalized) = normalize::normalize_summary(&summary, None);
        let diff = state.apply(normalized);
        let elapsed = started.elapsed();
        checksum = checksum.wrapping_add(diff.changes.len() + summary.plays.len());
        Ok(elapsed)
    };
    for _ in 0..args.warmup {
        one(&mut state)?;
    }
    let mut samples = Vec::with_capacity(args.iterations);
    for _ in 0..args.iterations.max(1) {
        samples.push(one(&mut state)?);
    }
    samples.sort();
    let total: Duration = samples.iter().sum();
    let percentile = |p: f64| {
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    let mb_per_sec = (bytes.len() * samples.len()) as f64 / total.as_secs_f64() / 1_000_000.0;
    eprintln!("bench espn: checksum {checksum}");
    let result = serde_json::json!({
        "bench": "espn",
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": bytes.len(),
        "plays": plays,
        "iterations": samples.len(),
        "p50_ms": round3(percentile(0.50)),
        "p99_ms": round3(percentile(0.99)),
        "max_ms": round3(percentile(1.0)),
        "mb_per_sec": round3(mb_per_sec),
    });
    println!("{result}");
    Ok(())
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The folder of recorded ESPN files a benchmark reads.
#[derive(Debug, Args)]
pub(crate) struct Fixtures {
    /// Folder of recorded ESPN files; the benchmark uses the largest site summary with plays.
    #[arg(long, env = "PBP_ESPN_FIXTURES", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn"))]
    pub(crate) dir: PathBuf,
}

impl Fixtures {
    /// The largest summary with plays: its path and bytes.
    pub(crate) fn largest_summary(&self) -> anyhow::Result<(PathBuf, Vec<u8>)> {
        largest_summary(&self.dir)
    }
}

/// The largest file in `dir` that parses as a site summary with plays.
fn largest_summary(dir: &std::path::Path) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let mut best: Option<(PathBuf, Vec<u8>)> = None;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let is_summary = model::parse_summary(&bytes).is_ok_and(|summary| !summary.plays.is_empty());
        if is_summary && best.as_ref().is_none_or(|(_, b)| bytes.len() > b.len()) {
            best = Some((path, bytes));
        }
    }
    best.with_context(|| format!("no site summary with plays in {}", dir.display()))
}
