//! Snapshot diff keyed by play id.
//!
//! ESPN re-sends the whole play list on every fetch, inserts late-logged plays at their game-time position and
//! corrects plays after the fact. A watermark on `sequenceNumber` (what the system we replace did) silently drops
//! every late insert. Instead, per game, [`GameSnapshotState`] remembers a fingerprint of every play id it has
//! emitted; each new snapshot yields:
//!
//! * [`ChangeKind::New`] for ids never seen (late inserts included, flagged [`PlayChange::late_insert`]),
//! * [`ChangeKind::Updated`] for known ids whose content changed (a correction: score, text, type, clock, …),
//! * `vanished` ids that were in the previous snapshot and are not in this one (noted once; if such a play comes
//!   back unchanged before it is deleted it is not emitted again, and if it comes back changed it is an update),
//! * [`ChangeKind::Deleted`] for a play absent from [`GameSnapshotState::delete_after`] consecutive snapshots
//!   (default [`DEFAULT_DELETE_AFTER`], 2; 0 never deletes): ESPN removed it. The change carries the play's last
//!   emitted version. A play back after its deletion is [`ChangeKind::New`] again.
//!
//! One snapshot without the play is not enough: a stale copy of the document from a cache can lack the latest
//! plays for one fetch. And a snapshot with no play at all does not count towards deletions (ESPN serving an
//! empty list mid-game is a fault, not the removal of the whole game).
//!
//! New and updated plays are ordered by feed position, then the deletions by id. One kind of deletion comes first:
//! a new play that takes the sequence number of a play missing from the snapshot *replaces* it (ESPN logged the
//! play again under another id), and the old play is deleted at once, ahead of the new one, since two live plays
//! cannot share a sequence number downstream.
//!
//! # Restart rule
//!
//! The state is rebuilt from the plays already emitted for the game, the latest version per play id (a play whose
//! latest emission is a deletion is left out), via [`GameSnapshotState::restore`] or
//! [`GameSnapshotState::restore_fingerprinted`]. The first snapshot after a restart then emits only what changed
//! while the process was down. The restored fingerprints must be those the plays were emitted with: a play
//! converted back from a stored record (a topic's, or a database row) is not always byte-for-byte the
//! [`NormalizedPlay`] it was made from (a missing clock stored as 0, a timestamp re-formatted), so an emitter that
//! restores from its own output keeps each play's [`fingerprint`] with it. Fingerprints use FNV-1a, whose output is
//! fixed, so they stay valid across restarts and upgrades (on the same platform).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::normalize::NormalizedPlay;

/// Whether a play is new or a correction of one already emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// First time this play id is seen.
    New,
    /// A play id already emitted, with different content.
    Updated,
    /// A play id emitted before and absent from the last [`GameSnapshotState::delete_after`] snapshots: ESPN
    /// removed it.
    Deleted,
}

/// Consecutive snapshots without a play after which it is deleted, by default.
pub const DEFAULT_DELETE_AFTER: u32 = 2;

/// One play to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayChange {
    /// New or updated.
    pub kind: ChangeKind,
    /// Index of the play in the snapshot (feed order); for a deletion, the snapshot's length (the play is in
    /// none of its places).
    pub position: usize,
    /// True for a new play inserted before plays that were already known: ESPN logged it late.
    pub late_insert: bool,
    /// The play (for a deletion, its last emitted version).
    pub play: NormalizedPlay,
}

/// The outcome of one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotDiff {
    /// New and updated plays, in feed order, then deleted plays.
    pub changes: Vec<PlayChange>,
    /// Ids present in the previous snapshot and absent from this one.
    pub vanished: Vec<String>,
    /// Ids that appeared more than once in the snapshot (only the first occurrence counts).
    pub duplicates: Vec<String>,
}

impl SnapshotDiff {
    /// True when there is nothing to emit or note.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.vanished.is_empty() && self.duplicates.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    fingerprint: u64,
    /// In the last snapshot.
    present: bool,
    /// Consecutive counted snapshots without the play.
    absent: u32,
    /// Emitted as deleted, and not back since.
    deleted: bool,
    /// The last version emitted: what a deletion carries.
    play: NormalizedPlay,
}

