//! On a Kafka-protocol broker: `pbp topics create`, PlayEvents in Avro through the broker and the schema
//! registry, the schema registry keeping its schemas in a compacted topic across restarts, and the JSON
//! fallback with dead letters on the wire.
//!
//! Runs against `PBP_KAFKA_BROKERS` (default `127.0.0.1:9092`); skipped with a printed reason when no broker
//! answers, unless `PBP_REQUIRE_SERVICES` is set, which makes an unreachable broker a failure. Every test is
//! bounded in time, so a broker problem fails rather than hangs.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use pbp_avro::registry::HttpRegistry;
use pbp_avro::{AvroCodec, AvroRecord, GameState, PlayEvent, SchemaRegistry};
use pbp_dataflow::codec::Utf8;
use pbp_dataflow::dlq::{self, DlqLimit};
use pbp_dataflow::pipeline::PipelineConfig;
use pbp_dataflow::sink::TopicSink;
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::{OutgoingRecord, TopicSpec, read_to_end};
use pbp_dataflow::{Codec, ConsumedRecord, Dataflow, DeadLetterQueue, RawRecord, Transport};

const PBP: &str = env!("CARGO_BIN_EXE_pbp");

fn brokers() -> String {
    std::env::var("PBP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The broker, or `None` with a printed reason (a failure when `PBP_REQUIRE_SERVICES` is set).
fn broker() -> Option<Arc<KafkaTransport>> {
    let brokers = brokers();
    if !brokers.split(',').any(|b| std::net::TcpStream::connect(b.trim()).is_ok()) {
        assert!(
            std::env::var("PBP_REQUIRE_SERVICES").is_err(),
            "PBP_REQUIRE_SERVICES is set but no Kafka broker answers at {brokers}"
        );
        eprintln!("skipped: no Kafka broker at {brokers} (set PBP_KAFKA_BROKERS, or start tansu)");
        return None;
    }
    let config = KafkaConfig::new(brokers).set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "1000");
    Some(Arc::new(KafkaTransport::connect(config).expect("kafka clients")))
}

/// A name unique to this test run.
fn unique(base: &str) -> String {
    format!("{base}-{}-{}", std::process::id(), pbp_dataflow::record::now_millis())
}

fn dataflow(transport: &Arc<KafkaTransport>, name: &str) -> Dataflow {
    let transport: Arc<dyn Transport> = transport.clone();
    Dataflow::new(name, transport)
        .with_config(PipelineConfig { poll_timeout: Duration::from_millis(20), ..PipelineConfig::default() })
}

async fn read_all(transport: &KafkaTransport, topic: &str) -> anyhow::Result<Vec<ConsumedRecord>> {
    let partitions: Vec<u32> = (0..transport.partitions(topic).await?).collect();
    let mut out = Vec::new();
    read_to_end(transport, topic, &partitions, |r| out.push(r)).await?;
    out.sort_by_key(|r| (r.origin.partition, r.origin.offset));
    Ok(out)
}

async fn produce(transport: &KafkaTransport, topic: &str, records: Vec<RawRecord>) -> anyhow::Result<()> {
    let producer = transport.producer()?;
    producer.send(topic, &mut records.into_iter().map(OutgoingRecord::from).collect()).await?;
    producer.flush().await?;
    Ok(())
}

fn plays(n: i64) -> Vec<PlayEvent> {
    (0..n)
        .map(|i| {
            let mut play = PlayEvent::example();
            play.game_id = format!("40158560{}", i % 3);
            play.play_id = format!("{}{i}", play.game_id);
            play.sequence = i;
            play.home_score = i as i32;
            play
        })
        .collect()
}

fn topics_create(prefix: &str) -> anyhow::Result<String> {
    let output = Command::new(PBP)
        .args(["topics", "create", "--brokers", &brokers(), "--prefix", prefix])
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    ensure!(output.status.success(), "pbp topics create failed: {stdout}");
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_is_idempotent_and_sets_partition_counts() -> anyhow::Result<()> {
    let Some(transport) = broker() else { return Ok(()) };
    let prefix = format!("{}.", unique("topics"));
    let expected = [
        ("raw.scoreboard", 6),
        ("raw.plays", 12),
        ("enriched.plays", 12),
        ("game.state", 6),
        ("ref.teams", 1),
        ("enrich-game-state-changelog", 12),
        ("dlq.ingest", 3),
        ("dlq.enrich", 3),
        ("dlq.serve", 3),
        ("_schemas", 1),
    ];
    let first = {
        let prefix = prefix.clone();
        tokio::time::timeout(Duration::from_secs(120), tokio::task::spawn_blocking(move || topics_create(&prefix)))
            .await
            .context("first run timed out")???
    };
    for (name, _) in expected {
        assert!(first.contains(&format!("created  {prefix}{name} ")), "{name} created:\n{first}");
    }
    assert!(first.contains("cleanup.policy=compact"), "{first}");
    assert!(first.trim_end().ends_with(&format!("{} created, 0 already present", expected.len())), "{first}");
    let second = {
        let prefix = prefix.clone();
        tokio::time::timeout(Duration::from_secs(120), tokio::task::spawn_blocking(move || topics_create(&prefix)))
            .await
            .context("second run timed out")???
    };
    assert!(second.trim_end().ends_with(&format!("0 created, {} already present", expected.len())), "{second}");
    for (name, partitions) in expected {
        let topic = format!("{prefix}{name}");
        assert!(second.contains(&format!("present  {topic} ({partitions} partitions)")), "{second}");
        assert_eq!(transport.partitions(&topic).await?, partitions, "{topic}");
    }
    let names: Vec<String> = expected.iter().map(|(n, _)| format!("{prefix}{n}")).collect();
    transport.delete_topics(&names.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    Ok(())
}

/// `pbp schema-registry` on a free local port, killed when dropped.
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts it with extra options and waits until it listens (after it has read its journal).
    async fn start_with(options: &[&str]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Self::start_on(&format!("127.0.0.1:{port}"), options).await
    }

    /// Starts it on `addr` with extra options and waits until it listens.
    async fn start_on(addr: &str, options: &[&str]) -> anyhow::Result<Self> {
        let addr = addr.to_owned();
        let child = Command::new(PBP)
            .args(["schema-registry", "--listen", &addr])
            .args(options)
            .env_remove("PBP_TRANSPORT")
            .env_remove("PBP_SCHEMA_REGISTRY_DATA_DIR")
            .stdout(Stdio::null())
            .spawn()?;
        let mut registry = Self { child, url: format!("http://{addr}") };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            if let Some(status) = registry.child.try_wait()? {
                anyhow::bail!("pbp schema-registry {options:?} exited with {status} before listening");
            }
            ensure!(tokio::time::Instant::now() < deadline, "pbp schema-registry did not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(registry)
    }

    /// The `host:port` it listens on.
    fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_round_trip_through_the_broker_and_the_registry() -> anyhow::Result<()> {
    let Some(transport) = broker() else { return Ok(()) };
    tokio::time::timeout(Duration::from_secs(120), avro_round_trip(transport)).await.context("timed out")?
}

async fn avro_round_trip(transport: Arc<KafkaTransport>) -> anyhow::Result<()> {
    let registry_server = Registry::start().await?;
    let registry = Arc::new(HttpRegistry::new(&registry_server.url)?);
    let (input, output, group) = (unique("avro-in"), unique("avro-out"), unique("avro-g"));
    transport.ensure_topic(&TopicSpec::new(&input, 3)).await?;
    transport.ensure_topic(&TopicSpec::new(&output, 3)).await?;

    let writer = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &input).await?;
    let sent = plays(30);
    let records = sent
        .iter()
        .map(|p| anyhow::Ok(RawRecord::new(Utf8.encode(&p.game_id)?, writer.encode(p)?)))
        .collect::<anyhow::Result<_>>()?;
    produce(&transport, &input, records).await?;

    // A pipeline with Avro on both ends; its source learns the writer schema by id from the registry.
    let source_codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &input).await?;
    let sink_codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &output).await?;
    let out_id = sink_codec.schema_id();
    let mut pipeline = dataflow(&transport, "avro-copy")
        .source(TopicSource::new(&input, &group, Utf8, source_codec))
        .map(|mut p: PlayEvent| {
            p.away_score += 1;
            p
        })
        .to(TopicSink::new(&output, Utf8, sink_codec));
    let stats = pipeline.run_until_idle().await?;
    assert_eq!((stats.polled, stats.emitted, stats.dead_lettered), (30, 30, 0));
    drop(pipeline);

    let on_wire = read_all(&transport, &output).await?;
    assert_eq!(on_wire.len(), 30);
    // A reader that knows nothing yet: it resolves the writer schema by the id in each record.
    let reader = AvroCodec::<PlayEvent>::with_schema_id(Arc::new(HttpRegistry::new(&registry_server.url)?), out_id)?;
    let mut received = Vec::new();
    for r in &on_wire {
        let value = r.record.value.as_ref().context("a value")?;
        assert_eq!(value[0], 0, "the magic byte");
        assert_eq!(value[1..5], out_id.to_be_bytes(), "the registered schema id");
        // Decoding never blocks on a lookup: the writer schema is fetched first, as a source does.
        reader.prepare(Some(value)).await?;
        let play = reader.decode(Some(value))?;
        assert_eq!(r.record.key.as_deref(), Some(play.game_id.as_bytes()), "keyed by game");
        received.push(play);
    }
    received.sort_by_key(|p| p.sequence);
    let expected: Vec<PlayEvent> = sent
        .into_iter()
        .map(|mut p| {
            p.away_score += 1;
            p
        })
        .collect();
    assert_eq!(received, expected);
    assert!(registry.subjects().await?.contains(&format!("{output}-value")));
    transport.delete_topics(&[&input, &output]).await?;
    Ok(())
}

const REQUIRED_FIELD_ADDED: &str = r#"{"type":"record","name":"PlayEvent","namespace":"com.playbyplay","fields":[
    {"name":"game_id","type":"string"},{"name":"brand_new","type":"string"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_registry_keeps_its_schemas_in_a_compacted_topic_across_restarts() -> anyhow::Result<()> {
    let Some(transport) = broker() else { return Ok(()) };
    tokio::time::timeout(Duration::from_secs(120), registry_on_a_topic(transport)).await.context("timed out")?
}

async fn registry_on_a_topic(transport: Arc<KafkaTransport>) -> anyhow::Result<()> {
    let topic = unique("_schemas");
    let kafka = format!("kafka://{}", brokers());
    let options = ["--transport", kafka.as_str(), "--schemas-topic", topic.as_str()];

    let first = Registry::start_with(&options).await?;
    let client = HttpRegistry::new(&first.url)?;
    assert_eq!(client.register("raw.plays-value", PlayEvent::SCHEMA).await?, 1);
    assert_eq!(client.register("game.state-value", GameState::SCHEMA).await?, 2);
    assert_eq!(client.register("enriched.plays-value", PlayEvent::SCHEMA).await?, 1, "one id per schema");
    client.set_global_compatibility("NONE").await?;
    assert_eq!(client.register("raw.plays-value", REQUIRED_FIELD_ADDED).await?, 3);
    // Killed, not stopped: what it acknowledged must already be in the topic.
    drop(first);

    let second = Registry::start_with(&options).await?;
    let client = HttpRegistry::new(&second.url)?;
    let mut subjects = client.subjects().await?;
    subjects.sort();
    assert_eq!(subjects, ["enriched.plays-value", "game.state-value", "raw.plays-value"]);
    assert_eq!(client.versions("raw.plays-value").await?, vec![1, 2]);
    assert_eq!(client.latest("raw.plays-value").await?.0, 3);
    assert_eq!(&*client.schema_by_id(2).await?, GameState::SCHEMA);
    assert_eq!(&*client.schema_by_id(3).await?, REQUIRED_FIELD_ADDED);
    assert_eq!(client.global_compatibility().await?, "NONE");
    assert_eq!(client.register("raw.plays-value", PlayEvent::SCHEMA).await?, 1, "already registered");
    assert_eq!(client.register("scoreboard-value", pbp_avro::ScoreboardEvent::SCHEMA).await?, 4, "the next id");
    drop(second);

    // The journal on the wire: one partition, one record per change, keyed like Confluent's.
    assert_eq!(transport.partitions(&topic).await?, 1);
    let records = read_all(&transport, &topic).await?;
    assert_eq!(records.len(), 6);
    let key = std::str::from_utf8(records[0].record.key.as_deref().context("a key")?)?;
    assert_eq!(key, r#"{"keytype":"SCHEMA","subject":"raw.plays-value","version":1}"#);
    let key = std::str::from_utf8(records[3].record.key.as_deref().context("a key")?)?;
    assert_eq!(key, r#"{"keytype":"CONFIG","subject":null}"#);
    transport.delete_topics(&[&topic]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_fallback_and_undecodable_values_dead_lettered_on_the_broker() -> anyhow::Result<()> {
    let Some(transport) = broker() else { return Ok(()) };
    tokio::time::timeout(Duration::from_secs(120), json_fallback(transport)).await.context("timed out")?
}

async fn json_fallback(transport: Arc<KafkaTransport>) -> anyhow::Result<()> {
    let registry: Arc<dyn pbp_avro::SchemaRegistry> = Arc::new(pbp_avro::registry::EmbeddedRegistry::new());
    let (input, output, dlq_topic, group) =
        (unique("json-in"), unique("json-out"), unique("json-dlq"), unique("json-g"));
    transport.ensure_topic(&TopicSpec::new(&input, 1)).await?;
    transport.ensure_topic(&TopicSpec::new(&output, 1)).await?;
    let codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &input).await?;
    let [avro_play, json_play] = <[PlayEvent; 2]>::try_from(plays(2)).map_err(|_| anyhow::anyhow!("two plays"))?;
    let key = |k: &'static str| Some(Bytes::from_static(k.as_bytes()));
    produce(
        &transport,
        &input,
        vec![
            RawRecord::new(key("avro"), codec.encode(&avro_play)?),
            RawRecord::new(key("json"), Some(Bytes::from(serde_json::to_vec(&json_play)?))),
            RawRecord::new(key("garbage"), Some(Bytes::from_static(b"\x07not a play"))),
            RawRecord::new(key("truncated"), Some(Bytes::from_static(b"\x00\x00\x00"))),
        ],
    )
    .await?;

    let mut pipeline = dataflow(&transport, "decode")
        .source(TopicSource::new(
            &input,
            &group,
            Utf8,
            AvroCodec::<PlayEvent>::for_topic(registry.clone(), &input).await?,
        ))
        .filter(|_| true)
        .to(TopicSink::new(&output, Utf8, AvroCodec::<PlayEvent>::for_topic(registry.clone(), &output).await?))
        .with_dlq(DeadLetterQueue::new(&dlq_topic).with_limit(DlqLimit::unlimited()));
    let stats = pipeline.run_until_idle().await?;
    assert_eq!((stats.polled, stats.emitted, stats.dead_lettered), (4, 2, 2));
    drop(pipeline);

    let out_codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &output).await?;
    let decoded: Vec<(String, PlayEvent)> = read_all(&transport, &output)
        .await?
        .iter()
        .map(|r| anyhow::Ok((Utf8.decode(r.record.key.as_ref())?, out_codec.decode(r.record.value.as_ref())?)))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(decoded, vec![("avro".to_owned(), avro_play), ("json".to_owned(), json_play)]);

    let dead = read_all(&transport, &dlq_topic).await?;
    assert_eq!(dead.len(), 2);
    for (record, key, value, offset) in [
        (&dead[0].record, "garbage", &b"\x07not a play"[..], "2"),
        (&dead[1].record, "truncated", &b"\x00\x00\x00"[..], "3"),
    ] {
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(record.value.as_deref(), Some(value), "the original bytes");
        let h = &record.headers;
        assert_eq!(h.get_str(dlq::STAGE), Some("deserialize"), "{key}");
        assert_eq!(h.get_str(dlq::TOPIC), Some(input.as_str()));
        assert_eq!(h.get_str(dlq::PARTITION), Some("0"));
        assert_eq!(h.get_str(dlq::OFFSET), Some(offset));
        assert!(h.get_str(dlq::EXCEPTION).is_some_and(|e| !e.is_empty()));
        assert!(h.get_str(dlq::MESSAGE).is_some_and(|m| !m.is_empty()), "{key}: a reason");
    }
    let json_reason = dead[0].record.headers.get_str(dlq::MESSAGE).unwrap_or_default();
    assert!(json_reason.contains("json"), "no magic byte: the JSON fallback's reason, got {json_reason:?}");
    transport.delete_topics(&[&input, &output, &dlq_topic]).await?;
    Ok(())
}

/// A newer version of `PlayEvent` (an optional field added), as another producer may write it.
const PLAY_EVENT_V2: &str = include_str!("../../pbp-avro/src/codec/testdata/PlayEvent.v2-added-optional.avsc");

/// `play` encoded with [`PLAY_EVENT_V2`] (its new field null) and framed with `id`.
fn play_v2(play: &PlayEvent, id: u32) -> anyhow::Result<Bytes> {
    use apache_avro::types::Value;
    let schema = apache_avro::Schema::parse_str(PLAY_EVENT_V2)?;
    let Value::Record(mut fields) = apache_avro::to_value(play)? else { anyhow::bail!("a record") };
    fields.push(("possession".to_owned(), Value::Union(0, Box::new(Value::Null))));
    let value = Value::Record(fields).resolve(&schema)?;
    let payload =
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build()?.write_value_to_vec(value)?;
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(&payload);
    Ok(Bytes::from(framed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_registry_outage_is_waited_out_not_dead_lettered() -> anyhow::Result<()> {
    let Some(transport) = broker() else { return Ok(()) };
    tokio::time::timeout(Duration::from_secs(180), registry_outage(transport)).await.context("timed out")?
}

async fn registry_outage(transport: Arc<KafkaTransport>) -> anyhow::Result<()> {
    let (schemas, input, output, dlq_topic, group) =
        (unique("_schemas"), unique("outage-in"), unique("outage-out"), unique("outage-dlq"), unique("outage-g"));
    let kafka = format!("kafka://{}", brokers());
    let options = ["--transport", kafka.as_str(), "--schemas-topic", schemas.as_str()];
    let registry_server = Registry::start_with(&options).await?;
    transport.ensure_topic(&TopicSpec::new(&input, 3)).await?;
    transport.ensure_topic(&TopicSpec::new(&output, 3)).await?;

    // Another producer writes the input with a newer version of the schema.
    let writer = HttpRegistry::new(&registry_server.url)?;
    writer.register(&format!("{input}-value"), PlayEvent::SCHEMA).await?;
    let v2_id = writer.register(&format!("{input}-value"), PLAY_EVENT_V2).await?;
    let sent = plays(200);
    let records = sent
        .iter()
        .map(|p| Ok(RawRecord::new(Utf8.encode(&p.game_id)?, Some(play_v2(p, v2_id)?))))
        .collect::<anyhow::Result<_>>()?;
    produce(&transport, &input, records).await?;

    // The pipeline's codecs register their own schema while the registry runs; the writer's is not known yet.
    let registry = Arc::new(HttpRegistry::new(&registry_server.url)?);
    let source_codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &input).await?;
    let sink_codec = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &output).await?;
    let pipeline = dataflow(&transport, "outage")
        .source(TopicSource::new(&input, &group, Utf8, source_codec))
        .to(TopicSink::new(&output, Utf8, sink_codec))
        .with_dlq(DeadLetterQueue::new(&dlq_topic));

    // The registry goes away for 10 s while the pipeline runs.
    let addr = registry_server.addr().to_owned();
    drop(registry_server);
    let shutdown = pbp_dataflow::Shutdown::new();
    let running = {
        let s = shutdown.clone();
        tokio::spawn(async move { pipeline.run(async move { s.wait().await }).await })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    ensure!(read_all(&transport, &output).await?.is_empty(), "nothing can be decoded while the registry is away");
    let _restarted = Registry::start_on(&addr, &options).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while read_all(&transport, &output).await?.len() < sent.len() {
        ensure!(tokio::time::Instant::now() < deadline, "the records did not flow once the registry was back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.trigger();
    let stats = running.await??;
    assert_eq!((stats.emitted, stats.dead_lettered), (200, 0), "every record delivered, none dead-lettered");
    transport.ensure_topic(&TopicSpec::new(&dlq_topic, 1)).await?;
    assert!(read_all(&transport, &dlq_topic).await?.is_empty(), "the dead-letter topic is empty");
    let reader = AvroCodec::<PlayEvent>::for_topic(registry.clone(), &output).await?;
    let mut received: Vec<PlayEvent> = read_all(&transport, &output)
        .await?
        .iter()
        .map(|r| anyhow::Ok(reader.decode(r.record.value.as_ref())?))
        .collect::<anyhow::Result<_>>()?;
    received.sort_by_key(|p| p.sequence);
    assert_eq!(received, sent);
    transport.delete_topics(&[&input, &output, &dlq_topic, &schemas]).await?;
    Ok(())
}
