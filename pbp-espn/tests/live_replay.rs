//! A live replay through the fake server and the real client: every play of every recorded game is delivered
//! exactly once, late inserts included, and the scoreboard follows the replay.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pbp_espn::client::RetryConfig;
use pbp_espn::fake::{FakeEspn, FakeOptions};
use pbp_espn::model::Summary;
use pbp_espn::normalize::normalize_summary;
use pbp_espn::{ChangeKind, ClientConfig, ClientError, EspnClient, GameSnapshotState, League};
use prometheus_client::registry::Registry;

/// Game wallclock seconds the replay clock moves between two polls.
const STEP_SECONDS: u64 = 120;

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
    updates: usize,
    late_inserts: usize,
    final_seen: bool,
    done: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_play_is_delivered_exactly_once_with_late_inserts() -> anyhow::Result<()> {
    let fake = FakeEspn::from_dir(&common::fixtures_dir(), FakeOptions { live: true, speed: 1.0 })?;
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
            assert!(diff.vanished.is_empty(), "{game_id}: a replay never takes plays back: {:?}", diff.vanished);
            for change in diff.changes {
                match change.kind {
                    ChangeKind::New => *entry.new.entry(change.play.play_id.clone()).or_default() += 1,
                    ChangeKind::Updated => entry.updates += 1,
                }
                entry.late_inserts += usize::from(change.late_insert);
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

    let mut total_late = 0;
    for (league, game_id) in &games {
        let summary = fetch_game(&client, *league, game_id).await?;
        let entry = &delivered[&(*league, game_id.clone())];
        assert_eq!(entry.new.len(), summary.plays.len(), "{game_id}: every play delivered");
        assert!(entry.new.values().all(|count| *count == 1), "{game_id}: each play exactly once");
        assert!(summary.plays.iter().all(|play| entry.new.contains_key(&play.id)), "{game_id}");
        assert_eq!(entry.updates, 0, "{game_id}: the replay serves recorded plays unchanged");
        total_late += entry.late_inserts;
    }
    eprintln!("late inserts delivered: {total_late} in {steps} steps");
    assert!(total_late > 0, "the recorded games have late-logged plays; some must arrive as late inserts");
    running.shutdown().await;
    Ok(())
}
