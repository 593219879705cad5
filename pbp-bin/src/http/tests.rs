//! The server on 127.0.0.1:0 over a SQLite store in a temporary directory, asked with raw HTTP/1.1.

use std::sync::{Arc, Mutex};

use pbp_store::cache::{Cache, CacheTtls, CachedRepository, EntryKind, MemoryCache};
use pbp_store::{
    CacheError, GameRow, GameStateRow, GameStatus, PlayChange, PlayRow, Repository, Side, SqliteStore, TeamCounters,
    TeamRow,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::*;

struct Server {
    addr: std::net::SocketAddr,
    repository: Arc<dyn Repository>,
    registry: Arc<Mutex<Registry>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await?
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
    /// The body's bytes as sent (`body` is their UTF-8 reading).
    raw_body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The error body's code, checked against the status.
    fn error_code(&self) -> u64 {
        let code = self.json()["error"]["code"].as_u64().unwrap_or_default();
        assert_eq!(code, u64::from(self.status), "{}", self.body);
        assert!(self.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.body);
        code
    }
}

/// Sends `request` (a full HTTP/1.1 request with `Connection: close`) and reads the whole answer.
async fn send(addr: std::net::SocketAddr, request: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |at| at + 4);
    let head = String::from_utf8(raw[..split].to_vec()).unwrap().trim_end().to_owned();
    let raw_body = raw[split..].to_vec();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head, body: String::from_utf8_lossy(&raw_body).into_owned(), raw_body }
}

async fn get(server: &Server, target: &str) -> Answer {
    send(server.addr, format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await
}

pub(crate) fn team(id: &str, abbreviation: &str) -> TeamRow {
    TeamRow {
        league: "nba".to_owned(),
        id: id.to_owned(),
        abbreviation: abbreviation.to_owned(),
        display_name: format!("Team {abbreviation}"),
        color: Some("008348".to_owned()),
        alternate_color: None,
        updated_at: 1_700_000_000_000,
    }
}

pub(crate) fn game(id: &str, date: &str, status: GameStatus, start_time: i64) -> GameRow {
    GameRow {
        id: id.to_owned(),
        league: "nba".to_owned(),
        season: 2024,
        season_type: 2,
        game_date: date.to_owned(),
        start_time,
        status,
        status_detail: "Q2 5:13".to_owned(),
        period: 2,
        clock_display: "5:13".to_owned(),
        clock_seconds: 313.0,
        completed: status == GameStatus::Post,
        home_team_id: "2".to_owned(),
        away_team_id: "19".to_owned(),
        home_score: 50,
        away_score: 48,
        fetched_at: 1_710_700_000_000,
    }
}

pub(crate) fn play(game_id: &str, sequence: i64, game_order: i64) -> PlayRow {
    PlayRow {
        game_id: game_id.to_owned(),
        play_id: format!("{game_id}{sequence}"),
        sequence,
        game_order,
        league: "nba".to_owned(),
        period: 1,
        clock_display: "11:42".to_owned(),
        clock_seconds: 702.0,
        game_seconds_left: 2142.0,
        period_elapsed_seconds: 18.0,
        game_elapsed_seconds: 18.0,
        overtime: false,
        event_type: "jump_shot".to_owned(),
        espn_type_id: "92".to_owned(),
        espn_type_text: "Jump Shot".to_owned(),
        team_id: Some("2".to_owned()),
        side: Some(Side::Home),
        home_score: 2,
        away_score: 0,
        score_differential: 2,
        score_value: 2,
        scoring_play: true,
        shooting_play: true,
        shot_value: Some(2),
        coordinate: None,
        wallclock: Some(1_710_712_800_000),
        participants: vec!["4065648".to_owned()],
        text: format!("Play {sequence}"),
        change: PlayChange::New,
        fetched_at: 1_710_712_900_000,
        enriched_at: 1_710_712_900_100,
        revision: 1,
        change_number: 0,
    }
}

pub(crate) fn state(game_id: &str) -> GameStateRow {
    GameStateRow {
        game_id: game_id.to_owned(),
        league: "nba".to_owned(),
        status: GameStatus::In,
        period: 1,
        clock_display: "11:42".to_owned(),
        clock_seconds: 702.0,
        home_score: 2,
        away_score: 0,
        home: TeamCounters { team_id: Some("2".to_owned()), points: 2, ..TeamCounters::default() },
        away: TeamCounters { team_id: Some("19".to_owned()), ..TeamCounters::default() },
        last_sequence: 10,
        last_play_id: Some(format!("{game_id}10")),
        last_play_text: Some("Play 10".to_owned()),
        plays_applied: 4,
        updated_at: 1_710_712_900_000,
    }
}

/// Games `live` (in, 2024-03-17), `final` (post, 2024-03-17) and `later` (pre, 2024-03-18); `live` has four
/// plays, sequence 10 a late insert third in game order, and a state.
pub(crate) async fn seed(repository: &dyn Repository) -> anyhow::Result<()> {
    repository.upsert_teams(&[team("2", "BOS"), team("19", "ORL")]).await?;
    repository
        .upsert_games(&[
            game("live", "2024-03-17", GameStatus::In, 1_710_712_800_000),
            game("final", "2024-03-17", GameStatus::Post, 1_710_700_000_000),
            game("later", "2024-03-18", GameStatus::Pre, 1_710_800_000_000),
        ])
        .await?;
    repository.upsert_plays(&[play("live", 3, 1), play("live", 4, 2), play("live", 5, 4), play("live", 10, 3)]).await?;
    repository.upsert_game_states(&[state("live")]).await?;
    Ok(())
}

/// A cache whose server is down: every call fails.
struct DownCache;

#[async_trait::async_trait]
impl Cache for DownCache {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Bytes>, CacheError> {
        Err(CacheError::Unavailable("connection refused".to_owned()))
    }
    async fn put(&self, _: &str, _: &str, _: &[u8], _: EntryKind) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("connection refused".to_owned()))
    }
    async fn invalidate(&self, _: &[String]) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("connection refused".to_owned()))
    }
    fn ttls(&self) -> CacheTtls {
        CacheTtls::default()
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Err(CacheError::Unavailable("connection refused".to_owned()))
    }
}

