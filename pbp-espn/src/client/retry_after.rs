//! Honouring `Retry-After` on 429: reqwest-retry's backoff does not read the header, so this middleware, placed
//! inside the retry middleware, waits what the server asked (capped) before handing the 429 back; the retry
//! middleware then adds its own backoff. A retry therefore never comes sooner than the server asked.

use std::time::{Duration, SystemTime};

use http::Extensions;
use http::header::RETRY_AFTER;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

/// Sleeps for a 429 response's `Retry-After` (seconds or HTTP date), at most `max_wait`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryAfterMiddleware {
    pub(crate) max_wait: Duration,
}

#[async_trait::async_trait]
impl Middleware for RetryAfterMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let response = next.run(request, extensions).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS
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
    use super::*;

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
