//! The per-game state that enrich folds plays into: score, period, clock, status, last play and per-team
//! counters, exact under late inserts, corrections and re-deliveries.
//!
//! * **Score, period, clock, last play** are those of the *latest play in game order* (period, time elapsed,
//!   sequence), not of the last one to arrive: a late-inserted play from earlier in the game does not move the
//!   clock back, and ESPN's running score of the latest play is the game's score.
//! * **Counters** are sums of each play's *contribution* (field goals, threes, free throws, rebounds,
//!   turnovers, fouls, timeouts, by side). The state remembers every applied play's contribution in four bytes,
//!   so a correction first takes back what the earlier version of the play added and a re-delivered play
//!   changes nothing.
//! * **Status** is `pre` before the first play, `in` after it and `post` once an end-of-game play is applied.
//! * **Deletions** (a play with `change` `delete`: ESPN removed it) take the play's contribution back and drop
//!   it from the count; if it was the latest play, score, period, clock and last play fall back to the latest
//!   play that remains. For that the state keeps the display fields of the [`RECENT_PLAYS`] latest plays in game
//!   order (refilled as plays arrive), not of every play, so the changelog stays small: a fall back is exact
//!   unless more than that many of the latest plays are deleted in a row with nothing new in between (then the
//!   state keeps the last display it can vouch for, and says so in the log). A deletion of a play never applied
//!   changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use pbp_avro::{ChangeKind, EnrichedEvent, GameState, Side, TeamCounters};
use serde::{Deserialize, Serialize};

use super::convert::game_order;

/// What one play adds to its side's counters, packed into a `u32` (see [`Contribution::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Contribution(u32);

// Bit layout: counters in the low bits, side in bits 16-17, period in bits 20-27.
const FG_ATTEMPT: u32 = 1 << 0;
const FG_MADE: u32 = 1 << 1;
const THREE_ATTEMPT: u32 = 1 << 2;
const THREE_MADE: u32 = 1 << 3;
const FT_ATTEMPT: u32 = 1 << 4;
const FT_MADE: u32 = 1 << 5;
const OFFENSIVE_REBOUND: u32 = 1 << 6;
const DEFENSIVE_REBOUND: u32 = 1 << 7;
const TURNOVER: u32 = 1 << 8;
const FOUL: u32 = 1 << 9;
const TIMEOUT: u32 = 1 << 10;
const END_GAME: u32 = 1 << 11;
const HOME: u32 = 1 << 16;
const AWAY: u32 = 1 << 17;
const PERIOD_SHIFT: u32 = 20;

impl Contribution {
    fn of(play: &EnrichedEvent) -> Self {
        let mut bits = 0;
        let field_goal = matches!(play.event_type.as_str(), "jump_shot" | "layup" | "dunk" | "hook_shot" | "tip_shot");
        if field_goal && play.shooting_play {
            bits |= FG_ATTEMPT;
            if play.scoring_play {
                bits |= FG_MADE;
            }
            if play.shot_value == Some(3) {
                bits |= THREE_ATTEMPT;
                if play.scoring_play {
                    bits |= THREE_MADE;
                }
            }
        }
        bits |= match play.event_type.as_str() {
            "free_throw" if play.scoring_play => FT_ATTEMPT | FT_MADE,
            "free_throw" => FT_ATTEMPT,
            "offensive_rebound" => OFFENSIVE_REBOUND,
            "defensive_rebound" => DEFENSIVE_REBOUND,
            "bad_pass_turnover"
            | "lost_ball_turnover"
            | "traveling"
            | "offensive_foul_turnover"
            | "shot_clock_turnover"
            | "out_of_bounds_turnover"
            | "backcourt_turnover"
            | "dribble_turnover"
            | "seconds_violation_turnover"
            | "turnover" => TURNOVER,
            // Team fouls: technical fouls do not count towards them.
            "personal_foul" | "shooting_foul" | "offensive_foul" | "loose_ball_foul" | "take_foul"
            | "flagrant_foul" => FOUL,
            "timeout" => TIMEOUT,
            "end_game" => END_GAME,
            _ => 0,
        };
        bits |= match play.side {
            Some(Side::Home) => HOME,
            Some(Side::Away) => AWAY,
            None => 0,
        };
        bits |= (play.period.clamp(0, 255) as u32) << PERIOD_SHIFT;
        Self(bits)
    }

    fn period(self) -> i32 {
        ((self.0 >> PERIOD_SHIFT) & 0xff) as i32
    }

