//! The scenarios, each a function of an `Env`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pbp_dataflow::codec::{BigEndian, Json, Utf8};
use pbp_dataflow::dlq::{self, DlqLimit};
use pbp_dataflow::operator::Operator;
use pbp_dataflow::operator::aggregate::StateStore;
use pbp_dataflow::operator::join::GlobalTable;
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::sink::TopicSink;
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::{Codec, DeadLetterQueue, Error, Outcome, RawRecord, Record, Shutdown, Timestamp};
use serde::{Deserialize, Serialize};

use crate::common::{CrashingSink, Env};

fn keyed(range: std::ops::Range<u64>, keys: u64) -> Vec<(String, u64)> {
    range.map(|i| (format!("k{}", i % keys), i)).collect()
}

pub async fn restart_resumes_from_committed_offsets(env: Env) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 3).await;
    env.create(&out, 3).await;
    env.produce(&input, &keyed(0..100, 7), &Utf8, &BigEndian).await;
    let build = || {
        env.dataflow("double")
            .source(TopicSource::new(&input, &group, Utf8, BigEndian))
            .map(|v: u64| v * 2)
            .to(TopicSink::new(&out, Utf8, BigEndian))
    };
    let mut first = build();
    assert_eq!(first.run_until_idle().await.unwrap().polled, 100);
    drop(first);
    env.produce(&input, &keyed(100..150, 7), &Utf8, &BigEndian).await;
    let mut second = build();
    assert_eq!(second.run_until_idle().await.unwrap().polled, 50, "a restart reads only what follows the commit");
    drop(second);
    let mut values: Vec<u64> = env.read_decoded(&out, &Utf8, &BigEndian).await.into_iter().map(|(_, v)| v).collect();
    values.sort_unstable();
    assert_eq!(values, (0..150).map(|v| v * 2).collect::<Vec<_>>(), "nothing lost, nothing repeated");
}

pub async fn crash_before_commit_redelivers_and_loses_nothing(env: Env) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 2).await;
    env.create(&out, 2).await;
    env.produce(&input, &keyed(0..60, 5), &Utf8, &BigEndian).await;
    let build = |fail: bool| {
        env.dataflow("copy").source(TopicSource::new(&input, &group, Utf8, BigEndian)).map(|v: u64| v).to(
            CrashingSink { inner: TopicSink::new(&out, Utf8, BigEndian), fail_flush: Arc::new(AtomicBool::new(fail)) },
        )
    };
    let mut crashing = build(true);
    assert!(matches!(crashing.run_until_idle().await, Err(Error::Sink { .. })));
    // A failed pipeline cannot be talked into committing what it did not finish.
    assert!(crashing.checkpoint().await.is_err());
    assert!(crashing.run_until_idle().await.is_err());
    drop(crashing);
    let written_before: Vec<u64> =
        env.read_decoded(&out, &Utf8, &BigEndian).await.into_iter().map(|(_, v): (String, u64)| v).collect();
    assert!(!written_before.is_empty(), "the crash came after output was written");
    let mut restarted = build(false);
    assert_eq!(restarted.run_until_idle().await.unwrap().polled, 60, "uncommitted records are delivered again");
    drop(restarted);
    assert_eq!(build(false).run_until_idle().await.unwrap().polled, 0, "and committed this time");
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, v) in env.read_decoded(&out, &Utf8, &BigEndian).await {
        *counts.entry(v).or_default() += 1;
    }
    assert_eq!(counts.len(), 60, "every record reached the sink");
    for (v, n) in counts {
        let expected = 1 + usize::from(written_before.contains(&v));
        assert_eq!(n, expected, "record {v}: written before the crash and again after, or once");
    }
}

pub async fn aggregate_restores_from_changelog_and_never_double_counts(env: Env) {
    aggregate_scenario(env, false).await;
}

/// The same with one state per key and batch: the last emitted state of every key is still its exact state,
/// and a batch emits at most one state per key.
pub async fn aggregate_per_batch_restores_and_emits_each_key_once_per_batch(env: Env) {
    aggregate_scenario(env, true).await;
}

fn count(count: &mut u64, _r: &Record<String, u64>) -> Result<(), pbp_dataflow::Rejection> {
    *count += 1;
    Ok(())
}

