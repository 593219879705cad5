//! What the serving benchmarks share: a pbp server in this process (the embedded store behind the in-process
//! cache, the push hub, REST and WebSocket on 127.0.0.1), and a recorded game as the rows serve would store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use pbp_avro::ChangeKind;
use pbp_dataflow::Shutdown;
use pbp_espn::model;
use pbp_espn::normalize::normalize_summary;
use pbp_store::cache::{Cache, CacheTtls, CachedRepository, MemoryCache};
use pbp_store::{GameRow, PlayRow, Repository, SqliteStore, TeamRow};

use crate::cmd::common::Metrics;
use crate::http::ws::{Push, WsSettings};
use crate::http::{Api, HealthChecks};
use crate::pipelines::convert::{game_row, now_millis, play_event, play_row, scoreboard_event, sides, team_row};
use crate::pipelines::enrich::enrich;
use crate::push::{Hub, PublishingRepository};

/// A running server and the repositories around its store.
pub(crate) struct BenchServer {
    /// Where it listens.
    pub(crate) addr: std::net::SocketAddr,
    /// The store behind its cache, as the API reads it.
    pub(crate) repository: Arc<dyn Repository>,
    /// The same, publishing what it writes to the WebSocket sessions (what the serve pipelines write through).
    pub(crate) writer: Arc<dyn Repository>,
    pub(crate) metrics: Metrics,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    /// Starts a server over a fresh embedded store.
    pub(crate) async fn start(ws_queue: usize, settings: WsSettings) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new(CacheTtls::default()));
        let store = SqliteStore::open(dir.path(), 4).await?;
        let repository: Arc<dyn Repository> = Arc::new(CachedRepository::new(store, cache.clone()));
        let hub = Hub::new(ws_queue);
        let writer: Arc<dyn Repository> = Arc::new(PublishingRepository::new(repository.clone(), hub.clone()));
        let config: pbp_dataflow::TransportConfig = "embedded".parse()?;
        let checks = HealthChecks::new(cache.clone(), config.connect()?, &config);
        let metrics = Metrics::new();
        let api = Api::new(repository.clone(), checks, metrics.registry.clone())
            .with_push(Push::new(hub, settings))
            .with_body_cache(cache);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let server =
            tokio::spawn(async move { crate::http::serve(listener, api, async move { stop.wait().await }).await });
        Ok(Self { addr, repository, writer, metrics, shutdown, server, _dir: dir })
    }

    /// Stops the server (sessions are closed) and waits for it.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.server.await?
    }
}

/// A recorded game as serve stores it: its teams, its game row and its enriched plays in feed order.
pub(crate) struct GameRows {
    pub(crate) teams: Vec<TeamRow>,
    pub(crate) game: GameRow,
    pub(crate) plays: Vec<PlayRow>,
}

impl GameRows {
    /// The rows of the recorded summary at `path`.
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let summary = model::parse_summary(&bytes).with_context(|| format!("{} is no summary", path.display()))?;
        let (context, normalized) = normalize_summary(&summary, None);
        let league = context.league.context("the summary names no league")?;
        let competition = summary.header.competition().context("the summary has no competition")?;
        let now = now_millis();
        let teams: Vec<TeamRow> = competition
            .competitors
            .iter()
            .filter_map(|c| c.team.as_ref())
            .filter_map(|team| team_row(league, team, now))
            .collect();
        let event = scoreboard_event(league, &context.game_id, competition, summary.header.season, None, now)
            .map_err(|reason| anyhow::anyhow!("unusable game: {reason}"))?;
        let game = game_row(&event);
        let (home, away) =
            (teams.iter().find(|t| t.id == game.home_team_id), teams.iter().find(|t| t.id == game.away_team_id));
        let plays = normalized
            .iter()
            .filter_map(|play| play_event(play, league, ChangeKind::New, sides(competition), now).ok())
            .map(|event| play_row(enrich(event, home.cloned(), away)))
            .collect();
        Ok(Self { teams, game, plays })
    }

    /// Stores the teams, the game and its first `plays` plays.
    pub(crate) async fn store(&self, repository: &dyn Repository, plays: usize) -> anyhow::Result<()> {
        repository.upsert_teams(&self.teams).await?;
        repository.upsert_games(std::slice::from_ref(&self.game)).await?;
        repository.upsert_plays(&self.plays[..plays.min(self.plays.len())]).await?;
        Ok(())
    }
}

/// This process's resident and peak resident memory, in MiB (Linux `/proc/self/status`).
pub(crate) fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
            .map_or(0.0, |kib| (kib / 1024.0 * 10.0).round() / 10.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time this process has used so far, user and system, in seconds (Linux `/proc/self/stat`, in clock
/// ticks of 10 ms).
pub(crate) fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let mut fields = after_name.split_whitespace().skip(11).map(|f| f.parse::<f64>().unwrap_or(0.0) / 100.0);
    (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0))
}

/// Context switches of this process's live threads so far: voluntary (a thread waited, e.g. for the socket)
/// and involuntary (it was preempted). A thread that exited took its counts with it.
pub(crate) fn context_switches() -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return total };
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status.lines().find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        total.0 += field("voluntary_ctxt_switches:");
        total.1 += field("nonvoluntary_ctxt_switches:");
    }
    total
}

/// The `q`-quantile of sorted `samples`.
pub(crate) fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[index.min(sorted.len() - 1)])
}
