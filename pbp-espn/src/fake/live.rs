//! Live replay of a finished game.
//!
//! Each play gets a reveal time: plays are taken in `sequenceNumber` order (the order ESPN logged them) and each
//! is revealed at its `wallclock` offset from the game's first play, never before a play logged earlier (a
//! running maximum, because wallclocks step backwards now and then). A snapshot shows the revealed plays in the
//! recorded array order. So a play that ESPN logged late (a higher sequence number, placed earlier in the array)
//! appears in a later snapshot, earlier in the array than plays already served: exactly ESPN's late insert.
//!
//! Some plays are corrected (see the `corrections` module for which and how): revealed in a preliminary form,
//! they show their recorded form from [`CORRECTION_DELAY`] later, or from the end of the game's replay if that is
//! sooner. When every play is revealed, every correction has landed and the recorded bytes are served as they are.
//!
//! Some plays leave the feed for a while or for good (see the `deletions` module): a phantom copy of a basket
//! shows up after its original and is taken out, a foul is taken out and put back. Every such window ends before
//! the end of the game's replay.

use bytes::Bytes;
use serde_json::{Value, json};

use super::corrections::{self, CORRECTION_DELAY, CorrectionKind};
use super::deletions::{self, DeletionKind, ScheduledDeletion};
use super::fixtures::{Body, GameDoc};
use super::time::parse_utc_seconds;

/// Reveal and correction schedule of one game's plays.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replay {
    /// Reveal time in game-replay seconds, per index of the recorded array.
    reveal_at: Vec<f64>,
    /// Plays served preliminary for a while, in array order.
    corrections: Vec<ScheduledCorrection>,
    /// Plays taken out of the feed for a while or for good.
    deletions: Vec<ScheduledDeletion>,
}

/// A play served in `preliminary` form from `shown_at` (its reveal) until `corrected_at` (exclusive).
#[derive(Debug, Clone)]
pub(crate) struct ScheduledCorrection {
    pub(crate) index: usize,
    pub(crate) play_id: String,
    pub(crate) kind: CorrectionKind,
    pub(crate) preliminary: Value,
    pub(crate) shown_at: f64,
    pub(crate) corrected_at: f64,
}

impl Replay {
    pub(crate) fn build(plays: &[Value]) -> Replay {
        let reveal_at = reveal_times(plays);
        let end = reveal_at.iter().copied().fold(0.0, f64::max);
        let corrections = corrections::choose(plays)
            .into_iter()
            .filter_map(|chosen| {
                let shown_at = *reveal_at.get(chosen.index)?;
                // Capped at the end so that the finished replay is exactly the recorded file.
                let corrected_at = (shown_at + CORRECTION_DELAY.as_secs_f64()).min(end);
                (corrected_at > shown_at).then_some(ScheduledCorrection {
                    index: chosen.index,
                    play_id: chosen.play_id,
                    kind: chosen.kind,
                    preliminary: chosen.preliminary,
                    shown_at,
                    corrected_at,
                })
            })
            .collect::<Vec<ScheduledCorrection>>();
        let corrected: Vec<usize> = corrections.iter().map(|c| c.index).collect();
        let deletions = deletions::choose(plays, &reveal_at, end, &corrected);
        Replay { reveal_at, corrections, deletions }
    }

    /// Seconds of replay after which every play is revealed.
    pub(crate) fn duration(&self) -> f64 {
        self.reveal_at.iter().copied().fold(0.0, f64::max)
    }

    /// Indices (array order) of the plays revealed after `elapsed` seconds of replay.
    pub(crate) fn visible(&self, elapsed: f64) -> Vec<usize> {
        self.reveal_at.iter().enumerate().filter(|(_, at)| **at <= elapsed).map(|(index, _)| index).collect()
    }

    /// Every scheduled correction, in array order.
    pub(crate) fn corrections(&self) -> &[ScheduledCorrection] {
        &self.corrections
    }

    /// The corrections shown in preliminary form after `elapsed` seconds of replay.
    pub(crate) fn pending(&self, elapsed: f64) -> Vec<&ScheduledCorrection> {
        self.corrections.iter().filter(|c| c.shown_at <= elapsed && elapsed < c.corrected_at).collect()
    }

    /// How many corrections have landed after `elapsed` seconds. With the number of visible plays and the
    /// deletion phase, this determines the rendered document (all three only grow with time), so they key the
    /// render cache.
    pub(crate) fn landed(&self, elapsed: f64) -> usize {
        self.corrections.iter().filter(|c| c.corrected_at <= elapsed).count()
    }

    /// Every scheduled deletion.
    pub(crate) fn deletions(&self) -> &[ScheduledDeletion] {
        &self.deletions
    }

