//! A fake ESPN server: serves recorded files at ESPN's real paths, replays finished games live, injects faults.
//!
//! Paths served (league is `nba`, `wnba`, `mens-college-basketball` or `womens-college-basketball`):
//!
//! * `/apis/site/v2/sports/basketball/{league}/scoreboard[?dates=YYYYMMDD]`
//! * `/apis/site/v2/sports/basketball/{league}/summary?event={id}`
//! * `/apis/site/v2/sports/basketball/{league}/teams`
//! * `/core/{league}/playbyplay?gameId={id}&xhr=1` (cdn)
//! * `/v2/sports/basketball/leagues/{league}/events/{id}/competitions/{id}/plays` (core API)
//!
//! Files are recognised by content: summaries and cdn pages by `header.id` and `header.league.slug`,
//! scoreboards by `leagues[0].slug` and `day.date` (else the US date of the first event), teams lists by their
//! league slug, core pages by their `$ref`. A scoreboard request without `dates` (ESPN's "today") is answered
//! with the loaded games; with `dates`, by the recorded scoreboard of that date, else by the loaded games of
//! that date.
//!
//! In live mode every game with plays is replayed from the moment the server starts (see the `live` module for the
//! reveal rule, late inserts included): summaries and cdn pages show the plays revealed so far with an
//! in-progress status and the running score, and the scoreboard follows. `speed` multiplies the replay clock;
//! tests can take the clock in hand with [`FakeEspn::use_manual_clock`] and [`FakeEspn::advance`].
//!
//! Live mode also corrects plays, as ESPN does (unless [`FakeOptions::corrections`] is off). Deterministically,
//! per game: the first missed corner three-point jumper is first served as a missed two (3-point attempt counters
//! change, scores do not: [`CorrectionKind::ThreeLoggedAsTwo`]), and every play whose `sequenceNumber` is a
//! multiple of [`DISTANCE_EVERY`] and whose text gives a shot distance is first served one foot longer, its
//! coordinate one foot off ([`CorrectionKind::ShotDistance`]). The recorded form replaces the preliminary one
//! [`CORRECTION_DELAY`] of replay time after the play is revealed, or at the end of the game's replay if that is
//! sooner: the recorded file is the truth, and the finished replay serves it byte for byte.
//! [`FakeEspn::corrections`] lists the corrected plays with their times, for tests to check every one ended in
//! its recorded form. The rules in detail are on the variants of [`CorrectionKind`].
//!
//! Live mode also *deletes* plays, as ESPN does (unless [`FakeOptions::deletions`] is off): per game, a phantom
//! copy of the first made two-pointer appears after its original and leaves the feed for good
//! [`PHANTOM_SHOWN_FOR`] later ([`DeletionKind::Phantom`]), and the first uncorrected foul leaves the feed
//! [`WITHDRAW_AFTER`] after its reveal and comes back [`WITHDRAWN_FOR`] later ([`DeletionKind::Withdrawn`]).
//! Both windows end before the end of the game's replay, so the finished replay is still the recorded file.
//! [`FakeEspn::deletions`] lists them.
//!
//! Responses carry an `ETag`; a matching `If-None-Match` gets `304`. Bodies are gzip-compressed when the
//! request accepts gzip.

mod corrections;
mod deletions;
mod faults;
mod fixtures;
mod live;
#[cfg(test)]
mod tests;
mod time;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use corrections::{CORRECTION_DELAY, Correction, CorrectionKind, DISTANCE_EVERY};
pub use deletions::{Deletion, DeletionKind, PHANTOM_SHOWN_FOR, WITHDRAW_AFTER, WITHDRAWN_FOR};
pub use faults::{Fault, FaultRule};

use crate::League;
use fixtures::{Body, Fixtures, GameDoc, GameKind};

/// Errors of the fake server.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `speed` must be a positive finite number.
    #[error("invalid replay speed {0}: must be positive")]
    InvalidSpeed(f64),
}

