//! Fault trials: the distributed deployment (`pbp ingest`, `pbp enrich`, `pbp serve` as processes on a tansu
//! broker, PostgreSQL, Redis and `pbp schema-registry`) runs the recorded games, copied to make a season, while a
//! driver injects one fault per trial: SIGKILL of a random one of ingest, enrich or serve at a random moment (and a
//! restart), or a restart of PostgreSQL, Redis, the broker or the schema registry. After each trial the store must
//! equal a clean replay of the same input (`pbp replay --repeat`, embedded): plays lost, duplicated and wrong are
//! counted per trial, with the dead letters and the time the fault cost. `docs/reliability.md` ("Fault trials")
//! has the report of a full run and the command that makes it.
//!
//! Each trial has services of its own: a fresh broker, PostgreSQL schema, Redis server, registry and fake ESPN,
//! so that one trial's leftovers cannot hide or cause another's losses. The broker restart runs tansu on durable
//! storage (S3, served by `s3s-fs`): the memory storage of the other trials loses everything on a restart.
//! The PostgreSQL restart restarts the machine's cluster (`pg_ctlcluster`), which every test binary shares:
//! cargo runs test binaries one at a time, and this binary has this one test.
//!
//! Sized by the environment (defaults: the short version CI runs):
//!
//! * `PBP_FAULT_COPIES` (1): copies of each recorded game (`--repeat`); 205 copies of the five recorded games
//!   are a season.
//! * `PBP_FAULT_SPEED` (600): the fake ESPN replays the games live at this speed, with corrections, late inserts
//!   and deleted plays; `0` serves them as finished games (a season's backfill).
//! * `PBP_FAULT_KILL_TRIALS` (3): trials that kill a process; the service restarts come on top.
//! * `PBP_FAULT_SERVICES` (`postgres,redis,broker,registry`): the services to restart, a trial each (`none`).
//! * `PBP_FAULT_SEED` (the time): the seed of the random choices, printed with the report to rerun a trial.
//! * `PBP_FAULT_REPORT`: a file to write the report to (Markdown), besides standard error.
//!
//! Needs `tansu`, `s3s-fs` (`.ci/run` installs both), `redis-server`, `psql` and `pg_ctlcluster` with the right to restart the
//! cluster, PostgreSQL and Redis; skipped when one is missing unless `PBP_REQUIRE_SERVICES` is set.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Pbp, content, fixtures_dir, free_port, port_open, services_required, tool, wait_for_port};
use pbp_dataflow::Transport;
use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
use pbp_dataflow::transport::read_to_end;
use pbp_espn::fake::{FakeEspn, FakeOptions};
use pbp_store::{GameStateRow, PgConfig, PgStore, PlayRow, PlaysQuery, Repository, SqliteStore};

/// The dead-letter topics, in pipeline order.
const DLQ_TOPICS: [&str; 3] = ["dlq.ingest", "dlq.enrich", "dlq.serve"];

#[derive(Debug, Clone)]
struct Settings {
    copies: u32,
    speed: f64,
    kill_trials: u32,
    services: Vec<Fault>,
    seed: u64,
    report: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => {
                    value.parse().map_err(|error| anyhow::anyhow!("{name}={value}: {error}"))
                }
                _ => Ok(default),
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
        let settings = Settings {
            copies: var("PBP_FAULT_COPIES", 1)?,
            speed: var("PBP_FAULT_SPEED", 600.0)?,
            kill_trials: var("PBP_FAULT_KILL_TRIALS", 3)?,
            services: var("PBP_FAULT_SERVICES", "postgres,redis,broker,registry".to_owned())?
                .split(',')
                .filter(|name| !name.is_empty() && *name != "none")
                .map(|name| match name {
                    "postgres" => Ok(Fault::Postgres),
                    "redis" => Ok(Fault::Redis),
                    "broker" => Ok(Fault::Broker),
                    "registry" => Ok(Fault::Registry),
                    other => Err(anyhow::anyhow!("PBP_FAULT_SERVICES: unknown service {other}")),
                })
                .collect::<anyhow::Result<_>>()?,
            seed: var("PBP_FAULT_SEED", now)?,
            report: std::env::var_os("PBP_FAULT_REPORT").map(PathBuf::from),
        };
        anyhow::ensure!(settings.copies >= 1, "PBP_FAULT_COPIES must be at least 1");
        anyhow::ensure!(settings.speed.is_finite() && settings.speed >= 0.0, "PBP_FAULT_SPEED must be >= 0");
        Ok(settings)
    }
}

