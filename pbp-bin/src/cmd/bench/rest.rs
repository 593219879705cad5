//! `pbp bench rest`: requests per second of `GET /v1/games/{id}/plays` against a trivial route
//! (`GET /health/live`) of the same server in the same run, measured by an external load tool (`wrk`): the
//! plays once asked plainly and once with `Accept-Encoding: gzip`, as browsers and most HTTP clients ask.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::serving::{BenchServer, GameRows};
use crate::http::ws::WsSettings;

/// Options of `pbp bench rest`.
#[derive(Debug, Args)]
pub(crate) struct RestArgs {
    /// Seconds of load on each route.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open connections.
    #[arg(long, default_value_t = 64)]
    connections: u64,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: u64,
    /// The load tool (wrk 4).
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    #[command(flatten)]
    fixtures: super::espn::Fixtures,
}

/// What wrk measured on one route.
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub(crate) async fn run(args: RestArgs) -> anyhow::Result<()> {
    let (path, _) = args.fixtures.largest_summary()?;
    let rows = GameRows::from_file(&path)?;
    let server = BenchServer::start(1024, WsSettings::default()).await?;
    rows.store(server.repository.as_ref(), rows.plays.len()).await?;
    let base = format!("http://{}", server.addr);
    let plays_path = format!("/v1/games/{}/plays", rows.game.id);
    eprintln!("bench rest: {} plays of {} stored; {} s per route", rows.plays.len(), rows.game.id, args.seconds);
    let trivial = load(&args, &format!("{base}/health/live"), &[]).await?;
    let plays = load(&args, &format!("{base}{plays_path}"), &[]).await?;
    let gzipped = load(&args, &format!("{base}{plays_path}"), &["Accept-Encoding: gzip"]).await?;
    server.stop().await?;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let result = serde_json::json!({
        "bench": "rest",
        "route": "/v1/games/{id}/plays",
        "plays_per_response": rows.plays.len().min(crate::http::DEFAULT_PLAYS_LIMIT as usize),
        "connections": args.connections,
        "seconds": args.seconds,
        "trivial_rps": trivial.requests_per_sec.round(),
        "trivial_p50_ms": trivial.p50_ms,
        "trivial_p99_ms": trivial.p99_ms,
        "plays_rps": plays.requests_per_sec.round(),
        "plays_p50_ms": plays.p50_ms,
        "plays_p99_ms": plays.p99_ms,
        "plays_gzip_rps": gzipped.requests_per_sec.round(),
        "plays_gzip_p50_ms": gzipped.p50_ms,
        "plays_gzip_p99_ms": gzipped.p99_ms,
        "errors": trivial.errors + plays.errors + gzipped.errors,
        "ratio": round(plays.requests_per_sec / trivial.requests_per_sec),
        "ratio_gzip": round(gzipped.requests_per_sec / trivial.requests_per_sec),
    });
    println!("{result}");
    Ok(())
}

/// Runs wrk against `url` with `headers` in a blocking thread (this process keeps serving on its runtime).
async fn load(args: &RestArgs, url: &str, headers: &[&str]) -> anyhow::Result<Load> {
    let mut command = std::process::Command::new(&args.wrk);
    for header in headers {
        command.arg("-H").arg(header);
    }
    command
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("--latency")
        .arg(url);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("cannot run {} (install it: apt-get install wrk)", args.wrk.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "wrk failed: {}{}", text, String::from_utf8_lossy(&output.stderr));
    eprintln!("{text}");
    parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// Reads `Requests/sec:`, the 50 % and 99 % latencies (`--latency`) and the error counts of a wrk report.
fn parse_wrk(text: &str) -> Option<Load> {
    let field = |prefix: &str| {
        text.lines().find_map(|line| line.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
    };
    let requests_per_sec = field("Requests/sec:")?.parse().ok()?;
    let p50_ms = duration_ms(&field("50%")?)?;
    let p99_ms = duration_ms(&field("99%")?)?;
    // "Non-2xx or 3xx responses: N" and "Socket errors: connect A, read B, write C, timeout D".
    let mut errors = field("Non-2xx or 3xx responses:").and_then(|n| n.parse().ok()).unwrap_or(0);
    if let Some(socket) = field("Socket errors:") {
        errors += socket.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
    }
    Some(Load { requests_per_sec, p50_ms, p99_ms, errors })
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms = match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    };
    Some((ms * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:1/health/live
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  180.11us   4.20ms   90.00%
    Req/Sec    62.51k     2.01k   65.12k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.20ms
     99%    2.01s
  622154 requests in 10.00s, 80.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  62215.31
Transfer/sec:      8.01MB
";
        let load = parse_wrk(report).unwrap();
        assert_eq!(load.requests_per_sec, 62215.31);
        assert_eq!((load.p50_ms, load.p99_ms), (0.812, 2010.0));
        assert_eq!(load.errors, 7);
    }
}