impl Tracked {
    fn emitted(play: NormalizedPlay, fingerprint: u64) -> Self {
        Tracked { fingerprint, present: true, absent: 0, deleted: false, play }
    }
}

/// Per-game diff state: the fingerprint and last emitted version of every play emitted so far.
#[derive(Debug, Clone)]
pub struct GameSnapshotState {
    plays: HashMap<String, Tracked>,
    delete_after: u32,
}

impl Default for GameSnapshotState {
    fn default() -> Self {
        GameSnapshotState { plays: HashMap::new(), delete_after: DEFAULT_DELETE_AFTER }
    }
}

impl GameSnapshotState {
    /// Empty state for a game never seen before.
    pub fn new() -> GameSnapshotState {
        GameSnapshotState::default()
    }

    /// State rebuilt from plays already emitted (see the module's restart rule). Iterate in emission order: when
    /// a play id occurs more than once, the last version wins, as in a compacted topic.
    pub fn restore<'a>(emitted: impl IntoIterator<Item = &'a NormalizedPlay>) -> GameSnapshotState {
        let plays = emitted
            .into_iter()
            .map(|play| (play.play_id.clone(), Tracked::emitted(play.clone(), fingerprint(play))))
            .collect();
        GameSnapshotState { plays, ..GameSnapshotState::default() }
    }

    /// State rebuilt from plays already emitted, each with the [`fingerprint`] it was emitted with (see the
    /// module's restart rule). When a play id occurs more than once, the last one wins.
    pub fn restore_fingerprinted(emitted: impl IntoIterator<Item = (NormalizedPlay, u64)>) -> GameSnapshotState {
        let plays = emitted
            .into_iter()
            .map(|(play, fingerprint)| (play.play_id.clone(), Tracked::emitted(play, fingerprint)))
            .collect();
        GameSnapshotState { plays, ..GameSnapshotState::default() }
    }

    /// Deletes a play after `snapshots` consecutive snapshots without it (0: never).
    #[must_use]
    pub fn with_delete_after(mut self, snapshots: u32) -> GameSnapshotState {
        self.delete_after = snapshots;
        self
    }

    /// Consecutive snapshots without a play after which it is deleted (0: never).
    pub fn delete_after(&self) -> u32 {
        self.delete_after
    }

    /// Plays missing from the last snapshot and not deleted yet: a collector that stops now would never
    /// delete them.
    pub fn pending_deletions(&self) -> usize {
        if self.delete_after == 0 {
            return 0;
        }
        self.plays.values().filter(|t| !t.present && !t.deleted).count()
    }

    /// Number of distinct play ids known.
    pub fn len(&self) -> usize {
        self.plays.len()
    }

    /// True before anything was emitted or restored.
    pub fn is_empty(&self) -> bool {
        self.plays.is_empty()
    }

    /// Diffs a full snapshot (all plays of the game, in feed order) against the state, and adopts it.
    pub fn apply(&mut self, snapshot: Vec<NormalizedPlay>) -> SnapshotDiff {
        let mut diff = SnapshotDiff::default();
        let mut seen: HashSet<&str> = HashSet::with_capacity(snapshot.len());
        // For each position: is a play known from before present later in this snapshot? Computed back to front.
        let mut known_after = vec![false; snapshot.len()];
        let mut any_known = false;
        for (index, play) in snapshot.iter().enumerate().rev() {
            known_after[index] = any_known;
            any_known |= self.plays.get(&play.play_id).is_some_and(|t| t.present);
        }
        let mut pending: Vec<(usize, ChangeKind, u64)> = Vec::new();
        for (index, play) in snapshot.iter().enumerate() {
            if !seen.insert(play.play_id.as_str()) {
                diff.duplicates.push(play.play_id.clone());
                continue;
            }
            let print = fingerprint(play);
            match self.plays.get(&play.play_id) {
                // Back after its deletion: a new play again.
                None => pending.push((index, ChangeKind::New, print)),
                Some(tracked) if tracked.deleted => pending.push((index, ChangeKind::New, print)),
                Some(tracked) if tracked.fingerprint != print => pending.push((index, ChangeKind::Updated, print)),
                Some(_) => {}
            }
        }
        // A new play that takes the sequence number of a play missing from this snapshot replaces it (ESPN logged
        // the play again under another id): the old one is deleted now, ahead of the new one, rather than after
        // `delete_after` snapshots, since two live plays cannot share a sequence number downstream.
        let mut replaced: HashSet<String> = HashSet::new();
        if self.delete_after > 0 {
            let missing_by_sequence: HashMap<u64, &str> = self
                .plays
                .iter()
                .filter(|(id, t)| !t.deleted && !seen.contains(id.as_str()))
                .filter_map(|(id, t)| t.play.sequence.map(|sequence| (sequence, id.as_str())))
                .collect();
            for (index, kind, _) in &pending {
                let play = &snapshot[*index];
                if *kind == ChangeKind::New
                    && let Some(old) = play.sequence.and_then(|sequence| missing_by_sequence.get(&sequence))
                    && *old != play.play_id
                {
                    replaced.insert((*old).to_owned());
                }
            }
        }
        // An empty snapshot is a fault of the feed, not the removal of every play: it does not count.
        let counts = self.delete_after > 0 && !snapshot.is_empty();
        let mut deleted: Vec<NormalizedPlay> = Vec::new();
        let mut deleted_first: Vec<NormalizedPlay> = Vec::new();
        for (id, tracked) in &mut self.plays {
            let present = seen.contains(id.as_str());
            if tracked.present && !present {
                diff.vanished.push(id.clone());
            }
            tracked.present = present;
            if present {
                tracked.absent = 0;
            } else if replaced.contains(id.as_str()) {
                tracked.deleted = true;
                deleted_first.push(tracked.play.clone());
            } else if counts && !tracked.deleted {
                tracked.absent += 1;
                if tracked.absent >= self.delete_after {
                    tracked.deleted = true;
                    deleted.push(tracked.play.clone());
                }
            }
        }
        diff.vanished.sort();
        let length = snapshot.len();
        diff.changes.extend(deletions(deleted_first, length));
        let mut plays: Vec<Option<NormalizedPlay>> = snapshot.into_iter().map(Some).collect();
        for (position, kind, print) in pending {
            let Some(play) = plays.get_mut(position).and_then(Option::take) else { continue };
            self.plays.insert(play.play_id.clone(), Tracked::emitted(play.clone(), print));
            let late_insert = kind == ChangeKind::New && known_after[position];
            diff.changes.push(PlayChange { kind, position, late_insert, play });
        }
        diff.changes.extend(deletions(deleted, length));
        diff
    }
}

