//! One conformance suite, run against every [`Repository`]: the embedded store, PostgreSQL, and both behind
//! the read-through cache (in process, and Redis). PostgreSQL runs when reachable, and must when `PBP_REQUIRE_SERVICES=1`.

mod common;

use anyhow::{Context, ensure};
use common::{game, play, state, team};
use pbp_store::{
    GameStatus, GamesQuery, PlayChange, PlayPosition, PlayRow, PlaysPageQuery, PlaysQuery, PlaysWritten, Repository,
    StoreError, UpsertOutcome,
};

fn outcome(inserted: u64, updated: u64, unchanged: u64) -> UpsertOutcome {
    UpsertOutcome { inserted, updated, unchanged }
}

/// Teams of two leagues (ids overlap across leagues) and two games.
async fn seed(repo: &dyn Repository) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "2", "BOS"), team("nba", "19", "ORL"), team("nba", "18", "NY")]).await?;
    repo.upsert_games(&[game("g1", "2024-03-17", "2", "19"), game("g2", "2024-03-18", "18", "2")]).await?;
    Ok(())
}

async fn teams_are_idempotent_and_keyed_by_league(repo: &dyn Repository) -> anyhow::Result<()> {
    let teams = [team("nba", "2", "BOS"), team("nba", "19", "ORL"), team("wnba", "2", "CHI")];
    assert_eq!(repo.upsert_teams(&teams).await?, outcome(3, 0, 0));
    assert_eq!(repo.upsert_teams(&teams).await?, outcome(0, 0, 3));
    let mut renamed = team("nba", "19", "ORL");
    renamed.display_name = "Orlando Magic".to_owned();
    renamed.updated_at += 1;
    assert_eq!(repo.upsert_teams(&[renamed.clone()]).await?, outcome(0, 1, 0));
    // An older version does not overwrite a newer one.
    assert_eq!(repo.upsert_teams(&[team("nba", "19", "ORL")]).await?, outcome(0, 0, 1));
    let nba = repo.teams(Some("nba")).await?;
    assert_eq!(nba, vec![team("nba", "19", "ORL").clone_with_name(&renamed), team("nba", "2", "BOS")]);
    assert_eq!(repo.teams(None).await?.len(), 3);
    assert_eq!(repo.teams(Some("wnba")).await?, vec![team("wnba", "2", "CHI")]);
    Ok(())
}

trait CloneWithName {
    fn clone_with_name(self, other: &pbp_store::TeamRow) -> pbp_store::TeamRow;
}

impl CloneWithName for pbp_store::TeamRow {
    fn clone_with_name(mut self, other: &pbp_store::TeamRow) -> pbp_store::TeamRow {
        self.display_name = other.display_name.clone();
        self.updated_at = other.updated_at;
        self
    }
}

async fn games_upsert_on_conflict_and_ignore_stale_snapshots(repo: &dyn Repository) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "2", "BOS"), team("nba", "19", "ORL")]).await?;
    let g = game("401585607", "2024-03-17", "19", "2");
    assert_eq!(repo.upsert_games(std::slice::from_ref(&g)).await?, outcome(1, 0, 0));
    assert_eq!(repo.upsert_games(std::slice::from_ref(&g)).await?, outcome(0, 0, 1));
    // Same content fetched later: nothing changes, not even fetched_at.
    let mut refetched = g.clone();
    refetched.fetched_at += 10;
    assert_eq!(repo.upsert_games(&[refetched]).await?, outcome(0, 0, 1));
    assert_eq!(repo.game("401585607").await?, Some(g.clone()));
    let mut live = g.clone();
    live.status = GameStatus::In;
    live.period = 2;
    live.home_score = 50;
    live.away_score = 48;
    live.fetched_at += 60_000;
    assert_eq!(repo.upsert_games(&[live.clone()]).await?, outcome(0, 1, 0));
    // A snapshot older than the stored one is ignored.
    let mut stale = g.clone();
    stale.home_score = 3;
    assert_eq!(repo.upsert_games(&[stale]).await?, outcome(0, 0, 1));
    assert_eq!(repo.game("401585607").await?, Some(live));
    assert_eq!(repo.game("nope").await?, None);
    Ok(())
}