async fn aggregate_scenario(env: Env, per_batch: bool) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 3).await;
    env.create(&out, 3).await;
    let store: StateStore<String, u64> = StateStore::new(&env.name("counts"), Utf8, BigEndian);
    let build = |fail: bool| {
        let stream = env.dataflow("count").source(TopicSource::new(&input, &group, Utf8, BigEndian));
        let stream = if per_batch {
            stream.aggregate_by_key_per_batch(&store, count)
        } else {
            stream.aggregate_by_key(&store, count)
        };
        stream.to(CrashingSink {
            inner: TopicSink::new(&out, Utf8, BigEndian),
            fail_flush: Arc::new(AtomicBool::new(fail)),
        })
    };
    let expected = |n: u64| -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for (k, _) in keyed(0..n, 5) {
            *m.entry(k).or_default() += 1;
        }
        m
    };
    let states = |m: std::collections::HashMap<String, pbp_dataflow::operator::aggregate::StoredState<u64>>| -> HashMap<String, u64> {
        m.into_iter().map(|(k, s)| (k, s.state)).collect()
    };

    env.produce(&input, &keyed(0..300, 5), &Utf8, &BigEndian).await;
    let mut p = build(false);
    let stats = p.run_until_idle().await.unwrap();
    drop(p);
    assert_eq!(states(store.read_all(env.transport.as_ref()).await.unwrap()), expected(300));
    if per_batch {
        // 300 records of 5 keys in batches of at most 1,024: each polled batch emits at most one state per key.
        assert!(stats.emitted < 300, "one state per key and batch: {stats:?}");
        assert_eq!(stats.dropped, 300, "every record stands in its key's state: {stats:?}");
        let mut last: HashMap<String, u64> = HashMap::new();
        for (k, v) in env.read_decoded(&out, &Utf8, &BigEndian).await {
            last.insert(k, v);
        }
        assert_eq!(last, expected(300), "the last state emitted for each key is its state");
    }

    // Crash after the state updates reached the changelog, before the offsets were committed.
    env.produce(&input, &keyed(300..500, 5), &Utf8, &BigEndian).await;
    let mut p = build(true);
    assert!(p.run_until_idle().await.is_err());
    drop(p);
    let mut last_emitted: HashMap<String, u64> = HashMap::new();
    for (k, v) in env.read_decoded(&out, &Utf8, &BigEndian).await {
        last_emitted.insert(k, v);
    }
    let restored = states(store.read_all(env.transport.as_ref()).await.unwrap());
    assert_eq!(restored, last_emitted, "the state restored from the changelog equals the state before the crash");
    assert_ne!(restored, expected(300), "updates of uncommitted records reached the changelog before the crash");

    // Restart: the 200 uncommitted records are delivered again but not applied again.
    let mut p = build(false);
    assert_eq!(p.run_until_idle().await.unwrap().polled, 200);
    drop(p);
    assert_eq!(states(store.read_all(env.transport.as_ref()).await.unwrap()), expected(500), "no record counted twice");
    let mut last_emitted: HashMap<String, u64> = HashMap::new();
    for (k, v) in env.read_decoded(&out, &Utf8, &BigEndian).await {
        last_emitted.insert(k, v);
    }
    assert_eq!(last_emitted, expected(500), "re-delivered records emit the current state");
}

