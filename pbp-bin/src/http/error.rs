//! The API's errors: a status and a message, answered as `{"error":{"code":404,"message":"..."}}`.

use hyper::StatusCode;
use pbp_store::StoreError;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 400: a bad id or parameter.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: nothing there.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405: the path exists, not with this method.
    pub(crate) fn method_not_allowed(method: &hyper::Method) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not allowed here; use GET"))
    }

    /// 413: the request body is over the limit.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over the limit of {limit} bytes"))
    }

    /// The body: `{"error":{"code":N,"message":"..."}}`.
    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.status.as_u16(), "message": self.message}})
    }
}

impl From<StoreError> for ApiError {
    /// The store's details stay in the log: the client learns whether retrying may help (503) or not (500).
    fn from(error: StoreError) -> Self {
        match &error {
            error if error.is_transient() => {
                tracing::warn!(%error, "Store unavailable.");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; retry later")
            }
            _ => {
                tracing::error!(%error, "Store read failed.");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error reading the store")
            }
        }
    }
}