    fn counters(self, c: &mut TeamCounters, sign: i32) {
        let flag = |f: u32| if self.0 & f != 0 { sign } else { 0 };
        c.field_goals_attempted += flag(FG_ATTEMPT);
        c.field_goals_made += flag(FG_MADE);
        c.three_pointers_attempted += flag(THREE_ATTEMPT);
        c.three_pointers_made += flag(THREE_MADE);
        c.free_throws_attempted += flag(FT_ATTEMPT);
        c.free_throws_made += flag(FT_MADE);
        c.offensive_rebounds += flag(OFFENSIVE_REBOUND);
        c.defensive_rebounds += flag(DEFENSIVE_REBOUND);
        c.turnovers += flag(TURNOVER);
        c.fouls += flag(FOUL);
        c.timeouts += flag(TIMEOUT);
    }
}

/// How many of the latest plays in game order the state keeps whole, to fall back to when the latest is deleted.
pub(crate) const RECENT_PLAYS: usize = 32;

/// What the state shows of its latest play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Latest {
    /// Game-order key: `(game_order, sequence)`.
    key: (i64, i64),
    play_id: String,
    sequence: i64,
    period: i32,
    clock_display: String,
    clock_seconds: f64,
    home_score: i32,
    away_score: i32,
    text: String,
}

impl Latest {
    fn of(play: &EnrichedEvent) -> Self {
        Self {
            key: (game_order(play.period, play.period_elapsed_seconds), play.sequence),
            play_id: play.play_id.clone(),
            sequence: play.sequence,
            period: play.period,
            clock_display: play.clock_display.clone(),
            clock_seconds: play.clock_seconds,
            home_score: play.home_score,
            away_score: play.away_score,
            text: play.text.clone(),
        }
    }

    /// What a state restored from a changelog written before the state kept its recent plays shows.
    fn shown_by(state: &GameState, key: (i64, i64)) -> Option<Self> {
        Some(Self {
            key,
            play_id: state.last_play_id.clone()?,
            sequence: state.last_sequence,
            period: state.period,
            clock_display: state.clock_display.clone(),
            clock_seconds: state.clock_seconds,
            home_score: state.home_score,
            away_score: state.away_score,
            text: state.last_play_text.clone()?,
        })
    }

    fn show(&self, state: &mut GameState) {
        state.period = self.period;
        state.clock_display.clone_from(&self.clock_display);
        state.clock_seconds = self.clock_seconds;
        state.home_score = self.home_score;
        state.away_score = self.away_score;
        state.last_sequence = self.sequence;
        state.last_play_id = Some(self.play_id.clone());
        state.last_play_text = Some(self.text.clone());
    }
}

/// A game's accumulated state: the aggregate's state, written to the changelog after each batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct GameAccumulator {
    /// The state as published on `game.state`; `None` before the first play.
    state: Option<GameState>,
    /// Game-order key of the latest play: `(game_order, sequence)`.
    latest: Option<(i64, i64)>,
    /// The latest plays in game order (at most [`RECENT_PLAYS`], ascending), for falling back when the latest is
    /// deleted: every applied play above the lowest of them is among them. `None` in changelogs written before
    /// deletions existed.
    #[serde(default)]
    recent: Option<Vec<Latest>>,
    /// Contribution of every applied play by play id. Shared with the records the aggregate emits, so that
    /// emitting a state does not copy it (the copy is dropped before the next play is applied).
    plays: Arc<HashMap<String, Contribution>>,
    /// Team fouls by period and side (`[home, away]`), for `period_fouls`.
    fouls: Vec<[i32; 2]>,
    /// End-of-game plays applied (a correction can take one back).
    end_games: i32,
}

impl GameAccumulator {
    /// The published state, if a play was applied.
    #[cfg(test)]
    pub(crate) fn state(&self) -> Option<&GameState> {
        self.state.as_ref()
    }

    /// The published state, taken out of the accumulator (the copy the aggregate emits).
    pub(crate) fn into_state(self) -> Option<GameState> {
        self.state
    }

