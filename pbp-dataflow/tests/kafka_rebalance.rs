#![cfg(feature = "kafka")]
//! On a broker: keyed state stays exact while the group changes under it.
//!
//! * A member gives partitions up only after everything it processed of them is flushed (changelog, sink, dead
//!   letters) and committed, so the next owner restores state that includes every committed record, even when
//!   the old owner's producer is slow to deliver.
//! * Restoring a long changelog keeps the member in its group (`max.poll.interval.ms` is not exceeded).
//!
//! Runs against `PBP_KAFKA_BROKERS` (default `127.0.0.1:9092`); skipped with a printed reason when no broker
//! answers, unless `PBP_REQUIRE_SERVICES` is set, which makes an unreachable broker a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pbp_dataflow::codec::{BigEndian, Utf8};
use pbp_dataflow::operator::aggregate::{StateStore, changelog_value};
use pbp_dataflow::operator::{OpenContext, Operator};
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::pipeline::PipelineStats;
use pbp_dataflow::sink::{CollectSink, Collected, Sink, SinkRejection};
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::testing::services_required;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::{OutgoingRecord, Rebalance, TopicSpec};
use pbp_dataflow::{Codec, Dataflow, Error, Outcome, RawRecord, Record, Shutdown, Transport};
use tokio::time::{Instant, timeout};

fn brokers() -> Option<String> {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let brokers = std::env::var("PBP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    if brokers.split(',').any(|b| std::net::TcpStream::connect(b.trim()).is_ok()) {
        return Some(brokers);
    }
    assert!(!services_required(), "PBP_REQUIRE_SERVICES is set but no Kafka broker answers at {brokers}");
    eprintln!("skipped: no Kafka broker at {brokers} (set PBP_KAFKA_BROKERS, or start tansu)");
    None
}

fn transport(brokers: &str, properties: &[(&str, &str)]) -> Arc<dyn Transport> {
    let mut config = KafkaConfig::new(brokers).set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "1000");
    for (k, v) in properties {
        config = config.set(*k, *v);
    }
    Arc::new(KafkaTransport::connect(config).expect("kafka clients"))
}