/// SplitMix64: the trials' random choices, reproducible from the seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (high - low)
    }
}

/// One of the three pipeline processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Ingest,
    Enrich,
    Serve,
}

impl Role {
    const ALL: [Role; 3] = [Role::Ingest, Role::Enrich, Role::Serve];

    fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Enrich => "enrich",
            Role::Serve => "serve",
        }
    }
}

/// The fault of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// None: the fault-free run whose duration the others are measured against.
    Baseline,
    /// SIGKILL of the process, restarted a moment later.
    Kill(Role),
    /// PostgreSQL stopped and started again.
    Postgres,
    /// Redis killed and started again (empty).
    Redis,
    /// The broker killed and started again on its durable storage.
    Broker,
    /// The schema registry killed and started again.
    Registry,
}

impl Fault {
    fn describe(self) -> String {
        match self {
            Fault::Baseline => "none (baseline)".to_owned(),
            Fault::Kill(role) => format!("SIGKILL {}", role.name()),
            Fault::Postgres => "PostgreSQL restart".to_owned(),
            Fault::Redis => "Redis restart".to_owned(),
            Fault::Broker => "tansu restart (S3 storage)".to_owned(),
            Fault::Registry => "schema registry restart".to_owned(),
        }
    }

    /// How long the faulty part stays down.
    fn down_for(self, random: &mut Random) -> Duration {
        match self {
            Fault::Baseline => Duration::ZERO,
            Fault::Kill(_) => Duration::from_secs_f64(random.between(0.0, 2.0)),
            Fault::Postgres | Fault::Redis | Fault::Broker => Duration::from_secs(5),
            Fault::Registry => Duration::from_secs(10),
        }
    }
}

/// What one trial found.
#[derive(Debug, Clone)]
struct TrialReport {
    fault: Fault,
    /// Seconds after the start when the fault came.
    fault_at: Option<f64>,
    lost: usize,
    duplicated: usize,
    wrong: usize,
    dead_letters: [usize; 3],
    /// Seconds from the start until the store equalled the clean replay (or the trial gave up).
    finished_in: f64,
    /// Seconds from the fault until the store equalled the clean replay.
    recovered_in: Option<f64>,
    complete: bool,
    notes: Vec<String>,
}

impl TrialReport {
    fn clean(&self) -> bool {
        self.complete && self.lost == 0 && self.duplicated == 0 && self.wrong == 0 && self.notes.is_empty()
    }
}

/// What the clean replay stored: per game, its plays (by id, without delivery fields) and its state.
struct Reference {
    games: HashMap<String, (HashMap<String, PlayRow>, GameStateRow)>,
    plays: i64,
}

/// A child process killed when dropped.
struct Guarded(Option<Child>);

impl Guarded {
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql]).output()?;
    anyhow::ensure!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The machine's PostgreSQL cluster, which the PostgreSQL trial stops and starts.
