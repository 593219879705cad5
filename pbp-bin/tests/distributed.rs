//! The distributed deployment end to end: a Kafka-protocol broker (a tansu started for this test, so that its
//! topics and groups are this test's alone), PostgreSQL (a schema of this test's own), Redis, and `pbp
//! schema-registry`, `pbp ingest`, `pbp enrich` and `pbp serve` as separate processes, polling the fake ESPN
//! server's live replay of a recorded game.
//!
//! Midway, the enrich process is killed with SIGKILL and restarted: PostgreSQL must still end with every play
//! exactly once, in game order, and the right game state; the basket the replay logs twice and removes must
//! end as a tombstone, out of the plays and the state. The first summary ESPN serves is malformed: it goes to
//! `dlq.ingest` with the reason, and the rest of the game still lands.
//!
//! Needs `tansu` (on `PATH`, or `PBP_TANSU`), PostgreSQL and Redis; skipped when one is missing unless
//! `PBP_REQUIRE_SERVICES` is set, which makes that a failure.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Expected, Pbp, assert_deleted, assert_game, fixtures_dir, free_port, port_open, services_required, wait_for_game,
    wait_for_port,
};
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::read_to_end;
use pbp_dataflow::{Transport, dlq};
use pbp_espn::fake::{FakeEspn, FakeOptions, Fault, FaultRule};
use pbp_store::{PgConfig, PgStore, PlaysQuery, Repository};

const GAME_FILE: &str = "nba-summary-401810084.json";

fn tansu_binary() -> Option<PathBuf> {
    std::env::var_os("PBP_TANSU").map(PathBuf::from).or_else(|| common::tool("tansu"))
}

/// A broker of this test's own, killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A PostgreSQL schema of this test's own, dropped at the end.
struct Schema {
    base: String,
    name: String,
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).output()?;
    anyhow::ensure!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = psql(&self.base, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn skip_or_fail(reason: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!services_required(), "PBP_REQUIRE_SERVICES is set but {reason}");
    eprintln!("skipping: {reason}; set PBP_REQUIRE_SERVICES=1 to fail instead");
    Ok(())
}

/// The services of one test: its own broker and PostgreSQL schema (Redis is shared; cache entries are
/// invalidated on every write).
struct Services {
    // Held for their `Drop`: the broker is killed and the schema dropped with the services.
    _broker: Broker,
    _schema: Schema,
    kafka_port: u16,
    database_url: String,
}

/// Starts the services, or `None` (with a printed reason) when one is missing and services are not required.
fn services(dir: &std::path::Path) -> anyhow::Result<Option<Services>> {
    let Some(tansu) = tansu_binary() else {
        skip_or_fail("no tansu binary (PATH or PBP_TANSU)")?;
        return Ok(None);
    };
    let pg_base =
        std::env::var("PBP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    for (port, what) in [(5432, "PostgreSQL"), (6379, "Redis")] {
        if !port_open(port) {
            skip_or_fail(&format!("{what} is not listening on 127.0.0.1:{port}"))?;
            return Ok(None);
        }
    }
    let kafka_port = free_port()?;
    let listener = format!("tcp://127.0.0.1:{kafka_port}");
    let broker = Broker(
        Command::new(&tansu)
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("tansu.log"))?)
            .spawn()?,
    );
    wait_for_port(kafka_port, "tansu")?;
    let schema = Schema { base: pg_base.clone(), name: format!("pbp_e2e_{}_{}", std::process::id(), kafka_port) };
    psql(&pg_base, &format!("CREATE SCHEMA {}", schema.name))?;
    let sep = if pg_base.contains('?') { '&' } else { '?' };
    let database_url = format!("{pg_base}{sep}options=-c%20search_path%3D{}", schema.name);
    Ok(Some(Services { _broker: broker, _schema: schema, kafka_port, database_url }))
}

impl Services {
    /// The transport URL, with group timings short enough for a test (a killed member's partitions move on
    /// within six seconds).
    fn transport(&self) -> String {
        format!("kafka://127.0.0.1:{}?session.timeout.ms=6000&heartbeat.interval.ms=1000", self.kafka_port)
    }
}

