//! A transport-neutral harness: every scenario runs through the `Transport` trait only, so the same tests
//! run on the embedded log and on a broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pbp_dataflow::codec::Codec;
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::record::{ConsumedRecord, RawRecord};
use pbp_dataflow::sink::{Sink, SinkRejection};
use pbp_dataflow::transport::{OutgoingRecord, TopicSpec, read_to_end};
use pbp_dataflow::{Dataflow, EmbeddedLog, EmbeddedTransport, Error, Record, Transport};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Runs a scenario with a time limit, so that a broker problem fails the test instead of hanging CI.
pub async fn bounded(scenario: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(240), scenario).await.expect("scenario did not finish within 240 s");
}

pub struct Env {
    pub transport: Arc<dyn Transport>,
    prefix: String,
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub fn embedded() -> Env {
    init_logging();
    Env { transport: Arc::new(EmbeddedTransport::new(EmbeddedLog::new())), prefix: String::new() }
}

/// An embedded transport whose topics hold at most `capacity_bytes` per partition.
pub fn embedded_with_capacity(capacity_bytes: usize) -> (Env, EmbeddedLog) {
    let log = EmbeddedLog::new();
    let env = Env {
        transport: Arc::new(EmbeddedTransport::new(log.clone()).with_capacity_bytes(capacity_bytes)),
        prefix: String::new(),
    };
    (env, log)
}

/// The broker at `PBP_KAFKA_BROKERS` (default `127.0.0.1:9092`), or `None` with a printed reason when it is
/// unreachable and `PBP_REQUIRE_SERVICES` is not set (with it set, an unreachable broker fails the test).
#[cfg(feature = "kafka")]
pub fn kafka() -> Option<Env> {
    kafka_with(&[])
}

/// [`kafka`] with extra librdkafka properties for every client.
#[cfg(feature = "kafka")]
pub fn kafka_with(properties: &[(&str, &str)]) -> Option<Env> {
    init_logging();
    use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
    let brokers = std::env::var("PBP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let reachable = brokers.split(',').any(|b| std::net::TcpStream::connect(b.trim()).is_ok());
    if !reachable {
        assert!(
            !pbp_dataflow::testing::services_required(),
            "PBP_REQUIRE_SERVICES is set but no Kafka broker answers at {brokers}"
        );
        eprintln!("skipped: no Kafka broker at {brokers} (set PBP_KAFKA_BROKERS, or start tansu)");
        return None;
    }
    let mut config = KafkaConfig::new(brokers).set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "1000");
    for (k, v) in properties {
        config = config.set(*k, *v);
    }
    let run = format!(
        "t{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
    );
    Some(Env { transport: Arc::new(KafkaTransport::connect(config).unwrap()), prefix: format!("{run}-") })
}

impl Env {
    /// A topic or group name unique to this test run.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}-{}", self.prefix, UNIQUE.fetch_add(1, Ordering::Relaxed))
    }

    pub async fn create(&self, topic: &str, partitions: u32) {
        self.transport.ensure_topic(&TopicSpec::new(topic, partitions)).await.unwrap();
    }

    pub async fn create_compacted(&self, topic: &str, partitions: u32) {
        self.transport.ensure_topic(&TopicSpec::compacted(topic, partitions)).await.unwrap();
    }

    pub async fn produce<K, V>(&self, topic: &str, records: &[(K, V)], kc: &dyn Codec<K>, vc: &dyn Codec<V>) {
        let mut out = records
            .iter()
            .map(|(k, v)| OutgoingRecord::from(RawRecord::new(kc.encode(k).unwrap(), vc.encode(v).unwrap())))
            .collect();
        let p = self.transport.producer().unwrap();
        p.send(topic, &mut out).await.unwrap();
        p.flush().await.unwrap();
    }

    pub async fn produce_raw(&self, topic: &str, records: Vec<RawRecord>) {
        let p = self.transport.producer().unwrap();
        p.send(topic, &mut records.into_iter().map(OutgoingRecord::from).collect()).await.unwrap();
        p.flush().await.unwrap();
    }

    /// Every record of the topic, in partition then offset order.
    pub async fn read_all(&self, topic: &str) -> Vec<ConsumedRecord> {
        let n = self.transport.partitions(topic).await.unwrap();
        let partitions: Vec<u32> = (0..n).collect();
        let mut out = Vec::new();
        read_to_end(self.transport.as_ref(), topic, &partitions, |r| out.push(r)).await.unwrap();
        out.sort_by_key(|r| (r.origin.partition, r.origin.offset));
        out
    }

    pub async fn read_decoded<K, V>(&self, topic: &str, kc: &dyn Codec<K>, vc: &dyn Codec<V>) -> Vec<(K, V)> {
        self.read_all(topic)
            .await
            .into_iter()
            .map(|r| (kc.decode(r.record.key.as_ref()).unwrap(), vc.decode(r.record.value.as_ref()).unwrap()))
            .collect()
    }

    pub fn dataflow(&self, name: &str) -> Dataflow {
        Dataflow::new(name, self.transport.clone()).with_config(PipelineConfig {
            batch_size: 256,
            poll_timeout: Duration::from_millis(20),
            ..PipelineConfig::default()
        })
    }
}

/// Wraps a sink; while `fail_flush` is set, `flush` fails, as a crash between writing output and committing
/// offsets would.
pub struct CrashingSink<S> {
    pub inner: S,
    pub fail_flush: Arc<AtomicBool>,
}

#[async_trait]
impl<K: Send + 'static, V: Send + 'static, S: Sink<K, V>> Sink<K, V> for CrashingSink<S> {
    async fn open(&mut self, cx: &pbp_dataflow::operator::OpenContext) -> Result<(), Error> {
        self.inner.open(cx).await
    }
    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error> {
        self.inner.write(batch).await
    }
    async fn flush(&mut self) -> Result<(), Error> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(Error::Sink { sink: "crashing".into(), source: "simulated crash before commit".into() });
        }
        self.inner.flush().await
    }
}
