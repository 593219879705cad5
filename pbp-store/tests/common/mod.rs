//! Shared by the black-box tests: fixtures, and the PostgreSQL/Redis service rule.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use pbp_store::{
    Coordinate, GameRow, GameStateRow, GameStatus, PgConfig, PgStore, PlayChange, PlayRow, Side, SqliteStore,
    TeamCounters, TeamRow,
};

/// True when `PBP_REQUIRE_SERVICES=1`: PostgreSQL and Redis tests must run and fail if the service is missing.
pub fn services_required() -> bool {
    std::env::var("PBP_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The base URL of the test PostgreSQL database.
pub fn pg_url() -> String {
    std::env::var("PBP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The URL of the test Redis.
pub fn redis_url() -> String {
    std::env::var("PBP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A name unique to this process and call: `prefix_<pid>_<n>_<nanos>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// A fresh embedded store in a temporary directory (kept alive by the returned guard).
pub async fn sqlite_store() -> anyhow::Result<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("data"), 4).await?;
    Ok((store, dir))
}

/// Drops a test schema when the test ends, whether it passed or panicked.
pub struct SchemaGuard {
    base: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let base = self.base.clone();
        let schema = self.schema.clone();
        // Async work in Drop: a short-lived runtime on its own thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = AsyncPgConnection::establish(&base).await?;
                conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}", self.schema);
        }
    }
}

/// A fresh PostgreSQL store in a schema of its own, or `None` (with a printed reason) when PostgreSQL is not
/// reachable and services are not required. With `PBP_REQUIRE_SERVICES=1`, an unreachable PostgreSQL fails.
pub async fn pg_store() -> anyhow::Result<Option<(PgStore, SchemaGuard)>> {
    let Some((url, guard)) = pg_store_unmigrated().await? else { return Ok(None) };
    let store = PgStore::connect(PgConfig::new(url)).await?;
    Ok(Some((store, guard)))
}

/// [`pg_store`] whose sessions do not wait for each commit to reach the disk (`synchronous_commit = off`): for
/// tests that commit thousands of small transactions and are about what they read back, not about durability.
pub async fn pg_store_without_commit_waits() -> anyhow::Result<Option<(PgStore, SchemaGuard)>> {
    let Some((url, guard)) = pg_store_unmigrated().await? else { return Ok(None) };
    let store = PgStore::connect(PgConfig::new(format!("{url}%20-c%20synchronous_commit%3Doff"))).await?;
    Ok(Some((store, guard)))
}

/// The URL of a fresh, empty schema (dropped with the guard), or `None` under the same rule as [`pg_store`].
pub async fn pg_store_unmigrated() -> anyhow::Result<Option<(String, SchemaGuard)>> {
    let base = pg_url();
    let mut conn = match AsyncPgConnection::establish(&base).await {
        Ok(conn) => conn,
        Err(e) if !services_required() => {
            eprintln!("skipping: PostgreSQL at {base} is unreachable ({e}); set PBP_REQUIRE_SERVICES=1 to fail");
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("PBP_REQUIRE_SERVICES=1 but PostgreSQL at {base} is unreachable: {e}")),
    };
    let schema = unique("pbp_store_test");
    conn.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    let guard = SchemaGuard { base: base.clone(), schema: schema.clone() };
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Ok(Some((url, guard)))
}

pub fn team(league: &str, id: &str, abbreviation: &str) -> TeamRow {
    TeamRow {
        league: league.to_owned(),
        id: id.to_owned(),
        abbreviation: abbreviation.to_owned(),
        display_name: format!("Team {abbreviation}"),
        color: Some("008348".to_owned()),
        alternate_color: None,
        updated_at: 1_700_000_000_000,
    }
}

pub fn game(id: &str, date: &str, home: &str, away: &str) -> GameRow {
    GameRow {
        id: id.to_owned(),
        league: "nba".to_owned(),
        season: 2024,
        season_type: 2,
        game_date: date.to_owned(),
        start_time: 1_710_712_800_000,
        status: GameStatus::Pre,
        status_detail: "7:00 PM ET".to_owned(),
        period: 0,
        clock_display: "12:00".to_owned(),
        clock_seconds: 720.0,
        completed: false,
        home_team_id: home.to_owned(),
        away_team_id: away.to_owned(),
        home_score: 0,
        away_score: 0,
        fetched_at: 1_710_700_000_000,
    }
}

/// Play number `n` of a game: sequence `n + 3`, game order `n`, alternating sides and odd features so that every
/// column carries a non-default value somewhere.
pub fn play(game_id: &str, n: i64) -> PlayRow {
    let side = if n % 2 == 0 { Side::Home } else { Side::Away };
    let scoring = n % 3 == 0;
    let home_score = (n / 2) as i32;
    let away_score = (n / 3) as i32;
    PlayRow {
        game_id: game_id.to_owned(),
        play_id: format!("{game_id}{}", n + 3),
        sequence: n + 3,
        game_order: n,
        league: "nba".to_owned(),
        period: 1 + (n / 100) as i32,
        clock_display: "11:42".to_owned(),
        clock_seconds: 702.5,
        game_seconds_left: 2142.5,
        period_elapsed_seconds: 17.5,
        game_elapsed_seconds: 17.5 + n as f64,
        overtime: n > 400,
        event_type: "jump_shot".to_owned(),
        espn_type_id: "92".to_owned(),
        espn_type_text: "Jump Shot".to_owned(),
        team_id: (n % 7 != 0).then(|| if side == Side::Home { "2".to_owned() } else { "19".to_owned() }),
        side: (n % 7 != 0).then_some(side),
        home_score,
        away_score,
        score_differential: home_score - away_score,
        score_value: if scoring { 2 } else { 0 },
        scoring_play: scoring,
        shooting_play: n % 2 == 0,
        shot_value: (n % 2 == 0).then_some(2),
        coordinate: (n % 5 != 0).then_some(Coordinate { x: (n % 50) as i32, y: -3 + (n % 40) as i32 }),
        wallclock: (n % 11 != 0).then_some(1_710_712_800_000 + n * 1000),
        participants: (0..(n % 3)).map(|i| format!("44{n}{i}")).collect(),
        text: format!("Play {n} with 'quotes', \"double\" and ünïcode"),
        change: PlayChange::New,
        fetched_at: 1_710_712_900_000 + n,
        enriched_at: 1_710_712_900_100 + n,
        revision: 1,
        change_number: 0,
    }
}

pub fn state(game_id: &str, status: GameStatus, plays_applied: i64, updated_at: i64) -> GameStateRow {
    GameStateRow {
        game_id: game_id.to_owned(),
        league: "nba".to_owned(),
        status,
        period: 2,
        clock_display: "5:13".to_owned(),
        clock_seconds: 313.0,
        home_score: 50,
        away_score: 48,
        home: TeamCounters {
            team_id: Some("2".to_owned()),
            points: 50,
            field_goals_made: 20,
            field_goals_attempted: 41,
            three_pointers_made: 5,
            three_pointers_attempted: 14,
            free_throws_made: 5,
            free_throws_attempted: 7,
            offensive_rebounds: 4,
            defensive_rebounds: 17,
            turnovers: 6,
            fouls: 9,
            period_fouls: 3,
            timeouts: 2,
        },
        away: TeamCounters { team_id: None, points: 48, ..TeamCounters::default() },
        last_sequence: 220,
        last_play_id: Some(format!("{game_id}220")),
        last_play_text: Some("Jayson Tatum makes 2-foot layup".to_owned()),
        plays_applied,
        updated_at,
    }
}

/// A Redis cache under a unique key prefix, or `None` (with a printed reason) when Redis is not reachable and
/// services are not required. With `PBP_REQUIRE_SERVICES=1`, an unreachable Redis fails.
pub async fn redis_cache(ttls: pbp_store::cache::CacheTtls) -> anyhow::Result<Option<pbp_store::cache::RedisCache>> {
    let url = redis_url();
    let prefix = format!("{}:", unique("pbp_store_test"));
    match pbp_store::cache::RedisCache::connect(&url, &prefix, ttls).await {
        Ok(cache) => Ok(Some(cache)),
        Err(e) if !services_required() => {
            eprintln!("skipping: Redis at {url} is unreachable ({e}); set PBP_REQUIRE_SERVICES=1 to fail");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("PBP_REQUIRE_SERVICES=1 but Redis at {url} is unreachable: {e}")),
    }
}

/// The teams the fixtures' games use.
pub async fn seed_teams(repo: &dyn pbp_store::Repository) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "2", "BOS"), team("nba", "19", "ORL"), team("nba", "18", "NY")]).await?;
    Ok(())
}