async fn games_refuse_unknown_teams_and_invalid_rows(repo: &dyn Repository) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "2", "BOS"), team("nba", "19", "ORL")]).await?;
    let err = repo.upsert_games(&[game("g1", "2024-03-17", "2", "19"), game("g2", "2024-03-17", "2", "99")]).await;
    match err {
        Err(StoreError::UnknownTeam { game_id, league, team_id }) => {
            assert_eq!((game_id.as_str(), league.as_str(), team_id.as_str()), ("g2", "nba", "99"));
        }
        other => anyhow::bail!("expected UnknownTeam, got {other:?}"),
    }
    // A team of another league with the same id does not count.
    repo.upsert_teams(&[team("wnba", "77", "LVA")]).await?;
    ensure!(matches!(
        repo.upsert_games(&[game("g3", "2024-03-17", "2", "77")]).await,
        Err(StoreError::UnknownTeam { .. })
    ));
    let err = repo.upsert_games(&[game("g4", "2024-03-17", "2", "2")]).await;
    ensure!(matches!(&err, Err(StoreError::Invalid { table: "games", key, .. }) if key == "g4"), "{err:?}");
    let err = repo.upsert_games(&[game("g5", "17/03/2024", "2", "19")]).await;
    ensure!(matches!(&err, Err(StoreError::Invalid { table: "games", .. })), "{err:?}");
    // Nothing of the refused batches landed.
    ensure!(repo.games(&GamesQuery::default()).await?.is_empty());
    Ok(())
}

async fn plays_are_idempotent_and_corrections_update_in_place(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    // The store numbers each play's change: the first write gives the plays 1 to 300, in batch order.
    let plays: Vec<_> = (0..300).map(|n| PlayRow { change_number: n + 1, ..play("g1", n) }).collect();
    assert_eq!(repo.upsert_plays(&plays).await?, outcome(300, 0, 0));
    assert_eq!(repo.plays("g1", &PlaysQuery::default()).await?, plays, "every column round-trips");
    assert_eq!(repo.upsert_plays(&plays).await?, outcome(0, 0, 300));
    // Re-delivered with new delivery metadata but the same content: nothing changes.
    let redelivered: Vec<_> = plays
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.fetched_at += 1000;
            p.enriched_at += 1000;
            p.change = PlayChange::Update;
            p
        })
        .collect();
    assert_eq!(repo.upsert_plays(&redelivered).await?, outcome(0, 0, 300));
    assert_eq!(repo.plays("g1", &PlaysQuery::default()).await?, plays);
    // A correction replaces the row in place and bumps its revision.
    let mut corrected = play("g1", 10);
    corrected.text = "Corrected: 3-pointer".to_owned();
    corrected.score_value = 3;
    corrected.scoring_play = true;
    corrected.participants = vec!["1".to_owned(), "2".to_owned()];
    corrected.coordinate = None;
    corrected.change = PlayChange::Update;
    corrected.fetched_at += 5000;
    assert_eq!(repo.upsert_plays(&[corrected.clone()]).await?, outcome(0, 1, 0));
    let stored = repo.plays("g1", &PlaysQuery::default()).await?;
    assert_eq!(stored.len(), 300);
    let mut expected = corrected.clone();
    expected.revision = 2;
    expected.change_number = 301;
    assert_eq!(stored[10], expected);
    // An older delivery of the play does not undo the correction.
    assert_eq!(repo.upsert_plays(&[play("g1", 10)]).await?, outcome(0, 0, 1));
    assert_eq!(repo.plays("g1", &PlaysQuery::default()).await?[10], expected);
    // Two versions of one key in one batch: the last one wins.
    let mut v1 = play("g1", 20);
    v1.text = "first".to_owned();
    v1.fetched_at += 10_000;
    let mut v2 = v1.clone();
    v2.text = "second".to_owned();
    assert_eq!(repo.upsert_plays(&[v1, v2, play("g1", 300)]).await?, outcome(1, 1, 1));
    let stored = repo.plays("g1", &PlaysQuery::default()).await?;
    assert_eq!(stored[20].text, "second");
    assert_eq!(stored[20].revision, 2);
    assert_eq!(stored.len(), 301);
    Ok(())
}

async fn play_writes_name_what_they_inserted_or_changed(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    let revisions = |written: &PlaysWritten| {
        let mut named: Vec<(String, i64)> =
            written.changed.iter().map(|c| (format!("{}/{}", c.game_id, c.play_id), c.revision)).collect();
        named.sort();
        named
    };
    let plays: Vec<_> = (0..3).map(|n| play("g1", n)).collect();
    let written = repo.upsert_plays_with_changes(&plays).await?;
    assert_eq!(written.outcome, outcome(3, 0, 0));
    assert_eq!(revisions(&written), vec![("g1/g13".into(), 1), ("g1/g14".into(), 1), ("g1/g15".into(), 1)]);
    let mut numbers: Vec<i64> = written.changed.iter().map(|c| c.change_number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3]);
    ensure!(written.changed.iter().all(|c| !c.deleted));
    // A re-delivery names nothing; a correction names the play with its new revision, next to a new play.
    let written = repo.upsert_plays_with_changes(&plays).await?;
    assert_eq!((written.outcome, written.changed.len()), (outcome(0, 0, 3), 0));
    let mut corrected = play("g1", 1);
    corrected.text = "Corrected".to_owned();
    corrected.fetched_at += 1;
    let written = repo.upsert_plays_with_changes(&[plays[0].clone(), corrected, play("g1", 3)]).await?;
    assert_eq!(written.outcome, outcome(1, 1, 1));
    assert_eq!(revisions(&written), vec![("g1/g14".into(), 2), ("g1/g16".into(), 1)]);
    Ok(())
}

