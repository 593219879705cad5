//! A client of the Confluent Schema Registry REST API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::{Client, Method};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use serde::Deserialize;
use serde_json::{Value, json};

use super::server_core::CONTENT_TYPE;
use super::{RegistryError, SchemaRegistry};

/// What the client sends as `Accept`, as Confluent's own clients do.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

/// A Confluent Schema Registry client over HTTP(S) (rustls), with caches: schemas by id (ids never change
/// meaning) and ids by subject and schema text.
///
/// [`register`](SchemaRegistry::register) first asks `POST /compatibility/subjects/{s}/versions/latest` and
/// registers with `POST /subjects/{s}/versions` only if the answer is compatible (or the subject is new), so
/// an incompatible schema fails with the registry's reasons before anything is written.
///
/// Requests that fail transiently (the registry unreachable or timing out, a 5xx, 408 or 429 answer) are
/// retried by reqwest-retry with exponential backoff, [`RETRIES`](Self::RETRIES) times between 100 ms and 2 s apart; what is
/// still failing after that is a [`RegistryError`] whose [`is_transient`](RegistryError::is_transient) is true,
/// which a codec reports as [`CodecError::Unavailable`](pbp_dataflow::CodecError::Unavailable): the record waits,
/// it is not bad data.
#[derive(Debug, Clone)]
pub struct HttpRegistry {
    base: String,
    client: ClientWithMiddleware,
    by_id: Arc<RwLock<HashMap<u32, Arc<str>>>>,
    registered: Arc<RwLock<HashMap<(String, String), u32>>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize)]
struct CompatibilityBody {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<Value>,
}

fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl HttpRegistry {
    /// How many times a transiently failed request is retried.
    pub const RETRIES: u32 = 3;

    /// A client of the registry at `base_url`, e.g. `http://localhost:8081`.
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        // TLS through rustls with the ring provider, as pbp-espn's client; a no-op when one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RegistryError::Http { url: base_url.to_owned(), source: e.into() })?;
        let policy = ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(100), Duration::from_secs(2))
            .build_with_max_retries(Self::RETRIES);
        let client = ClientBuilder::new(client).with(RetryTransientMiddleware::new_with_policy(policy)).build();
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
            by_id: Arc::default(),
            registered: Arc::default(),
        })
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        client: &ClientWithMiddleware,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut request = client.request(method.clone(), &url).header(reqwest::header::ACCEPT, ACCEPT);
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE).body(body.to_string());
        }
        let response = request.send().await.map_err(|e| RegistryError::Http { url: url.clone(), source: e })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| RegistryError::Http { url: url.clone(), source: e.into() })?;
        tracing::debug!(%method, url, status = status.as_u16(), "schema registry call");
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadResponse {
                url,
                message: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
            });
        }
        let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
            error_code: i64::from(status.as_u16()),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
        Err(RegistryError::Api { status: status.as_u16(), code: error.error_code, message: error.message })
    }

    fn map_not_found(e: RegistryError, id: Option<u32>, subject: Option<&str>) -> RegistryError {
        match e {
            RegistryError::Api { code: 40403, .. } if id.is_some() => {
                RegistryError::SchemaNotFound { id: id.unwrap_or(0) }
            }
            RegistryError::Api { code: 40401, .. } if subject.is_some() => {
                RegistryError::SubjectNotFound { subject: subject.unwrap_or_default().to_owned() }
            }
            RegistryError::Api { code: 42201, message, .. } => RegistryError::InvalidSchema { reason: message },
            other => other,
        }
    }

    async fn fetch_schema(&self, client: &ClientWithMiddleware, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(schema) = self.by_id.read().get(&id) {
            return Ok(schema.clone());
        }
        let body: SchemaBody = self
            .call(client, Method::GET, &format!("/schemas/ids/{id}"), None)
            .await
            .map_err(|e| Self::map_not_found(e, Some(id), None))?;
        let schema: Arc<str> = body.schema.into();
        self.by_id.write().insert(id, schema.clone());
        Ok(schema)
    }

    /// Checks `schema` against the latest version of `subject`. `Ok(None)` when compatible or the subject does
    /// not exist yet; `Ok(Some(reasons))` when not.
    pub async fn check_latest(&self, subject: &str, schema: &str) -> Result<Option<String>, RegistryError> {
        let path = format!("/compatibility/subjects/{}/versions/latest?verbose=true", encode_segment(subject));
        match self.call::<CompatibilityBody>(&self.client, Method::POST, &path, Some(json!({"schema": schema}))).await {
            Ok(body) if body.is_compatible => Ok(None),
            Ok(body) => {
                let reasons: Vec<String> =
                    body.messages.iter().map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned)).collect();
                Ok(Some(if reasons.is_empty() { "the registry gave no reason".to_owned() } else { reasons.join("; ") }))
            }
            // 40401: no such subject; 40402: subject without versions. Nothing to be compatible with.
            Err(RegistryError::Api { code: 40401 | 40402, .. }) => Ok(None),
            Err(e) => Err(Self::map_not_found(e, None, Some(subject))),
        }
    }

    /// The global compatibility level (`GET /config`). Accepts both `compatibilityLevel` (current servers) and
    /// `compatibility` (older documentation).
    pub async fn global_compatibility(&self) -> Result<String, RegistryError> {
        let body: Value = self.call(&self.client, Method::GET, "/config", None).await?;
        body.get("compatibilityLevel")
            .or_else(|| body.get("compatibility"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::BadResponse {
                url: format!("{}/config", self.base),
                message: body.to_string(),
            })
    }

    /// Sets the global compatibility level (`PUT /config`).
    pub async fn set_global_compatibility(&self, level: &str) -> Result<(), RegistryError> {
        let _: Value = self.call(&self.client, Method::PUT, "/config", Some(json!({"compatibility": level}))).await?;
        Ok(())
    }

    /// All subjects (`GET /subjects`).
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.call(&self.client, Method::GET, "/subjects", None).await
    }

    /// Versions of `subject` (`GET /subjects/{s}/versions`).
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        self.call(&self.client, Method::GET, &path, None).await.map_err(|e| Self::map_not_found(e, None, Some(subject)))
    }

    /// The latest schema of `subject` and its id (`GET /subjects/{s}/versions/latest`).
    pub async fn latest(&self, subject: &str) -> Result<(u32, Arc<str>), RegistryError> {
        #[derive(Deserialize)]
        struct Version {
            id: u32,
            schema: String,
        }
        let path = format!("/subjects/{}/versions/latest", encode_segment(subject));
        let v: Version = self
            .call(&self.client, Method::GET, &path, None)
            .await
            .map_err(|e| Self::map_not_found(e, None, Some(subject)))?;
        let schema: Arc<str> = v.schema.into();
        self.by_id.write().insert(v.id, schema.clone());
        Ok((v.id, schema))
    }
}

#[async_trait::async_trait]
impl SchemaRegistry for HttpRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.registered.read().get(&key) {
            return Ok(*id);
        }
        if let Some(reason) = self.check_latest(subject, schema).await? {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                level: "configured".to_owned(),
                reason,
            });
        }
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let body: IdBody = match self.call(&self.client, Method::POST, &path, Some(json!({"schema": schema}))).await {
            Ok(body) => body,
            Err(RegistryError::Api { status: 409, message, .. }) => {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    level: "configured".to_owned(),
                    reason: message,
                });
            }
            Err(e) => return Err(Self::map_not_found(e, None, Some(subject))),
        };
        self.registered.write().insert(key, body.id);
        self.by_id.write().insert(body.id, schema.into());
        tracing::info!(subject, id = body.id, registry = %self.base, "schema registered");
        Ok(body.id)
    }

    async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.fetch_schema(&self.client, id).await
    }

    async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        Ok(self.check_latest(subject, schema).await?.is_none())
    }

    fn schema_at_hand(&self, id: u32) -> Option<Result<Arc<str>, RegistryError>> {
        self.by_id.read().get(&id).cloned().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("raw.plays-value"), "raw.plays-value");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
