//! `pbp espn serve-fixtures --live` end to end: the binary serves the recorded games in progress.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use pbp_espn::{ClientConfig, EspnClient, League};
use prometheus_client::registry::Registry;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("PBP_ESPN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/espn")))
}

/// Kills the server even when an assertion fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_recorded_games_live() -> anyhow::Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbp"))
        .args(["--log-format", "json", "--log", "info", "espn", "serve-fixtures", "--listen", "127.0.0.1:0", "--live"])
        .args(["--speed", "10", "--dir"])
        .arg(fixtures_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let server = Server(child);
    // The startup line carries the bound address: {"fields":{"base_url":"http://127.0.0.1:PORT",…}}. The reader
    // keeps draining stderr afterwards so the server never writes into a closed pipe.
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let parsed: Option<serde_json::Value> = serde_json::from_str(&line).ok();
            if let Some(url) = parsed.as_ref().and_then(|l| l.pointer("/fields/base_url")).and_then(|v| v.as_str()) {
                let _ = found.send(url.to_owned());
            }
        }
    });
    let base_url = tokio::task::spawn_blocking(move || address.recv_timeout(std::time::Duration::from_secs(120)))
        .await?
        .map_err(|_| anyhow::anyhow!("the server did not print its address"))?;

    let client = EspnClient::new(ClientConfig::with_base_url(&base_url), &mut Registry::default())?;
    let board = client.scoreboard(League::Nba, None).await?.value;
    let live: Vec<&str> = board.events.iter().filter(|event| event.is_live()).map(|event| event.id.as_str()).collect();
    assert!(live.contains(&"401585607"), "recorded finals replay as live games: {live:?}");
    let summary = client.summary(League::Nba, "401585607").await?.value;
    assert!(!summary.plays.is_empty() && summary.plays.len() < 450, "a game in progress: {}", summary.plays.len());
    let college = client.summary(League::MensCollege, "401828387").await?.value;
    assert!(college.plays.len() < 440);
    drop(server);
    Ok(())
}