/// How the fake server serves its games.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FakeOptions {
    /// Replay finished games as if in progress.
    pub live: bool,
    /// Replay speed: 1.0 is real time, 60.0 plays a minute of game wallclock per second.
    pub speed: f64,
    /// In live mode, serve some plays first in a preliminary form and correct them later (see the module docs).
    /// No effect without `live`.
    pub corrections: bool,
    /// In live mode, take some plays out of the feed, for good or for a while (see the module docs). No effect
    /// without `live`.
    pub deletions: bool,
}

impl Default for FakeOptions {
    /// Recorded files as they are; corrections and deletions on for whoever turns `live` on.
    fn default() -> Self {
        FakeOptions { live: false, speed: 1.0, corrections: true, deletions: true }
    }
}

#[derive(Debug, Clone, Copy)]
enum ReplayClock {
    Running { started: Instant, speed: f64 },
    Manual { elapsed: f64 },
}

impl ReplayClock {
    fn elapsed(&self) -> f64 {
        match *self {
            ReplayClock::Running { started, speed } => started.elapsed().as_secs_f64() * speed,
            ReplayClock::Manual { elapsed } => elapsed,
        }
    }
}

/// A game document: which kind, which league, which game id.
type GameKey = (GameKind, League, String);

/// What a live-rendered game document shows: how many plays are revealed, how many corrections have landed and
/// how many moments of the deletions have passed. All three only grow with replay time, so together they
/// determine the body.
type RenderVersion = (usize, usize, usize);

#[derive(Debug)]
struct State {
    fixtures: Fixtures,
    live: bool,
    /// Live mode with corrections.
    corrections: bool,
    /// Live mode with deletions.
    deletions: bool,
    clock: Mutex<ReplayClock>,
    faults: Mutex<Vec<FaultRule>>,
    requests: Mutex<Vec<String>>,
    /// Responses sent gzip-compressed (the client asked for it).
    gzipped: std::sync::atomic::AtomicUsize,
    /// Last rendered live body per game document, with the version it shows.
    rendered: Mutex<HashMap<GameKey, (RenderVersion, Body)>>,
}

/// The fake ESPN server. Cloning gives another handle to the same server state.
#[derive(Debug, Clone)]
pub struct FakeEspn {
    state: Arc<State>,
}

impl FakeEspn {
    /// Loads every `*.json` file in `dir`, recognised by content.
    pub fn from_dir(dir: &Path, options: FakeOptions) -> Result<FakeEspn, FakeError> {
        let fixtures = Fixtures::load_dir(dir)?;
        FakeEspn::with_fixtures(fixtures, options)
    }

    /// Loads the given files only.
    pub fn from_files(files: &[PathBuf], options: FakeOptions) -> Result<FakeEspn, FakeError> {
        let mut documents = Vec::with_capacity(files.len());
        for path in files {
            let bytes = std::fs::read(path).map_err(|source| FakeError::Io { path: path.clone(), source })?;
            documents.push((path.display().to_string(), bytes));
        }
        FakeEspn::with_fixtures(Fixtures::load_documents(documents), options)
    }

    /// Loads in-memory documents as `(name, bytes)`, e.g. fixtures written by a test.
    pub fn from_documents(documents: Vec<(String, Vec<u8>)>, options: FakeOptions) -> Result<FakeEspn, FakeError> {
        FakeEspn::with_fixtures(Fixtures::load_documents(documents), options)
    }