/// Starts `pbp schema-registry` with its schemas in the broker's `_schemas` topic; returns it and its URL.
fn start_registry(transport: &str, log_dir: &std::path::Path) -> anyhow::Result<(Pbp, String)> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let registry = Pbp::start(
        "schema-registry",
        &["schema-registry", "--listen", &listen, "--transport", transport],
        &[],
        log_dir,
    )?;
    wait_for_port(port, "pbp schema-registry")?;
    Ok((registry, format!("http://{listen}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_on_kafka_and_postgres() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some(services) = services(dir.path())? else { return Ok(()) };
    let game_file = fixtures_dir().join(GAME_FILE);
    let expected = Expected::from_file(&game_file)?;
    let transport = services.transport();
    let (registry, registry_url) = start_registry(&transport, dir.path())?;
    let output = Command::new(env!("CARGO_BIN_EXE_pbp"))
        .args(["--log", "warn", "replay", "--repeat", "2", "--transport", &transport])
        .args(["--schema-registry", &registry_url, "--database-url", &services.database_url])
        .args(["--redis-url", "redis://127.0.0.1:6379/"])
        .arg(&game_file)
        .output()?;
    assert!(output.status.success(), "pbp replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_str(String::from_utf8(output.stdout)?.trim())?;
    assert_eq!((result["games"].as_u64(), result["plays"].as_u64()), (Some(2), Some(2 * expected.plays.len() as u64)));
    let store = PgStore::connect(PgConfig::new(services.database_url.clone())).await?;
    assert_game(&store, &expected, &[]).await?;
    // The second copy is the same game under another id, a day later.
    let copy = Expected { game_id: format!("{}r1", expected.game_id), ..expected };
    assert_game(&store, &copy, &[]).await?;
    registry.stop()?;
    drop(services);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_enrich_serve_as_processes_survive_a_killed_enrich() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some(services) = services(dir.path())? else { return Ok(()) };
    let (kafka_port, database_url) = (services.kafka_port, services.database_url.clone());

    let game_file = fixtures_dir().join(GAME_FILE);
    let expected = Expected::from_file(&game_file)?;
    let fake = FakeEspn::from_files(
        &[game_file, fixtures_dir().join("nba-teams.json")],
        FakeOptions { live: true, speed: 150.0, corrections: true, deletions: true },
    )?;
    // The first summary fetched is an HTML error page with status 200.
    fake.push_fault(FaultRule::times("/summary", Fault::Malformed, 1));
    let corrections = fake.corrections();
    let deletions = fake.deletions();
    let server = fake.bind("127.0.0.1:0".parse()?).await?;

    let transport = services.transport();
    let (registry, registry_url) = start_registry(&transport, dir.path())?;
    let envs = [
        ("PBP_TRANSPORT", transport.clone()),
        ("PBP_SCHEMA_REGISTRY_URL", registry_url.clone()),
        ("PBP_DATABASE_URL", database_url.clone()),
        ("PBP_REDIS_URL", "redis://127.0.0.1:6379/".to_owned()),
        ("PBP_ESPN_URL", server.base_url()),
        ("PBP_PLAYS_INTERVAL_MS", "100".to_owned()),
        ("PBP_SCOREBOARD_INTERVAL_MS", "200".to_owned()),
        ("PBP_BATCH_SIZE", "64".to_owned()),
        ("PBP_LISTEN", "127.0.0.1:0".to_owned()),
    ];
    // Only serve answers the REST API.
    let api_port = free_port()?;
    let mut serve_envs = envs.to_vec();
    serve_envs.retain(|(key, _)| *key != "PBP_LISTEN");
    serve_envs.push(("PBP_LISTEN", format!("127.0.0.1:{api_port}")));
    let mut serve = Pbp::start("serve", &["serve"], &serve_envs, dir.path())?;
    let mut enrich = Pbp::start("enrich", &["enrich"], &envs, dir.path())?;
    let mut ingest = Pbp::start("ingest", &["ingest"], &envs, dir.path())?;

    let store = PgStore::connect(PgConfig::new(database_url.clone())).await?;
    let logs = || {
        for name in ["ingest", "enrich", "serve", "schema-registry"] {
            let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {name} (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    };

    // Midway through the game, enrich dies without a chance to commit anything.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stored = store.plays(&expected.game_id, &PlaysQuery::default()).await.map(|p| p.len()).unwrap_or(0);
        if stored >= expected.plays.len() / 3 {
            break;
        }
        for process in [&mut ingest, &mut enrich, &mut serve] {
            if let Err(error) = process.check_running() {
                logs();
                return Err(error);
            }
        }
        if Instant::now() > deadline {
            logs();
            anyhow::bail!("no third of the game stored within 180 s ({stored} plays)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    enrich.kill9()?;
    let state_at_kill = store.game_state(&expected.game_id).await?;
    assert!(state_at_kill.is_none_or(|s| s.status.as_str() != "post"), "killed mid-game");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut enrich = Pbp::start("enrich-restarted", &["enrich"], &envs, dir.path())?;

    let waited = wait_for_game(&store, &expected, Duration::from_secs(300), || {
        ingest.check_running()?;
        enrich.check_running()?;
        serve.check_running()
    })
    .await;
    if waited.is_err() {
        logs();
    }
    waited?;
    assert_game(&store, &expected, &corrections).await?;
    // The basket ESPN removed went through raw.plays, enrich (and its restored state) and enriched.plays into
    // PostgreSQL as a tombstone (item C).
    assert_deleted(&store, &expected.game_id, &deletions).await?;

    // serve's REST API answers from PostgreSQL through Redis, with a healthy store, cache and broker.
    common::assert_api(api_port, &store, &expected.game_id, "kafka").await?;

    // The malformed summary is in the ingest DLQ with its reason and its bytes.
    let kafka = KafkaTransport::connect(KafkaConfig::new(format!("127.0.0.1:{kafka_port}")))?;
    let kafka: Arc<dyn Transport> = Arc::new(kafka);
    let partitions: Vec<u32> = (0..kafka.partitions("dlq.ingest").await?).collect();
    let mut letters = Vec::new();
    read_to_end(kafka.as_ref(), "dlq.ingest", &partitions, |r| letters.push(r)).await?;
    let undecodable: Vec<_> =
        letters.iter().filter(|r| r.record.headers.get_str(dlq::EXCEPTION) == Some("UndecodableResponse")).collect();
    assert_eq!(undecodable.len(), 1, "one dead letter for the malformed summary: {letters:?}");
    let letter = &undecodable[0].record;
    assert_eq!(letter.key.as_deref(), Some(expected.game_id.as_bytes()));
    assert!(letter.headers.get_str(dlq::MESSAGE).is_some_and(|m| m.contains("/summary")), "reason names the URL");
    assert!(letter.value.as_ref().is_some_and(|body| body.starts_with(b"<")), "the HTML body is kept");

    for process in [ingest, enrich, serve, registry] {
        process.stop()?;
    }
    server.shutdown().await;
    drop(services);
    Ok(())
}

/// The `raw.plays` records of `game_id`, in the order ingest sent them (a game is one partition).
async fn raw_plays_of(kafka: &dyn Transport, game_id: &str) -> anyhow::Result<Vec<pbp_avro::PlayEvent>> {
    use pbp_dataflow::Codec as _;
    let registry: Arc<dyn pbp_avro::SchemaRegistry> = Arc::new(pbp_avro::registry::EmbeddedRegistry::new());
    let codec = pbp_avro::AvroCodec::<pbp_avro::PlayEvent>::for_topic(registry, "raw.plays").await?;
    let partitions: Vec<u32> = (0..kafka.partitions("raw.plays").await?).collect();
    let mut records = Vec::new();
    read_to_end(kafka, "raw.plays", &partitions, |r| {
        if r.record.key.as_deref() == Some(game_id.as_bytes()) {
            records.push(r);
        }
    })
    .await?;
    records.sort_by_key(|r| r.origin.offset);
    let mut plays = Vec::with_capacity(records.len());
    for r in &records {
        // Another process registered the schema: fetch it as a source would.
        codec.prepare(r.record.value.as_ref()).await?;
        plays.push(codec.decode(r.record.value.as_ref())?);
    }
    Ok(plays)
}

/// Records that repeat their play's previous record unchanged (what a restarted ingest that forgot what it had
/// published sends): same content, no deletion in between.
fn unchanged_repeats(plays: &[pbp_avro::PlayEvent]) -> Vec<String> {
    // Each play's last published content; `None` after a deletion.
    let mut last: std::collections::HashMap<&str, Option<pbp_avro::PlayEvent>> = std::collections::HashMap::new();
    let mut repeats = Vec::new();
    for play in plays {
        if play.change == pbp_avro::ChangeKind::Delete {
            last.insert(&play.play_id, None);
            continue;
        }
        let content = pbp_avro::PlayEvent { fetched_at: 0, change: pbp_avro::ChangeKind::New, ..play.clone() };
        if last.get(play.play_id.as_str()).is_some_and(|previous| previous.as_ref() == Some(&content)) {
            repeats.push(play.play_id.clone());
        }
        last.insert(&play.play_id, Some(content));
    }
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ingest_emits_nothing_it_already_published() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some(services) = services(dir.path())? else { return Ok(()) };
    let game_file = fixtures_dir().join(GAME_FILE);
    let expected = Expected::from_file(&game_file)?;
    let fake = FakeEspn::from_files(
        &[game_file, fixtures_dir().join("nba-teams.json")],
        FakeOptions { live: true, speed: 150.0, corrections: true, deletions: true },
    )?;
    let server = fake.bind("127.0.0.1:0".parse()?).await?;
    let transport = services.transport();
    let (registry, registry_url) = start_registry(&transport, dir.path())?;
    let envs = [
        ("PBP_TRANSPORT", transport.clone()),
        ("PBP_SCHEMA_REGISTRY_URL", registry_url.clone()),
        ("PBP_ESPN_URL", server.base_url()),
        ("PBP_PLAYS_INTERVAL_MS", "100".to_owned()),
        ("PBP_SCOREBOARD_INTERVAL_MS", "200".to_owned()),
    ];
    let kafka: Arc<dyn Transport> =
        Arc::new(KafkaTransport::connect(KafkaConfig::new(format!("127.0.0.1:{}", services.kafka_port)))?);
    let distinct = |plays: &[pbp_avro::PlayEvent]| {
        plays.iter().map(|p| p.play_id.as_str()).collect::<std::collections::HashSet<_>>().len()
    };

    let mut ingest = Pbp::start("ingest", &["ingest"], &envs, dir.path())?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        ingest.check_running()?;
        let published = if kafka.partitions("raw.plays").await.is_ok() {
            distinct(&raw_plays_of(kafka.as_ref(), &expected.game_id).await?)
        } else {
            0
        };
        if published >= expected.plays.len() / 3 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no third of the game published within 180 s ({published})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Killed mid-game: no chance to write anything down.
    ingest.kill9()?;
    let before_restart = raw_plays_of(kafka.as_ref(), &expected.game_id).await?;
    let mut ingest = Pbp::start("ingest-restarted", &["ingest"], &envs, dir.path())?;

    // The game runs to its end; then nothing more is published.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    let plays = loop {
        ingest.check_running()?;
        let plays = raw_plays_of(kafka.as_ref(), &expected.game_id).await?;
        if plays.len() != last_count {
            last_count = plays.len();
            quiet_since = Instant::now();
        } else if distinct(&plays) >= expected.plays.len() && quiet_since.elapsed() > Duration::from_secs(4) {
            break plays;
        }
        anyhow::ensure!(Instant::now() < deadline, "the game did not end within 300 s ({} records)", plays.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(plays.len() > before_restart.len(), "the restarted ingest went on with the game");
    let repeats = unchanged_repeats(&plays);
    assert!(repeats.is_empty(), "{} unchanged plays published again after the restart: {repeats:?}", repeats.len());
    let ids: std::collections::HashSet<&str> = plays.iter().map(|p| p.play_id.as_str()).collect();
    for (id, _) in &expected.plays {
        assert!(ids.contains(id.as_str()), "play {id} was published");
    }
    ingest.stop()?;
    registry.stop()?;
    server.shutdown().await;
    drop(services);
    Ok(())
}