fn pg_cluster(action: &str) -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .min()
        .ok_or_else(|| anyhow::anyhow!("no cluster under /etc/postgresql"))?;
    let mut command = Command::new("pg_ctlcluster");
    command.args(["--skip-systemctl-redirect", &version, "main", action]);
    if action == "stop" {
        command.args(["-m", "fast"]);
    }
    let output = command.output()?;
    anyhow::ensure!(output.status.success(), "pg_ctlcluster {action}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// The tools the trials need, found once.
struct Tools {
    tansu: PathBuf,
    /// The S3 server (`s3s-fs`) of the broker's durable storage.
    s3: PathBuf,
    redis: PathBuf,
    pg_base: String,
}

fn tools() -> anyhow::Result<Option<Tools>> {
    let missing = |what: &str| -> anyhow::Result<Option<Tools>> {
        anyhow::ensure!(!services_required(), "PBP_REQUIRE_SERVICES is set but {what}");
        eprintln!("skipping: {what}; set PBP_REQUIRE_SERVICES=1 to fail instead");
        Ok(None)
    };
    let (Some(tansu), Some(s3), Some(redis)) = (tool("tansu"), tool("s3s-fs"), tool("redis-server")) else {
        return missing("tansu, s3s-fs or redis-server is not installed");
    };
    if tool("psql").is_none() || tool("pg_ctlcluster").is_none() {
        return missing("psql or pg_ctlcluster is not installed");
    }
    if !port_open(5432) {
        return missing("PostgreSQL is not listening on 127.0.0.1:5432");
    }
    let pg_base =
        std::env::var("PBP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    Ok(Some(Tools { tansu, s3, redis, pg_base }))
}

/// An S3 server for tansu's durable storage (`s3s-fs`, which keeps each bucket in a folder), shared by the
/// trials (one bucket each). (moto's server does not do: on it, librdkafka re-fetches a partition's first offset
/// forever, so a table never finishes its bootstrap.)
struct ObjectStore {
    _server: Guarded,
    port: u16,
    root: PathBuf,
}

impl ObjectStore {
    fn start(tools: &Tools, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let root = dir.join("s3");
        std::fs::create_dir_all(&root)?;
        let server = Command::new(&tools.s3)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "test", "--secret-key", "test"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("s3.log"))?)
            .spawn()?;
        let server = Guarded(Some(server));
        wait_for_port(port, "s3s-fs")?;
        Ok(Self { _server: server, port, root })
    }

    /// Creates `bucket`: a folder of the server's root.
    fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        Ok(std::fs::create_dir_all(self.root.join(bucket))?)
    }
}

/// The broker of a trial: tansu on memory storage, or on S3 (a bucket of the trial's own) when it is to be
/// restarted.
struct Broker {
    process: Guarded,
    port: u16,
    storage: String,
    s3_port: Option<u16>,
    log: PathBuf,
}

impl Broker {
    fn start(tools: &Tools, storage: String, s3_port: Option<u16>, log: PathBuf) -> anyhow::Result<Self> {
        let mut broker = Self { process: Guarded(None), port: free_port()?, storage, s3_port, log };
        broker.spawn(tools)?;
        Ok(broker)
    }

    fn spawn(&mut self, tools: &Tools) -> anyhow::Result<()> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(&tools.tansu);
        command
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", &self.storage])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(port) = self.s3_port {
            command
                .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_ALLOW_HTTP", "true");
        }
        self.process = Guarded(Some(command.spawn()?));
        wait_for_port(self.port, "tansu")
    }
}

/// A private Redis server (the shared one is not to be restarted).
struct Redis {
    process: Guarded,
    port: u16,
}

impl Redis {
    fn start(tools: &Tools) -> anyhow::Result<Self> {
        let mut redis = Self { process: Guarded(None), port: free_port()? };
        redis.spawn(tools)?;
        Ok(redis)
    }

    fn spawn(&mut self, tools: &Tools) -> anyhow::Result<()> {
        let child = Command::new(&tools.redis)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.process = Guarded(Some(child));
        wait_for_port(self.port, "redis-server")
    }
}

/// A PostgreSQL schema of the trial's own, dropped at the end.
struct Schema {
    base: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = psql(&self.base, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// The recorded summaries with plays, each file once.
fn recorded_games() -> anyhow::Result<Vec<PathBuf>> {
    let mut games = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir())? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.contains("-summary-") || !name.ends_with(".json") {
            continue;
        }
        let summary = pbp_espn::model::parse_summary(&std::fs::read(&path)?)?;
        if !pbp_espn::normalize::normalize_summary(&summary, None).1.is_empty() {
            games.push(path);
        }
    }
    games.sort();
    anyhow::ensure!(!games.is_empty(), "no recorded summary with plays in {}", fixtures_dir().display());
    Ok(games)
}

/// The documents the fake ESPN serves: the teams list and `copies` copies of each game, copy k > 0 under the id
/// `pbp replay --repeat` gives it (`<id>r<k>`).
fn fake_documents(games: &[PathBuf], copies: u32) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let teams = fixtures_dir().join("nba-teams.json");
    let mut documents = vec![(teams.display().to_string(), std::fs::read(&teams)?)];
    for path in games {
        let document: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let id = document["header"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no header.id"))?.to_owned();
        for copy in 0..copies {
            let mut document = document.clone();
            if copy > 0 {
                let copy_id = serde_json::Value::from(format!("{id}r{copy}"));
                document["header"]["id"] = copy_id.clone();
                for competition in document["header"]["competitions"].as_array_mut().into_iter().flatten() {
                    competition["id"] = copy_id.clone();
                }
            }
            documents.push((format!("{}#{copy}", path.display()), serde_json::to_vec(&document)?));
        }
    }
    Ok(documents)
}

