//! Routing, parameter validation and the JSON views of the rows.

use std::collections::HashMap;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::{Method, StatusCode};
use pbp_store::{GameRow, GameStatus, GamesQuery, PlayPosition, PlaysPageQuery, PlaysQuery};
use pbp_store::{Repository, TeamRow};
use serde::Serialize;

use super::error::ApiError;
use super::views::{DeletedView, PlayView, StateView, rfc3339};

/// Plays answered when `limit` is not given: a whole game (an NBA game has 450 to 550 plays, a long overtime
/// game up to about 700) in one page.
pub(crate) const DEFAULT_PLAYS_LIMIT: u32 = 1000;
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

/// Where a page of `GET /v1/games/{id}/plays` starts, as its `cursor` says (the API writes cursors; a client only
/// follows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// The next page of the snapshot as of change number `as_of`, after the play at `after`.
    Snapshot { as_of: i64, after: PlayPosition },
    /// The change feed after change number `after`.
    Changes { after: i64 },
}

/// What a cursor says, before it is encoded: a version, the game (a cursor is refused on another game's path),
/// then the position.
const CURSOR_VERSION: &str = "v1";

impl Cursor {
    /// The opaque text of the cursor for `game_id`: base64url (no padding) of
    /// `v1.{game}.s.{as_of}.{game_order}.{sequence}` or `v1.{game}.c.{after}`.
    pub(crate) fn encode(&self, game_id: &str) -> String {
        let text = match self {
            Cursor::Snapshot { as_of, after } => {
                format!("{CURSOR_VERSION}.{game_id}.s.{as_of}.{}.{}", after.game_order, after.sequence)
            }
            Cursor::Changes { after } => format!("{CURSOR_VERSION}.{game_id}.c.{after}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// The cursor `text` of game `game_id`; a 400 for anything the API did not write for that game.
    pub(crate) fn decode(text: &str, game_id: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "cursor {:?} is not one this API gave for game {game_id}: follow the `next` of a page",
                truncate(text)
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let number = |part: &str| part.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(bad);
        match text.split('.').collect::<Vec<_>>().as_slice() {
            [CURSOR_VERSION, game, "s", as_of, order, sequence] if *game == game_id => Ok(Cursor::Snapshot {
                as_of: number(as_of)?,
                after: PlayPosition { game_order: number(order)?, sequence: number(sequence)? },
            }),
            [CURSOR_VERSION, game, "c", after] if *game == game_id => Ok(Cursor::Changes { after: number(after)? }),
            _ => Err(bad()),
        }
    }
}

/// What `GET /v1/games/{id}/plays` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaysRequest {
    /// A page: the first of the snapshot (no cursor), a later one, or one of the change feed.
    Page {
        cursor: Option<Cursor>,
        limit: u32,
        /// The client gave `limit` (then `next` repeats it).
        limit_given: bool,
    },
    /// Deprecated: plays with a sequence above `since`, the first `limit` in game order, no `next`.
    Since(PlaysQuery),
}

impl PlaysRequest {
    /// The body cache's field of the request (its group is `plays:{id}`, which every write of the game's plays
    /// invalidates; the `view:` prefix keeps it apart from the store cache's own fields there). A page's body
    /// holds its `next` cursor, itself made of what the store held: invalidated with the rest.
    pub(crate) fn cache_field(&self, game_id: &str) -> String {
        match self {
            PlaysRequest::Page { cursor, limit, limit_given } => format!(
                "view:cursor={};limit={limit}{}",
                cursor.map_or(String::new(), |c| c.encode(game_id)),
                if *limit_given { "" } else { ";default" }
            ),
            PlaysRequest::Since(query) => format!(
                "view:since={};limit={}",
                query.since.map_or(String::new(), |s| s.to_string()),
                query.limit.map_or(String::new(), |l| l.to_string())
            ),
        }
    }
}

/// The request of `GET /v1/games/{id}/plays`: `cursor` and `limit`, or the deprecated `since` (not with a cursor).
pub(crate) fn plays_request(params: &Params, game_id: &str) -> Result<PlaysRequest, ApiError> {
    let since = params.number("since", 0, i64::MAX)?;
    let limit_given = params.number("limit", 1, MAX_PLAYS_LIMIT)?;
    let limit = limit_given.unwrap_or(DEFAULT_PLAYS_LIMIT);
    let cursor = params.get("cursor").map(|text| Cursor::decode(text, game_id)).transpose()?;
    match (since, cursor) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "since and cursor cannot be combined: since is deprecated, follow the `next` cursor of each page",
        )),
        (Some(since), None) => {
            Ok(PlaysRequest::Since(PlaysQuery { since: Some(since), limit: Some(limit), corrections: false }))
        }
        (None, cursor) => Ok(PlaysRequest::Page { cursor, limit, limit_given: limit_given.is_some() }),
    }
}

