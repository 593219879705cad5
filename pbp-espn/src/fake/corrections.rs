//! Corrections in live mode: some plays are first served in a preliminary form, then in their recorded form.
//!
//! ESPN corrects plays after publishing them (same play id, different content), and the pipeline must turn that
//! into updates. A replay of recorded files has no such history, so the fake server makes one up,
//! deterministically, with the recorded version as the truth:
//!
//! * **Three logged as a two** ([`CorrectionKind::ThreeLoggedAsTwo`]), one play per game: the first missed
//!   `N-foot three point jumper` (in `sequenceNumber` order) from at most 23 feet — a corner three, where a foot
//!   on the line is a real question — or, if the game has none, the first one from any distance. It is first
//!   served as a missed two: `three point ` dropped from the text (`misses 22-foot jumper`), `pointsAttempted`
//!   2, `shortDescription` `Missed FG`, a college `scoreValue` of 3 (college data carries the attempted value on
//!   misses) 2, and the coordinate one foot closer to the middle (`x` towards 25). A miss scores nothing, so the
//!   running scores of every play stay the recorded ones; only the attempt counters (3-point attempts) change.
//! * **Shot distance off by one foot** ([`CorrectionKind::ShotDistance`]): every other play whose
//!   `sequenceNumber` is a multiple of [`DISTANCE_EVERY`] and whose text gives a distance (`makes 24-foot three
//!   point jumper`). It is first served one foot longer (`25-foot`) in `text` and in `shortText`,
//!   `alternativeText` and `shortAlternativeText` when present, with a real coordinate moved one foot away from
//!   the basket (`x` away from 25, or `y` up when `x` is at the middle or the sideline). Shot value, scores and
//!   type are unchanged.
//!
//! The recorded form replaces the preliminary one [`CORRECTION_DELAY`] of replay time after the play is first
//! revealed, or when the game's replay ends if that comes first; so the finished replay serves the recorded file
//! exactly. A play revealed at the very end of its game is therefore never served preliminary, and is not a
//! correction.

use std::time::Duration;

use serde_json::{Value, json};

use crate::League;

/// Replay time between a corrected play's first, preliminary appearance and its recorded form: three minutes of
/// game wallclock, within the few minutes ESPN takes to fix a play, and longer than the replay steps our tests
/// poll at (so every poll cadence up to this step sees the preliminary form at least once).
pub const CORRECTION_DELAY: Duration = Duration::from_secs(180);

/// Plays whose `sequenceNumber` is a multiple of this, among plays whose text gives a shot distance, get the
/// shot-distance correction (about one in ten shots with a distance).
pub const DISTANCE_EVERY: u64 = 10;

/// A corner three can honestly be a two (the line is 22 feet there); from further out it would not be plausible.
const CORNER_FEET: u32 = 23;

/// What a correction changes, and which plays get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrectionKind {
    /// Every play (but the one chosen for [`CorrectionKind::ThreeLoggedAsTwo`]) whose `sequenceNumber` is a
    /// multiple of [`DISTANCE_EVERY`] and whose text gives a distance (`makes 24-foot three point jumper`) is
    /// first served one foot longer (`25-foot`) in `text`, and in `shortText`, `alternativeText` and
    /// `shortAlternativeText` when present, with a real coordinate one foot further from the basket. Shot value,
    /// type and scores are the recorded ones.
    ShotDistance,
    /// One play per game, the first missed `N-foot three point jumper` (in `sequenceNumber` order) from at most 23
    /// feet (a corner three; if there is none, the first from any distance), is first served as a missed two:
    /// `three point ` dropped from the text, `pointsAttempted` 2, `shortDescription` `Missed FG`, a college
    /// `scoreValue` of 3 on the miss 2, the coordinate one foot towards the middle. The 3-point attempt counters
    /// change; no score does (a miss scores nothing, so later plays' running scores stay the recorded ones).
    ThreeLoggedAsTwo,
}

/// A play the live replay serves first in a preliminary form, then in its recorded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The league.
    pub league: League,
    /// The game.
    pub game_id: String,
    /// The corrected play's id (unchanged by the correction).
    pub play_id: String,
    /// What the preliminary form got wrong.
    pub kind: CorrectionKind,
    /// Replay time at which the play first appears, in its preliminary form.
    pub shown_at: Duration,
    /// Replay time from which the recorded form is served.
    pub corrected_at: Duration,
}

/// A play chosen for correction: its index in the recorded array, its id and its preliminary form.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub(crate) index: usize,
    pub(crate) play_id: String,
    pub(crate) kind: CorrectionKind,
    pub(crate) preliminary: Value,
}