async fn plays_refuse_unknown_games_and_invalid_rows_atomically(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    let mut batch: Vec<_> = (0..50).map(|n| play("g1", n)).collect();
    batch.push(play("ghost", 7));
    match repo.upsert_plays(&batch).await {
        Err(StoreError::UnknownGame { table: "plays", key, game_id }) => {
            assert_eq!(game_id, "ghost");
            assert_eq!(key, "ghost/ghost10");
        }
        other => anyhow::bail!("expected UnknownGame, got {other:?}"),
    }
    ensure!(repo.plays("g1", &PlaysQuery::default()).await?.is_empty(), "a refused batch writes nothing");
    let mut bad = play("g1", 3);
    bad.score_value = 7;
    let err = repo.upsert_plays(&[play("g1", 1), bad]).await;
    ensure!(matches!(&err, Err(StoreError::Invalid { table: "plays", key, .. }) if key == "g1/g16"), "{err:?}");
    let mut bad = play("g1", 3);
    bad.score_differential += 1;
    ensure!(matches!(repo.upsert_plays(&[bad]).await, Err(StoreError::Invalid { .. })));
    let mut bad = play("g1", 3);
    bad.period = 0;
    ensure!(matches!(repo.upsert_plays(&[bad]).await, Err(StoreError::Invalid { .. })));
    let mut bad = play("g1", 3);
    bad.clock_seconds = f64::NAN;
    ensure!(matches!(repo.upsert_plays(&[bad]).await, Err(StoreError::Invalid { .. })));
    // A rule only the database checks (one sequence per game), late in a large batch: the whole batch rolls
    // back, including the chunks already written.
    let mut batch: Vec<_> = (0..2500).map(|n| play("g1", n)).collect();
    let mut clash = play("g1", 1);
    clash.play_id = "other-id".to_owned();
    batch.push(clash);
    let err = repo.upsert_plays(&batch).await;
    ensure!(matches!(&err, Err(StoreError::Constraint { table: "plays", .. })), "{err:?}");
    ensure!(repo.plays("g1", &PlaysQuery::default()).await?.is_empty(), "the batch is one transaction");
    Ok(())
}

async fn plays_come_back_in_game_order(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    // Game order differs from sequence order: a late-logged play (high sequence) sits early in the game.
    let mut plays: Vec<_> = (0..40)
        .map(|n| {
            let mut p = play("g1", n);
            p.game_order = n * 10;
            p
        })
        .collect();
    let mut late = play("g1", 500);
    late.game_order = 55; // between plays 5 and 6
    plays.push(late);
    // Same game order: sequence breaks the tie.
    let mut tie = play("g1", 501);
    tie.game_order = 100; // same as play 10
    plays.push(tie);
    plays.reverse(); // arrival order must not matter
    repo.upsert_plays(&plays).await?;
    // And a play of another game does not leak in.
    repo.upsert_plays(&[play("g2", 1)]).await?;
    let seqs = |rows: &[pbp_store::PlayRow]| rows.iter().map(|p| p.sequence).collect::<Vec<_>>();
    let all = repo.plays("g1", &PlaysQuery::default()).await?;
    let mut expected: Vec<i64> = (0..40).map(|n| n + 3).collect();
    expected.insert(6, 503);
    expected.insert(12, 504);
    assert_eq!(seqs(&all), expected);
    let limited = repo.plays("g1", &PlaysQuery { limit: Some(7), ..PlaysQuery::default() }).await?;
    assert_eq!(seqs(&limited), expected[..7]);
    // `since` a sequence: what a client that saw up to sequence 30 lacks, in game order (late plays included).
    let since = repo.plays("g1", &PlaysQuery { since: Some(30), ..PlaysQuery::default() }).await?;
    let want: Vec<i64> = expected.iter().copied().filter(|s| *s > 30).collect();
    assert_eq!(seqs(&since), want);
    let since_limited =
        repo.plays("g1", &PlaysQuery { since: Some(30), limit: Some(3), ..PlaysQuery::default() }).await?;
    assert_eq!(seqs(&since_limited), want[..3]);
    // With corrections: also the corrected plays at or below 30, in game order.
    let mut corrected = play("g1", 4); // sequence 7
    corrected.game_order = 40;
    corrected.text = "corrected".to_owned();
    repo.upsert_plays(&[corrected]).await?;
    let resume = PlaysQuery { since: Some(30), corrections: true, ..PlaysQuery::default() };
    let mut want_resume: Vec<i64> = expected.iter().copied().filter(|s| *s > 30 || *s == 7).collect();
    assert_eq!(seqs(&repo.plays("g1", &resume).await?), want_resume);
    assert_eq!(seqs(&repo.plays("g1", &PlaysQuery { since: Some(30), ..PlaysQuery::default() }).await?), want);
    want_resume.truncate(2);
    assert_eq!(seqs(&repo.plays("g1", &PlaysQuery { limit: Some(2), ..resume }).await?), want_resume);
    let last = repo.last_plays("g1", 5).await?;
    assert_eq!(seqs(&last), expected[expected.len() - 5..]);
    assert_eq!(repo.last_plays("g1", 0).await?.len(), 0);
    assert_eq!(repo.last_plays("g1", 1000).await?.len(), 42);
    ensure!(repo.plays("none", &PlaysQuery::default()).await?.is_empty());
    Ok(())
}