    /// How many moments of the deletions (a phantom shown or removed, a play withdrawn or restored) have passed
    /// after `elapsed` seconds.
    pub(crate) fn deletion_phase(&self, elapsed: f64) -> usize {
        self.deletions.iter().map(|d| d.phase(elapsed)).sum()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.reveal_at.len()
    }
}

/// Reveal time per index of the recorded array (the rule in the module docs).
fn reveal_times(plays: &[Value]) -> Vec<f64> {
    let wallclocks: Vec<Option<i64>> =
        plays.iter().map(|p| p.get("wallclock").and_then(Value::as_str).and_then(parse_utc_seconds)).collect();
    let start = wallclocks.iter().flatten().min().copied().unwrap_or(0);
    let mut order: Vec<usize> = (0..plays.len()).collect();
    // Sequence order; plays without a numeric sequence keep their array position relative to each other.
    order.sort_by_key(|&index| (corrections::sequence_of(&plays[index]).unwrap_or(u64::MAX), index));
    let mut reveal_at = vec![0.0; plays.len()];
    let mut latest = 0.0_f64;
    for index in order {
        if let Some(wallclock) = wallclocks[index] {
            // Offsets of a few hours: exact in f64.
            latest = latest.max((wallclock - start) as f64);
        }
        reveal_at[index] = latest;
    }
    reveal_at
}

/// What the scoreboard and header show for a game at a point of its replay.
#[derive(Debug, Clone)]
pub(crate) struct LiveView {
    pub(crate) status: Value,
    pub(crate) home_score: Option<u64>,
    pub(crate) away_score: Option<u64>,
    pub(crate) finished: bool,
}

/// The view after `visible` plays (indices into `doc.plays`).
pub(crate) fn live_view(doc: &GameDoc, visible: &[usize]) -> LiveView {
    let finished = visible.len() == doc.plays.len();
    let final_status = doc.competition().and_then(|c| c.get("status")).cloned().unwrap_or(Value::Null);
    let last = visible.last().and_then(|&index| doc.plays.get(index));
    let score = |key: &str| last.and_then(|play| play.get(key)).and_then(Value::as_u64);
    let Some(last) = last else {
        let status = json!({"clock": 0.0, "displayClock": "0.0", "period": 0, "type": {
            "id": "1", "name": "STATUS_SCHEDULED", "state": "pre", "completed": false,
            "description": "Scheduled", "detail": "Scheduled", "shortDetail": "Scheduled"}});
        return LiveView { status, home_score: None, away_score: None, finished: false };
    };
    let period = last.pointer("/period/number").and_then(Value::as_u64).unwrap_or(0);
    let period_name = last.pointer("/period/displayValue").and_then(Value::as_str).unwrap_or("");
    let display_clock = last.pointer("/clock/displayValue").and_then(Value::as_str).unwrap_or("0.0");
    let clock = crate::normalize::parse_display_clock(display_clock).unwrap_or(0.0);
    let status = if finished {
        let mut status = final_status;
        if let Some(object) = status.as_object_mut() {
            object.insert("period".to_owned(), json!(period));
            object.insert("clock".to_owned(), json!(clock));
            object.insert("displayClock".to_owned(), json!(display_clock));
        }
        status
    } else {
        json!({"clock": clock, "displayClock": display_clock, "period": period, "type": {
            "id": "2", "name": "STATUS_IN_PROGRESS", "state": "in", "completed": false,
            "description": "In Progress", "detail": format!("{display_clock} - {period_name}"),
            "shortDetail": format!("{display_clock} - {}", ordinal(period))}})
    };
    LiveView { status, home_score: score("homeScore"), away_score: score("awayScore"), finished }
}

