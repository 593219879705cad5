//! Routing, parameter validation and the JSON views of the rows.

use std::collections::HashMap;
use std::str::FromStr;

use hyper::{Method, StatusCode};
use pbp_store::{GameRow, GameStatus, GamesQuery, PlaysQuery};
use pbp_store::{Repository, TeamRow};
use serde::Serialize;

use super::error::ApiError;
use super::views::{PlayView, StateView, rfc3339};

/// Plays answered when `limit` is not given.
pub(crate) const DEFAULT_PLAYS_LIMIT: u32 = 100;
/// Most plays answered at once.
pub(crate) const MAX_PLAYS_LIMIT: u32 = 1000;
/// Most games answered at once (and the default: a day of every league fits).
pub(crate) const MAX_GAMES_LIMIT: u32 = 1000;
/// Longest game id accepted.
const MAX_ID_LEN: usize = 64;

/// What a request asks for, once its path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    /// Liveness: the process answers HTTP; nothing is checked.
    Live,
    Metrics,
    Teams,
    Games,
    Game(String),
    Plays(String),
    /// The WebSocket of one game.
    Ws(String),
}

impl Route {
    /// The route's template, the `route` label of the request metrics.
    pub(crate) fn template(&self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Live => "/health/live",
            Route::Metrics => "/metrics",
            Route::Teams => "/v1/teams",
            Route::Games => "/v1/games",
            Route::Game(_) => "/v1/games/{id}",
            Route::Plays(_) => "/v1/games/{id}/plays",
            Route::Ws(_) => "/ws/{id}",
        }
    }
}

/// The `route` label of requests matching no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// Matches `path`: 404 for an unknown path, 400 for a game id that is not 1 to 64 ASCII letters and digits.
/// Every route answers GET only (see [`check_method`]).
pub(crate) fn route(path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let not_found = || ApiError::not_found(format!("no such path: {}", truncate(path)));
    if segments.contains(&"") {
        return Err(not_found());
    }
    Ok(match segments.as_slice() {
        ["health"] => Route::Health,
        ["health", "live"] => Route::Live,
        ["metrics"] => Route::Metrics,
        ["v1", "teams"] => Route::Teams,
        ["v1", "games"] => Route::Games,
        ["v1", "games", id] => Route::Game(game_id(id)?),
        ["v1", "games", id, "plays"] => Route::Plays(game_id(id)?),
        ["ws", id] => Route::Ws(game_id(id)?),
        _ => return Err(not_found()),
    })
}

/// 405 unless the method is GET.
pub(crate) fn check_method(method: &Method) -> Result<(), ApiError> {
    if method == Method::GET { Ok(()) } else { Err(ApiError::method_not_allowed(method)) }
}

fn game_id(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(format!(
            "game id {:?} is not 1 to {MAX_ID_LEN} ASCII letters and digits",
            truncate(id)
        )));
    }
    Ok(id.to_owned())
}

/// At most 80 characters of client input, for messages.
fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The query string's parameters, each at most once and all among `allowed`.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut params = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {:?}; this path takes {}",
                    truncate(&key),
                    if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
                )));
            }
            if params.insert(key.clone(), value).is_some() {
                return Err(ApiError::bad_request(format!("parameter {key} is given twice")));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A number in `min..=max`, if given.
    fn number<T>(&self, key: &str, min: T, max: T) -> Result<Option<T>, ApiError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.get(key) else { return Ok(None) };
        match text.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{key} must be a whole number from {min} to {max}, not {:?}",
                truncate(text)
            ))),
        }
    }

    /// A league slug (lowercase letters, digits and dashes), if given.
    fn league(&self) -> Result<Option<String>, ApiError> {
        let Some(league) = self.get("league") else { return Ok(None) };
        let ok = !league.is_empty()
            && league.len() <= 64
            && league.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ApiError::bad_request(format!(
                "league {:?} is not a league slug such as nba or mens-college-basketball",
                truncate(league)
            )));
        }
        Ok(Some(league.to_owned()))
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(text: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("bad percent-encoding in the query: {:?}", truncate(text)));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The filter of `GET /v1/games`.
pub(crate) fn games_query(params: &Params) -> Result<GamesQuery, ApiError> {
    let date = match params.get("date") {
        None => None,
        Some(date) => Some(valid_date(date)?),
    };
    let status = match params.get("status") {
        None => None,
        Some(status) => Some(GameStatus::from_str(status).map_err(|_| {
            ApiError::bad_request(format!("status must be pre, in or post, not {:?}", truncate(status)))
        })?),
    };
    let limit = params.number("limit", 1, MAX_GAMES_LIMIT)?.unwrap_or(MAX_GAMES_LIMIT);
    Ok(GamesQuery { date, status, league: params.league()?, limit: Some(limit) })
}

