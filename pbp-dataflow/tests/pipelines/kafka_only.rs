//! Broker-only behaviour: a slow sink must not cost the pipeline its group membership.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pbp_dataflow::codec::{BigEndian, Utf8};
use pbp_dataflow::sink::{Sink, SinkRejection};
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::{Dataflow, Error, Record, Shutdown};

struct SlowFirstWrite {
    delay: Option<Duration>,
    seen: Arc<parking_lot::Mutex<Vec<u64>>>,
}

#[async_trait]
impl Sink<String, u64> for SlowFirstWrite {
    async fn write(&mut self, batch: &mut Vec<Record<String, u64>>) -> Result<Vec<SinkRejection>, Error> {
        if let Some(d) = self.delay.take() {
            tokio::time::sleep(d).await;
        }
        self.seen.lock().extend(batch.drain(..).map(|r| r.value));
        Ok(Vec::new())
    }
    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_keeps_group_membership_by_pausing() {
    let Some(env) = crate::common::kafka() else { return };
    let brokers = std::env::var("PBP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    // A member that does not poll for max.poll.interval.ms is dropped from its group.
    let config = KafkaConfig::new(brokers)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "6000");
    let transport = Arc::new(KafkaTransport::connect(config).unwrap());
    let (input, group) = (env.name("in"), env.name("g"));
    env.create(&input, 3).await;
    let records: Vec<(String, u64)> = (0..300).map(|i| (format!("k{}", i % 7), i)).collect();
    env.produce(&input, &records, &Utf8, &BigEndian).await;

    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let pipeline = Dataflow::new("slow", transport)
        .source(TopicSource::new(&input, &group, Utf8, BigEndian))
        .to(SlowFirstWrite { delay: Some(Duration::from_secs(8)), seen: seen.clone() });
    let shutdown = Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.lock().len() < 300 {
        assert!(tokio::time::Instant::now() < deadline, "only {} records reached the sink", seen.lock().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a lost membership time to show up as a second assignment and re-delivered records.
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.trigger();
    let stats = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap().unwrap();
    let mut values = seen.lock().clone();
    values.sort_unstable();
    assert_eq!(values, (0..300).collect::<Vec<_>>(), "every record exactly once: the member never left its group");
    assert_eq!(stats.assignments, 1, "no rebalance while the sink was slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_table_joins_a_record_appended_right_after_its_table_entry_with_fast_fetches() {
    // The stream's consumer fetches as eagerly as the table's reader: a play can then arrive before the reader
    // fetched its team, unless the table catches up to the topic's end before the batch is joined.
    let Some(env) = crate::common::kafka_with(&[("fetch.wait.max.ms", "1")]) else { return };
    crate::common::bounded(crate::scenarios::global_table_joins_a_record_appended_right_after_its_table_entry(env))
        .await;
}