/// What `WS /ws/{id}` resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WsResume {
    /// Deprecated: after this play sequence.
    pub(crate) since: Option<i64>,
    /// After this change number: every change after it.
    pub(crate) since_change: Option<i64>,
}

/// The `since_change` (or the deprecated `since`) of `WS /ws/{id}`; not both.
pub(crate) fn ws_resume(params: &Params) -> Result<WsResume, ApiError> {
    let resume = WsResume {
        since: params.number("since", 0, i64::MAX)?,
        since_change: params.number("since_change", 0, i64::MAX)?,
    };
    if resume.since.is_some() && resume.since_change.is_some() {
        return Err(ApiError::bad_request("since and since_change cannot be combined: since is deprecated"));
    }
    Ok(resume)
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
///
/// A page of the snapshot (no cursor, or a snapshot cursor) holds the next `limit` plays in game order of the
/// game as of the snapshot's change number; a full page's `next` continues the snapshot after its last play, a
/// shorter one's `next` starts the change feed after the snapshot. A page of the feed holds the plays changed
/// since (`plays`: inserted or corrected; `deleted`: deleted), in change order, and its `next` continues after
/// the last of them (the same cursor when there was none: poll it). See `docs/serving.md`.
pub(crate) async fn plays(
    repository: &dyn Repository,
    id: &str,
    request: &PlaysRequest,
) -> Result<(bytes::Bytes, GameStatus), ApiError> {
    let Some(game) = repository.game(id).await? else {
        return Err(ApiError::not_found(format!("no game {id}")));
    };
    #[derive(Serialize)]
    struct Body<'a> {
        game_id: &'a str,
        plays: Vec<PlayView>,
        deleted: Vec<DeletedView>,
        next: Option<String>,
    }
    let body = match *request {
        PlaysRequest::Since(query) => {
            let plays = repository.plays(id, &query).await?.into_iter().map(PlayView::from).collect();
            Body { game_id: id, plays, deleted: Vec::new(), next: None }
        }
        PlaysRequest::Page { cursor: None | Some(Cursor::Snapshot { .. }), limit, limit_given } => {
            let (as_of, after) = match request {
                PlaysRequest::Page { cursor: Some(Cursor::Snapshot { as_of, after }), .. } => {
                    (Some(*as_of), Some(*after))
                }
                _ => (None, None),
            };
            let page = repository.plays_page(id, &PlaysPageQuery { as_of, after, limit }).await?;
            let next = match page.plays.last() {
                Some(last) if page.plays.len() >= limit as usize => {
                    Cursor::Snapshot { as_of: page.as_of, after: last.position() }
                }
                _ => Cursor::Changes { after: page.as_of },
            };
            let plays = page.plays.into_iter().map(PlayView::from).collect();
            Body { game_id: id, plays, deleted: Vec::new(), next: Some(next_link(id, next, limit, limit_given)) }
        }
        PlaysRequest::Page { cursor: Some(Cursor::Changes { after }), limit, limit_given } => {
            let changes = repository.play_changes(id, after, Some(limit)).await?;
            let next = Cursor::Changes { after: changes.last().map_or(after, |p| p.change_number) };
            let (deleted, plays): (Vec<_>, Vec<_>) = changes.into_iter().partition(pbp_store::PlayRow::is_deleted);
            Body {
                game_id: id,
                plays: plays.into_iter().map(PlayView::from).collect(),
                deleted: deleted.iter().map(DeletedView::from).collect(),
                next: Some(next_link(id, next, limit, limit_given)),
            }
        }
    };
    let body = serde_json::to_vec(&body).map_err(|error| {
        tracing::error!(%error, "Cannot encode plays.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the plays")
    })?;
    Ok((body.into(), game.status))
}

/// The path and query of the page at `cursor`, keeping the client's `limit`.
fn next_link(game_id: &str, cursor: Cursor, limit: u32, limit_given: bool) -> String {
    let limit = if limit_given { format!("&limit={limit}") } else { String::new() };
    format!("/v1/games/{game_id}/plays?cursor={}{limit}", cursor.encode(game_id))
}

/// The parameters each route takes.
pub(crate) fn allowed_params(route: &Route) -> &'static [&'static str] {
    match route {
        Route::Games => &["date", "status", "league", "limit"],
        Route::Plays(_) => &["cursor", "limit", "since"],
        Route::Ws(_) => &["since", "since_change"],
        Route::Teams => &["league"],
        Route::Health | Route::Live | Route::Metrics | Route::Game(_) => &[],
    }
}

/// The status `/health` answers with.
pub(crate) fn health_status(ok: bool) -> StatusCode {
    if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}