/// Item B and C in the store: every change to a game's plays (insert, correction, deletion, restore) gets the next
/// change number of the game; tombstones leave the reads of plays and stay in the change feed.
async fn changes_are_numbered_and_deletions_leave_tombstones(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    assert_eq!(repo.change_number("g1").await?, Some(0));
    assert_eq!(repo.change_number("nope").await?, None);
    let plays: Vec<_> = (0..10).map(|n| play("g1", n)).collect();
    repo.upsert_plays(&plays).await?;
    repo.upsert_plays(&[play("g2", 0)]).await?;
    assert_eq!((repo.change_number("g1").await?, repo.change_number("g2").await?), (Some(10), Some(1)));
    // A re-delivery changes nothing, not even the counter.
    repo.upsert_plays(&plays).await?;
    assert_eq!(repo.change_number("g1").await?, Some(10));
    let ids = |rows: &[PlayRow]| rows.iter().map(|p| p.play_id.clone()).collect::<Vec<_>>();
    ensure!(repo.play_changes("g1", 10, None).await?.is_empty());
    // A correction, then a deletion (the row carries the play's last content), in one batch each.
    let mut corrected = play("g1", 4);
    corrected.text = "corrected".to_owned();
    corrected.fetched_at += 10;
    repo.upsert_plays(&[corrected.clone()]).await?;
    let mut deletion = play("g1", 2);
    deletion.change = PlayChange::Delete;
    deletion.fetched_at += 20;
    let written = repo.upsert_plays_with_changes(&[deletion.clone()]).await?;
    assert_eq!(written.outcome, outcome(0, 1, 0));
    ensure!(written.changed.len() == 1 && written.changed[0].deleted && written.changed[0].change_number == 12);
    assert_eq!(repo.change_number("g1").await?, Some(12));
    // Reads skip the tombstone; the feed has both changes, in change order, the tombstone marked.
    let live = repo.plays("g1", &PlaysQuery::default()).await?;
    assert_eq!(live.len(), 9);
    ensure!(!ids(&live).contains(&"g15".to_owned()));
    ensure!(!ids(&repo.last_plays("g1", 100).await?).contains(&"g15".to_owned()));
    let feed = repo.play_changes("g1", 10, None).await?;
    assert_eq!(ids(&feed), ["g17", "g15"]);
    assert_eq!((feed[0].change_number, feed[0].text.as_str(), feed[0].revision), (11, "corrected", 2));
    ensure!(feed[1].is_deleted() && feed[1].change_number == 12 && feed[1].revision == 2);
    assert_eq!(ids(&repo.play_changes("g1", 0, Some(3)).await?), ["g13", "g14", "g16"]);
    // A re-delivered deletion, and an older delivery of the play, change nothing.
    assert_eq!(repo.upsert_plays(&[deletion.clone()]).await?, outcome(0, 0, 1));
    assert_eq!(repo.upsert_plays(&[play("g1", 2)]).await?, outcome(0, 0, 1));
    assert_eq!(repo.change_number("g1").await?, Some(12));
    // The tombstone does not hold its sequence: another play may take it.
    let mut reuse = play("g1", 2);
    reuse.play_id = "reused".to_owned();
    reuse.fetched_at += 30;
    assert_eq!(repo.upsert_plays(&[reuse.clone()]).await?, outcome(1, 0, 0));
    repo.upsert_plays(&[PlayRow { change: PlayChange::Delete, fetched_at: reuse.fetched_at + 1, ..reuse }]).await?;
    // ESPN restores the play, with its old content: back, at a new revision and change number.
    let mut restored = play("g1", 2);
    restored.fetched_at += 40;
    assert_eq!(repo.upsert_plays(&[restored]).await?, outcome(0, 1, 0));
    let back = repo.plays("g1", &PlaysQuery::default()).await?;
    let g15 = back.iter().find(|p| p.play_id == "g15").context("restored")?;
    assert_eq!((g15.revision, g15.change_number, g15.change), (3, 15, PlayChange::New));
    // A deletion of a play never stored leaves a tombstone: the play's late, older delivery stays out.
    let mut unknown = play("g1", 50);
    unknown.change = PlayChange::Delete;
    unknown.fetched_at += 100;
    assert_eq!(repo.upsert_plays(&[unknown]).await?, outcome(1, 0, 0));
    assert_eq!(repo.upsert_plays(&[play("g1", 50)]).await?, outcome(0, 0, 1));
    ensure!(!ids(&repo.plays("g1", &PlaysQuery::default()).await?).contains(&"g153".to_owned()));
    // In one batch the last version of a key wins, deletion or not.
    let mut gone = play("g1", 60);
    gone.change = PlayChange::Delete;
    gone.fetched_at += 1;
    repo.upsert_plays(&[play("g1", 60), gone, play("g1", 61)]).await?;
    let live = ids(&repo.plays("g1", &PlaysQuery::default()).await?);
    ensure!(!live.contains(&"g163".to_owned()) && live.contains(&"g164".to_owned()), "{live:?}");
    // Change numbers are per game.
    assert_eq!(repo.change_number("g2").await?, Some(1));
    Ok(())
}