/// A calendar date written `YYYY-MM-DD`.
fn valid_date(date: &str) -> Result<String, ApiError> {
    let shaped = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if shaped && date.parse::<jiff::civil::Date>().is_ok() {
        Ok(date.to_owned())
    } else {
        Err(ApiError::bad_request(format!("date must be a calendar date YYYY-MM-DD, not {:?}", truncate(date))))
    }
}

/// The filter of `GET /v1/games/{id}/plays`.
pub(crate) fn plays_query(params: &Params) -> Result<PlaysQuery, ApiError> {
    let since = params.number("since", 0, i64::MAX)?;
    let limit = params.number("limit", 1, MAX_PLAYS_LIMIT)?.unwrap_or(DEFAULT_PLAYS_LIMIT);
    Ok(PlaysQuery { since, limit: Some(limit), corrections: false })
}

/// The `since` of `WS /ws/{id}`: resume after this play sequence.
pub(crate) fn ws_since(params: &Params) -> Result<Option<i64>, ApiError> {
    params.number("since", 0, i64::MAX)
}

/// The league filter of `GET /v1/teams`.
pub(crate) fn teams_league(params: &Params) -> Result<Option<String>, ApiError> {
    params.league()
}

// ----- Views -----

/// A team as listed by `/v1/teams`.
#[derive(Debug, Serialize)]
pub(crate) struct TeamView {
    league: String,
    id: String,
    abbreviation: String,
    name: String,
    color: Option<String>,
    alternate_color: Option<String>,
}

impl From<TeamRow> for TeamView {
    fn from(t: TeamRow) -> Self {
        Self {
            league: t.league,
            id: t.id,
            abbreviation: t.abbreviation,
            name: t.display_name,
            color: t.color,
            alternate_color: t.alternate_color,
        }
    }
}

/// One side of a game: the team (as far as it is known) and its score.
#[derive(Debug, Serialize)]
struct SideView {
    id: String,
    abbreviation: Option<String>,
    name: Option<String>,
    color: Option<String>,
    alternate_color: Option<String>,
    score: i32,
}

/// A game with its teams, as the scoreboard last described it.
#[derive(Debug, Serialize)]
pub(crate) struct GameView {
    id: String,
    league: String,
    season: i32,
    season_type: i32,
    date: String,
    /// Scheduled tip-off, RFC 3339.
    start_time: String,
    status: GameStatus,
    status_detail: String,
    period: i32,
    clock: String,
    clock_seconds: f64,
    completed: bool,
    home: SideView,
    away: SideView,
    /// The live state (`/v1/games/{id}` only; `null` before the first play is stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Option<StateView>>,
}

/// The teams of `games`, by `(league, id)`, read once per league (through the cache).
async fn teams_of(
    repository: &dyn Repository,
    games: &[GameRow],
) -> Result<HashMap<(String, String), TeamRow>, ApiError> {
    let mut leagues: Vec<&str> = games.iter().map(|g| g.league.as_str()).collect();
    leagues.sort_unstable();
    leagues.dedup();
    let mut teams = HashMap::new();
    for league in leagues {
        for team in repository.teams(Some(league)).await? {
            teams.insert((team.league.clone(), team.id.clone()), team);
        }
    }
    Ok(teams)
}

