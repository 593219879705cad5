//! Deletions in live mode: plays that ESPN removes from the feed.
//!
//! ESPN sometimes logs a play by mistake and takes it out of the play list a few minutes later, and sometimes
//! takes a real play out for a while and puts it back. A replay of recorded files has no such history, so the
//! fake server makes one up per game, deterministically, with the recorded file as the truth at the end:
//!
//! * **A phantom basket** ([`DeletionKind::Phantom`]): the first made two-point field goal (in `sequenceNumber`
//!   order) is logged twice. The copy gets a new id and a `sequenceNumber` above every recorded one, sits right
//!   after its original (same clock, same running score), appears with it and leaves the feed
//!   [`PHANTOM_SHOWN_FOR`] of replay time later, for good. While it is there, the shooting side has one more
//!   field goal made and attempted.
//! * **A withdrawn foul** ([`DeletionKind::Withdrawn`]): the first foul (its type text says `Foul`, in
//!   `sequenceNumber` order) with a team and no correction leaves the feed [`WITHDRAW_AFTER`] after it is revealed
//!   and comes back unchanged [`WITHDRAWN_FOR`] later.
//!
//! A deletion whose window would not end before the end of the game's replay is not made, so the finished replay
//! still serves the recorded file byte for byte.

use std::time::Duration;

use serde_json::Value;

use super::corrections::sequence_of;
use crate::League;

/// How long the phantom basket stays in the feed: five polls of a collector polling every two minutes of replay
/// time, so that it is seen, then long enough gone to be deleted.
pub const PHANTOM_SHOWN_FOR: Duration = Duration::from_secs(600);

/// How long after its reveal the withdrawn play leaves the feed: longer than a poll two minutes apart, so that a
/// collector sees it before it goes (a play that goes before anyone saw it is no deletion).
pub const WITHDRAW_AFTER: Duration = Duration::from_secs(180);

/// How long the withdrawn play stays out of the feed: more than two polls two minutes apart, so that a collector
/// deleting after two snapshots without a play deletes it, then sees it come back.
pub const WITHDRAWN_FOR: Duration = Duration::from_secs(300);

/// What a deletion does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionKind {
    /// A copy of a made basket, logged by mistake, removed for good.
    Phantom,
    /// A real play taken out of the feed for a while, then put back unchanged.
    Withdrawn,
}

/// A play live mode removes from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The league.
    pub league: League,
    /// The game.
    pub game_id: String,
    /// The play removed (for a phantom, the copy's id, which is in no recorded file).
    pub play_id: String,
    /// Which kind.
    pub kind: DeletionKind,
    /// Replay time from which the play is in the feed (a phantom's first appearance; a withdrawn play's reveal).
    pub shown_at: Duration,
    /// Replay time from which the play is out of the feed.
    pub removed_at: Duration,
    /// Replay time from which a withdrawn play is back (`None` for a phantom, gone for good).
    pub restored_at: Option<Duration>,
}

/// A deletion scheduled in one game's replay, in seconds of replay time.
#[derive(Debug, Clone)]
pub(crate) struct ScheduledDeletion {
    pub(crate) kind: DeletionKind,
    /// The recorded play it follows (a phantom) or removes (withdrawn), as an index of the recorded array.
    pub(crate) index: usize,
    pub(crate) play_id: String,
    /// The phantom play itself.
    pub(crate) phantom: Option<Value>,
    pub(crate) shown_at: f64,
    pub(crate) removed_at: f64,
    pub(crate) restored_at: Option<f64>,
}

impl ScheduledDeletion {
    /// True when the play is out of the feed at `elapsed` (a phantom: also before it appears).
    pub(crate) fn out_at(&self, elapsed: f64) -> bool {
        match self.kind {
            DeletionKind::Phantom => elapsed < self.shown_at || elapsed >= self.removed_at,
            DeletionKind::Withdrawn => {
                elapsed >= self.removed_at && self.restored_at.is_none_or(|restored| elapsed < restored)
            }
        }
    }

    /// How many of the deletion's moments have passed at `elapsed`: with the plays revealed and the corrections
    /// landed, it determines the rendered document.
    pub(crate) fn phase(&self, elapsed: f64) -> usize {
        [Some(self.shown_at), Some(self.removed_at), self.restored_at]
            .into_iter()
            .flatten()
            .filter(|at| *at <= elapsed)
            .count()
    }
}

