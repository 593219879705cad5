//! Conversions between the crates' types: ESPN's models and normalized plays into the Avro records on the
//! topics, and those records into the store's rows. Each conversion either succeeds or says what is missing,
//! so that the caller can dead-letter the input.

use pbp_avro::{
    ChangeKind, Coordinate, EnrichedEvent, GameState, PeriodFormat, PlayEvent, ScoreboardEvent, Side, TeamInfo,
};
use pbp_espn::League;
use pbp_espn::model::{Competition, Season, Team};
use pbp_espn::normalize::NormalizedPlay;
use pbp_store::{GameRow, GameStateRow, GameStatus, PlayChange, PlayRow, TeamCounters, TeamRow};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Milliseconds since the epoch of an ESPN UTC timestamp (`2024-03-17T22:10:44Z`, or minute precision
/// `2024-03-17T22:00Z`).
pub(crate) fn parse_utc_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    // Minute precision: add the seconds ISO 8601 lets ESPN leave out.
    let minutes = text.strip_suffix('Z')?;
    format!("{minutes}:00Z").parse::<jiff::Timestamp>().ok().map(|ts| ts.as_millisecond())
}

/// The scoreboard day (`YYYY-MM-DD`) of a tip-off: ESPN groups games by US day, so a 00:30Z tip-off belongs to
/// the previous evening. A fixed five-hour shift matches ESPN's grouping for every US tip-off time.
pub(crate) fn us_day(start_millis: i64) -> String {
    let shifted =
        jiff::Timestamp::from_millisecond(start_millis - 5 * 3_600_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    shifted.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// ESPN's clock display for `seconds` left: `M:SS` from a minute up, `S.s` below.
pub(crate) fn clock_display(seconds: f64) -> String {
    if seconds >= 60.0 {
        let whole = seconds.floor() as i64;
        format!("{}:{:02}", whole / 60, whole % 60)
    } else {
        format!("{:.1}", seconds.max(0.0))
    }
}

/// The store's game-order key of a play: period, then time elapsed in the period (in centiseconds). Ties (plays
/// at the same instant) are ordered by sequence by the store. This reproduces ESPN's array order exactly on
/// every recorded game (period ascending, clock descending, then sequence), late inserts included, without
/// depending on positions in a snapshot that shift when a play is inserted.
pub(crate) fn game_order(period: i32, period_elapsed_seconds: f64) -> i64 {
    i64::from(period.max(0)) * 1_000_000 + (period_elapsed_seconds.max(0.0) * 100.0).round() as i64
}

/// A team's row from an ESPN team object, if it has what the store requires (abbreviation and name).
pub(crate) fn team_row(league: League, team: &Team, updated_at: i64) -> Option<TeamRow> {
    let abbreviation = team.abbreviation.clone().filter(|a| !a.is_empty())?;
    let display_name = team
        .display_name
        .clone()
        .or_else(|| team.short_display_name.clone())
        .or_else(|| team.name.clone())
        .filter(|n| !n.is_empty())?;
    let colour = |c: &Option<String>| {
        c.as_deref()
            .map(|c| c.trim_start_matches('#').to_ascii_lowercase())
            .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    Some(TeamRow {
        league: league.slug().to_owned(),
        id: team.id.clone(),
        abbreviation,
        display_name,
        color: colour(&team.color),
        alternate_color: colour(&team.alternate_color),
        updated_at,
    })
}

/// The key of a team on `ref.teams`: `league:id`, since ids are only unique within a league.
pub(crate) fn team_key(league: &str, team_id: &str) -> String {
    format!("{league}:{team_id}")
}

/// The team as an enriched play shows it.
pub(crate) fn team_info(team: &TeamRow) -> TeamInfo {
    TeamInfo {
        team_id: team.id.clone(),
        abbreviation: team.abbreviation.clone(),
        display_name: team.display_name.clone(),
        color: team.color.clone(),
        alternate_color: team.alternate_color.clone(),
    }
}

/// The home and away team ids of a competition.
pub(crate) fn sides(competition: &Competition) -> (Option<String>, Option<String>) {
    let id = |side: &str| competition.competitor(side).map(|c| c.team_id().to_owned()).filter(|id| !id.is_empty());
    (id("home"), id("away"))
}

/// A scoreboard record for one game: from a scoreboard event or a summary header.
pub(crate) fn scoreboard_event(
    league: League,
    game_id: &str,
    competition: &Competition,
    season: Option<Season>,
    date: Option<&str>,
    fetched_at: i64,
) -> Result<ScoreboardEvent, String> {
    let side = |name: &str| competition.competitor(name).filter(|c| !c.team_id().is_empty());
    let home = side("home").ok_or("no home competitor")?;
    let away = side("away").ok_or("no away competitor")?;
    let start = competition.date.as_deref().or(date).ok_or("no tip-off date")?;
    let start_time = parse_utc_millis(start).ok_or_else(|| format!("tip-off date {start:?} is not a UTC timestamp"))?;
    let status = competition.status.as_ref();
    let state = status.and_then(|s| s.state()).unwrap_or("pre").to_owned();
    let kind = status.and_then(|s| s.kind.as_ref());
    let clock_seconds = status.and_then(|s| s.clock).filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0);
    let season_year = season.and_then(|s| s.year).map_or_else(|| season_of(start_time), |y| y as i32);
    let abbreviation =
        |c: &pbp_espn::model::Competitor| c.team.as_ref().and_then(|t| t.abbreviation.clone()).unwrap_or_default();
    Ok(ScoreboardEvent {
        game_id: game_id.to_owned(),
        league: league.slug().to_owned(),
        season: season_year,
        season_type: season.and_then(|s| s.kind).map_or(2, |k| k as i32),
        date: us_day(start_time),
        start_time,
        status: pbp_avro::GameStatus {
            completed: kind.and_then(|k| k.completed).unwrap_or(state == "post"),
            detail: kind.and_then(|k| k.detail.clone().or_else(|| k.description.clone())).unwrap_or_default(),
            period: status.and_then(|s| s.period).map_or(0, |p| p as i32),
            clock_display: status.and_then(|s| s.display_clock.clone()).unwrap_or_else(|| clock_display(clock_seconds)),
            clock_seconds,
            state,
        },
        home_team_id: home.team_id().to_owned(),
        away_team_id: away.team_id().to_owned(),
        home_abbreviation: abbreviation(home),
        away_abbreviation: abbreviation(away),
        home_score: home.score.map_or(0, |s| s as i32),
        away_score: away.score.map_or(0, |s| s as i32),
        fetched_at,
    })
}

/// The season a tip-off falls in when the feed does not say: NBA-style seasons are named after the year they
/// end in and start in the autumn.
fn season_of(start_millis: i64) -> i32 {
    let date = jiff::Timestamp::from_millisecond(start_millis)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC);
    let year = i32::from(date.year());
    if date.month() >= 9 { year + 1 } else { year }
}

/// A normalized play as the record on `raw.plays`. Plays without a numeric sequence number cannot be ordered
/// or stored, so they are refused with the reason.
pub(crate) fn play_event(
    play: &NormalizedPlay,
    league: League,
    change: ChangeKind,
    teams: (Option<String>, Option<String>),
    fetched_at: i64,
) -> Result<PlayEvent, String> {
    let sequence = play.sequence.ok_or_else(|| format!("play {} has no numeric sequence number", play.play_id))?;
    let sequence =
        i64::try_from(sequence).map_err(|_| format!("play {} sequence {sequence} is too large", play.play_id))?;
    let format = PeriodFormat::for_league(league.slug());
    let period = i32::try_from(play.period).unwrap_or(i32::MAX);
    let clock_seconds = play.clock_seconds.filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0);
    let game_seconds_left = play.game_seconds_left.filter(|s| s.is_finite()).unwrap_or_else(|| {
        let remaining = (format.regulation_periods - period).max(0);
        f64::from(remaining) * format.period_seconds
            + if period <= format.regulation_periods { clock_seconds } else { 0.0 }
    });
    let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    Ok(PlayEvent {
        game_id: play.game_id.clone(),
        play_id: play.play_id.clone(),
        sequence,
        period,
        clock_display: clock_display(clock_seconds),
        clock_seconds,
        game_seconds_left,
        event_type: play.event_type.as_str().to_owned(),
        espn_type_id: play.espn_type_id.clone(),
        espn_type_text: play.espn_type_text.clone(),
        team_id: play.team_id.clone(),
        side: play.side.map(|s| match s {
            pbp_espn::Side::Home => Side::Home,
            pbp_espn::Side::Away => Side::Away,
        }),
        home_score: int(play.home_score),
        away_score: int(play.away_score),
        score_value: int(play.score_value),
        scoring_play: play.scoring_play,
        shooting_play: play.shooting_play,
        shot_value: play.shot_value.map(int),
        coordinate: play.coordinate.map(|c| Coordinate {
            x: i32::try_from(c.x).unwrap_or_default(),
            y: i32::try_from(c.y).unwrap_or_default(),
        }),
        wallclock: play.wallclock.as_deref().and_then(parse_utc_millis),
        participants: play.participants.clone(),
        text: play.text.clone(),
        league: league.slug().to_owned(),
        change,
        fetched_at,
        home_team_id: teams.0,
        away_team_id: teams.1,
    })
}

