//! `pbp schema-registry`: the Confluent Schema Registry REST API subset that pbp's client uses, served over
//! hyper by pbp-avro's registry core. Schemas are kept, and replayed at start, in one journal: the compacted
//! topic `--schemas-topic` (default `_schemas`) with a Kafka `--transport`, as Confluent keeps them, or the
//! append-only file `schemas.journal` under `--data-dir`; with neither they live in memory only.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use pbp_avro::registry::{CONTENT_TYPE, EmbeddedRegistry, RegistryApi};
use pbp_dataflow::TransportConfig;
use tokio::net::TcpListener;

/// Largest request body accepted (a schema), in bytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Options of `pbp schema-registry`.
///
/// Where schemas are kept: with a Kafka `--transport`, in the compacted topic `--schemas-topic`; with
/// `--data-dir`, in a journal file there; not both. With neither (or `--transport embedded`, whose log
/// lasts only as long as the process) they live in memory and are lost at exit.
#[derive(Debug, Args)]
pub(crate) struct SchemaRegistryArgs {
    /// Address to listen on.
    #[arg(long, env = "PBP_SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub(crate) listen: SocketAddr,
    /// Directory for the schema journal file `schemas.journal` (created if missing). Not with a Kafka
    /// --transport.
    #[arg(long, env = "PBP_SCHEMA_REGISTRY_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// `kafka://HOST:PORT[,HOST:PORT...]`: keep schemas in the compacted topic --schemas-topic on that
    /// cluster (created with one partition if missing), as Confluent's registry does. Run one registry per
    /// topic: it is the topic's only writer. `embedded` keeps them in memory.
    #[arg(long, env = "PBP_TRANSPORT")]
    pub(crate) transport: Option<TransportConfig>,
    /// The topic schemas are kept in with a Kafka --transport.
    #[arg(long, env = "PBP_SCHEMAS_TOPIC", default_value = crate::topics::SCHEMAS)]
    pub(crate) schemas_topic: String,
}

/// Where the registry keeps its schemas, from the options.
#[derive(Debug, PartialEq)]
enum Store<'a> {
    Memory,
    File(&'a std::path::Path),
    Topic { transport: &'a TransportConfig, topic: &'a str },
}

impl SchemaRegistryArgs {
    fn store(&self) -> anyhow::Result<Store<'_>> {
        match (&self.transport, &self.data_dir) {
            (Some(TransportConfig::Kafka { .. }), Some(dir)) => bail!(
                "both a Kafka --transport and --data-dir {} are given: schemas are kept in one place, the topic \
                 --schemas-topic ({}) or the journal file; give one of them",
                dir.display(),
                self.schemas_topic
            ),
            (Some(kafka @ TransportConfig::Kafka { .. }), None) => {
                if self.schemas_topic.trim().is_empty() {
                    bail!("--schemas-topic is empty");
                }
                Ok(Store::Topic { transport: kafka, topic: &self.schemas_topic })
            }
            (_, Some(dir)) => Ok(Store::File(dir)),
            (_, None) => Ok(Store::Memory),
        }
    }
}

pub(crate) async fn run(args: SchemaRegistryArgs) -> anyhow::Result<()> {
    let registry = match args.store()? {
        Store::Topic { transport, topic } => {
            let transport = transport.connect()?;
            EmbeddedRegistry::open_topic(transport, topic).await?
        }
        Store::File(dir) => EmbeddedRegistry::open(dir)?,
        Store::Memory => {
            tracing::warn!("no --data-dir and no Kafka --transport: schemas are kept in memory and lost at exit");
            EmbeddedRegistry::new()
        }
    };
    let (subjects, journal) = registry.with_core(|c| (c.subjects().len(), c.journal()));
    let listener = TcpListener::bind(args.listen).await?;
    let journal = journal.as_deref().unwrap_or("memory");
    tracing::info!(addr = %listener.local_addr()?, journal, subjects, "schema registry listening");
    serve(listener, RegistryApi::new(registry), shutdown_signal()).await
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `api` on `listener` until `shutdown` completes, then lets open connections finish their requests
/// (up to [`crate::http::DRAIN`]) and closes them, so the registry and its journal are released when this returns.
pub(crate) async fn serve(
    listener: TcpListener,
    api: RegistryApi,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    crate::http::serve_with(listener, "schema registry", move |request| handle(api.clone(), request), shutdown).await
}

async fn handle(
    api: RegistryApi,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = request.method().as_str().to_owned();
    let path =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let body =
                serde_json::json!({"error_code": 413, "message": format!("cannot read the request body: {error}")});
            return Ok(response(StatusCode::PAYLOAD_TOO_LARGE, &body));
        }
    };
    // Registering waits until the journal has the change (a file sync, or a broker acknowledging the record):
    // keep that off the async workers.
    let answer = {
        let (method, path) = (method.clone(), path.clone());
        tokio::task::spawn_blocking(move || api.handle(&method, &path, &body)).await
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(%error, "registry handler failed");
            let body = serde_json::json!({"error_code": 50001, "message": "internal error"});
            return Ok(response(StatusCode::INTERNAL_SERVER_ERROR, &body));
        }
    };
    tracing::debug!(%method, %path, status = answer.status, "schema registry request");
    Ok(response(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &answer.body))
}

