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

use common::{Expected, Pbp, assert_deleted, assert_game, fixtures_dir, free_port, services_required, wait_for_game};
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::read_to_end;
use pbp_dataflow::{Transport, dlq};
use pbp_espn::fake::{FakeEspn, FakeOptions, Fault, FaultRule};
use pbp_store::{PgConfig, PgStore, PlaysQuery, Repository};

const GAME_FILE: &str = "nba-summary-401810084.json";

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_open(port) {
        anyhow::ensure!(Instant::now() < deadline, "{what} is not listening on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PBP_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let cached = PathBuf::from(std::env::var_os("HOME")?).join(".cache/pbp-tools/bin/tansu");
        cached.is_file().then_some(cached)
    })
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
