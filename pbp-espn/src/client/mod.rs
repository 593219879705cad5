//! The ESPN HTTP client.
//!
//! A reqwest client (rustls, gzip, timeouts) wrapped in reqwest-middleware with reqwest-retry's exponential
//! backoff (default 1 s to 30 s, 5 attempts; 5xx, 429, 408 and connection errors are retried, other 4xx are not)
//! and a middleware that honours `Retry-After` on 429. Around that:
//!
//! * conditional requests: `ETag`/`Last-Modified` are remembered per URL and sent back; a `304` reuses the
//!   last body ([`Fetched::not_modified`] tells the caller nothing changed);
//! * one [`CircuitBreaker`] per [`Endpoint`]; a refused request costs nothing on the network;
//! * metrics `espn_polls_total{endpoint,outcome}` and `espn_breaker_state{endpoint}` in the caller's registry (the
//!   gauge reads the breakers at each scrape, so it shows a timed open-to-half-open change with no request).
//!
//! A logical request counts once for the breaker, after its retries: transport errors, 5xx, 429 and bodies
//! that do not parse are failures; 2xx, 304 and other 4xx (the service answered; the request was wrong) are
//! successes.

pub mod breaker;
mod conditional;
mod metrics;
mod retry_after;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use reqwest::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::time::Instant;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permit, PermitKind, Recorded};
pub use metrics::PollOutcome;

use crate::League;
use crate::model::{self, CdnPlayByPlay, CorePlaysPage, ParseError, Scoreboard, Summary, TeamsResponse};
use conditional::ConditionalCache;
use metrics::{Breakers, ClientMetrics};

/// The ESPN endpoints, each with its own circuit breaker and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Site scoreboard.
    Scoreboard,
    /// Site summary (plays, header, boxscore).
    Summary,
    /// Site teams list.
    Teams,
    /// cdn play-by-play page.
    CdnPlayByPlay,
    /// Core-API plays page.
    CorePlays,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 5] =
        [Endpoint::Scoreboard, Endpoint::Summary, Endpoint::Teams, Endpoint::CdnPlayByPlay, Endpoint::CorePlays];

    /// The `endpoint` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Scoreboard => "scoreboard",
            Endpoint::Summary => "summary",
            Endpoint::Teams => "teams",
            Endpoint::CdnPlayByPlay => "cdn_playbyplay",
            Endpoint::CorePlays => "core_plays",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry settings (exponential backoff with jitter between `backoff_base` and `backoff_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per logical request, the first included (default 5).
    pub max_attempts: u32,
    /// Shortest wait before a retry (default 1 s).
    pub backoff_base: Duration,
    /// Longest wait before a retry, and the cap on a `Retry-After` wait (default 30 s).
    pub backoff_max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: 5, backoff_base: Duration::from_secs(1), backoff_max: Duration::from_secs(30) }
    }
}

/// Client settings. [`ClientConfig::default`] targets ESPN; [`ClientConfig::with_base_url`] points every
/// endpoint at one server (the fake ESPN server in tests and demos).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL of the site API (scoreboard, summary, teams).
    pub site_base_url: String,
    /// Base URL of the cdn play-by-play pages.
    pub cdn_base_url: String,
    /// Base URL of the core API.
    pub core_base_url: String,
    /// Whole-request timeout, per attempt (default 10 s).
    pub request_timeout: Duration,
    /// Connection timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Retry and backoff.
    pub retry: RetryConfig,
    /// Circuit breaker, applied to each endpoint separately.
    pub breaker: BreakerConfig,
    /// How many URLs keep their last body for conditional requests (default 256).
    pub conditional_cache_entries: usize,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            site_base_url: "https://site.api.espn.com".to_owned(),
            cdn_base_url: "https://cdn.espn.com".to_owned(),
            core_base_url: "https://sports.core.api.espn.com".to_owned(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            conditional_cache_entries: 256,
            user_agent: concat!("pbp-espn/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl ClientConfig {
    /// Default settings with every endpoint under `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn with_base_url(base_url: &str) -> ClientConfig {
        let base = base_url.trim_end_matches('/').to_owned();
        ClientConfig {
            site_base_url: base.clone(),
            cdn_base_url: base.clone(),
            core_base_url: base,
            ..ClientConfig::default()
        }
    }
}

