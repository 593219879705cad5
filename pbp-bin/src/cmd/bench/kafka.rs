//! `pbp bench kafka`: our Kafka transport against bare rdkafka, on the same broker, in the same run.
//!
//! Each side produces the same N records (keys spread over 10,000 values, 100-byte values) to its own fresh
//! topic and then consumes them back in a fresh consumer group:
//! - ours: `Transport::producer` (`send` in batches, then `flush`, which awaits every delivery report) and
//!   the group consumer of `Transport::consumer` (`poll` in batches of 1,024, offsets committed about once a
//!   second, as a pipeline does);
//! - bare: a `ThreadedProducer` with the same settings (idempotent, `acks=all`, `linger.ms=5`,
//!   `murmur2_random`), `QueueFull` waited out, then `flush`; a `StreamConsumer` that counts messages, with
//!   librdkafka's automatic offset commits.
//!
//! Before the clocks start, each producer sends one record to a warm-up topic, so that both are connected
//! and have their idempotent producer id. A side's end-to-end rate is N / (produce time + consume time);
//! `ratio` is ours over bare, end to end; `produce_ratio` and `consume_ratio` compare each half.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Args;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::{ConsumerOptions, OutgoingRecord, TopicSpec};
use pbp_dataflow::{RawRecord, Transport};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use serde::Serialize;

/// Options of `pbp bench kafka`.
#[derive(Debug, Args)]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "PBP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Records per side.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Partitions of each benchmark topic.
    #[arg(long, default_value_t = 6)]
    partitions: u32,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
}

/// Records per `send` call and per `poll`.
const BATCH: usize = 1024;
/// A phase fails when no record moves for this long.
const STALL: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct Report {
    bench: &'static str,
    records: u64,
    produce_per_sec: f64,
    consume_per_sec: f64,
    end_to_end_per_sec: f64,
    bare_produce_per_sec: f64,
    bare_consume_per_sec: f64,
    bare_end_to_end_per_sec: f64,
    ratio: f64,
    produce_ratio: f64,
    consume_ratio: f64,
}

