//! `pbp run` on the embedded default, end to end: the fake ESPN server replays a recorded game live (late
//! inserts, corrections and deletions included) and `pbp run` polls it, enriches and stores into its embedded
//! database, serving REST clients that page through the game while it is played and WebSocket clients.
//! Then `pbp replay` of the same recorded file must store the same plays and the same game state.

mod common;

use std::time::Duration;

use common::{
    Expected, Pbp, RestPager, WsRecorder, assert_api, assert_deleted, assert_game, assert_ws_session, content,
    fixtures_dir, free_port, http_get, wait_for_game,
};
use pbp_espn::fake::{FakeEspn, FakeOptions};
use pbp_store::{Repository, SqliteStore};

const GAME_FILE: &str = "nba-summary-401585607.json";

/// SIGTERM while ESPN does not answer (every fetch hangs, then is retried): `pbp run` still stops at once.
#[tokio::test]
async fn pbp_run_stops_at_once_while_espn_does_not_answer() -> anyhow::Result<()> {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let espn_url = format!("http://{}", silent.local_addr()?);
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            connections.push(stream);
        }
    });
    let dir = tempfile::tempdir()?;
    let envs = [
        ("PBP_ESPN_URL", espn_url),
        ("PBP_DATA_DIR", dir.path().join("data").display().to_string()),
        ("PBP_LISTEN", format!("127.0.0.1:{}", free_port()?)),
    ];
    let mut run = Pbp::start("run", &["run"], &envs, dir.path())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.check_running()?;
    let started = std::time::Instant::now();
    run.stop()?;
    held.abort();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "pbp run took {took:?} to stop after SIGTERM");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_game_through_pbp_run_equals_its_replay() -> anyhow::Result<()> {
    let game_file = fixtures_dir().join(GAME_FILE);
    let teams_file = fixtures_dir().join("nba-teams.json");
    let expected = Expected::from_file(&game_file)?;
    let fake = FakeEspn::from_files(
        &[game_file.clone(), teams_file],
        FakeOptions { live: true, speed: 400.0, corrections: true, deletions: true },
    )?;
    let corrections = fake.corrections();
    assert!(!corrections.is_empty(), "the live replay corrects plays");
    let deletions = fake.deletions();
    let server = fake.bind("127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let live_dir = dir.path().join("live");
    let api_port = free_port()?;
    let envs = [
        ("PBP_ESPN_URL", server.base_url()),
        ("PBP_DATA_DIR", live_dir.display().to_string()),
        ("PBP_PLAYS_INTERVAL_MS", "100".to_owned()),
        ("PBP_SCOREBOARD_INTERVAL_MS", "200".to_owned()),
        ("PBP_LISTEN", format!("127.0.0.1:{api_port}")),
    ];
    let mut run = Pbp::start("run", &["run"], &envs, dir.path())?;

    // The embedded store is a SQLite file in WAL mode: the test reads it while `pbp run` writes.
    let mut store = None;
    for _ in 0..200 {
        if live_dir.join("pbp.sqlite3").exists() {
            // Let `pbp run` finish creating its schema first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            store = Some(SqliteStore::open(&live_dir, 1).await?);
            break;
        }
        run.check_running()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = store.ok_or_else(|| anyhow::anyhow!("pbp run created no database in {}", live_dir.display()))?;
    // WebSocket clients: one from the moment the game exists (before its plays), two that join mid-game, one
    // of them resuming after a sequence.
    let game_path = format!("/v1/games/{}", expected.game_id);
    for _ in 0..600 {
        if http_get(api_port, &game_path).await.is_ok_and(|(status, _)| status == 200) {
            break;
        }
        run.check_running()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let from_start = WsRecorder::connect(api_port, &format!("/ws/{}", expected.game_id)).await?;
    // REST clients paging through the game while it is played, following `next` (item B).
    let pagers: Vec<RestPager> = [1, 7, 100].map(|limit| RestPager::start(api_port, &expected.game_id, limit)).into();
    let mid_game = loop {
        let stored = store.plays(&expected.game_id, &Default::default()).await?;
        if stored.len() >= 150 {
            break stored;
        }
        run.check_running()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut sequences: Vec<i64> = mid_game.iter().map(|p| p.sequence).collect();
    sequences.sort_unstable();
    let resume_after = sequences[100];
    let joined = WsRecorder::connect(api_port, &format!("/ws/{}", expected.game_id)).await?;
    let resumed = WsRecorder::connect(api_port, &format!("/ws/{}?since={resume_after}", expected.game_id)).await?;
    let waited = wait_for_game(&store, &expected, Duration::from_secs(240), || run.check_running()).await;
    if waited.is_err() {
        eprintln!("{}", std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default());
    }
    waited?;
    let (live_plays, live_state) = assert_game(&store, &expected, &corrections).await?;
    // The basket ESPN removed left the store, the state and the API (item C).
    assert_deleted(&store, &expected.game_id, &deletions).await?;
    // The REST API of `pbp run` serves what it stored, and the paging clients hold exactly that.
    assert_api(api_port, &store, &expected.game_id, "embedded").await?;
    for pager in pagers {
        pager.assert_holds_the_store(&store, &expected.game_id).await?;
    }
    run.stop()?;
    // Every session got what it should, closed cleanly at shutdown.
    assert_ws_session(&from_start.messages().await?, &live_plays, &live_state, None)?;
    let joined = joined.messages().await?;
    let snapshot_max = joined[0]["plays"].as_array().into_iter().flatten().filter_map(|p| p["sequence"].as_i64()).max();
    assert_eq!(joined[0]["plays"].as_array().map(Vec::len), Some(50), "a mid-game snapshot holds the last 50 plays");
    assert_ws_session(&joined, &live_plays, &live_state, snapshot_max)?;
    let resumed = resumed.messages().await?;
    // After the resume point, or a correction (which keeps an older play's sequence).
    assert!(
        resumed[0]["plays"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p["sequence"].as_i64() > Some(resume_after) || p["revision"].as_i64() > Some(1))
    );
    assert_ws_session(&resumed, &live_plays, &live_state, Some(resume_after))?;
    server.shutdown().await;

    // The same game replayed from its recorded file: the same stored plays and state.
    let replay_dir = dir.path().join("replay");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pbp"))
        .args(["--log", "warn", "replay"])
        .arg(&game_file)
        .arg("--data-dir")
        .arg(&replay_dir)
        .output()?;
    assert!(output.status.success(), "pbp replay failed: {}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8(output.stdout)?;
    let result: serde_json::Value = serde_json::from_str(line.trim())?;
    assert_eq!(result["games"], 1);
    assert_eq!(result["plays"], expected.plays.len());
    assert!(result["plays_per_sec"].as_f64().is_some_and(|r| r > 0.0));
    let replayed = SqliteStore::open(&replay_dir, 1).await?;
    let (replay_plays, replay_state) = assert_game(&replayed, &expected, &[]).await?;
    let live_content: Vec<_> = live_plays.iter().map(content).collect();
    let replay_content: Vec<_> = replay_plays.iter().map(content).collect();
    assert_eq!(live_content, replay_content, "live and replayed plays are the same");
    assert_eq!(
        pbp_store::GameStateRow { updated_at: 0, ..live_state },
        pbp_store::GameStateRow { updated_at: 0, ..replay_state },
        "live and replayed game states are the same"
    );
    Ok(())
}
