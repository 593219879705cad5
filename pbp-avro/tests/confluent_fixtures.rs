//! The HTTP client against request/response pairs recorded from Confluent's Schema Registry API reference
//! (`fixtures/confluent/`, see its README for the source and the few normalizations). A fake server answers
//! each expected request with the recorded response, and fails the test on any request that differs from the
//! recorded one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pbp_avro::RegistryError;
use pbp_avro::registry::{HttpRegistry, SchemaRegistry};
use serde_json::Value;

const EXCHANGES: &str = include_str!("fixtures/confluent/exchanges.json");

#[derive(Debug, Default)]
struct Script {
    expected: VecDeque<(String, Value)>,
    problems: Vec<String>,
}

struct Fake {
    url: String,
    script: Arc<Mutex<Script>>,
    schema: String,
}

impl Fake {
    /// A fake registry that expects exactly the named exchanges, in order.
    async fn expecting(names: &[&str]) -> Self {
        let all: Value = serde_json::from_str(EXCHANGES).expect("fixture is JSON");
        let expected = names
            .iter()
            .map(|n| ((*n).to_owned(), all["exchanges"][n].clone()))
            .inspect(|(n, e)| assert!(e.is_object(), "no exchange named {n}"))
            .collect();
        let script = Arc::new(Mutex::new(Script { expected, problems: Vec::new() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = script.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let script = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(script.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, script, schema: all["schema"].as_str().unwrap().to_owned() }
    }

    fn client(&self) -> HttpRegistry {
        HttpRegistry::new(&self.url).unwrap()
    }

    /// Every expected exchange happened, and nothing else.
    fn finish(&self) {
        let script = self.script.lock().unwrap();
        assert!(script.problems.is_empty(), "{:#?}", script.problems);
        let left: Vec<&String> = script.expected.iter().map(|(n, _)| n).collect();
        assert!(left.is_empty(), "exchanges never requested: {left:?}");
    }
}

async fn answer(
    script: Arc<Mutex<Script>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let accept = request.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut script = script.lock().unwrap();
    let Some((name, exchange)) = script.expected.pop_front() else {
        script.problems.push(format!("unexpected request {method} {path}"));
        return Ok(Response::builder().status(500).body(Full::new(Bytes::new())).unwrap());
    };
    let want = &exchange["request"];
    if want["method"] != method.as_str() || want["path"] != path.as_str() {
        script.problems.push(format!("{name}: expected {} {}, got {method} {path}", want["method"], want["path"]));
    }
    if !accept.starts_with("application/vnd.schemaregistry.v1+json") {
        script.problems.push(format!("{name}: Accept is {accept:?}"));
    }
    if want["body"].is_null() {
        if !body.is_empty() {
            script.problems.push(format!("{name}: unexpected body {body:?}"));
        }
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(got) if got == want["body"] => {}
            other => script.problems.push(format!("{name}: body {other:?}, expected {}", want["body"])),
        }
        if content_type.as_deref() != Some("application/vnd.schemaregistry.v1+json") {
            script.problems.push(format!("{name}: Content-Type {content_type:?}"));
        }
    }
    let response = &exchange["response"];
    Ok(Response::builder()
        .status(response["status"].as_u64().unwrap() as u16)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(Full::new(Bytes::from(response["body"].to_string())))
        .unwrap())
}

#[tokio::test]
async fn register_checks_compatibility_then_registers() {
    let fake = Fake::expecting(&["compatibility_latest_true", "register"]).await;
    let client = fake.client();
    assert_eq!(client.register("test", &fake.schema).await.unwrap(), 1);
    // Cached: registering again, and looking up the id it got, cost no request.
    assert_eq!(client.register("test", &fake.schema).await.unwrap(), 1);
    assert_eq!(&*client.schema_by_id(1).await.unwrap(), fake.schema);
    fake.finish();
}

#[tokio::test]
async fn register_under_a_new_subject_skips_the_missing_latest() {
    let fake = Fake::expecting(&["compatibility_subject_not_found", "register"]).await;
    assert_eq!(fake.client().register("test", &fake.schema).await.unwrap(), 1);
    fake.finish();
}

#[tokio::test]
async fn an_incompatible_schema_is_not_registered() {
    let fake = Fake::expecting(&["compatibility_latest_false"]).await;
    let err = fake.client().register("test", &fake.schema).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Incompatible { subject, reason, .. } if subject == "test" && reason.contains("READER_FIELD_MISSING_DEFAULT_VALUE")),
        "{err}"
    );
    fake.finish();