/// The deletions of one game (recorded array order), by the rules in the module docs. `reveal_at` is each
/// play's reveal time, `end` the end of the replay, `corrected` the indices of plays corrected in live mode.
pub(crate) fn choose(plays: &[Value], reveal_at: &[f64], end: f64, corrected: &[usize]) -> Vec<ScheduledDeletion> {
    let mut chosen = Vec::new();
    let mut order: Vec<usize> = (0..plays.len()).collect();
    order.sort_by_key(|&index| (sequence_of(&plays[index]).unwrap_or(u64::MAX), index));
    let phantom_source = order.iter().copied().find(|&index| made_two(&plays[index]));
    if let Some(index) = phantom_source
        && let Some(shown_at) = reveal_at.get(index).copied()
        && let Some(phantom) = phantom_of(plays, index)
        && let Some(play_id) = id_of(&phantom)
    {
        let removed_at = shown_at + PHANTOM_SHOWN_FOR.as_secs_f64();
        if removed_at < end {
            chosen.push(ScheduledDeletion {
                kind: DeletionKind::Phantom,
                index,
                play_id,
                phantom: Some(phantom),
                shown_at,
                removed_at,
                restored_at: None,
            });
        }
    }
    let withdrawn = order
        .iter()
        .copied()
        .find(|&index| Some(index) != phantom_source && !corrected.contains(&index) && is_team_foul(&plays[index]));
    if let Some(index) = withdrawn
        && let Some(shown_at) = reveal_at.get(index).copied()
        && let Some(play_id) = id_of(&plays[index])
    {
        let removed_at = shown_at + WITHDRAW_AFTER.as_secs_f64();
        let restored_at = removed_at + WITHDRAWN_FOR.as_secs_f64();
        if restored_at < end {
            chosen.push(ScheduledDeletion {
                kind: DeletionKind::Withdrawn,
                index,
                play_id,
                phantom: None,
                shown_at,
                removed_at,
                restored_at: Some(restored_at),
            });
        }
    }
    chosen
}

fn id_of(play: &Value) -> Option<String> {
    match play.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// A made two-point field goal: scored, a shot, two points, not a free throw.
fn made_two(play: &Value) -> bool {
    play.get("scoringPlay").and_then(Value::as_bool) == Some(true)
        && play.get("shootingPlay").and_then(Value::as_bool) != Some(false)
        && play.get("scoreValue").and_then(Value::as_u64) == Some(2)
        && id_of(play).is_some()
}

/// A foul with a team.
fn is_team_foul(play: &Value) -> bool {
    let foul = play
        .pointer("/type/text")
        .and_then(Value::as_str)
        .is_some_and(|text| text.to_ascii_lowercase().contains("foul"));
    foul && play.get("team").is_some() && id_of(play).is_some()
}

/// The copy of `plays[index]`: a `sequenceNumber` above every recorded one, written as the original writes its
/// own (text or number), and an id that no recorded play has.
fn phantom_of(plays: &[Value], index: usize) -> Option<Value> {
    let source = plays.get(index)?;
    let sequence = plays.iter().filter_map(sequence_of).max()?.checked_add(1)?;
    let ids: std::collections::HashSet<String> = plays.iter().filter_map(id_of).collect();
    let base = id_of(source)?;
    let mut id = format!("{base}{sequence}");
    while ids.contains(&id) {
        id.push('1');
    }
    let mut phantom = source.clone();
    let object = phantom.as_object_mut()?;
    let sequence_value = match source.get("sequenceNumber")? {
        Value::Number(_) => Value::from(sequence),
        _ => Value::String(sequence.to_string()),
    };
    object.insert("sequenceNumber".to_owned(), sequence_value);
    let id_value = match source.get("id")? {
        Value::Number(_) => id.parse::<u64>().map(Value::from).unwrap_or(Value::String(id)),
        _ => Value::String(id),
    };
    object.insert("id".to_owned(), id_value);
    Some(phantom)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn play(sequence: u64, kind: &str, scoring: bool, value: u64) -> Value {
        json!({"id": format!("9{sequence}"), "sequenceNumber": sequence.to_string(), "type": {"text": kind},
            "scoringPlay": scoring, "shootingPlay": kind.contains("Shot"), "scoreValue": value, "team": {"id": "1"}})
    }

    #[test]
    fn the_first_made_two_is_copied_and_the_first_uncorrected_foul_withdrawn() {
        let plays = [
            play(3, "Jump Shot", false, 0),
            play(5, "Personal Foul", false, 0),
            play(4, "Jump Shot", true, 2),
            play(8, "Shooting Foul", false, 0),
            play(9, "Jump Shot", true, 2),
        ];
        let reveal = [0.0, 50.0, 10.0, 60.0, 70.0];
        let deletions = choose(&plays, &reveal, 5000.0, &[1]);
        assert_eq!(deletions.len(), 2);
        let phantom = &deletions[0];
        assert_eq!((phantom.kind, phantom.index, phantom.play_id.as_str()), (DeletionKind::Phantom, 2, "9410"));
        let copy = phantom.phantom.clone().unwrap_or_default();
        assert_eq!((copy["sequenceNumber"].as_str(), copy["scoreValue"].as_u64()), (Some("10"), Some(2)));
        assert_eq!((phantom.shown_at, phantom.removed_at), (10.0, 610.0));
        assert!(phantom.out_at(9.0) && !phantom.out_at(10.0) && !phantom.out_at(609.0) && phantom.out_at(610.0));
        // The foul at index 1 is corrected: the next one is withdrawn.
        let withdrawn = &deletions[1];
        assert_eq!((withdrawn.kind, withdrawn.index, withdrawn.play_id.as_str()), (DeletionKind::Withdrawn, 3, "98"));
        assert_eq!((withdrawn.removed_at, withdrawn.restored_at), (240.0, Some(540.0)));
        assert!(!withdrawn.out_at(239.0) && withdrawn.out_at(240.0) && !withdrawn.out_at(540.0));
        assert_eq!((withdrawn.phase(0.0), withdrawn.phase(250.0), withdrawn.phase(600.0)), (0, 2, 3));
        // Too close to the end of the replay: nothing is deleted, so the finished replay is the recorded file.
        assert!(choose(&plays, &reveal, 500.0, &[]).is_empty());
    }
}