/// A seeded store behind `cache`, served with health checks that ping `cache` and an embedded broker.
async fn start_with(cache: Arc<dyn Cache>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path(), 2).await?;
    let repository: Arc<dyn Repository> = Arc::new(CachedRepository::new(store, cache.clone()));
    seed(repository.as_ref()).await?;
    let config: pbp_dataflow::TransportConfig = "embedded".parse()?;
    let checks = HealthChecks::new(cache.clone(), config.connect()?, &config);
    let metrics = crate::cmd::common::Metrics::new();
    metrics.dataflow.messages_consumed.get_or_create(&pipeline("serve-plays")).inc_by(7);
    metrics.dataflow.dlq_messages.get_or_create(&stage("serve-plays", "store")).inc();
    let api = Api::new(repository.clone(), checks, metrics.registry.clone()).with_body_cache(cache);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, api, async move {
        let _ = stopped.await;
    }));
    Ok(Server { addr, repository, registry: metrics.registry, stop: Some(stop), task, _dir: dir })
}

fn pipeline(name: &str) -> pbp_dataflow::metrics::PipelineLabels {
    pbp_dataflow::metrics::PipelineLabels { pipeline: name.to_owned() }
}

fn stage(pipeline: &str, stage: &str) -> pbp_dataflow::metrics::StageLabels {
    pbp_dataflow::metrics::StageLabels { pipeline: pipeline.to_owned(), stage: stage.to_owned() }
}

async fn start() -> anyhow::Result<Server> {
    start_with(Arc::new(MemoryCache::new(CacheTtls::default()))).await
}