pub async fn global_table_bootstrap_barrier_updates_and_tombstones(env: Env) {
    let (teams, input, out, group) = (env.name("teams"), env.name("plays"), env.name("out"), env.name("g"));
    let (left_input, left_out) = (env.name("plays"), env.name("left"));
    env.create_compacted(&teams, 2).await;
    env.create(&input, 2).await;
    env.create(&left_input, 2).await;
    env.create(&out, 2).await;
    env.create(&left_out, 2).await;
    // The table and the stream are both written before the pipeline starts: without the bootstrap barrier,
    // early plays would be joined against a partly loaded table.
    let entries: Vec<(String, String)> = (0..500).map(|i| (format!("t{i}"), format!("Team {i}"))).collect();
    env.produce(&teams, &entries, &Utf8, &Utf8).await;
    env.produce_raw(&teams, vec![RawRecord::new(Some(Bytes::from_static(b"t7")), None)]).await;
    env.produce(&teams, &[("t8".to_owned(), "Team 8b".to_owned())], &Utf8, &Utf8).await;
    let plays: Vec<(String, u64)> = (0..2000).map(|i| (format!("t{}", i % 500), i)).collect();
    env.produce(&input, &plays, &Utf8, &BigEndian).await;
    env.produce(&left_input, &plays, &Utf8, &BigEndian).await;

    let table: GlobalTable<String, String> = GlobalTable::new(teams.as_str(), Utf8, Utf8);
    let mut inner = env
        .dataflow("inner")
        .source(TopicSource::new(&input, &group, Utf8, BigEndian))
        .join_global(
            &table,
            |r: &Record<String, u64>| Some(r.key.clone()),
            |v: u64, name: &String| format!("{v}:{name}"),
        )
        .to(TopicSink::new(&out, Utf8, Utf8));
    let stats = inner.run_until_idle().await.unwrap();
    assert_eq!(stats.dropped, 4, "the four plays of the deleted team t7 have no table entry");
    let joined = env.read_decoded(&out, &Utf8, &Utf8).await;
    assert_eq!(joined.len(), 1996);
    for (team, v) in &joined {
        let i: usize = team[1..].parse().unwrap();
        let want = if i == 8 { "Team 8b".to_owned() } else { format!("Team {i}") };
        assert_eq!(v.split_once(':').unwrap().1, want, "{team} joined with the latest table value");
    }

    // An update applies to records that arrive after it, and does not re-emit earlier results.
    env.produce(&teams, &[("t1".to_owned(), "Renamed".to_owned())], &Utf8, &Utf8).await;
    env.produce(&input, &[("t1".to_owned(), 9999u64)], &Utf8, &BigEndian).await;
    inner.run_until_idle().await.unwrap();
    let joined = env.read_decoded(&out, &Utf8, &Utf8).await;
    assert_eq!(joined.len(), 1997);
    assert_eq!(joined.iter().filter(|(_, v)| v.ends_with(":Renamed")).count(), 1);
    assert_eq!(joined.iter().filter(|(t, v)| t == "t1" && v.ends_with(":Team 1")).count(), 4);
    drop(inner);

    let mut left = env
        .dataflow("left")
        .source(TopicSource::new(&left_input, env.name("g"), Utf8, BigEndian))
        .left_join_global(
            &table,
            |r: &Record<String, u64>| Some(r.key.clone()),
            |v: u64, name: Option<&String>| format!("{v}:{}", name.map_or("-", String::as_str)),
        )
        .to(TopicSink::new(&left_out, Utf8, Utf8));
    left.run_until_idle().await.unwrap();
    let joined = env.read_decoded(&left_out, &Utf8, &Utf8).await;
    assert_eq!(joined.len(), 2000, "a left join keeps every record");
    assert!(
        joined.iter().any(|(t, v)| t == "t1" && v.ends_with(":Renamed")),
        "the table is the same, updates included"
    );
    assert_eq!(
        joined.iter().filter(|(t, v)| t == "t7" && v.ends_with(":-")).count(),
        4,
        "tombstoned key joins with None"
    );
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Play {
    points: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("a play cannot score {0} points")]
struct TooManyPoints(u32);

pub async fn dead_letters_carry_bytes_and_kip1034_headers(env: Env) {
    let (input, out, dlq_topic, group) = (env.name("in"), env.name("out"), env.name("dlq"), env.name("g"));
    env.create(&input, 1).await;
    env.create(&out, 1).await;
    env.produce(&input, &[("a".to_owned(), Play { points: 2 })], &Utf8, &Json::new()).await;
    env.produce_raw(&input, vec![RawRecord::new(Some(Bytes::from_static(b"b")), Some(Bytes::from_static(b"{bad")))])
        .await;
    env.produce(
        &input,
        &[("c".to_owned(), Play { points: 9 }), ("d".to_owned(), Play { points: 3 })],
        &Utf8,
        &Json::new(),
    )
    .await;

    let build = || {
        env.dataflow("validate")
            .source(TopicSource::new(&input, &group, Utf8, Json::<Play>::new()))
            .try_map(|p: &Play| if p.points > 4 { Err(TooManyPoints(p.points)) } else { Ok(u64::from(p.points)) })
            .named("validate")
            .to(TopicSink::new(&out, Utf8, BigEndian))
            .with_dlq(DeadLetterQueue::new(&dlq_topic).with_limit(DlqLimit::unlimited()))
    };
    let mut p = build();
    let stats = p.run_until_idle().await.unwrap();
    assert_eq!((stats.polled, stats.emitted, stats.dead_lettered), (4, 2, 2));
    drop(p);
    assert_eq!(build().run_until_idle().await.unwrap().polled, 0, "dead-lettered records are committed");
    assert_eq!(
        env.read_decoded::<String, u64>(&out, &Utf8, &BigEndian).await,
        vec![("a".to_owned(), 2), ("d".to_owned(), 3)]
    );

    let dead = env.read_all(&dlq_topic).await;
    assert_eq!(dead.len(), 2);
    let by_key = |k: &[u8]| dead.iter().find(|r| r.record.key.as_deref() == Some(k)).unwrap();
    let bad_json = &by_key(b"b").record;
    assert_eq!(bad_json.value.as_deref(), Some(&b"{bad"[..]), "original value bytes");
    let h = &bad_json.headers;
    assert_eq!(h.get_str(dlq::STAGE), Some("deserialize"));
    assert_eq!(h.get_str(dlq::EXCEPTION), Some("DecodeError"));
    assert!(h.get_str(dlq::MESSAGE).unwrap().contains("json"), "{:?}", h.get_str(dlq::MESSAGE));
    assert_eq!(h.get_str(dlq::TOPIC), Some(input.as_str()));
    assert_eq!(h.get_str(dlq::PARTITION), Some("0"));
    assert_eq!(h.get_str(dlq::OFFSET), Some("1"));
    let invalid = &by_key(b"c").record;
    assert_eq!(invalid.value.as_deref(), Some(&br#"{"points":9}"#[..]));
    assert_eq!(invalid.headers.get_str(dlq::STAGE), Some("validate"));
    assert_eq!(invalid.headers.get_str(dlq::EXCEPTION), Some("TooManyPoints"));
    assert_eq!(invalid.headers.get_str(dlq::MESSAGE), Some("a play cannot score 9 points"));
    assert_eq!(invalid.headers.get_str(dlq::OFFSET), Some("2"));
}

pub async fn dlq_limit_stops_the_pipeline_without_committing(env: Env) {
    let (input, out, dlq_topic, group) = (env.name("in"), env.name("out"), env.name("dlq"), env.name("g"));
    env.create(&input, 1).await;
    env.create(&out, 1).await;
    let mut raw = vec![RawRecord::new(None, Some(Bytes::from_static(b"{\"points\":1}"))); 2];
    raw.extend(std::iter::repeat_n(RawRecord::new(None, Some(Bytes::from_static(b"not json"))), 10));
    env.produce_raw(&input, raw).await;
    let build = |limit: DlqLimit| {
        env.dataflow("limited")
            .source(TopicSource::new(&input, &group, pbp_dataflow::codec::Unit, Json::<Play>::new()))
            .map(|p: Play| u64::from(p.points))
            .to(TopicSink::new(&out, pbp_dataflow::codec::Unit, BigEndian))
            .with_dlq(DeadLetterQueue::new(&dlq_topic).with_limit(limit))
    };
    let strict = DlqLimit { max_consecutive: Some(3), max_invalid_ratio: None, ..DlqLimit::default() };
    let mut p = build(strict);
    match p.run_until_idle().await {
        Err(Error::DlqLimitExceeded(why)) => assert!(why.contains("4 consecutive"), "{why}"),
        other => panic!("expected the DLQ limit to stop the pipeline, got {other:?}"),
    }
    drop(p);
    let mut p = build(DlqLimit::unlimited());
    assert_eq!(p.run_until_idle().await.unwrap().polled, 12, "the stopped batch was not committed");
}

/// Encodes every state as null, which an aggregate's changelog must never hold.
struct NullState;

impl pbp_dataflow::Codec<u64> for NullState {
    fn encode(&self, _v: &u64) -> Result<Option<Bytes>, pbp_dataflow::CodecError> {
        Ok(None)
    }
    fn decode(&self, b: Option<&Bytes>) -> Result<u64, pbp_dataflow::CodecError> {
        BigEndian.decode(b)
    }
}

pub async fn a_state_encoded_as_null_stops_the_pipeline_without_committing(env: Env) {
    let (input, out, group, store_name) = (env.name("in"), env.name("out"), env.name("g"), env.name("counts"));
    env.create(&input, 2).await;
    env.create(&out, 2).await;
    env.produce(&input, &keyed(0..40, 4), &Utf8, &BigEndian).await;
    let build = |store: StateStore<String, u64>| {
        env.dataflow("count")
            .source(TopicSource::new(&input, &group, Utf8, BigEndian))
            .aggregate_by_key(&store, |count: &mut u64, _r: &Record<String, u64>| {
                *count += 1;
                Ok(())
            })
            .to(TopicSink::new(&out, Utf8, BigEndian))
    };
    // The states are encoded after the batch (once per key): the error comes from there and stops the pipeline.
    let mut p = build(StateStore::new(&store_name, Utf8, NullState));
    match p.run_until_idle().await {
        Err(Error::StageFailed { stage, source, .. }) => {
            assert_eq!(stage, format!("aggregate:{store_name}"));
            assert!(source.to_string().contains("encoded a state as null"), "{source}");
        }
        other => panic!("expected the aggregate to stop the pipeline, got {other:?}"),
    }
    assert!(p.checkpoint().await.is_err(), "a failed pipeline does not commit");
    drop(p);
    assert!(env.read_all(&format!("{store_name}-changelog")).await.is_empty(), "no tombstone, no state");
    assert!(env.read_all(&out).await.is_empty(), "the failed batch stopped before its output was written");

    let mut p = build(StateStore::new(&store_name, Utf8, BigEndian));
    assert_eq!(p.run_until_idle().await.unwrap().polled, 40, "nothing was committed: every record comes again");
    drop(p);
    let counts: HashMap<String, u64> = StateStore::<String, u64>::new(&store_name, Utf8, BigEndian)
        .read_all(env.transport.as_ref())
        .await
        .unwrap()
        .into_iter()
        .map(|(k, s)| (k, s.state))
        .collect();
    assert_eq!(counts, (0..4).map(|k| (format!("k{k}"), 10)).collect::<HashMap<_, _>>());
}

pub async fn records_of_one_key_keep_their_order(env: Env) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 4).await;
    env.create(&out, 4).await;
    // 40 keys, 50 records each, interleaved, in several produce calls.
    for chunk in 0..5u64 {
        let recs: Vec<(String, u64)> =
            (0..10u64).flat_map(|seq| (0..40u64).map(move |k| (format!("key{k}"), chunk * 10 + seq))).collect();
        env.produce(&input, &recs, &Utf8, &BigEndian).await;
    }
    let mut p = env
        .dataflow("order")
        .source(TopicSource::<String, u64>::new(&input, &group, Utf8, BigEndian))
        .filter(|_| true)
        .to(TopicSink::new(&out, Utf8, BigEndian));
    p.run_until_idle().await.unwrap();
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for (k, v) in env.read_decoded(&out, &Utf8, &BigEndian).await {
        per_key.entry(k).or_default().push(v);
    }
    assert_eq!(per_key.len(), 40);
    for (k, seqs) in per_key {
        assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "order of {k}");
    }
}

