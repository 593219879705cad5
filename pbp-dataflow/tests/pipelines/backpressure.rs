//! A slow sink slows the producer of the pipeline's input; memory stays bounded. Embedded log only: a
//! broker bounds memory by its own disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pbp_dataflow::codec::{BigEndian, Utf8};
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::sink::{Sink, SinkRejection};
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::{Error, RawRecord, Record, Shutdown};

use crate::common::embedded_with_capacity;

struct SlowSink {
    seen: Arc<parking_lot::Mutex<Vec<u64>>>,
}

#[async_trait]
impl Sink<String, u64> for SlowSink {
    async fn write(&mut self, batch: &mut Vec<Record<String, u64>>) -> Result<Vec<SinkRejection>, Error> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.seen.lock().extend(batch.drain(..).map(|r| r.value));
        Ok(Vec::new())
    }
    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_applies_backpressure_with_bounded_memory() {
    const CAPACITY: usize = 16 * 1024;
    const RECORDS: u64 = 5000;
    const CHUNK: u64 = 50;
    let (env, log) = embedded_with_capacity(CAPACITY);
    let input = env.name("in");
    env.create(&input, 1).await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let config = PipelineConfig { batch_size: 64, commit_records: 64, ..PipelineConfig::default() };
    let pipeline = env
        .dataflow("slow")
        .with_config(config)
        .source(TopicSource::new(&input, "slow-group", Utf8, BigEndian))
        .to(SlowSink { seen: seen.clone() });
    let shutdown = Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
    };
    // Wait until the group is registered, so that the log applies backpressure rather than retention.
    while log.committed("slow-group", &input, 0).unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let peak = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (log, input, peak) = (log.clone(), input.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(log.retained_bytes(&input, 0).unwrap(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    let mut record_size = 0;
    for chunk in 0..RECORDS / CHUNK {
        let recs: Vec<RawRecord> = (chunk * CHUNK..(chunk + 1) * CHUNK)
            .map(|i| {
                let r = RawRecord::new(
                    Some(bytes::Bytes::from(format!("key-{:060}", i % 3))),
                    Some(bytes::Bytes::copy_from_slice(&i.to_be_bytes())),
                );
                record_size = r.size();
                r
            })
            .collect();
        env.produce_raw(&input, recs).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.lock().len() < RECORDS as usize {
        assert!(tokio::time::Instant::now() < deadline, "pipeline stalled at {}", seen.lock().len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    monitor.abort();
    shutdown.trigger();
    running.await.unwrap().unwrap();

    let total = record_size * RECORDS as usize;
    let bound = CAPACITY + record_size * CHUNK as usize;
    let peak = peak.load(Ordering::Relaxed);
    assert!(total > 10 * bound, "the test must produce much more than the bound ({total} vs {bound})");
    assert!(peak <= bound, "retained {peak} bytes, more than capacity plus one produce call ({bound})");
    assert_eq!(*seen.lock(), (0..RECORDS).collect::<Vec<_>>(), "every record, in order");
}
