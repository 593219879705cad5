//! `pbp ingest`, `pbp enrich`, `pbp serve` and `pbp run`: the pipelines as processes. Each runs until Ctrl-C or
//! SIGTERM, then finishes the batch in flight, commits and exits. `serve` and `run` also answer the REST API
//! (`crate::http`) on `--listen`, from the store they write, and stop it with the pipelines.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use pbp_dataflow::{Shutdown, Transport};
use pbp_store::Repository;
use pbp_store::cache::Cache;
use tokio::task::JoinSet;

use super::common::{EspnArgs, HttpArgs, Metrics, ServiceArgs};
use crate::pipelines::{DynPipeline, enrich, live, serve};
use crate::push::{Hub, PublishingRepository};

/// Options of `pbp ingest`.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    espn: EspnArgs,
}

/// Options of `pbp enrich`.
#[derive(Debug, Args)]
pub(crate) struct EnrichArgs {
    #[command(flatten)]
    services: ServiceArgs,
}

/// Options of `pbp serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    http: HttpArgs,
}

/// Options of `pbp run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    services: ServiceArgs,
    #[command(flatten)]
    espn: EspnArgs,
    #[command(flatten)]
    http: HttpArgs,
}

pub(crate) async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("ingest")?;
    // Configuration first: a missing registry is reported before any connection is tried.
    let registry = args.services.registry()?;
    let transport = args.services.connect_transport()?;
    let metrics = Metrics::new();
    live::run_ingest(&transport, registry, &args.espn, &metrics.registry, Shutdown::on_signals()).await?;
    Ok(())
}

pub(crate) async fn enrich(args: EnrichArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("enrich")?;
    let registry = args.services.registry()?;
    let transport = args.services.connect_transport()?;
    let shutdown = Shutdown::on_signals();
    let metrics = Metrics::new();
    let pipelines = vec![enrich_pipeline_with(&args.services, &transport, &metrics, registry).await?];
    run_all(pipelines, shutdown).await
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.services.require_shared_log("serve")?;
    let registry = args.services.registry()?;
    let transport = args.services.connect_transport()?;
    let shutdown = Shutdown::on_signals();
    let metrics = Metrics::new();
    let (repository, cache) = args.services.cached_store().await?;
    let hub = Hub::new(args.http.ws_queue);
    let publishing: Arc<dyn Repository> = Arc::new(PublishingRepository::new(repository.clone(), hub.clone()));
    let pipelines = serve_pipelines_on(&args.services, &transport, &metrics, registry, publishing).await?;
    let server =
        start_http(&args.http, &args.services, repository, cache, hub, &transport, &metrics, &shutdown).await?;
    let ran = run_all(pipelines, shutdown.clone()).await;
    // The pipelines stop on shutdown (or on error): stop the server too.
    shutdown.trigger();
    let served = server.await?;
    ran.and(served)
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let registry = args.services.registry()?;
    let transport = args.services.connect_transport()?;
    let shutdown = Shutdown::on_signals();
    let metrics = Metrics::new();
    let (repository, cache) = args.services.cached_store().await?;
    let hub = Hub::new(args.http.ws_queue);
    let publishing: Arc<dyn Repository> = Arc::new(PublishingRepository::new(repository.clone(), hub.clone()));
    let mut pipelines = vec![enrich_pipeline_with(&args.services, &transport, &metrics, registry.clone()).await?];
    pipelines.extend(serve_pipelines_on(&args.services, &transport, &metrics, registry.clone(), publishing).await?);
    // Groups are joined before ingest writes, so that the embedded log keeps every record for them.
    for pipeline in &mut pipelines {
        pipeline.open().await?;
    }
    match &args.services.database_url {
        Some(_) => tracing::info!("Storing into PostgreSQL."),
        None => tracing::info!(data_dir = %args.services.data_dir.display(), "Storing into the embedded database."),
    }
    let server =
        start_http(&args.http, &args.services, repository, cache, hub, &transport, &metrics, &shutdown).await?;
    let pipelines = tokio::spawn(run_all(pipelines, shutdown.clone()));
    let ingested = live::run_ingest(&transport, registry, &args.espn, &metrics.registry, shutdown.clone()).await;
    // Ingest stops on shutdown (or on error): stop the rest too.
    shutdown.trigger();
    let ran = pipelines.await?;
    let served = server.await?;
    ingested?;
    ran.and(served)
}