pub async fn graceful_shutdown_finishes_and_commits(env: Env) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 2).await;
    env.create(&out, 2).await;
    let build = || {
        env.dataflow("graceful")
            .source(TopicSource::new(&input, &group, Utf8, BigEndian))
            .map(|v: u64| v + 1)
            .to(TopicSink::new(&out, Utf8, BigEndian))
    };
    let shutdown = Shutdown::new();
    let running = {
        let p = build();
        let s = shutdown.clone();
        tokio::spawn(async move { p.run(async move { s.wait().await }).await })
    };
    for chunk in 0..10 {
        env.produce(&input, &keyed(chunk * 100..(chunk + 1) * 100, 9), &Utf8, &BigEndian).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env.read_all(&out).await.len() < 1000 {
        assert!(tokio::time::Instant::now() < deadline, "pipeline did not process the input");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.trigger();
    let stats = running.await.unwrap().unwrap();
    assert_eq!(stats.polled, 1000);
    assert_eq!(build().run_until_idle().await.unwrap().polled, 0, "everything processed was committed on shutdown");
}

/// Counts records and emits the count on a tick when it changed.
struct CountOnTick {
    seen: u64,
    emitted: u64,
}

#[async_trait]
impl Operator<String, u64> for CountOnTick {
    type OutKey = String;
    type OutValue = u64;

    fn process(&mut self, _record: Record<String, u64>) -> Outcome<Record<String, u64>> {
        self.seen += 1;
        Outcome::Drop
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Outcome<Record<String, u64>>>) {
        if self.seen != self.emitted {
            self.emitted = self.seen;
            out.push(Outcome::Emit(Record::new("count".to_owned(), self.seen).with_timestamp(now)));
        }
    }
}

pub async fn ticks_reach_operators_with_timers(env: Env) {
    let (input, out, group) = (env.name("in"), env.name("out"), env.name("g"));
    env.create(&input, 1).await;
    env.create(&out, 1).await;
    let config = PipelineConfig { tick_interval: Some(Duration::from_millis(10)), ..PipelineConfig::default() };
    let p = env
        .dataflow("ticks")
        .with_config(config)
        .source(TopicSource::new(&input, &group, Utf8, BigEndian))
        .apply("count", CountOnTick { seen: 0, emitted: 0 })
        .map(|n: u64| n * 10)
        .to(TopicSink::new(&out, Utf8, BigEndian));
    let shutdown = Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { p.run(async move { s.wait().await }).await })
    };
    env.produce(&input, &keyed(0..5, 2), &Utf8, &BigEndian).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let outputs: Vec<(String, u64)> = env.read_decoded(&out, &Utf8, &BigEndian).await;
        if outputs.iter().any(|(k, v)| k == "count" && *v == 50) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no tick output after the records: {outputs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.trigger();
    running.await.unwrap().unwrap();
}