    fn with_fixtures(fixtures: Fixtures, options: FakeOptions) -> Result<FakeEspn, FakeError> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(FakeError::InvalidSpeed(options.speed));
        }
        let state = State {
            fixtures,
            live: options.live,
            corrections: options.live && options.corrections,
            deletions: options.live && options.deletions,
            clock: Mutex::new(ReplayClock::Running { started: Instant::now(), speed: options.speed }),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            gzipped: std::sync::atomic::AtomicUsize::new(0),
            rendered: Mutex::new(HashMap::new()),
        };
        Ok(FakeEspn { state: Arc::new(state) })
    }

    /// Ids of the loaded games that have plays, per league, sorted (the games a live replay plays).
    pub fn games_with_plays(&self) -> Vec<(League, String)> {
        let mut games: Vec<(League, String)> = self
            .state
            .fixtures
            .games
            .values()
            .filter(|doc| !doc.plays.is_empty())
            .map(|doc| (doc.league, doc.game_id.clone()))
            .collect();
        games.sort_by(|a, b| (a.0.slug(), &a.1).cmp(&(b.0.slug(), &b.1)));
        games.dedup();
        games
    }

    /// Replay seconds after which every game is fully revealed.
    pub fn replay_duration(&self) -> Duration {
        let seconds = self.state.fixtures.games.values().map(|doc| doc.replay.duration()).fold(0.0, f64::max);
        Duration::from_secs_f64(seconds)
    }

    /// The plays live mode serves in a preliminary form before their recorded one (empty unless live with
    /// corrections), sorted by league, game and `shown_at`. A game recorded as both a summary and a cdn page is
    /// listed once: both documents carry the same plays and so the same corrections.
    pub fn corrections(&self) -> Vec<Correction> {
        if !self.state.corrections {
            return Vec::new();
        }
        let seconds = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
        let mut corrections: Vec<Correction> = self
            .state
            .fixtures
            .games
            .values()
            .flat_map(|doc| {
                doc.replay.corrections().iter().map(|scheduled| Correction {
                    league: doc.league,
                    game_id: doc.game_id.clone(),
                    play_id: scheduled.play_id.clone(),
                    kind: scheduled.kind,
                    shown_at: seconds(scheduled.shown_at),
                    corrected_at: seconds(scheduled.corrected_at),
                })
            })
            .collect();
        corrections.sort_by(|a, b| {
            (a.league.slug(), &a.game_id, a.shown_at, &a.play_id).cmp(&(
                b.league.slug(),
                &b.game_id,
                b.shown_at,
                &b.play_id,
            ))
        });
        corrections.dedup_by(|a, b| (a.league, &a.game_id, &a.play_id) == (b.league, &b.game_id, &b.play_id));
        corrections
    }

    /// The plays live mode takes out of the feed (empty unless live with deletions), sorted by league, game and
    /// `shown_at`; a game recorded as both a summary and a cdn page is listed once.
    pub fn deletions(&self) -> Vec<Deletion> {
        if !self.state.deletions {
            return Vec::new();
        }
        let seconds = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
        let mut deletions: Vec<Deletion> = self
            .state
            .fixtures
            .games
            .values()
            .flat_map(|doc| {
                doc.replay.deletions().iter().map(|scheduled| Deletion {
                    league: doc.league,
                    game_id: doc.game_id.clone(),
                    play_id: scheduled.play_id.clone(),
                    kind: scheduled.kind,
                    shown_at: seconds(scheduled.shown_at),
                    removed_at: seconds(scheduled.removed_at),
                    restored_at: scheduled.restored_at.map(seconds),
                })
            })
            .collect();
        deletions.sort_by(|a, b| {
            (a.league.slug(), &a.game_id, a.shown_at, &a.play_id).cmp(&(
                b.league.slug(),
                &b.game_id,
                b.shown_at,
                &b.play_id,
            ))
        });
        deletions.dedup_by(|a, b| (a.league, &a.game_id, &a.play_id) == (b.league, &b.game_id, &b.play_id));
        deletions
    }

    /// Stops the replay clock at its current position; from now on only [`FakeEspn::advance`] moves it.
    pub fn use_manual_clock(&self) {
        let mut clock = self.state.clock.lock();
        *clock = ReplayClock::Manual { elapsed: clock.elapsed() };
    }

    /// Moves a manual replay clock forward by `by` of game wallclock time (no effect on a running clock).
    pub fn advance(&self, by: Duration) {
        if let ReplayClock::Manual { elapsed } = &mut *self.state.clock.lock() {
            *elapsed += by.as_secs_f64();
        }
    }

    /// Adds a fault rule (rules are tried in the order added).
    pub fn push_fault(&self, rule: FaultRule) {
        self.state.faults.lock().push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.state.faults.lock().clear();
    }

    /// Number of requests so far whose `path?query` contains `needle`.
    pub fn request_count(&self, needle: &str) -> usize {
        self.state.requests.lock().iter().filter(|target| target.contains(needle)).count()
    }

    /// Number of responses sent gzip-compressed because the request accepted gzip.
    pub fn gzipped_responses(&self) -> usize {
        self.state.gzipped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Binds `addr` (use port 0 for any free port) and serves until [`RunningFake::shutdown`].
    pub async fn bind(&self, addr: SocketAddr) -> Result<RunningFake, FakeError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| FakeError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| FakeError::Bind { addr, source })?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(self.clone().serve(listener, cancel.clone()));
        Ok(RunningFake { addr: local, cancel, task })
    }

    /// Serves connections from `listener` until `cancel` fires.
    pub async fn serve(self, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "Fake ESPN accept failed.");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let state = Arc::clone(&self.state);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(&state, request).await) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => if let Err(error) = result {
                        tracing::debug!(%error, "Fake ESPN connection ended with an error.");
                    },
                    _ = cancel.cancelled() => {}
                }
            });
        }
    }
}