    /// Folds `play` in. Idempotent for a re-delivered play; a correction replaces the play's earlier version; a
    /// deletion takes the play out.
    pub(crate) fn apply(&mut self, play: &EnrichedEvent) {
        if self.recent.is_none() {
            // New, or restored from a changelog of before `recent`: start from what the state shows.
            let shown = self.state.as_ref().zip(self.latest).and_then(|(state, key)| Latest::shown_by(state, key));
            self.recent = Some(shown.into_iter().collect());
        }
        if play.change == ChangeKind::Delete {
            self.delete(play);
            return;
        }
        let contribution = Contribution::of(play);
        let previous = Arc::make_mut(&mut self.plays).insert(play.play_id.clone(), contribution);
        let state = self.state.get_or_insert_with(|| {
            let mut s = GameState::new(play.game_id.clone(), play.league.clone(), play.enriched_at);
            s.home.team_id = Some(play.home_team.team_id.clone()).filter(|id| !id.is_empty());
            s.away.team_id = Some(play.away_team.team_id.clone()).filter(|id| !id.is_empty());
            s
        });
        if previous != Some(contribution) {
            if let Some(old) = previous {
                apply_contribution(state, &mut self.fouls, &mut self.end_games, old, -1);
            }
            apply_contribution(state, &mut self.fouls, &mut self.end_games, contribution, 1);
        }
        // The play's latest version among the recent plays, if it is one of the latest in game order.
        let shown = Latest::of(play);
        let recent = self.recent.get_or_insert_default();
        recent.retain(|r| r.play_id != shown.play_id);
        let at = recent.partition_point(|r| r.key < shown.key);
        // Every applied play but this one is kept: it may go anywhere.
        let complete = recent.len() + 1 >= self.plays.len();
        // Nothing kept although plays remain (more of the latest plays deleted than were kept): a play is the
        // latest if it comes after the last one shown, as before deletions existed.
        let new_latest = recent.is_empty() && self.latest.is_none_or(|latest| shown.key >= latest);
        if at > 0 || (complete && recent.len() < RECENT_PLAYS) || new_latest {
            recent.insert(at, shown);
            if recent.len() > RECENT_PLAYS {
                recent.remove(0);
            }
        }
        self.show_latest(play.enriched_at);
    }

    /// Takes a deleted play out: its contribution, its place among the recent plays, its count.
    fn delete(&mut self, play: &EnrichedEvent) {
        let Some(state) = self.state.as_mut() else { return };
        let Some(contribution) = Arc::make_mut(&mut self.plays).remove(&play.play_id) else {
            // Never applied (or deleted already): nothing to take back.
            return;
        };
        apply_contribution(state, &mut self.fouls, &mut self.end_games, contribution, -1);
        let recent = self.recent.get_or_insert_default();
        let was_latest = recent.last().is_some_and(|r| r.play_id == play.play_id);
        recent.retain(|r| r.play_id != play.play_id);
        if was_latest && recent.is_empty() && !self.plays.is_empty() {
            tracing::warn!(
                game_id = %play.game_id,
                play_id = %play.play_id,
                "The latest play was deleted and no earlier one is kept: the game state shows it until the next play."
            );
        }
        self.show_latest(play.enriched_at);
    }

    /// Shows the latest of the recent plays (or, with none left, keeps what is shown) and derives the rest.
    fn show_latest(&mut self, updated_at: i64) {
        let Some(state) = self.state.as_mut() else { return };
        if self.plays.is_empty() {
            // Every play deleted: back to the state before the first play, counters (all taken back) kept.
            let fresh = GameState::new(state.game_id.clone(), state.league.clone(), updated_at);
            (state.period, state.clock_display, state.clock_seconds) =
                (fresh.period, fresh.clock_display, fresh.clock_seconds);
            (state.home_score, state.away_score, state.last_sequence) = (0, 0, 0);
            (state.last_play_id, state.last_play_text) = (None, None);
            self.latest = None;
            self.recent = Some(Vec::new());
        } else if let Some(latest) = self.recent.as_ref().and_then(|recent| recent.last()) {
            latest.show(state);
            self.latest = Some(latest.key);
        }
        state.home.points = state.home_score;
        state.away.points = state.away_score;
        let period = usize::try_from(state.period).unwrap_or(0);
        let fouls = self.fouls.get(period).copied().unwrap_or_default();
        state.home.period_fouls = fouls[0];
        state.away.period_fouls = fouls[1];
        state.status = if self.end_games > 0 { "post" } else { "in" }.to_owned();
        state.plays_applied = self.plays.len() as i64;
        state.updated_at = updated_at;
    }
}