/// Encodes even numbers only: the sink refuses odd ones.
struct EvenOnly;

impl pbp_dataflow::Codec<u64> for EvenOnly {
    fn encode(&self, v: &u64) -> Result<Option<Bytes>, pbp_dataflow::CodecError> {
        if v % 2 == 1 {
            return Err(pbp_dataflow::CodecError::encode("even-only", format!("{v} is odd")));
        }
        BigEndian.encode(v)
    }
    fn decode(&self, b: Option<&Bytes>) -> Result<u64, pbp_dataflow::CodecError> {
        BigEndian.decode(b)
    }
}

pub async fn sink_rejections_are_dead_lettered_and_count_toward_the_limit(env: Env) {
    let (input, out, dlq_topic, group) = (env.name("in"), env.name("out"), env.name("dlq"), env.name("g"));
    env.create(&input, 1).await;
    env.create(&out, 1).await;
    env.produce(&input, &keyed(0..20, 3), &Utf8, &BigEndian).await;
    let limit = DlqLimit { max_invalid_ratio: Some(0.6), max_consecutive: None, window: 100, min_records: 10 };
    let mut p = env
        .dataflow("even")
        .source(TopicSource::<String, u64>::new(&input, &group, Utf8, BigEndian))
        .to(TopicSink::new(&out, Utf8, EvenOnly))
        .with_dlq(DeadLetterQueue::new(&dlq_topic).with_limit(limit.clone()));
    let stats = p.run_until_idle().await.unwrap();
    assert_eq!((stats.emitted, stats.dead_lettered), (10, 10), "half written, half refused by the sink");
    drop(p);
    let dead = env.read_all(&dlq_topic).await;
    assert_eq!(dead.len(), 10);
    for d in &dead {
        let v = BigEndian.decode(d.record.value.as_ref()).map(|v: u64| v % 2).unwrap();
        assert_eq!(v, 1, "the original bytes of an odd record");
        assert_eq!(d.record.headers.get_str(dlq::STAGE), Some("sink"));
        assert!(d.record.headers.get_str(dlq::MESSAGE).unwrap().contains("is odd"));
    }

    // A sink that refuses everything trips the ratio: each record counts once, as refused.
    let (input2, group2) = (env.name("in"), env.name("g"));
    env.create(&input2, 1).await;
    let odd: Vec<(String, u64)> = (0..20).map(|i| (format!("k{i}"), 2 * i + 1)).collect();
    env.produce(&input2, &odd, &Utf8, &BigEndian).await;
    let mut p = env
        .dataflow("odd")
        .source(TopicSource::<String, u64>::new(&input2, &group2, Utf8, BigEndian))
        .to(TopicSink::new(&out, Utf8, EvenOnly))
        .with_dlq(DeadLetterQueue::new(&dlq_topic).with_limit(limit));
    assert!(matches!(p.run_until_idle().await, Err(Error::DlqLimitExceeded(_))));
}