/// A bound, running fake server.
#[derive(Debug)]
pub struct RunningFake {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningFake {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, to pass to [`crate::ClientConfig::with_base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and closes open connections.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "Fake ESPN server task failed.");
        }
    }
}

type HttpResponse = Response<Full<Bytes>>;

async fn handle(state: &State, request: Request<Incoming>) -> HttpResponse {
    let target = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |pq| pq.to_string());
    state.requests.lock().push(target.clone());
    if request.method() != Method::GET {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
    }
    let fault = faults::take_fault(&mut state.faults.lock(), &target);
    let if_none_match = request.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let accepts_gzip = request
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|encoding| encoding.trim().starts_with("gzip")));
    match fault.clone() {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(status, "injected fault");
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "injected rate limit");
            if let Ok(value) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            return response;
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Malformed) => {
            return body_response(Bytes::from_static(b"<!doctype html><p>Service temporarily unavailable</p>"), None);
        }
        Some(Fault::Serve { body, etag }) => {
            if if_none_match.as_deref() == Some(etag.as_str()) {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                insert_etag(&mut response, &etag);
                return response;
            }
            return body_response(body, Some(&etag));
        }
        Some(Fault::Truncate) | None => {}
    }
    let (status, body) = match route(state, request.uri().path(), request.uri().query().unwrap_or("")) {
        Ok(body) => (StatusCode::OK, body),
        Err((status, message)) => return error_response(status, &message),
    };
    if fault == Some(Fault::Truncate) {
        let half = body.bytes.slice(..body.bytes.len() / 2);
        return body_response(half, None);
    }
    if if_none_match.as_deref() == Some(body.etag.as_str()) {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        insert_etag(&mut response, &body.etag);
        return response;
    }
    let mut response = match accepts_gzip.then(|| gzip(&body.bytes)).flatten() {
        Some(compressed) => {
            state.gzipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut response = body_response(compressed, Some(&body.etag));
            response.headers_mut().insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
            response
        }
        None => body_response(body.bytes, Some(&body.etag)),
    };
    *response.status_mut() = status;
    response
}

/// Gzip-compresses a body, as ESPN's servers do for clients that accept it.
fn gzip(bytes: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 8), flate2::Compression::fast());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

fn body_response(bytes: Bytes, etag: Option<&str>) -> HttpResponse {
    let mut response = Response::new(Full::new(bytes));
    response.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json;charset=UTF-8"));
    if let Some(etag) = etag {
        insert_etag(&mut response, etag);
    }
    response
}

fn insert_etag(response: &mut HttpResponse, etag: &str) {
    if let Ok(value) = etag.parse() {
        response.headers_mut().insert(ETAG, value);
    }
}

fn error_response(status: StatusCode, message: &str) -> HttpResponse {
    let body = json!({"code": status.as_u16(), "message": message}).to_string();
    let mut response = body_response(Bytes::from(body), None);
    *response.status_mut() = status;
    response
}

type RouteResult = Result<Body, (StatusCode, String)>;

fn route(state: &State, path: &str, query: &str) -> RouteResult {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let param = |name: &str| {
        query.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == name).map(|(_, v)| v)
    };
    let league_of =
        |slug: &str| League::from_slug(slug).ok_or((StatusCode::NOT_FOUND, format!("unknown league {slug}")));
    match segments.as_slice() {
        ["apis", "site", "v2", "sports", "basketball", league, resource] => {
            let league = league_of(league)?;
            match *resource {
                "scoreboard" => Ok(scoreboard(state, league, param("dates"))),
                "summary" => {
                    let event = param("event").ok_or((StatusCode::BAD_REQUEST, "missing event".to_owned()))?;
                    game(state, GameKind::Summary, league, event)
                }
                "teams" => state
                    .fixtures
                    .teams
                    .get(&league)
                    .cloned()
                    .ok_or((StatusCode::NOT_FOUND, format!("no teams list for {league}"))),
                _ => Err((StatusCode::NOT_FOUND, format!("unknown resource {resource}"))),
            }
        }
        ["core", league, "playbyplay"] => {
            let league = league_of(league)?;
            let game_id = param("gameId").ok_or((StatusCode::BAD_REQUEST, "missing gameId".to_owned()))?;
            game(state, GameKind::Cdn, league, game_id)
        }
        ["v2", "sports", "basketball", "leagues", league, "events", event, "competitions", _, "plays"] => {
            let league = league_of(league)?;
            state
                .fixtures
                .core_pages
                .get(&(league, (*event).to_owned()))
                .cloned()
                .ok_or((StatusCode::NOT_FOUND, format!("no core plays for {event}")))
        }
        _ => Err((StatusCode::NOT_FOUND, format!("no route for {path}"))),
    }
}

/// A summary or cdn page, live-rendered when replaying.
fn game(state: &State, kind: GameKind, league: League, game_id: &str) -> RouteResult {
    let key = (kind, league, game_id.to_owned());
    let doc = state.fixtures.games.get(&key).ok_or((StatusCode::NOT_FOUND, format!("no game {game_id}")))?;
    if !state.live || doc.plays.is_empty() {
        return Ok(doc.body.clone());
    }
    let elapsed = state.clock.lock().elapsed();
    let visible = doc.replay.visible(elapsed);
    let landed = if state.corrections { doc.replay.landed(elapsed) } else { 0 };
    let deletion_phase = if state.deletions { doc.replay.deletion_phase(elapsed) } else { 0 };
    let version = (visible.len(), landed, deletion_phase);
    if let Some((rendered, body)) = state.rendered.lock().get(&key)
        && *rendered == version
    {
        return Ok(body.clone());
    }
    let pending = if state.corrections { doc.replay.pending(elapsed) } else { Vec::new() };
    let deletions = if state.deletions { doc.replay.deletions() } else { &[] };
    let body = live::render_game(doc, &visible, &pending, deletions, elapsed);
    state.rendered.lock().insert(key, (version, body.clone()));
    Ok(body)
}

fn scoreboard(state: &State, league: League, date: Option<&str>) -> Body {
    if let Some(date) = date
        && !state.live
        && let Some(recorded) = state.fixtures.scoreboards.get(&(league, date.to_owned()))
    {
        return recorded.clone();
    }
    // Summaries first, so a game recorded both ways appears once.
    let mut docs: Vec<&GameDoc> = state
        .fixtures
        .games
        .values()
        .filter(|doc| doc.league == league && date.is_none_or(|d| doc.date_key.as_deref() == Some(d)))
        .collect();
    docs.sort_by(|a, b| (&a.game_id, a.kind == GameKind::Cdn).cmp(&(&b.game_id, b.kind == GameKind::Cdn)));
    docs.dedup_by(|a, b| a.game_id == b.game_id);
    if docs.is_empty()
        && let Some(recorded) = date.and_then(|d| state.fixtures.scoreboards.get(&(league, d.to_owned())))
    {
        return recorded.clone();
    }
    let elapsed = state.clock.lock().elapsed();
    let events: Vec<Value> = docs
        .iter()
        .map(|doc| {
            let visible = if state.live { doc.replay.visible(elapsed) } else { (0..doc.plays.len()).collect() };
            live::scoreboard_event(doc, &live::live_view(doc, &visible))
        })
        .collect();
    let board = json!({"leagues": [{"slug": league.slug()}], "events": events});
    Body::new(Bytes::from(board.to_string()))
}
