//! The Confluent Schema Registry REST API subset, as a function from request to response.
//!
//! An HTTP server (such as `pbp schema-registry`) only has to hand each request's method, path and body to
//! [`RegistryApi::handle`] and write back the [`ApiResponse`] with the content type [`CONTENT_TYPE`].
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /subjects/{s}/versions` `{"schema": "..."}` | `{"id": n}` |
//! | `POST /subjects/{s}` `{"schema": "..."}` | the registration of an equal schema, or 40403 |
//! | `GET /schemas/ids/{id}` | `{"schema": "..."}` |
//! | `GET /subjects` | `["s1", ...]` |
//! | `GET /subjects/{s}/versions` | `[1, 2, ...]` |
//! | `GET /subjects/{s}/versions/{v or latest}` | `{"subject","version","id","schema"}` |
//! | `POST /compatibility/subjects/{s}/versions/{v or latest}` | `{"is_compatible": bool}` (`messages` with `?verbose=true`) |
//! | `POST /compatibility/subjects/{s}/versions` | the same, against the versions registration checks |
//! | `GET /config`, `GET /config/{s}[?defaultToGlobal=true]` | `{"compatibilityLevel": "BACKWARD"}` |
//! | `PUT /config`, `PUT /config/{s}` `{"compatibility": "FULL"}` | `{"compatibility": "FULL"}` |
//!
//! Errors are Confluent's: `{"error_code": 40401, "message": "..."}` with the matching HTTP status.

use serde::Deserialize;
use serde_json::{Value, json};

use super::RegistryError;
use super::compat::Compatibility;
use super::core::VersionSelector;
use super::embedded::EmbeddedRegistry;

/// The content type of every response.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A response: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl ApiResponse {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn error(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self { status, body: json!({"error_code": code, "message": message.into()}) }
    }

    fn from_error(error: &RegistryError) -> Self {
        let (status, code) = error.confluent_code();
        let message = match error {
            RegistryError::SubjectNotFound { subject } => format!("Subject '{subject}' not found."),
            RegistryError::VersionNotFound { version, .. } => format!("Version {version} not found."),
            RegistryError::SchemaNotFound { .. } => "Schema not found".to_owned(),
            RegistryError::Incompatible { level, reason, .. } => {
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject; level {level}: {reason}"
                )
            }
            other => other.to_string(),
        };
        if status >= 500 {
            tracing::error!(error = %error, "schema registry request failed");
        }
        Self::error(status, code, message)
    }
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

/// The REST API over a registry.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    registry: EmbeddedRegistry,
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl RegistryApi {
    /// The API over `registry`.
    pub fn new(registry: EmbeddedRegistry) -> Self {
        Self { registry }
    }

    /// The registry served.
    pub fn registry(&self) -> &EmbeddedRegistry {
        &self.registry
    }

    /// Answers one request. `path` may carry a query string (only `verbose=true` is used). Never panics.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> ApiResponse {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let verbose = query.split('&').any(|kv| kv == "verbose=true");
        let default_to_global = query.split('&').any(|kv| kv == "defaultToGlobal=true");
        let Some(segments) = path.trim_matches('/').split('/').map(percent_decode).collect::<Option<Vec<String>>>()
        else {
            return ApiResponse::error(404, 404, "HTTP 404 Not Found");
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let result = match (method, segments.as_slice()) {
            ("GET", ["schemas", "ids", id]) => match id.parse::<u32>() {
                Ok(id) => self.registry.with_core(|c| c.schema(id)).map(|s| json!({"schema": &*s})),
                Err(_) => Err(RegistryError::SchemaNotFound { id: 0 }),
            },
            ("GET", ["subjects"]) => Ok(json!(self.registry.with_core(|c| c.subjects()))),
            ("GET", ["subjects", subject, "versions"]) => {
                self.registry.with_core(|c| c.versions(subject)).map(|v| json!(v))
            }
            ("GET", ["subjects", subject, "versions", version]) => VersionSelector::parse(version)
                .and_then(|v| self.registry.with_core(|c| c.version(subject, v)))
                .map(|r| json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": &*r.schema})),
            ("POST", ["subjects", subject, "versions"]) => Self::schema_body(body)
                .and_then(|s| self.registry.with_core(|c| c.register(subject, &s)))
                .map(|r| json!({"id": r.id})),
            ("POST", ["subjects", subject]) => Self::schema_body(body).and_then(|s| {
                self.registry.with_core(|c| {
                    let wanted = apache_avro::Schema::parse_str(&s)
                        .map_err(|e| RegistryError::InvalidSchema { reason: e.to_string() })?
                        .canonical_form();
                    for v in c.versions(subject)? {
                        let r = c.version(subject, VersionSelector::Number(v))?;
                        if apache_avro::Schema::parse_str(&r.schema).is_ok_and(|p| p.canonical_form() == wanted) {
                            return Ok(
                                json!({"subject": r.subject, "version": r.version, "id": r.id, "schema": &*r.schema}),
                            );
                        }
                    }
                    Err(RegistryError::SchemaNotFound { id: 0 })
                })
            }),
            ("POST", ["compatibility", "subjects", subject, "versions", version]) => Self::schema_body(body)
                .and_then(|s| {
                    let version = VersionSelector::parse(version)?;
                    self.registry.with_core(|c| c.is_compatible_with(subject, version, &s))
                })
                .map(|outcome| Self::compatibility_answer(outcome, verbose)),
            ("POST", ["compatibility", "subjects", subject, "versions"]) => Self::schema_body(body)
                .and_then(|s| self.registry.with_core(|c| c.is_compatible(subject, &s)))
                .map(|outcome| Self::compatibility_answer(outcome, verbose)),
            ("GET", ["config"]) => {
                Ok(json!({"compatibilityLevel": self.registry.with_core(|c| c.compatibility(None))}))
            }
            ("GET", ["config", subject]) => match self.registry.with_core(|c| c.subject_compatibility(subject)) {
                Some(level) => Ok(json!({"compatibilityLevel": level})),
                None if default_to_global => {
                    Ok(json!({"compatibilityLevel": self.registry.with_core(|c| c.compatibility(None))}))
                }
                None => Err(RegistryError::SubjectNotFound { subject: (*subject).to_owned() }),
            },
            ("PUT", ["config"]) => self.set_config(None, body),
            ("PUT", ["config", subject]) => self.set_config(Some(subject), body),
            (_, ["schemas", ..] | ["subjects", ..] | ["compatibility", ..] | ["config", ..])
                if !matches!(method, "GET" | "POST" | "PUT") =>
            {
                return ApiResponse::error(405, 405, "HTTP 405 Method Not Allowed");
            }
            _ => return ApiResponse::error(404, 404, "HTTP 404 Not Found"),
        };
        match result {
            Ok(body) => ApiResponse::ok(body),
            Err(e) => ApiResponse::from_error(&e),
        }
    }

    fn compatibility_answer(outcome: Result<(), String>, verbose: bool) -> Value {
        match (outcome, verbose) {
            (Ok(()), false) => json!({"is_compatible": true}),
            (Ok(()), true) => json!({"is_compatible": true, "messages": []}),
            (Err(_), false) => json!({"is_compatible": false}),
            (Err(reason), true) => json!({"is_compatible": false, "messages": [reason]}),
        }
    }

    fn schema_body(body: &[u8]) -> Result<String, RegistryError> {
        let parsed: SchemaBody = serde_json::from_slice(body).map_err(|e| RegistryError::Api {
            status: 422,
            code: 422,
            message: format!("Unrecognized request body: {e}"),
        })?;
        if let Some(t) = parsed.schema_type.as_deref().filter(|t| *t != "AVRO") {
            return Err(RegistryError::InvalidSchema {
                reason: format!("schema type {t} is not supported, only AVRO"),
            });
        }
        if !parsed.references.is_empty() {
            return Err(RegistryError::InvalidSchema { reason: "schema references are not supported".to_owned() });
        }
        if parsed.schema.trim().is_empty() {
            return Err(RegistryError::Api { status: 422, code: 422, message: "schema may not be empty".to_owned() });
        }
        Ok(parsed.schema)
    }

    fn set_config(&self, subject: Option<&str>, body: &[u8]) -> Result<Value, RegistryError> {
        let parsed: ConfigBody = serde_json::from_slice(body).map_err(|e| RegistryError::Api {
            status: 422,
            code: 422,
            message: format!("Unrecognized request body: {e}"),
        })?;
        let level = Compatibility::parse(&parsed.compatibility)
            .ok_or(RegistryError::InvalidCompatibility { level: parsed.compatibility.clone() })?;
        self.registry.with_core(|c| c.set_compatibility(subject, level))?;
        Ok(json!({"compatibility": level}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
    const V2_REQUIRED: &str =
        r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

    fn body(schema: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({ "schema": schema })).unwrap()
    }

    #[test]
    fn register_then_read_back_every_way() {
        let api = RegistryApi::new(EmbeddedRegistry::new());
        let r = api.handle("POST", "/subjects/raw.plays-value/versions", &body(V1));
        assert_eq!(r, ApiResponse::ok(json!({"id": 1})));
        assert_eq!(api.handle("GET", "/schemas/ids/1", b"").body, json!({"schema": V1}));
        assert_eq!(api.handle("GET", "/subjects", b"").body, json!(["raw.plays-value"]));
        assert_eq!(api.handle("GET", "/subjects/raw.plays-value/versions", b"").body, json!([1]));
        let latest = api.handle("GET", "/subjects/raw.plays-value/versions/latest", b"");
        assert_eq!(latest.body, json!({"subject": "raw.plays-value", "version": 1, "id": 1, "schema": V1}));
        assert_eq!(api.handle("GET", "/subjects/raw.plays-value/versions/1", b""), latest);
        assert_eq!(api.handle("POST", "/subjects/raw.plays-value", &body(V1)), latest);
        // Percent-encoded subjects decode.
        assert_eq!(api.handle("GET", "/subjects/raw%2Eplays-value/versions", b"").body, json!([1]));
    }

    #[test]
    fn compatibility_and_config() {
        let api = RegistryApi::new(EmbeddedRegistry::new());
        api.handle("POST", "/subjects/t-value/versions", &body(V1));
        let path = "/compatibility/subjects/t-value/versions/latest";
        assert_eq!(api.handle("POST", path, &body(V2_REQUIRED)).body, json!({"is_compatible": false}));
        let verbose = api.handle("POST", &format!("{path}?verbose=true"), &body(V2_REQUIRED)).body;
        assert_eq!(verbose["is_compatible"], false);
        assert!(verbose["messages"][0].as_str().unwrap().contains("cannot read"));
        let refused = api.handle("POST", "/subjects/t-value/versions", &body(V2_REQUIRED));
        assert_eq!((refused.status, refused.body["error_code"].clone()), (409, json!(409)));
        assert_eq!(api.handle("GET", "/config", b"").body, json!({"compatibilityLevel": "BACKWARD"}));
        assert_eq!(api.handle("GET", "/config/t-value", b"").body["error_code"], 40401);
        let effective = api.handle("GET", "/config/t-value?defaultToGlobal=true", b"").body;
        assert_eq!(effective, json!({"compatibilityLevel": "BACKWARD"}));
        let all = api.handle("POST", "/compatibility/subjects/t-value/versions", &body(V2_REQUIRED)).body;
        assert_eq!(all, json!({"is_compatible": false}));
        let put = api.handle("PUT", "/config/t-value", br#"{"compatibility":"NONE"}"#);
        assert_eq!(put.body, json!({"compatibility": "NONE"}));
        assert_eq!(api.handle("GET", "/config/t-value", b"").body, json!({"compatibilityLevel": "NONE"}));
        assert_eq!(api.handle("POST", path, &body(V2_REQUIRED)).body, json!({"is_compatible": true}));
        assert_eq!(api.handle("POST", "/subjects/t-value/versions", &body(V2_REQUIRED)).body, json!({"id": 2}));
        assert_eq!(api.handle("PUT", "/config", br#"{"compatibility":"SIDEWAYS"}"#).body["error_code"], 42203);
    }

    #[test]
    fn errors_are_confluent_shaped() {
        let api = RegistryApi::new(EmbeddedRegistry::new());
        let cases: [(&str, &str, &[u8], u16, i64); 9] = [
            ("GET", "/schemas/ids/7", b"", 404, 40403),
            ("GET", "/schemas/ids/x", b"", 404, 40403),
            ("GET", "/subjects/nope/versions", b"", 404, 40401),
            ("GET", "/subjects/nope/versions/latest", b"", 404, 40401),
            ("GET", "/subjects/nope/versions/zero", b"", 422, 42202),
            ("POST", "/subjects/s/versions", b"{\"schema\": \"{nope\"}", 422, 42201),
            ("POST", "/subjects/s/versions", b"not json", 422, 422),
            ("POST", "/compatibility/subjects/nope/versions/latest", &body(V1), 404, 40401),
            ("GET", "/elsewhere", b"", 404, 404),
        ];
        for (method, path, request, status, code) in cases {
            let r = api.handle(method, path, request);
            assert_eq!((r.status, r.body["error_code"].as_i64()), (status, Some(code)), "{method} {path}");
            assert!(r.body["message"].is_string());
        }
        api.handle("POST", "/subjects/s/versions", &body(V1));
        let r = api.handle("GET", "/subjects/s/versions/2", b"");
        assert_eq!((r.status, r.body["error_code"].as_i64()), (404, Some(40402)));
        assert_eq!(api.handle("DELETE", "/subjects/s", b"").status, 405);
    }
}