fn game_view(game: GameRow, teams: &HashMap<(String, String), TeamRow>) -> GameView {
    let side = |id: String, score: i32| {
        let team = teams.get(&(game.league.clone(), id.clone()));
        SideView {
            abbreviation: team.map(|t| t.abbreviation.clone()),
            name: team.map(|t| t.display_name.clone()),
            color: team.and_then(|t| t.color.clone()),
            alternate_color: team.and_then(|t| t.alternate_color.clone()),
            id,
            score,
        }
    };
    let home = side(game.home_team_id.clone(), game.home_score);
    let away = side(game.away_team_id.clone(), game.away_score);
    GameView {
        start_time: rfc3339(game.start_time),
        id: game.id,
        league: game.league,
        season: game.season,
        season_type: game.season_type,
        date: game.game_date,
        status: game.status,
        status_detail: game.status_detail,
        period: game.period,
        clock: game.clock_display,
        clock_seconds: game.clock_seconds,
        completed: game.completed,
        home,
        away,
        state: None,
    }
}

/// `GET /v1/teams`.
pub(crate) async fn teams(repository: &dyn Repository, params: &Params) -> Result<serde_json::Value, ApiError> {
    let league = teams_league(params)?;
    let teams: Vec<TeamView> = repository.teams(league.as_deref()).await?.into_iter().map(TeamView::from).collect();
    Ok(serde_json::json!({ "teams": teams }))
}

/// `GET /v1/games`.
pub(crate) async fn games(repository: &dyn Repository, params: &Params) -> Result<serde_json::Value, ApiError> {
    let query = games_query(params)?;
    let games = repository.games(&query).await?;
    let teams = teams_of(repository, &games).await?;
    let games: Vec<GameView> = games.into_iter().map(|g| game_view(g, &teams)).collect();
    Ok(serde_json::json!({ "games": games }))
}

/// `GET /v1/games/{id}`.
pub(crate) async fn game(repository: &dyn Repository, id: &str) -> Result<serde_json::Value, ApiError> {
    let Some(game) = repository.game(id).await? else {
        return Err(ApiError::not_found(format!("no game {id}")));
    };
    let teams = teams_of(repository, std::slice::from_ref(&game)).await?;
    let state = repository.game_state(id).await?;
    let mut view = game_view(game, &teams);
    view.state = Some(state.map(StateView::from));
    Ok(serde_json::json!({ "game": view }))
}

/// `GET /v1/games/{id}/plays`: the serialized body, and the game's status (which decides how long the body may
/// be cached).
pub(crate) async fn plays(
    repository: &dyn Repository,
    id: &str,
    query: &PlaysQuery,
) -> Result<(bytes::Bytes, GameStatus), ApiError> {
    let Some(game) = repository.game(id).await? else {
        return Err(ApiError::not_found(format!("no game {id}")));
    };
    let plays: Vec<PlayView> = repository.plays(id, query).await?.into_iter().map(PlayView::from).collect();
    #[derive(Serialize)]
    struct Body<'a> {
        game_id: &'a str,
        plays: Vec<PlayView>,
    }
    let body = serde_json::to_vec(&Body { game_id: id, plays }).map_err(|error| {
        tracing::error!(%error, "Cannot encode plays.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the plays")
    })?;
    Ok((body.into(), game.status))
}

/// The body cache's field of a plays query (its group is `plays:{id}`; the `view:` prefix keeps it apart from
/// the store cache's own fields there).
pub(crate) fn plays_cache_field(query: &PlaysQuery) -> String {
    format!(
        "view:since={};limit={}",
        query.since.map_or(String::new(), |s| s.to_string()),
        query.limit.map_or(String::new(), |l| l.to_string())
    )
}

/// The parameters each route takes.
pub(crate) fn allowed_params(route: &Route) -> &'static [&'static str] {
    match route {
        Route::Games => &["date", "status", "league", "limit"],
        Route::Plays(_) => &["since", "limit"],
        Route::Ws(_) => &["since"],
        Route::Teams => &["league"],
        Route::Health | Route::Live | Route::Metrics | Route::Game(_) => &[],
    }
}

/// The status `/health` answers with.
pub(crate) fn health_status(ok: bool) -> StatusCode {
    if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}