/// A game row from a scoreboard record.
pub(crate) fn game_row(event: &ScoreboardEvent) -> GameRow {
    GameRow {
        id: event.game_id.clone(),
        league: event.league.clone(),
        season: event.season,
        season_type: event.season_type,
        game_date: event.date.clone(),
        start_time: event.start_time,
        status: game_status(&event.status.state),
        status_detail: event.status.detail.clone(),
        period: event.status.period,
        clock_display: event.status.clock_display.clone(),
        clock_seconds: event.status.clock_seconds,
        completed: event.status.completed,
        home_team_id: event.home_team_id.clone(),
        away_team_id: event.away_team_id.clone(),
        home_score: event.home_score,
        away_score: event.away_score,
        fetched_at: event.fetched_at,
    }
}

fn game_status(state: &str) -> GameStatus {
    state.parse().unwrap_or(GameStatus::Pre)
}

/// A play row from an enriched play (a deletion becomes a row whose `change` is `Delete`). `revision` and
/// `change_number` are the store's to maintain.
pub(crate) fn play_row(e: EnrichedEvent) -> PlayRow {
    PlayRow {
        game_id: e.game_id,
        play_id: e.play_id,
        sequence: e.sequence,
        game_order: game_order(e.period, e.period_elapsed_seconds),
        league: e.league,
        period: e.period,
        clock_display: e.clock_display,
        clock_seconds: e.clock_seconds,
        game_seconds_left: e.game_seconds_left,
        period_elapsed_seconds: e.period_elapsed_seconds,
        game_elapsed_seconds: e.game_elapsed_seconds,
        overtime: e.overtime,
        event_type: e.event_type,
        espn_type_id: e.espn_type_id,
        espn_type_text: e.espn_type_text,
        team_id: e.team_id,
        side: e.side.map(|s| match s {
            Side::Home => pbp_store::Side::Home,
            Side::Away => pbp_store::Side::Away,
        }),
        home_score: e.home_score,
        away_score: e.away_score,
        score_differential: e.score_differential,
        score_value: e.score_value,
        scoring_play: e.scoring_play,
        shooting_play: e.shooting_play,
        shot_value: e.shot_value,
        coordinate: e.coordinate.map(|c| pbp_store::Coordinate { x: c.x, y: c.y }),
        wallclock: e.wallclock,
        participants: e.participants,
        text: e.text,
        change: match e.change {
            ChangeKind::New => PlayChange::New,
            ChangeKind::Update => PlayChange::Update,
            ChangeKind::Delete => PlayChange::Delete,
        },
        fetched_at: e.fetched_at,
        enriched_at: e.enriched_at,
        revision: 1,
        change_number: 0,
    }
}

