//! `pbp bench dataflow`: what the combinator layer costs.
//!
//! The same work runs twice over one embedded log, in one process: once as a pipeline
//! (`map → join_global → aggregate_by_key → TopicSink`) and once written by hand against the embedded
//! log's own API (read, transform, join, update state, append results and changelog, commit). Both read
//! the same pre-loaded input topic through their own consumer group, use the same codecs and the same
//! changelog layout (one changelog record per changed key per batch), and are checked to end in the same state. Each side runs `--rounds` times; the best
//! round of each is reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use clap::Args;
use pbp_dataflow::codec::{BigEndian, Codec, CodecError};
use pbp_dataflow::log::TopicConfig;
use pbp_dataflow::operator::aggregate::{StateStore, changelog_value};
use pbp_dataflow::operator::join::GlobalTable;
use pbp_dataflow::partitioner::partition_for_key;
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::sink::TopicSink;
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::{Dataflow, EmbeddedLog, EmbeddedTransport, Headers, RawRecord, Record};
use serde::Serialize;

/// Options of `pbp bench dataflow`.
#[derive(Debug, Args)]
pub(crate) struct DataflowArgs {
    /// Records to push through each side.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Distinct keys (aggregation groups).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Rounds per side; the best is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Records per pipeline batch (and per hand-loop read).
    #[arg(long, default_value_t = PipelineConfig::DEFAULT.batch_size)]
    batch: usize,
}

const REGIONS: u32 = 100;
const OUTPUT_CAPACITY: usize = 4 << 20;

/// An input event: an amount in cents spent in a region.
#[derive(Debug, Clone, Copy)]
struct Purchase {
    cents: u32,
    region: u32,
}

/// Running totals per customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    purchases: u64,
    cents_with_tax: u64,
}

struct PurchaseCodec;

