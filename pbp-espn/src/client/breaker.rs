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

/// Which kind of request a [`Permit`] lets out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitKind {
    /// A request while the breaker is closed.
    Normal,
    /// The one trial request of a half-open breaker.
    Probe,
}

/// Leave for one request to go out, from [`CircuitBreaker::try_acquire`]; its outcome is handed back with it
/// ([`CircuitBreaker::on_success`], [`CircuitBreaker::on_failure`]), so the breaker knows under which state
/// the request was admitted. Not `Clone`: one outcome per admitted request.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "hand the permit back with the request's outcome"]
pub struct Permit {
    kind: PermitKind,
    generation: u64,
}

impl Permit {
    /// Whether this request is a normal one or the half-open probe.
    pub fn kind(&self) -> PermitKind {
        self.kind
    }
}

/// What an outcome handed back to the breaker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// It counted: a request of the current closed period, or the outstanding probe.
    Counted,
    /// It was ignored: the request was admitted before the breaker last changed state (or it is a probe that a
    /// later probe replaced), so it says nothing about the state the breaker is in now.
    Stale,
}

/// One endpoint's breaker.
///
/// Every request carries the breaker's *generation* at admission in its [`Permit`]. The generation moves on
/// whenever the state changes and whenever a probe is let out, so an outcome counts only if nothing has
/// changed since its request was admitted: a closed-state request that answers after the breaker opened (or
/// turned half-open, or closed again) is stale and counts for nothing, in either direction; only the probe's
/// own answer moves a half-open breaker. Stale outcomes still show in `espn_polls_total`.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    generation: u64,
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
            generation: 0,
            consecutive_failures: 0,
            consecutive_successes: 0,
            opened_at: None,
            probing: None,
        }
    }

    /// The state at `now` (an open breaker whose time is up turns half-open here).
    pub fn state(&mut self, now: Instant) -> BreakerState {
        if self.state == BreakerState::Open
            && self.opened_at.is_some_and(|opened| now.saturating_duration_since(opened) >= self.config.open_duration)
        {
            self.enter(BreakerState::HalfOpen);
        }
        self.state
    }

    /// May a request go out at `now`? `Ok` carries the request's permit, `Err` how long until it may try again.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Duration> {
        match self.state(now) {
            BreakerState::Closed => Ok(Permit { kind: PermitKind::Normal, generation: self.generation }),
            BreakerState::HalfOpen
                if self.probing.is_none_or(|sent| now.saturating_duration_since(sent) >= self.config.open_duration) =>
            {
                // A new generation per probe: the answer of a probe given up on cannot pass for this one's.
                self.generation += 1;
                self.probing = Some(now);
                Ok(Permit { kind: PermitKind::Probe, generation: self.generation })
            }
            // Another probe is out: wait for its answer rather than pile onto a recovering server.
            BreakerState::HalfOpen => Err(HALF_OPEN_RETRY),
            BreakerState::Open => {
                let elapsed = self.opened_at.map_or(Duration::ZERO, |opened| now.saturating_duration_since(opened));
                Err(self.config.open_duration.saturating_sub(elapsed))
            }
        }
    }

    /// Records that the request of `permit` succeeded.
    pub fn on_success(&mut self, permit: Permit, now: Instant) -> Recorded {
        if self.is_stale(&permit, now) {
            return Recorded::Stale;
        }
        match self.state {
            BreakerState::Closed => self.consecutive_failures = 0,
            BreakerState::HalfOpen => {
                self.probing = None;
                self.consecutive_successes += 1;
                if self.consecutive_successes >= self.config.success_threshold {
                    self.enter(BreakerState::Closed);
                }
            }
            // No permit is given out while open, so a current one never meets this state.
            BreakerState::Open => {}
        }
        Recorded::Counted
    }

    /// Records that the request of `permit` failed.
    pub fn on_failure(&mut self, permit: Permit, now: Instant) -> Recorded {
        if self.is_stale(&permit, now) {
            return Recorded::Stale;
        }
        match self.state {
            BreakerState::HalfOpen => self.open(now),
            BreakerState::Closed => {
                self.consecutive_failures += 1;
                if self.consecutive_failures >= self.config.failure_threshold {
                    self.open(now);
                }
            }
            BreakerState::Open => {}
        }
        Recorded::Counted
    }

    /// True if the breaker changed state (or let out another probe) since `permit` was given.
    fn is_stale(&mut self, permit: &Permit, now: Instant) -> bool {
        self.state(now);
        permit.generation != self.generation
    }

    fn open(&mut self, now: Instant) {
        self.enter(BreakerState::Open);
        self.opened_at = Some(now);
    }

    /// Moves to `state`, starting a new generation with fresh counts.
    fn enter(&mut self, state: BreakerState) {
        self.state = state;
        self.generation += 1;
        self.consecutive_failures = 0;
        self.consecutive_successes = 0;
        self.probing = None;
        if state == BreakerState::Closed {
            self.opened_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    /// A permit for a request at `now`; the breaker must let it out.
    fn admit(b: &mut CircuitBreaker, now: Instant) -> Permit {
        b.try_acquire(now).unwrap_or_else(|wait| panic!("refused for {wait:?}"))
    }

    fn fail(b: &mut CircuitBreaker, now: Instant) -> Recorded {
        let permit = admit(b, now);
        b.on_failure(permit, now)
    }

    fn succeed(b: &mut CircuitBreaker, now: Instant) -> Recorded {
        let permit = admit(b, now);
        b.on_success(permit, now)
    }

    /// Opens a default breaker at `at`.
    fn opened(at: Instant) -> CircuitBreaker {
        let mut b = breaker();
        for _ in 0..5 {
            fail(&mut b, at);
        }
        assert_eq!(b.state(at), BreakerState::Open);
        b
    }

    #[test]
    fn opens_after_five_consecutive_failures() {
        let start = Instant::now();
        let mut b = breaker();
        for _ in 0..4 {
            fail(&mut b, start);
        }
        assert_eq!(b.state(start), BreakerState::Closed);
        succeed(&mut b, start);
        for _ in 0..4 {
            fail(&mut b, start);
        }
        assert_eq!(b.state(start), BreakerState::Closed, "a success resets the count");
        fail(&mut b, start);
        assert_eq!(b.state(start), BreakerState::Open);
        assert_eq!(b.try_acquire(start + Duration::from_secs(10)), Err(Duration::from_secs(50)));
    }

    #[test]
    fn half_open_after_the_open_duration_then_closed_after_two_successes() {
        let start = Instant::now();
        let mut b = opened(start);
        let later = start + Duration::from_secs(60);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        let probe = admit(&mut b, later);
        assert_eq!(probe.kind(), PermitKind::Probe);
        assert_eq!(b.on_success(probe, later), Recorded::Counted);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(succeed(&mut b, later), Recorded::Counted);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(admit(&mut b, later).kind(), PermitKind::Normal);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let start = Instant::now();
        let mut b = opened(start);
        let later = start + Duration::from_secs(61);
        assert_eq!(fail(&mut b, later), Recorded::Counted);
        assert_eq!(b.state(later), BreakerState::Open);
        assert!(b.try_acquire(later + Duration::from_secs(59)).is_err());
        assert_eq!(admit(&mut b, later + Duration::from_secs(60)).kind(), PermitKind::Probe);
    }

    #[test]
    fn thresholds_are_configurable() {
        let config =
            BreakerConfig { failure_threshold: 2, open_duration: Duration::from_millis(5), success_threshold: 1 };
        let start = Instant::now();
        let mut b = CircuitBreaker::new(config);
        fail(&mut b, start);
        fail(&mut b, start);
        assert_eq!(b.state(start), BreakerState::Open);
        let later = start + Duration::from_millis(5);
        succeed(&mut b, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(BreakerState::Open.gauge_value(), 2);
    }

    #[test]
    fn half_open_lets_one_probe_through_at_a_time() {
        let start = Instant::now();
        let mut b = opened(start);
        let later = start + Duration::from_secs(60);
        let first = admit(&mut b, later);
        assert_eq!(b.try_acquire(later), Err(HALF_OPEN_RETRY), "a second waits for the first");
        b.on_success(first, later);
        let second = admit(&mut b, later);
        assert_eq!(second.kind(), PermitKind::Probe, "the next probe after an answer");
        b.on_success(second, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        let _one = admit(&mut b, later);
        let _two = admit(&mut b, later);
    }

    #[test]
    fn a_probe_that_never_answers_stops_holding_the_others_back() {
        let start = Instant::now();
        let mut b = opened(start);
        let half_open = start + Duration::from_secs(60);
        let _cancelled = admit(&mut b, half_open);
        assert!(b.try_acquire(half_open + Duration::from_secs(59)).is_err());
        assert_eq!(admit(&mut b, half_open + Duration::from_secs(60)).kind(), PermitKind::Probe);
    }

    #[test]
    fn a_closed_state_request_answering_while_half_open_is_not_the_probe() {
        let config =
            BreakerConfig { failure_threshold: 1, open_duration: Duration::from_secs(60), success_threshold: 1 };
        let start = Instant::now();
        let mut b = CircuitBreaker::new(config);
        let early_success = admit(&mut b, start);
        let early_failure = admit(&mut b, start);
        fail(&mut b, start);
        let half_open = start + Duration::from_secs(60);
        let probe = admit(&mut b, half_open);

        // Neither late answer closes nor reopens the breaker, nor frees the probe's place.
        assert_eq!(b.on_success(early_success, half_open), Recorded::Stale);
        assert_eq!(b.state(half_open), BreakerState::HalfOpen);
        assert_eq!(b.on_failure(early_failure, half_open), Recorded::Stale);
        assert_eq!(b.state(half_open), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(half_open), Err(HALF_OPEN_RETRY), "the probe is still out");

        assert_eq!(b.on_success(probe, half_open), Recorded::Counted);
        assert_eq!(b.state(half_open), BreakerState::Closed);
    }

    #[test]
    fn a_closed_state_request_answering_while_half_open_without_a_probe_changes_nothing() {
        let start = Instant::now();
        let mut b = breaker();
        let early = admit(&mut b, start);
        for _ in 0..5 {
            fail(&mut b, start);
        }
        let half_open = start + Duration::from_secs(60);
        assert_eq!(b.on_failure(early, half_open), Recorded::Stale);
        assert_eq!(b.state(half_open), BreakerState::HalfOpen);
        assert_eq!(admit(&mut b, half_open).kind(), PermitKind::Probe);
    }

    #[test]
    fn the_answer_of_a_probe_given_up_on_is_not_the_new_probes() {
        let start = Instant::now();
        let mut b = opened(start);
        let half_open = start + Duration::from_secs(60);
        let lost = admit(&mut b, half_open);
        let retry = half_open + Duration::from_secs(60);
        let probe = admit(&mut b, retry);
        assert_eq!(b.on_failure(lost, retry), Recorded::Stale);
        assert_eq!(b.state(retry), BreakerState::HalfOpen);
        assert_eq!(b.on_success(probe, retry), Recorded::Counted);
    }

    #[test]
    fn failures_from_before_the_breaker_last_closed_do_not_count_toward_opening_it_again() {
        let config =
            BreakerConfig { failure_threshold: 2, open_duration: Duration::from_secs(60), success_threshold: 1 };
        let start = Instant::now();
        let mut b = CircuitBreaker::new(config);
        let old = [admit(&mut b, start), admit(&mut b, start)];
        fail(&mut b, start);
        fail(&mut b, start);
        let later = start + Duration::from_secs(60);
        succeed(&mut b, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        for permit in old {
            assert_eq!(b.on_failure(permit, later), Recorded::Stale);
        }
        assert_eq!(b.state(later), BreakerState::Closed);
        fail(&mut b, later);
        assert_eq!(b.state(later), BreakerState::Closed, "one current failure of two");
    }
}