    let fake = Fake::expecting(&["compatibility_latest_false"]).await;
    assert!(!fake.client().is_compatible("test", &fake.schema).await.unwrap());
    fake.finish();
}

#[tokio::test]
async fn registration_errors_are_typed() {
    // The registry may still refuse at registration time (a concurrent registration changed the latest).
    let fake = Fake::expecting(&["compatibility_latest_true", "register_conflict"]).await;
    let err = fake.client().register("test", &fake.schema).await.unwrap_err();
    assert!(matches!(err, RegistryError::Incompatible { .. }), "{err}");
    fake.finish();

    let fake = Fake::expecting(&["compatibility_latest_true", "register_invalid"]).await;
    let err = fake.client().register("test", &fake.schema).await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidSchema { .. }), "{err}");
    fake.finish();
}

#[tokio::test]
async fn schema_by_id_is_fetched_once() {
    let fake = Fake::expecting(&["schema_by_id"]).await;
    let client = fake.client();
    assert_eq!(&*client.schema_by_id(1).await.unwrap(), r#"{"type": "string"}"#);
    assert_eq!(&*client.schema_by_id(1).await.unwrap(), r#"{"type": "string"}"#);
    fake.finish();

    let fake = Fake::expecting(&["schema_by_id_not_found"]).await;
    assert!(matches!(fake.client().schema_by_id(1).await, Err(RegistryError::SchemaNotFound { id: 1 })));
    fake.finish();
}

#[tokio::test]
async fn a_fetched_schema_is_at_hand_without_waiting() {
    // What a codec's `decode` may use: nothing before the fetch (it never blocks on a lookup), the schema after.
    let fake = Fake::expecting(&["schema_by_id"]).await;
    let client = fake.client();
    assert!(client.schema_at_hand(1).is_none());
    client.schema_by_id(1).await.unwrap();
    assert_eq!(client.schema_at_hand(1).unwrap().unwrap().as_ref(), r#"{"type": "string"}"#);
    fake.finish();
}

#[tokio::test]
async fn subjects_versions_and_latest() {
    let fake = Fake::expecting(&["subjects", "versions", "version_latest", "versions_subject_not_found"]).await;
    let client = fake.client();
    assert_eq!(client.subjects().await.unwrap(), vec!["subject1".to_owned(), "subject2".to_owned()]);
    assert_eq!(client.versions("test").await.unwrap(), vec![1, 2, 3, 4]);
    let (id, schema) = client.latest("test").await.unwrap();
    assert_eq!((id, &*schema), (1, r#"{"type": "string"}"#));
    assert!(matches!(client.versions("test").await, Err(RegistryError::SubjectNotFound { .. })));
    fake.finish();
}

#[tokio::test]
async fn config_in_both_documented_shapes() {
    let fake = Fake::expecting(&["config_4x", "config_current", "put_config", "put_config_invalid"]).await;
    let client = fake.client();
    assert_eq!(client.global_compatibility().await.unwrap(), "FULL");
    assert_eq!(client.global_compatibility().await.unwrap(), "FULL");
    client.set_global_compatibility("FULL").await.unwrap();
    let err = client.set_global_compatibility("FULL").await.unwrap_err();
    assert!(matches!(err, RegistryError::Api { status: 422, code: 42203, .. }), "{err}");
    fake.finish();
}
