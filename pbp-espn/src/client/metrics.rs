//! Client metrics: `espn_polls_total{endpoint,outcome}` and `espn_breaker_state{endpoint}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Endpoint;
use super::breaker::BreakerState;

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
    breaker_state: Family<EndpointLabels, Gauge>,
}

impl ClientMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub(crate) fn register(registry: &mut Registry) -> ClientMetrics {
        let metrics = ClientMetrics::default();
        registry.register(
            "espn_polls",
            "ESPN requests by endpoint and outcome (one per logical request, retries included)",
            metrics.polls.clone(),
        );
        registry.register(
            "espn_breaker_state",
            "Circuit-breaker state per ESPN endpoint: 0 closed, 1 half-open, 2 open",
            metrics.breaker_state.clone(),
        );
        for endpoint in Endpoint::ALL {
            metrics.set_breaker_state(endpoint, BreakerState::Closed);
        }
        metrics
    }

    pub(crate) fn poll(&self, endpoint: Endpoint, outcome: PollOutcome) {
        let labels = PollLabels { endpoint: endpoint.as_str().to_owned(), outcome: outcome.as_str().to_owned() };
        self.polls.get_or_create(&labels).inc();
    }

    pub(crate) fn set_breaker_state(&self, endpoint: Endpoint, state: BreakerState) {
        let labels = EndpointLabels { endpoint: endpoint.as_str().to_owned() };
        self.breaker_state.get_or_create(&labels).set(state.gauge_value());
    }
}