#[test]
fn routes_and_ids() {
    use routes::{Route, route};
    assert_eq!(route("/v1/games"), Ok(Route::Games));
    assert_eq!(route("/v1/games/401585607"), Ok(Route::Game("401585607".to_owned())));
    assert_eq!(route("/v1/games/401585607r2/plays"), Ok(Route::Plays("401585607r2".to_owned())));
    assert_eq!(route("/v1/teams"), Ok(Route::Teams));
    assert_eq!(route("/health"), Ok(Route::Health));
    assert_eq!(route("/metrics"), Ok(Route::Metrics));
    for bad in [
        "/v1/games/4015-856",
        "/v1/games/%20",
        "/v1/games/\u{e9}t\u{e9}/plays",
        &format!("/v1/games/{}", "1".repeat(65)),
    ] {
        assert_eq!(route(bad).map_err(|e| e.status), Err(StatusCode::BAD_REQUEST), "{bad}");
    }
    for unknown in ["/", "/v1", "/v1/games/", "/v1/games/1/plays/2", "/v2/games", "/v1/games//plays", "/health/"] {
        assert_eq!(route(unknown).map_err(|e| e.status), Err(StatusCode::NOT_FOUND), "{unknown}");
    }
}

#[test]
fn parameters_are_validated() {
    use routes::{Params, games_query};
    let games = |q: &str| Params::parse(Some(q), &["date", "status", "league", "limit"]).and_then(|p| games_query(&p));
    let q = games("date=2024-03-17&status=in&league=nba&limit=5").unwrap();
    assert_eq!(
        q,
        GamesQuery {
            date: Some("2024-03-17".into()),
            status: Some(GameStatus::In),
            league: Some("nba".into()),
            limit: Some(5)
        }
    );
    assert_eq!(games("").unwrap().limit, Some(routes::MAX_GAMES_LIMIT));
    assert_eq!(games("league=mens%2Dcollege-basketball").unwrap().league.as_deref(), Some("mens-college-basketball"));
    for bad in [
        "date=2024-3-17",
        "date=2024-02-30",
        "date=20240317",
        "date=",
        "status=live",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "league=NBA",
        "league=n%ZZ",
        "date=2024-03-17&date=2024-03-18",
        "colour=green",
    ] {
        assert_eq!(games(bad).map_err(|e| e.status), Err(StatusCode::BAD_REQUEST), "{bad}");
    }
    let plays = |q: &str| Params::parse(Some(q), &["cursor", "since", "limit"]).and_then(|p| plays_request(&p, "g1"));
    assert_eq!(plays("").unwrap(), PlaysRequest::Page { cursor: None, limit: 1000, limit_given: false });
    assert_eq!(
        plays("since=42&limit=1000").unwrap(),
        PlaysRequest::Since(PlaysQuery { since: Some(42), limit: Some(1000), ..PlaysQuery::default() })
    );
    let snapshot = Cursor::Snapshot { as_of: 7, after: PlayPosition { game_order: 1_000_450, sequence: 12 } };
    let changes = Cursor::Changes { after: 9 };
    for cursor in [snapshot, changes] {
        let text = cursor.encode("g1");
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{text}");
        assert_eq!(
            plays(&format!("cursor={text}&limit=3")).unwrap(),
            PlaysRequest::Page { cursor: Some(cursor), limit: 3, limit_given: true }
        );
        // Another game's cursor is refused.
        let other = format!("cursor={}", cursor.encode("g2"));
        assert_eq!(plays(&other).map_err(|e| e.status), Err(StatusCode::BAD_REQUEST));
    }
    let forged = |text: &str| format!("cursor={}", URL_SAFE_NO_PAD.encode(text));
    for bad in [
        "since=-1".to_owned(),
        "since=x".to_owned(),
        "since=99999999999999999999".to_owned(),
        "limit=1001".to_owned(),
        "limit=0".to_owned(),
        "limit=".to_owned(),
        "cursor=".to_owned(),
        "cursor=***".to_owned(),
        "cursor=djEuZzEuYy4".to_owned(),
        format!("since=1&cursor={}", changes.encode("g1")),
        forged("v1.g1.c.-1"),
        forged("v1.g1.c.1.2"),
        forged("v1.g1.s.1.2"),
        forged("v2.g1.c.1"),
        forged("v1.g1.x.1"),
        forged("v1.g1.s.1.2.x"),
    ] {
        assert_eq!(plays(&bad).map_err(|e| e.status), Err(StatusCode::BAD_REQUEST), "{bad}");
    }
}

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pbp_store::{GamesQuery, PlayPosition, PlaysQuery};
use routes::{Cursor, PlaysRequest, plays_request};