/// `n` JSON plays on one partition, where `bad(i)` makes record `i` undecodable.
async fn plays_with_bad(env: &Env, topic: &str, n: usize, bad: impl Fn(usize) -> bool) {
    let raw = (0..n)
        .map(|i| {
            let value =
                if bad(i) { Bytes::from_static(b"not json") } else { Bytes::from(format!("{{\"points\":{}}}", i % 4)) };
            RawRecord::new(None, Some(value))
        })
        .collect();
    env.produce_raw(topic, raw).await;
}

fn decoding_pipeline(
    env: &Env,
    input: &str,
    group: &str,
    out: &str,
    dlq_topic: &str,
    limit: DlqLimit,
    batch_size: usize,
) -> pbp_dataflow::Pipeline<
    impl pbp_dataflow::source::Source<Key = (), Value = Play>,
    impl Operator<(), Play, OutKey = (), OutValue = u64>,
    impl pbp_dataflow::sink::Sink<(), u64>,
> {
    env.dataflow("decode")
        .with_config(PipelineConfig {
            batch_size,
            poll_timeout: Duration::from_millis(20),
            ..PipelineConfig::default()
        })
        .source(TopicSource::new(input, group, pbp_dataflow::codec::Unit, Json::<Play>::new()))
        .map(|p: Play| u64::from(p.points))
        .to(TopicSink::new(out, pbp_dataflow::codec::Unit, BigEndian))
        .with_dlq(DeadLetterQueue::new(dlq_topic).with_limit(limit))
}