fn apply_contribution(
    state: &mut GameState,
    fouls: &mut Vec<[i32; 2]>,
    end_games: &mut i32,
    c: Contribution,
    sign: i32,
) {
    let side = if c.0 & HOME != 0 {
        Some(0)
    } else if c.0 & AWAY != 0 {
        Some(1)
    } else {
        None
    };
    match side {
        Some(0) => c.counters(&mut state.home, sign),
        Some(_) => c.counters(&mut state.away, sign),
        None => {}
    }
    if let (Some(side), true) = (side, c.0 & FOUL != 0) {
        let period = usize::try_from(c.period()).unwrap_or(0);
        if fouls.len() <= period {
            fouls.resize(period + 1, [0, 0]);
        }
        fouls[period][side] += sign;
    }
    if c.0 & END_GAME != 0 {
        *end_games += sign;
    }
}

#[cfg(test)]
mod tests {
    use pbp_avro::{ChangeKind, PlayEvent, TeamInfo};

    use super::*;

    fn team(id: &str) -> TeamInfo {
        TeamInfo {
            team_id: id.to_owned(),
            abbreviation: id.to_owned(),
            display_name: id.to_owned(),
            color: None,
            alternate_color: None,
        }
    }

    fn play(
        id: &str,
        sequence: i64,
        clock: f64,
        event_type: &str,
        side: Side,
        scored: bool,
        score: (i32, i32),
    ) -> EnrichedEvent {
        let p = PlayEvent {
            play_id: id.to_owned(),
            sequence,
            period: 1,
            clock_seconds: clock,
            clock_display: super::super::convert::clock_display(clock),
            event_type: event_type.to_owned(),
            side: Some(side),
            scoring_play: scored,
            shooting_play: event_type != "personal_foul",
            shot_value: (event_type == "jump_shot").then_some(3),
            home_score: score.0,
            away_score: score.1,
            ..PlayEvent::example()
        };
        EnrichedEvent::new(p, None, team("19"), team("28"), 1)
    }

    #[test]
    fn latest_play_in_game_order_sets_score_and_clock_and_late_inserts_do_not() {
        let mut acc = GameAccumulator::default();
        acc.apply(&play("a", 4, 700.0, "jump_shot", Side::Home, true, (3, 0)));
        acc.apply(&play("b", 5, 650.0, "jump_shot", Side::Away, false, (3, 0)));
        // Logged late, earlier in the game.
        acc.apply(&play("late", 9, 680.0, "personal_foul", Side::Away, false, (3, 0)));
        let s = acc.state().unwrap();
        assert_eq!((s.clock_seconds, s.last_play_id.as_deref(), s.home_score), (650.0, Some("b"), 3));
        assert_eq!((s.home.three_pointers_made, s.away.three_pointers_attempted, s.away.fouls), (1, 1, 1));
        assert_eq!((s.away.period_fouls, s.plays_applied, s.status.as_str()), (1, 3, "in"));
    }

    #[test]
    fn corrections_replace_and_redeliveries_change_nothing() {
        let mut acc = GameAccumulator::default();
        let missed = play("a", 4, 700.0, "jump_shot", Side::Home, false, (0, 0));
        acc.apply(&missed);
        acc.apply(&missed);
        assert_eq!(acc.state().unwrap().home.field_goals_attempted, 1);
        let mut made = play("a", 4, 700.0, "jump_shot", Side::Home, true, (3, 0));
        made.change = ChangeKind::Update;
        acc.apply(&made);
        let s = acc.state().unwrap();
        assert_eq!((s.home.field_goals_attempted, s.home.field_goals_made, s.home_score), (1, 1, 3));
        assert_eq!(s.plays_applied, 1);
    }

    fn deleted(mut play: EnrichedEvent, at: i64) -> EnrichedEvent {
        play.change = ChangeKind::Delete;
        play.enriched_at = at;
        play
    }