pub(crate) async fn run(args: KafkaArgs) -> anyhow::Result<()> {
    ensure!(args.records > 0 && args.partitions > 0, "--records and --partitions must be positive");
    let run_id =
        format!("bench-kafka-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let (ours_topic, bare_topic, warmup_topic) =
        (format!("{run_id}-ours"), format!("{run_id}-bare"), format!("{run_id}-warmup"));
    let transport = KafkaTransport::connect(KafkaConfig::new(&args.brokers))?;
    for topic in [&ours_topic, &bare_topic, &warmup_topic] {
        transport.ensure_topic(&TopicSpec::new(topic.as_str(), args.partitions)).await?;
    }
    let keys: Vec<Bytes> = (0..10_000).map(|k| Bytes::from(format!("key-{k:05}"))).collect();
    let value = Bytes::from(vec![b'x'; args.value_bytes]);
    let records: Vec<RawRecord> = (0..args.records as usize)
        .map(|i| RawRecord::new(Some(keys[i % keys.len()].clone()), Some(value.clone())))
        .collect();
    eprintln!(
        "{} records of {} value bytes, {} partitions, brokers {}",
        args.records, args.value_bytes, args.partitions, args.brokers
    );

    let result = async {
        // Both producers are connected and have their idempotent producer id before the clocks start.
        let warmup = [RawRecord::new(None, Some(value.clone()))];
        ours_produce(&transport, &warmup_topic, &warmup).await?;
        let bare = BareProducer::new(&args.brokers)?;
        bare.produce(&warmup_topic, &warmup).await?;
        let produce = ours_produce(&transport, &ours_topic, &records).await?;
        eprintln!("  ours  produce: {:.3} s, {:.0} records/s", produce, rate(args.records, produce));
        let consume = ours_consume(&transport, &ours_topic, &format!("{run_id}-ours"), args.records).await?;
        eprintln!("  ours  consume: {:.3} s, {:.0} records/s", consume, rate(args.records, consume));
        let bare_produce = bare.produce(&bare_topic, &records).await?;
        eprintln!("  bare  produce: {:.3} s, {:.0} records/s", bare_produce, rate(args.records, bare_produce));
        let bare_consume = bare_consume(&args.brokers, &bare_topic, &format!("{run_id}-bare"), args.records).await?;
        eprintln!("  bare  consume: {:.3} s, {:.0} records/s", bare_consume, rate(args.records, bare_consume));
        anyhow::Ok((produce, consume, bare_produce, bare_consume))
    }
    .await;
    if let Err(error) = transport.delete_topics(&[&ours_topic, &bare_topic, &warmup_topic]).await {
        tracing::warn!(%error, "could not delete the benchmark topics");
    }
    let (produce, consume, bare_produce, bare_consume) = result?;
    let (ours, bare) = (rate(args.records, produce + consume), rate(args.records, bare_produce + bare_consume));
    let report = Report {
        bench: "kafka",
        records: args.records,
        produce_per_sec: rate(args.records, produce),
        consume_per_sec: rate(args.records, consume),
        end_to_end_per_sec: ours,
        bare_produce_per_sec: rate(args.records, bare_produce),
        bare_consume_per_sec: rate(args.records, bare_consume),
        bare_end_to_end_per_sec: bare,
        ratio: ours / bare,
        produce_ratio: bare_produce / produce,
        consume_ratio: bare_consume / consume,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn rate(records: u64, secs: f64) -> f64 {
    records as f64 / secs.max(1e-9)
}

/// Seconds to hand every record to our producer and have every delivery acknowledged.
async fn ours_produce(transport: &KafkaTransport, topic: &str, records: &[RawRecord]) -> anyhow::Result<f64> {
    let producer = transport.producer()?;
    let mut batch = Vec::with_capacity(BATCH);
    let start = Instant::now();
    for chunk in records.chunks(BATCH) {
        batch.extend(chunk.iter().cloned().map(OutgoingRecord::from));
        producer.send(topic, &mut batch).await?;
    }
    tokio::time::timeout(STALL, producer.flush()).await.context("our producer did not settle")??;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for our group consumer to read `expected` records, committing about once a second.
async fn ours_consume(transport: &KafkaTransport, topic: &str, group: &str, expected: u64) -> anyhow::Result<f64> {
    let options = ConsumerOptions { group: group.to_owned(), topics: vec![topic.to_owned()] };
    let start = Instant::now();
    let mut consumer = transport.consumer(&options).await?;
    let (mut seen, mut bytes) = (0u64, 0usize);
    let mut buf = Vec::with_capacity(BATCH);
    let mut offsets = std::collections::HashMap::new();
    let (mut last_progress, mut last_commit) = (Instant::now(), Instant::now());
    while seen < expected {
        while consumer.next_rebalance().is_some() {}
        consumer.poll(BATCH, Duration::from_millis(100), &mut buf).await?;
        if !buf.is_empty() {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            bail!("our consumer stalled at {seen} of {expected} records");
        }
        for r in buf.drain(..) {
            seen += 1;
            bytes += r.record.value.as_ref().map_or(0, Bytes::len);
            offsets.insert(
                pbp_dataflow::TopicPartition::new(r.origin.topic.clone(), r.origin.partition),
                r.origin.offset + 1,
            );
        }
        if last_commit.elapsed() >= Duration::from_secs(1) || seen >= expected {
            let list: Vec<_> = offsets.drain().collect();
            consumer.commit(&list).await?;
            last_commit = Instant::now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tracing::debug!(seen, bytes, "our consumer done");
    Ok(secs)
}

/// Counts delivery reports and failures of the bare producer.
#[derive(Default)]
struct Deliveries {
    done: AtomicU64,
    failed: AtomicU64,
}

struct BareContext(Arc<Deliveries>);

impl ClientContext for BareContext {}

impl ProducerContext for BareContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.0.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bare `ThreadedProducer` with our producer's settings.
struct BareProducer {
    producer: Arc<ThreadedProducer<BareContext>>,
    deliveries: Arc<Deliveries>,
}

impl BareProducer {
    fn new(brokers: &str) -> anyhow::Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "pbp-bench-bare")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create_with_context(BareContext(deliveries.clone()))?;
        Ok(Self { producer: Arc::new(producer), deliveries })
    }

    /// Seconds to send every record and have it acknowledged.
    async fn produce(&self, topic: &str, records: &[RawRecord]) -> anyhow::Result<f64> {
        let done_before = self.deliveries.done.load(Ordering::Relaxed);
        let start = Instant::now();
        for r in records {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(k) = r.key.as_deref() {
                record = record.key(k);
            }
            if let Some(v) = r.value.as_deref() {
                record = record.payload(v);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((error, _)) => return Err(error).context("bare produce"),
                }
            }
        }
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(STALL))
            .await?
            .context("the bare producer did not settle")?;
        let secs = start.elapsed().as_secs_f64();
        let done = self.deliveries.done.load(Ordering::Relaxed) - done_before;
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        ensure!(done == records.len() as u64 && failed == 0, "bare producer: {done} delivered, {failed} failed");
        Ok(secs)
    }
}

/// Seconds for a bare `StreamConsumer` in a fresh group to read `expected` records.
async fn bare_consume(brokers: &str, topic: &str, group: &str, expected: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "pbp-bench-bare")
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (mut seen, mut bytes) = (0u64, 0usize);
    while seen < expected {
        let message = tokio::time::timeout(STALL, consumer.recv())
            .await
            .with_context(|| format!("the bare consumer stalled at {seen} of {expected} records"))??;
        seen += 1;
        bytes += message.payload().map_or(0, <[u8]>::len);
    }
    let secs = start.elapsed().as_secs_f64();
    tracing::debug!(seen, bytes, "bare consumer done");
    Ok(secs)
}
