//! A live replay through the fake server and the real client: every play of every recorded game is delivered
//! exactly once, late inserts included, corrections arrive as updates and end in the recorded form, plays the
//! feed takes out are deleted once (and new again when they come back), and the scoreboard follows the replay.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pbp_espn::client::RetryConfig;
use pbp_espn::fake::{CORRECTION_DELAY, DeletionKind, FakeEspn, FakeOptions, WITHDRAW_AFTER, WITHDRAWN_FOR};
use pbp_espn::model::Summary;
use pbp_espn::normalize::normalize_summary;
use pbp_espn::{ChangeKind, ClientConfig, ClientError, EspnClient, GameSnapshotState, League, NormalizedPlay};
use prometheus_client::registry::Registry;

/// Game wallclock seconds the replay clock moves between two polls: less than the correction delay, so that a
/// correction with its full delay is always seen in its preliminary form first.
const STEP_SECONDS: u64 = 120;
const _: () = assert!(STEP_SECONDS < CORRECTION_DELAY.as_secs());
// A withdrawn play is seen before it goes, then missing from at least two polls in a row: the collectors'
// default rule deletes it.
const _: () = assert!(STEP_SECONDS < WITHDRAW_AFTER.as_secs());
const _: () = assert!(2 * STEP_SECONDS <= WITHDRAWN_FOR.as_secs());