/// A game-state row from a game state.
pub(crate) fn game_state_row(s: &GameState) -> GameStateRow {
    let counters = |c: &pbp_avro::TeamCounters| TeamCounters {
        team_id: c.team_id.clone(),
        points: c.points,
        field_goals_made: c.field_goals_made,
        field_goals_attempted: c.field_goals_attempted,
        three_pointers_made: c.three_pointers_made,
        three_pointers_attempted: c.three_pointers_attempted,
        free_throws_made: c.free_throws_made,
        free_throws_attempted: c.free_throws_attempted,
        offensive_rebounds: c.offensive_rebounds,
        defensive_rebounds: c.defensive_rebounds,
        turnovers: c.turnovers,
        fouls: c.fouls,
        period_fouls: c.period_fouls,
        timeouts: c.timeouts,
    };
    GameStateRow {
        game_id: s.game_id.clone(),
        league: s.league.clone(),
        status: game_status(&s.status),
        period: s.period,
        clock_display: s.clock_display.clone(),
        clock_seconds: s.clock_seconds,
        home_score: s.home_score,
        away_score: s.away_score,
        home: counters(&s.home),
        away: counters(&s.away),
        last_sequence: s.last_sequence,
        last_play_id: s.last_play_id.clone(),
        last_play_text: s.last_play_text.clone(),
        plays_applied: s.plays_applied,
        updated_at: s.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_precisions() {
        assert_eq!(parse_utc_millis("2024-03-17T22:10:44Z"), Some(1_710_713_444_000));
        assert_eq!(parse_utc_millis("2024-03-17T22:00Z"), Some(1_710_712_800_000));
        assert_eq!(parse_utc_millis("yesterday"), None);
    }

    #[test]
    fn us_day_shifts_late_tip_offs_to_the_evening_before() {
        assert_eq!(us_day(parse_utc_millis("2026-06-11T00:30Z").unwrap()), "2026-06-10");
        assert_eq!(us_day(parse_utc_millis("2024-03-17T22:00Z").unwrap()), "2024-03-17");
    }

    #[test]
    fn clock_like_espn() {
        assert_eq!(clock_display(720.0), "12:00");
        assert_eq!(clock_display(681.0), "11:21");
        assert_eq!(clock_display(53.1), "53.1");
        assert_eq!(clock_display(0.0), "0.0");
    }

    #[test]
    fn game_order_sorts_by_period_then_elapsed_time() {
        assert!(game_order(1, 719.0) < game_order(2, 0.0));
        assert!(game_order(1, 10.0) < game_order(1, 10.5));
        assert_eq!(game_order(1, 10.0), game_order(1, 10.0));
    }

    #[test]
    fn seasons_start_in_the_autumn() {
        assert_eq!(season_of(parse_utc_millis("2024-03-17T22:00Z").unwrap()), 2024);
        assert_eq!(season_of(parse_utc_millis("2024-10-22T23:30Z").unwrap()), 2025);
    }
}
