//! A small circuit breaker, one per endpoint.
//!
//! Closed: requests flow; `failure_threshold` consecutive failures open it. Open: requests are refused without
//! touching the network until `open_duration` has passed, then it is half-open. Half-open: one probe request at a
//! time is let through (others are refused as if open, retry soon); `success_threshold` consecutive successful
//! probes close it, a failed probe opens it again for another `open_duration`.
//!
//! Time is passed in (`now`, on Tokio's clock so that a paused test clock drives it), so the state machine is
//! tested without sleeping. (The maintained breaker crates either pull in their own runtime abstractions or
//! lack the half-open success count, hence this module.)

use std::time::Duration;

use tokio::time::Instant;

/// How soon a request refused because a half-open probe is out may try again.
const HALF_OPEN_RETRY: Duration = Duration::from_millis(250);

/// Circuit-breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker (default 5).
    pub failure_threshold: u32,
    /// How long an open breaker refuses requests before it turns half-open (default 60 s).
    pub open_duration: Duration,
    /// Consecutive successes that close a half-open breaker (default 2).
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, open_duration: Duration::from_secs(60), success_threshold: 2 }
    }
}

/// The three breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused.
    Open,
    /// Trial requests flow; successes close the breaker, a failure reopens it.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `espn_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// One endpoint's breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    consecutive_successes: u32,
    opened_at: Option<Instant>,
    /// When the half-open probe that has not answered yet was let through. A probe whose request was
    /// cancelled never answers, so one older than `open_duration` no longer holds the others back.
    probing: Option<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker. Thresholds of 0 are treated as 1.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            success_threshold: config.success_threshold.max(1),
            ..config
        };
        CircuitBreaker {
            config,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            consecutive_successes: 0,
            opened_at: None,
            probing: None,
        }
    }

    /// The state at `now` (an open breaker whose time is up reports half-open).
    pub fn state(&mut self, now: Instant) -> BreakerState {
        if self.state == BreakerState::Open
            && self.opened_at.is_some_and(|opened| now.saturating_duration_since(opened) >= self.config.open_duration)
        {
            self.state = BreakerState::HalfOpen;
            self.consecutive_successes = 0;
        }
        self.state
    }

    /// May a request go out at `now`? `Err` carries the time left until half-open.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state(now) {
            BreakerState::Closed => Ok(()),
            BreakerState::HalfOpen
                if self.probing.is_none_or(|sent| now.saturating_duration_since(sent) >= self.config.open_duration) =>
            {
                self.probing = Some(now);
                Ok(())
            }
            // Another probe is out: wait for its answer rather than pile onto a recovering server.
            BreakerState::HalfOpen => Err(HALF_OPEN_RETRY),
            BreakerState::Open => {
                let elapsed = self.opened_at.map_or(Duration::ZERO, |opened| now.saturating_duration_since(opened));
                Err(self.config.open_duration.saturating_sub(elapsed))
            }
        }
    }

    /// Records a successful request.
    pub fn on_success(&mut self, now: Instant) {
        self.consecutive_failures = 0;
        self.probing = None;
        if self.state(now) == BreakerState::HalfOpen {
            self.consecutive_successes += 1;
            if self.consecutive_successes >= self.config.success_threshold {
                self.state = BreakerState::Closed;
                self.consecutive_successes = 0;
                self.opened_at = None;
            }
        }
    }

    /// Records a failed request.
    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_successes = 0;
        self.probing = None;
        match self.state(now) {
            BreakerState::HalfOpen => self.open(now),
            BreakerState::Closed => {
                self.consecutive_failures += 1;
                if self.consecutive_failures >= self.config.failure_threshold {
                    self.open(now);
                }
            }
            // A request admitted before the breaker opened: it changes nothing.
            BreakerState::Open => {}
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = BreakerState::Open;
        self.opened_at = Some(now);
        self.consecutive_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    #[test]
    fn opens_after_five_consecutive_failures() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..4 {
            b.on_failure(start);
        }
        assert_eq!(b.state(start), BreakerState::Closed);
        b.on_success(start);
        for _ in 0..4 {
            b.on_failure(start);
        }
        assert_eq!(b.state(start), BreakerState::Closed, "a success resets the count");
        b.on_failure(start);
        assert_eq!(b.state(start), BreakerState::Open);
        assert_eq!(b.try_acquire(start + Duration::from_secs(10)), Err(Duration::from_secs(50)));
    }

    #[test]
    fn half_open_after_the_open_duration_then_closed_after_two_successes() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.on_failure(start);
        }
        let later = start + Duration::from_secs(60);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(later), Ok(()));
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn a_failure_while_half_open_reopens() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.on_failure(start);
        }
        let later = start + Duration::from_secs(61);
        b.on_success(later);
        b.on_failure(later);
        assert_eq!(b.state(later), BreakerState::Open);
        assert!(b.try_acquire(later + Duration::from_secs(59)).is_err());
        assert_eq!(b.try_acquire(later + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn thresholds_are_configurable() {
        let config =
            BreakerConfig { failure_threshold: 2, open_duration: Duration::from_millis(5), success_threshold: 1 };
        let start = Instant::now();
        let mut b = CircuitBreaker::new(config);
        b.on_failure(start);
        b.on_failure(start);
        assert_eq!(b.state(start), BreakerState::Open);
        let later = start + Duration::from_millis(5);
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(BreakerState::Open.gauge_value(), 2);
    }

    #[test]
    fn half_open_lets_one_probe_through_at_a_time() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.on_failure(start);
        }
        let later = start + Duration::from_secs(60);
        assert_eq!(b.try_acquire(later), Ok(()), "the first probe goes");
        assert_eq!(b.try_acquire(later), Err(HALF_OPEN_RETRY), "a second waits for the first");
        b.on_success(later);
        assert_eq!(b.try_acquire(later), Ok(()), "the next probe after an answer");
        b.on_success(later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.try_acquire(later), Ok(()));
        assert_eq!(b.try_acquire(later), Ok(()), "closed: no limit");
    }

    #[test]
    fn a_probe_that_never_answers_stops_holding_the_others_back() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..5 {
            b.on_failure(start);
        }
        let half_open = start + Duration::from_secs(60);
        assert_eq!(b.try_acquire(half_open), Ok(()));
        assert!(b.try_acquire(half_open + Duration::from_secs(59)).is_err());
        assert_eq!(b.try_acquire(half_open + Duration::from_secs(60)), Ok(()), "the first probe was cancelled");
    }
}