#[tokio::test]
async fn games_with_their_teams_filtered_by_date_and_status() -> anyhow::Result<()> {
    let server = start().await?;
    let all = get(&server, "/v1/games").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.header("content-type").as_deref(), Some("application/json"));
    let ids: Vec<String> =
        all.json()["games"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["final", "live", "later"], "ordered by start time");

    let day = get(&server, "/v1/games?date=2024-03-17&status=in&league=nba").await.json();
    let games = day["games"].as_array().unwrap();
    assert_eq!(games.len(), 1, "{day}");
    let live = &games[0];
    assert_eq!(live["id"], "live");
    assert_eq!(live["status"], "in");
    assert_eq!(live["start_time"], "2024-03-17T22:00:00Z");
    assert_eq!(live["home"]["abbreviation"], "BOS");
    assert_eq!(live["home"]["name"], "Team BOS");
    assert_eq!(live["home"]["color"], "008348");
    assert_eq!(live["home"]["score"], 50);
    assert_eq!(live["away"]["abbreviation"], "ORL");
    assert_eq!(live["away"]["score"], 48);
    assert!(live.get("state").is_none(), "the list has no state");

    assert_eq!(get(&server, "/v1/games?limit=1").await.json()["games"].as_array().unwrap().len(), 1);
    assert_eq!(get(&server, "/v1/games?date=2024-03-19").await.json(), serde_json::json!({"games": []}));
    assert_eq!(get(&server, "/v1/games?league=wnba").await.json(), serde_json::json!({"games": []}));
    let bad = get(&server, "/v1/games?date=yesterday").await;
    assert_eq!(bad.error_code(), 400);
    assert!(bad.body.contains("YYYY-MM-DD"), "{}", bad.body);
    assert_eq!(get(&server, "/v1/games?status=over").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games?limit=5000").await.error_code(), 400);
    server.stop().await
}

#[tokio::test]
async fn one_game_with_its_live_state() -> anyhow::Result<()> {
    let server = start().await?;
    let live = get(&server, "/v1/games/live").await;
    assert_eq!(live.status, 200, "{}", live.body);
    let game = &live.json()["game"];
    assert_eq!(game["home"]["abbreviation"], "BOS");
    assert_eq!(game["state"]["status"], "in");
    assert_eq!(game["state"]["period"], 1);
    assert_eq!(game["state"]["clock"], "11:42");
    assert_eq!(game["state"]["home_score"], 2);
    assert_eq!(game["state"]["last_play"], serde_json::json!({"id": "live10", "text": "Play 10"}));
    assert_eq!(game["state"]["home"]["points"], 2);
    // No play stored yet: the state is null.
    let later = get(&server, "/v1/games/later").await.json();
    assert_eq!(later["game"]["state"], Value::Null);
    assert_eq!(later["game"]["status"], "pre");

    let missing = get(&server, "/v1/games/nope").await;
    assert_eq!(missing.error_code(), 404);
    assert_eq!(missing.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(get(&server, "/v1/games/no-pe").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games/a%2Fb").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games/live?x=1").await.error_code(), 400);
    server.stop().await
}

