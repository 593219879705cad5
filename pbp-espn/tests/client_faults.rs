//! The real client against the fake server: retries, 4xx, Retry-After, timeouts, bad bodies, the circuit breaker,
//! conditional requests and metrics.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use pbp_espn::client::{BreakerConfig, BreakerState, Endpoint, RetryConfig};
use pbp_espn::fake::{FakeEspn, FakeOptions, Fault, FaultRule, RunningFake};
use pbp_espn::{ClientConfig, ClientError, EspnClient, League};
use prometheus_client::registry::Registry;

const GAME: &str = "401585607";
const SUMMARY: &str = "summary?event=401585607";

async fn start() -> anyhow::Result<(FakeEspn, RunningFake)> {
    let fake = FakeEspn::from_dir(&common::fixtures_dir(), FakeOptions::default())?;
    let running = fake.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    Ok((fake, running))
}

fn fast_config(base_url: &str) -> ClientConfig {
    ClientConfig {
        retry: RetryConfig {
            max_attempts: 5,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
        },
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::with_base_url(base_url)
    }
}

fn metrics_text(registry: &Registry) -> anyhow::Result<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

#[tokio::test]
async fn server_errors_are_retried_until_success() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    fake.push_fault(FaultRule::times(SUMMARY, Fault::Status(503), 2));
    let summary = client.summary(League::Nba, GAME).await?;
    assert_eq!(summary.value.plays.len(), 450);
    assert_eq!(fake.request_count(SUMMARY), 3, "two failures, then the success");
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_polls_total{endpoint="summary",outcome="ok"} 1"#), "{text}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn retries_stop_after_max_attempts() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(500)));
    let error = client.summary(League::Nba, GAME).await.err();
    assert!(matches!(error, Some(ClientError::Status { status: 500, .. })), "{error:?}");
    assert_eq!(fake.request_count(SUMMARY), 5);
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_polls_total{endpoint="summary",outcome="server_error"} 1"#), "{text}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn client_errors_are_not_retried() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    let missing = client.summary(League::Nba, "1").await.err();
    assert!(matches!(missing, Some(ClientError::Status { status: 404, .. })), "{missing:?}");
    assert_eq!(fake.request_count("summary?event=1"), 1);
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(403)));
    let forbidden = client.summary(League::Nba, GAME).await.err();
    assert!(matches!(forbidden, Some(ClientError::Status { status: 403, .. })), "{forbidden:?}");
    assert_eq!(fake.request_count(SUMMARY), 1);
    // 4xx means the service answered: the breaker stays closed however many there are.
    for _ in 0..6 {
        assert!(client.summary(League::Nba, GAME).await.is_err());
    }
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Closed);
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_servers_delay() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.retry.backoff_max = Duration::from_secs(5);
    let client = EspnClient::new(config, &mut registry)?;
    fake.push_fault(FaultRule::times(SUMMARY, Fault::RateLimited { retry_after_secs: 1 }, 1));
    let started = Instant::now();
    let summary = client.summary(League::Nba, GAME).await?;
    assert!(started.elapsed() >= Duration::from_secs(1), "the retry must wait for Retry-After");
    assert_eq!(summary.value.header.id, GAME);
    assert_eq!(fake.request_count(SUMMARY), 2);
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn no_retry_after_wait_follows_the_last_attempt() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.retry.max_attempts = 2;
    config.retry.backoff_max = Duration::from_secs(5);
    let client = EspnClient::new(config, &mut registry)?;
    fake.push_fault(FaultRule::always(SUMMARY, Fault::RateLimited { retry_after_secs: 2 }));
    let started = Instant::now();
    let error = client.summary(League::Nba, GAME).await.err();
    let took = started.elapsed();
    assert!(matches!(error, Some(ClientError::Status { status: 429, .. })), "{error:?}");
    assert_eq!(fake.request_count(SUMMARY), 2);
    // One wait of 2 s before the retry; waiting again after the second 429 would make it 4 s.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(3500), "took {took:?}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn slow_responses_time_out_and_are_retried() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.request_timeout = Duration::from_millis(600);
    config.retry.max_attempts = 2;
    let client = EspnClient::new(config, &mut registry)?;
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Delay(Duration::from_secs(3))));
    let error = client.summary(League::Nba, GAME).await.err();
    assert!(matches!(error, Some(ClientError::Transport { .. })), "{error:?}");
    assert_eq!(fake.request_count(SUMMARY), 2);
    fake.clear_faults();
    fake.push_fault(FaultRule::times(SUMMARY, Fault::Delay(Duration::from_secs(3)), 1));
    assert!(client.summary(League::Nba, GAME).await.is_ok(), "one slow response, then a fast one");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn truncated_and_malformed_bodies_are_decode_errors() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    fake.push_fault(FaultRule::times(SUMMARY, Fault::Truncate, 1));
    let truncated = client.summary(League::Nba, GAME).await.err();
    assert!(matches!(truncated, Some(ClientError::Decode { .. })), "{truncated:?}");
    fake.push_fault(FaultRule::times(SUMMARY, Fault::Malformed, 1));
    let malformed = client.summary(League::Nba, GAME).await.err();
    let Some(ClientError::Decode { body, url, .. }) = &malformed else { panic!("{malformed:?}") };
    assert!(body.starts_with(b"<!doctype html>"), "the error carries the bytes received: {body:?}");
    assert!(url.ends_with(&format!("summary?event={GAME}")), "{url}");
    let message = malformed.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("bytes") && !message.contains("doctype"), "the message leaves the body out: {message}");
    assert!(client.summary(League::Nba, GAME).await.is_ok());
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_polls_total{endpoint="summary",outcome="decode_error"} 2"#), "{text}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_breaker_opens_refuses_then_half_opens_and_closes() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.retry.max_attempts = 1;
    config.breaker =
        BreakerConfig { failure_threshold: 5, open_duration: Duration::from_millis(300), success_threshold: 2 };
    let client = EspnClient::new(config, &mut registry)?;
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(503)));
    for _ in 0..5 {
        assert!(matches!(client.summary(League::Nba, GAME).await, Err(ClientError::Status { status: 503, .. })));
    }
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Open);
    let refused = client.summary(League::Nba, GAME).await.err();
    assert!(matches!(refused, Some(ClientError::BreakerOpen { endpoint: Endpoint::Summary, .. })), "{refused:?}");
    assert_eq!(fake.request_count(SUMMARY), 5, "an open breaker sends nothing");
    // Other endpoints have their own breaker.
    assert!(client.teams(League::Nba).await.is_ok());
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_breaker_state{endpoint="summary"} 2"#), "{text}");
    assert!(text.contains(r#"espn_polls_total{endpoint="summary",outcome="breaker_open"} 1"#), "{text}");

    fake.clear_faults();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::HalfOpen);
    assert!(client.summary(League::Nba, GAME).await.is_ok());
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::HalfOpen);
    assert!(client.summary(League::Nba, GAME).await.is_ok());
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Closed);
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_breaker_state{endpoint="summary"} 0"#), "{text}");

    // A failure while half-open reopens at once.
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(503)));
    for _ in 0..5 {
        assert!(client.summary(League::Nba, GAME).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(client.summary(League::Nba, GAME).await.is_err());
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Open);
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_breaker_gauge_turns_half_open_when_the_open_time_is_up_without_any_request() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.retry.max_attempts = 1;
    config.breaker =
        BreakerConfig { failure_threshold: 2, open_duration: Duration::from_secs(60), success_threshold: 1 };
    let client = EspnClient::new(config, &mut registry)?;
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(503)));
    for _ in 0..2 {
        assert!(client.summary(League::Nba, GAME).await.is_err());
    }
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_breaker_state{endpoint="summary"} 2"#), "{text}");
    assert!(text.contains(r#"espn_breaker_state{endpoint="teams"} 0"#), "every endpoint is reported: {text}");

    // Nothing is sent from here on: the clock alone moves the breaker, and the gauge follows.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(59)).await;
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_breaker_state{endpoint="summary"} 2"#), "{text}");
    tokio::time::advance(Duration::from_secs(1)).await;
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_breaker_state{endpoint="summary"} 1"#), "{text}");
    assert_eq!(fake.request_count(SUMMARY), 2);
    tokio::time::resume();
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_request_admitted_while_closed_is_not_the_half_open_probe() -> anyhow::Result<()> {
    const SLOW_GAME: &str = "401828387";
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let mut config = fast_config(&running.base_url());
    config.retry.max_attempts = 1;
    config.breaker =
        BreakerConfig { failure_threshold: 2, open_duration: Duration::from_millis(300), success_threshold: 1 };
    let client = std::sync::Arc::new(EspnClient::new(config, &mut registry)?);
    // A summary request goes out while the breaker is closed and answers (200) only after the breaker has opened
    // and turned half-open.
    fake.push_fault(FaultRule::times(SLOW_GAME, Fault::Delay(Duration::from_millis(900)), 1));
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.summary(League::MensCollege, SLOW_GAME).await.map(|_| ()) }
    });
    let admitted = Instant::now();
    while fake.request_count(&format!("summary?event={SLOW_GAME}")) == 0 {
        assert!(admitted.elapsed() < Duration::from_secs(5), "the slow request never reached the server");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.push_fault(FaultRule::always(SUMMARY, Fault::Status(503)));
    for _ in 0..2 {
        assert!(client.summary(League::Nba, GAME).await.is_err());
    }
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::HalfOpen);
    slow.await??;
    // Its success says nothing about the server since the breaker opened: no probe has answered yet.
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::HalfOpen);
    fake.clear_faults();
    assert!(client.summary(League::Nba, GAME).await.is_ok(), "the probe");
    assert_eq!(client.breaker_state(Endpoint::Summary), BreakerState::Closed);
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn conditional_requests_reuse_the_last_body() -> anyhow::Result<()> {
    let (fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    let first = client.summary(League::Nba, GAME).await?;
    assert!(fake.gzipped_responses() >= 1, "the client asks for gzip and decompresses it");
    let second = client.summary(League::Nba, GAME).await?;
    assert!(!first.not_modified);
    assert!(second.not_modified, "the fake server answers a matching If-None-Match with 304");
    assert_eq!(first.value, second.value);
    let text = metrics_text(&registry)?;
    assert!(text.contains(r#"espn_polls_total{endpoint="summary",outcome="not_modified"} 1"#), "{text}");
    running.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_endpoint_is_served_at_espns_paths() -> anyhow::Result<()> {
    let (_fake, running) = start().await?;
    let mut registry = Registry::default();
    let client = EspnClient::new(fast_config(&running.base_url()), &mut registry)?;
    let teams = client.teams(League::Nba).await?;
    assert_eq!(teams.value.teams().count(), 30);
    let board = client.scoreboard(League::Nba, Some("20241201")).await?;
    assert_eq!(board.value.events.len(), 10);
    assert!(board.value.events.iter().all(|event| event.is_final()));
    let live_board = client.scoreboard(League::Nba, Some("20260502")).await?;
    assert!(live_board.value.events.iter().any(|event| event.is_live()));
    let today = client.scoreboard(League::Nba, None).await?;
    assert!(today.value.events.iter().any(|event| event.id == GAME), "loaded summaries make up today's board");
    let cdn = client.cdn_play_by_play(League::Nba, "401859966").await?;
    assert_eq!(cdn.value.game_package.plays.len(), 498);
    let core = client.core_plays(League::Nba, "401584793").await?;
    assert_eq!(core.value.items.len(), 25);
    let college = client.summary(League::MensCollege, "401828387").await?;
    assert_eq!(college.value.plays.len(), 440);
    let wnba = client.summary(League::Wnba, "401736292").await?;
    assert_eq!(wnba.value.plays.len(), 408);
    running.shutdown().await;
    Ok(())
}