/// The plays of one game (recorded array order) chosen for correction, by the rules in the module docs, in array
/// order. Plays without an id are never chosen: a correction is only a correction under the same id.
pub(crate) fn choose(plays: &[Value]) -> Vec<Chosen> {
    let mut chosen = Vec::new();
    let three = plays
        .iter()
        .enumerate()
        .filter_map(|(index, play)| {
            let feet = missed_three_point_jumper(play)?;
            Some((feet > CORNER_FEET, sequence_of(play).unwrap_or(u64::MAX), index))
        })
        .min()
        .map(|(_, _, index)| index);
    if let Some(index) = three
        && let Some(chosen_three) = chosen_play(plays, index, CorrectionKind::ThreeLoggedAsTwo)
    {
        chosen.push(chosen_three);
    }
    for (index, play) in plays.iter().enumerate() {
        if Some(index) == three || sequence_of(play).is_none_or(|sequence| sequence % DISTANCE_EVERY != 0) {
            continue;
        }
        if let Some(shot) = chosen_play(plays, index, CorrectionKind::ShotDistance) {
            chosen.push(shot);
        }
    }
    chosen.sort_by_key(|chosen| chosen.index);
    chosen
}

fn chosen_play(plays: &[Value], index: usize, kind: CorrectionKind) -> Option<Chosen> {
    let play = plays.get(index)?;
    let play_id = match play.get("id")? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let preliminary = preliminary(play, kind)?;
    Some(Chosen { index, play_id, kind, preliminary })
}