/// Keyset pages of a snapshot: in game order, each play once, and only plays unchanged since the snapshot's
/// change number.
async fn pages_are_keyset_pages_of_a_snapshot(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    let plays: Vec<_> = (0..7).map(|n| play("g1", n)).collect();
    repo.upsert_plays(&plays).await?;
    let first = repo.plays_page("g1", &PlaysPageQuery { as_of: None, after: None, limit: 3 }).await?;
    assert_eq!(first.as_of, 7);
    let seqs = |rows: &[PlayRow]| rows.iter().map(|p| p.sequence).collect::<Vec<_>>();
    assert_eq!(seqs(&first.plays), [3, 4, 5]);
    // Meanwhile: a correction of a play not read yet, and a late insert before the position reached.
    let mut corrected = play("g1", 5);
    corrected.text = "corrected".to_owned();
    corrected.fetched_at += 1;
    let mut late = play("g1", 100);
    late.game_order = 1;
    repo.upsert_plays(&[corrected, late]).await?;
    let after = first.plays.last().map(PlayRow::position);
    let second = repo.plays_page("g1", &PlaysPageQuery { as_of: Some(first.as_of), after, limit: 3 }).await?;
    assert_eq!(seqs(&second.plays), [6, 7, 9], "the corrected play (8) left the snapshot, the late one is not in it");
    let after = second.plays.last().map(PlayRow::position);
    let third = repo.plays_page("g1", &PlaysPageQuery { as_of: Some(7), after, limit: 3 }).await?;
    ensure!(third.plays.is_empty());
    // The change feed after the snapshot has the two.
    assert_eq!(seqs(&repo.play_changes("g1", 7, None).await?), [8, 103]);
    let position = PlayPosition { game_order: 2, sequence: 5 };
    let from = repo.plays_page("g1", &PlaysPageQuery { as_of: Some(100), after: Some(position), limit: 100 }).await?;
    assert_eq!(seqs(&from.plays), [6, 7, 8, 9]);
    let none = repo.plays_page("nope", &PlaysPageQuery { as_of: None, after: None, limit: 10 }).await?;
    ensure!(none.as_of == 0 && none.plays.is_empty());
    Ok(())
}

async fn thousands_of_plays_in_one_batch(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    let plays: Vec<_> = ["g1", "g2"].iter().flat_map(|g| (0..3000).map(move |n| play(g, n))).collect();
    let started = std::time::Instant::now();
    assert_eq!(repo.upsert_plays(&plays).await?, outcome(6000, 0, 0));
    let first = started.elapsed();
    let started = std::time::Instant::now();
    assert_eq!(repo.upsert_plays(&plays).await?, outcome(0, 0, 6000));
    eprintln!("6000 plays: insert {first:?}, identical re-delivery {:?}", started.elapsed());
    let stored = repo.plays("g2", &PlaysQuery::default()).await?;
    assert_eq!(stored.len(), 3000);
    let numbered: Vec<_> =
        plays[3000..].iter().zip(1..).map(|(p, n)| PlayRow { change_number: n, ..p.clone() }).collect();
    assert_eq!(stored, numbered);
    Ok(())
}

