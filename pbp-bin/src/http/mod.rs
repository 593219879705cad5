//! The REST API over raw hyper: games, plays, teams, health and metrics, read from the store through its cache.
//!
//! `GET /v1/games`, `/v1/games/{id}`, `/v1/games/{id}/plays`, `/v1/teams`, `/health`, `/health/live` and
//! `/metrics` (`docs/openapi.yaml`), and the WebSocket `/ws/{id}` ([`ws`]). Every answer but `/metrics` is JSON;
//! errors are `{"error":{"code":N,"message":"..."}}`. [`serve`] runs until its shutdown future completes, then
//! stops accepting, closes the WebSocket sessions (`1001 Going Away`) and lets requests in flight finish for up
//! to [`DRAIN`].

mod encoding;
pub(crate) mod error;
mod health;
mod metrics;
pub(crate) mod routes;
#[cfg(test)]
pub(crate) mod tests;
pub(crate) mod views;
pub(crate) mod ws;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pbp_store::Repository;
use pbp_store::cache::{Cache, EntryKind};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use self::error::ApiError;
pub(crate) use self::health::HealthChecks;
pub(crate) use self::metrics::HttpMetrics;
pub(crate) use self::routes::DEFAULT_PLAYS_LIMIT;
use self::routes::Route;

/// Largest request body accepted, in bytes (every endpoint is a GET: a body has nothing to say).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long requests in flight may take to finish once shutdown starts.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    repository: Arc<dyn Repository>,
    checks: HealthChecks,
    metrics: HttpMetrics,
    registry: Arc<Mutex<Registry>>,
    push: Option<ws::Push>,
    bodies: Option<Arc<dyn Cache>>,
}

impl Api {
    /// An API over `repository` (the store behind its cache), exposing `registry` on `/metrics`, into which the
    /// server's own series are registered.
    pub(crate) fn new(repository: Arc<dyn Repository>, checks: HealthChecks, registry: Arc<Mutex<Registry>>) -> Self {
        let metrics = HttpMetrics::register(&mut registry.lock().unwrap_or_else(PoisonError::into_inner));
        Self { repository, checks, metrics, registry, push: None, bodies: None }
    }

    /// Keeps the answered bodies of `GET /v1/games/{id}/plays` in `cache`, in the group the store's cache
    /// invalidates when the game's plays change (`plays:{id}`), so that a repeated read is one cache lookup.
    pub(crate) fn with_body_cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.bodies = Some(cache);
        self
    }

    /// Serves `WS /ws/{id}` from `push` (without it, the path answers 404).
    pub(crate) fn with_push(mut self, push: ws::Push) -> Self {
        self.push = Some(push);
        self
    }
}

/// Serves `api` on `listener` until `shutdown` completes, then stops accepting, lets open connections finish
/// their requests (up to [`DRAIN`]) and closes them.
pub(crate) async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let push = api.push.clone();
    let closing = push.clone();
    // Sessions hear of the shutdown at once, while the HTTP connections drain.
    let shutdown = async move {
        shutdown.await;
        if let Some(push) = closing {
            push.start_closing();
        }
    };
    let served = serve_with(listener, "HTTP server", move |request| handle(api.clone(), request), shutdown).await;
    if let Some(push) = push {
        push.close_all(DRAIN).await;
    }
    served
}

/// The accept loop every pbp server shares: each connection answered by `handler` over HTTP/1.1 or HTTP/2, a
/// limit on reading a request's head, and on `shutdown` no more accepts, open connections drained for up to
/// [`DRAIN`], then closed. `name` names the server in its logs.
pub(crate) async fn serve_with<H, F>(
    listener: TcpListener,
    name: &'static str,
    handler: H,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, server = name, "Accept failed.");
                    // Out of file descriptors, typically: give the connections in flight a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers and WebSocket frames leave at once instead of waiting for the previous segment's ACK
        // (Nagle's algorithm against the client's delayed ACK costs up to 40 ms a message).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, server = name, "Cannot set TCP_NODELAY.");
        }
        let handler = handler.clone();
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let service = hyper::service::service_fn(handler);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // A client has this long to send a request's head, so idle half-open connections do not pile up.
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            // With upgrades: `/ws/{id}` switches the connection to WebSocket (the schema registry has no such path).
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, server = name, "Connection ended with an error.");
            }
        });
        // Reap finished connections so the set does not grow with every client.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            server = name,
            "Connections still busy after the drain period; closing them."
        );
    }
    connections.shutdown().await;
    tracing::info!(server = name, "Server stopped.");
    Ok(())
}

