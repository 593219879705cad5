//! `GET /health`: the store, the cache and the broker, each checked within a deadline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use pbp_dataflow::{Transport, TransportConfig};
use pbp_store::Repository;
use pbp_store::cache::Cache;
use serde::Serialize;

/// How long one check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A topic every deployment has: the broker answers when it can say how many partitions it has.
const PROBE_TOPIC: &str = crate::topics::RAW_PLAYS;

/// One dependency check: `Ok(detail)` when it answers (`detail` says how, e.g. `"embedded"`), else the reason.
pub(crate) type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<Option<String>, String>> + Send + Sync>;

/// The checks behind `/health` besides the store (which is the repository the API reads).
#[derive(Clone)]
pub(crate) struct HealthChecks {
    pub(crate) cache: Check,
    pub(crate) broker: Check,
}

impl HealthChecks {
    /// A `PING` through `cache`, and the transport's partition count of `raw.plays` (or `"embedded"` for the
    /// in-process log, which lives as long as this process).
    pub(crate) fn new(cache: Arc<dyn Cache>, transport: Arc<dyn Transport>, config: &TransportConfig) -> Self {
        let cache: Check = Arc::new(move || {
            let cache = cache.clone();
            Box::pin(async move { cache.ping().await.map(|()| None).map_err(|e| error_chain(&e)) })
        });
        let broker: Check = match config {
            TransportConfig::Embedded { .. } => Arc::new(|| Box::pin(async { Ok(Some("embedded".to_owned())) })),
            // A metadata request runs on a blocking thread until the client's own request timeout (30 s by
            // default), well past the check's deadline: without single flight, a health probe every second
            // while the broker is down would keep some thirty threads busy.
            TransportConfig::Kafka { .. } => single_flight(Arc::new(move || {
                let transport = transport.clone();
                Box::pin(async move {
                    match transport.partitions(PROBE_TOPIC).await {
                        Ok(n) => Ok(Some(format!("kafka, {PROBE_TOPIC} has {n} partitions"))),
                        Err(e) => Err(error_chain(&e)),
                    }
                })
            })),
        };
        Self { cache, broker }
    }
}

type SharedCheck = Shared<BoxFuture<'static, Result<Option<String>, String>>>;

/// `check`, with at most one run in flight: a call while a run is unfinished (even one whose caller gave up
/// at its deadline) waits for that run's answer instead of starting another; a call after it finished starts
/// a new run (an answer nobody waited for is not handed out later).
pub(crate) fn single_flight(check: Check) -> Check {
    let in_flight: Arc<Mutex<Option<(SharedCheck, tokio::task::AbortHandle)>>> = Arc::default();
    Arc::new(move || {
        let mut slot = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((run, _)) = slot.as_ref().filter(|(_, task)| !task.is_finished()) {
            return Box::pin(run.clone());
        }
        // The run is spawned so that it goes on (and finishes) when every caller stopped waiting for it.
        let task = tokio::spawn(check());
        let handle = task.abort_handle();
        let run: SharedCheck =
            async move { task.await.unwrap_or_else(|e| Err(format!("the check failed: {e}"))) }.boxed().shared();
        *slot = Some((run.clone(), handle));
        Box::pin(run)
    })
}

/// The outcome of one check as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CheckStatus {
    /// `"ok"` or `"down"`.
    pub(crate) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The `/health` body.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Health {
    /// `"ok"` when every check passed, else `"degraded"`.
    pub(crate) status: &'static str,
    pub(crate) checks: HealthDetail,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HealthDetail {
    pub(crate) store: CheckStatus,
    pub(crate) cache: CheckStatus,
    pub(crate) broker: CheckStatus,
}

impl Health {
    pub(crate) fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Runs the three checks concurrently, each within [`CHECK_TIMEOUT`].
pub(crate) async fn check(repository: &Arc<dyn Repository>, checks: &HealthChecks) -> Health {
    let store = {
        let repository = repository.clone();
        async move { repository.ping().await.map(|()| None).map_err(|e| error_chain(&e)) }
    };
    let (store, cache, broker) =
        tokio::join!(within(Box::pin(store)), within((checks.cache)()), within((checks.broker)()));
    let all_ok = [&store, &cache, &broker].iter().all(|c| c.status == "ok");
    if !all_ok {
        tracing::warn!(?store, ?cache, ?broker, "Health check degraded.");
    }
    Health { status: if all_ok { "ok" } else { "degraded" }, checks: HealthDetail { store, cache, broker } }
}

async fn within(check: BoxFuture<'static, Result<Option<String>, String>>) -> CheckStatus {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(detail)) => CheckStatus { status: "ok", detail, error: None },
        Ok(Err(error)) => CheckStatus { status: "down", detail: None, error: Some(error) },
        Err(_) => CheckStatus {
            status: "down",
            detail: None,
            error: Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        },
    }
}

/// An error and its sources, `outer: inner: ...`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