async fn game_states_upsert_with_counters(repo: &dyn Repository) -> anyhow::Result<()> {
    seed(repo).await?;
    let s1 = state("g1", GameStatus::In, 100, 1_000);
    assert_eq!(repo.upsert_game_states(&[s1.clone(), state("g2", GameStatus::Pre, 0, 1_000)]).await?, outcome(2, 0, 0));
    assert_eq!(repo.game_state("g1").await?, Some(s1.clone()));
    assert_eq!(repo.upsert_game_states(std::slice::from_ref(&s1)).await?, outcome(0, 0, 1));
    let mut s2 = state("g1", GameStatus::Post, 480, 2_000);
    s2.home.fouls = 20;
    s2.away.team_id = Some("19".to_owned());
    s2.away.timeouts = 7;
    s2.last_play_id = None;
    s2.last_play_text = None;
    assert_eq!(repo.upsert_game_states(&[s2.clone()]).await?, outcome(0, 1, 0));
    assert_eq!(repo.game_state("g1").await?, Some(s2.clone()));
    // An older state is ignored, counters included.
    let mut old = state("g1", GameStatus::In, 200, 1_500);
    old.home.fouls = 1;
    old.home.period_fouls = 1;
    assert_eq!(repo.upsert_game_states(&[old]).await?, outcome(0, 0, 1));
    assert_eq!(repo.game_state("g1").await?, Some(s2));
    assert_eq!(repo.game_state("g3").await?, None);
    let err = repo.upsert_game_states(&[state("g3", GameStatus::In, 1, 1)]).await;
    ensure!(
        matches!(&err, Err(StoreError::UnknownGame { table: "game_states", game_id, .. }) if game_id == "g3"),
        "{err:?}"
    );
    let mut bad = state("g1", GameStatus::In, 1, 9_000);
    bad.home.field_goals_attempted = 1;
    ensure!(matches!(repo.upsert_game_states(&[bad]).await, Err(StoreError::Invalid { .. })));
    Ok(())
}

async fn games_queries(repo: &dyn Repository) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "1", "ATL"), team("nba", "2", "BOS"), team("wnba", "1", "ATL")]).await?;
    let mut games = Vec::new();
    for i in 0..6 {
        let mut g = game(&format!("d1-{i}"), "2024-03-17", "1", "2");
        g.start_time += (6 - i) * 60_000; // start order is the reverse of id order
        g.status = if i < 2 { GameStatus::Post } else { GameStatus::In };
        games.push(g);
    }
    let mut other_day = game("d2-0", "2024-03-18", "2", "1");
    other_day.status = GameStatus::Pre;
    games.push(other_day);
    let mut wnba = game("w-0", "2024-03-17", "1", "2");
    wnba.league = "wnba".to_owned();
    // Only wnba team "1" exists; wnba "2" does not.
    ensure!(matches!(repo.upsert_games(&[wnba.clone()]).await, Err(StoreError::UnknownTeam { .. })));
    repo.upsert_teams(&[team("wnba", "2", "CHI")]).await?;
    games.push(wnba);
    assert_eq!(repo.upsert_games(&games).await?.inserted, 8);
    let ids = |rows: Vec<pbp_store::GameRow>| rows.into_iter().map(|g| g.id).collect::<Vec<_>>();
    let day = GamesQuery { date: Some("2024-03-17".to_owned()), ..Default::default() };
    assert_eq!(ids(repo.games(&day).await?), ["w-0", "d1-5", "d1-4", "d1-3", "d1-2", "d1-1", "d1-0"]);
    let nba_day = GamesQuery { league: Some("nba".to_owned()), ..day.clone() };
    assert_eq!(repo.games(&nba_day).await?.len(), 6);
    let finals = GamesQuery { status: Some(GameStatus::Post), ..nba_day.clone() };
    assert_eq!(ids(repo.games(&finals).await?), ["d1-1", "d1-0"]);
    let live = GamesQuery { status: Some(GameStatus::In), limit: Some(2), ..Default::default() };
    assert_eq!(ids(repo.games(&live).await?), ["d1-5", "d1-4"]);
    let pre = GamesQuery { status: Some(GameStatus::Pre), ..Default::default() };
    assert_eq!(ids(repo.games(&pre).await?), ["d2-0", "w-0"]);
    assert_eq!(repo.games(&GamesQuery::default()).await?.len(), 8);
    let none = GamesQuery { date: Some("2030-01-01".to_owned()), ..Default::default() };
    ensure!(repo.games(&none).await?.is_empty());
    repo.ping().await.context("ping")?;
    Ok(())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let (store, _dir) = crate::common::sqlite_store().await?;
                    super::$name(&store).await
                }
            )*
        }
        mod sqlite_memory_cache {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let (store, _dir) = crate::common::sqlite_store().await?;
                    let cache = pbp_store::cache::MemoryCache::new(Default::default());
                    super::$name(&pbp_store::cache::CachedRepository::new(store, cache)).await
                }
            )*
        }
        mod postgres_redis_cache {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let Some((store, _schema)) = crate::common::pg_store().await? else { return Ok(()) };
                    let Some(cache) = crate::common::redis_cache(Default::default()).await? else { return Ok(()) };
                    super::$name(&pbp_store::cache::CachedRepository::new(store, cache)).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let Some((store, _schema)) = crate::common::pg_store().await? else { return Ok(()) };
                    super::$name(&store).await
                }
            )*
        }
    };
}