/// Errors of the ESPN client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be built.
    #[error("could not build the ESPN HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// An id or date that cannot go into a URL.
    #[error("invalid {what} `{value}`: only ASCII letters and digits are allowed")]
    InvalidArgument {
        /// What the value is (`game id`, `date`).
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The endpoint's circuit breaker is open; nothing was sent.
    #[error("{endpoint} circuit breaker is open for another {retry_in:?}")]
    BreakerOpen {
        /// The endpoint.
        endpoint: Endpoint,
        /// Time until the breaker turns half-open.
        retry_in: Duration,
    },
    /// Connection, timeout or middleware failure, after retries.
    #[error("{endpoint} request to {url} failed: {source}")]
    Transport {
        /// The endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest_middleware::Error,
    },
    /// A non-success status, after retries (for 429 and 5xx).
    #[error("{endpoint} request to {url} returned HTTP {status}")]
    Status {
        /// The endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body could not be read.
    #[error("{endpoint} body from {url} could not be read: {source}")]
    Body {
        /// The endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The body is not the expected JSON. It is kept so that callers can hand it on (to a dead-letter queue)
    /// rather than lose it; the message leaves it out.
    #[error("{endpoint} body from {url} is invalid ({len} bytes): {source}", len = .body.len())]
    Decode {
        /// The endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// The parse error, with its JSON path.
        #[source]
        source: ParseError,
        /// The body as received (decompressed), or the remembered body a `304` pointed back to.
        body: Bytes,
    },
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    /// The parsed body.
    pub value: T,
    /// True when the server answered `304` and the last body was reused.
    pub not_modified: bool,
}

/// The ESPN client. Share it behind an [`std::sync::Arc`]; all methods take `&self`.
#[derive(Debug)]
pub struct EspnClient {
    http: ClientWithMiddleware,
    config: ClientConfig,
    breakers: Breakers,
    conditional: ConditionalCache,
    metrics: ClientMetrics,
}

impl EspnClient {
    /// Builds a client and registers its metrics into `registry`.
    pub fn new(config: ClientConfig, registry: &mut Registry) -> Result<EspnClient, ClientError> {
        // reqwest is built without a bundled crypto provider (to avoid a C toolchain dependency); use ring.
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let reqwest_client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .gzip(true)
            .build()
            .map_err(ClientError::Build)?;
        let (retry, retry_after) = retry_after::retry_middlewares(&config.retry);
        let http = ClientBuilder::new(reqwest_client).with(retry).with(retry_after).build();
        let breakers: HashMap<_, _> =
            Endpoint::ALL.into_iter().map(|e| (e, CircuitBreaker::new(config.breaker))).collect();
        let breakers = Arc::new(Mutex::new(breakers));
        Ok(EspnClient {
            http,
            conditional: ConditionalCache::new(config.conditional_cache_entries),
            metrics: ClientMetrics::register(registry, breakers.clone()),
            breakers,
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The breaker state of `endpoint` now.
    pub fn breaker_state(&self, endpoint: Endpoint) -> BreakerState {
        self.breakers.lock().get_mut(&endpoint).map_or(BreakerState::Closed, |b| b.state(Instant::now()))
    }

    /// URL of the scoreboard; `date` is `YYYYMMDD` (ESPN's default is today, US time).
    pub fn scoreboard_url(&self, league: League, date: Option<&str>) -> Result<String, ClientError> {
        let mut url = format!("{}/apis/site/v2/sports/basketball/{league}/scoreboard", self.config.site_base_url);
        if let Some(date) = date {
            url.push_str("?dates=");
            url.push_str(checked("date", date)?);
        }
        Ok(url)
    }

    /// URL of a game's summary.
    pub fn summary_url(&self, league: League, game_id: &str) -> Result<String, ClientError> {
        let id = checked("game id", game_id)?;
        Ok(format!("{}/apis/site/v2/sports/basketball/{league}/summary?event={id}", self.config.site_base_url))
    }

    /// URL of the teams list.
    pub fn teams_url(&self, league: League) -> String {
        format!("{}/apis/site/v2/sports/basketball/{league}/teams", self.config.site_base_url)
    }

    /// URL of a game's cdn play-by-play page.
    pub fn cdn_play_by_play_url(&self, league: League, game_id: &str) -> Result<String, ClientError> {
        let id = checked("game id", game_id)?;
        Ok(format!("{}/core/{league}/playbyplay?gameId={id}&xhr=1", self.config.cdn_base_url))
    }

    /// URL of a game's core-API plays (one page of up to 1000).
    pub fn core_plays_url(&self, league: League, game_id: &str) -> Result<String, ClientError> {
        let id = checked("game id", game_id)?;
        Ok(format!(
            "{}/v2/sports/basketball/leagues/{league}/events/{id}/competitions/{id}/plays?limit=1000",
            self.config.core_base_url
        ))
    }

    /// Fetches a scoreboard.
    pub async fn scoreboard(&self, league: League, date: Option<&str>) -> Result<Fetched<Scoreboard>, ClientError> {
        let url = self.scoreboard_url(league, date)?;
        self.get(Endpoint::Scoreboard, &url, model::parse_scoreboard).await
    }

    /// Fetches a game's summary.
    pub async fn summary(&self, league: League, game_id: &str) -> Result<Fetched<Summary>, ClientError> {
        let url = self.summary_url(league, game_id)?;
        self.get(Endpoint::Summary, &url, model::parse_summary).await
    }

    /// Fetches the teams list.
    pub async fn teams(&self, league: League) -> Result<Fetched<TeamsResponse>, ClientError> {
        let url = self.teams_url(league);
        self.get(Endpoint::Teams, &url, model::parse_teams).await
    }

    /// Fetches a game's cdn play-by-play page.
    pub async fn cdn_play_by_play(&self, league: League, game_id: &str) -> Result<Fetched<CdnPlayByPlay>, ClientError> {
        let url = self.cdn_play_by_play_url(league, game_id)?;
        self.get(Endpoint::CdnPlayByPlay, &url, model::parse_cdn_play_by_play).await
    }

    /// Fetches a game's core-API plays page.
    pub async fn core_plays(&self, league: League, game_id: &str) -> Result<Fetched<CorePlaysPage>, ClientError> {
        let url = self.core_plays_url(league, game_id)?;
        self.get(Endpoint::CorePlays, &url, model::parse_core_plays_page).await
    }

    /// One logical GET: breaker check, conditional headers, retries, parse, then breaker and metric bookkeeping.
    async fn get<T>(
        &self,
        endpoint: Endpoint,
        url: &str,
        parse: fn(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Fetched<T>, ClientError> {
        let admitted = self.breakers.lock().get_mut(&endpoint).map(|breaker| breaker.try_acquire(Instant::now()));
        let permit = match admitted {
            Some(Ok(permit)) => Some(permit),
            Some(Err(retry_in)) => {
                self.metrics.poll(endpoint, PollOutcome::BreakerOpen);
                return Err(ClientError::BreakerOpen { endpoint, retry_in });
            }
            None => None,
        };
        let result = self.fetch_body(endpoint, url).await.and_then(|(body, not_modified)| match parse(&body) {
            Ok(value) => Ok(Fetched { value, not_modified }),
            Err(source) => {
                Err((PollOutcome::DecodeError, ClientError::Decode { endpoint, url: url.to_owned(), source, body }))
            }
        });
        let (outcome, counts_as_failure) = match &result {
            Ok(fetched) if fetched.not_modified => (PollOutcome::NotModified, false),
            Ok(_) => (PollOutcome::Ok, false),
            Err((outcome, _)) => (*outcome, *outcome != PollOutcome::ClientError),
        };
        self.metrics.poll(endpoint, outcome);
        if let (Some(breaker), Some(permit)) = (self.breakers.lock().get_mut(&endpoint), permit) {
            let now = Instant::now();
            // A stale outcome (the breaker changed state while the request was out) is left out on purpose: see
            // `CircuitBreaker`.
            if counts_as_failure {
                breaker.on_failure(permit, now);
            } else {
                breaker.on_success(permit, now);
            }
        }
        result.map_err(|(_, error)| error)
    }

    async fn fetch_body(&self, endpoint: Endpoint, url: &str) -> Result<(Bytes, bool), (PollOutcome, ClientError)> {
        let mut request = self.http.get(url);
        if let Some(validators) = self.conditional.validators(url) {
            if let Some(etag) = validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(last_modified) = validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, last_modified);
            }
        }
        let response = request.send().await.map_err(|source| {
            (PollOutcome::TransportError, ClientError::Transport { endpoint, url: url.to_owned(), source })
        })?;
        let status = response.status();
        let status_error =
            |outcome| (outcome, ClientError::Status { endpoint, url: url.to_owned(), status: status.as_u16() });
        if status == StatusCode::NOT_MODIFIED {
            // A 304 is only possible after we sent validators, so the body is normally there; if it was evicted
            // in between, report the status rather than invent a body.
            return self
                .conditional
                .body(url)
                .map(|body| (body, true))
                .ok_or_else(|| status_error(PollOutcome::ServerError));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(status_error(PollOutcome::RateLimited));
        }
        if status.is_client_error() {
            return Err(status_error(PollOutcome::ClientError));
        }
        if !status.is_success() {
            return Err(status_error(PollOutcome::ServerError));
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|source| {
            (PollOutcome::TransportError, ClientError::Body { endpoint, url: url.to_owned(), source })
        })?;
        self.conditional.store(url, &headers, &body);
        Ok((body, false))
    }
}

fn checked<'a>(what: &'static str, value: &'a str) -> Result<&'a str, ClientError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(value)
    } else {
        Err(ClientError::InvalidArgument { what, value: value.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_espn_paths_and_reject_injection() {
        let mut registry = Registry::default();
        let client = EspnClient::new(ClientConfig::with_base_url("http://127.0.0.1:9/"), &mut registry)
            .unwrap_or_else(|e| panic!("client must build: {e}"));
        assert_eq!(
            client.scoreboard_url(League::Wnba, Some("20250803")).ok().as_deref(),
            Some("http://127.0.0.1:9/apis/site/v2/sports/basketball/wnba/scoreboard?dates=20250803")
        );
        assert_eq!(
            client.summary_url(League::MensCollege, "401828387").ok().as_deref(),
            Some("http://127.0.0.1:9/apis/site/v2/sports/basketball/mens-college-basketball/summary?event=401828387")
        );
        assert_eq!(
            client.cdn_play_by_play_url(League::Nba, "401859966").ok().as_deref(),
            Some("http://127.0.0.1:9/core/nba/playbyplay?gameId=401859966&xhr=1")
        );
        assert!(client.summary_url(League::Nba, "1&x=2").is_err());
        assert!(client.scoreboard_url(League::Nba, Some("")).is_err());
    }
}