/// ESPN's sequence number of a play (a numeric string, sometimes a number).
pub(crate) fn sequence_of(play: &Value) -> Option<u64> {
    match play.get("sequenceNumber")? {
        Value::String(text) => text.trim().parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// The distance of a missed three-point jumper (`misses 22-foot three point jumper`), if the play is one.
fn missed_three_point_jumper(play: &Value) -> Option<u32> {
    if play.get("scoringPlay").and_then(Value::as_bool) != Some(false)
        || play.get("shootingPlay").and_then(Value::as_bool) == Some(false)
        || play.get("pointsAttempted").and_then(Value::as_u64).is_some_and(|points| points != 3)
    {
        return None;
    }
    let text = play.get("text").and_then(Value::as_str)?;
    let (range, feet) = foot_distance(text)?;
    text[range.end..].starts_with("-foot three point jumper").then_some(feet)
}

/// The preliminary form of `play` for `kind`, or `None` if the play has nothing that rule can change.
pub(crate) fn preliminary(play: &Value, kind: CorrectionKind) -> Option<Value> {
    let mut preliminary = play.clone();
    let object = preliminary.as_object_mut()?;
    match kind {
        CorrectionKind::ShotDistance => {
            let mut changed = false;
            for key in ["text", "shortText", "alternativeText", "shortAlternativeText"] {
                let Some(text) = object.get(key).and_then(Value::as_str) else { continue };
                let Some((range, feet)) = foot_distance(text) else { continue };
                let longer = format!("{}{}{}", &text[..range.start], feet.saturating_add(1), &text[range.end..]);
                object.insert(key.to_owned(), Value::String(longer));
                changed |= key == "text";
            }
            if !changed {
                return None;
            }
            nudge_coordinate(object, away_from_basket);
        }
        CorrectionKind::ThreeLoggedAsTwo => {
            missed_three_point_jumper(play)?;
            for key in ["text", "shortText", "alternativeText", "shortAlternativeText"] {
                let Some(text) = object.get(key).and_then(Value::as_str) else { continue };
                let two = text.replacen("three point jumper", "jumper", 1);
                object.insert(key.to_owned(), Value::String(two));
            }
            if object.contains_key("pointsAttempted") {
                object.insert("pointsAttempted".to_owned(), json!(2));
            }
            if object.get("scoreValue").and_then(Value::as_u64) == Some(3) {
                object.insert("scoreValue".to_owned(), json!(2));
            }
            if object.get("shortDescription").and_then(Value::as_str) == Some("Missed 3PT") {
                object.insert("shortDescription".to_owned(), json!("Missed FG"));
            }
            nudge_coordinate(object, towards_middle);
        }
    }
    Some(preliminary)
}

/// Byte range and value of the first `<digits>-foot` in `text`.
fn foot_distance(text: &str) -> Option<(std::ops::Range<usize>, u32)> {
    let mut from = 0;
    while let Some(found) = text.get(from..)?.find("-foot") {
        let end = from + found;
        // Every byte between `start` and `end` is an ASCII digit, so both are character boundaries.
        let start = text[..end].bytes().rposition(|b| !b.is_ascii_digit()).map_or(0, |p| p + 1);
        if start < end
            && let Ok(feet) = text[start..end].parse()
        {
            return Some((start..end, feet));
        }
        from = end + "-foot".len();
    }
    None
}

/// Half-court grid of FIELDS.md: x 0–49 with the basket at x 25; anything far outside is ESPN's "no location".
const BASKET_X: i64 = 25;
const MAX_X: i64 = 49;

fn nudge_coordinate(play: &mut serde_json::Map<String, Value>, nudge: fn(i64, i64) -> (i64, i64)) {
    let Some(coordinate) = play.get_mut("coordinate").and_then(Value::as_object_mut) else { return };
    let (Some(x), Some(y)) = (coordinate.get("x").and_then(Value::as_i64), coordinate.get("y").and_then(Value::as_i64))
    else {
        return;
    };
    if !(-100..=100).contains(&x) || !(-100..=100).contains(&y) {
        return;
    }
    let (x, y) = nudge(x, y);
    coordinate.insert("x".to_owned(), json!(x));
    coordinate.insert("y".to_owned(), json!(y));
}

fn away_from_basket(x: i64, y: i64) -> (i64, i64) {
    if x > 0 && x < BASKET_X {
        (x - 1, y)
    } else if x > BASKET_X && x < MAX_X {
        (x + 1, y)
    } else {
        (x, y + 1)
    }
}

fn towards_middle(x: i64, y: i64) -> (i64, i64) {
    match x.cmp(&BASKET_X) {
        std::cmp::Ordering::Less => (x + 1, y),
        std::cmp::Ordering::Greater => (x - 1, y),
        std::cmp::Ordering::Equal => (x, y - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(sequence: u64, text: &str, scoring: bool, points: u64) -> Value {
        json!({"id": format!("9{sequence}"), "sequenceNumber": sequence.to_string(), "text": text,
            "scoringPlay": scoring, "shootingPlay": true, "pointsAttempted": points, "scoreValue": 0,
            "shortDescription": if scoring { "+3 Points" } else { "Missed 3PT" },
            "coordinate": {"x": 3, "y": 2}})
    }

    #[test]
    fn distances_are_found_in_text() {
        assert_eq!(foot_distance("A makes 26-foot three point jumper"), Some((8..10, 26)));
        assert_eq!(foot_distance("A makes 1-foot dunk"), Some((8..9, 1)));
        assert_eq!(foot_distance("-foot A 2-foot"), Some((8..9, 2)));
        assert_eq!(foot_distance("Ünï7-foot").map(|(_, feet)| feet), Some(7), "multi-byte text before the digits");
        assert_eq!(foot_distance("A makes driving layup"), None);
        assert_eq!(foot_distance("99999999999-foot"), None);
    }

    #[test]
    fn shot_distance_preliminary_is_one_foot_longer() {
        let play = shot(20, "A makes 26-foot three point jumper (B assists)", true, 3);
        let preliminary = preliminary(&play, CorrectionKind::ShotDistance).unwrap_or_default();
        assert_eq!(preliminary["text"], "A makes 27-foot three point jumper (B assists)");
        assert_eq!(preliminary["coordinate"], json!({"x": 2, "y": 2}));
        assert_eq!(preliminary["pointsAttempted"], 3, "nothing else changes");
        let no_location =
            json!({"id": "1", "text": "A makes 2-foot layup", "coordinate": {"x": -214748340, "y": -214748365}});
        let preliminary = super::preliminary(&no_location, CorrectionKind::ShotDistance).unwrap_or_default();
        assert_eq!(preliminary["coordinate"], no_location["coordinate"]);
        assert!(super::preliminary(&json!({"text": "A makes layup"}), CorrectionKind::ShotDistance).is_none());
    }

    #[test]
    fn a_missed_corner_three_is_first_a_missed_two() {
        let play = shot(7, "A misses 22-foot three point jumper", false, 3);
        let preliminary = preliminary(&play, CorrectionKind::ThreeLoggedAsTwo).unwrap_or_default();
        assert_eq!(preliminary["text"], "A misses 22-foot jumper");
        assert_eq!(preliminary["pointsAttempted"], 2);
        assert_eq!(preliminary["shortDescription"], "Missed FG");
        assert_eq!(preliminary["scoreValue"], 0);
        assert_eq!(preliminary["coordinate"], json!({"x": 4, "y": 2}));
        let made = shot(8, "A makes 22-foot three point jumper", true, 3);
        assert!(super::preliminary(&made, CorrectionKind::ThreeLoggedAsTwo).is_none(), "never touch a score");
    }

    #[test]
    fn choice_is_one_three_and_every_tenth_distance() {
        let plays = [
            shot(10, "A misses 26-foot three point jumper", false, 3),
            shot(12, "A misses 23-foot three point jumper", false, 3),
            shot(15, "A misses 22-foot three point jumper", false, 3),
            shot(20, "A makes 12-foot jumper", true, 2),
            shot(30, "A makes layup", true, 2),
            json!({"sequenceNumber": "40", "text": "A makes 2-foot layup"}),
        ];
        let chosen: Vec<(usize, CorrectionKind)> = choose(&plays).iter().map(|c| (c.index, c.kind)).collect();
        assert_eq!(
            chosen,
            [
                (0, CorrectionKind::ShotDistance),
                (1, CorrectionKind::ThreeLoggedAsTwo),
                (3, CorrectionKind::ShotDistance)
            ],
            "the first corner three; distances on multiples of 10 with a distance and an id"
        );
        assert_eq!(choose(&plays)[1].play_id, "912");
    }
}