/// `1st`, `2nd`, `3rd`, `4th`, … as on ESPN's short status.
fn ordinal(number: u64) -> String {
    let suffix = match (number % 10, number % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{number}{suffix}")
}

/// The game document as ESPN would serve it with only `visible` plays logged, the `pending` ones in their
/// preliminary form, and the `deletions` as they stand at `elapsed`.
pub(crate) fn render_game(
    doc: &GameDoc,
    visible: &[usize],
    pending: &[&ScheduledCorrection],
    deletions: &[ScheduledDeletion],
    elapsed: f64,
) -> Body {
    // Every correction lands by the end of the replay (`Replay::build`), so nothing is pending here.
    if visible.len() == doc.plays.len() {
        return doc.body.clone();
    }
    let view = live_view(doc, visible);
    let mut root = doc.shell.clone();
    if let Some(game) = GameDoc::game_of_mut(doc.kind, &mut root).and_then(Value::as_object_mut) {
        let mut plays: Vec<Value> = Vec::with_capacity(visible.len() + 1);
        for &index in visible {
            let withdrawn =
                deletions.iter().any(|d| d.kind == DeletionKind::Withdrawn && d.index == index && d.out_at(elapsed));
            if !withdrawn {
                let play = match pending.iter().find(|c| c.index == index) {
                    Some(correction) => Some(correction.preliminary.clone()),
                    None => doc.plays.get(index).cloned(),
                };
                plays.extend(play);
            }
            // A phantom is logged right after its original.
            for phantom in deletions.iter().filter(|d| d.kind == DeletionKind::Phantom && d.index == index) {
                if !phantom.out_at(elapsed) {
                    plays.extend(phantom.phantom.clone());
                }
            }
        }
        game.insert("plays".to_owned(), Value::Array(plays));
        if let Some(competition) = game.get_mut("header").and_then(|h| h.pointer_mut("/competitions/0")) {
            apply_view(competition, &view);
        }
    }
    // Serializing a Value we built cannot fail; fall back to the recorded body rather than panic.
    match serde_json::to_vec(&root) {
        Ok(bytes) => Body::new(Bytes::from(bytes)),
        Err(error) => {
            tracing::error!(%error, game_id = %doc.game_id, "Could not render a live snapshot.");
            doc.body.clone()
        }
    }
}

/// Writes status and scores into a competition object (header or scoreboard).
fn apply_view(competition: &mut Value, view: &LiveView) {
    if let Some(object) = competition.as_object_mut() {
        object.insert("status".to_owned(), view.status.clone());
    }
    if let Some(competitors) = competition.get_mut("competitors").and_then(Value::as_array_mut) {
        for competitor in competitors {
            let Some(object) = competitor.as_object_mut() else { continue };
            let score = match object.get("homeAway").and_then(Value::as_str) {
                Some("home") => view.home_score,
                Some("away") => view.away_score,
                _ => None,
            };
            match score {
                Some(score) => {
                    object.insert("score".to_owned(), json!(score.to_string()));
                }
                None => {
                    object.insert("score".to_owned(), json!("0"));
                }
            }
            if !view.finished {
                object.remove("winner");
            }
        }
    }
}

/// A scoreboard event for a game, built from its header at the given view.
pub(crate) fn scoreboard_event(doc: &GameDoc, view: &LiveView) -> Value {
    let mut competition = doc.competition().cloned().unwrap_or_else(|| json!({}));
    apply_view(&mut competition, view);
    let abbreviation = |side: &str| {
        competition
            .get("competitors")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find(|c| c.get("homeAway").and_then(Value::as_str) == Some(side)))
            .and_then(|c| c.pointer("/team/abbreviation"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let short_name = format!("{} @ {}", abbreviation("away"), abbreviation("home"));
    json!({
        "id": doc.game_id,
        "date": competition.get("date").cloned().unwrap_or(Value::Null),
        "name": short_name,
        "shortName": short_name,
        "competitions": [competition],
        "status": view.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(sequence: &str, wallclock: &str) -> Value {
        json!({"sequenceNumber": sequence, "wallclock": wallclock})
    }

    #[test]
    fn late_logged_plays_are_revealed_after_the_plays_logged_before_them() {
        // Array (game) order: 4, 9, 6, 7 — 9 was logged late, after 7.
        let plays = [
            play("4", "2024-03-17T22:00:00Z"),
            play("9", "2024-03-17T22:00:05Z"),
            play("6", "2024-03-17T22:00:10Z"),
            play("7", "2024-03-17T22:00:20Z"),
        ];
        let replay = Replay::build(&plays);
        assert_eq!(replay.visible(0.0), [0]);
        assert_eq!(replay.visible(10.0), [0, 2]);
        assert_eq!(replay.visible(19.0), [0, 2]);
        assert_eq!(replay.visible(20.0), [0, 1, 2, 3], "9 appears with 7, before 6 in the array");
        assert_eq!(replay.duration(), 20.0);
    }

    #[test]
    fn ordinals() {
        assert_eq!([1, 2, 3, 4, 11, 12, 22].map(ordinal), ["1st", "2nd", "3rd", "4th", "11th", "12th", "22nd"]);
    }

    #[test]
    fn backwards_wallclocks_never_reveal_early() {
        let plays = [play("4", "2024-03-17T22:00:30Z"), play("5", "2024-03-17T22:00:10Z"), play("6", "bad")];
        let replay = Replay::build(&plays);
        // Offsets from the earliest wallclock: seq 4 at 20 s, seq 5 at 0 s but logged after 4, seq 6 unknown.
        assert!(replay.visible(19.0).is_empty());
        assert_eq!(replay.visible(20.0), [0, 1, 2]);
        assert_eq!(replay.len(), 3);
    }
}