fn unique(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{base}-{}-{}-{}",
        std::process::id(),
        pbp_dataflow::record::now_millis(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn produce(transport: &dyn Transport, topic: &str, records: &[(String, u64)]) {
    let mut out: Vec<OutgoingRecord> = records
        .iter()
        .map(|(k, v)| OutgoingRecord::from(RawRecord::new(Utf8.encode(k).unwrap(), BigEndian.encode(v).unwrap())))
        .collect();
    let producer = transport.producer().unwrap();
    producer.send(topic, &mut out).await.unwrap();
    producer.flush().await.unwrap();
}

/// Passes records on and counts the assignments its pipeline receives.
struct CountAssignments(Arc<AtomicU64>);

#[async_trait]
impl Operator<String, u64> for CountAssignments {
    type OutKey = String;
    type OutValue = u64;

    fn process(&mut self, record: Record<String, u64>) -> Outcome<Record<String, u64>> {
        Outcome::Emit(record)
    }

    async fn on_rebalance(&mut self, _cx: &OpenContext, change: &Rebalance) -> Result<(), Error> {
        if matches!(change, Rebalance::Assigned(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn sum(state: &mut u64, record: &Record<String, u64>) -> Result<(), pbp_dataflow::Rejection> {
    *state += record.value;
    Ok(())
}

/// Collects what it is given; the first batch that holds a key starting with `slow_prefix` takes `delay` to write,
/// as a store that stalls would, and `stalled` is set while it does.
struct StallOnce {
    inner: CollectSink<String, u64>,
    slow_prefix: Option<&'static str>,
    delay: Duration,
    stalled: Arc<AtomicBool>,
}

#[async_trait]
impl Sink<String, u64> for StallOnce {
    async fn write(&mut self, batch: &mut Vec<Record<String, u64>>) -> Result<Vec<SinkRejection>, Error> {
        if let Some(prefix) = self.slow_prefix
            && batch.iter().any(|r| r.key.starts_with(prefix))
        {
            self.slow_prefix = None;
            self.stalled.store(true, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.stalled.store(false, Ordering::SeqCst);
        }
        self.inner.write(batch).await
    }

    async fn flush(&mut self) -> Result<(), Error> {
        Sink::<String, u64>::flush(&mut self.inner).await
    }
}

/// A counting member of `group`: its assignments, what it emitted, and a handle to stop it.
struct Member {
    assignments: Arc<AtomicU64>,
    emitted: Collected<String, u64>,
    /// Set while the member's sink stalls.
    stalled: Arc<AtomicBool>,
    stop: Shutdown,
    running: tokio::task::JoinHandle<Result<PipelineStats, Error>>,
}

impl Member {
    fn start(transport: Arc<dyn Transport>, input: &str, group: &str, store: &StateStore<String, u64>) -> Self {
        Self::start_stalling(transport, input, group, store, None)
    }

    /// A member whose sink stalls for 4 s on the first batch with a key starting with `stall_on`.
    fn start_stalling(
        transport: Arc<dyn Transport>,
        input: &str,
        group: &str,
        store: &StateStore<String, u64>,
        stall_on: Option<&'static str>,
    ) -> Self {
        let assignments = Arc::new(AtomicU64::new(0));
        let (inner, emitted) = CollectSink::new();
        let stalled = Arc::new(AtomicBool::new(false));
        let sink = StallOnce { inner, slow_prefix: stall_on, delay: Duration::from_secs(4), stalled: stalled.clone() };
        let pipeline = Dataflow::new("count", transport)
            .with_config(PipelineConfig {
                batch_size: 64,
                poll_timeout: Duration::from_millis(20),
                // Commits come from rebalances and shutdown only: what a member processed stays uncommitted
                // until it gives its partitions up.
                commit_interval: Duration::from_secs(600),
                ..PipelineConfig::default()
            })
            .source(TopicSource::new(input, group, Utf8, BigEndian))
            .apply("count-assignments", CountAssignments(assignments.clone()))
            .aggregate_by_key(store, sum)
            .to(sink);
        let stop = Shutdown::new();
        let running = {
            let s = stop.clone();
            tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
        };
        Self { assignments, emitted, stalled, stop, running }
    }

    /// The last state this member emitted for `key`.
    fn last(&self, key: &str) -> Option<u64> {
        self.emitted.lock().iter().rev().find(|r| r.key == key).map(|r| r.value)
    }

    async fn stop(self) -> PipelineStats {
        self.stop.trigger();
        timeout(Duration::from_secs(60), self.running).await.expect("member stops").unwrap().expect("member ran")
    }
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const PARTITIONS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_keeps_exact_state_while_a_member_joins_and_leaves() {
    let Some(brokers) = brokers() else { return };
    timeout(Duration::from_secs(200), join_and_leave(brokers)).await.expect("the scenario took over 200 s");
}

async fn join_and_leave(brokers: String) {
    // Member a's producer holds records back for 5 s: its changelog records reach the broker late.
    let slow = transport(&brokers, &[("linger.ms", "5000")]);
    let fast = transport(&brokers, &[]);
    let (input, group) = (unique("rebal-in"), unique("rebal-g"));
    fast.ensure_topic(&TopicSpec::new(&input, PARTITIONS)).await.unwrap();
    let store: StateStore<String, u64> = StateStore::new(&unique("rebal-count"), Utf8, BigEndian);

    // A steady trickle to other keys keeps both members busy, as a live stream would.
    let filler_counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let filler_on = Arc::new(AtomicBool::new(true));
    let filler = {
        let (t, topic, counts, on) = (fast.clone(), input.clone(), filler_counts.clone(), filler_on.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while on.load(Ordering::SeqCst) {
                let batch: Vec<(String, u64)> = (0..8).map(|j| (format!("f{}", (i + j) % 16), 1)).collect();
                produce(t.as_ref(), &topic, &batch).await;
                for (k, _) in &batch {
                    *counts.lock().entry(k.clone()).or_default() += 1;
                }
                i += 8;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let targets: Vec<String> = (0..24).map(|i| format!("t{i}")).collect();
    let round = || targets.iter().map(|k| (k.clone(), 1)).collect::<Vec<_>>();
    let all_at = |members: &[&Member], n: u64| {
        let done = targets.iter().all(|k| members.iter().any(|m| m.last(k) == Some(n)));
        if !done && std::env::var("RUST_LOG").is_ok() {
            let last: Vec<Vec<Option<u64>>> =
                members.iter().map(|m| targets.iter().map(|k| m.last(k)).collect()).collect();
            tracing::debug!(n, ?last, "waiting for a round");
        }
        done
    };

    // a's sink stalls on the first round: b joins while a is in the middle of that batch, whose changelog
    // records are already handed to a's (slow) producer.
    let a = Member::start_stalling(slow.clone(), &input, &group, &store, Some("t"));
    wait_until("member a has its partitions", Duration::from_secs(60), || a.assignments.load(Ordering::SeqCst) > 0)
        .await;
    produce(fast.as_ref(), &input, &round()).await;
    wait_until("member a writes the first round", Duration::from_secs(60), || a.stalled.load(Ordering::SeqCst)).await;
    let b = Member::start(fast.clone(), &input, &group, &store);
    wait_until("member b has its partitions", Duration::from_secs(60), || b.assignments.load(Ordering::SeqCst) > 0)
        .await;
    // The second round goes to the new owners at once.
    produce(fast.as_ref(), &input, &round()).await;
    wait_until("the second round is counted", Duration::from_secs(60), || all_at(&[&a, &b], 2)).await;

    // Long enough for anything a still had in flight to land.
    tokio::time::sleep(Duration::from_secs(6)).await;

    // b leaves: a takes its partitions back and restores their state from the changelog.
    let stats_b = b.stop().await;
    assert!(stats_b.assignments >= 1);
    produce(fast.as_ref(), &input, &round()).await;
    wait_until("member a counted the third round", Duration::from_secs(60), || all_at(&[&a], 3)).await;
    filler_on.store(false, Ordering::SeqCst);
    filler.await.unwrap();
    let expected_filler = filler_counts.lock().clone();
    wait_until("member a counted every filler record", Duration::from_secs(60), || {
        expected_filler.iter().all(|(k, n)| a.last(k) == Some(*n))
    })
    .await;
    a.stop().await;

    // The state a restart would restore equals what a single member would have counted.
    let restored = store.read_all(fast.as_ref()).await.unwrap();
    let mut expected: HashMap<String, u64> = expected_filler;
    expected.extend(targets.iter().map(|k| (k.clone(), 3)));
    let got: HashMap<String, u64> = restored.into_iter().map(|(k, s)| (k, s.state)).collect();
    assert_eq!(got, expected, "the changelog holds every key's exact count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_long_changelog_keeps_the_member_in_its_group() {
    let Some(brokers) = brokers() else { return };
    timeout(Duration::from_secs(400), long_restore(brokers)).await.expect("the scenario took over 400 s");
}

const CHANGELOG_RECORDS: u64 = 1_000_000;
const KEYS: u64 = 10_000;

async fn long_restore(brokers: String) {
    let t = transport(&brokers, &[]);
    let (input, group) = (unique("restore-in"), unique("restore-g"));
    let store: StateStore<String, u64> = StateStore::new(&unique("restore-sum"), Utf8, BigEndian);
    t.ensure_topic(&TopicSpec::new(&input, 1)).await.unwrap();
    t.ensure_topic(&TopicSpec::compacted(store.changelog(), 1)).await.unwrap();
    // A changelog as a long-lived aggregate leaves it on a broker that never compacts: every key updated
    // a hundred times. The last state of key i is (its last update's index), so a restore that stops early or
    // mixes up records shows.
    let producer = t.producer().unwrap();
    let started = std::time::Instant::now();
    for chunk in 0..(CHANGELOG_RECORDS / 10_000) {
        let mut out: Vec<OutgoingRecord> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| {
                let key = Utf8.encode(&format!("k{}", i % KEYS)).unwrap();
                let value = changelog_value(&BigEndian, &i, None).unwrap();
                OutgoingRecord { partition: Some(0), record: RawRecord::new(key, value) }
            })
            .collect();
        producer.send(store.changelog(), &mut out).await.unwrap();
    }
    producer.flush().await.unwrap();
    eprintln!("wrote {CHANGELOG_RECORDS} changelog records in {:?}", started.elapsed());

    // A member that does not poll for 6 s is dropped from its group; the restore takes longer than that.
    let member_transport = transport(&brokers, &[("max.poll.interval.ms", "6000")]);
    let probe: Vec<(String, u64)> = (0..10).map(|i| (format!("k{i}"), 1)).collect();
    produce(t.as_ref(), &input, &probe).await;
    let started = std::time::Instant::now();
    let member = Member::start(member_transport, &input, &group, &store);
    let last_update = |key: u64| CHANGELOG_RECORDS - KEYS + key;
    wait_until("the probe records were counted on the restored state", Duration::from_secs(300), || {
        (0..10).all(|i| member.last(&format!("k{i}")) == Some(last_update(i) + 1))
    })
    .await;
    eprintln!("restored and counted in {:?}", started.elapsed());
    // A member dropped from its group would be assigned again and restore again: give that time to show.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stats = member.stop().await;
    assert_eq!(stats.assignments, 1, "the member kept its partitions through the restore");
    assert_eq!(stats.polled, 10, "each probe record was delivered once");
}