    /// Item C: a deleted play leaves the state exactly as if it had never been applied.
    #[test]
    fn a_deletion_takes_the_play_out_as_if_it_had_never_been_applied() {
        let plays = [
            play("a", 4, 700.0, "jump_shot", Side::Home, true, (3, 0)),
            play("b", 5, 650.0, "personal_foul", Side::Away, false, (3, 0)),
            play("c", 6, 600.0, "jump_shot", Side::Away, true, (3, 3)),
        ];
        // A phantom basket logged after c (the latest play), and a foul logged late, early in the game.
        let phantom = play("phantom", 900, 590.0, "jump_shot", Side::Home, true, (6, 3));
        let late_foul = play("late", 901, 690.0, "personal_foul", Side::Home, false, (3, 0));
        let mut live = GameAccumulator::default();
        for p in plays.iter().chain([&phantom, &late_foul]) {
            live.apply(p);
        }
        let s = live.state().unwrap();
        assert_eq!(
            (s.last_play_id.as_deref(), s.home_score, s.home.field_goals_made, s.home.fouls),
            (Some("phantom"), 6, 2, 1)
        );
        live.apply(&deleted(phantom.clone(), 2));
        live.apply(&deleted(late_foul.clone(), 3));
        let mut truth = GameAccumulator::default();
        for p in &plays {
            truth.apply(p);
        }
        let (live_state, truth_state) = (live.state().unwrap(), truth.state().unwrap());
        assert_eq!(
            GameState { updated_at: 0, ..live_state.clone() },
            GameState { updated_at: 0, ..truth_state.clone() }
        );
        assert_eq!(live_state.updated_at, 3, "a deletion is a change of the state");
        // A re-delivered deletion, and the deletion of a play never applied, change nothing.
        let before = live_state.clone();
        live.apply(&deleted(phantom.clone(), 4));
        live.apply(&deleted(play("never", 902, 10.0, "jump_shot", Side::Home, true, (2, 0)), 4));
        assert_eq!(live.state().unwrap(), &before);
        // ESPN restores the phantom: it counts again, and is the latest play again.
        live.apply(&phantom);
        let s = live.state().unwrap();
        assert_eq!((s.last_play_id.as_deref(), s.home_score, s.plays_applied), (Some("phantom"), 6, 4));
        // A deletion of a play that is not the latest leaves score and clock alone.
        live.apply(&deleted(plays[0].clone(), 5));
        let s = live.state().unwrap();
        assert_eq!((s.last_play_id.as_deref(), s.plays_applied, s.home.field_goals_attempted), (Some("phantom"), 3, 1));
        // Every play deleted: nothing shown, nothing counted.
        for p in plays.iter().skip(1).chain([&phantom]) {
            live.apply(&deleted(p.clone(), 6));
        }
        let s = live.state().unwrap();
        assert_eq!((s.plays_applied, s.home_score, s.last_play_id.as_ref()), (0, 0, None));
        assert_eq!((s.home.field_goals_attempted, s.away.fouls, s.away.field_goals_made), (0, 0, 0));
    }

    #[test]
    fn the_latest_plays_kept_for_deletions_are_bounded_and_survive_the_changelog() {
        let mut acc = GameAccumulator::default();
        for n in 0..200 {
            acc.apply(&play(&format!("p{n}"), n, 700.0 - n as f64, "jump_shot", Side::Home, false, (0, 0)));
        }
        assert_eq!(acc.recent.as_ref().map(Vec::len), Some(RECENT_PLAYS));
        let json = serde_json::to_vec(&acc).unwrap();
        let mut restored: GameAccumulator = serde_json::from_slice(&json).unwrap();
        // Deleting the latest plays, one after another, falls back through the kept ones.
        for n in (190..200).rev() {
            let latest = play(&format!("p{n}"), n, 700.0 - n as f64, "jump_shot", Side::Home, false, (0, 0));
            restored.apply(&deleted(latest, 1));
            assert_eq!(restored.state().unwrap().last_play_id, Some(format!("p{}", n - 1)));
        }
        // A state from a changelog written before deletions existed falls back to what it shows.
        let mut old: serde_json::Value = serde_json::to_value(&acc).unwrap();
        old.as_object_mut().unwrap().remove("recent");
        let mut old: GameAccumulator = serde_json::from_value(old).unwrap();
        old.apply(&play("p200", 200, 400.0, "jump_shot", Side::Home, false, (0, 0)));
        old.apply(&deleted(play("p200", 200, 400.0, "jump_shot", Side::Home, false, (0, 0)), 2));
        assert_eq!(old.state().unwrap().last_play_id.as_deref(), Some("p199"));
    }

    #[test]
    fn end_of_game_finishes_and_survives_the_changelog() {
        let mut acc = GameAccumulator::default();
        acc.apply(&play("a", 4, 700.0, "jump_shot", Side::Home, true, (3, 0)));
        let mut end = play("z", 500, 0.0, "end_game", Side::Home, false, (3, 0));
        end.side = None;
        acc.apply(&end);
        let json = serde_json::to_vec(&acc).unwrap();
        let restored: GameAccumulator = serde_json::from_slice(&json).unwrap();
        assert_eq!(restored.state().unwrap().status, "post");
        assert_eq!(restored.state(), acc.state());
    }
}