/// Replays the games into an embedded store and reads what it holds.
async fn clean_replay(games: &[PathBuf], copies: u32, dir: &Path) -> anyhow::Result<Reference> {
    let data_dir = dir.join("reference");
    let output = Command::new(env!("CARGO_BIN_EXE_pbp"))
        .args(["--log", "warn", "replay", "--repeat", &copies.to_string(), "--data-dir"])
        .arg(&data_dir)
        .arg(fixtures_dir().join("nba-teams.json"))
        .args(games)
        .output()?;
    anyhow::ensure!(output.status.success(), "pbp replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let store = SqliteStore::open(&data_dir, 2).await?;
    let mut reference = Reference { games: HashMap::new(), plays: 0 };
    for path in games {
        let summary = pbp_espn::model::parse_summary(&std::fs::read(path)?)?;
        let id = pbp_espn::normalize::normalize_summary(&summary, None).0.game_id;
        for copy in 0..copies {
            let game_id = if copy == 0 { id.clone() } else { format!("{id}r{copy}") };
            let plays: HashMap<String, PlayRow> = store
                .plays(&game_id, &PlaysQuery::default())
                .await?
                .into_iter()
                .map(|p| (p.play_id.clone(), content(&p)))
                .collect();
            let state = store.game_state(&game_id).await?.ok_or_else(|| anyhow::anyhow!("{game_id}: no state"))?;
            reference.plays += plays.len() as i64;
            reference.games.insert(game_id, (plays, state_content(&state)));
        }
    }
    Ok(reference)
}

/// A game state without the time it was written.
fn state_content(state: &GameStateRow) -> GameStateRow {
    GameStateRow { updated_at: 0, ..state.clone() }
}

/// Plays lost, duplicated and wrong in `store` against the clean replay, with a few examples.
async fn compare(store: &dyn Repository, reference: &Reference) -> anyhow::Result<(usize, usize, usize, Vec<String>)> {
    let (mut lost, mut duplicated, mut wrong) = (0, 0, 0);
    let mut examples = Vec::new();
    let mut example = |text: String| {
        if examples.len() < 5 {
            examples.push(text);
        }
    };
    for (game_id, (plays, state)) in &reference.games {
        let stored = store.plays(game_id, &PlaysQuery::default()).await?;
        let mut seen = std::collections::HashSet::new();
        for play in &stored {
            match plays.get(&play.play_id) {
                None => {
                    duplicated += 1;
                    example(format!("{game_id}: play {} is not in the clean replay", play.play_id));
                }
                Some(_) if !seen.insert(play.play_id.as_str()) => {
                    duplicated += 1;
                    example(format!("{game_id}: play {} read twice", play.play_id));
                }
                Some(wanted) if content(play) != *wanted => {
                    wrong += 1;
                    example(format!("{game_id}: play {} differs: {play:?}", play.play_id));
                }
                Some(_) => {}
            }
        }
        for id in plays.keys().filter(|id| !seen.contains(id.as_str())) {
            lost += 1;
            example(format!("{game_id}: play {id} lost"));
        }
        match store.game_state(game_id).await? {
            Some(got) if state_content(&got) == *state => {}
            Some(got) if got.plays_applied > state.plays_applied => {
                duplicated += 1;
                example(format!("{game_id}: state applied {} plays, not {}", got.plays_applied, state.plays_applied));
            }
            got => {
                wrong += 1;
                example(format!("{game_id}: state {got:?}, not {state:?}"));
            }
        }
    }
    Ok((lost, duplicated, wrong, examples))
}

/// Final games and plays applied in the store: a cheap reading of its progress.
fn progress(database_url: &str) -> Option<(i64, i64)> {
    let row = psql(
        database_url,
        "SELECT count(*) FILTER (WHERE status = 'post'), coalesce(sum(plays_applied), 0) FROM game_states",
    )
    .ok()?;
    let (games, plays) = row.split_once('|')?;
    Some((games.parse().ok()?, plays.parse().ok()?))
}

/// Records on each dead-letter topic.
async fn dead_letters(broker_port: u16) -> anyhow::Result<[usize; 3]> {
    let kafka: Arc<dyn Transport> =
        Arc::new(KafkaTransport::connect(KafkaConfig::new(format!("127.0.0.1:{broker_port}")))?);
    let mut counts = [0; 3];
    for (count, topic) in counts.iter_mut().zip(DLQ_TOPICS) {
        let Ok(partitions) = kafka.partitions(topic).await else { continue };
        let partitions: Vec<u32> = (0..partitions).collect();
        read_to_end(kafka.as_ref(), topic, &partitions, |_| *count += 1).await?;
    }
    Ok(counts)
}

/// The last lines of a log, for a trial that went wrong.
fn log_tail(log: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// What every trial shares.
struct Bench<'a> {
    tools: &'a Tools,
    object_store: &'a ObjectStore,
    documents: &'a [(String, Vec<u8>)],
    settings: &'a Settings,
    reference: &'a Reference,
}

/// The fault of one trial, when it comes and for how long.
#[derive(Debug, Clone, Copy)]
struct Plan {
    number: usize,
    fault: Fault,
    at: Option<Duration>,
    down_for: Duration,
    /// When the trial gives up waiting for the store to equal the clean replay.
    timeout: Duration,
}

/// One trial: fresh services, the three pipelines, one fault, until the store equals the clean replay or the
/// plan's timeout passes.
#[allow(clippy::too_many_lines)] // one trial, read top to bottom
async fn trial(bench: &Bench<'_>, plan: Plan) -> anyhow::Result<TrialReport> {
    let Bench { tools, object_store, documents, settings, reference } = *bench;
    let Plan { number, fault, at: fault_at, down_for, timeout } = plan;
    let dir = tempfile::Builder::new().prefix(&format!("pbp-fault-{number}-")).tempdir()?;
    let log_dir = dir.path();
    let (storage, s3_port) = if fault == Fault::Broker {
        let bucket = format!("tansu-trial-{number}-{}", std::process::id());
        object_store.create_bucket(&bucket)?;
        (format!("s3://{bucket}/"), Some(object_store.port))
    } else {
        ("memory://tansu/".to_owned(), None)
    };
    let mut broker = Broker::start(tools, storage, s3_port, log_dir.join("tansu.log"))?;
    let mut redis = Redis::start(tools)?;
    let schema = Schema { base: tools.pg_base.clone(), name: format!("pbp_fault_{}_{number}", std::process::id()) };
    psql(&schema.base, &format!("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}", schema.name))?;
    let sep = if schema.base.contains('?') { '&' } else { '?' };
    let database_url = format!("{}{sep}options=-c%20search_path%3D{}", schema.base, schema.name);
    let transport = format!("kafka://127.0.0.1:{}?session.timeout.ms=6000&heartbeat.interval.ms=1000", broker.port);

    let registry_port = free_port()?;
    let registry_listen = format!("127.0.0.1:{registry_port}");
    let registry_args = ["schema-registry", "--listen", &registry_listen, "--transport", &transport];
    let mut registry = Pbp::start("schema-registry", &registry_args, &[], log_dir)?;
    wait_for_port(registry_port, "pbp schema-registry")?;

    let fake = FakeEspn::from_documents(
        documents.to_vec(),
        FakeOptions { live: settings.speed > 0.0, speed: settings.speed.max(1.0), corrections: true, deletions: true },
    )?;
    let server = fake.bind("127.0.0.1:0".parse()?).await?;
    let api_port = free_port()?;
    let redis_port = redis.port;
    let envs = |role: Role| {
        let mut envs = vec![
            ("PBP_TRANSPORT", transport.clone()),
            ("PBP_SCHEMA_REGISTRY_URL", format!("http://{registry_listen}")),
            ("PBP_DATABASE_URL", database_url.clone()),
            ("PBP_REDIS_URL", format!("redis://127.0.0.1:{redis_port}/")),
            ("PBP_ESPN_URL", server.base_url()),
            ("PBP_LEAGUES", "nba,wnba,mens-college-basketball,womens-college-basketball".to_owned()),
            ("PBP_PLAYS_INTERVAL_MS", "200".to_owned()),
            ("PBP_SCOREBOARD_INTERVAL_MS", "300".to_owned()),
        ];
        let listen = if role == Role::Serve { format!("127.0.0.1:{api_port}") } else { "127.0.0.1:0".to_owned() };
        envs.push(("PBP_LISTEN", listen));
        envs
    };
    let mut starts: HashMap<&str, usize> = HashMap::new();
    let mut start = |role: Role| -> anyhow::Result<Pbp> {
        let count = starts.entry(role.name()).or_default();
        *count += 1;
        let name = if *count == 1 { role.name().to_owned() } else { format!("{}-{count}", role.name()) };
        Pbp::start(&name, &[role.name()], &envs(role), log_dir)
    };
    let mut processes: Vec<(Role, Pbp)> = Vec::new();
    for role in [Role::Serve, Role::Enrich, Role::Ingest] {
        processes.push((role, start(role)?));
    }

    let started = Instant::now();
    let mut report = TrialReport {
        fault,
        fault_at: None,
        lost: 0,
        duplicated: 0,
        wrong: 0,
        dead_letters: [0; 3],
        finished_in: 0.0,
        recovered_in: None,
        complete: false,
        notes: Vec::new(),
    };
    let store = PgStore::connect(PgConfig::new(database_url.clone())).await?;
    let games = reference.games.len() as i64;
    let mut faulted: Option<Instant> = None;
    loop {
        // The fault, once its moment came.
        if faulted.is_none()
            && let Some(at) = fault_at
            && started.elapsed() >= at
        {
            faulted = Some(Instant::now());
            report.fault_at = Some(started.elapsed().as_secs_f64());
            match fault {
                Fault::Baseline => {}
                Fault::Kill(role) => {
                    let at = processes.iter().position(|(r, _)| *r == role).expect("each role runs");
                    processes.remove(at).1.kill9()?;
                    tokio::time::sleep(down_for).await;
                    processes.push((role, start(role)?));
                }
                Fault::Postgres => {
                    pg_cluster("stop")?;
                    tokio::time::sleep(down_for).await;
                    pg_cluster("start")?;
                    wait_for_port(5432, "PostgreSQL")?;
                }
                Fault::Redis => {
                    redis.process.kill();
                    tokio::time::sleep(down_for).await;
                    redis.spawn(tools)?;
                }
                Fault::Broker => {
                    broker.process.kill();
                    tokio::time::sleep(down_for).await;
                    broker.spawn(tools)?;
                }
                Fault::Registry => {
                    registry.kill9()?;
                    tokio::time::sleep(down_for).await;
                    registry = Pbp::start("schema-registry-2", &registry_args, &[], log_dir)?;
                    wait_for_port(registry_port, "pbp schema-registry")?;
                }
            }
        }
        for (role, process) in &mut processes {
            if let Err(error) = process.check_running() {
                report.notes.push(format!("{} died: {error}", role.name()));
            }
        }
        if !report.notes.is_empty() {
            break;
        }
        // Complete when every game is final with every play applied and the full comparison is clean.
        let fault_done = fault_at.is_none() || faulted.is_some();
        if fault_done
            && let Some((final_games, applied)) = progress(&database_url)
            && final_games >= games
            && applied >= reference.plays
        {
            let (lost, duplicated, wrong, examples) = compare(&store, reference).await?;
            (report.lost, report.duplicated, report.wrong) = (lost, duplicated, wrong);
            if lost + duplicated + wrong == 0 {
                report.complete = true;
                break;
            }
            if started.elapsed() > timeout {
                report.notes.extend(examples);
                break;
            }
        }
        if started.elapsed() > timeout {
            let (lost, duplicated, wrong, examples) = compare(&store, reference).await?;
            (report.lost, report.duplicated, report.wrong) = (lost, duplicated, wrong);
            report.notes.push(format!("not complete within {timeout:?}"));
            report.notes.extend(examples);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.finished_in = started.elapsed().as_secs_f64();
    report.recovered_in = faulted.filter(|_| report.complete).map(|at| at.elapsed().as_secs_f64());
    // Every process stops cleanly on SIGTERM.
    for (role, process) in processes {
        if let Err(error) = process.stop() {
            report.notes.push(format!("{} did not stop cleanly: {error}", role.name()));
        }
    }
    report.dead_letters = dead_letters(broker.port).await?;
    if let Err(error) = registry.stop() {
        report.notes.push(format!("the registry did not stop cleanly: {error}"));
    }
    server.shutdown().await;
    if !report.clean() {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(log_dir)?.filter_map(|e| Some(e.ok()?.path())).collect();
        logs.sort();
        for log in logs {
            eprintln!("--- trial {number}: {} (last lines)\n{}", log.display(), log_tail(&log, 20));
        }
        // Keep the logs of a failed trial.
        let kept = dir.keep();
        report.notes.push(format!("logs in {}", kept.display()));
    }
    drop(schema);
    Ok(report)
}

fn render(settings: &Settings, reference: &Reference, trials: &[TrialReport], machine: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mode = if settings.speed > 0.0 {
        format!("live at {}x, with corrections, late inserts and deletions", settings.speed)
    } else {
        "as finished games".to_owned()
    };
    let _ = writeln!(
        out,
        "{} games ({} copies of the recorded games), {} plays, served {mode}; seed {}; {machine}\n",
        reference.games.len(),
        settings.copies,
        reference.plays,
        settings.seed
    );
    let _ = writeln!(
        out,
        "| trial | fault | at (s) | lost | duplicated | wrong | dead letters (ingest/enrich/serve) | done in (s) | recovered in (s) | notes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (i, t) in trials.iter().enumerate() {
        let at = t.fault_at.map_or("-".to_owned(), |s| format!("{s:.1}"));
        let recovered = t.recovered_in.map_or("-".to_owned(), |s| format!("{s:.1}"));
        let [a, b, c] = t.dead_letters;
        let _ = writeln!(
            out,
            "| {i} | {} | {at} | {} | {} | {} | {a}/{b}/{c} | {:.1} | {recovered} | {} |",
            t.fault.describe(),
            t.lost,
            t.duplicated,
            t.wrong,
            t.finished_in,
            t.notes.join("; ").replace('|', "/")
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_trials_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let Some(tools) = tools()? else { return Ok(()) };
    let settings = Settings::from_env()?;
    eprintln!("fault trials: {settings:?} (rerun with PBP_FAULT_SEED={})", settings.seed);
    let mut random = Random(settings.seed);
    let dir = tempfile::tempdir()?;
    let games = recorded_games()?;
    let reference = clean_replay(&games, settings.copies, dir.path()).await?;
    let documents = fake_documents(&games, settings.copies)?;
    let object_store = ObjectStore::start(&tools, dir.path())?;

    let bench = Bench {
        tools: &tools,
        object_store: &object_store,
        documents: &documents,
        settings: &settings,
        reference: &reference,
    };
    let mut trials = Vec::new();
    let run = |trials: &mut Vec<TrialReport>, report: TrialReport| {
        eprintln!("trial {}: {report:?}", trials.len());
        trials.push(report);
    };
    // The baseline says how long a run takes: faults come at a random moment within it.
    let plan = Plan {
        number: 0,
        fault: Fault::Baseline,
        at: None,
        down_for: Duration::ZERO,
        timeout: Duration::from_secs(900),
    };
    let baseline = trial(&bench, plan).await?;
    let run_time = Duration::from_secs_f64(baseline.finished_in);
    let timeout = (run_time * 4).max(Duration::from_secs(120));
    run(&mut trials, baseline);
    let mut faults: Vec<Fault> =
        (0..settings.kill_trials).map(|_| Fault::Kill(Role::ALL[(random.next() % 3) as usize])).collect();
    faults.extend(settings.services.iter().copied());
    for fault in faults {
        let at = Some(run_time.mul_f64(random.between(0.1, 0.8)));
        let plan = Plan { number: trials.len(), fault, at, down_for: fault.down_for(&mut random), timeout };
        let report = trial(&bench, plan).await?;
        run(&mut trials, report);
    }

    let machine = format!("{} cores", std::thread::available_parallelism().map_or(0, std::num::NonZero::get));
    let rendered = render(&settings, &reference, &trials, &machine);
    eprintln!("{rendered}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &rendered)?;
    }
    let failed: Vec<usize> = trials.iter().enumerate().filter(|(_, t)| !t.clean()).map(|(i, _)| i).collect();
    anyhow::ensure!(failed.is_empty(), "trials {failed:?} lost, duplicated or got wrong plays:\n{rendered}");
    Ok(())
}