#[tokio::test]
async fn plays_in_game_order_with_since_and_limit() -> anyhow::Result<()> {
    let server = start().await?;
    let sequences = |answer: Answer| -> Vec<i64> {
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["plays"].as_array().unwrap().iter().map(|p| p["sequence"].as_i64().unwrap()).collect()
    };
    // The late insert (sequence 10) sits third in game order.
    assert_eq!(sequences(get(&server, "/v1/games/live/plays").await), [3, 4, 10, 5]);
    assert_eq!(sequences(get(&server, "/v1/games/live/plays?since=4").await), [10, 5]);
    assert_eq!(sequences(get(&server, "/v1/games/live/plays?limit=2").await), [3, 4]);
    assert_eq!(sequences(get(&server, "/v1/games/live/plays?since=3&limit=2").await), [4, 10]);
    assert_eq!(sequences(get(&server, "/v1/games/live/plays?since=10").await), Vec::<i64>::new());
    assert_eq!(sequences(get(&server, "/v1/games/final/plays").await), Vec::<i64>::new());

    let body = get(&server, "/v1/games/live/plays?limit=1").await.json();
    let first = &body["plays"][0];
    assert_eq!(body["game_id"], "live");
    assert_eq!(first["id"], "live3");
    assert_eq!(first["text"], "Play 3");
    assert_eq!(first["side"], "home");
    assert_eq!(first["wallclock"], "2024-03-17T22:00:00Z");
    assert_eq!(first["revision"], 1);

    assert_eq!(get(&server, "/v1/games/nope/plays").await.error_code(), 404);
    assert_eq!(get(&server, "/v1/games/live/plays?limit=1001").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games/live/plays?since=-5").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games/live/plays?since=abc").await.error_code(), 400);
    assert_eq!(get(&server, "/v1/games/live/plays?after=3").await.error_code(), 400);
    server.stop().await
}

/// Item B over HTTP: a client that follows `next` from the first page, while the game gets late inserts,
/// corrections (one moving a play) and deletions between its requests, ends holding exactly the stored plays;
/// the snapshot's pages come in game order, each play once, and the body cache (invalidated by every write)
/// never serves a page that breaks this.
#[tokio::test]
async fn following_next_through_a_live_game_ends_with_the_store() -> anyhow::Result<()> {
    let server = start().await?;
    for limit in [1u32, 2, 3, 5, 1000] {
        // Writes between requests, in the game `live`, repeated for each limit with fresh ids.
        let id = |n: i64| 100 * i64::from(limit) + n;
        let mut moved = play("live", 4, 2);
        moved.game_order = 50;
        moved.text = format!("moved {limit}");
        moved.fetched_at += i64::from(limit);
        let mut gone = play("live", id(1), 30);
        gone.change = PlayChange::Delete;
        gone.fetched_at += 1;
        let writes = vec![
            vec![play("live", id(1), 30), play("live", id(2), 0)],
            vec![moved],
            vec![gone],
            vec![play("live", id(3), 2)],
        ];
        let mut writes = writes.into_iter();
        let mut held: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
        let mut target = if limit == 1000 {
            "/v1/games/live/plays".to_owned()
        } else {
            format!("/v1/games/live/plays?limit={limit}")
        };
        let mut in_snapshot = true;
        loop {
            let answer = get(&server, &target).await;
            assert_eq!(answer.status, 200, "{target}: {}", answer.body);
            let body = answer.json();
            let plays = body["plays"].as_array().unwrap().clone();
            let deleted = body["deleted"].as_array().unwrap().clone();
            let next = body["next"].as_str().unwrap_or_else(|| panic!("a page has a next link: {body}")).to_owned();
            assert!(next.starts_with("/v1/games/live/plays?cursor="), "{next}");
            if limit != 1000 {
                assert!(next.ends_with(&format!("&limit={limit}")), "{next}");
            }
            let feed_page = !in_snapshot;
            if in_snapshot {
                assert!(deleted.is_empty());
                for p in &plays {
                    let id = p["id"].as_str().unwrap().to_owned();
                    assert!(held.insert(id.clone(), p.clone()).is_none(), "limit {limit}: {id} twice in the snapshot");
                }
                in_snapshot = plays.len() == limit as usize;
            } else {
                for p in &plays {
                    held.insert(p["id"].as_str().unwrap().to_owned(), p.clone());
                }
                for d in &deleted {
                    held.remove(d["id"].as_str().unwrap());
                }
            }
            let write = writes.next();
            if let Some(batch) = &write {
                server.repository.upsert_plays(batch).await?;
            }
            let caught_up = feed_page && plays.is_empty() && deleted.is_empty();
            if caught_up && write.is_none() {
                break;
            }
            target = next;
        }
        let stored = server.repository.plays("live", &PlaysQuery::default()).await?;
        let stored: std::collections::BTreeMap<String, (i64, String)> =
            stored.into_iter().map(|p| (p.play_id, (p.revision, p.text))).collect();
        let client: std::collections::BTreeMap<String, (i64, String)> = held
            .iter()
            .map(|(id, p)| (id.clone(), (p["revision"].as_i64().unwrap(), p["text"].as_str().unwrap().to_owned())))
            .collect();
        assert_eq!(client, stored, "limit {limit}: the client holds the store");
    }
    // A cursor the API did not write is a 400 with the API's error body.
    assert_eq!(get(&server, "/v1/games/live/plays?cursor=not-a-cursor").await.error_code(), 400);
    let other = Cursor::Changes { after: 0 }.encode("final");
    assert_eq!(get(&server, &format!("/v1/games/live/plays?cursor={other}")).await.error_code(), 400);
    let cursor = Cursor::Changes { after: 0 }.encode("live");
    assert_eq!(get(&server, &format!("/v1/games/live/plays?cursor={cursor}&since=3")).await.error_code(), 400);
    server.stop().await
}

