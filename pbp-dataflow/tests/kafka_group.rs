#![cfg(feature = "kafka")]
//! On a broker: two pipelines in one consumer group split the partitions of their source, and when one stops
//! the other takes its partitions over without losing a record (at-least-once: duplicates are allowed only
//! around the rebalance).
//!
//! Runs against `PBP_KAFKA_BROKERS` (default `127.0.0.1:9092`); skipped with a printed reason when no broker
//! answers, unless `PBP_REQUIRE_SERVICES` is set, which makes an unreachable broker a failure.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pbp_dataflow::codec::{BigEndian, Utf8};
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::sink::TopicSink;
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::{OutgoingRecord, TopicSpec, read_to_end};
use pbp_dataflow::{Codec, Dataflow, RawRecord, Shutdown, Transport};
use tokio::time::{Instant, timeout};

const PARTITIONS: u32 = 6;

fn broker() -> Option<Arc<KafkaTransport>> {
    let brokers = std::env::var("PBP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    if !brokers.split(',').any(|b| std::net::TcpStream::connect(b.trim()).is_ok()) {
        assert!(
            !pbp_dataflow::testing::services_required(),
            "PBP_REQUIRE_SERVICES is set but no Kafka broker answers at {brokers}"
        );
        eprintln!("skipped: no Kafka broker at {brokers} (set PBP_KAFKA_BROKERS, or start tansu)");
        return None;
    }
    let config = KafkaConfig::new(brokers).set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "1000");
    Some(Arc::new(KafkaTransport::connect(config).expect("kafka clients")))
}

async fn produce(transport: &KafkaTransport, topic: &str, values: std::ops::Range<u64>) {
    let mut records: Vec<OutgoingRecord> = values
        .map(|v| {
            let key = Utf8.encode(&format!("k{}", v % 60)).unwrap();
            OutgoingRecord::from(RawRecord::new(key, BigEndian.encode(&v).unwrap()))
        })
        .collect();
    let producer = transport.producer().unwrap();
    producer.send(topic, &mut records).await.unwrap();
    producer.flush().await.unwrap();
}

async fn output_values(transport: &KafkaTransport, topic: &str) -> Vec<u64> {
    let partitions: Vec<u32> = (0..PARTITIONS).collect();
    let mut values = Vec::new();
    read_to_end(transport, topic, &partitions, |r| values.push(BigEndian.decode(r.record.value.as_ref()).unwrap()))
        .await
        .unwrap();
    values
}

/// Waits until every value below `upto` is in the output topic.
async fn wait_for_output(transport: &KafkaTransport, topic: &str, upto: u64, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    loop {
        let values = output_values(transport, topic).await;
        let distinct: HashSet<u64> = values.iter().copied().collect();
        if (0..upto).all(|v| distinct.contains(&v)) {
            return values;
        }
        assert!(Instant::now() < deadline, "only {} of {upto} values reached the output", distinct.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The partitions each member processed records of.
type Seen = Arc<Mutex<BTreeSet<u32>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_and_survive_a_rebalance_without_loss() {
    let Some(transport) = broker() else { return };
    timeout(Duration::from_secs(180), scenario(transport)).await.expect("the scenario took longer than 3 minutes");
}

async fn scenario(transport: Arc<KafkaTransport>) {
    let run = format!("grp{}-{}", std::process::id(), pbp_dataflow::record::now_millis());
    let (input, output, group) = (format!("{run}-in"), format!("{run}-out"), format!("{run}-g"));
    transport.ensure_topic(&TopicSpec::new(&input, PARTITIONS)).await.unwrap();
    transport.ensure_topic(&TopicSpec::new(&output, PARTITIONS)).await.unwrap();
    let dyn_transport: Arc<dyn Transport> = transport.clone();

    let member = |seen: Seen| {
        Dataflow::new("copy", dyn_transport.clone())
            .with_config(PipelineConfig {
                batch_size: 64,
                poll_timeout: Duration::from_millis(20),
                commit_interval: Duration::from_millis(200),
                ..PipelineConfig::default()
            })
            .source(TopicSource::<String, u64>::new(&input, &group, Utf8, BigEndian))
            .filter(move |r| {
                if let Some(origin) = &r.origin {
                    seen.lock().insert(origin.partition);
                }
                true
            })
            .to(TopicSink::new(&output, Utf8, BigEndian))
    };
    let (seen_a, seen_b): (Seen, Seen) = Default::default();
    let (stop_a, stop_b) = (Shutdown::new(), Shutdown::new());
    let a = {
        let (p, s) = (member(seen_a.clone()), stop_a.clone());
        tokio::spawn(async move { p.run(async move { s.wait().await }).await })
    };
    let b = {
        let (p, s) = (member(seen_b.clone()), stop_b.clone());
        tokio::spawn(async move { p.run(async move { s.wait().await }).await })
    };

    // Phase 1: produce in small rounds until both members have processed records (the group has formed and
    // split the partitions).
    let mut produced = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen_a.lock().is_empty() || seen_b.lock().is_empty() {
        assert!(Instant::now() < deadline, "the two members did not both get partitions: a {seen_a:?}, b {seen_b:?}");
        produce(&transport, &input, produced..produced + 60).await;
        produced += 60;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_output(&transport, &output, produced, Duration::from_secs(60)).await;
    // The group is formed: from now on each partition has one owner.
    seen_a.lock().clear();
    seen_b.lock().clear();
    produce(&transport, &input, produced..produced + 600).await;
    produced += 600;
    wait_for_output(&transport, &output, produced, Duration::from_secs(60)).await;
    {
        let (sa, sb) = (seen_a.lock().clone(), seen_b.lock().clone());
        assert!(sa.is_disjoint(&sb), "while both run, each partition has one owner: a {sa:?}, b {sb:?}");
        assert_eq!(sa.union(&sb).count(), PARTITIONS as usize, "all partitions are owned: a {sa:?}, b {sb:?}");
    }

    // Phase 2: stop member a; b takes over its partitions.
    stop_a.trigger();
    let stats_a = timeout(Duration::from_secs(30), a).await.expect("member a stops").unwrap().unwrap();
    assert!(stats_a.polled > 0);
    seen_b.lock().clear();
    let phase_two = produced;
    produce(&transport, &input, phase_two..phase_two + 600).await;
    produced += 600;
    let values = wait_for_output(&transport, &output, produced, Duration::from_secs(60)).await;
    assert_eq!(
        seen_b.lock().len(),
        PARTITIONS as usize,
        "after a left, b processes every partition: {:?}",
        seen_b.lock()
    );
    stop_b.trigger();
    let stats_b = timeout(Duration::from_secs(30), b).await.expect("member b stops").unwrap().unwrap();
    assert!(stats_b.polled > 0);

    // At-least-once: every input value is in the output; duplicates come only from records a read but had
    // not committed when it left.
    let output_values = output_values(&transport, &output).await;
    assert!(output_values.len() >= values.len());
    let mut sorted = output_values.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (0..produced).collect::<Vec<_>>(), "every input value, nothing else");
    let duplicates = output_values.len() as u64 - produced;
    assert!(
        duplicates <= stats_a.polled,
        "duplicates ({duplicates}) only from records a polled ({}) around the rebalance",
        stats_a.polled
    );
    assert_eq!(stats_a.polled + stats_b.polled, output_values.len() as u64, "each polled record was emitted once");
    let _ = transport.delete_topics(&[&input, &output]).await;
}
