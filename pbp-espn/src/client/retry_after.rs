//! Honouring `Retry-After` on 429: reqwest-retry's backoff does not read the header, so this middleware, placed
//! inside the retry middleware, waits what the server asked (capped) before handing the 429 back; the retry
//! middleware then adds its own backoff. A retry therefore never comes sooner than the server asked.
//!
//! It waits only when a retry will follow: after the last attempt the 429 goes straight back to the caller. It
//! knows which attempt it is serving by counting in the request's extensions (reqwest-retry hands the same
//! extensions to every attempt) and asks the retry middleware's own policy, a copy of it, whether that attempt
//! is retried. The policy is bounded by a number of retries only, so the copy decides as the original does.

use std::time::{Duration, SystemTime};

use http::Extensions;
use http::header::RETRY_AFTER;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryDecision, RetryPolicy, RetryTransientMiddleware};

use super::RetryConfig;

/// The two retry middlewares of the client, outermost first, sharing one policy built from `config`.
pub(crate) fn retry_middlewares(
    config: &RetryConfig,
) -> (RetryTransientMiddleware<ExponentialBackoff>, RetryAfterMiddleware) {
    let base = config.backoff_base;
    let max = config.backoff_max.max(base);
    let policy = ExponentialBackoff::builder()
        .retry_bounds(base, max)
        .build_with_max_retries(config.max_attempts.saturating_sub(1));
    (RetryTransientMiddleware::new_with_policy(policy), RetryAfterMiddleware { max_wait: max, policy })
}

/// Sleeps for a 429 response's `Retry-After` (seconds or HTTP date), at most `max_wait`, when the retry
/// middleware will retry it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryAfterMiddleware {
    max_wait: Duration,
    /// The retry middleware's policy: it says whether the attempt being served is the last.
    policy: ExponentialBackoff,
}

/// How many attempts of this logical request went out before the one being served.
#[derive(Debug, Clone, Copy)]
struct PastAttempts(u32);

#[async_trait::async_trait]
impl Middleware for RetryAfterMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let past_attempts = extensions.get::<PastAttempts>().map_or(0, |past| past.0);
        extensions.insert(PastAttempts(past_attempts + 1));
        let response = next.run(request, extensions).await?;
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return Ok(response);
        }
        let retried = matches!(self.policy.should_retry(SystemTime::now(), past_attempts), RetryDecision::Retry { .. });
        if retried
            && let Some(wait) = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()))
        {
            let wait = wait.min(self.max_wait);
            tracing::debug!(wait_ms = wait.as_millis() as u64, url = %response.url(), "Honouring Retry-After.");
            tokio::time::sleep(wait).await;
        }
        Ok(response)
    }
}

/// `Retry-After: 120` or `Retry-After: Fri, 31 Dec 1999 23:59:59 GMT`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use reqwest_middleware::ClientBuilder;
    use tokio::time::Instant;

    use super::*;

    /// Stands in for the network: answers every attempt `429` with `Retry-After: 10`, and counts them.
    struct RateLimitedServer {
        attempts: Arc<AtomicU32>,
    }

    #[async_trait::async_trait]
    impl Middleware for RateLimitedServer {
        async fn handle(
            &self,
            _request: Request,
            _extensions: &mut Extensions,
            _next: Next<'_>,
        ) -> reqwest_middleware::Result<Response> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let response = http::Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(RETRY_AFTER, "10")
                .body(Vec::new())
                .map_err(|e| reqwest_middleware::Error::Middleware(e.into()))?;
            Ok(Response::from(response))
        }
    }

    /// Sends one logical request through the client's retry middlewares to an always rate-limited server:
    /// attempts made, and the time they took on the (paused) clock.
    async fn rate_limited(max_attempts: u32) -> (u32, Duration) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config =
            RetryConfig { max_attempts, backoff_base: Duration::from_millis(1), backoff_max: Duration::from_secs(30) };
        let (retry, retry_after) = retry_middlewares(&config);
        let attempts = Arc::new(AtomicU32::new(0));
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(retry)
            .with(retry_after)
            .with(RateLimitedServer { attempts: attempts.clone() })
            .build();
        let started = Instant::now();
        let response = client.get("http://127.0.0.1:9/").send().await;
        assert_eq!(response.map(|r| r.status()).ok(), Some(StatusCode::TOO_MANY_REQUESTS));
        (attempts.load(Ordering::SeqCst), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_retry_after_before_each_retry_and_not_after_the_last_attempt() {
        let (attempts, took) = rate_limited(3).await;
        assert_eq!(attempts, 3);
        // Two waits of 10 s, each followed by a backoff of a few milliseconds; a third wait would make it 30 s.
        assert!(took >= Duration::from_secs(20) && took < Duration::from_secs(21), "took {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_attempt_does_not_wait() {
        let (attempts, took) = rate_limited(1).await;
        assert_eq!(attempts, 1);
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }

    #[test]
    fn seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