/// Deletion changes for `plays` (their last emitted versions), by play id, placed after a snapshot of `length`.
fn deletions(mut plays: Vec<NormalizedPlay>, length: usize) -> impl Iterator<Item = PlayChange> {
    plays.sort_by(|a, b| a.play_id.cmp(&b.play_id));
    plays.into_iter().map(move |play| PlayChange {
        kind: ChangeKind::Deleted,
        position: length,
        late_insert: false,
        play,
    })
}

/// A hash of everything that makes a play's content; a different fingerprint for the same id is a correction.
/// FNV-1a: the same play has the same fingerprint in every process, so an emitter can store it with the play and
/// restore it after a restart ([`GameSnapshotState::restore_fingerprinted`]).
pub fn fingerprint(play: &NormalizedPlay) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    play.sequence.hash(&mut hasher);
    play.period.hash(&mut hasher);
    play.clock_seconds.map(f64::to_bits).hash(&mut hasher);
    play.event_type.hash(&mut hasher);
    play.espn_type_id.hash(&mut hasher);
    play.team_id.hash(&mut hasher);
    play.home_score.hash(&mut hasher);
    play.away_score.hash(&mut hasher);
    play.score_value.hash(&mut hasher);
    play.scoring_play.hash(&mut hasher);
    play.shooting_play.hash(&mut hasher);
    play.shot_value.hash(&mut hasher);
    play.coordinate.hash(&mut hasher);
    play.wallclock.hash(&mut hasher);
    play.participants.hash(&mut hasher);
    play.text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::EventType;

    fn play(id: &str, home_score: u32) -> NormalizedPlay {
        NormalizedPlay {
            game_id: "1".to_owned(),
            play_id: id.to_owned(),
            sequence: id.parse().ok(),
            period: 1,
            clock_seconds: Some(700.0),
            game_seconds_left: Some(2860.0),
            event_type: EventType::JumpShot,
            espn_type_id: "92".to_owned(),
            espn_type_text: "Jump Shot".to_owned(),
            team_id: Some("19".to_owned()),
            side: None,
            home_score,
            away_score: 0,
            score_value: 0,
            scoring_play: false,
            shooting_play: true,
            shot_value: Some(2),
            coordinate: None,
            wallclock: None,
            participants: Vec::new(),
            text: format!("play {id}"),
        }
    }

    fn ids(diff: &SnapshotDiff) -> Vec<(&str, ChangeKind, bool)> {
        diff.changes.iter().map(|c| (c.play.play_id.as_str(), c.kind, c.late_insert)).collect()
    }

    #[test]
    fn a_new_play_that_takes_a_missing_plays_sequence_replaces_it_at_once() {
        let mut state = GameSnapshotState::new();
        state.apply(vec![play("4", 0), play("5", 0), play("6", 0)]);
        // ESPN re-logs sequence 5 under another id: the old play is deleted first, in the same diff.
        let mut relogged = play("5", 2);
        relogged.play_id = "5b".to_owned();
        let diff = state.apply(vec![play("4", 0), relogged.clone(), play("6", 0)]);
        // (A new play before known ones counts as a late insert.)
        assert_eq!(ids(&diff), [("5", ChangeKind::Deleted, false), ("5b", ChangeKind::New, true)]);
        assert!(state.apply(vec![play("4", 0), relogged.clone(), play("6", 0)]).changes.is_empty());
        // A play still in the feed is not replaced by a newcomer with its number (ESPN's duplicate): it stays.
        let mut twin = play("6", 0);
        twin.play_id = "6b".to_owned();
        let diff = state.apply(vec![play("4", 0), relogged.clone(), play("6", 0), twin]);
        assert_eq!(ids(&diff), [("6b", ChangeKind::New, false)]);
        // With deletions off, nothing is deleted.
        let mut never = GameSnapshotState::new().with_delete_after(0);
        never.apply(vec![play("4", 0), play("5", 0)]);
        let diff = never.apply(vec![play("4", 0), relogged]);
        assert_eq!(ids(&diff), [("5b", ChangeKind::New, false)]);
    }

    #[test]
    fn new_plays_then_nothing() {
        let mut state = GameSnapshotState::new();
        let first = state.apply(vec![play("4", 0), play("5", 0)]);
        assert_eq!(ids(&first), [("4", ChangeKind::New, false), ("5", ChangeKind::New, false)]);
        let again = state.apply(vec![play("4", 0), play("5", 0)]);
        assert!(again.is_empty());
    }

    #[test]
    fn late_inserts_are_emitted_even_with_a_higher_sequence_before_known_plays() {
        let mut state = GameSnapshotState::new();
        state.apply(vec![play("4", 0), play("6", 0)]);
        // "9" is logged late: it sits between 4 and 6, after 7 in the sequence.
        let diff = state.apply(vec![play("4", 0), play("9", 0), play("6", 0), play("7", 0)]);
        assert_eq!(ids(&diff), [("9", ChangeKind::New, true), ("7", ChangeKind::New, false)]);
        assert_eq!(diff.changes[0].position, 1);
    }

    #[test]
    fn corrections_are_updates_and_vanished_plays_are_noted_once() {
        // Deletions off: a vanished play is only noted.
        let mut state = GameSnapshotState::new().with_delete_after(0);
        state.apply(vec![play("4", 0), play("5", 2), play("6", 2)]);
        let diff = state.apply(vec![play("4", 0), play("5", 3)]);
        assert_eq!(ids(&diff), [("5", ChangeKind::Updated, false)]);
        assert_eq!(diff.vanished, ["6"]);
        let quiet = state.apply(vec![play("4", 0), play("5", 3)]);
        assert!(quiet.is_empty(), "{quiet:?}");
        // Back unchanged: not emitted again.
        let back = state.apply(vec![play("4", 0), play("5", 3), play("6", 2)]);
        assert!(back.changes.is_empty());
    }

    #[test]
    fn a_play_absent_from_two_snapshots_is_deleted_once_and_can_come_back() {
        let mut state = GameSnapshotState::new();
        assert_eq!(state.delete_after(), DEFAULT_DELETE_AFTER);
        state.apply(vec![play("4", 0), play("5", 2), play("6", 2)]);
        // Missing once (a stale copy, say): noted, not deleted; back unchanged: nothing.
        let once = state.apply(vec![play("4", 0), play("6", 2)]);
        assert!(once.changes.is_empty() && once.vanished == ["5"], "{once:?}");
        assert_eq!(state.pending_deletions(), 1);
        assert!(state.apply(vec![play("4", 0), play("5", 2), play("6", 2)]).is_empty());
        assert_eq!(state.pending_deletions(), 0);
        // Missing twice in a row: deleted, with its last version.
        state.apply(vec![play("4", 0), play("6", 2)]);
        let gone = state.apply(vec![play("4", 0), play("6", 2)]);
        assert_eq!(ids(&gone), [("5", ChangeKind::Deleted, false)]);
        assert_eq!((gone.changes[0].play.home_score, gone.changes[0].position), (2, 2));
        assert_eq!(state.pending_deletions(), 0);
        // Deleted once only; an empty snapshot does not count.
        assert!(state.apply(vec![play("4", 0), play("6", 2)]).changes.is_empty());
        assert!(state.apply(Vec::new()).changes.is_empty());
        assert!(state.apply(vec![play("4", 0)]).changes.is_empty(), "6 missing once (the empty one did not count)");
        // ESPN restores 5 (as it was): new again; 6 is missing a second time: deleted after the new plays.
        let back = state.apply(vec![play("4", 0), play("5", 2)]);
        assert_eq!(ids(&back), [("5", ChangeKind::New, false), ("6", ChangeKind::Deleted, false)]);
    }

    #[test]
    fn deletions_follow_the_configured_count_and_restored_states() {
        let mut never = GameSnapshotState::new().with_delete_after(0);
        never.apply(vec![play("4", 0), play("5", 0)]);
        for _ in 0..5 {
            assert!(never.apply(vec![play("4", 0)]).changes.is_empty());
        }
        assert_eq!(never.pending_deletions(), 0);
        let mut three = GameSnapshotState::restore(&[play("4", 0), play("5", 1)]).with_delete_after(3);
        assert!(three.apply(vec![play("4", 0)]).changes.is_empty());
        assert!(three.apply(vec![play("4", 0)]).changes.is_empty());
        let gone = three.apply(vec![play("4", 0)]);
        assert_eq!(ids(&gone), [("5", ChangeKind::Deleted, false)]);
        assert_eq!(gone.changes[0].play.home_score, 1, "the restored version");
    }

    #[test]
    fn duplicates_in_a_snapshot_count_once() {
        let mut state = GameSnapshotState::new();
        let diff = state.apply(vec![play("4", 0), play("4", 9)]);
        assert_eq!(ids(&diff), [("4", ChangeKind::New, false)]);
        assert_eq!(diff.duplicates, ["4"]);
    }

    #[test]
    fn restored_state_emits_only_what_changed_while_down() {
        let emitted = vec![play("4", 0), play("5", 2)];
        let mut state = GameSnapshotState::restore(&emitted);
        assert_eq!(state.len(), 2);
        let diff = state.apply(vec![play("4", 0), play("8", 0), play("5", 2), play("6", 4)]);
        assert_eq!(ids(&diff), [("8", ChangeKind::New, true), ("6", ChangeKind::New, false)]);
    }
}
