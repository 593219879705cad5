//! Options and wiring shared by the pipeline commands (`ingest`, `enrich`, `serve`, `run`, `replay`): where the
//! topics, schemas, rows and cache live, and how ESPN is reached.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pbp_avro::SchemaRegistry;
use pbp_avro::registry::{EmbeddedRegistry, HttpRegistry};
use pbp_dataflow::{DataflowMetrics, PipelineConfig, Transport, TransportConfig};
use pbp_espn::League;
use pbp_store::cache::{Cache, CacheTtls, CachedRepository, MemoryCache, RedisCache};
use pbp_store::{PgConfig, PgStore, Repository, SqliteStore};

/// Where the pipelines keep their data. Every option has a `PBP_*` environment variable; with none given,
/// everything runs in this process (the embedded default).
#[derive(Debug, Clone, Args)]
pub(crate) struct ServiceArgs {
    /// The log the pipelines' topics live on: `embedded` (in this process; only `pbp run` and `pbp replay`
    /// can use it, since the other commands need a log shared between processes) or
    /// `kafka://HOST:PORT[,HOST:PORT...]` (Apache Kafka, Redpanda, tansu).
    #[arg(long, env = "PBP_TRANSPORT", default_value = "embedded")]
    pub(crate) transport: TransportConfig,
    /// URL of a Confluent-compatible schema registry (e.g. `pbp schema-registry`). Required with Kafka; with
    /// the embedded log an in-process registry is used when it is not given.
    #[arg(long, env = "PBP_SCHEMA_REGISTRY_URL")]
    pub(crate) schema_registry: Option<String>,
    /// PostgreSQL URL (`postgres://user@host/db`). Without it, the embedded SQLite store under `--data-dir`.
    #[arg(long, env = "PBP_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Redis URL (`redis://host:port`). Without it, an in-process cache.
    #[arg(long, env = "PBP_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Directory of the embedded store (`pbp.sqlite3`), created if missing.
    #[arg(long, env = "PBP_DATA_DIR", default_value = "./pbp-data")]
    pub(crate) data_dir: PathBuf,
    /// Most records per pipeline batch: larger batches mean fewer, larger store writes when there is a backlog
    /// (a replay, a restart); live batches hold what arrived since the last poll and stay small.
    #[arg(long, env = "PBP_BATCH_SIZE", default_value_t = 4096)]
    pub(crate) batch_size: usize,
    /// How long a store write waits for the rows it refers to (a play's game, a game's teams) to land from
    /// their own topics before dead-lettering the orphans, in milliseconds.
    #[arg(long, env = "PBP_PARENT_WAIT_MS", default_value_t = 30_000)]
    pub(crate) parent_wait_ms: u64,
}

impl ServiceArgs {
    /// Pipeline settings from the options.
    pub(crate) fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig { batch_size: self.batch_size.max(1), ..PipelineConfig::DEFAULT }
    }

    /// The parent wait as a duration.
    pub(crate) fn parent_wait(&self) -> Duration {
        Duration::from_millis(self.parent_wait_ms)
    }

    /// Connects the transport.
    pub(crate) fn connect_transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        self.transport.connect().context("cannot connect the transport")
    }

    /// Refuses the embedded log for a command that shares topics with other processes.
    pub(crate) fn require_shared_log(&self, command: &str) -> anyhow::Result<()> {
        if matches!(self.transport, TransportConfig::Embedded { .. }) {
            anyhow::bail!(
                "`pbp {command}` exchanges records with other processes: give it a Kafka transport \
                 (--transport kafka://HOST:PORT), or run everything in one process with `pbp run`"
            );
        }
        Ok(())
    }

    /// The schema registry: the given URL, else an in-process one (embedded log only).
    pub(crate) fn registry(&self) -> anyhow::Result<Arc<dyn SchemaRegistry>> {
        match (&self.schema_registry, &self.transport) {
            (Some(url), _) => Ok(Arc::new(HttpRegistry::new(url)?)),
            (None, TransportConfig::Embedded { .. }) => Ok(Arc::new(EmbeddedRegistry::new())),
            (None, TransportConfig::Kafka { .. }) => anyhow::bail!(
                "a Kafka transport needs a schema registry shared by every process: give --schema-registry URL \
                 (e.g. of `pbp schema-registry`)"
            ),
        }
    }

    /// The store behind its cache: PostgreSQL or the embedded SQLite file, Redis or the in-process cache.
    pub(crate) async fn repository(&self) -> anyhow::Result<Arc<dyn Repository>> {
        Ok(self.cached_store().await?.0)
    }

    /// The store behind its cache, and the cache itself (for health checks).
    pub(crate) async fn cached_store(&self) -> anyhow::Result<(Arc<dyn Repository>, Arc<dyn Cache>)> {
        let store: Arc<dyn Repository> = match &self.database_url {
            Some(url) => Arc::new(
                PgStore::connect(PgConfig::new(url.clone())).await.context("cannot open the PostgreSQL store")?,
            ),
            None => Arc::new(
                SqliteStore::open(&self.data_dir, 4)
                    .await
                    .with_context(|| format!("cannot open the embedded store in {}", self.data_dir.display()))?,
            ),
        };
        let ttls = CacheTtls::default();
        let cache: Arc<dyn Cache> = match &self.redis_url {
            Some(url) => Arc::new(RedisCache::connect(url, "pbp", ttls).await.context("cannot connect to Redis")?),
            None => Arc::new(MemoryCache::new(ttls)),
        };
        Ok((Arc::new(CachedRepository::new(store, cache.clone())), cache))
    }
}