impl Codec<Purchase> for PurchaseCodec {
    fn encode(&self, v: &Purchase) -> Result<Option<Bytes>, CodecError> {
        let mut b = BytesMut::with_capacity(8);
        b.put_u32(v.cents);
        b.put_u32(v.region);
        Ok(Some(b.freeze()))
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<Purchase, CodecError> {
        let b = bytes.ok_or(CodecError::Null)?;
        let a: [u8; 8] = b.as_ref().try_into().map_err(|_| CodecError::invalid("purchase", "expected 8 bytes"))?;
        Ok(Purchase {
            cents: u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
            region: u32::from_be_bytes([a[4], a[5], a[6], a[7]]),
        })
    }
}

struct TotalsCodec;

impl Codec<Totals> for TotalsCodec {
    fn encode(&self, v: &Totals) -> Result<Option<Bytes>, CodecError> {
        let mut b = BytesMut::with_capacity(16);
        b.put_u64(v.purchases);
        b.put_u64(v.cents_with_tax);
        Ok(Some(b.freeze()))
    }
    fn encode_into(&self, v: &Totals, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        out.extend_from_slice(&v.purchases.to_be_bytes());
        out.extend_from_slice(&v.cents_with_tax.to_be_bytes());
        Ok(true)
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<Totals, CodecError> {
        let b = bytes.ok_or(CodecError::Null)?;
        let a: [u8; 16] = b.as_ref().try_into().map_err(|_| CodecError::invalid("totals", "expected 16 bytes"))?;
        let (p, c) = a.split_at(8);
        Ok(Totals {
            purchases: u64::from_be_bytes(p.try_into().unwrap_or_default()),
            cents_with_tax: u64::from_be_bytes(c.try_into().unwrap_or_default()),
        })
    }
}

/// The shared business logic: both sides call exactly these.
fn to_taxable(p: Purchase) -> (u32, u64) {
    (p.region, u64::from(p.cents) * 100)
}

fn with_tax(value: (u32, u64), tax_bps: &u32) -> u64 {
    value.1 * (10_000 + u64::from(*tax_bps)) / 10_000
}

fn add(totals: &mut Totals, cents: u64) {
    totals.purchases += 1;
    totals.cents_with_tax += cents;
}

#[derive(Serialize)]
struct Report {
    scenario: &'static str,
    records: u64,
    records_per_sec: f64,
    loop_records_per_sec: f64,
    ratio: f64,
}

pub(crate) async fn run(args: DataflowArgs) -> anyhow::Result<()> {
    ensure!(args.records > 0 && args.keys > 0 && args.partitions > 0 && args.rounds > 0, "all counts must be positive");
    let log = EmbeddedLog::new();
    // Big enough to hold the whole pre-loaded input while every group still has it to read.
    let capacity = (args.records as usize * 64) / args.partitions as usize + (1 << 20);
    log.create_topic("bench.purchases", TopicConfig::new(args.partitions).with_capacity_bytes(capacity))?;
    log.create_topic("bench.regions", TopicConfig::compacted(1))?;
    let groups: Vec<(bool, String)> =
        (0..args.rounds).flat_map(|r| [(false, format!("loop-{r}")), (true, format!("pipeline-{r}"))]).collect();
    // A group that never commits keeps the input in memory for every round, so that no round pays for
    // freeing it and all rounds do the same work.
    for g in groups.iter().map(|(_, g)| g.as_str()).chain(["holder"]) {
        log.register_group(g, "bench.purchases")?;
    }
    for region in 0..REGIONS {
        let tax_bps = 500 + region * 7;
        log.append("bench.regions", None, RawRecord::new(BigEndian.encode(&region)?, BigEndian.encode(&tax_bps)?))
            .await?;
    }
    eprintln!("loading {} records into {} partitions...", args.records, args.partitions);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..args.records {
        // A cheap deterministic spread of keys, amounts and regions.
        let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % args.keys;
        let p = Purchase { cents: (i % 9973) as u32 + 1, region: (i % u64::from(REGIONS)) as u32 };
        batch.push((None, RawRecord::new(BigEndian.encode(&key)?, PurchaseCodec.encode(&p)?)));
        if batch.len() == 10_000 {
            log.append_batch("bench.purchases", batch.drain(..)).await?;
        }
    }
    log.append_batch("bench.purchases", batch.drain(..)).await?;

    let mut best_pipeline = f64::MAX;
    let mut best_loop = f64::MAX;
    let mut states: Vec<HashMap<u64, Totals>> = Vec::new();
    for (round, (is_pipeline, group)) in groups.iter().enumerate() {
        let name = format!("r{round}");
        // Nobody reads the outputs: keep them small so that both sides recycle memory the same way.
        log.create_topic(&format!("bench.{name}.out"), TopicConfig::new(4).with_capacity_bytes(OUTPUT_CAPACITY))?;
        let started = Instant::now();
        let state = if *is_pipeline {
            run_pipeline(&log, group, &name, args.batch).await?
        } else {
            run_hand_loop(&log, group, &name, args.partitions, args.batch).await?
        };
        let secs = started.elapsed().as_secs_f64();
        let rate = args.records as f64 / secs;
        eprintln!("{:>8}: {:.3} s, {:.0} records/s", if *is_pipeline { "pipeline" } else { "loop" }, secs, rate);
        if *is_pipeline {
            best_pipeline = best_pipeline.min(secs);
        } else {
            best_loop = best_loop.min(secs);
        }
        states.push(state);
    }
    ensure!(states.windows(2).all(|w| w[0] == w[1]), "the pipeline and the hand loop ended in different states");
    ensure!(states[0].values().map(|t| t.purchases).sum::<u64>() == args.records, "not every record was aggregated");
    let x = args.records as f64 / best_pipeline;
    let y = args.records as f64 / best_loop;
    let report = Report {
        scenario: "dataflow",
        records: args.records,
        records_per_sec: x.round(),
        loop_records_per_sec: y.round(),
        ratio: (x / y * 1000.0).round() / 1000.0,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run_pipeline(
    log: &EmbeddedLog,
    group: &str,
    name: &str,
    batch: usize,
) -> anyhow::Result<HashMap<u64, Totals>> {
    let transport = Arc::new(EmbeddedTransport::new(log.clone()));
    let regions: GlobalTable<u32, u32> = GlobalTable::new("bench.regions", BigEndian, BigEndian);
    let store: StateStore<u64, Totals> = StateStore::new(&format!("bench.{name}.totals"), BigEndian, TotalsCodec);
    let mut pipeline = Dataflow::new(name, transport.clone())
        .with_config(PipelineConfig { batch_size: batch, ..PipelineConfig::default() })
        .source(TopicSource::new("bench.purchases", group, BigEndian, PurchaseCodec))
        .map(to_taxable)
        .join_global(&regions, |r: &Record<u64, (u32, u64)>| Some(r.value.0), with_tax)
        .aggregate_by_key(&store, |t: &mut Totals, r: &Record<u64, u64>| {
            add(t, r.value);
            Ok(())
        })
        .to(TopicSink::new(format!("bench.{name}.out"), BigEndian, TotalsCodec));
    pipeline.run_until_idle().await?;
    drop(pipeline);
    let state = store.read_all(transport.as_ref()).await?;
    Ok(state.into_iter().map(|(k, v)| (k, v.state)).collect())
}

/// The same work without the combinator layer, directly on the embedded log.
async fn run_hand_loop(
    log: &EmbeddedLog,
    group: &str,
    name: &str,
    partitions: u32,
    batch: usize,
) -> anyhow::Result<HashMap<u64, Totals>> {
    let input = "bench.purchases";
    let out = format!("bench.{name}.out");
    let changelog = format!("bench.{name}.totals-changelog");
    log.create_topic(&changelog, TopicConfig::compacted(partitions))?;

    let mut regions: HashMap<u32, u32> = HashMap::new();
    let mut buf = Vec::new();
    log.read("bench.regions", 0, 0, usize::MAX, &mut buf)?;
    for r in buf.drain(..) {
        let k: u32 = BigEndian.decode(r.record.key.as_ref())?;
        let v: u32 = BigEndian.decode(r.record.value.as_ref())?;
        regions.insert(k, v);
    }

    // Per key: totals, last applied offset, and the timestamp of the batch's last change (`Some` while the key
    // waits for its changelog record: one per key per batch, as the aggregate writes them).
    let mut states: hashbrown::HashMap<u64, (Totals, u64, Option<i64>)> = hashbrown::HashMap::new();
    let mut dirty: Vec<u64> = Vec::new();
    let mut positions: Vec<u64> =
        (0..partitions).map(|p| log.committed(group, input, p).map(|c| c.unwrap_or(0))).collect::<Result<_, _>>()?;
    let mut outputs = Vec::with_capacity(4096);
    let mut changes = Vec::with_capacity(4096);
    loop {
        let mut progressed = false;
        for p in 0..partitions {
            let end = log.end_offset(input, p)?;
            if positions[p as usize] >= end {
                continue;
            }
            progressed = true;
            positions[p as usize] = log.read(input, p, positions[p as usize], batch, &mut buf)?;
            for r in buf.drain(..) {
                let key: u64 = BigEndian.decode(r.record.key.as_ref())?;
                let purchase = PurchaseCodec.decode(r.record.value.as_ref())?;
                let taxable = to_taxable(purchase);
                let Some(tax) = regions.get(&taxable.0) else { continue };
                let cents = with_tax(taxable, tax);
                if !states.contains_key(&key) {
                    states.insert(key, (Totals::default(), u64::MAX, None));
                }
                let (totals, applied, changed) = states.get_mut(&key).context("state just inserted")?;
                if *applied != u64::MAX && r.origin.offset <= *applied {
                    continue;
                }
                add(totals, cents);
                *applied = r.origin.offset;
                let ts = r.record.timestamp;
                if changed.replace(ts).is_none() {
                    dirty.push(key);
                }
                let out_key = BigEndian.encode(&key)?;
                let out_partition = out_key.as_ref().map(|k| partition_for_key(k, 4));
                let out_value = TotalsCodec.encode(totals)?;
                outputs.push((
                    out_partition,
                    RawRecord { key: out_key, value: out_value, timestamp: ts, headers: Headers::new() },
                ));
            }
            for key in dirty.drain(..) {
                let (totals, applied, changed) = states.get_mut(&key).context("dirty key has a state")?;
                let ts = changed.take().context("dirty key changed")?;
                let value = changelog_value(&TotalsCodec, totals, Some((p, *applied)))?;
                let record = RawRecord { key: BigEndian.encode(&key)?, value, timestamp: ts, headers: Headers::new() };
                changes.push((Some(p), record));
            }
            log.append_batch(&changelog, changes.drain(..)).await?;
            log.append_batch(&out, outputs.drain(..)).await?;
            log.commit(group, input, p, positions[p as usize])?;
        }
        if !progressed {
            break;
        }
    }
    Ok(states.into_iter().map(|(k, (t, _, _))| (k, t)).collect())
}