conformance!(
    teams_are_idempotent_and_keyed_by_league,
    games_upsert_on_conflict_and_ignore_stale_snapshots,
    games_refuse_unknown_teams_and_invalid_rows,
    plays_are_idempotent_and_corrections_update_in_place,
    play_writes_name_what_they_inserted_or_changed,
    plays_refuse_unknown_games_and_invalid_rows_atomically,
    plays_come_back_in_game_order,
    thousands_of_plays_in_one_batch,
    game_states_upsert_with_counters,
    games_queries,
    changes_are_numbered_and_deletions_leave_tombstones,
    pages_are_keyset_pages_of_a_snapshot,
);

/// Writers running at once (as the serve pipeline's tasks do) all succeed.
async fn concurrent_writers(repo: std::sync::Arc<dyn Repository>) -> anyhow::Result<()> {
    seed(&*repo).await?;
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for round in 0..5 {
                    let game_id = if t % 2 == 0 { "g1" } else { "g2" };
                    let plays: Vec<_> = (0..200).map(|n| play(game_id, t * 10_000 + round * 200 + n)).collect();
                    repo.upsert_plays(&plays).await?;
                    let states = [state(game_id, GameStatus::In, t * 100 + round, t * 100 + round)];
                    repo.upsert_game_states(&states).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    assert_eq!(repo.plays("g1", &PlaysQuery::default()).await?.len(), 3000);
    assert_eq!(repo.plays("g2", &PlaysQuery::default()).await?.len(), 3000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers() -> anyhow::Result<()> {
    let (store, _dir) = common::sqlite_store().await?;
    concurrent_writers(std::sync::Arc::new(store)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_writers() -> anyhow::Result<()> {
    let Some((store, _schema)) = common::pg_store().await? else { return Ok(()) };
    concurrent_writers(std::sync::Arc::new(store)).await
}

/// What a client of the paged API holds: every play by id, applied page after page.
#[derive(Default)]
struct PagingClient {
    held: std::collections::BTreeMap<String, PlayRow>,
}

/// The writes a live game makes while a client pages through it, one after each page read: late inserts,
/// corrections in place, a correction that moves a play, deletions (of a play read already, of one not read yet,
/// of one never stored) and a restore.
fn live_game_writes(game_id: &str) -> Vec<Vec<PlayRow>> {
    let at = |n: i64, game_order: i64, sequence: i64| PlayRow { game_order, sequence, ..play(game_id, n) };
    let later = |mut p: PlayRow, by: i64| {
        p.fetched_at += by;
        p
    };
    let deleted = |p: PlayRow, by: i64| PlayRow { change: PlayChange::Delete, ..later(p, by) };
    let corrected = |p: PlayRow, by: i64, text: &str| PlayRow { text: text.to_owned(), ..later(p, by) };
    vec![
        // A late insert early in the game, one in the middle, one at the end.
        vec![at(1000, 15, 1000)],
        vec![corrected(at(3, 30, 6), 1, "corrected in place")],
        vec![at(1001, 305, 1001), at(70, 700, 73)],
        // A play corrected to another place in the game (its clock was wrong), both ways.
        vec![corrected(at(20, 45, 23), 2, "moved earlier")],
        vec![corrected(at(5, 590, 8), 2, "moved later")],
        vec![deleted(at(1, 10, 4), 3)],
        vec![deleted(at(55, 550, 58), 3)],
        vec![deleted(at(2000, 100, 2000), 3)],
        vec![later(at(1, 10, 4), 4)],
        vec![corrected(at(40, 400, 43), 5, "again"), at(71, 710, 74)],
        vec![deleted(at(71, 710, 74), 6), at(1002, 25, 1002)],
    ]
}

/// Pages through game `game_id` with `limit` plays a page as the REST API does, applying the next batch of
/// `writes` after each page, until the writes are done and the change feed is empty. Checks the snapshot pages
/// (game order, each play at most once, nothing newer than the snapshot), the feed pages (change order), and
/// that the client ends holding exactly the store's plays.
async fn page_through_a_live_game(repo: &dyn Repository, game_id: &str, limit: u32) -> anyhow::Result<()> {
    let mut writes = live_game_writes(game_id).into_iter();
    let mut client = PagingClient::default();
    let first = repo.plays_page(game_id, &PlaysPageQuery { as_of: None, after: None, limit }).await?;
    let as_of = first.as_of;
    let mut snapshot: Vec<PlayRow> = Vec::new();
    let mut page = first.plays;
    loop {
        if let Some(batch) = writes.next() {
            repo.upsert_plays(&batch).await?;
        }
        let full = page.len() == limit as usize;
        let after = page.last().map(PlayRow::position);
        snapshot.extend(page);
        if !full {
            break;
        }
        page = repo.plays_page(game_id, &PlaysPageQuery { as_of: Some(as_of), after, limit }).await?.plays;
    }
    for pair in snapshot.windows(2) {
        ensure!(pair[0].position() < pair[1].position(), "limit {limit}: snapshot pages out of game order: {pair:?}");
    }
    ensure!(snapshot.iter().all(|p| p.change_number <= as_of && !p.is_deleted()), "limit {limit}: newer than as_of");
    for p in &snapshot {
        ensure!(client.held.insert(p.play_id.clone(), p.clone()).is_none(), "limit {limit}: {} twice", p.play_id);
    }
    // Then the change feed after the snapshot, until it is empty with every write done.
    let mut cursor = as_of;
    loop {
        let batch = writes.next();
        if let Some(batch) = &batch {
            repo.upsert_plays(batch).await?;
        }
        let changes = repo.play_changes(game_id, cursor, Some(limit)).await?;
        for pair in changes.windows(2) {
            ensure!(pair[0].change_number < pair[1].change_number, "limit {limit}: feed out of change order");
        }
        for p in &changes {
            if p.is_deleted() {
                client.held.remove(&p.play_id);
            } else {
                client.held.insert(p.play_id.clone(), p.clone());
            }
        }
        match changes.last() {
            Some(last) => cursor = last.change_number,
            None if batch.is_none() => break,
            None => {}
        }
    }
    let stored = repo.plays(game_id, &PlaysQuery::default()).await?;
    // Every play the snapshot held, unchanged since, was on a snapshot page exactly once.
    for p in stored.iter().filter(|p| p.change_number <= as_of) {
        ensure!(snapshot.iter().filter(|s| s.play_id == p.play_id).count() == 1, "limit {limit}: {} missed", p.play_id);
    }
    let held: Vec<&PlayRow> = client.held.values().collect();
    let mut in_store: Vec<&PlayRow> = stored.iter().collect();
    in_store.sort_by(|a, b| a.play_id.cmp(&b.play_id));
    ensure!(held == in_store, "limit {limit}: the client does not hold what the store holds");
    // And in game order, the client's plays are the store's.
    let mut ordered: Vec<&PlayRow> = client.held.values().collect();
    ordered.sort_by_key(|p| p.position());
    ensure!(ordered.iter().map(|p| &p.play_id).eq(stored.iter().map(|p| &p.play_id)), "limit {limit}: order");
    Ok(())
}

/// Item B: paging through a live game with late inserts, corrections and deletions, at every limit from 1 to
/// 500, visits every play exactly once in game order and ends with the client holding the store.
async fn paging_visits_every_play_once_at_every_limit(repo: std::sync::Arc<dyn Repository>) -> anyhow::Result<()> {
    repo.upsert_teams(&[team("nba", "2", "BOS"), team("nba", "19", "ORL")]).await?;
    let games: Vec<_> = (1..=500).map(|limit| game(&format!("p{limit}"), "2024-03-17", "2", "19")).collect();
    repo.upsert_games(&games).await?;
    // A game per limit, four clients at a time (each game's writes and pages stay in order within its client).
    const CLIENTS: u32 = 4;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for limit in (1..=500u32).filter(|limit| limit % CLIENTS == client) {
                    let game_id = format!("p{limit}");
                    let plays: Vec<_> = (0..60).map(|n| PlayRow { game_order: n * 10, ..play(&game_id, n) }).collect();
                    repo.upsert_plays(&plays).await?;
                    page_through_a_live_game(repo.as_ref(), &game_id, limit).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_paging_visits_every_play_once_at_every_limit() -> anyhow::Result<()> {
    let (store, _dir) = common::sqlite_store().await?;
    paging_visits_every_play_once_at_every_limit(std::sync::Arc::new(store)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_paging_visits_every_play_once_at_every_limit() -> anyhow::Result<()> {
    // Some 6,000 small transactions: do not wait for the disk on each.
    let Some((store, _schema)) = common::pg_store_without_commit_waits().await? else { return Ok(()) };
    paging_visits_every_play_once_at_every_limit(std::sync::Arc::new(store)).await
}
