//! The server's metrics: request durations by route template, and the WebSocket sessions.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `http_request_duration_seconds`: the route *template* (`/v1/games/{id}`), never the raw path, so
/// the series stay few whatever clients ask for.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) method: String,
    pub(crate) route: &'static str,
    pub(crate) status: u16,
}

fn duration_histogram() -> Histogram {
    // 100 µs to about 6.5 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// Handles of the server's series.
#[derive(Debug, Clone)]
pub(crate) struct HttpMetrics {
    pub(crate) request_duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// Open WebSocket sessions.
    pub(crate) websocket_connections: Gauge,
    /// Fresh snapshots sent to sessions that fell behind.
    pub(crate) websocket_resyncs: Counter,
    /// Sessions closed or dropped for not keeping up.
    pub(crate) websocket_slow_closed: Counter,
}

impl HttpMetrics {
    /// Creates the series and registers them into `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            request_duration: Family::new_with_constructor(duration_histogram),
            websocket_connections: Gauge::default(),
            websocket_resyncs: Counter::default(),
            websocket_slow_closed: Counter::default(),
        };
        registry.register(
            "http_request_duration_seconds",
            "Seconds to answer an HTTP request, by method, route template and status",
            metrics.request_duration.clone(),
        );
        registry.register(
            "websocket_connections_active",
            "Open WebSocket connections",
            metrics.websocket_connections.clone(),
        );
        registry.register(
            "websocket_resyncs",
            "Fresh snapshots sent to WebSocket sessions that fell behind their game's channel",
            metrics.websocket_resyncs.clone(),
        );
        registry.register(
            "websocket_slow_clients_closed",
            "WebSocket sessions closed for not keeping up (fell behind twice, or a send timed out)",
            metrics.websocket_slow_closed.clone(),
        );
        metrics
    }

    pub(crate) fn observe(&self, method: &hyper::Method, route: &'static str, status: u16, seconds: f64) {
        let labels = RequestLabels { method: method.as_str().to_owned(), route, status };
        self.request_duration.get_or_create(&labels).observe(seconds);
    }
}
