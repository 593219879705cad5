//! A real Redis hung (SIGSTOP), then stopped, under a running `pbp run`: `/health` says `degraded` (cache
//! down, store ok) while the REST API keeps answering from the store, promptly and with the same bodies; when
//! Redis comes back, so does the cache and `/health` is `ok` again.
//!
//! The test starts its own `redis-server` on a free port (the machine's shared one on 6379 is left alone), so
//! it can stop it. Without a `redis-server` binary it is skipped, unless `PBP_REQUIRE_SERVICES` is set.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Expected, Pbp, fixtures_dir, free_port, http_get, services_required};
use pbp_espn::fake::{FakeEspn, FakeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GAME_FILE: &str = "nba-summary-401585607.json";

/// A private `redis-server`, killed when dropped.
struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    /// `None` when the machine has no `redis-server`.
    fn start(port: u16) -> anyhow::Result<Option<Self>> {
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let server = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(server))
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} redis-server failed");
        Ok(())
    }

    /// Kills the server and waits until its port refuses connections.
    fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        anyhow::ensure!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(), "Redis still answers");
        Ok(())
    }

    /// The number of keys (`DBSIZE`), over raw RESP.
    async fn keys(&self) -> anyhow::Result<u64> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.write_all(b"*1\r\n$6\r\nDBSIZE\r\n").await?;
        let mut answer = [0_u8; 64];
        let n = stream.read(&mut answer).await?;
        let answer = std::str::from_utf8(&answer[..n])?;
        let count = answer.strip_prefix(':').and_then(|a| a.trim_end().parse().ok());
        count.ok_or_else(|| anyhow::anyhow!("unexpected DBSIZE answer {answer:?}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path`, which must answer 200 within two seconds (no request waits on a dead cache).
async fn get_promptly(port: u16, path: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    let (status, body) = http_get(port, path).await?;
    let took = started.elapsed();
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    anyhow::ensure!(took < Duration::from_secs(2), "{path} took {took:?}");
    Ok(body)
}

/// Waits (up to 30 s) for `/health` to answer 200 with the cache up.
async fn wait_until_healthy(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = health(port).await?;
        if status == 200 {
            assert_eq!(body["checks"]["cache"]["status"], "ok", "{body}");
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "health still {body} 30 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn health(port: u16) -> anyhow::Result<(u16, serde_json::Value)> {
    let (status, body) = http_get(port, "/health").await?;
    Ok((status, serde_json::from_str(&body)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_degrades_when_redis_stops_and_the_api_serves_from_the_store() -> anyhow::Result<()> {
    let redis_port = free_port()?;
    let Some(redis) = RedisServer::start(redis_port)? else {
        anyhow::ensure!(!services_required(), "PBP_REQUIRE_SERVICES is set but there is no redis-server");
        eprintln!("skipped: no redis-server on this machine");
        return Ok(());
    };
    let game_file = fixtures_dir().join(GAME_FILE);
    let expected = Expected::from_file(&game_file)?;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    // The finished game in the embedded store, then `pbp run` on it with the private Redis as its cache.
    let replay = Command::new(env!("CARGO_BIN_EXE_pbp"))
        .args(["--log", "warn", "replay"])
        .arg(&game_file)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()?;
    anyhow::ensure!(replay.status.success(), "pbp replay failed: {}", String::from_utf8_lossy(&replay.stderr));
    let espn = FakeEspn::from_files(&[fixtures_dir().join("nba-teams.json")], FakeOptions::default())?
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let api_port = free_port()?;
    let envs = [
        ("PBP_ESPN_URL", espn.base_url()),
        ("PBP_DATA_DIR", data_dir.display().to_string()),
        ("PBP_REDIS_URL", format!("redis://127.0.0.1:{redis_port}/")),
        ("PBP_LISTEN", format!("127.0.0.1:{api_port}")),
    ];
    let mut run = Pbp::start("run", &["run"], &envs, dir.path())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(api_port, "/health/live").await.is_err() {
        run.check_running()?;
        anyhow::ensure!(Instant::now() < deadline, "pbp run did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = health(api_port).await?;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ok")), "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "ok", "{body}");
    let game_path = format!("/v1/games/{}", expected.game_id);
    let plays_path = format!("{game_path}/plays?limit=1000");
    let plays = get_promptly(api_port, &plays_path).await?;
    let plays_json: serde_json::Value = serde_json::from_str(&plays)?;
    let ids: Vec<&str> =
        plays_json["plays"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(ids.len(), expected.plays.len(), "every play of the game");
    let game = get_promptly(api_port, &game_path).await?;
    let teams = get_promptly(api_port, "/v1/teams").await?;
    assert!(redis.keys().await? > 0, "the reads went through Redis");

    // Hung (SIGSTOP): connections are accepted but nothing answers. Commands time out after 500 ms; the
    // cache is then skipped for a second, so no request waits on each of its cache calls.
    redis.signal("STOP")?;
    let (status, body) = health(api_port).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "down", "{body}");
    for _ in 0..3 {
        assert_eq!(get_promptly(api_port, &plays_path).await?, plays);
        assert_eq!(get_promptly(api_port, &game_path).await?, game);
    }
    redis.signal("CONT")?;
    wait_until_healthy(api_port).await?;
    assert_eq!(get_promptly(api_port, &plays_path).await?, plays);

    // Stopped: connections are refused.
    redis.stop()?;
    let (status, body) = health(api_port).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["store"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["broker"]["status"], "ok", "{body}");
    // The API answers from the store, the same as through the cache, and without waiting on Redis.
    for _ in 0..3 {
        assert_eq!(get_promptly(api_port, &plays_path).await?, plays);
        assert_eq!(get_promptly(api_port, &game_path).await?, game);
        assert_eq!(get_promptly(api_port, "/v1/teams").await?, teams);
    }
    let since = get_promptly(api_port, &format!("{game_path}/plays?since=0&limit=5")).await?;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&since)?["plays"].as_array().map(Vec::len), Some(5));
    run.check_running()?;

    // Redis back on the same port (empty): the cache recovers by itself.
    let redis = RedisServer::start(redis_port)?.ok_or_else(|| anyhow::anyhow!("redis-server is gone"))?;
    wait_until_healthy(api_port).await?;
    assert_eq!(get_promptly(api_port, &plays_path).await?, plays);
    assert!(redis.keys().await? > 0, "the cache is written again");
    run.stop()?;
    espn.shutdown().await;
    Ok(())
}