pub async fn dlq_limit_counts_records_in_the_order_they_came(env: Env) {
    // A ratio limit that applies from the 10th record: with rejects counted before the good records of their
    // batch, the first batch of a stream with 10 % bad records read as 100 % bad.
    let limit = DlqLimit { max_invalid_ratio: Some(0.5), max_consecutive: Some(20), window: 100, min_records: 10 };
    let (input, out, dlq_topic, group) = (env.name("in"), env.name("out"), env.name("dlq"), env.name("g"));
    env.create(&input, 1).await;
    env.create(&out, 1).await;
    plays_with_bad(&env, &input, 1000, |i| i % 10 == 0).await;
    let mut p = decoding_pipeline(&env, &input, &group, &out, &dlq_topic, limit.clone(), 256);
    let stats = p.run_until_idle().await.expect("10 % bad records from the very first one is under the limit");
    assert_eq!((stats.polled, stats.emitted, stats.dead_lettered), (1000, 900, 100));
    drop(p);
    assert_eq!(env.read_all(&dlq_topic).await.len(), 100);

    // 60 % bad, interleaved: the ratio trips, with a message that says so, and nothing is committed.
    let (input, group) = (env.name("in"), env.name("g"));
    env.create(&input, 1).await;
    plays_with_bad(&env, &input, 400, |i| i % 5 < 3).await;
    let mut p = decoding_pipeline(&env, &input, &group, &out, &dlq_topic, limit.clone(), 256);
    match p.run_until_idle().await {
        Err(Error::DlqLimitExceeded(why)) => {
            assert!(why.contains("records rejected") && why.contains("limit 50.0 %"), "{why}");
        }
        other => panic!("expected the ratio to stop the pipeline, got {other:?}"),
    }
    drop(p);
    let mut p = decoding_pipeline(&env, &input, &group, &out, &dlq_topic, DlqLimit::unlimited(), 256);
    assert_eq!(p.run_until_idle().await.unwrap().polled, 400, "the stopped batch was not committed");

    // A run of rejects that crosses a batch boundary counts as one run: 30 in a row, then good records, with
    // batches of 16, trips a limit of 20 in a row.
    let (input, group) = (env.name("in"), env.name("g"));
    env.create(&input, 1).await;
    plays_with_bad(&env, &input, 100, |i| (40..70).contains(&i)).await;
    let consecutive = DlqLimit { max_invalid_ratio: None, ..limit };
    let mut p = decoding_pipeline(&env, &input, &group, &out, &dlq_topic, consecutive, 16);
    match p.run_until_idle().await {
        Err(Error::DlqLimitExceeded(why)) => assert!(why.contains("21 consecutive records rejected"), "{why}"),
        other => panic!("expected the consecutive limit to stop the pipeline, got {other:?}"),
    }
}

/// A team's value, as joined.
fn team_name(i: u64) -> String {
    format!("Team {i}")
}