async fn fetch_game(client: &EspnClient, league: League, game_id: &str) -> anyhow::Result<Summary> {
    match client.summary(league, game_id).await {
        Ok(fetched) => Ok(fetched.value),
        // The cdn-only game.
        Err(ClientError::Status { status: 404, .. }) => {
            Ok(client.cdn_play_by_play(league, game_id).await?.value.game_package)
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Default)]
struct Delivered {
    state: GameSnapshotState,
    new: HashMap<String, usize>,
    updated: HashMap<String, usize>,
    deleted: HashMap<String, usize>,
    latest: HashMap<String, NormalizedPlay>,
    late_inserts: usize,
    final_seen: bool,
    done: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_play_is_delivered_exactly_once_with_late_inserts() -> anyhow::Result<()> {
    let fake = FakeEspn::from_dir(
        &common::fixtures_dir(),
        FakeOptions { live: true, speed: 1.0, corrections: true, deletions: true },
    )?;
    fake.use_manual_clock();
    let running = fake.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let mut registry = Registry::default();
    let config = ClientConfig {
        retry: RetryConfig {
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..Default::default()
        },
        ..ClientConfig::with_base_url(&running.base_url())
    };
    let client = EspnClient::new(config, &mut registry)?;
    let games = fake.games_with_plays();
    assert!(games.len() >= 6, "{games:?}");
    let deletions = fake.deletions();
    for kind in [DeletionKind::Phantom, DeletionKind::Withdrawn] {
        assert!(deletions.iter().any(|d| d.kind == kind), "the replay deletes: {kind:?}");
    }
    let mut delivered: HashMap<(League, String), Delivered> = HashMap::new();

    let mut steps = 0;
    while delivered.len() < games.len() || delivered.values().any(|d| !d.done) {
        steps += 1;
        assert!(steps < 1000, "the replay must end");
        for (league, game_id) in &games {
            let entry = delivered.entry((*league, game_id.clone())).or_default();
            if entry.done {
                continue;
            }
            let summary = fetch_game(&client, *league, game_id).await?;
            let is_final = summary.header.competition().and_then(|c| c.status.as_ref()).is_some_and(|s| s.is_final());
            let (_, plays) = normalize_summary(&summary, Some(*league));
            let diff = entry.state.apply(plays);
            let taken_out: HashSet<&str> = deletions
                .iter()
                .filter(|d| d.league == *league && &d.game_id == game_id)
                .map(|d| d.play_id.as_str())
                .collect();
            assert!(
                diff.vanished.iter().all(|id| taken_out.contains(id.as_str())),
                "{game_id}: only the plays the fake deletes leave the feed: {:?}",
                diff.vanished
            );
            for change in diff.changes {
                let id = change.play.play_id.clone();
                match change.kind {
                    ChangeKind::New => *entry.new.entry(id.clone()).or_default() += 1,
                    ChangeKind::Updated => *entry.updated.entry(id.clone()).or_default() += 1,
                    ChangeKind::Deleted => {
                        *entry.deleted.entry(id.clone()).or_default() += 1;
                        entry.latest.remove(&id);
                        continue;
                    }
                }
                entry.late_inserts += usize::from(change.late_insert);
                entry.latest.insert(id, change.play);
            }
            // Stop after the final whistle plus one more fetch, as the collectors do.
            entry.done = entry.final_seen;
            entry.final_seen |= is_final;
        }
        // Mid-replay, the scoreboard shows the games in progress with the running score of the last play.
        if steps == 20 {
            let board = client.scoreboard(League::Nba, None).await?.value;
            assert!(board.events.iter().any(|event| event.is_live()), "NBA games are live at step 20");
        }
        fake.advance(Duration::from_secs(STEP_SECONDS));
    }

    let corrections = fake.corrections();
    let mut total_late = 0;
    let mut total_updates = 0;
    for (league, game_id) in &games {
        let summary = fetch_game(&client, *league, game_id).await?;
        let entry = &delivered[&(*league, game_id.clone())];
        // Deletions: a phantom is new once and deleted once; a withdrawn play is deleted once and new again.
        let of_game: Vec<_> = deletions.iter().filter(|d| d.league == *league && &d.game_id == game_id).collect();
        let phantoms = of_game.iter().filter(|d| d.kind == DeletionKind::Phantom).count();
        let mut taken_out: Vec<&str> = of_game.iter().map(|d| d.play_id.as_str()).collect();
        taken_out.sort_unstable();
        let mut deleted: Vec<&str> = entry.deleted.keys().map(String::as_str).collect();
        deleted.sort_unstable();
        assert_eq!(deleted, taken_out, "{game_id}: every play taken out is deleted");
        assert!(entry.deleted.values().all(|count| *count == 1), "{game_id}: each deletion once");
        assert_eq!(entry.new.len(), summary.plays.len() + phantoms, "{game_id}: every play delivered");
        for (id, count) in &entry.new {
            let withdrawn = of_game.iter().any(|d| d.kind == DeletionKind::Withdrawn && &d.play_id == id);
            assert_eq!(*count, if withdrawn { 2 } else { 1 }, "{game_id}: {id} new once (again after a deletion)");
        }
        assert!(summary.plays.iter().all(|play| entry.new.contains_key(&play.id)), "{game_id}");
        // Corrections: only corrected plays are updated, each once; those with the full delay were all seen
        // preliminary (the poll step is shorter); every play's last delivered version is the recorded one.
        let of_game: Vec<_> = corrections.iter().filter(|c| c.league == *league && &c.game_id == game_id).collect();
        let corrected: HashSet<&str> = of_game.iter().map(|c| c.play_id.as_str()).collect();
        assert!(entry.updated.keys().all(|id| corrected.contains(id.as_str())), "{game_id}: {:?}", entry.updated);
        assert!(entry.updated.values().all(|count| *count == 1), "{game_id}: each correction once");
        for correction in of_game.iter().filter(|c| c.corrected_at - c.shown_at >= Duration::from_secs(STEP_SECONDS)) {
            assert!(entry.updated.contains_key(&correction.play_id), "{game_id}: {correction:?} not delivered");
        }
        let (_, recorded) = normalize_summary(&summary, Some(*league));
        assert_eq!(entry.latest.len(), recorded.len());
        for play in &recorded {
            assert_eq!(entry.latest.get(&play.play_id), Some(play), "{game_id}: the recorded version last");
        }
        total_late += entry.late_inserts;
        total_updates += entry.updated.len();
    }
    eprintln!("late inserts delivered: {total_late}, corrections: {total_updates}, in {steps} steps");
    assert!(total_updates >= games.len(), "every game has corrections");
    assert!(total_late > 0, "the recorded games have late-logged plays; some must arrive as late inserts");
    running.shutdown().await;
    Ok(())
}
