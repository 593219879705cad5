//! `pbp bench fanout --clients N`: N WebSocket clients on one game, plays published at a steady rate; the
//! delivery time of every frame to every client, and the server's memory.
//!
//! A process may hold at most 20,000 open files here, so the clients run in a child process
//! (`pbp bench fanout-clients`, started by this command). Delivery time is measured across the two processes
//! with the system clock: this process tells the child, on its standard input, when it began writing each
//! play (before the store write, so the write, the hub and the sockets are all counted); the child notes when
//! each frame arrived and computes the quantiles.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::serving::{BenchServer, GameRows, context_switches, cpu_seconds, memory_mib, quantile};
use crate::http::ws::WsSettings;

/// Plays stored before the clients connect (each client's snapshot holds them).
const STORED_BEFORE: usize = 50;

/// Options of `pbp bench fanout`.
#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// WebSocket clients on the game (at most 18,000: the client process's open-file limit).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=18_000))]
    clients: u64,
    /// Plays published per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Plays published (at most the recorded game's plays less the 50 stored first).
    #[arg(long, default_value_t = 200)]
    plays: usize,
    /// Handshakes in flight at once while the clients connect.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    #[command(flatten)]
    fixtures: super::espn::Fixtures,
}

/// Options of `pbp bench fanout-clients` (started by `pbp bench fanout`).
#[derive(Debug, Args)]
pub(crate) struct FanoutClientsArgs {
    /// The server.
    #[arg(long)]
    addr: SocketAddr,
    /// The game.
    #[arg(long)]
    game: String,
    /// Clients to connect.
    #[arg(long)]
    clients: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let (path, _) = args.fixtures.largest_summary()?;
    let rows = GameRows::from_file(&path)?;
    let available = rows.plays.len().saturating_sub(STORED_BEFORE);
    anyhow::ensure!(args.plays <= available, "--plays {} is more than the {available} plays to publish", args.plays);
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let server = BenchServer::start(1024, WsSettings::default()).await?;
    rows.store(server.repository.as_ref(), STORED_BEFORE).await?;
    let (idle_rss, _) = memory_mib();
    eprintln!(
        "bench fanout: {} clients on {} ({}), {} plays at {}/s",
        args.clients,
        rows.game.id,
        path.display(),
        args.plays,
        args.rate
    );

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--log", "warn", "bench", "fanout-clients", "--addr"])
        .arg(server.addr.to_string())
        .args(["--game", &rows.game.id, "--clients", &args.clients.to_string()])
        .args(["--connect-concurrency", &args.connect_concurrency.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the client process")?;
    let mut to_child = child.stdin.take().context("no stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let connecting = Instant::now();
    let ready = from_child.next_line().await?.context("the client process ended before connecting")?;
    let connected: u64 = ready.strip_prefix("ready ").and_then(|n| n.parse().ok()).context("bad ready line")?;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let (connected_rss, _) = memory_mib();
    eprintln!("bench fanout: {connected} clients connected in {connect_seconds:.1} s; server RSS {connected_rss} MiB");

    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cpu_before = cpu_seconds();
    let switches_before = context_switches();
    for play in &rows.plays[STORED_BEFORE..STORED_BEFORE + args.plays] {
        ticks.tick().await;
        let sent = now_nanos();
        server.writer.upsert_plays(std::slice::from_ref(play)).await?;
        to_child.write_all(format!("sent {} {sent}\n", play.sequence).as_bytes()).await?;
    }
    to_child.write_all(b"end\n").await?;
    to_child.flush().await?;
    // Let the last frames arrive; stopping the server then closes every session and the child reports.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after = cpu_seconds();
    let switches_after = context_switches();
    let (_, peak_rss) = memory_mib();
    server.stop().await?;
    let report = from_child.next_line().await?.context("the client process ended without a report")?;
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "the client process failed: {status}");
    let mut result: serde_json::Value = serde_json::from_str(&report).context("bad report from the client process")?;
    result["bench"] = "fanout".into();
    result["plays"] = args.plays.into();
    result["rate"] = args.rate.into();
    result["connect_seconds"] = ((connect_seconds * 10.0).round() / 10.0).into();
    result["server_rss_mib_idle"] = idle_rss.into();
    result["server_rss_mib_connected"] = connected_rss.into();
    result["server_peak_rss_mib"] = peak_rss.into();
    // CPU seconds while the plays were published (and 2 s after): where the time goes, server against clients.
    result["server_cpu_user_s"] = round2(cpu_after.0 - cpu_before.0).into();
    result["server_cpu_sys_s"] = round2(cpu_after.1 - cpu_before.1).into();
    result["server_switches_voluntary"] = switches_after.0.saturating_sub(switches_before.0).into();
    result["server_switches_involuntary"] = switches_after.1.saturating_sub(switches_before.1).into();
    println!("{result}");
    Ok(())
}

/// The client side: connects, says `ready N`, notes each frame's arrival, reads `sent SEQ NANOS` lines until
/// `end`, and once the server closes the sessions prints the delivery quantiles as one JSON line.
pub(crate) async fn run_clients(args: FanoutClientsArgs) -> anyhow::Result<()> {
    let url = format!("ws://{}/ws/{}", args.addr, args.game);
    // Small buffers: thousands of clients share this process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let failed = Arc::new(AtomicUsize::new(0));
    let connections: Vec<_> = futures::stream::iter(0..args.clients)
        .map(|_| {
            let (url, failed) = (url.clone(), failed.clone());
            async move {
                let connected = async {
                    let (mut socket, _) =
                        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true).await?;
                    // The snapshot.
                    socket.next().await.context("closed before the snapshot")??;
                    anyhow::Ok(socket)
                };
                match connected.await {
                    Ok(socket) => Some(socket),
                    Err(error) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("bench fanout-clients: a connection failed: {error:#}");
                        }
                        None
                    }
                }
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .filter_map(|socket| async move { socket })
        .collect()
        .await;
    let connected = connections.len();
    let readers: Vec<_> = connections
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut arrivals: Vec<(i64, u64)> = Vec::new();
                while let Some(Ok(message)) = socket.next().await {
                    let arrived = now_nanos();
                    if let Message::Text(text) = message
                        && let Some(sequence) = play_sequence(&text)
                    {
                        arrivals.push((sequence, arrived));
                    }
                }
                arrivals
            })
        })
        .collect();
    println!("ready {connected}");
    let cpu_before = cpu_seconds();
    let switches_before = context_switches();

    let mut sent: HashMap<i64, u64> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line == "end" {
            break;
        }
        let mut fields = line.split(' ').skip(1).map(str::parse::<u64>);
        if let (Some(Ok(sequence)), Some(Ok(nanos))) = (fields.next(), fields.next()) {
            sent.insert(sequence as i64, nanos);
        }
    }
    // The server closes the sessions two seconds after `end`; the readers end then.
    let readers = futures::future::join_all(readers).await;
    let cpu_after = cpu_seconds();
    let switches_after = context_switches();
    let mut latencies: Vec<u64> = Vec::with_capacity(connected * sent.len());
    for reader in readers {
        for (sequence, arrived) in reader? {
            if let Some(at) = sent.get(&sequence) {
                latencies.push(arrived.saturating_sub(*at));
            }
        }
    }
    latencies.sort_unstable();
    let ms = |q: f64| quantile(&latencies, q).map_or(f64::NAN, |ns| (ns as f64 / 10_000.0).round() / 100.0);
    let expected = connected * sent.len();
    let report = serde_json::json!({
        "clients": args.clients,
        "connected": connected,
        "failed_connections": failed.load(Ordering::Relaxed),
        "frames_expected": expected,
        "frames_received": latencies.len(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": ms(1.0),
        "clients_cpu_user_s": round2(cpu_after.0 - cpu_before.0),
        "clients_cpu_sys_s": round2(cpu_after.1 - cpu_before.1),
        "clients_switches_voluntary": switches_after.0.saturating_sub(switches_before.0),
        "clients_switches_involuntary": switches_after.1.saturating_sub(switches_before.1),
    });
    println!("{report}");
    Ok(())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The sequence of a `play` frame, found without parsing the whole message.
fn play_sequence(text: &str) -> Option<i64> {
    if !text.starts_with(r#"{"type":"play""#) {
        return None;
    }
    let start = text.find(r#""sequence":"#)? + r#""sequence":"#.len();
    let digits = &text[start..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}