pub async fn global_table_joins_a_record_appended_right_after_its_table_entry(env: Env) {
    const TRIALS: u64 = 1000;
    let (teams, input, group) = (env.name("teams"), env.name("plays"), env.name("g"));
    env.create_compacted(&teams, 1).await;
    env.create(&input, 2).await;
    let table: GlobalTable<String, String> = GlobalTable::new(teams.as_str(), Utf8, Utf8);
    let (sink, joined) = pbp_dataflow::sink::CollectSink::new();
    let pipeline = env
        .dataflow("join")
        .source(TopicSource::new(&input, &group, Utf8, BigEndian))
        // Inner join: a play whose team the table does not know yet is dropped.
        .join_global(&table, |r: &Record<String, u64>| Some(r.key.clone()), |v: u64, name: &String| (v, name.clone()))
        // Left join: it would be joined with nothing.
        .left_join_global(
            &table,
            |r: &Record<String, (u64, String)>| Some(r.key.clone()),
            |(v, inner): (u64, String), name: Option<&String>| (v, inner, name.cloned()),
        )
        .to(sink);
    let shutdown = Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
    };
    // Each trial: a new team, acknowledged, then at once its first play.
    for i in 0..TRIALS {
        let team = format!("t{i}");
        env.produce(&teams, &[(team.clone(), team_name(i))], &Utf8, &Utf8).await;
        env.produce(&input, &[(team, i)], &Utf8, &BigEndian).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (joined.lock().len() as u64) < TRIALS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    let stats = running.await.unwrap().unwrap();
    let joined = joined.lock();
    let empty = joined.iter().filter(|r| r.value.2.is_none()).count();
    assert_eq!((stats.dropped, empty), (0, 0), "no play dropped or joined with nothing because the table was behind");
    assert_eq!(joined.len() as u64, TRIALS);
    for r in joined.iter() {
        let (v, inner, left) = &r.value;
        assert_eq!((inner, left.as_ref()), (&team_name(*v), Some(&team_name(*v))), "play {v} joined with its own team");
    }
}

/// Decodes big-endian numbers; numbers from 100 on need a "schema" fetched from a registry that can be down,
/// and 666 names a schema the registry does not know.
struct NeedsRegistry {
    up: Arc<AtomicBool>,
    fetched: parking_lot::Mutex<std::collections::HashSet<u64>>,
}

impl pbp_dataflow::Codec<u64> for NeedsRegistry {
    fn encode(&self, v: &u64) -> Result<Option<Bytes>, pbp_dataflow::CodecError> {
        BigEndian.encode(v)
    }
    fn decode(&self, b: Option<&Bytes>) -> Result<u64, pbp_dataflow::CodecError> {
        let v: u64 = BigEndian.decode(b)?;
        if v == 666 {
            return Err(pbp_dataflow::CodecError::invalid("test", "schema 666 not found"));
        }
        if v >= 100 && !self.fetched.lock().contains(&v) {
            return Err(pbp_dataflow::CodecError::unavailable("test", format!("schema {v} not fetched yet")));
        }
        Ok(v)
    }
    fn prepare<'a>(&'a self, b: Option<&'a Bytes>) -> pbp_dataflow::codec::Prepared<'a> {
        Box::pin(async move {
            let v: u64 = BigEndian.decode(b)?;
            if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(pbp_dataflow::CodecError::unavailable("test", "registry down"));
            }
            self.fetched.lock().insert(v);
            Ok(())
        })
    }
}

pub async fn a_codec_that_waits_holds_records_back_without_dead_lettering(env: Env) {
    let (input, dlq_topic, group) = (env.name("in"), env.name("dlq"), env.name("g"));
    env.create(&input, 1).await;
    let values: Vec<(String, u64)> = [1, 2, 100, 3, 666, 4, 101].iter().map(|v| ("k".to_owned(), *v)).collect();
    env.produce(&input, &values, &Utf8, &BigEndian).await;
    let up = Arc::new(AtomicBool::new(false));
    let codec = NeedsRegistry { up: up.clone(), fetched: Default::default() };
    let (sink, seen) = pbp_dataflow::sink::CollectSink::new();
    let pipeline = env
        .dataflow("waits")
        .source(TopicSource::new(&input, &group, Utf8, codec))
        .to(sink)
        .with_dlq(DeadLetterQueue::new(&dlq_topic));
    let shutdown = Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
    };
    let values_seen = || seen.lock().iter().map(|r| r.value).collect::<Vec<u64>>();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while values_seen().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the records before the waiting one did not flow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While the registry is down, nothing after the waiting record moves, and nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(values_seen(), [1, 2]);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    while values_seen().len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "the held records did not follow: {:?}", values_seen());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    let stats = running.await.unwrap().unwrap();
    assert_eq!(values_seen(), [1, 2, 100, 3, 4, 101], "every record, in order");
    assert_eq!(stats.dead_lettered, 1, "only the record whose schema does not exist");
    let dead = env.read_all(&dlq_topic).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(BigEndian.decode(dead[0].record.value.as_ref()).map(|v: u64| v).unwrap(), 666);
}
