//! Client metrics: `espn_polls_total{endpoint,outcome}` and `espn_breaker_state{endpoint}`.
//!
//! The breaker gauge is read from the breakers at each scrape rather than set when a request completes: a
//! breaker changes state with no request completing (an open breaker turns half-open when its time is up,
//! whether or not anything polls), so a gauge set on completion would lag behind the state it reports.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::Endpoint;
use super::breaker::{BreakerState, CircuitBreaker};

/// The client's breakers, one per endpoint, shared with the gauge that reports them.
pub(crate) type Breakers = Arc<Mutex<HashMap<Endpoint, CircuitBreaker>>>;

/// The outcome of one poll (one logical request, retries included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// 2xx and a body that parsed.
    Ok,
    /// 304: the last body was reused.
    NotModified,
    /// A 4xx other than 429 (not retried).
    ClientError,
    /// 429 after all retries.
    RateLimited,
    /// 5xx after all retries.
    ServerError,
    /// Connection, timeout or body-read failure after all retries.
    TransportError,
    /// The body did not parse (truncated or malformed).
    DecodeError,
    /// Refused locally: the endpoint's circuit breaker is open.
    BreakerOpen,
}

impl PollOutcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PollOutcome::Ok => "ok",
            PollOutcome::NotModified => "not_modified",
            PollOutcome::ClientError => "client_error",
            PollOutcome::RateLimited => "rate_limited",
            PollOutcome::ServerError => "server_error",
            PollOutcome::TransportError => "transport_error",
            PollOutcome::DecodeError => "decode_error",
            PollOutcome::BreakerOpen => "breaker_open",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    endpoint: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// The client's metric handles.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientMetrics {
    polls: Family<PollLabels, Counter>,
}

impl ClientMetrics {
    /// Creates the metrics and registers them into `registry`, the breaker gauge reading `breakers`.
    pub(crate) fn register(registry: &mut Registry, breakers: Breakers) -> ClientMetrics {
        let metrics = ClientMetrics::default();
        registry.register(
            "espn_polls",
            "ESPN requests by endpoint and outcome (one per logical request, retries included)",
            metrics.polls.clone(),
        );
        registry.register_collector(Box::new(BreakerGauge { breakers }));
        metrics
    }

    pub(crate) fn poll(&self, endpoint: Endpoint, outcome: PollOutcome) {
        let labels = PollLabels { endpoint: endpoint.as_str().to_owned(), outcome: outcome.as_str().to_owned() };
        self.polls.get_or_create(&labels).inc();
    }
}

/// `espn_breaker_state{endpoint}`: each breaker's state at the time of the scrape.
#[derive(Debug)]
struct BreakerGauge {
    breakers: Breakers,
}

impl Collector for BreakerGauge {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let states: Vec<(Endpoint, BreakerState)> = {
            let mut breakers = self.breakers.lock();
            Endpoint::ALL
                .into_iter()
                .map(|endpoint| (endpoint, breakers.get_mut(&endpoint).map_or(BreakerState::Closed, |b| b.state(now))))
                .collect()
        };
        let mut family = encoder.encode_descriptor(
            "espn_breaker_state",
            "Circuit-breaker state per ESPN endpoint: 0 closed, 1 half-open, 2 open",
            None,
            MetricType::Gauge,
        )?;
        for (endpoint, state) in states {
            let labels = EndpointLabels { endpoint: endpoint.as_str().to_owned() };
            ConstGauge::new(state.gauge_value()).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