/// Where the REST API listens (`pbp serve`, `pbp run`).
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// Address of the REST API (`/v1/games`, `/v1/games/{id}`, `/v1/games/{id}/plays`, `/v1/teams`, `/health`,
    /// `/metrics`) and of the WebSocket `/ws/{id}` (`docs/serving.md`). Port 0 picks a free port (logged).
    #[arg(long, env = "PBP_LISTEN", default_value = "127.0.0.1:8000")]
    pub(crate) listen: std::net::SocketAddr,
    /// Frames each game's WebSocket channel holds for its slowest session: a session further behind gets a fresh
    /// snapshot (or, if it fell behind within the last 30 s, is closed with code 4008).
    #[arg(long, env = "PBP_WS_QUEUE", default_value_t = 1024)]
    pub(crate) ws_queue: usize,
    /// Plays in the snapshot a WebSocket session starts with (without `?since=`).
    #[arg(long, env = "PBP_WS_SNAPSHOT_PLAYS", default_value_t = 50)]
    pub(crate) ws_snapshot_plays: u32,
    /// Milliseconds a WebSocket client may take to accept one frame before it is dropped.
    #[arg(long, env = "PBP_WS_SEND_TIMEOUT_MS", default_value_t = 10_000)]
    pub(crate) ws_send_timeout_ms: u64,
}

impl HttpArgs {
    /// The WebSocket session settings from the options.
    pub(crate) fn ws_settings(&self) -> crate::http::ws::WsSettings {
        crate::http::ws::WsSettings {
            snapshot_plays: self.ws_snapshot_plays,
            send_timeout: Duration::from_millis(self.ws_send_timeout_ms.max(1)),
            ..Default::default()
        }
    }
}

/// How ESPN is polled.
#[derive(Debug, Clone, Args)]
pub(crate) struct EspnArgs {
    /// Base URL of every ESPN endpoint, e.g. the fake server of `pbp espn serve-fixtures --live`
    /// (`http://127.0.0.1:8080`) to run offline. Without it, ESPN's public hosts.
    #[arg(long, env = "PBP_ESPN_URL")]
    pub(crate) espn_url: Option<String>,
    /// Leagues to follow, comma-separated: nba, wnba, mens-college-basketball, womens-college-basketball.
    #[arg(long, env = "PBP_LEAGUES", value_delimiter = ',', default_value = "nba")]
    pub(crate) leagues: Vec<League>,
    /// Scoreboard date `YYYYMMDD` to follow; without it, ESPN's "today".
    #[arg(long, env = "PBP_DATE")]
    pub(crate) date: Option<String>,
    /// Milliseconds between play-by-play polls of a live game.
    #[arg(long, env = "PBP_PLAYS_INTERVAL_MS", default_value_t = 5_000)]
    pub(crate) plays_interval_ms: u64,
    /// Milliseconds between scoreboard polls while a game is live (the idle interval is three times longer).
    #[arg(long, env = "PBP_SCOREBOARD_INTERVAL_MS", default_value_t = 10_000)]
    pub(crate) scoreboard_interval_ms: u64,
    /// A play missing from this many consecutive play-by-play polls of its game is deleted (from the store, the
    /// API, the game state; WebSocket clients get a `delete` frame). One missing poll can be a stale copy of the
    /// feed; 0 never deletes.
    #[arg(long, env = "PBP_DELETE_AFTER_POLLS", default_value_t = pbp_espn::DEFAULT_DELETE_AFTER)]
    pub(crate) delete_after_polls: u32,
}

/// Process-wide metrics: one Prometheus registry for every component, shared with the HTTP server's `/metrics`
/// (components register into it as they start; the lock is held only to register or encode).
pub(crate) struct Metrics {
    pub(crate) registry: Arc<std::sync::Mutex<prometheus_client::registry::Registry>>,
    pub(crate) dataflow: Arc<DataflowMetrics>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let dataflow = DataflowMetrics::register(&mut registry);
        Self { registry: Arc::new(std::sync::Mutex::new(registry)), dataflow }
    }
}
