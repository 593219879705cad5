//! `WS /ws/{game_id}`: a game's plays and state pushed as the serve pipelines store them.
//!
//! The handshake is plain HTTP/1.1 (`Upgrade: websocket`) on the REST server's connections: hyper hands the
//! upgraded connection over and tokio-tungstenite speaks WebSocket on it. The path answers like the REST API
//! before upgrading: 404 for an unknown game, 400 for a bad id or `since`, 426 for a request that is not a
//! WebSocket handshake. Messages are described in `crate::push` and `docs/serving.md`; what a session does is
//! in [`session`].

pub(crate) mod session;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pbp_store::Repository;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::ApiError;
use super::metrics::HttpMetrics;
use crate::push::Hub;

/// How sessions behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WsSettings {
    /// Plays in the snapshot of a connection without `since`.
    pub(crate) snapshot_plays: u32,
    /// Longest a client may take to accept one frame before the connection is dropped.
    pub(crate) send_timeout: Duration,
    /// Largest message (and frame) a client may send, in bytes.
    pub(crate) max_client_message: usize,
    /// A session that falls behind again within this time of its last fresh snapshot is closed.
    pub(crate) resync_cooldown: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            snapshot_plays: 50,
            send_timeout: Duration::from_secs(10),
            max_client_message: 64 * 1024,
            resync_cooldown: Duration::from_secs(30),
        }
    }
}

/// What the WebSocket path needs: the hub the serve pipelines publish into, and the sessions it runs.
#[derive(Clone)]
pub(crate) struct Push {
    hub: Arc<Hub>,
    settings: WsSettings,
    closing: CancellationToken,
    sessions: TaskTracker,
}

impl Push {
    pub(crate) fn new(hub: Arc<Hub>, settings: WsSettings) -> Self {
        Self { hub, settings, closing: CancellationToken::new(), sessions: TaskTracker::new() }
    }

    /// Tells every session to close (`1001 Going Away`); new handshakes are refused.
    pub(crate) fn start_closing(&self) {
        self.closing.cancel();
    }

    /// Closes every session and waits up to `drain` for them to end.
    pub(crate) async fn close_all(&self, drain: Duration) {
        self.closing.cancel();
        self.sessions.close();
        if tokio::time::timeout(drain, self.sessions.wait()).await.is_err() {
            tracing::warn!(open = self.sessions.len(), "WebSocket sessions still open after the drain period.");
        }
    }
}

/// The WebSocket settings of a session's connection: small read buffer, no write batching, and the client's
/// messages and frames bounded by `max_client_message`.
pub(crate) fn session_config(settings: &WsSettings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(16 << 20)
        .max_message_size(Some(settings.max_client_message))
        .max_frame_size(Some(settings.max_client_message))
}

/// True if the request asks to switch to another protocol (`Connection: upgrade`).
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, header::CONNECTION, "upgrade")
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Answers the handshake of `WS /ws/{game_id}` and starts the session once the connection is upgraded.
pub(crate) async fn upgrade(
    push: &Push,
    repository: Arc<dyn Repository>,
    metrics: HttpMetrics,
    request: &mut Request<Incoming>,
    game_id: String,
    resume: crate::http::routes::WsResume,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let headers = request.headers();
    if !wants_upgrade(headers) || !has_token(headers, header::UPGRADE, "websocket") {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this path speaks WebSocket: send a handshake (Connection: Upgrade, Upgrade: websocket)",
        ));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err(ApiError::new(StatusCode::UPGRADE_REQUIRED, "only WebSocket version 13 is spoken here"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::bad_request("the WebSocket handshake lacks Sec-WebSocket-Key"));
    };
    let accept = derive_accept_key(key.as_bytes());
    if push.closing.is_cancelled() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"));
    }
    if repository.game(&game_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no game {game_id}")));
    }
    let on_upgrade = hyper::upgrade::on(request);
    let context = session::Context {
        game_id,
        resume,
        repository,
        hub: push.hub.clone(),
        settings: push.settings,
        closing: push.closing.clone(),
        metrics,
    };
    let config = session_config(&push.settings);
    push.sessions.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                session::run(socket, context).await;
            }
            Err(error) => tracing::debug!(%error, game_id = context.game_id, "WebSocket upgrade failed."),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::try_from(accept).map_err(|_| ApiError::bad_request("bad key"))?,
    );
    Ok(response)
}
#[cfg(test)]
mod tests;