/// Binds `--listen` (so a taken port fails the command at start) and serves the REST API and the WebSocket
/// pushes of `hub` until `shutdown`.
#[allow(clippy::too_many_arguments)]
async fn start_http(
    http: &HttpArgs,
    services: &ServiceArgs,
    repository: Arc<dyn Repository>,
    cache: Arc<dyn Cache>,
    hub: Arc<Hub>,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen, PBP_LISTEN)", http.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "REST API listening.");
    let checks = crate::http::HealthChecks::new(cache.clone(), transport.clone(), &services.transport);
    let push = crate::http::ws::Push::new(hub, http.ws_settings());
    let api =
        crate::http::Api::new(repository, checks, metrics.registry.clone()).with_push(push).with_body_cache(cache);
    let shutdown = shutdown.clone();
    Ok(tokio::spawn(async move { crate::http::serve(listener, api, async move { shutdown.wait().await }).await }))
}

async fn enrich_pipeline_with(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    registry: Arc<dyn pbp_avro::SchemaRegistry>,
) -> anyhow::Result<Box<dyn DynPipeline>> {
    crate::topics::ensure_all(transport.as_ref()).await?;
    let codecs = enrich::EnrichCodecs::register(registry).await?;
    Ok(Box::new(enrich::pipeline(transport.clone(), codecs, services.pipeline_config(), metrics.dataflow.clone())))
}

pub(crate) async fn serve_pipelines_with(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    registry: Arc<dyn pbp_avro::SchemaRegistry>,
) -> anyhow::Result<Vec<Box<dyn DynPipeline>>> {
    let repository = services.repository().await?;
    serve_pipelines_on(services, transport, metrics, registry, repository).await
}

/// The store pipelines writing into `repository`.
async fn serve_pipelines_on(
    services: &ServiceArgs,
    transport: &Arc<dyn Transport>,
    metrics: &Metrics,
    registry: Arc<dyn pbp_avro::SchemaRegistry>,
    repository: Arc<dyn Repository>,
) -> anyhow::Result<Vec<Box<dyn DynPipeline>>> {
    crate::topics::ensure_all(transport.as_ref()).await?;
    serve::pipelines(
        transport.clone(),
        registry,
        repository,
        services.pipeline_config(),
        metrics.dataflow.clone(),
        services.parent_wait(),
    )
    .await
}

/// Runs every pipeline until `shutdown`; the first failure stops the others.
pub(crate) async fn run_all(pipelines: Vec<Box<dyn DynPipeline>>, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut running = JoinSet::new();
    for pipeline in pipelines {
        let name = pipeline.name().to_owned();
        let shutdown = shutdown.clone();
        running.spawn(async move { (name, pipeline.run(shutdown).await) });
    }
    let mut first_error = None;
    while let Some(ended) = running.join_next().await {
        let (name, result) = ended?;
        match result {
            Ok(stats) => tracing::info!(pipeline = name, ?stats, "Pipeline finished."),
            Err(error) => {
                tracing::error!(pipeline = name, %error, "Pipeline failed; stopping the others.");
                shutdown.trigger();
                first_error.get_or_insert(anyhow::Error::new(error).context(format!("pipeline {name} failed")));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{RunArgs, ServeArgs};

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn run_and_serve_listen_on_port_8000_of_localhost_unless_told() {
        // Run needs no option at all.
        assert_eq!(Run::try_parse_from(["run"]).unwrap().args.http.listen, "127.0.0.1:8000".parse().unwrap());
        let run = Run::try_parse_from(["run", "--listen", "0.0.0.0:0"]).unwrap();
        assert_eq!(run.args.http.listen, "0.0.0.0:0".parse().unwrap());
        let serve = Serve::try_parse_from(["serve", "--listen", "[::1]:9000"]).unwrap();
        assert_eq!(serve.args.http.listen, "[::1]:9000".parse().unwrap());
        assert!(Serve::try_parse_from(["serve", "--listen", "localhost"]).is_err());
    }
}