fn response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pbp_avro::registry::{HttpRegistry, SchemaRegistry};
    use pbp_avro::{AvroCodec, AvroRecord, PlayEvent, RegistryError};
    use pbp_dataflow::Codec;
    use tokio::sync::oneshot;

    use super::*;

    async fn start(
        dir: &std::path::Path,
    ) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let api = RegistryApi::new(EmbeddedRegistry::open(dir).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, api, async move {
            let _ = stopped.await;
        }));
        (url, stop, task)
    }

    fn parse(args: &[&str]) -> Result<SchemaRegistryArgs, clap::Error> {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SchemaRegistryArgs,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("schema-registry").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn the_store_is_the_topic_the_file_or_memory_never_two() {
        let args = parse(&["--transport", "kafka://127.0.0.1:9092"]).unwrap();
        assert_eq!(
            args.store().unwrap(),
            Store::Topic { transport: &"kafka://127.0.0.1:9092".parse().unwrap(), topic: "_schemas" }
        );
        let args = parse(&["--transport", "kafka://k:9092", "--schemas-topic", "prod._schemas"]).unwrap();
        assert_eq!(
            args.store().unwrap(),
            Store::Topic { transport: &"kafka://k:9092".parse().unwrap(), topic: "prod._schemas" }
        );
        let args = parse(&["--data-dir", "/d"]).unwrap();
        assert_eq!(args.store().unwrap(), Store::File(std::path::Path::new("/d")));
        // The embedded log lasts as long as the process: it does not compete with a data directory.
        let args = parse(&["--transport", "embedded", "--data-dir", "/d"]).unwrap();
        assert_eq!(args.store().unwrap(), Store::File(std::path::Path::new("/d")));
        assert_eq!(parse(&["--transport", "embedded"]).unwrap().store().unwrap(), Store::Memory);
        assert_eq!(parse(&[]).unwrap().store().unwrap(), Store::Memory);
        let err = parse(&["--transport", "kafka://k:9092", "--data-dir", "/d"]).unwrap().store().unwrap_err();
        assert!(err.to_string().contains("give one of them"), "{err}");
        assert!(parse(&["--transport", "redis://k:1"]).is_err());
    }

    const REQUIRED_FIELD_ADDED: &str = r#"{"type":"record","name":"PlayEvent","namespace":"com.playbyplay","fields":[
        {"name":"game_id","type":"string"},{"name":"brand_new","type":"string"}]}"#;

    #[tokio::test]
    async fn client_and_codec_against_the_server_and_restart() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (url, stop, task) = start(dir.path()).await;

        let producer = Arc::new(HttpRegistry::new(&url)?);
        let codec = AvroCodec::<PlayEvent>::for_topic(producer.clone(), "raw.plays").await?;
        assert_eq!(codec.schema_id(), 1);
        let bytes = codec.encode(&PlayEvent::example())?;

        // A consumer with an empty cache learns the writer schema by id from the server: not inside decode, which
        // never waits on the network, but in prepare, as a source calls it.
        let consumer = Arc::new(HttpRegistry::new(&url)?);
        let reader = AvroCodec::<PlayEvent>::with_schema_id(consumer.clone(), 99)?;
        assert!(reader.decode(bytes.as_ref()).is_err_and(|e| e.is_transient()), "not fetched yet");
        reader.prepare(bytes.as_ref()).await?;
        assert_eq!(reader.decode(bytes.as_ref())?, PlayEvent::example());

        assert_eq!(producer.subjects().await?, vec!["raw.plays-value".to_owned()]);
        assert_eq!(producer.versions("raw.plays-value").await?, vec![1]);
        assert_eq!(producer.latest("raw.plays-value").await?.0, 1);
        assert_eq!(&*consumer.schema_by_id(1).await?, PlayEvent::SCHEMA);
        assert!(matches!(consumer.schema_by_id(5).await, Err(RegistryError::SchemaNotFound { id: 5 })));
        assert!(matches!(consumer.versions("nope").await, Err(RegistryError::SubjectNotFound { .. })));

        // The client checks compatibility first and reports the server's reason.
        assert!(!producer.is_compatible("raw.plays-value", REQUIRED_FIELD_ADDED).await?);
        let err = producer.register("raw.plays-value", REQUIRED_FIELD_ADDED).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Incompatible { reason, .. } if reason.contains("cannot read")), "{err}");
        assert_eq!(producer.global_compatibility().await?, "BACKWARD");
        producer.set_global_compatibility("NONE").await?;
        assert_eq!(producer.register("raw.plays-value", REQUIRED_FIELD_ADDED).await?, 2);

        stop.send(()).ok();
        task.await??;

        // Restarted on the same data dir: same ids, same level.
        let (url, stop, task) = start(dir.path()).await;
        let again = HttpRegistry::new(&url)?;
        assert_eq!(again.versions("raw.plays-value").await?, vec![1, 2]);
        assert_eq!(again.global_compatibility().await?, "NONE");
        assert_eq!(&*again.schema_by_id(2).await?, REQUIRED_FIELD_ADDED);
        assert_eq!(again.register("raw.plays-value", PlayEvent::SCHEMA).await?, 1);
        stop.send(()).ok();
        task.await??;
        Ok(())
    }

    #[tokio::test]
    async fn answers_carry_the_registry_content_type_and_confluent_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (url, stop, task) = start(dir.path()).await;
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /schemas/ids/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("content-type: application/vnd.schemaregistry.v1+json"),
            "{answer}"
        );
        assert!(answer.ends_with(r#"{"error_code":40403,"message":"Schema not found"}"#), "{answer}");
        stop.send(()).ok();
        task.await??;
        Ok(())
    }
}