#[tokio::test]
async fn plays_are_gzipped_for_clients_that_accept_it_and_follow_writes() -> anyhow::Result<()> {
    use std::io::Read;
    let server = start().await?;
    async fn gzip_get_from(addr: std::net::SocketAddr, target: &str, accept: &str) -> Answer {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n");
        send(addr, request.as_bytes()).await
    }
    let gzip_get = |target: &'static str, accept: &'static str| gzip_get_from(server.addr, target, accept);
    let gunzip = |answer: &Answer| -> Value {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(answer.header("vary").as_deref(), Some("accept-encoding"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&answer.raw_body[..]).read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let plain = get(&server, "/v1/games/live/plays?since=3").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary").as_deref(), Some("accept-encoding"));
    // Compressed from the cached plain body, then from the cache itself: the same plays every time.
    for _ in 0..2 {
        assert_eq!(gunzip(&gzip_get("/v1/games/live/plays?since=3", "gzip, br").await), plain.json());
    }
    // Filled by a gzip request first (nothing cached for this query yet).
    let first = gunzip(&gzip_get("/v1/games/live/plays?limit=2", "br;q=1, gzip;q=0.8").await);
    assert_eq!(first, get(&server, "/v1/games/live/plays?limit=2").await.json());
    // Not accepted: plain.
    let refused = gzip_get("/v1/games/live/plays?since=3", "gzip;q=0, identity").await;
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.json(), plain.json());
    // The first page (with its `next`, made of the game's change number) is cached too, plain and gzipped.
    let page = get(&server, "/v1/games/live/plays").await.json();
    assert_eq!(gunzip(&gzip_get("/v1/games/live/plays", "gzip").await), page);
    // A write changes the game's plays: the gzipped answer follows it like the plain one.
    server.repository.upsert_plays(&[play("live", 11, 5)]).await?;
    let fresh = gunzip(&gzip_get("/v1/games/live/plays", "gzip").await);
    assert_eq!(fresh["plays"].as_array().map(Vec::len), Some(5), "the cached page was dropped with the write");
    assert_ne!(fresh["next"], page["next"], "the next cursor moved with the change number");
    assert_eq!(fresh, get(&server, "/v1/games/live/plays").await.json());
    let after = gunzip(&gzip_get("/v1/games/live/plays?since=3", "gzip").await);
    let sequences: Vec<i64> =
        after["plays"].as_array().unwrap().iter().map(|p| p["sequence"].as_i64().unwrap()).collect();
    assert_eq!(sequences, [4, 10, 5, 11]);
    assert_eq!(after, get(&server, "/v1/games/live/plays?since=3").await.json());
    // Errors are never compressed.
    let missing = gzip_get("/v1/games/nope/plays", "gzip").await;
    assert_eq!(missing.header("content-encoding"), None);
    assert_eq!(missing.error_code(), 404);
    server.stop().await
}

#[tokio::test]
async fn teams_by_league() -> anyhow::Result<()> {
    let server = start().await?;
    let teams = get(&server, "/v1/teams").await;
    assert_eq!(teams.status, 200, "{}", teams.body);
    assert_eq!(
        teams.json()["teams"][0],
        serde_json::json!({"league": "nba", "id": "19", "abbreviation": "ORL", "name": "Team ORL",
            "color": "008348", "alternate_color": null})
    );
    assert_eq!(get(&server, "/v1/teams?league=nba").await.json()["teams"].as_array().unwrap().len(), 2);
    assert_eq!(get(&server, "/v1/teams?league=wnba").await.json(), serde_json::json!({"teams": []}));
    assert_eq!(get(&server, "/v1/teams?league=N.B.A").await.error_code(), 400);
    server.stop().await
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_large_bodies() -> anyhow::Result<()> {
    let server = start().await?;
    let unknown = get(&server, "/v1/players").await;
    assert_eq!(unknown.error_code(), 404);
    assert_eq!(unknown.header("content-type").as_deref(), Some("application/json"));

    let post =
        send(server.addr, b"POST /v1/games HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .await;
    assert_eq!(post.error_code(), 405);
    assert_eq!(post.header("allow").as_deref(), Some("GET"));
    let delete = send(server.addr, b"DELETE /v1/games/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    assert_eq!(delete.error_code(), 405);

    // Declared too large: refused without reading it.
    let declared =
        send(server.addr, b"GET /v1/games HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(declared.error_code(), 413);
    // Chunked, over the limit once read.
    let chunk = "x".repeat(MAX_BODY + 1);
    let chunked = format!(
        "GET /v1/games HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    assert_eq!(send(server.addr, chunked.as_bytes()).await.error_code(), 413);
    // A small body is read and ignored.
    let small =
        send(server.addr, b"GET /v1/teams HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .await;
    assert_eq!(small.status, 200, "{}", small.body);
    server.stop().await
}

#[tokio::test]
async fn health_is_ok_with_every_dependency_up() -> anyhow::Result<()> {
    let server = start().await?;
    let health = get(&server, "/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(
        health.json(),
        serde_json::json!({"status": "ok", "checks": {
            "store": {"status": "ok"}, "cache": {"status": "ok"}, "broker": {"status": "ok", "detail": "embedded"}}})
    );
    server.stop().await
}

#[tokio::test]
async fn a_cache_that_is_down_degrades_health_but_the_api_serves_from_the_store() -> anyhow::Result<()> {
    let server = start_with(Arc::new(DownCache)).await?;
    let health = get(&server, "/health").await;
    assert_eq!(health.status, 503, "{}", health.body);
    let body = health.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["store"]["status"], "ok");
    assert_eq!(body["checks"]["cache"]["status"], "down");
    assert!(body["checks"]["cache"]["error"].as_str().unwrap().contains("connection refused"), "{body}");
    // Reads fall back to the store.
    assert_eq!(get(&server, "/v1/games/live").await.json()["game"]["state"]["plays_applied"], 4);
    assert_eq!(get(&server, "/v1/games?date=2024-03-17").await.json()["games"].as_array().unwrap().len(), 2);
    assert_eq!(get(&server, "/v1/games/live/plays").await.json()["plays"].as_array().unwrap().len(), 4);
    assert_eq!(get(&server, "/v1/teams").await.status, 200);
    server.stop().await
}

#[tokio::test]
async fn metrics_expose_the_named_series() -> anyhow::Result<()> {
    let server = start().await?;
    // The ESPN client registers its series in the same registry when ingest runs in the process; one poll of an
    // ESPN that answers 404.
    let espn = TcpListener::bind("127.0.0.1:0").await?;
    let config = pbp_espn::ClientConfig::with_base_url(&format!("http://{}", espn.local_addr()?));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = espn.accept().await {
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        }
    });
    let client = pbp_espn::EspnClient::new(config, &mut server.registry.lock().unwrap())?;
    assert!(client.teams(pbp_espn::League::Nba).await.is_err());
    assert_eq!(get(&server, "/v1/games/live").await.status, 200);
    assert_eq!(get(&server, "/v1/games/other").await.status, 404);
    assert_eq!(get(&server, "/nowhere/at/all").await.status, 404);
    let metrics = get(&server, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let text = metrics.body;
    for series in [
        r#"http_request_duration_seconds_count{method="GET",route="/v1/games/{id}",status="200"} 1"#,
        r#"http_request_duration_seconds_count{method="GET",route="/v1/games/{id}",status="404"} 1"#,
        r#"http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1"#,
        r#"kafka_messages_consumed_total{pipeline="serve-plays"} 7"#,
        r#"dlq_messages_total{pipeline="serve-plays",stage="store"} 1"#,
        "websocket_connections_active 0",
        r#"espn_polls_total{endpoint="teams",outcome="client_error"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    assert!(!text.contains("/v1/games/live"), "raw paths never become labels");
    server.stop().await
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() -> anyhow::Result<()> {
    let server = start().await?;
    // A request whose body is still coming when shutdown starts.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await?;
    stream.write_all(b"GET /v1/teams HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{").await?;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let Server { addr, stop, task, _dir, .. } = server;
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
    stream.write_all(b"}").await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    task.await??;
    Ok(())
}

#[tokio::test]
async fn a_single_flight_check_runs_once_while_a_run_is_unfinished() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let check: health::Check = {
        let runs = runs.clone();
        Arc::new(move || {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let mut released = released.clone();
            Box::pin(async move {
                drop(released.wait_for(|r| *r).await);
                Ok(Some(format!("run {n}")))
            })
        })
    };
    let check = health::single_flight(check);
    // Callers that give up at their deadline leave the run going; the next callers join it.
    for _ in 0..3 {
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), check()).await.is_err());
    }
    let joined = [check(), check()];
    release.send(true).unwrap();
    for answer in futures::future::join_all(joined).await {
        assert_eq!(answer, Ok(Some("run 1".to_owned())));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Once it answered, the next call runs the check again.
    assert_eq!(check().await, Ok(Some("run 2".to_owned())));
    // A run that finished while nobody waited is not handed out later: the next call runs anew.
    assert!(futures::FutureExt::now_or_never(check()).is_none(), "run 3 started and nobody waits for it");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(check().await, Ok(Some("run 4".to_owned())));
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_does_not_answer_degrades_health_within_the_check_deadline() -> anyhow::Result<()> {
    use pbp_dataflow::transport::kafka::{KafkaConfig, KafkaTransport};
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path(), 2).await?;
    let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new(CacheTtls::default()));
    let repository: Arc<dyn Repository> = Arc::new(CachedRepository::new(store, cache.clone()));
    // Nothing listens on port 1: the metadata request gets no answer before its own timeout (3 s, so that the
    // test's runtime does not wait 30 s for the blocking call), well after the check's deadline (2 s).
    let config: pbp_dataflow::TransportConfig = "kafka://127.0.0.1:1".parse()?;
    let kafka = KafkaConfig { request_timeout: std::time::Duration::from_secs(3), ..KafkaConfig::new("127.0.0.1:1") };
    let checks = HealthChecks::new(cache, Arc::new(KafkaTransport::connect(kafka)?), &config);
    let started = std::time::Instant::now();
    let health = health::check(&repository, &checks).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(!health.ok());
    assert_eq!(health.checks.store.status, "ok");
    assert_eq!(health.checks.cache.status, "ok");
    assert_eq!(health.checks.broker.status, "down", "{:?}", health.checks.broker);
    assert!(health.checks.broker.error.is_some());
    Ok(())
}