/// Answers one request and records its duration under its route template.
async fn handle(api: Api, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let (route, response) = match answer(&api, request).await {
        Ok((route, response)) => (route, response),
        Err((route, error)) => (route, json(error.status, &error.body())),
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    api.metrics.observe(&method, route, status, elapsed.as_secs_f64());
    tracing::debug!(%method, route, status, micros = elapsed.as_micros() as u64, "HTTP request.");
    Ok(response)
}

type Answer = Result<(&'static str, Response<Full<Bytes>>), (&'static str, ApiError)>;

async fn answer(api: &Api, mut request: Request<Incoming>) -> Answer {
    let route = routes::route(request.uri().path());
    let template = route.as_ref().map_or(routes::UNMATCHED, Route::template);
    let fail = |error: ApiError| (template, error);
    if let Ok(Route::Ws(id)) = &route {
        routes::check_method(request.method()).map_err(fail)?;
        let params = routes::Params::parse(request.uri().query(), routes::allowed_params(&Route::Ws(String::new())))
            .map_err(fail)?;
        let resume = routes::ws_resume(&params).map_err(fail)?;
        let Some(push) = &api.push else {
            return Err(fail(ApiError::not_found("this server pushes no WebSocket")));
        };
        let repository = api.repository.clone();
        let response = ws::upgrade(push, repository, api.metrics.clone(), &mut request, id.clone(), resume).await;
        return response.map(|response| (template, response)).map_err(fail);
    }
    // Refuse an oversized body first, without reading it when its length is declared.
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(fail(ApiError::payload_too_large(MAX_BODY)));
    }
    let (parts, body) = request.into_parts();
    if Limited::new(body, MAX_BODY).collect().await.is_err() {
        return Err(fail(ApiError::payload_too_large(MAX_BODY)));
    }
    let route = route.map_err(fail)?;
    routes::check_method(&parts.method).map_err(fail)?;
    let query = parts.uri.query();
    let params = |route: &Route| routes::Params::parse(query, routes::allowed_params(route)).map_err(fail);
    let repository = api.repository.as_ref();
    let body = match &route {
        Route::Health => {
            let health = health::check(&api.repository, &api.checks).await;
            let status = routes::health_status(health.ok());
            return Ok((template, json(status, &serde_json::to_value(&health).unwrap_or_default())));
        }
        Route::Live => {
            params(&route)?;
            return Ok((template, json(StatusCode::OK, &serde_json::json!({"status": "ok"}))));
        }
        Route::Metrics => return Ok((template, metrics_text(api))),
        // Answered before the body is read (the upgrade needs the request); kept for an exhaustive match.
        Route::Ws(_) => return Err(fail(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "misrouted WebSocket"))),
        Route::Teams => routes::teams(repository, &params(&route)?).await,
        Route::Games => routes::games(repository, &params(&route)?).await,
        Route::Game(id) => {
            params(&route)?;
            routes::game(repository, id).await
        }
        Route::Plays(id) => {
            let request = routes::plays_request(&params(&route)?, id).map_err(fail)?;
            let gzip = encoding::accepts_gzip(&parts.headers);
            let (body, gzipped) = plays_body(api, id, &request, gzip).await.map_err(fail)?;
            let mut response = json_bytes(StatusCode::OK, body);
            let headers = response.headers_mut();
            headers.insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
            if gzipped {
                headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
            }
            return Ok((template, response));
        }
    };
    body.map(|body| (template, json(StatusCode::OK, &body))).map_err(fail)
}

/// The process's metrics in the Prometheus (OpenMetrics) text format.
fn metrics_text(api: &Api) -> Response<Full<Bytes>> {
    let mut text = String::new();
    let encoded = {
        let registry = api.registry.lock().unwrap_or_else(PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut text, &registry)
    };
    if let Err(error) = encoded {
        tracing::error!(%error, "Cannot encode the metrics.");
        let error = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Cannot encode the metrics.");
        return json(error.status, &error.body());
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// The body of `GET /v1/games/{id}/plays`, gzipped when `gzip` (then the flag is true): from the body cache
/// when it holds it, else built (or compressed from the cached plain body) and kept there.
async fn plays_body(
    api: &Api,
    id: &str,
    request: &routes::PlaysRequest,
    gzip: bool,
) -> Result<(Bytes, bool), ApiError> {
    let group = format!("plays:{id}");
    let field = request.cache_field(id);
    let gzip_field = format!("{field};gzip");
    if gzip && let Some(zipped) = cached_body(api, &group, &gzip_field).await {
        return Ok((zipped, true));
    }
    let (body, kind) = match cached_body(api, &group, &field).await {
        // Only a gzip miss comes here with a cached plain body. The group's TTL was set by its first entry, so
        // the kind given with the gzipped body only matters if the group expired meanwhile: the shorter is safe.
        Some(body) if gzip => (body, EntryKind::Live),
        Some(body) => return Ok((body, false)),
        None => {
            let (body, status) = routes::plays(api.repository.as_ref(), id, request).await?;
            let kind = if status == pbp_store::GameStatus::Post { EntryKind::Finished } else { EntryKind::Live };
            keep_body(api, &group, &field, &body, kind).await;
            (body, kind)
        }
    };
    if !gzip {
        return Ok((body, false));
    }
    // Off the runtime's workers: a 1,000-play body is about 500 KB, some milliseconds to compress.
    let plain = body.clone();
    let zipped = tokio::task::spawn_blocking(move || encoding::gzip(&plain))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match zipped {
        Ok(zipped) => {
            keep_body(api, &group, &gzip_field, &zipped, kind).await;
            Ok((zipped, true))
        }
        Err(error) => {
            tracing::warn!(%error, "Cannot gzip the plays; answering them plain.");
            Ok((body, false))
        }
    }
}

/// A body from the body cache; a failed read counts as a miss.
async fn cached_body(api: &Api, group: &str, field: &str) -> Option<Bytes> {
    let cache = api.bodies.as_ref()?;
    match cache.get(group, field).await {
        Ok(body) => body,
        Err(error) => {
            tracing::debug!(%error, "Body cache read failed; building the answer.");
            None
        }
    }
}

/// Keeps a body in the body cache, if there is one; a failed write is only logged.
async fn keep_body(api: &Api, group: &str, field: &str, body: &[u8], kind: EntryKind) {
    if let Some(cache) = &api.bodies
        && let Err(error) = cache.put(group, field, body, kind).await
    {
        tracing::debug!(%error, "Body cache write failed.");
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    json_bytes(status, Bytes::from(body.to_string()))
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        response.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, header::HeaderValue::from_static("13"));
    }
    response
}
